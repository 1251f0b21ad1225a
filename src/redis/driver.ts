/**
 * The one place node-redis is loaded, through `require()` of its own modules rather than an `import`
 * of its index: the index loads the cluster, sentinel, pool and client-side-cache modules whatever the
 * topology, and an ESM `import` of a CommonJS module also runs Node's export scanner over it. A
 * standalone connection loads the client alone; Cluster and Sentinel load their module on first use.
 *
 * node-redis 6 has no exports map; these deep paths are pinned with the exact dependency version.
 *
 * @module
 */

import { createRequire, Module } from "node:module";
import { dirname, join } from "node:path";
import type {
  createCluster as CreateCluster,
  createSentinel as CreateSentinel,
  RedisClient as RedisClientClass,
} from "@redis/client";

const load = createRequire(import.meta.url);
const driverModule = <T>(path: string): T =>
  (load(`@redis/client/dist/lib/${path}`) as { default: T }).default;

type Table = Record<PropertyKey, unknown>;

/** A proxy that answers from `full()`, except for the keys `own` answers (`undefined`: not one). */
const forwarding = (full: () => object, own: (key: PropertyKey) => unknown): object =>
  new Proxy(
    {},
    {
      get: (_t, key) => own(key) ?? Reflect.get(full(), key),
      has: (_t, key) => Reflect.has(full(), key),
      ownKeys: () => Reflect.ownKeys(full()),
      // Configurable, as the proxy's own (empty, extensible) target requires.
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(full(), key);
        return d && { ...d, configurable: true };
      },
    },
  );

/**
 * node-redis' client module requires its command table (`lib/commands/index.js`, one module per
 * command, ≈ 410), which redmesh never reads: it sends every command through `sendCommand`. A lazy
 * stand-in goes into the module cache first. A command named in capitals (the client's handshake reads
 * AUTH, CLIENT_SETNAME, READONLY) loads only its own module; anything else (listing the table, as a
 * generated client class, the cluster, sentinel and pool do, or a named export) loads the real table
 * and answers from it, so other users of node-redis in the process see the same table as before.
 */
function deferCommandTable(): void {
  // Only for the node-redis release whose module layout this was written against.
  if ((load("@redis/client/package.json") as { version?: string }).version !== DEFERRED_FOR) return;
  const path = load.resolve("@redis/client/dist/lib/commands/index.js");
  if (load.cache[path] !== undefined) return; // already loaded: nothing to save
  let real: Table | undefined;
  const full = (): Table => {
    if (real === undefined) {
      delete load.cache[path];
      real = load(path) as Table;
    }
    return real;
  };
  const single = (key: PropertyKey): unknown => {
    if (real !== undefined || typeof key !== "string" || !/^[A-Z][A-Z0-9_]*$/.test(key)) return undefined;
    try {
      return (load(join(dirname(path), `${key}.js`)) as { default: unknown }).default;
    } catch {
      return undefined; // an alias with no module of its own: the real table has it
    }
  };
  const table = forwarding(() => full().default as object, single);
  const stub = new Module(path);
  stub.filename = path;
  stub.loaded = true;
  stub.exports = forwarding(full, (key) =>
    key === "__esModule" ? true : key === "default" ? table : undefined,
  );
  load.cache[path] = stub;
}
/** The node-redis version `deferCommandTable` knows (the exact dependency in package.json). */
const DEFERRED_FOR = "6.3.1";
try {
  deferCommandTable();
} catch {
  // Anything unexpected in the driver's layout: load it whole, as without this.
}

/** node-redis' base client class (what `import { RedisClient } from "@redis/client"` gives). */
export const RedisClient = driverModule<typeof RedisClientClass>("client/index.js");

/** The plain transaction class of a client (addCommand + exec), without generated command methods. */
export const ClientMulti = driverModule<unknown>("client/multi-command.js");

/** node-redis' `createCluster()`, its module loaded on the first call. */
export const createCluster = ((options: Parameters<typeof CreateCluster>[0]) =>
  driverModule<{ create: typeof CreateCluster }>("cluster/index.js").create(options)) as typeof CreateCluster;

/** node-redis' `createSentinel()`, its module loaded on the first call. */
export const createSentinel = ((options: Parameters<typeof CreateSentinel>[0]) =>
  driverModule<{ create: typeof CreateSentinel }>("sentinel/index.js").create(
    options,
  )) as typeof CreateSentinel;
