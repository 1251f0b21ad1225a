/**
 * Versioned configuration of a service, shared by all its instances (`svc.config`).
 *
 * Storage is Hydra's: the `<ns>:service:<svc>:configs` hash maps a version label to the config JSON,
 * so with namespace `hydra` Hydra's `getConfig("svc:1.0.2")` / `putConfig` and `hydra-cli cfg
 * push/pull` work on the same data. redmesh adds the active-version pointer (`keys.configActive`):
 * `set()` writes a new version and points at it in one Lua step, `rollback()` points back at an old
 * one. When no pointer exists (only Hydra wrote configs) the highest version, in natural order
 * (`1.10` > `1.9`), is the active one.
 *
 * Every change is announced as a registry event `{t:"config", svc, version}` on `keys.events()`;
 * each started client re-reads the active version and emits `change` (old, new). After a reconnect
 * it re-reads too, because events may have been missed.
 *
 * The schema is anything with zod's `safeParse` (zod itself is not imported here: it stays out of
 * the idle footprint unless the application uses it).
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { ConfigError, ErrorCode, type RedmeshError, ValidationError } from "../errors.js";
import { safeJsonParse } from "../json.js";
import { assertServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { loadScript, type RedisLike } from "../redis/index.js";

const setScript = loadScript("config-set", import.meta.url);
const activateScript = loadScript("config-activate", import.meta.url);
const readScript = loadScript("config-read", import.meta.url);

/** Anything with zod's `safeParse` contract (a zod schema, or a hand-written validator). */
export interface ConfigSchema<T> {
  safeParse(data: unknown): { success: true; data: T } | { success: false; error: unknown };
}

/** The `config` option of `createService`. */
export interface ConfigOptions<C> {
  /** Validates every config before it is stored or applied. */
  schema?: ConfigSchema<C>;
  /** Used when Redis holds no config for the service (validated by the schema at construction). */
  defaults?: C;
}

/** Options of {@link createConfigClient}. */
export interface ConfigClientOptions<C> extends ConfigOptions<C> {
  /** Connection (a service's, or any other one: the CLI sets other services' configs). */
  redis: RedisLike;
  keys: Keys;
  /** Service whose config this is. */
  service: string;
  /** pino-compatible logger for diagnostics. @default silent */
  logger?: Logger;
  /** Most bytes of one config's JSON. @default 1048576 (1 MiB, the default message size limit) */
  maxBytes?: number;
}

/** One stored version, as {@link ConfigClient.history} returns it. */
export interface ConfigVersion {
  version: string;
  /** The stored config (not validated: it may predate the current schema). */
  value: unknown;
  /** True for the active version. */
  active: boolean;
}

/** Where the current config came from. */
export const ConfigSource = {
  /** Stored in Redis. */
  REDIS: "redis",
  /** The defaults given to the client (nothing stored yet). */
  DEFAULTS: "defaults",
} as const;
/** Union of config sources. */
export type ConfigSourceValue = (typeof ConfigSource)[keyof typeof ConfigSource];

/** Details passed with a `change` event. */
export interface ConfigChange {
  /** The new active version (`undefined`: back to the defaults). */
  version: string | undefined;
  /** The previous active version (`undefined`: it was the defaults or nothing). */
  previousVersion: string | undefined;
}

/** Events of a {@link ConfigClient}. */
export interface ConfigEvents<C> {
  /** The active config changed (set, rollback, or seen from another instance). */
  change: [oldValue: C | undefined, newValue: C, change: ConfigChange];
  /** Redis holds no config for the service: the defaults are in use. */
  defaults: [value: C | undefined];
  /** The active config in Redis failed this instance's schema: the previous one stays in use. */
  invalid: [error: ValidationError, version: string];
  /** A non-fatal error (a reload failed); emitted only when someone listens. */
  error: [RedmeshError];
}

/** Options of {@link ConfigClient.set}. */
export interface SetConfigOptions {
  /** Version label (no `:`; Hydra labels are `svc:version`). @default the highest version bumped (`1.0.9` → `1.0.10`), or `"1"` */
  version?: string;
  /** Only apply if this is the active version now (`null`: only if none is active). Else `ERR_CONFIG_CONFLICT`. */
  ifVersion?: string | null;
}

/** Version labels: what Hydra accepts in `svc:version` (no `:`), kept printable and short. */
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Compare version labels in natural order (`1.9` < `1.10`, `2` < `10`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = x.replace(/^0+/, "").length - y.replace(/^0+/, "").length;
      if (d !== 0) return d;
      const c = x.replace(/^0+/, "").localeCompare(y.replace(/^0+/, ""));
      if (c !== 0) return c;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The version after `highest`: its last number plus one (`1.0.9` → `1.0.10`), or `"1"`. */
export function nextVersion(highest: string | undefined): string {
  if (highest === undefined) return "1";
  const m = /^(.*?)(\d+)(\D*)$/.exec(highest);
  if (!m) return `${highest}.1`;
  return `${m[1]}${BigInt(m[2] as string) + 1n}${m[3]}`;
}

/** Describe a schema failure with the schema's own words (zod issues: `path: message`). */
export function schemaMessage(error: unknown): string {
  const issues = (error as { issues?: unknown })?.issues;
  if (Array.isArray(issues) && issues.length > 0) {
    return issues
      .map((i: { path?: unknown; message?: unknown }) => {
        const path = Array.isArray(i.path) && i.path.length > 0 ? i.path.map(String).join(".") : "(root)";
        return `${path}: ${String(i.message)}`;
      })
      .join("; ");
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

function assertVersion(v: unknown): asserts v is string {
  if (typeof v !== "string" || !VERSION_RE.test(v)) {
    throw new ValidationError(
      `invalid config version ${JSON.stringify(v)}: use 1-64 characters of letters, digits, ".", "_", "+" or "-" (no ":")`,
      { code: ErrorCode.VALIDATION },
    );
  }
}

/**
 * The config of one service. Reads and writes work without `start()`; `start()` loads the active
 * config and follows changes (emitting `change`), `stop()` stops following.
 */
export class ConfigClient<C = unknown> extends EventEmitter<ConfigEvents<C>> {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #service: string;
  readonly #schema: ConfigSchema<C> | undefined;
  readonly #defaults: C | undefined;
  readonly #logger: Logger;
  readonly #maxBytes: number;
  #started = false;
  #value: C | undefined;
  #version: string | undefined;
  #raw: string | undefined;
  #source: ConfigSourceValue | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;
  readonly #onEvent = (raw: string) => this.#handleEvent(raw);
  readonly #onReady = (info: { reconnect?: boolean } | undefined) => {
    if (info?.reconnect) this.#scheduleReload();
  };

  constructor(options: ConfigClientOptions<C>) {
    super();
    assertServiceName(options.service);
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#service = options.service;
    this.#schema = options.schema;
    this.#logger = options.logger ?? silentLogger;
    this.#maxBytes = options.maxBytes ?? 1_048_576;
    if (this.#schema !== undefined && typeof this.#schema.safeParse !== "function") {
      throw new ValidationError("config schema must have a safeParse() method (e.g. a zod schema)", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#defaults =
      options.defaults === undefined ? undefined : this.#validate(options.defaults, "config defaults");
  }

  /** The service this config belongs to. */
  get service(): string {
    return this.#service;
  }
  /** The config in use (after `start()`), or `undefined` when none is loaded. */
  get current(): C | undefined {
    return this.#value;
  }
  /** The active version in use (`undefined` while the defaults are in use). */
  get version(): string | undefined {
    return this.#version;
  }
  /** Where the config in use came from. */
  get source(): ConfigSourceValue | undefined {
    return this.#source;
  }

  #validate(value: unknown, what: string): C {
    if (!this.#schema) return value as C;
    const r = this.#schema.safeParse(value);
    if (r.success) return r.data;
    throw new ValidationError(
      `${what} for service "${this.#service}" is invalid: ${schemaMessage(r.error)}`,
      {
        data: { service: this.#service },
      },
    );
  }

  /** Load the active config and follow changes. Idempotent. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    try {
      await this.#redis.subscribe(this.#keys.events(), this.#onEvent);
      const emitter = this.#redis as Partial<EventEmitter>;
      if (typeof emitter.on === "function") emitter.on("ready", this.#onReady);
      await this.#reload();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stop following changes (the last config stays readable). Idempotent; never rejects. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    const emitter = this.#redis as Partial<EventEmitter>;
    if (typeof emitter.off === "function") emitter.off("ready", this.#onReady);
    try {
      await this.#redis.unsubscribe(this.#keys.events(), this.#onEvent);
    } catch {
      /* connection already gone: nothing to release */
    }
    await this.#reloading?.catch(() => undefined);
  }

  /**
   * The active config. While started: the one in use (no round trip). Otherwise read from Redis.
   * Falls back to the defaults; rejects with `ERR_CONFIG_NOT_FOUND` when there is neither.
   */
  async get(): Promise<C> {
    if (this.#started && this.#source !== undefined) {
      if (this.#value === undefined) throw this.#notFound();
      return this.#value;
    }
    const active = await this.#readActive();
    if (active)
      return this.#validate(this.#parse(active.json, active.version), `config version ${active.version}`);
    if (this.#defaults !== undefined) return this.#defaults;
    throw this.#notFound();
  }

  #notFound(version?: string): ConfigError {
    return new ConfigError(
      ErrorCode.CONFIG_NOT_FOUND,
      version === undefined
        ? `no config stored for service "${this.#service}" and no defaults given`
        : `config version "${version}" of service "${this.#service}" does not exist`,
      { data: { service: this.#service, ...(version === undefined ? {} : { version }) } },
    );
  }

  #parse(json: string, version: string): unknown {
    try {
      return safeJsonParse(json);
    } catch (cause) {
      throw new ValidationError(`config version ${version} of service "${this.#service}" is not valid JSON`, {
        cause,
      });
    }
  }

  /** Active version and JSON, or `undefined` when nothing is stored. */
  async #readActive(): Promise<{ version: string; json: string } | undefined> {
    const r = await this.#redis.script<unknown[]>(
      readScript,
      [this.#keys.configs(this.#service), this.#keys.configActive(this.#service)],
      [],
    );
    if (Array.isArray(r) && typeof r[0] === "string" && typeof r[1] === "string") {
      return { version: r[0], json: r[1] };
    }
    // No pointer (or it points at a deleted version): the highest stored version, as Hydra users expect.
    const all = await this.#readAll();
    const versions = Object.keys(all).sort(compareVersions);
    const top = versions[versions.length - 1];
    return top === undefined ? undefined : { version: top, json: all[top] as string };
  }

  async #readAll(): Promise<Record<string, string>> {
    const r = await this.#redis.command<unknown>(["HGETALL", this.#keys.configs(this.#service)]);
    const out: Record<string, string> = Object.create(null);
    if (Array.isArray(r)) {
      for (let i = 0; i + 1 < r.length; i += 2) out[String(r[i])] = String(r[i + 1]);
    } else if (r instanceof Map) {
      for (const [k, v] of r) out[String(k)] = String(v);
    } else if (typeof r === "object" && r !== null) {
      for (const [k, v] of Object.entries(r)) out[k] = String(v);
    }
    return out;
  }

  /**
   * Validate `value`, store it as a new version, make it active and notify every instance. Rejects
   * with `ERR_VALIDATION` (schema message; nothing stored), `ERR_CONFIG_CONFLICT` (version exists, or
   * `ifVersion` did not match).
   */
  async set(
    value: C,
    options: SetConfigOptions = {},
  ): Promise<{ version: string; previousVersion?: string }> {
    const data = this.#validate(value, "config");
    let json: string | undefined;
    try {
      json = JSON.stringify(data);
    } catch (cause) {
      throw new ValidationError(`config for service "${this.#service}" cannot be serialised to JSON`, {
        code: ErrorCode.SERIALIZATION,
        cause,
      });
    }
    if (typeof json !== "string" || !json.startsWith("{")) {
      throw new ValidationError(`config for service "${this.#service}" must be a JSON object`);
    }
    if (Buffer.byteLength(json) > this.#maxBytes) {
      throw new ValidationError(
        `config for service "${this.#service}" is ${Buffer.byteLength(json)} bytes (limit ${this.#maxBytes})`,
        { code: ErrorCode.MESSAGE_TOO_LARGE },
      );
    }
    if (options.version !== undefined) assertVersion(options.version);
    const check = options.ifVersion === undefined ? ["0", ""] : ["1", options.ifVersion ?? ""];
    // An automatic version can race with another writer picking the same one: try the next.
    for (let attempt = 0; ; attempt++) {
      const version = options.version ?? (await this.#autoVersion());
      const r = await this.#redis.script<unknown>(
        setScript,
        [this.#keys.configs(this.#service), this.#keys.configActive(this.#service)],
        [version, json, ...check],
      );
      if (r === -1) {
        if (options.version === undefined && attempt < 5) continue;
        throw new ConfigError(
          ErrorCode.CONFIG_CONFLICT,
          `config version "${version}" of service "${this.#service}" already exists (versions are immutable: pick another)`,
          { data: { service: this.#service, version } },
        );
      }
      if (r === -2) throw this.#conflict(options.ifVersion);
      const prev = Array.isArray(r) && typeof r[1] === "string" && r[1] !== "" ? r[1] : undefined;
      await this.#announce(version);
      this.#apply(version, json, data);
      return prev === undefined ? { version } : { version, previousVersion: prev };
    }
  }

  #conflict(expected: string | null | undefined): ConfigError {
    return new ConfigError(
      ErrorCode.CONFIG_CONFLICT,
      `the active config version of service "${this.#service}" is not ${expected === null ? "none" : `"${expected}"`} any more (someone else changed it): re-read and retry`,
      { data: { service: this.#service, expected: expected ?? null } },
    );
  }

  async #autoVersion(): Promise<string> {
    const versions = await this.versions();
    return nextVersion(versions[versions.length - 1]);
  }

  /** Every stored version label, in natural order. */
  async versions(): Promise<string[]> {
    const r = await this.#redis.command<unknown>(["HKEYS", this.#keys.configs(this.#service)]);
    return (Array.isArray(r) ? r.map(String) : []).sort(compareVersions);
  }

  /** Every stored version with its config, in natural version order, the active one marked. */
  async history(): Promise<ConfigVersion[]> {
    const [all, active] = await Promise.all([this.#readAll(), this.#readActive()]);
    return Object.keys(all)
      .sort(compareVersions)
      .map((version) => {
        let value: unknown;
        try {
          value = safeJsonParse(all[version] as string);
        } catch {
          value = all[version];
        }
        return { version, value, active: version === active?.version };
      });
  }

  /**
   * Make an existing version active again and notify every instance. Rejects with
   * `ERR_CONFIG_NOT_FOUND` (no such version), `ERR_VALIDATION` (it fails the schema; the active one
   * stays), `ERR_CONFIG_CONFLICT` (`ifVersion` did not match).
   */
  async rollback(version: string, options: { ifVersion?: string | null } = {}): Promise<C> {
    assertVersion(version);
    const json = await this.#redis.command<string | null>([
      "HGET",
      this.#keys.configs(this.#service),
      version,
    ]);
    if (typeof json !== "string") throw this.#notFound(version);
    const data = this.#validate(this.#parse(json, version), `config version ${version}`);
    const check = options.ifVersion === undefined ? ["0", ""] : ["1", options.ifVersion ?? ""];
    const r = await this.#redis.script<unknown>(
      activateScript,
      [this.#keys.configs(this.#service), this.#keys.configActive(this.#service)],
      [version, ...check],
    );
    if (r === -1) throw this.#notFound(version);
    if (r === -2) throw this.#conflict(options.ifVersion);
    const stored = Array.isArray(r) && typeof r[2] === "string" ? r[2] : json;
    await this.#announce(version);
    this.#apply(version, stored, stored === json ? data : this.#validate(safeJsonParse(stored), "config"));
    return data;
  }

  async #announce(version: string): Promise<void> {
    const ev = { t: "config", svc: this.#service, version };
    try {
      await this.#redis.publish(this.#keys.events(), JSON.stringify(ev), { timeoutMs: 5000 });
    } catch (err) {
      // Stored and active already; instances that miss the event catch up on their next reconnect.
      this.#logger.warn({ err, service: this.#service, version }, "config change stored but not announced");
    }
  }

  /** Re-read the active config now (normally done on every change event and reconnect). */
  reload(): Promise<void> {
    return this.#scheduleReload();
  }

  #scheduleReload(): Promise<void> {
    if (this.#reloading) {
      this.#again = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      try {
        do {
          this.#again = false;
          await this.#reload();
        } while (this.#again);
      } finally {
        this.#reloading = undefined;
      }
    })();
    this.#reloading.catch((err: unknown) => {
      const e = err as RedmeshError;
      this.#logger.warn({ err: e, service: this.#service }, "config reload failed");
      if (this.listenerCount("error") > 0) this.emit("error", e);
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    const active = await this.#readActive();
    if (!active) {
      if (this.#source === undefined) {
        this.#source = ConfigSource.DEFAULTS;
        this.#value = this.#defaults;
        // Worth saying when defaults stand in for a missing config; mere noise for services without config.
        if (this.#defaults === undefined)
          this.#logger.debug(
            { service: this.#service },
            "no config stored for the service and no defaults given",
          );
        else
          this.#logger.info(
            { service: this.#service },
            "no config stored for the service: using the defaults",
          );
        this.emit("defaults", this.#defaults);
      }
      return;
    }
    if (active.version === this.#version && active.json === this.#raw) return;
    let data: C;
    try {
      data = this.#validate(this.#parse(active.json, active.version), `config version ${active.version}`);
    } catch (err) {
      const e = err instanceof ValidationError ? err : new ValidationError(String(err), { cause: err });
      this.#logger.warn({ err: e, version: active.version }, "active config rejected by the schema");
      if (this.#source === undefined) {
        // Nothing usable yet: fall back to the defaults, and say so.
        this.#source = ConfigSource.DEFAULTS;
        this.#value = this.#defaults;
      }
      this.emit("invalid", e, active.version);
      return;
    }
    this.#apply(active.version, active.json, data);
  }

  #apply(version: string, json: string, data: C): void {
    const same = version === this.#version && json === this.#raw;
    const old = this.#value;
    const previousVersion = this.#version;
    const wasLoaded = this.#source !== undefined;
    this.#version = version;
    this.#raw = json;
    this.#value = data;
    this.#source = ConfigSource.REDIS;
    // The first load at start() is not a change; later ones are, when something differs.
    if (!same && wasLoaded) this.emit("change", old, data, { version, previousVersion });
  }

  #handleEvent(raw: string): void {
    let ev: { t?: unknown; svc?: unknown };
    try {
      ev = safeJsonParse(raw) as { t?: unknown; svc?: unknown };
    } catch {
      return;
    }
    if (ev?.t === "config" && ev.svc === this.#service && this.#started)
      void this.#scheduleReload().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Create a config client for a service (no I/O until a method is called). */
export function createConfigClient<C = unknown>(options: ConfigClientOptions<C>): ConfigClient<C> {
  return new ConfigClient<C>(options);
}
