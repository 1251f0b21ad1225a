// The architecture check (scripts/check-architecture.mjs, run by `npm run lint`) passes on src/ and
// fails on a copy of src/ with one wrong import of each kind it forbids.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const script = join(process.cwd(), "scripts", "check-architecture.mjs");
const check = (root?: string) =>
  spawnSync(process.execPath, [script, ...(root ? ["--root", root] : [])], { encoding: "utf8" });

describe("architecture check", () => {
  const dirs: string[] = [];
  const copyOfSrc = () => {
    const dir = mkdtempSync(join(tmpdir(), "redmesh-arch-"));
    dirs.push(dir);
    cpSync(join(process.cwd(), "src"), dir, { recursive: true });
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("passes on src/", () => {
    const r = check();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /architecture check: \d+ files/);
  });

  it("fails on an import from a higher layer", () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, "registry", "discovery.ts"), '\nimport "../rpc/index.js";\n');
    const r = check(dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /registry\/discovery\.ts: imports rpc\/index\.ts from a higher layer/);
  });

  it("fails on an import of a peer of the same layer", () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, "health", "health.ts"), '\nimport "../config/index.js";\n');
    const r = check(dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /health\/health\.ts: imports its peer config/);
  });

  it("fails on an import that reaches past a folder's index.ts", () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, "rpc", "index.ts"), '\nexport type { Instance } from "../registry/types.js";\n');
    const r = check(dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /rpc\/index\.ts: reaches into registry\/types\.ts/);
  });

  it("fails on a driver import outside src/redis/, a key built elsewhere, a cycle and an unplaced folder", () => {
    const dir = copyOfSrc();
    appendFileSync(
      join(dir, "queue", "job.ts"),
      '\nimport "@redis/client";\nconst k = "x:service:" + String(1);\n',
    );
    writeFileSync(join(dir, "json.ts"), 'import "./async.js";\nexport {};\n');
    writeFileSync(join(dir, "async.ts"), 'import "./json.js";\nexport {};\n');
    writeFileSync(join(dir, "extras.ts"), "export const x = 1;\n");
    const r = check(dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /queue\/job\.ts: imports the Redis driver/);
    assert.match(r.stderr, /queue\/job\.ts: builds a key name/);
    assert.match(r.stderr, /import cycle: /);
    assert.match(r.stderr, /extras\.ts: belongs to no unit of the picture/);
  });
});
