/**
 * `demo`: run the product tour script of the repository in a child Node process.
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import type { CliContext } from "../context.js";

/** Add `demo` to `program`; it reads `program` for which global options were given on the command line. */
export function addDemoCommands(program: Command, ctx: CliContext): void {
  const { io, globals } = ctx;
  program
    .command("demo")
    .description(
      "run the product tour (orders, inventory, billing and the gateway on one Redis); only from a clone of the repository",
    )
    .option("--keep", "leave everything running after the tour (dashboard URL printed) until Ctrl-C", false)
    .action(async (o: { keep: boolean }) => {
      // The demo is TypeScript that ships only in the repository (not in the npm package): run it with
      // the same Node and tsx, as `npm run demo` does.
      const script =
        io.demoScript ?? fileURLToPath(new URL("../../../examples/demo/main.ts", import.meta.url));
      if (!existsSync(script)) {
        throw new Error(
          `the demo ships only in the redmesh repository (${script} not found): clone it and run \`npm run demo\``,
        );
      }
      if (!io.execPath) throw new Error("no Node binary to run the demo with");
      let tsx: string;
      try {
        tsx = import.meta.resolve("tsx");
      } catch {
        throw new Error("the demo needs tsx: run `npm install` in the repository first");
      }
      // Only what was given on the command line overrides the demo's own defaults (its namespace is
      // "redmesh-demo", and it starts a throwaway Redis when none answers).
      const env = { ...io.env };
      if (program.getOptionValueSource("redis") === "cli") env.REDIS_URL = globals().redis;
      if (program.getOptionValueSource("namespace") === "cli") env.REDMESH_NAMESPACE = globals().namespace;
      // On a terminal the demo writes to it directly (colours, Ctrl-C reaches it too); otherwise its
      // output goes through `io` like every other command's.
      const direct = io.stdout.isTTY === true;
      const child = spawn(io.execPath, ["--import", tsx, script, ...(o.keep ? ["--keep"] : [])], {
        env,
        stdio: direct ? "inherit" : ["ignore", "pipe", "pipe"],
      });
      child.stdout?.on("data", (d: Buffer) => io.stdout.write(d.toString()));
      child.stderr?.on("data", (d: Buffer) => io.stderr.write(d.toString()));
      // Ctrl-C (or SIGTERM to this process alone) ends the demo cleanly: it stops its children itself.
      const onAbort = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      };
      io.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(
          (resolve, reject) => {
            child.once("error", reject);
            child.once("close", (c, s) => resolve([c, s]));
          },
        );
        if (code !== 0)
          throw new Error(`the demo ended with ${code === null ? signal : `exit code ${code}`}`);
      } finally {
        io.signal?.removeEventListener("abort", onAbort);
      }
    });
}
