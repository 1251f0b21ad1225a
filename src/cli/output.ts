/**
 * Terminal output for the CLI: aligned tables, colour only on a TTY (and never with `NO_COLOR`),
 * machine output with `--json`.
 * @module
 */

/** Where the CLI writes, injectable so tests can capture it. */
export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Aborted when the user interrupts (Ctrl-C): following commands end cleanly. */
  signal?: AbortSignal;
  /** Reads a file (for `config set --file`); injectable for tests. */
  readFile?: (path: string) => Promise<string>;
  /** The Node binary child scripts run with (`redmesh demo`); the entry point passes `process.execPath`. */
  execPath?: string;
  /** Where `redmesh demo` looks for the demo script. @default examples/demo/main.ts of the repository */
  demoScript?: string;
}

/** Colour helpers that are identity functions when colour is off. */
export interface Paint {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  red(s: string): string;
}

/** Colours for a stream: on only for a TTY without `NO_COLOR`. */
export function paintFor(stream: CliIO["stdout"], env: CliIO["env"]): Paint {
  const on = stream.isTTY === true && env.NO_COLOR === undefined && env.TERM !== "dumb";
  const wrap = (open: number, close: number) => (s: string) => (on ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    red: wrap(31, 39),
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI colour codes is the point
const ANSI = /\x1b\[[0-9;]*m/g;
const visible = (s: string) => s.replace(ANSI, "").length;

/** Render rows as an aligned table; the first row is the header. */
export function table(rows: readonly (readonly string[])[], paint: Paint): string {
  if (rows.length === 0) return "";
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, visible(c));
  return rows
    .map((r, j) => {
      const line = r
        .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visible(c))))
        .join("  ");
      return j === 0 ? paint.bold(line) : line;
    })
    .join("\n");
}

/** Human duration: `45s`, `12m`, `3h`, `2d`. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** Parse `--since`: a duration back from now (`90s`, `15m`, `2h`, `1d`) or an ISO-8601 time. */
export function parseSince(text: string, now = Date.now()): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (m) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
    return now - Number(m[1]) * unit;
  }
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * A spinner on stderr while a command waits, only on a TTY (never in pipes or `--json` scripts).
 * Returns the function that clears it.
 */
export function spinner(stream: CliIO["stderr"], text: string, enabled = true): () => void {
  if (!enabled || stream.isTTY !== true) return () => undefined;
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let i = 0;
  // Only shown when the wait is noticeable: quick answers print no spinner at all.
  const timer = setInterval(() => {
    stream.write(`\r${frames[i++ % frames.length]} ${text}`);
  }, 80);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (i > 0) stream.write("\r\x1b[2K");
  };
}
