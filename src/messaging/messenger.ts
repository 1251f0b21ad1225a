/**
 * Pub/sub messaging between instances (DESIGN.md §3–§4): direct messages to one instance chosen by
 * the balancing loop, broadcasts to every instance of a service, and the inbound path.
 *
 * Inbound, every decoded message goes first to the `inbound` consumer the service wires in (RPC
 * takes its traffic there), then to `message` listeners. Outbound, {@link MessagePort} is all that
 * code built on messaging (RPC) uses: encoded envelopes posted to an instance, whose `PUBLISH`
 * outcome goes to the envelope's {@link PublishReceipt}.
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
import { BalancedRequest, type BalancingLoop, RetryKind, type RetryKindValue } from "../balancer/index.js";
import {
  COMPACT_FRAME_FORMAT,
  compactFrameHeader,
  DropReason,
  type DropReasonValue,
  FRAME_FORMAT,
  Framing,
  type FramingValue,
  frameText,
  fromObject,
  type MessageExtras,
  parseTarget,
  type ReceiveOptions,
  ReplayGuard,
  receive,
  shortMessage,
  type UmfMessage,
  type UmfShort,
  WireCodec,
} from "../envelope/index.js";
import type { RedmeshError } from "../errors.js";
import { assertServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { type RedisLike, translateError } from "../redis/index.js";
import type { Instance } from "../registry/index.js";

/**
 * Most messages in one frame. A frame of everything in flight makes caller and callee take turns
 * (one batch ping-pongs between them); capping it keeps several frames in the pipeline, so both ends
 * and Redis work at once. 32 was the best cap tried (docs/benchmarks.md "Design notes").
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
export interface PublishReceipt {
  /** `receivers` is what `PUBLISH` answered (0 on error); `error` is set when Redis failed. */
  onPublished(receivers: number, error: RedmeshError | undefined): void;
}

/** @deprecated The old name of {@link PublishReceipt}. */
export type PublishListener = PublishReceipt;

/** What code built on messaging (RPC) uses of it: encoded envelopes out, and the facts to encode them. */
export interface MessagePort {
  /** This instance's reply route, `<iid>@<svc>:/`. */
  readonly route: string;
  /** The encoder of every outgoing envelope (size limit, signing). */
  readonly codec: WireCodec;
  /** What every id from {@link nextMid} starts with (the rest is a base-36 counter). */
  readonly midPrefix: string;
  /** A new message id. */
  nextMid(): string;
  /** The best framing an instance reads, from the formats in its `nodes` entry. */
  framingOf(instance: Instance | undefined): FramingValue;
  /** Whether the sender with this route has sent compact frames (so it reads them). */
  readsCompact(route: string): boolean;
  /**
   * Queue an encoded envelope for an instance's direct channel (coalesced per the framing);
   * `receipt` hears what its `PUBLISH` answered.
   */
  post(service: string, iid: string, text: string, framing: FramingValue, receipt?: PublishReceipt): void;
}

/** Options of {@link Messenger}. */
export interface MessengerOptions {
  redis: RedisLike;
  keys: Keys;
  /** The balancing loop `send()` runs in (the service's, shared with RPC). */
  loop: BalancingLoop;
  service: string;
  instanceId: string;
  logger?: Logger;
  /** Takes each incoming message first; true when it consumed it (RPC traffic). */
  inbound?: (msg: UmfShort) => boolean;
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

/** Takes an incoming message first; true when it consumed it. */
export type MessageRouter = (msg: UmfShort) => boolean;

interface Batch {
  channel: string;
  framing: FramingValue;
  parts: string[];
  receipts: Array<PublishReceipt | undefined>;
  bytes: number;
}

/** What a published batch is left with (frozen: nothing may be queued in a batch once it is sent). */
const SENT: Array<PublishReceipt | undefined> = Object.freeze([]) as unknown as Array<
  PublishReceipt | undefined
>;

/** One `send()`: a message the loop delivers to one instance (another one when nobody received it). */
class Delivery extends BalancedRequest {
  done!: (iid: string) => void;
  fail!: (err: RedmeshError) => void;
  constructor(
    readonly m: Messenger,
    loop: BalancingLoop,
    service: string,
    iid: string,
    readonly body: unknown,
    readonly extras: MessageExtras,
  ) {
    // A send waits for nobody: a message reaching no one is resent at once, never after a backoff.
    super(loop, { service, iid, retries: 0 });
  }
  transmit(instance: Instance | undefined): void {
    this.m._transmit(this, instance);
  }
  override delivered(): void {
    this.loop.succeeded(this);
    this.settled = true;
    this.done(this.iid);
  }
  reject(error: RedmeshError): void {
    this.settled = true;
    this.fail(error);
  }
  override onRetry(kind: RetryKindValue): void {
    if (kind === RetryKind.REDIRECT) this.m.stats.resent++;
  }
}

/** Messaging for one instance. Created and wired by `createService`. */
export class Messenger extends EventEmitter<MessengerEvents> implements MessagePort {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #loop: BalancingLoop;
  readonly #logger: Logger;
  readonly #service: string;
  readonly #route: string;
  /** The encoder of every outgoing envelope. */
  readonly codec: WireCodec;
  readonly #replay: ReplayGuard | undefined;
  readonly #coalesce: boolean;
  readonly #channels: string[];
  /** Direct channels by instance id, built once per instance instead of once per message (bounded). */
  readonly #direct = new Map<string, string>();
  readonly #outbox = new Map<string, Batch>();
  #flushScheduled = false;
  readonly #inbound: MessageRouter | undefined;
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
    this.#loop = o.loop;
    this.#logger = o.logger ?? silentLogger;
    this.#service = o.service;
    this.#route = `${o.instanceId}@${o.service}:/`;
    this.codec = new WireCodec({ maxBytes: o.maxMessageBytes ?? 1024 * 1024, secret: o.secret });
    this.#inbound = o.inbound;
    const window = o.replayWindowMs ?? 30_000;
    this.#replay = o.secret !== undefined && window > 0 ? new ReplayGuard({ windowMs: window }) : undefined;
    this.#recv = {
      maxBytes: this.codec.maxBytes,
      secret: o.secret,
      requireSignature: o.requireSignature ?? false,
      replay: this.#replay,
      self: this.#route,
      onCompact: (frm) => {
        if (this.#compactPeers.has(frm)) return;
        if (this.#compactPeers.size >= 10_000) this.#compactPeers.clear();
        this.#compactPeers.add(frm);
      },
    };
    this.#compactHeader = compactFrameHeader(this.#route);
    this.#coalesce = o.coalesce ?? true;
    this.#wants = o.wantsMessages ?? (() => this.listenerCount("message") > 0);
    this.#channels = [o.keys.instanceChannel(o.service, o.instanceId), o.keys.serviceChannel(o.service)];
    // Message ids: the instance id's first 12 hex digits and a counter (unique per instance, cheap).
    this.#midPrefix = `${o.instanceId.slice(0, 12)}-`;
  }

  /** This instance's reply route, `<iid>@<svc>:/`. */
  get route(): string {
    return this.#route;
  }

  /** The frame formats this instance understands (for its `nodes` entry). */
  get frames(): string[] {
    return [FRAME_FORMAT, COMPACT_FRAME_FORMAT];
  }

  /** Whether the sender with this route has sent compact frames (so it reads them). */
  readsCompact(route: string): boolean {
    return this.#compactPeers.has(route);
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
   * everything in flight; with it they overlap.
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
      if (this.#inbound?.(m)) return;
    } catch (err) {
      this.stats.listenerErrors++;
      this.#logger.warn({ err }, "the inbound consumer threw");
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
   * Queue one short-form message for `channel` (encoded by {@link codec}). Throws `MessageError` or
   * `SerializationError` when it is too large or cannot be serialised.
   */
  enqueue(channel: string, msg: UmfShort, framing: FramingValue, receipt?: PublishReceipt): void {
    this.enqueueText(channel, this.codec.serialize(msg), framing, receipt);
  }

  /** See {@link MessagePort.post}. */
  post(service: string, iid: string, text: string, framing: FramingValue, receipt?: PublishReceipt): void {
    let channel = this.#direct.get(iid);
    if (channel === undefined) {
      if (this.#direct.size > 10_000) this.#direct.clear();
      channel = this.#keys.instanceChannel(service, iid);
      this.#direct.set(iid, channel);
    }
    this.enqueueText(channel, text, framing, receipt);
  }

  /**
   * Queue an encoded message. Unless `framing` is `PLAIN` it may share a `PUBLISH` frame with other
   * messages for the same channel in this event-loop turn; with `COMPACT` the text may leave out
   * `frm` (this instance's route) and `to` (the receiver's route).
   */
  enqueueText(channel: string, text: string, framing: FramingValue, receipt?: PublishReceipt): void {
    if (framing === Framing.PLAIN || (!this.#coalesce && framing === Framing.FRAME)) {
      this.#publish(channel, text, [receipt], 1);
      return;
    }
    let b = this.#outbox.get(channel);
    if (b && (b.framing !== framing || b.bytes + text.length + 1 > this.codec.maxBytes)) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
      b = undefined;
    }
    if (!b) {
      const head = framing === Framing.COMPACT ? this.#compactHeader.length + 1 : 0;
      b = { channel, framing, parts: [], receipts: [], bytes: 2 + head };
      this.#outbox.set(channel, b);
    }
    b.parts.push(text);
    b.receipts.push(receipt);
    b.bytes += text.length + 1;
    if (b.parts.length >= MAX_FRAME_MESSAGES || !this.#coalesce) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
      return;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // A microtask runs after the continuations this socket read queued (one per request or reply
      // it carried), so they share one PUBLISH; a lone message is not delayed by a whole turn.
      SETTLED.then(this.#flush);
    }
  }

  #flushAll(): void {
    this.#flushScheduled = false;
    if (this.#outbox.size === 0) return;
    // Deleted, not clear()ed: a cleared Map's old table stays linked to the new one with its entries,
    // which can keep every later batch alive through scavenges (docs/benchmarks.md "Design notes").
    for (const [channel, b] of this.#outbox) {
      this.#outbox.delete(channel);
      this.#publishBatch(b);
    }
  }

  #publishBatch(b: Batch): void {
    const { parts, receipts } = b;
    const n = parts.length;
    const text = frameText(parts, b.framing, this.#compactHeader);
    // A sent batch keeps nothing: whatever may still reach it must not keep its messages and callers alive.
    parts.length = 0;
    b.receipts = SENT;
    this.#publish(b.channel, text, receipts, n);
  }

  #publish(
    channel: string,
    text: string | Buffer,
    receipts: Array<PublishReceipt | undefined>,
    n: number,
  ): void {
    this.stats.publishes++;
    this.stats.sent += n;
    const p = this.#redis.publish(channel, text);
    if (n === 1 ? receipts[0] === undefined : !receipts.some((l) => l !== undefined)) {
      // Nobody waits for the outcome (replies): only keep a failure from going unhandled.
      p.then(undefined, ignore);
      return;
    }
    p.then(
      (receivers) => {
        for (const l of receipts) l?.onPublished(receivers, undefined);
      },
      (err: unknown) => {
        const e = translateError(err, "PUBLISH");
        for (const l of receipts) l?.onPublished(0, e);
      },
    );
  }

  /** See {@link MessagePort.framingOf}. */
  framingOf(instance: Instance | undefined): FramingValue {
    return Messenger.framingOf(instance);
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

  /**
   * Send `body` to one live instance of `target` (`svc` or `iid@svc`), chosen by the balancing loop.
   * Resolves with the instance id that received it. When `PUBLISH` reaches nobody the instance is
   * evicted and another one is tried at once (the loop's `redirects`). Rejects with `NoInstanceError`
   * when no instance is left, `ValidationError` on a bad target.
   */
  send(target: string, body: unknown, options: MessageExtras = {}): Promise<string> {
    const { service, iid } = parseTarget(target);
    const d = new Delivery(this, this.#loop, service, iid, body, options);
    return new Promise<string>((resolve, reject) => {
      d.done = resolve;
      d.fail = reject;
      this.#loop.dispatch(d);
    });
  }

  /** @internal One attempt of a delivery: encode for `instance` and post it. */
  _transmit(d: Delivery, instance: Instance | undefined): void {
    const msg = shortMessage(`${d.iid}@${d.service}:/`, this.#route, this.nextMid(), d.body, d.extras);
    // A direct target unknown to the cache (not reconciled yet) is still tried, as plain UMF;
    // PUBLISH tells whether it is there.
    this.post(d.service, d.iid, this.codec.serialize(msg), Messenger.framingOf(instance), d);
  }

  /** Publish `body` to every instance of `service`. Resolves with the number of receivers. */
  async broadcast(service: string, body: unknown, options: MessageExtras = {}): Promise<number> {
    assertServiceName(service);
    const msg = shortMessage(`${service}:/`, this.#route, this.nextMid(), body, options);
    return new Promise<number>((resolve, reject) => {
      this.enqueue(this.#keys.serviceChannel(service), msg, Framing.PLAIN, {
        onPublished: (n, err) => (err ? reject(err) : resolve(n)),
      });
    });
  }
}
