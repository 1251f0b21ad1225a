/**
 * Which key a command is routed by in a Redis Cluster (the node owning that key's slot serves it).
 *
 * redmesh sends raw commands, so the connection has to find the key itself. The rules cover every
 * command redmesh and its tools send; an unknown command is routed by its first argument, which is
 * where nearly every Redis command takes its key.
 *
 * @module
 */

import type { RedisArg } from "./types.js";

/** Commands that touch no key: any node can serve them. */
const KEYLESS = new Set([
  "PING",
  "ECHO",
  "TIME",
  "INFO",
  "PUBLISH",
  "CLIENT",
  "CONFIG",
  "SCRIPT",
  "ACL",
  "CLUSTER",
  "COMMAND",
  "DBSIZE",
  "HELLO",
  "LASTSAVE",
  "ROLE",
  "WAIT",
  "FUNCTION",
  "PUBSUB",
  "SLOWLOG",
  "LATENCY",
  "FLUSHALL",
  "FLUSHDB",
  "RANDOMKEY",
]);

/** Commands whose key comes after a sub-command word (`OBJECT ENCODING <key>`, `MEMORY USAGE <key>`). */
const SUBCOMMAND_KEYED = new Set(["OBJECT", "MEMORY", "XINFO"]);

/**
 * The key (or sharded channel) a command must be routed by, or `undefined` when any node will do.
 * For multi-key commands this is the first key: redmesh only ever sends multi-key commands whose keys
 * share one slot (every key of a service carries its `{<svc>}` hash tag).
 */
export function routingKey(args: readonly RedisArg[]): string | Buffer | undefined {
  const name = String(args[0] ?? "").toUpperCase();
  if (KEYLESS.has(name)) return undefined;
  switch (name) {
    case "EVAL":
    case "EVALSHA":
    case "EVAL_RO":
    case "EVALSHA_RO":
    case "FCALL":
    case "FCALL_RO":
      // EVALSHA <sha> <numkeys> <key> …
      return Number(args[2]) > 0 ? asKey(args[3]) : undefined;
    case "XREAD":
    case "XREADGROUP": {
      const i = args.findIndex((a) => String(a).toUpperCase() === "STREAMS");
      return i >= 0 ? asKey(args[i + 1]) : undefined;
    }
    default:
      if (SUBCOMMAND_KEYED.has(name)) {
        if (name === "MEMORY" && String(args[1]).toUpperCase() !== "USAGE") return undefined;
        return asKey(args[2]);
      }
      return asKey(args[1]);
  }
}

function asKey(a: RedisArg | undefined): string | Buffer | undefined {
  if (a === undefined) return undefined;
  return typeof a === "number" ? String(a) : a;
}

/**
 * True for a channel that names a hash tag (`…{orders}…`): in a Cluster it is published and subscribed
 * as a sharded channel (`SPUBLISH`/`SSUBSCRIBE`) on the node owning the tag's slot; other channels use
 * classic cluster-wide pub/sub.
 */
export function isShardedChannel(channel: string): boolean {
  const open = channel.indexOf("{");
  if (open < 0) return false;
  const close = channel.indexOf("}", open + 1);
  return close > open + 1;
}

/**
 * The Cluster slot of a key or sharded channel: CRC16 (XMODEM) of its hash tag (the text between the
 * first `{` and the next `}`, when not empty), else of the whole key, modulo 16384 (the Cluster
 * specification's `HASH_SLOT`).
 */
export function keySlot(key: string | Buffer): number {
  let bytes = typeof key === "string" ? Buffer.from(key) : key;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
