#!/usr/bin/env node
// Architecture rules (STYLE.md "The shape of the code"), checked on every `npm run lint`:
//  1. only src/redis/ imports the Redis driver;
//  2. only src/keys.ts builds key names (no literal ":service:" key fragments elsewhere in src/);
//  3. dependencies point one way: core ← redis ← capabilities ← service ← gateway/dashboard ← cli;
//  4. no import cycles among src/ modules.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve("src");
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith(".ts")) files.push(p);
  }
};
walk(root);

// Layer of a file: lower numbers may not import higher ones.
const layerOf = (f) => {
  const r = relative(root, f).replaceAll("\\", "/");
  if (/^(errors|keys|logger|async)\.ts$/.test(r) || r.startsWith("envelope/")) return 0;
  if (r.startsWith("redis/")) return 1;
  if (r === "service.ts") return 3;
  if (r.startsWith("gateway/") || r.startsWith("dashboard/")) return 4;
  if (r.startsWith("cli/")) return 5;
  if (r === "index.ts" || r.endsWith("/index.ts")) return r === "index.ts" ? 6 : layerOfDir(r);
  return 2; // capabilities
};
const layerOfDir = (r) => layerOf(join(root, r.replace(/\/index\.ts$/, "/x.ts")));

const problems = [];
const graph = new Map();
for (const f of files) {
  const text = readFileSync(f, "utf8");
  const rel = relative(root, f);
  const deps = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s(?:[^;]*?from\s+)?"([^"]+)"/gms)) {
    const spec = m[1];
    if (/^(@redis\/|redis$|ioredis$)/.test(spec) && !rel.startsWith("redis/")) {
      problems.push(`${rel}: imports the Redis driver "${spec}" (only src/redis/ may)`);
    }
    if (spec.startsWith(".")) {
      const target = resolve(dirname(f), spec.replace(/\.js$/, ".ts"));
      deps.push(target);
      if (layerOf(target) > layerOf(f) && !rel.endsWith("index.ts")) {
        problems.push(`${rel}: imports ${relative(root, target)} from a higher layer`);
      }
    }
  }
  graph.set(f, deps);
  if (rel !== "keys.ts" && /[`"']\$?\{?[^`"']*:service:/.test(text.replace(/^\s*(\/\/|\*).*$/gm, ""))) {
    problems.push(`${rel}: builds a key name with ":service:" (only src/keys.ts may)`);
  }
}
// Cycle detection (DFS with colours).
const colour = new Map();
const stack = [];
const visit = (f) => {
  colour.set(f, 1);
  stack.push(f);
  for (const d of graph.get(f) ?? []) {
    if (!graph.has(d)) continue;
    if (colour.get(d) === 1) {
      const cyc = stack
        .slice(stack.indexOf(d))
        .concat(d)
        .map((x) => relative(root, x));
      problems.push(`import cycle: ${cyc.join(" → ")}`);
    } else if (!colour.get(d)) visit(d);
  }
  stack.pop();
  colour.set(f, 2);
};
for (const f of graph.keys()) if (!colour.get(f)) visit(f);

if (problems.length) {
  console.error(`architecture check failed:\n  ${[...new Set(problems)].join("\n  ")}`);
  process.exit(1);
}
console.log(`architecture check: ${files.length} files, no driver leaks, no layer violations, no cycles`);
