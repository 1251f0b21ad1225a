/**
 * Shared, versioned config: `config get`, `config set`, `config list`, `config history`, `config rollback`.
 * @module
 */
import type { Command } from "commander";
import { createConfigClient } from "../../config/index.js";
import { ErrorCode, RedmeshError } from "../../errors.js";
import { type CliContext, jsonArg, type Session, usage } from "../context.js";
import { table } from "../output.js";

const configClient = (s: Session, service: string) =>
  createConfigClient({ redis: s.redis, keys: s.keys, service });

/** Add `config` and its subcommands to `program`. */
export function addConfigCommands(program: Command, ctx: CliContext): void {
  const { io, paint, withSession } = ctx;
  const config = program
    .command("config")
    .description("read and change the shared, versioned config of a service");
  config
    .command("get <service>")
    .description("print the active config (or one version with --version)")
    .option("--version <v>", "a stored version instead of the active one")
    .action((service: string, o: { version?: string }) =>
      withSession(async (s) => {
        const history = await configClient(s, service).history();
        const entry =
          o.version === undefined
            ? history.find((h) => h.active)
            : history.find((h) => h.version === o.version);
        if (!entry) {
          throw new RedmeshError(
            ErrorCode.CONFIG_NOT_FOUND,
            o.version === undefined
              ? `no config stored for service "${service}"`
              : `service "${service}" has no config version "${o.version}"`,
          );
        }
        s.print(
          () =>
            `${paint.dim(`# ${service} version ${entry.version}${entry.active ? " (active)" : ""}`)}\n${JSON.stringify(entry.value, null, 2)}`,
          () => ({ service, version: entry.version, active: entry.active, value: entry.value }),
        );
      }),
    );
  config
    .command("set <service> [json]")
    .description(
      "store a new config version and make it active (inline JSON or --file); every instance is notified",
    )
    .option("--file <path>", "read the config from a JSON file")
    .option("--version <v>", "version label (default: the highest one bumped)")
    .action((service: string, json: string | undefined, o: { file?: string; version?: string }) =>
      withSession(async (s) => {
        if ((json === undefined) === (o.file === undefined))
          throw usage("give the config either inline or with --file, not both or neither");
        let text = json ?? "";
        if (o.file !== undefined) {
          if (!io.readFile) throw usage("--file is not available here");
          text = await io.readFile(o.file);
        }
        const value = jsonArg(text, "the config");
        const r = await configClient(s, service).set(
          value,
          o.version === undefined ? {} : { version: o.version },
        );
        s.print(
          () =>
            `${paint.green("✓")} ${service} config version ${paint.bold(r.version)} is active${r.previousVersion ? paint.dim(` (was ${r.previousVersion})`) : ""}`,
          () => ({ service, ...r }),
        );
      }),
    );
  config
    .command("list <service>")
    .description("list the stored versions (natural order, the active one marked)")
    .action((service: string) =>
      withSession(async (s) => {
        const history = await configClient(s, service).history();
        s.print(
          () =>
            history.length === 0
              ? paint.dim(`no config stored for "${service}"`)
              : history.map((h) => `${h.active ? paint.green("*") : " "} ${h.version}`).join("\n"),
          () => history.map((h) => ({ version: h.version, active: h.active })),
        );
      }),
    );
  config
    .command("history <service>")
    .description("every stored version with its content")
    .action((service: string) =>
      withSession(async (s) => {
        const history = await configClient(s, service).history();
        s.print(
          () =>
            history.length === 0
              ? paint.dim(`no config stored for "${service}"`)
              : table(
                  [
                    ["VERSION", "ACTIVE", "CONFIG"],
                    ...history.map((h) => {
                      const j = JSON.stringify(h.value);
                      return [
                        h.version,
                        h.active ? paint.green("yes") : "",
                        j.length > 80 ? `${j.slice(0, 77)}...` : j,
                      ];
                    }),
                  ],
                  paint,
                ),
          () => history,
        );
      }),
    );
  config
    .command("rollback <service> <version>")
    .description("make an earlier version active again; every instance is notified")
    .action((service: string, version: string) =>
      withSession(async (s) => {
        await configClient(s, service).rollback(version);
        s.print(
          () => `${paint.green("✓")} ${service} config version ${paint.bold(version)} is active again`,
          () => ({ service, version }),
        );
      }),
    );
}
