#!/usr/bin/env node
// Runs the whole suite with node's test runner (through tsx, so tests are TypeScript) and ends with a
// plain "N passed, N failed, N skipped" line that CI reads. Arguments narrow the files run
// (substring match), e.g. `npm test -- registry`.
//
// A full run (no arguments, as in CI) first runs `npm run lint`, `npm run typecheck` and
// `npm run check:docs`, each counted as one test in the final line, so that the README's test command
// checks everything the repository promises. A narrowed run skips them.
//
// The topology matrix: after the normal pass (every file, on standalone servers), the matrix suites
// (registry, messaging/RPC, queue, log, config) run once more per topology named in REDMESH_TEST_MATRIX
// (comma-separated; default "cluster,sentinel"; "none" for no extra pass), with REDMESH_TEST_TOPOLOGY
// set so test/helpers/topology.ts starts a real local Cluster / Sentinel set-up per file. The final line
// sums every pass.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = ["test"];
/** The suites that run unchanged on every topology. */
const MATRIX_FILES = ["registry", "rpc", "rpc-faults", "queue", "queue-crash", "log", "config"].map((n) =>
  join("test", "integration", `${n}.test.ts`),
);
const TOPOLOGIES = ["cluster", "sentinel"];

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
const matrixEnv = process.env.REDMESH_TEST_MATRIX ?? TOPOLOGIES.join(",");
const matrix =
  matrixEnv === "none"
    ? []
    : matrixEnv
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean);
for (const t of matrix) {
  if (!TOPOLOGIES.includes(t)) {
    console.error(`REDMESH_TEST_MATRIX: unknown topology "${t}" (use ${TOPOLOGIES.join(", ")} or none)`);
    process.exit(2);
  }
}
mkdirSync(".tmp", { recursive: true });

/** Run one pass; returns its counts from its TAP report. */
function pass(label, passFiles, topology) {
  // One report per run and pass: runs started side by side (several checkouts' sessions) never mix.
  const tap = `.tmp/test-report-${process.pid}-${topology}.tap`;
  rmSync(tap, { force: true });
  if (topology !== "standalone") console.log(`\n# topology matrix: ${passFiles.length} suites on ${label}\n`);
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
      ...passFiles,
    ],
    { stdio: "inherit", env: { ...process.env, REDMESH_TEST_TOPOLOGY: topology } },
  );
  const counts = { passed: 0, failed: 0, skipped: 0 };
  try {
    const text = readFileSync(tap, "utf8");
    // The last summary block of the TAP report has the totals.
    const num = (k) => {
      const all = [...text.matchAll(new RegExp(`^# ${k} (\\d+)$`, "gm"))];
      return all.length ? Number(all[all.length - 1][1]) : 0;
    };
    counts.passed = num("pass");
    counts.failed = num("fail") + num("cancelled");
    counts.skipped = num("skipped") + num("todo");
  } catch {
    counts.failed = 1;
  }
  rmSync(tap, { force: true });
  if (res.status !== 0) counts.failed = Math.max(counts.failed, 1);
  return { label, ...counts };
}

/** The package scripts a full run checks first. */
const CHECKS = ["lint", "typecheck", "check:docs"];

/** Run one package script; it counts as one passed or failed test. */
function check(script) {
  console.log(`\n# check: npm run ${script}\n`);
  const t0 = Date.now();
  const res = spawnSync("npm", ["run", script], { stdio: "inherit" });
  const ok = res.status === 0;
  const why = res.error ? ` (${res.error.message})` : "";
  console.log(
    `# check: npm run ${script} ${ok ? "ok" : "FAILED"}${why} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { label: `npm run ${script}`, passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0 };
}

const checks = filters.length === 0 ? CHECKS.map(check) : [];
const results = [pass("standalone", selected, "standalone")];
const matrixSelected = selected.filter((f) => MATRIX_FILES.includes(f));
if (matrixSelected.length > 0) for (const t of matrix) results.push(pass(t, matrixSelected, t));

const total = { passed: 0, failed: 0, skipped: 0 };
for (const r of [...checks, ...results]) {
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
}
if (results.length > 1 || checks.length > 0) {
  console.log("");
  if (checks.length > 0)
    console.log(`# checks: ${checks.map((c) => `${c.label} ${c.failed ? "FAILED" : "ok"}`).join(", ")}`);
  for (const r of results)
    console.log(`# ${r.label}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
}
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed === 0 ? 0 : 1);
