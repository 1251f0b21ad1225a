// Type test (checked by `npm run typecheck`, never run): a wrongly typed contract call must not
// compile. Each `@ts-expect-error` line fails the typecheck if the error it expects disappears.
import { createService, defineContract } from "../../src/index.js";

type InventoryApi = {
  reserve: { params: { sku: string; qty: number }; result: { ok: boolean } };
  stock: { params: { sku: string }; result: number };
};
const inventory = defineContract<InventoryApi>("inventory");
const svc = createService({ name: "orders" });

export async function typeTests(): Promise<void> {
  const r = await svc.call(inventory, "reserve", { sku: "A1", qty: 1 });
  const ok: boolean = r.ok;
  const n: number = await svc.call(inventory, "stock", { sku: "A1" });
  void ok;
  void n;

  // @ts-expect-error unknown method
  await svc.call(inventory, "reserv", { sku: "A1", qty: 1 });
  // @ts-expect-error wrong param type
  await svc.call(inventory, "reserve", { sku: "A1", qty: "1" });
  // @ts-expect-error missing param
  await svc.call(inventory, "reserve", { sku: "A1" });
  // @ts-expect-error wrong result type
  const bad: string = await svc.call(inventory, "stock", { sku: "A1" });
  void bad;

  svc.implement(inventory, {
    reserve: async ({ qty }) => ({ ok: qty > 0 }),
    stock: () => 3,
  });
  svc.implement(inventory, {
    reserve: async () => ({ ok: true }),
    // @ts-expect-error handler returns the wrong result type
    stock: () => "three",
  });
}
