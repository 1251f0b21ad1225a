/**
 * The library never writes to the console: it logs through an injected, pino-compatible logger that is
 * silent by default (STYLE.md rule 5). Pass `logger: pino()` (or anything with these four methods).
 *
 * @module
 */

/** One log method, in pino's calling convention: `(obj, msg?)` or `(msg)`. */
export type LogFn = {
  (obj: Record<string, unknown>, msg?: string): void;
  (msg: string): void;
};

/** The subset of pino's logger that redmesh calls. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop: LogFn = () => {};

/** A logger that drops everything (the default). */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });
