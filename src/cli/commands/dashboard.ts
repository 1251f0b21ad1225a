/**
 * `dashboard`: serve the live web dashboard until interrupted.
 * @module
 */
import type { Command } from "commander";
import { createDashboard } from "../../dashboard/index.js";
import { type CliContext, usage } from "../context.js";

/** Add `dashboard` to `program`. */
export function addDashboardCommands(program: Command, ctx: CliContext): void {
  const { io, paint, withSession } = ctx;
  program
    .command("dashboard")
    .description("serve the live web dashboard (read-only, no authentication: keep it on localhost)")
    .option("--port <port>", "TCP port (0: any free one)", "8090")
    .option("--host <host>", "interface to bind", "127.0.0.1")
    .action((o: { port: string; host: string }) =>
      withSession(async (s) => {
        const port = /^\d{1,5}$/.test(o.port) ? Number(o.port) : -1;
        if (port < 0 || port > 65535) throw usage(`--port must be an integer 0..65535, not "${o.port}"`);
        if (!io.signal)
          throw usage("dashboard runs until interrupted: no interrupt signal is available here");
        const signal = io.signal;
        const dash = createDashboard({ redis: s.redis, keys: s.keys });
        try {
          const { url } = await dash.listen({ port, host: o.host });
          s.print(
            () =>
              `${paint.green("✓")} dashboard for namespace ${paint.bold(s.opts.namespace)} at ${paint.bold(url)}\n${paint.dim("read-only; Ctrl-C to stop")}`,
            () => ({ url, namespace: s.opts.namespace }),
          );
          if (!signal.aborted)
            await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        } finally {
          await dash.stop();
        }
      }),
    );
}
