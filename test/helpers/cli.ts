/**
 * The CLI run in-process (`runCli`) with its output captured, for tests.
 */
import { runCli } from "../../src/cli/program.js";

/** Run the CLI in-process with captured output. */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
  extra: { signal?: AbortSignal; files?: Record<string, string>; onOut?: (all: string) => void } = {},
) {
  let out = "";
  let err = "";
  const code = await runCli(args, {
    stdout: {
      write: (s: string) => {
        out += s;
        extra.onOut?.(out);
      },
      isTTY: false,
    },
    stderr: { write: (s: string) => (err += s), isTTY: false },
    env,
    ...(extra.signal ? { signal: extra.signal } : {}),
    readFile: async (p) => {
      const f = extra.files?.[p];
      if (f === undefined) throw new Error(`ENOENT: ${p}`);
      return f;
    },
  });
  return { code, out, err };
}
