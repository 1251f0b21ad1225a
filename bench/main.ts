/**
 * Benchmark dispatcher: `npm run bench -- <name> [args…]` runs `bench/<name>.ts`.
 * Each benchmark runs redmesh side by side with its peers against one Redis in one run and prints ratios.
 */
import { readdirSync } from "node:fs";

const [name, ...rest] = process.argv.slice(2);
const available = readdirSync(new URL(".", import.meta.url))
  .filter((f) => f.endsWith(".ts") && f !== "main.ts" && !f.startsWith("_"))
  .map((f) => f.replace(/\.ts$/, ""));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join("|") || "name"}> [options]`);
  process.exit(name ? 2 : 0);
}
process.argv = [process.argv[0] ?? "node", `bench/${name}.ts`, ...rest];
await import(`./${name}.ts`);
