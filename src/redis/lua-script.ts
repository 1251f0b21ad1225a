/**
 * Lua scripts: one file per atomic operation beside the TypeScript that calls it, loaded once and
 * called by SHA (with a `NOSCRIPT` fallback in the connection layer).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/** A Lua script with its SHA1, ready for `EVALSHA`. */
export interface LuaScript {
  /** Name for errors and metrics. */
  readonly name: string;
  /** Lua source. */
  readonly source: string;
  /** SHA1 of the source (what `SCRIPT LOAD` would return). */
  readonly sha: string;
}

/** Define a script from its source. */
export function defineScript(name: string, source: string): LuaScript {
  return Object.freeze({ name, source, sha: createHash("sha1").update(source).digest("hex") });
}

/**
 * Load a `.lua` file that sits beside the calling module (pass `import.meta.url`). The build copies
 * `.lua` files next to the compiled JavaScript.
 */
export function loadScript(name: string, moduleUrl: string): LuaScript {
  const source = readFileSync(new URL(`./${name}.lua`, moduleUrl), "utf8");
  return defineScript(name, source);
}
