/**
 * Messaging: `call` (RPC), `send` and `broadcast`, through a short-lived service of the CLI's own.
 * @module
 */
import type { Command } from "commander";
import { type CliContext, jsonArg, nonNegativeInt } from "../context.js";
import { spinner } from "../output.js";

/** Add `call`, `send` and `broadcast` to `program`. */
export function addMessagingCommands(program: Command, ctx: CliContext): void {
  const { io, paint, withCaller } = ctx;
  program
    .command("call <service> <method> [json]")
    .description("call a method on one live instance (picked by the balancer) and print the result")
    .option("--timeout <ms>", "how long to wait for the answer", "10000")
    .option("--idempotent", "allow retries on another instance after a failure", false)
    .action(
      (
        service: string,
        method: string,
        json: string | undefined,
        o: { timeout: string; idempotent: boolean },
      ) =>
        withCaller(async (svc, s) => {
          const params = jsonArg(json, "the params");
          const timeout = nonNegativeInt(o.timeout, "--timeout");
          const stop = spinner(io.stderr, `calling ${service}.${method}`, !s.opts.json);
          let result: unknown;
          const t0 = performance.now();
          try {
            result = await svc.call(service, method, params, {
              timeout,
              idempotent: o.idempotent,
              ...(io.signal ? { signal: io.signal } : {}),
            });
          } finally {
            stop();
          }
          const ms = performance.now() - t0;
          s.print(
            () => `${JSON.stringify(result, null, 2)}\n${paint.dim(`(${ms.toFixed(1)} ms)`)}`,
            () => result,
          );
        }),
    );

  program
    .command("send <target> [json]")
    .description("send a message to one live instance of a service (`svc`, or `iid@svc`); at-most-once")
    .action((target: string, json: string | undefined) =>
      withCaller(async (svc, s) => {
        const to = await svc.send(target, jsonArg(json, "the message body"));
        s.print(
          () => `${paint.green("✓")} delivered to ${to}`,
          () => ({ delivered: true, instance: to }),
        );
      }),
    );

  program
    .command("broadcast <service> [json]")
    .description("send a message to every live instance of a service; at-most-once")
    .action((service: string, json: string | undefined) =>
      withCaller(async (svc, s) => {
        const r = await svc.broadcast(service, jsonArg(json, "the message body"));
        s.print(
          () =>
            `${paint.green("✓")} broadcast to ${service}${typeof r === "number" ? ` (${r} receiver${r === 1 ? "" : "s"})` : ""}`,
          () => ({ service, receivers: r }),
        );
      }),
    );
}
