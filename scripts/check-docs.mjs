#!/usr/bin/env node
// The docs check `npm run check:docs` runs (and a full `npm test`): every ```ts block of README.md and
// docs/*.md is written to its own module under .tmp/docs-check/ and all of them are typechecked by ONE run of
// the project's `tsc` (TypeScript 7 has no compiler API), with "redmesh" and its subpaths mapped to src/.
//
// Markers, HTML comments starting a line right before a block (blank lines between are allowed):
//   <!-- ts-check-prelude: declare const svc: import("redmesh").Service; -->   hidden code put before the block
//   <!-- ts-check: skip (pseudo-code) -->   the block is not meant to compile; the reason is required
// and, anywhere in a doc, hidden code put before every block of that doc:
//   <!-- ts-check-doc-prelude: declare const svc: import("redmesh").Service; -->
// Arguments narrow the docs checked, e.g. `node scripts/check-docs.mjs docs/rpc.md`; `--keep` leaves the
// generated files in place.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
/** The entry points a doc may import, as the package's `exports` map names them. */
const ENTRIES = {
  redmesh: "src/index.ts",
  "redmesh/gateway": "src/gateway/index.ts",
  "redmesh/log": "src/log/index.ts",
  "redmesh/dashboard": "src/dashboard/index.ts",
};

const args = process.argv.slice(2);
const keep = args.includes("--keep");
const named = args.filter((a) => !a.startsWith("--"));
const docs =
  named.length > 0
    ? named.map((p) => relative(ROOT, resolve(p)))
    : [
        "README.md",
        ...readdirSync(join(ROOT, "docs"))
          .filter((n) => n.endsWith(".md"))
          .sort()
          .map((n) => join("docs", n)),
      ];

const FENCE = /^(\s*)```(\S*)\s*$/;
// A marker is an HTML comment that starts its line: one quoted in a sentence or a code span is not.
const MARKER = /^[ \t]*<!--\s*(ts-check-doc-prelude|ts-check-prelude|ts-check)\s*:([\s\S]*?)-->/gm;

/** 1-based line of a character offset. */
const lineAt = (text, offset) => text.slice(0, offset).split("\n").length;

/**
 * The ```ts blocks of one doc with their markers.
 * @returns {{ blocks: Array<{ line: number, code: string[], prelude: Array<{ line: number, code: string }>, skip?: string }>, problems: string[] }}
 */
function parseDoc(doc) {
  const text = readFileSync(join(ROOT, doc), "utf8");
  const lines = text.split("\n");
  const problems = [];
  /** Markers by the line their comment ends on. */
  const markers = [];
  for (const m of text.matchAll(MARKER)) {
    const body = m[2].trim();
    const bodyStart = m.index + m[0].indexOf(":") + 1 + (m[2].length - m[2].trimStart().length);
    markers.push({
      kind: m[1],
      body,
      line: lineAt(text, m.index),
      bodyLine: lineAt(text, bodyStart),
      endLine: lineAt(text, m.index + m[0].length),
    });
  }
  const docPrelude = markers
    .filter((m) => m.kind === "ts-check-doc-prelude")
    .map((m) => ({ line: m.bodyLine, code: m.body }));
  const used = new Set();
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, lang] = open;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end])) end++;
    if (lang === "ts" || lang === "typescript") {
      // Markers of this block: comments ending on the lines just above the fence, blank lines allowed.
      let above = i; // 1-based line number of the line just above the fence
      const own = [];
      for (;;) {
        while (above >= 1 && lines[above - 1].trim() === "") above--;
        const m = markers.find((x) => x.endLine === above && x.kind !== "ts-check-doc-prelude");
        if (!m || !lines[above - 1].trim().endsWith("-->")) break;
        own.unshift(m);
        used.add(m);
        above = m.line - 1;
      }
      const block = {
        line: i + 1,
        // A block inside a list item is indented: strip the fence's indentation.
        code: lines
          .slice(i + 1, end)
          .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart())),
        prelude: [...docPrelude],
      };
      for (const m of own) {
        if (m.kind === "ts-check-prelude") block.prelude.push({ line: m.bodyLine, code: m.body });
        else {
          const skip = /^skip\s*\((.+)\)$/.exec(m.body);
          if (skip) block.skip = skip[1].trim();
          else
            problems.push(
              `${doc}:${m.line}: expected "ts-check: skip (<reason>)", got "ts-check: ${m.body}"`,
            );
        }
      }
      blocks.push(block);
    }
    i = end;
  }
  for (const m of markers) {
    if (m.kind !== "ts-check-doc-prelude" && !used.has(m))
      problems.push(`${doc}:${m.line}: a ${m.kind} marker that no \`\`\`ts block follows`);
  }
  return { blocks, problems };
}

const outDir = join(ROOT, ".tmp", "docs-check", String(process.pid));
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

/** Generated file name → how to map its lines back to the doc. */
const sources = new Map();
const problems = [];
const summary = [];
for (const doc of docs) {
  if (!existsSync(join(ROOT, doc))) {
    problems.push(`${doc}: no such file`);
    continue;
  }
  const parsed = parseDoc(doc);
  problems.push(...parsed.problems);
  let compiled = 0;
  const skipped = [];
  parsed.blocks.forEach((block, n) => {
    if (block.skip !== undefined) {
      skipped.push(`line ${block.line}: ${block.skip}`);
      return;
    }
    compiled++;
    // docs/rpc.md's second block → docs-rpc-2.ts
    const name = `${doc.replace(/\.md$/, "").replace(/[\\/]/g, "-")}-${n + 1}.ts`;
    /** Doc line of each generated line (index 0 = generated line 1). */
    const origin = [];
    const out = [];
    for (const p of block.prelude) {
      p.code.split("\n").forEach((l, k) => {
        out.push(l);
        origin.push(p.line + k);
      });
    }
    block.code.forEach((l, k) => {
      out.push(l);
      origin.push(block.line + 1 + k);
    });
    // Every block is a module of its own (top-level await, no clashes between blocks' names).
    out.push("export {};");
    origin.push(block.line);
    writeFileSync(join(outDir, name), `${out.join("\n")}\n`);
    sources.set(name, { doc, block: block.line, origin });
  });
  summary.push({ doc, compiled, skipped });
}

const fromOut = (p) => relative(outDir, join(ROOT, p)).split("\\").join("/");
writeFileSync(
  join(outDir, "tsconfig.json"),
  `${JSON.stringify(
    {
      extends: fromOut("tsconfig.json"),
      compilerOptions: {
        noEmit: true,
        paths: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, [fromOut(v)]])),
      },
      files: [...sources.keys()],
    },
    null,
    2,
  )}\n`,
);

let failed = problems.length > 0;
let tscOutput = "";
if (sources.size > 0) {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const res = spawnSync(process.execPath, [tsc, "-p", join(outDir, "tsconfig.json"), "--pretty", "false"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  tscOutput = `${res.stdout ?? ""}${res.stderr ?? ""}`;
  if (res.error) {
    problems.push(`could not run tsc: ${res.error.message}`);
    failed = true;
  } else if (res.status !== 0) {
    failed = true;
  }
}

/** Error counts by doc, and the messages with their doc line; errors in src/ itself apart. */
const errorsByDoc = new Map();
const messages = [];
const outside = [];
let last = messages;
for (const raw of tscOutput.split("\n")) {
  const m = /^(.+?)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(raw);
  if (!m) {
    // A continuation line of the previous message (an elaborated type error), or tsc's own output.
    if (raw.trim() !== "") last.push(raw.startsWith(" ") ? raw : `  ${raw}`);
    continue;
  }
  const [, file, line, col, msg] = m;
  const abs = resolve(ROOT, file);
  const src = dirname(abs) === outDir ? sources.get(basename(abs)) : undefined;
  if (!src) {
    // `npm run typecheck` reports it too, but until it is fixed the docs' blocks are not checked against src/.
    outside.push(`${relative(ROOT, abs)}:${line}:${col}: ${msg}`);
    last = outside;
    continue;
  }
  const docLine = src.origin[Number(line) - 1] ?? src.block;
  errorsByDoc.set(src.doc, (errorsByDoc.get(src.doc) ?? 0) + 1);
  messages.push(`${src.doc}:${docLine}:${col} (block at line ${src.block}): ${msg}`);
  last = messages;
}

for (const s of summary) {
  if (s.compiled + s.skipped.length === 0) continue;
  const errors = errorsByDoc.get(s.doc);
  const tail = errors ? `, ${errors} type error${errors === 1 ? "" : "s"}` : "";
  console.log(`${s.doc}: ${s.compiled} compiled, ${s.skipped.length} skipped${tail}`);
  for (const why of s.skipped) console.log(`  skipped ${why}`);
}
const compiledTotal = summary.reduce((a, s) => a + s.compiled, 0);
const skippedTotal = summary.reduce((a, s) => a + s.skipped.length, 0);
// One stream, so that the messages come out in this order wherever the output goes.
for (const p of problems) console.log(p);
for (const m of messages) console.log(m);
if (outside.length > 0) {
  console.log("type errors outside the docs (npm run typecheck reports them too):");
  for (const m of outside) console.log(`  ${m}`);
}
if (!keep) {
  rmSync(outDir, { recursive: true, force: true });
  // The shared parent goes too, unless another run is using it.
  if (readdirSync(dirname(outDir)).length === 0) rmSync(dirname(outDir), { recursive: true, force: true });
} else console.log(`generated files kept in ${relative(ROOT, outDir)}`);
const empty = summary.filter((s) => s.compiled + s.skipped.length === 0).length;
console.log(
  `docs check: ${compiledTotal} blocks compiled, ${skippedTotal} skipped (${summary.length} docs, ${empty} without ts blocks), ${failed ? "FAILED" : "ok"}`,
);
process.exit(failed ? 1 : 0);
