/**
 * Typed contracts: declare a service's methods once (TypeScript types, optionally runtime schemas)
 * so that `call()` is checked at compile time and bad params are rejected before the handler runs.
 *
 * ```ts
 * type InventoryApi = {
 *   reserve: { params: { sku: string; qty: number }; result: { ok: boolean } };
 * };
 * export const inventory = defineContract<InventoryApi>("inventory", {
 *   reserve: { params: z.object({ sku: z.string(), qty: z.number().int().positive() }) },
 * });
 * svc.implement(inventory, { reserve: async ({ sku, qty }) => ({ ok: true }) });
 * const r = await svc.call(inventory, "reserve", { sku: "A1", qty: 1 }); // r: { ok: boolean }
 * ```
 *
 * Schemas are any object with a zod-style `safeParse` (zod, valibot adapters…): redmesh does not
 * import zod at run time.
 *
 * @module
 */

/** Anything with a zod-style `safeParse`. */
export interface Schema<T = unknown> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: unknown };
}

/** One method's types. */
export interface MethodTypes {
  params: unknown;
  result: unknown;
}

/** A service API: method name → its types. */
export type Api = Record<string, MethodTypes>;

/** Optional runtime schemas of one method. */
export interface MethodSchemas<M extends MethodTypes = MethodTypes> {
  params?: Schema<M["params"]>;
  result?: Schema<M["result"]>;
  /** Max handler executions in flight on each instance (bulkhead). @default unlimited */
  maxInFlight?: number;
}

/** A declared service API. */
export interface Contract<A extends Api = Api> {
  /** The service that implements it. */
  readonly service: string;
  /** Runtime schemas per method (may be empty). */
  readonly methods: { readonly [K in keyof A]?: MethodSchemas<A[K]> };
  /** Phantom field carrying the types; never set. */
  readonly __api?: A;
}

/** Declare a contract. The type parameter carries the method types; schemas are optional. */
export function defineContract<A extends Api>(
  service: string,
  methods: { [K in keyof A]?: MethodSchemas<A[K]> } = {},
): Contract<A> {
  return Object.freeze({ service, methods: Object.freeze({ ...methods }) }) as Contract<A>;
}

/** Method names of a contract. */
export type MethodOf<C> = C extends Contract<infer A> ? Extract<keyof A, string> : never;
/** Params type of a contract method. */
export type ParamsOf<C, M extends string> = C extends Contract<infer A> ? A[M]["params"] : never;
/** Result type of a contract method. */
export type ResultOf<C, M extends string> = C extends Contract<infer A> ? A[M]["result"] : never;
