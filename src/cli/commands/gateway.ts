/**
 * `gateway`: run the HTTP/WebSocket API gateway until interrupted.
 * @module
 */
import type { Command } from "commander";
import { type CliContext, nonNegativeInt } from "../context.js";

/** Add `gateway` to `program`. */
export function addGatewayCommands(program: Command, ctx: CliContext): void {
  const { io, paint, withSession } = ctx;
  program
    .command("gateway")
    .description("run the HTTP/WebSocket API gateway (routes by the registry) until interrupted")
    .option("--port <port>", "port to listen on", "8080")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--max-body <bytes>", "largest request body accepted", "1048576")
    .option("--rate-limit <rps>", "per client IP requests/s (0: off)", "0")
    .option("--cors <origins...>", "allowed CORS origins")
    .option("--dashboard", "also serve the live dashboard under /dashboard", false)
    .action(
      (o: {
        port: string;
        host: string;
        maxBody: string;
        rateLimit: string;
        cors?: string[];
        dashboard: boolean;
      }) =>
        withSession(async (s) => {
          const { createGateway } = await import("../../gateway/index.js");
          const rps = nonNegativeInt(o.rateLimit, "--rate-limit");
          const gw = createGateway({
            redis: s.opts.redis,
            namespace: s.opts.namespace,
            port: nonNegativeInt(o.port, "--port"),
            host: o.host,
            limits: { maxBodyBytes: nonNegativeInt(o.maxBody, "--max-body") },
            ...(rps > 0 ? { rateLimit: { ratePerSec: rps, burst: rps * 2 } } : {}),
            ...(o.cors ? { cors: { origins: o.cors } } : {}),
            dashboard: o.dashboard,
          });
          await gw.start();
          io.stderr.write(
            `gateway listening on ${paint.bold(gw.url)} (metrics: ${gw.url}/metrics) — Ctrl-C to stop\n`,
          );
          if (s.opts.json) io.stdout.write(`${JSON.stringify({ url: gw.url })}\n`);
          await new Promise<void>((resolve) => {
            if (!io.signal || io.signal.aborted) return resolve();
            io.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          await gw.stop();
        }),
    );
}
