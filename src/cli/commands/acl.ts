/**
 * `acl`: print (or apply) a least-privilege Redis ACL user for one service.
 * @module
 */
import type { Command } from "commander";
import { ConnectionError } from "../../errors.js";
import { createKeys } from "../../keys.js";
import { ClusterConnection, isClusterOptions } from "../../redis/index.js";
import { aclSetUserCommand } from "../../security/index.js";
import { type CliContext, usage } from "../context.js";

/** Add `acl` to `program`. */
export function addAclCommands(program: Command, ctx: CliContext): void {
  const { io, paint, globals, withSession } = ctx;
  program
    .command("acl <service>")
    .description("print (or --apply) a least-privilege Redis ACL user for one service")
    .option("--talks-to <services...>", "services it calls, answers or messages (their channels are granted)")
    .option("--produce-to <services...>", "services whose queues it adds jobs to")
    .option("--user <name>", "ACL user name (default redmesh-<service>)")
    .option(
      "--password-env <var>",
      "read the password from this environment variable",
      "REDMESH_ACL_PASSWORD",
    )
    .option("--apply", "create or replace the user on the Redis given by --redis", false)
    .action(
      (
        service: string,
        o: { talksTo?: string[]; produceTo?: string[]; user?: string; passwordEnv: string; apply: boolean },
      ) => {
        const opts = globals();
        const password = io.env[o.passwordEnv];
        if (!password) throw usage(`set the user's password in $${o.passwordEnv} (16 characters or more)`);
        const cmd = aclSetUserCommand({
          keys: createKeys({ namespace: opts.namespace, cluster: isClusterOptions(opts.redis) }),
          service,
          talksTo: o.talksTo ?? [],
          produceTo: o.produceTo ?? [],
          password,
          ...(o.user ? { user: o.user } : {}),
        });
        const shown = cmd.map((a) => (a.startsWith(">") ? ">********" : a));
        if (!o.apply) {
          io.stdout.write(
            opts.json
              ? `${JSON.stringify({ command: shown })}\n`
              : `${shown.map((a) => (/^[\w.:@+-]+$/.test(a) ? a : `'${a}'`)).join(" ")}\n`,
          );
          return Promise.resolve();
        }
        return withSession(async (s) => {
          if (s.redis instanceof ClusterConnection) {
            // Every node of a Cluster keeps its own users: set it on each one.
            const results = await s.redis.commandOnEveryNode(cmd);
            const failed = results.filter((r) => r.reply instanceof Error);
            if (failed.length > 0)
              throw new ConnectionError(
                `ACL SETUSER failed on ${failed.map((f) => `${f.node} (${(f.reply as Error).message})`).join(", ")}`,
              );
          } else await s.redis.command(cmd);
          s.print(
            () => `${paint.green("✓")} ACL user ${paint.bold(cmd[2] ?? "")} set for service ${service}`,
            () => ({ user: cmd[2], service, applied: true }),
          );
        });
      },
    );
}
