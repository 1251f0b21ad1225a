// A bare reverse proxy (node:http + one undici Pool per upstream, `stream()`, round-robin, no routing, no header
// rewriting, no metrics) for `bench/gateway.ts`: the floor of what one extra Node.js hop costs.
// Prints `{ "port": n }` once listening; exits when stdin closes.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";

const ports = process.argv.slice(2).map(Number);
const pools = ports.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128 }));
let i = 0;
const server = createServer((req, res) => {
  const pool = pools[i++ % pools.length] as Pool;
  pool
    .stream(
      { path: req.url ?? "/", method: (req.method ?? "GET") as "GET", headers: { accept: "*/*" } },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, { "content-type": String(headers["content-type"] ?? "") });
        return res;
      },
    )
    .catch(() => {
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(502);
        res.end();
      }
    });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.stdin.resume();
process.stdin.on("end", () => {
  server.close();
  for (const p of pools) void p.close();
  process.exit(0);
});
