// The gateway in its own process for `bench/gateway.ts`: prints `{ "port": n }` once listening and
// stops when stdin closes.
import { runGateway } from "../src/gateway/index.js";

const [redis, namespace] = process.argv.slice(2);
if (!redis || !namespace) throw new Error("usage: _gateway-child <redisUrl> <namespace>");
const gw = await runGateway({ redis, namespace, port: 0 });
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(`${JSON.stringify({ port: gw.port, routes: gw.routes().length })}\n`);
process.stdin.resume();
process.stdin.on("end", () => {
  void gw.stop().then(() => process.exit(0));
});
