#!/usr/bin/env node
// tsc does not copy non-TypeScript files: copy the Lua scripts (and any static dashboard assets)
// from src/ to dist/ at the same relative paths, so `loadScript(name, import.meta.url)` finds them.
import { copyFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const exts = [".lua", ".html", ".css", ".svg"];
let n = 0;
const walk = (d) => {
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) walk(p);
    // Everything under a public/ folder is a static asset (the dashboard's page script included).
    else if (exts.some((e) => name.endsWith(e)) || p.split(/[\\/]/).includes("public")) {
      const out = join("dist", relative("src", p));
      mkdirSync(dirname(out), { recursive: true });
      copyFileSync(p, out);
      n++;
    }
  }
};
walk("src");
console.log(`copied ${n} asset file(s) to dist/`);
