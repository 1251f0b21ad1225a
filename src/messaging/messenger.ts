/**
 * Pub/sub messaging between instances (DESIGN.md §3–§4): direct messages to one instance chosen by
 * the picker, broadcasts to every instance of a service, and the inbound path shared with RPC.
 *
 * Outbound messages bound for one channel within one event-loop turn are **coalesced** into one
 * `PUBLISH` frame when the receiver advertises {@link FRAME_FORMAT} (or a compact frame, without the
 * routes every message would repeat, when it advertises {@link COMPACT_FRAME_FORMAT}); everyone else
 * gets one plain UMF message per `PUBLISH`. `PUBLISH` answering 0 receivers means the instance is gone: it is evicted
 * from the local discovery cache and the message goes to another instance at once (bounded).
 *
 * Pub/sub is at-most-once: a message published while nobody listens is lost. Use queues for work
 * that must not be lost.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { fromObject, UMF_VERSION, type UmfMessage, type UmfShort } from "../envelope/index.js";
import { ErrorCode, NoInstanceError, type RedmeshError, ValidationError } from "../errors.js";
import { assertInstanceId, assertServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { type RedisLike, translateError } from "../redis/index.js";
import type { Discovery, Instance } from "../registry/index.js";
import { type InstancePicker, type PickContext, randomPicker } from "./picker.js";
import { ReplayGuard } from "./replay.js";
import {
  COMPACT_FRAME_FORMAT,
  DropReason,
  type DropReasonValue,
  FRAME_FORMAT,
  Framing,
  type FramingValue,
  type ReceiveOptions,
  receive,
  serialize,
} from "./wire.js";

/**
 * Most messages in one frame. A frame of everything in flight makes caller and callee take turns
 * (one batch ping-pongs between them); capping it keeps several frames in the pipeline, so both ends
 * and Redis work at once. Measured on 2 cores, closed loop: 32 gave ≈ 1.2× the req/s of unlimited at
 * concurrency 64 and ≈ 1.4× at 256; 16 was no better than 32.
 */
const MAX_FRAME_MESSAGES = 32;

/**
 * How many incoming messages one turn of the event loop handles before further frames wait for this
 * turn's replies to be written (see `Messenger.#receive`). Small frames from many senders still go
 * through in bulk; a second big frame waits, so the peer gets work before this side takes on more.
 */
const STAGGER_AFTER_MESSAGES = 16;

/**
 * Messages counted before the end of the turn is watched (see `Messenger.#turnMessages`): a small
 * fraction of {@link STAGGER_AFTER_MESSAGES}, so staggering starts after 13 to 16 messages of a turn.
 */
const COUNT_TURN_FROM = 4;

/** How many held messages one release turn handles (a backlog drains in bigger steps). */
const RELEASE_MESSAGES = 64;

/**
 * Settled once: `.then()` on it queues a microtask. Cheaper than `queueMicrotask()`, which makes an
 * `AsyncResource` per call (and runs the async hooks AsyncLocalStorage installs, once a handler ran).
 */
const SETTLED = Promise.resolve();
const ignore = () => {};

/** Told the outcome of one `PUBLISH` that carried a message (alone or in a frame). */
export interface PublishListener {
  /** `receivers` is what `PUBLISH` answered (0 on error); `error` is set when Redis failed. */
  onPublished(receivers: number, error: RedmeshError | undefined): void;
}

/** Options of {@link Messenger}. */
export interface MessengerOptions {
  redis: RedisLike;
  keys: Keys;
  discovery: Discovery;
  service: string;
  instanceId: string;
  logger?: Logger;
  /** Load-balancing seam. @default uniform random among non-draining instances */
  picker?: InstancePicker;
  /** Largest payload accepted or sent, in bytes (checked before parsing). @default 1048576 */
  maxMessageBytes?: number;
  /** HMAC-SHA256 secret: outgoing messages are signed, signed incoming ones verified. */
  secret?: string | Buffer;
  /** Drop unsigned or badly signed messages (needs `secret`). @default false */
  requireSignature?: boolean;
  /**
   * Replay protection for signed messages: refuse ones whose timestamp is further than this from the
   * local clock, and ids already seen within it. 0 turns it off. @default 30000 (with a `secret`)
   */
  replayWindowMs?: number;
  /** Coalesce messages per channel per event-loop turn into frames. @default true */
  coalesce?: boolean;
  /** Other instances tried when `PUBLISH` reaches no receiver. @default 3 */
  sendRetries?: number;
  /** Whether anyone listens for plain messages (they are decoded to the long form only then). */
  wantsMessages?: () => boolean;
}

/** Messaging counters. */
export interface MessagingStats {
  /** Messages received (after decoding). */
  received: number;
  /** Messages published (frames count each message they carry). */
  sent: number;
  /** `PUBLISH` calls. */
  publishes: number;
  /** Payloads over `maxMessageBytes`, dropped before parsing. */
  tooLarge: number;
  /**
   * Incoming frames held until this side's replies of the same event-loop turn were written (so the
   * peer works while this side handles them); handled in arrival order a turn or two later.
   */
  held: number;
  /** Malformed payloads or messages, dropped. */
  malformed: number;
  /** Unsigned (under enforcement) or badly signed messages, dropped. */
  badSignature: number;
  /** Signed messages refused as stale or already seen (replay protection), dropped. */
  replayed: number;
  /** Instances evicted from the cache because `PUBLISH` reached nobody. */
  evicted: number;
  /** Messages re-sent to another instance after a `PUBLISH` reached nobody. */
  resent: number;
  /** Exceptions thrown by `message` listeners (caught). */
  listenerErrors: number;
}

/** Events of a {@link Messenger}. */
export interface MessengerEvents {
  /** A message addressed to this instance or its service that is not RPC traffic. */
  message: [UmfMessage];
}

/** Returns true when it consumed the message (RPC traffic). */
export type MessageRouter = (msg: UmfShort) => boolean;

interface Batch {
  channel: string;
  framing: FramingValue;
  parts: string[];
  listeners: Array<PublishListener | undefined>;
  bytes: number;
}

/** What a published batch is left with (frozen: nothing may be queued in a batch once it is sent). */
const SENT: Array<PublishListener | undefined> = Object.freeze([]) as unknown as Array<
  PublishListener | undefined
>;

/** A message plus what is needed to send it again elsewhere when nobody received it. */
class Delivery implements PublishListener {
  attempts = 0;
  readonly exclude = new Set<string>();
  iid = "";
  resolve!: (iid: string) => void;
  reject!: (err: RedmeshError) => void;
  constructor(
    readonly m: Messenger,
    readonly service: string,
    readonly body: unknown,
    readonly direct: boolean,
  ) {}
  onPublished(receivers: number, error: RedmeshError | undefined): void {
    this.m._delivered(this, receivers, error);
  }
}

/** Messaging for one instance. Created and wired by `createService`. */
export class Messenger extends EventEmitter<MessengerEvents> {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #discovery: Discovery;
  readonly #logger: Logger;
  readonly #service: string;
  readonly #iid: string;
  readonly #route: string;
  readonly #picker: InstancePicker;
  readonly #maxBytes: number;
  readonly #secret: string | Buffer | undefined;
  readonly #requireSignature: boolean;
  readonly #replay: ReplayGuard | undefined;
  readonly #coalesce: boolean;
  readonly #sendRetries: number;
  readonly #channels: string[];
  readonly #outbox = new Map<string, Batch>();
  #flushScheduled = false;
  #router: MessageRouter | undefined;
  readonly #wants: () => boolean;
  #running = false;
  #mid = 0;
  readonly #midPrefix: string;
  /** Counters. */
  readonly stats: MessagingStats = {
    received: 0,
    sent: 0,
    publishes: 0,
    tooLarge: 0,
    held: 0,
    malformed: 0,
    badSignature: 0,
    replayed: 0,
    evicted: 0,
    resent: 0,
    listenerErrors: 0,
  };
  readonly #onRaw = (text: string) => this.#receive(text);
  readonly #recv: ReceiveOptions;
  /** Routes of senders seen using compact frames: they read them too (bounded). */
  readonly #compactPeers = new Set<string>();
  /** `{"rm":2,"frm":"<route>"}`, the header of every compact frame this instance sends. */
  readonly #compactHeader: string;
  readonly #deliver = (m: UmfShort) => this.#dispatch(m);
  readonly #drop = (reason: DropReasonValue) => {
    this.stats[reason]++;
    if (reason !== DropReason.TOO_LARGE) this.#logger.debug({ reason }, "dropped an incoming message");
  };
  readonly #flush = () => this.#flushAll();

  constructor(o: MessengerOptions) {
    super();
    this.#redis = o.redis;
    this.#keys = o.keys;
    this.#discovery = o.discovery;
    this.#logger = o.logger ?? silentLogger;
    this.#service = o.service;
    this.#iid = o.instanceId;
    this.#route = `${o.instanceId}@${o.service}:/`;
    this.#picker = o.picker ?? randomPicker;
    this.#maxBytes = o.maxMessageBytes ?? 1024 * 1024;
    this.#secret = o.secret;
    this.#requireSignature = o.requireSignature ?? false;
    const window = o.replayWindowMs ?? 30_000;
    this.#replay = o.secret !== undefined && window > 0 ? new ReplayGuard({ windowMs: window }) : undefined;
    this.#recv = {
      maxBytes: this.#maxBytes,
      secret: this.#secret,
      requireSignature: this.#requireSignature,
      replay: this.#replay,
      self: this.#route,
      onCompact: (frm) => {
        if (this.#compactPeers.has(frm)) return;
        if (this.#compactPeers.size >= 10_000) this.#compactPeers.clear();
        this.#compactPeers.add(frm);
      },
    };
    this.#compactHeader = `{"rm":2,"frm":${JSON.stringify(this.#route)}}`;
    this.#coalesce = o.coalesce ?? true;
    this.#sendRetries = o.sendRetries ?? 3;
    this.#wants = o.wantsMessages ?? (() => this.listenerCount("message") > 0);
    this.#channels = [o.keys.instanceChannel(o.service, o.instanceId), o.keys.serviceChannel(o.service)];
    // Message ids: the instance id's first 12 hex digits and a counter (unique per instance, cheap).
    this.#midPrefix = `${o.instanceId.slice(0, 12)}-`;
  }

  /** This instance's reply route, `<iid>@<svc>:/`. */
  get route(): string {
    return this.#route;
  }

  /** The picker in use. */
  get picker(): InstancePicker {
    return this.#picker;
  }

  /** The frame formats this instance understands (for its `nodes` entry). */
  get frames(): string[] {
    return [FRAME_FORMAT, COMPACT_FRAME_FORMAT];
  }

  /** Whether the sender with this route has sent compact frames (so it reads them). */
  readsCompact(route: string): boolean {
    return this.#compactPeers.has(route);
  }

  /** Install the function that takes RPC traffic before `message` listeners see it. */
  setRouter(router: MessageRouter): void {
    this.#router = router;
  }

  /** What every mid from `nextMid()` starts with (the rest is a base-36 counter). */
  get midPrefix(): string {
    return this.#midPrefix;
  }

  /** A new message id: `midPrefix` and a base-36 counter. */
  nextMid(): string {
    return this.#midPrefix + (++this.#mid).toString(36);
  }

  /** Subscribe to this instance's direct channel and its service channel. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    for (const ch of this.#channels) await this.#redis.subscribe(ch, this.#onRaw);
  }

  /** Flush what is queued and unsubscribe. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#releaseAll();
    this.#running = false;
    this.#flushAll();
    for (const ch of this.#channels) {
      try {
        await this.#redis.unsubscribe(ch, this.#onRaw);
      } catch {
        /* the connection is going away anyway */
      }
    }
  }

  /**
   * Frames are handled as they arrive until this turn of the event loop has handled
   * {@link STAGGER_AFTER_MESSAGES} messages; later frames wait until the replies of this turn are written
   * (see {@link #release}). Order is kept: nothing overtakes a held frame.
   */
  #receive(text: string): void {
    if (this.#held.length > 0 || this.#turnMessages >= STAGGER_AFTER_MESSAGES) {
      this.#held.push(text);
      this.stats.held++;
      if (this.#held.length === 1) setImmediate(this.#releaseSoon);
      return;
    }
    this.#handleFrame(text);
  }

  #handleFrame(text: string): void {
    receive(text, this.#recv, this.#deliver, this.#drop);
    if (!this.#turnOpen && this.#turnMessages >= COUNT_TURN_FROM) {
      this.#turnOpen = true;
      setImmediate(this.#endTurn);
    }
  }

  /**
   * Messages handled in this turn of the event loop (reset in its check phase). The reset is only
   * scheduled once a few messages were counted: a lone message per turn (one call at a time) costs no
   * immediate, and at most {@link COUNT_TURN_FROM} − 1 messages of earlier turns are counted with it.
   */
  #turnMessages = 0;
  #turnOpen = false;
  /** Frames that arrived after this turn's budget: handled, in order, once its replies are written. */
  readonly #held: string[] = [];
  readonly #endTurn = () => {
    this.#turnOpen = false;
    this.#turnMessages = 0;
  };
  /**
   * Two hops: node-redis writes what this turn published in an immediate of its own, queued after
   * this one; the second hop runs after that write, so the peer already works on this turn's replies
   * (and requests) while the held frames are handled. Without it, caller and callee take turns on
   * everything in flight; with it they overlap (measured at 64 calls in flight: ≈ 110k → 146k–180k
   * req/s on 2 cores).
   */
  readonly #releaseSoon = () => setImmediate(this.#release);
  readonly #release = () => {
    while (this.#held.length > 0 && this.#turnMessages < RELEASE_MESSAGES) {
      this.#handleFrame(this.#held.shift() as string);
    }
    if (this.#held.length > 0) setImmediate(this.#releaseSoon);
  };

  /** Handle every held frame now (stopping: nothing received is left behind). */
  #releaseAll(): void {
    while (this.#held.length > 0) this.#handleFrame(this.#held.shift() as string);
  }

  #dispatch(m: UmfShort): void {
    this.stats.received++;
    this.#turnMessages++;
    try {
      if (this.#router?.(m)) return;
    } catch (err) {
      this.stats.listenerErrors++;
      this.#logger.warn({ err }, "RPC router threw");
      return;
    }
    if (!this.#wants()) return;
    let long: UmfMessage;
    try {
      long = fromObject(m);
    } catch {
      this.stats.malformed++;
      return;
    }
    try {
      this.emit("message", long);
    } catch (err) {
      // A throwing listener must not break the subscriber.
      this.stats.listenerErrors++;
      this.#logger.warn({ err }, "a message listener threw");
    }
  }

  // ---------------------------------------------------------------- outbound

  /**
   * Queue one short-form message for `channel`. Unless `framing` is `PLAIN` it may share a `PUBLISH`
   * frame with other messages for the same channel in this event-loop turn (the message keeps every
   * field, also in a compact frame). Throws `MessageError` when the message is too large or cannot be
   * serialised.
   */
  enqueue(channel: string, msg: UmfShort, framing: FramingValue, listener?: PublishListener): void {
    // A signed message carries its time under the signature: receivers refuse stale ones and replays.
    if (this.#secret !== undefined && msg.ts === undefined) msg.ts = new Date().toISOString();
    this.enqueueText(channel, serialize(msg, this.#maxBytes, this.#secret), framing, listener);
  }

  /** True when outgoing messages are signed (they must then go through {@link enqueue}). */
  get signing(): boolean {
    return this.#secret !== undefined;
  }

  /** Largest message size in bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /**
   * Queue an already serialised (unsigned, size-checked) message: the hot path of RPC, which writes
   * the envelope's JSON directly instead of building an object and serialising it. With `COMPACT`
   * the text may leave out `frm` (this instance's route) and `to` (the receiver's route).
   */
  enqueueText(channel: string, text: string, framing: FramingValue, listener?: PublishListener): void {
    if (framing === Framing.PLAIN || (!this.#coalesce && framing === Framing.FRAME)) {
      this.#publish(channel, text, [listener], 1);
      return;
    }
    let b = this.#outbox.get(channel);
    if (b && (b.framing !== framing || b.bytes + text.length + 1 > this.#maxBytes)) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
      b = undefined;
    }
    if (!b) {
      const head = framing === Framing.COMPACT ? this.#compactHeader.length + 1 : 0;
      b = { channel, framing, parts: [], listeners: [], bytes: 2 + head };
      this.#outbox.set(channel, b);
    }
    b.parts.push(text);
    b.listeners.push(listener);
    b.bytes += text.length + 1;
    if (b.parts.length >= MAX_FRAME_MESSAGES || !this.#coalesce) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
      return;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // A microtask runs after the continuations already queued by this socket read (one per
      // request or reply it carried), so they share one PUBLISH; a lone message is not delayed at all
      // (setImmediate cost ≈ 40 µs of p50 at concurrency 1).
      SETTLED.then(this.#flush);
    }
  }

  #flushAll(): void {
    this.#flushScheduled = false;
    if (this.#outbox.size === 0) return;
    // Entries are deleted, not `clear()`ed: V8's Map.clear() allocates a new hash table and leaves the
    // old one linked to it with its entries in place. Once one such table reached the old generation,
    // it kept every later table, batch and pending call alive through scavenges; in about 3 processes
    // of 10 that made V8 pretenure batches for good (29 % of young allocations promoted, scavenge
    // pauses of 6-7 ms instead of 0.5, c=64 throughput down by a third).
    for (const [channel, b] of this.#outbox) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
    }
  }

  #publishBatch(b: Batch): void {
    const { parts, listeners } = b;
    const n = parts.length;
    // A compact message lacks its routes: it always travels behind the header, even alone.
    const text =
      b.framing === Framing.COMPACT
        ? `[${this.#compactHeader},${n === 1 ? parts[0] : parts.join(",")}]`
        : n === 1
          ? (parts[0] as string)
          : `[${parts.join(",")}]`;
    // A sent batch keeps nothing: whatever may still reach it (a replaced hash table, see #flushAll)
    // must not keep its messages and callers alive.
    parts.length = 0;
    b.listeners = SENT;
    this.#publish(b.channel, text, listeners, n);
  }

  #publish(
    channel: string,
    text: string | Buffer,
    listeners: Array<PublishListener | undefined>,
    n: number,
  ): void {
    this.stats.publishes++;
    this.stats.sent += n;
    const p = this.#redis.publish(channel, text);
    if (n === 1 ? listeners[0] === undefined : !listeners.some((l) => l !== undefined)) {
      // Nobody waits for the outcome (replies): only keep a failure from going unhandled.
      p.then(undefined, ignore);
      return;
    }
    p.then(
      (receivers) => {
        for (const l of listeners) l?.onPublished(receivers, undefined);
      },
      (err: unknown) => {
        const e = translateError(err, "PUBLISH");
        for (const l of listeners) l?.onPublished(0, e);
      },
    );
  }

  /** Whether an instance understands frames. */
  static acceptsFrames(inst: Instance | undefined): boolean {
    return inst?.node?.rm?.frames?.includes(FRAME_FORMAT) ?? false;
  }

  /** The best framing an instance reads, from the formats in its `nodes` entry. */
  static framingOf(inst: Instance | undefined): FramingValue {
    const f = inst?.node?.rm?.frames;
    if (!f) return Framing.PLAIN;
    if (f.includes(COMPACT_FRAME_FORMAT)) return Framing.COMPACT;
    return f.includes(FRAME_FORMAT) ? Framing.FRAME : Framing.PLAIN;
  }

  /** Live instances of a service from the cache, reading Redis only when it is not cached yet. */
  async candidates(service: string): Promise<readonly Instance[]> {
    return this.#discovery.cachedInstances(service) ?? (await this.#discovery.instances(service));
  }

  /** Evict an instance from the local discovery cache (it answered no `PUBLISH`). */
  evict(service: string, iid: string): void {
    this.stats.evicted++;
    this.#discovery.evict(service, iid);
  }

  /**
   * Pick an instance through the picker. Rethrows what the picker throws (e.g. circuit open);
   * returns `undefined` when none is eligible.
   */
  pick(candidates: readonly Instance[], ctx: PickContext): Instance | undefined {
    return this.#picker.pick(candidates, ctx);
  }

  /**
   * Send `body` to one live instance of `target` (`svc` or `iid@svc`). Resolves with the instance id
   * that received it. When `PUBLISH` reaches nobody the instance is evicted and another one is tried
   * at once (up to `sendRetries`). Rejects with `NoInstanceError` when no instance is left.
   */
  send(target: string, body: unknown, options: { type?: string; headers?: Record<string, unknown> } = {}) {
    const { service, iid } = parseTarget(target);
    const d = new Delivery(this, service, { body, ...options }, iid !== "");
    d.iid = iid;
    return new Promise<string>((resolve, reject) => {
      d.resolve = resolve;
      d.reject = reject;
      this.#attempt(d).catch((err: RedmeshError) => reject(err));
    });
  }

  async #attempt(d: Delivery): Promise<void> {
    let inst: Instance | undefined;
    const all = await this.candidates(d.service);
    if (d.direct) {
      // A direct target unknown to the cache (not reconciled yet) is still tried, as plain UMF;
      // PUBLISH tells whether it is there.
      inst = all.find((i) => i.id === d.iid);
    } else {
      inst = this.#picker.pick(all, { service: d.service, exclude: d.exclude });
      if (!inst) throw new NoInstanceError(d.service);
      d.iid = inst.id;
    }
    const extra = d.body as { body: unknown; type?: string; headers?: Record<string, unknown> };
    const msg: UmfShort = {
      to: `${d.iid}@${d.service}:/`,
      frm: this.#route,
      mid: this.nextMid(),
      ts: new Date().toISOString(),
      ver: UMF_VERSION,
      bdy: extra.body,
    };
    if (extra.type !== undefined) msg.typ = extra.type;
    if (extra.headers !== undefined) msg.hdr = extra.headers;
    this.enqueue(this.#keys.instanceChannel(d.service, d.iid), msg, Messenger.framingOf(inst), d);
  }

  /** @internal Outcome of one delivery attempt. */
  _delivered(d: Delivery, receivers: number, error: RedmeshError | undefined): void {
    if (error) {
      d.reject(error);
      return;
    }
    if (receivers > 0) {
      d.resolve(d.iid);
      return;
    }
    this.evict(d.service, d.iid);
    if (d.direct || d.attempts >= this.#sendRetries) {
      d.reject(
        new NoInstanceError(d.service, {
          data: { reason: "no receiver", instance: d.iid, attempts: d.attempts + 1 },
        }),
      );
      return;
    }
    d.attempts++;
    d.exclude.add(d.iid);
    this.stats.resent++;
    this.#attempt(d).catch((err: RedmeshError) => d.reject(err));
  }

  /** Publish `body` to every instance of `service`. Resolves with the number of receivers. */
  async broadcast(
    service: string,
    body: unknown,
    options: { type?: string; headers?: Record<string, unknown> } = {},
  ): Promise<number> {
    assertServiceName(service);
    const msg: UmfShort = {
      to: `${service}:/`,
      frm: this.#route,
      mid: this.nextMid(),
      ts: new Date().toISOString(),
      ver: UMF_VERSION,
      bdy: body,
    };
    if (options.type !== undefined) msg.typ = options.type;
    if (options.headers !== undefined) msg.hdr = options.headers;
    return new Promise<number>((resolve, reject) => {
      this.enqueue(this.#keys.serviceChannel(service), msg, Framing.PLAIN, {
        onPublished: (n, err) => (err ? reject(err) : resolve(n)),
      });
    });
  }
}

/** Parse a `svc` or `iid@svc` target, with typed validation errors. */
export function parseTarget(target: string): { service: string; iid: string } {
  if (typeof target !== "string" || target.length === 0) {
    throw new ValidationError("target must be a service name or `iid@service`", {
      code: ErrorCode.INVALID_NAME,
    });
  }
  const at = target.indexOf("@");
  if (at < 0) {
    assertServiceName(target);
    return { service: target, iid: "" };
  }
  const iid = target.slice(0, at);
  const service = target.slice(at + 1);
  assertInstanceId(iid);
  assertServiceName(service);
  return { service, iid };
}
