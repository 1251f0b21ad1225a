/**
 * JSON parsing for anything that arrives from Redis or the network: messages, snapshots, log
 * entries, config versions, HTTP bodies.
 *
 * @module
 */

/**
 * Parse JSON without prototype pollution: `__proto__` keys and object-valued `constructor` keys are
 * removed at any depth. The walk is iterative, so deep nesting cannot overflow the stack, and it only
 * runs when the text contains one of the two words (the common case costs one `includes`).
 */
export function safeJsonParse(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (text.includes("__proto__") || text.includes("constructor")) scrub(value);
  return value;
}

function scrub(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === "object" && x !== null) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    if (Object.hasOwn(o, "__proto__")) Reflect.deleteProperty(o, "__proto__");
    if (Object.hasOwn(o, "constructor") && typeof o.constructor === "object")
      Reflect.deleteProperty(o, "constructor");
    for (const k of Object.keys(o)) {
      const x = o[k];
      if (typeof x === "object" && x !== null) stack.push(x);
    }
  }
}
