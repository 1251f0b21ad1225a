#!/usr/bin/env node
// Runs the whole suite with node's test runner (through tsx, so tests are TypeScript) and ends with a
// plain "N passed, N failed, N skipped" line that CI reads. Arguments narrow the files run
// (substring match), e.g. `npm test -- registry`.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = ["test"];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.ts")) files.push(p);
  }
};
for (const r of roots) walk(r);
const filters = process.argv.slice(2);
const selected = files.sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (selected.length === 0) {
  console.error(`no test files match ${filters.join(", ")}`);
  process.exit(2);
}
mkdirSync(".tmp", { recursive: true });
const tap = ".tmp/test-report.tap";
const res = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
    "--test-timeout=120000",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    "--test-reporter=tap",
    `--test-reporter-destination=${tap}`,
    ...selected,
  ],
  { stdio: "inherit" },
);
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const text = readFileSync(tap, "utf8");
  // The last summary block of the TAP report has the totals.
  const num = (k) => {
    const all = [...text.matchAll(new RegExp(`^# ${k} (\\d+)$`, "gm"))];
    return all.length ? Number(all[all.length - 1][1]) : 0;
  };
  passed = num("pass");
  failed = num("fail") + num("cancelled");
  skipped = num("skipped") + num("todo");
} catch {
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(res.status === 0 && failed === 0 ? 0 : 1);
