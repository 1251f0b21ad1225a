#!/usr/bin/env node
// The architecture check `npm run lint` runs (docs/architecture.md draws the same picture):
//  1. every file of src/ belongs to a unit of PICTURE (a root file or a folder);
//  2. a unit imports only units of lower rank, never a peer of its own rank nor anything above;
//  3. an import into another folder goes through that folder's index.ts (no reaching into its files);
//  4. only src/redis/ imports the Redis driver;
//  5. only src/keys.ts builds key names (no literal ":service:" fragments elsewhere);
//  6. no import cycles among src/ modules.
// `--root <dir>` checks another tree (the test that proves this check fails on a bad import uses it).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** Units from the bottom up; units in one inner list are peers (they may not import each other). */
export const PICTURE = [
  ["json.ts", "errors.ts", "logger.ts", "async.ts", "context.ts"],
  ["keys.ts", "lifecycle.ts"],
  ["envelope"],
  ["redis"],
  ["registry"],
  ["health", "security", "config"],
  ["log", "queue"],
  ["balancer"],
  ["messaging"],
  ["rpc"],
  ["service-options.ts"],
  ["service.ts"],
  ["dashboard"],
  ["gateway"],
  ["cli"],
  ["index.ts"],
];

const argRoot = process.argv.indexOf("--root");
const root = resolve(argRoot >= 0 ? process.argv[argRoot + 1] : "src");

const rank = new Map();
PICTURE.forEach((peers, i) => {
  for (const u of peers) rank.set(u, i);
});

const files = [];
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith(".ts")) files.push(p);
  }
};
walk(root);

/** The unit of a file: its top folder under src/, or the root file itself. */
const unitOf = (f) => relative(root, f).split(sep)[0];
const isFolderUnit = (u) => !u.endsWith(".ts");

const problems = [];
const graph = new Map();
const IMPORT = /^\s*(?:import|export)\s(?:[^;]*?from\s+)?"([^"]+)"/gms;
const DYNAMIC = /\bimport\(\s*"([^"]+)"\s*\)/g;
for (const f of files) {
  const text = readFileSync(f, "utf8");
  const rel = relative(root, f).replaceAll("\\", "/");
  const unit = unitOf(f);
  if (!rank.has(unit)) problems.push(`${rel}: belongs to no unit of the picture (add "${unit}" to PICTURE)`);
  const deps = [];
  const specs = [...text.matchAll(IMPORT), ...text.matchAll(DYNAMIC)].map((m) => m[1]);
  for (const spec of specs) {
    if (/^(@redis\/|redis$|ioredis$)/.test(spec) && unit !== "redis") {
      problems.push(`${rel}: imports the Redis driver "${spec}" (only src/redis/ may)`);
    }
    if (!spec.startsWith(".")) continue;
    const target = resolve(dirname(f), spec.replace(/\.js$/, ".ts"));
    deps.push(target);
    const tu = unitOf(target);
    if (tu === unit) continue;
    const trel = relative(root, target).replaceAll("\\", "/");
    if (!rank.has(tu)) {
      problems.push(`${rel}: imports ${trel}, outside the picture`);
      continue;
    }
    if (rank.get(tu) > rank.get(unit)) problems.push(`${rel}: imports ${trel} from a higher layer (${tu})`);
    else if (rank.get(tu) === rank.get(unit)) problems.push(`${rel}: imports its peer ${tu} (same layer)`);
    if (isFolderUnit(tu) && trel !== `${tu}/index.ts`) {
      problems.push(`${rel}: reaches into ${trel} (import "${tu}/index.js" instead)`);
    }
  }
  graph.set(f, deps);
  if (rel !== "keys.ts" && /[`"']\$?\{?[^`"']*:service:/.test(text.replace(/^\s*(\/\/|\*).*$/gm, ""))) {
    problems.push(`${rel}: builds a key name with ":service:" (only src/keys.ts may)`);
  }
}
// Cycle detection (DFS with colours), within units too.
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
console.log(
  `architecture check: ${files.length} files in ${PICTURE.flat().length} units, imports downward and through index.ts, no driver leaks, no cycles`,
);
