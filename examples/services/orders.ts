/**
 * The orders service: the shop's front door, answering HTTP through the gateway over RPC (it runs no
 * HTTP server of its own).
 *
 * - `POST /v1/orders {sku, qty}`: reserves the stock with an RPC to `inventory.reserve`, then queues an
 *   `invoice` job for billing; answers 201 with the order and a `Server-Timing` header (RPC and queue
 *   times), or 409 when the stock is short.
 * - `GET /v1/orders/:id`, `GET /v1/orders` (the latest 20).
 * - RPC `invoiced {orderId, invoiceId}`: billing's callback once the invoice exists.
 *
 * Orders are kept in memory: the demo runs one orders instance. Run: `tsx examples/services/orders.ts`.
 */
import { randomUUID } from "node:crypto";
import { ValidationError } from "../../src/index.js";
import { demoService, run } from "./common.js";

/** An invoice job, as billing's `invoices` queue receives it. */
export interface InvoiceJob {
  orderId: string;
  sku: string;
  qty: number;
  amountCents: number;
}

interface Order {
  id: string;
  sku: string;
  qty: number;
  amountCents: number;
  status: "confirmed" | "invoiced";
  invoiceId?: string;
  createdAt: string;
}

/** Unit prices in cents (a real shop would ask a catalogue service). */
const PRICES: Record<string, number> = { "sku-lamp": 3900, "sku-desk": 24900, "sku-chair": 8900 };

const svc = demoService("orders", { description: "places orders: reserves stock, queues invoices" });
const orders = new Map<string, Order>();
// Billing's queue, bound from here to produce for it.
const invoices = svc.queue<InvoiceJob>("invoices", { service: "billing" });

await svc.route("[post]/v1/orders", async (req) => {
  const { sku, qty = 1 } = (req.body ?? {}) as { sku?: unknown; qty?: unknown };
  if (typeof sku !== "string" || PRICES[sku] === undefined)
    throw new ValidationError(`unknown sku ${JSON.stringify(sku)}: one of ${Object.keys(PRICES).join(", ")}`);
  if (typeof qty !== "number" || !Number.isInteger(qty) || qty < 1 || qty > 100)
    throw new ValidationError("qty must be an integer 1..100");

  const t0 = performance.now();
  const r = await svc.call<{ reserved: boolean; left: number }>("inventory", "reserve", { sku, qty });
  const reserveMs = performance.now() - t0;
  if (!r.reserved) {
    svc.log.warn("order refused: out of stock", { sku, qty, left: r.left });
    return { status: 409, body: { error: { code: "OUT_OF_STOCK", message: `only ${r.left} ${sku} left` } } };
  }
  const order: Order = {
    id: `ord-${randomUUID().slice(0, 8)}`,
    sku,
    qty,
    amountCents: qty * (PRICES[sku] ?? 0),
    status: "confirmed",
    createdAt: new Date().toISOString(),
  };
  orders.set(order.id, order);
  const t1 = performance.now();
  await invoices.add({ orderId: order.id, sku, qty, amountCents: order.amountCents });
  const queueMs = performance.now() - t1;
  svc.log.info("order placed", { order: order.id, sku, qty, stockLeft: r.left });
  return {
    status: 201,
    headers: {
      location: `/v1/orders/${order.id}`,
      "server-timing": `reserve;dur=${reserveMs.toFixed(2)}, queue;dur=${queueMs.toFixed(2)}`,
    },
    body: order,
  };
});

await svc.route("[get]/v1/orders/:id", (req) => {
  const order = orders.get(req.params.id ?? "");
  return order
    ? { body: order }
    : { status: 404, body: { error: { code: "NOT_FOUND", message: "no such order" } } };
});

await svc.route("[get]/v1/orders", () => ({ body: [...orders.values()].slice(-20).reverse() }));

svc.handle("invoiced", (p) => {
  const { orderId, invoiceId } = (p ?? {}) as { orderId?: string; invoiceId?: string };
  const order = orders.get(orderId ?? "");
  if (!order || typeof invoiceId !== "string") throw new ValidationError(`no order ${orderId}`);
  order.status = "invoiced";
  order.invoiceId = invoiceId;
  return { ok: true };
});

await run(svc);
