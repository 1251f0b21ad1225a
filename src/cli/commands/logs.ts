/**
 * `logs`: show or follow the distributed logs of some or all services.
 * @module
 */
import type { Command } from "commander";
import { isLogLevel, type LogEntry, queryLogs, tailLogs } from "../../log/index.js";
import { type CliContext, usage } from "../context.js";
import { parseSince } from "../output.js";

/** Add `logs` to `program`. */
export function addLogsCommands(program: Command, ctx: CliContext): void {
  const { io, paint, withSession } = ctx;
  program
    .command("logs [services...]")
    .description(
      "show (or follow with -f) the distributed logs of some or all services, merged in time order",
    )
    .option("-f, --follow", "keep printing new entries until interrupted", false)
    .option("--level <level>", "lowest level shown: trace, debug, info, warn, error, fatal", "trace")
    .option("--since <when>", "start this far back (30s, 15m, 2h, 1d) or at an ISO time", "15m")
    .option("--grep <text>", "only entries whose message or fields contain this (one service)")
    .option("-n, --limit <n>", "most entries shown without --follow", "200")
    .action(
      (
        services: string[],
        o: { follow: boolean; level: string; since: string; grep?: string; limit: string },
      ) =>
        withSession(async (s) => {
          if (!isLogLevel(o.level)) throw usage(`unknown level "${o.level}"`);
          const since = parseSince(o.since);
          if (since === undefined)
            throw usage(`--since must be a duration (15m) or an ISO time, not "${o.since}"`);
          const limit = Number(o.limit);
          if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a positive integer");
          const line = (e: LogEntry) => {
            if (s.opts.json) return JSON.stringify(e);
            const lv = e.level.toUpperCase().padEnd(5);
            const lvl =
              e.level === "error" || e.level === "fatal"
                ? paint.red(lv)
                : e.level === "warn"
                  ? paint.yellow(lv)
                  : e.level === "info"
                    ? paint.green(lv)
                    : paint.dim(lv);
            const who = `${e.service}${e.instance ? `/${e.instance.slice(0, 8)}` : ""}`;
            const fields = e.fields ? ` ${paint.dim(JSON.stringify(e.fields))}` : "";
            return `${paint.dim(new Date(e.ts).toISOString().slice(11, 23))} ${lvl} ${paint.bold(who)} ${e.msg}${fields}`;
          };
          if (o.grep !== undefined) {
            if (services.length !== 1) throw usage("--grep searches one service: name exactly one");
            const found = await queryLogs(s.redis, s.keys, {
              service: services[0] as string,
              level: o.level,
              from: since,
              text: o.grep,
              limit,
            });
            io.stdout.write(found.map((e) => `${line(e)}\n`).join(""));
            return;
          }
          const tailOpts = {
            level: o.level,
            since,
            follow: o.follow,
            ...(services.length > 0 ? { services } : {}),
            ...(io.signal ? { signal: io.signal } : {}),
          };
          if (o.follow) {
            for await (const e of tailLogs(s.redis, s.keys, tailOpts)) io.stdout.write(`${line(e)}\n`);
            return;
          }
          const last: LogEntry[] = [];
          for await (const e of tailLogs(s.redis, s.keys, tailOpts)) {
            last.push(e);
            if (last.length > limit) last.shift();
          }
          if (last.length === 0 && !s.opts.json) io.stdout.write(`${paint.dim("no log entries")}\n`);
          else io.stdout.write(last.map((e) => `${line(e)}\n`).join(""));
        }),
    );
}
