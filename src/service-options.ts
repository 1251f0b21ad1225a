/**
 * Validation of `createService` options by hand (no schema library at run time: importing zod costs
 * ≈ 10 MiB of RSS in every service process, and an idle service must stay small).
 *
 * @module
 */

import { ErrorCode, ValidationError } from "./errors.js";

const DAY_MS = 86_400_000;

type Check = (v: unknown) => string | undefined;

const str =
  (max?: number): Check =>
  (v) =>
    typeof v !== "string"
      ? `expected a string, got ${typeName(v)}`
      : max !== undefined && v.length > max
        ? `must be at most ${max} characters`
        : undefined;
const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v !== "number" || !Number.isInteger(v)
      ? `expected an integer, got ${typeName(v)}`
      : v < min || v > max
        ? `must be between ${min} and ${max}`
        : undefined;
const bool: Check = (v) => (typeof v === "boolean" ? undefined : `expected a boolean, got ${typeName(v)}`);
const any: Check = () => undefined;
const secret: Check = (v) =>
  typeof v === "string" || Buffer.isBuffer(v)
    ? (v as string | Buffer).length === 0
      ? "must not be empty"
      : undefined
    : `expected a string or Buffer, got ${typeName(v)}`;
const picker: Check = (v) =>
  typeof v === "object" && v !== null && typeof (v as { pick?: unknown }).pick === "function"
    ? undefined
    : "expected an object with a pick(candidates, ctx) method";
const ms = (min: number) => int(min, DAY_MS);

/** Every option and its check (options not listed here are rejected as unknown). */
const CHECKS: Record<string, Check> = {
  name: str(),
  redis: any,
  namespace: str(),
  version: str(64),
  description: str(1024),
  type: str(64),
  ip: str(64),
  port: int(0, 65535),
  hostName: str(255),
  instanceId: str(),
  presenceTtlMs: ms(100),
  heartbeatMs: ms(20),
  healthIntervalMs: ms(100),
  reconcileMs: ms(20),
  hydraInterop: bool,
  stopGraceMs: ms(0),
  connectTimeoutMs: ms(1),
  logger: any,
  secret,
  requireSignature: bool,
  replayWindowMs: ms(0),
  maxMessageBytes: int(256, 512 * 1024 * 1024),
  rpcTimeoutMs: ms(1),
  picker,
  balancer: (v) =>
    typeof v === "string" || (typeof v === "object" && v !== null && !Array.isArray(v))
      ? undefined
      : "must be a strategy name or balancer options",
  coalesce: bool,
  log: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be an object"),
  config: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be an object"),
};

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && Number.isNaN(v)) return "NaN";
  return typeof v;
}

/**
 * Check `createService` options; throws one `ValidationError` (`ERR_INVALID_OPTIONS`) listing every
 * problem, e.g. `invalid service options: port: must be between 0 and 65535; colour: unknown option`.
 */
export function checkServiceOptions(options: unknown): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValidationError("invalid service options: expected an object", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  const o = options as Record<string, unknown>;
  const problems: string[] = [];
  if (o.name === undefined) problems.push("name: required");
  for (const key of Object.keys(o)) {
    const check = CHECKS[key];
    if (!check) {
      problems.push(`${key}: unknown option`);
      continue;
    }
    const v = o[key];
    if (v === undefined) continue;
    const p = check(v);
    if (p) problems.push(`${key}: ${p}`);
  }
  if (o.requireSignature === true && o.secret === undefined) {
    problems.push("requireSignature: needs a secret");
  }
  if (problems.length > 0) {
    throw new ValidationError(`invalid service options: ${problems.join("; ")}`, {
      code: ErrorCode.INVALID_OPTIONS,
      data: { problems },
    });
  }
}
