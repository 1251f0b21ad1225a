/**
 * The `redmesh` command line: builds the commander program with its global options and adds each command
 * group from `commands/` (registry listings, messaging, `queue`, `gateway`, `acl`, `logs`, `config`,
 * `dashboard`, `demo`).
 * Every command takes the global `--redis URL` (env `REDIS_URL`), `--namespace NS` (env
 * `REDMESH_NAMESPACE`) and `--json`, prints a readable table (coloured on a TTY) or JSON, and exits
 * with a code from {@link ExitCode}. Errors are one line on stderr, never a stack.
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { addAclCommands } from "./commands/acl.js";
import { addConfigCommands } from "./commands/config.js";
import { addDashboardCommands } from "./commands/dashboard.js";
import { addDemoCommands } from "./commands/demo.js";
import { addGatewayCommands } from "./commands/gateway.js";
import { addLogsCommands } from "./commands/logs.js";
import { addMessagingCommands } from "./commands/messaging.js";
import { addQueueCommands } from "./commands/queue.js";
import { addRegistryCommands } from "./commands/registry.js";
import { type CommandGroup, createCliContext, ExitCode, exitCodeOf } from "./context.js";
import { type CliIO, paintFor } from "./output.js";

export { ExitCode } from "./context.js";

/** The command groups in the order `--help` lists their commands. */
const GROUPS: readonly CommandGroup[] = [
  addRegistryCommands,
  addMessagingCommands,
  addQueueCommands,
  addGatewayCommands,
  addAclCommands,
  addLogsCommands,
  addConfigCommands,
  addDashboardCommands,
  addDemoCommands,
];

/** Build the program. `io` receives all output; nothing here touches `process`. */
export function buildProgram(io: CliIO): Command {
  const program = new Command("redmesh")
    .description("Inspect and drive a redmesh (or Hydra) mesh on Redis.")
    .addOption(
      new Option(
        "--redis <url>",
        "Redis URL: redis://host:port[/db], rediss:// (TLS), redis-cluster://h:p,h:p or redis-sentinel://h:p,h:p/<primary>",
      ).default(io.env.REDIS_URL ?? "redis://127.0.0.1:6379"),
    )
    .addOption(
      new Option("--namespace <ns>", "key namespace (`hydra` for Hydra services)").default(
        io.env.REDMESH_NAMESPACE ?? "redmesh",
      ),
    )
    .option("--json", "machine-readable JSON output", false)
    .option("--timeout <ms>", "how long to wait for Redis", "3000")
    .showHelpAfterError("(add --help for usage)")
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride();

  const ctx = createCliContext(program, io);
  for (const addGroup of GROUPS) addGroup(program, ctx);
  return program;
}

/** Run the CLI with `argv` (without the node and script paths). Resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const program = buildProgram(io);
  const paint = paintFor(io.stderr, io.env);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const code = exitCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`${paint.red("error:")} ${message}\n`);
    return code;
  }
}
