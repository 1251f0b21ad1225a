/**
 * The inventory service: stock counts shared by all its instances (a Redis hash, so any instance
 * can answer), reservations over RPC, a stock route for the gateway, and a live setting.
 *
 * - RPC `reserve {sku, qty}` → `{reserved, left}`; `stock {sku}` → `{sku, available, servedBy}`.
 * - HTTP (through the gateway) `GET /v1/stock/:sku`.
 * - Config `{ lowStockThreshold }` (default 5): a reservation that leaves less than that logs a
 *   warning. A new config version is picked up live by every instance (`config.on("change")`).
 *
 * Run: `tsx examples/services/inventory.ts` (REDIS_URL, REDMESH_NAMESPACE).
 */
import { ValidationError } from "../../src/index.js";
import { demoService, report, run } from "./common.js";

interface InventoryConfig {
  lowStockThreshold: number;
}

/** What the shop starts with (written once, when the stock hash does not exist yet). */
const INITIAL_STOCK: Record<string, number> = { "sku-lamp": 40, "sku-desk": 12, "sku-chair": 25 };

const svc = demoService<InventoryConfig>("inventory", {
  description: "stock counts and reservations",
  config: {
    defaults: { lowStockThreshold: 5 },
    schema: {
      safeParse: (v) =>
        typeof v === "object" &&
        v !== null &&
        Number.isInteger((v as InventoryConfig).lowStockThreshold) &&
        (v as InventoryConfig).lowStockThreshold >= 0
          ? { success: true, data: v as InventoryConfig }
          : { success: false, error: "lowStockThreshold must be an integer >= 0" },
    },
  },
});
// The stock lives in Redis so that every instance sees the same counts (a demo key of our own, next to
// redmesh's keys in the same namespace).
const stockKey = `${svc.namespace}:demo:stock`;

function checkItem(p: unknown): { sku: string; qty: number } {
  const { sku, qty = 1 } = (p ?? {}) as { sku?: unknown; qty?: unknown };
  if (typeof sku !== "string" || !/^sku-[a-z0-9-]{1,40}$/.test(sku))
    throw new ValidationError(`unknown sku ${JSON.stringify(sku)}`);
  if (typeof qty !== "number" || !Number.isInteger(qty) || qty < 1 || qty > 100)
    throw new ValidationError("qty must be an integer 1..100");
  return { sku, qty };
}

async function available(sku: string): Promise<number> {
  return Number((await svc.redis.command<string | null>(["HGET", stockKey, sku])) ?? 0);
}

svc.handle("stock", async (p) => {
  const { sku } = checkItem(p);
  return { sku, available: await available(sku), servedBy: svc.instanceId };
});

svc.handle("reserve", async (p) => {
  const { sku, qty } = checkItem(p);
  // HINCRBY is atomic; undo when it went below zero (another instance may be reserving too).
  const left = Number(await svc.redis.command(["HINCRBY", stockKey, sku, String(-qty)]));
  if (left < 0) {
    await svc.redis.command(["HINCRBY", stockKey, sku, String(qty)]);
    svc.log.warn("out of stock", { sku, qty });
    return { reserved: false, left: left + qty };
  }
  const { lowStockThreshold } = await svc.config.get();
  if (left < lowStockThreshold) svc.log.warn("low stock", { sku, left, lowStockThreshold });
  else svc.log.info("reserved", { sku, qty, left });
  return { reserved: true, left };
});

await svc.route("[get]/v1/stock/:sku", async (req) => {
  const sku = req.params.sku ?? "";
  const n = await available(sku);
  const { lowStockThreshold } = await svc.config.get();
  return { body: { sku, available: n, low: n < lowStockThreshold, lowStockThreshold } };
});

svc.config.on("change", (_old, value, { version }) => {
  svc.log.info("config changed", { version, lowStockThreshold: value.lowStockThreshold });
  report("inventory", "config-changed", { id: svc.instanceId, version, config: value });
});

// Seed the stock once for the whole namespace (HSETNX: the first instance wins, restarts keep counts).
await run(svc, async () => {
  for (const [sku, n] of Object.entries(INITIAL_STOCK))
    await svc.redis.command(["HSETNX", stockKey, sku, String(n)]);
});
