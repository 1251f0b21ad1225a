import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { describe, test } from "node:test";

/** Every module reachable from `entry` through static imports/exports: local files and bare packages. */
function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const stack = [resolve(entry)];
  while (stack.length > 0) {
    const f = stack.pop() as string;
    if (files.has(f)) continue;
    files.add(f);
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s(?:[^;]*?from\s+)?"([^"]+)"/gms)) {
      const spec = m[1] as string;
      if (spec.startsWith(".")) stack.push(resolve(dirname(f), spec.replace(/\.js$/, ".ts")));
      else if (!spec.startsWith("node:"))
        packages.add(
          spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string),
        );
    }
  }
  return { files, packages };
}

describe("gateway packaging", () => {
  test('"redmesh" never loads the gateway or its dependencies (undici, ws, prom-client)', () => {
    const { files, packages } = reachable("src/index.ts");
    const gw = [...files].map((f) => relative("src", f)).filter((f) => f.startsWith("gateway/"));
    assert.deepEqual(gw, []);
    for (const p of ["undici", "ws", "prom-client"]) assert.ok(!packages.has(p), `redmesh imports ${p}`);
  });

  test('"redmesh/gateway" is a separate export with types', () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { exports: Record<string, unknown> };
    assert.deepEqual(pkg.exports["./gateway"], {
      types: "./dist/gateway/index.d.ts",
      import: "./dist/gateway/index.js",
    });
    const { packages } = reachable("src/gateway/index.ts");
    for (const p of ["undici", "ws", "prom-client"]) assert.ok(packages.has(p), `gateway should use ${p}`);
  });
});
