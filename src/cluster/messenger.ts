// Node-level messaging, the base the actor, RPC and pub/sub layers build on: one-way messages and
// request/response between members, with correlation ids, timeouts on the injected clock, and
// immediate rejection of everything pending towards a node the moment it is declared down or leaves.
import { FoundationError, isErrorCode, serializeError } from '../errors.js';
import {
  type EncodedBody,
  encodeParts,
  encodeSimple,
  encodeTransient,
  widenTransient,
} from '../transport/codec.js';
import { type ChannelName, MSG } from '../transport/protocol.js';
import { capture, captured } from '../util/capture.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { LANE_MARKER, LaneReceiver, LaneSender } from './lanes.js';

/** Handles a one-way message. Never called concurrently for one connection; must not block. */
export type MessageHandler = (payload: unknown, from: string) => void;
/**
 * Answers a request; the returned value (or promise) is the reply. A thrown FoundationError reaches
 * the caller with its code (and `data.remote: true`, `data.node`), so layers above can send coded
 * errors; anything else thrown becomes FND_ERR_REMOTE carrying the original message. A reply that
 * is a Uint8Array/Buffer of 64 KiB or more is written to the socket as it is, not copied: do not
 * modify it afterwards.
 */
export type RequestHandler = (payload: unknown, from: string) => unknown;

export interface SendOptions {
  /** Channel to use; messages above the bulk threshold go to `bulk` whatever this says. Default 'default'. */
  channel?: ChannelName;
  /**
   * An ordered lane (a non-negative integer, e.g. the sending actor's id): messages and requests
   * of one lane to one node are delivered in send order whatever their size, though large ones
   * travel on `bulk` and small ones on `default` (src/cluster/lanes.ts). Without a lane, order
   * holds per channel only. Call `closeLane` when the lane's owner goes away.
   */
  lane?: number;
}

export interface RequestOptions extends SendOptions {
  /** Milliseconds to wait for the reply. Default: the node's `requestTimeoutMs`. */
  timeout?: number;
  /**
   * Makes the error a timed-out request rejects with (default: FND_ERR_REQUEST_TIMEOUT), from
   * `subject` and the timeout. Lets a layer above report its own code (the actor runtime's
   * FND_ERR_CALL_TIMEOUT) without wrapping every request's promise, and without a closure per
   * request (one function, the request's own part in `subject`); called only on a timeout.
   */
  timeoutError?: ((subject: unknown, timeoutMs: number) => Error) | undefined;
  /** What `timeoutError` is given (the actor runtime: the called actor). */
  subject?: unknown;
}

/**
 * Answers one request, once: a later call is ignored. `ok` false sends `value` as an error (a
 * FoundationError keeps its code, as when a handler throws).
 */
export interface ReplySink {
  reply(ok: boolean, value: unknown): void;
}

/**
 * A request handler that answers through `reply` when it is ready, without a promise (the actor
 * runtime's calls: the reply goes from the actor straight to the wire). A synchronous throw is
 * sent back as the error, unless `reply` was called first.
 */
export type DeferredRequestHandler = (payload: unknown, from: string, reply: ReplySink) => void;

export interface MessengerDeps {
  selfName: string;
  /**
   * Queues an encoded body. A body below 64 KiB may be transient (encodeTransient): it must be
   * copied before this returns, as PeerManager.send does. A SplitBody's tail is the caller's
   * payload, not a copy: it is written to the socket as it is, so it must not be modified until it
   * was sent.
   */
  send(to: string, channel: ChannelName, body: EncodedBody): void;
  /** Whether `name` is a member we may talk to (alive or suspect). */
  reachable(name: string): boolean;
  /**
   * Whether every connection to `name` closed and it did not come back (its process is probably
   * gone): requests to it then fail at once instead of waiting for membership's verdict.
   */
  unreachable?(name: string): boolean;
  clock: Clock;
  log: Logger;
  requestTimeoutMs: number;
  bulkThreshold: number;
}

/**
 * Takes the outcome of a request made with `requestTo`: exactly one of the two is called, once.
 * Lets a layer above answer its own promise straight from the reply, without a promise of the
 * messenger's and the reactions chained to it (the service layer's calls).
 */
export interface ReplyTarget {
  replied(value: unknown): void;
  failed(err: Error): void;
}

interface Pending {
  id: number;
  to: string;
  kind: string;
  timeout: number;
  /** Clock time at which the request times out. */
  deadline: number;
  /** The promise's functions (`request`), or undefined when `target` takes the outcome. */
  resolve: ((v: unknown) => void) | undefined;
  reject: ((e: unknown) => void) | undefined;
  target: ReplyTarget | undefined;
  /** Settled (replied, rejected or timed out); its slot in a TimeoutQueue is then dead. */
  done: boolean;
  timeoutError: ((subject: unknown, timeoutMs: number) => Error) | undefined;
  subject: unknown;
}

// A settled Pending may stay in its TimeoutQueue for a while (dropped from the front in batches):
// it lets go of what it would answer, so a settled call's promise and target are garbage at once
// instead of surviving young-generation collections.

function succeed(p: Pending, value: unknown): void {
  const { target, resolve } = p;
  p.target = p.resolve = p.reject = p.timeoutError = p.subject = undefined;
  if (target) target.replied(value);
  else resolve!(value);
}

function fail(p: Pending, err: Error): void {
  const { target, reject } = p;
  p.target = p.resolve = p.reject = p.timeoutError = p.subject = undefined;
  if (target) target.failed(err);
  else reject!(err);
}

/** A registered request handler; `deferred` ones answer through a ReplySink. */
interface Handler {
  fn: RequestHandler | DeferredRequestHandler;
  deferred: boolean;
}

/** The ReplySink of one request: one small object instead of a promise and its reactions. */
class Reply implements ReplySink {
  private done = false;
  constructor(
    private readonly messenger: Messenger,
    private readonly to: string,
    private readonly channel: ChannelName,
    private readonly id: number,
  ) {}

  reply(ok: boolean, value: unknown): void {
    if (this.done) return;
    this.done = true;
    this.messenger.answer(this.to, this.channel, this.id, ok, value);
  }
}

/**
 * The pending requests that share one timeout value, in the order they were sent, which is also
 * their deadline order. One clock timer, armed for the oldest live request, serves them all: a
 * request costs no timer of its own, and a reply only marks its entry done (entries are dropped
 * from the front as they settle). Each request still times out exactly at its own deadline.
 */
class TimeoutQueue {
  private items: Pending[] = [];
  private head = 0;
  private timer: TimerHandle | undefined;
  private armedFor = 0;
  /** `fire` is expiring entries: it arms the timer itself once done, `add` must not. */
  private firing = false;

  constructor(
    private readonly clock: Clock,
    private readonly expire: (p: Pending) => void,
    private readonly empty: () => void,
  ) {}

  add(p: Pending): void {
    this.dropSettled();
    this.items.push(p);
    // A request started from an expiry callback (a retry) lands here while `fire` runs: arming
    // now would leave `fire`'s own timer, armed after it, orphaned and firing early.
    if (!this.timer && !this.firing) this.arm(p.deadline);
  }

  /** Drops settled entries from the front (called on add and when the front entry settles). */
  dropSettled(): void {
    const items = this.items;
    let h = this.head;
    while (h < items.length && items[h]!.done) h++;
    if (h === items.length) {
      this.items = [];
      this.head = 0;
    } else if (h > 1024 && h * 2 > items.length) {
      this.items = items.slice(h);
      this.head = 0;
    } else this.head = h;
  }

  /** Stops the timer (the node stopped; every entry was settled). */
  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  isFront(p: Pending): boolean {
    return this.items[this.head] === p;
  }

  private arm(deadline: number): void {
    this.armedFor = deadline;
    this.timer = this.clock.setTimeout(this.fire, Math.max(0, deadline - this.clock.now()));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    // The timer fired for `armedFor`: everything due by then has timed out.
    const limit = Math.max(this.clock.now(), this.armedFor);
    this.firing = true;
    try {
      while (this.head < this.items.length) {
        const p = this.items[this.head]!;
        if (!p.done && p.deadline > limit) break;
        this.head++;
        if (!p.done) this.expire(p);
      }
    } finally {
      this.firing = false;
    }
    this.dropSettled();
    if (this.head < this.items.length) this.arm(this.items[this.head]!.deadline);
    else this.empty();
  };
}

/**
 * Most bytes a lane's numbers add to a message: lane, seq and dep, 9 bytes each at most (msgpack
 * uint64 or float64); the array header stays one byte (a SEND or REQUEST widens to 6 or 7 fields).
 */
const LANE_FIELDS_BYTES = 27;

export class Messenger {
  private readonly oneWay = new Map<string, MessageHandler>();
  private readonly handlers = new Map<string, Handler>();
  private readonly pending = new Map<number, Pending>();
  /** One TimeoutQueue per distinct timeout value in use. */
  private readonly timeouts = new Map<number, TimeoutQueue>();
  private nextId = 1;
  private stopped = false;
  private readonly lanesOut: LaneSender;
  /** Held lane messages, as they came off the wire (`[33, ...]` / `[34, ...]`), with their channel. */
  private readonly lanesIn: LaneReceiver<{ channel: ChannelName; msg: unknown[] }>;

  constructor(private readonly deps: MessengerDeps) {
    this.lanesOut = new LaneSender(deps.clock);
    this.lanesIn = new LaneReceiver(deps.clock, (from, { channel, msg }) =>
      this.dispatchLane(from, channel, msg),
    );
  }

  /** Counters of the ordered lanes (messages held for a predecessor, gaps skipped, stale drops). */
  get laneStats() {
    return this.lanesIn.stats;
  }

  /** `lane` ended (e.g. its actor exited): its numbering is forgotten on every node. */
  closeLane(lane: number): void {
    this.lanesOut.close(lane);
  }

  /** A connection from `from` closed: its lanes stop waiting for what it carried (after a while). */
  connectionLost(from: string): void {
    this.lanesIn.connectionLost(from);
  }

  /** Registers the handler for one-way messages of `kind` (replacing any previous one). */
  on(kind: string, handler: MessageHandler): void {
    this.oneWay.set(kind, handler);
  }

  /** Registers the handler for requests of `kind` (replacing any previous one). */
  handle(kind: string, handler: RequestHandler): void {
    this.handlers.set(kind, { fn: handler, deferred: false });
  }

  /** Registers a handler of `kind` that answers through a ReplySink (replacing any previous one). */
  handleDeferred(kind: string, handler: DeferredRequestHandler): void {
    this.handlers.set(kind, { fn: handler, deferred: true });
  }

  /** Requests awaiting a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  private check(to: string): void {
    if (this.stopped) throw new FoundationError('FND_ERR_NODE_STOPPED');
    if (to !== this.deps.selfName && !this.deps.reachable(to)) {
      throw new FoundationError('FND_ERR_UNKNOWN_NODE', `node ${to} is not an alive member`, {
        node: to,
      });
    }
  }

  // A large binary payload (the message's last field) is not copied: it goes to the socket as the
  // caller's own buffer, after the small encoded head (see encodeParts). Anything else is encoded
  // into scratch bytes that `send` copies into the connection's batch (encodeTransient).
  private out(to: string, channel: ChannelName, msg: unknown[]): void {
    const body = encodeTransient(msg);
    this.deps.send(to, body.byteLength >= this.deps.bulkThreshold ? 'bulk' : channel, body);
  }

  /**
   * `out` for `msg` (a SEND or REQUEST) in ordered lane `lane`: plain while the lane's order holds
   * without numbers, else as the SEND_LANE/REQUEST_LANE it widens into (its fields, then lane,
   * seq and dep, then the payload), behind a marker when one is due (src/cluster/lanes.ts). The
   * channel follows from the plain encoding's size; the payload is encoded once either way.
   */
  private outLane(
    to: string,
    channel: ChannelName,
    lane: number,
    now: number | undefined,
    msg: unknown[],
  ): void {
    const body = encodeTransient(msg);
    // The widened message is up to LANE_FIELDS_BYTES longer: it must still fit the channel's limit.
    const ch = body.byteLength + LANE_FIELDS_BYTES >= this.deps.bulkThreshold ? 'bulk' : channel;
    const lanes = this.lanesOut;
    if (!lanes.next(to, lane, ch, now)) {
      this.deps.send(to, ch, body);
      return;
    }
    try {
      if (lanes.markerSeq !== 0) {
        // Encoded without msgpackr, whose scratch bytes still hold `body`.
        const marker = encodeSimple([
          MSG.SEND_LANE,
          LANE_MARKER,
          lane,
          lanes.markerSeq,
          lanes.markerDep,
          null,
        ]);
        if (!marker) throw new FoundationError('FND_ERR_ENCODE', 'lane marker not encodable');
        this.deps.send(to, 'default', marker);
      }
      const last = msg.length - 1;
      const wider = msg.slice(0, last);
      wider[0] = msg[0] === MSG.SEND ? MSG.SEND_LANE : MSG.REQUEST_LANE;
      wider.push(lane, lanes.seq, lanes.dep, msg[last]);
      this.deps.send(to, ch, widenTransient(body, msg, wider));
    } catch (err) {
      lanes.undo(to, lane);
      throw err;
    }
  }

  /**
   * At-most-once, ordered per (sender, receiver, channel). Throws coded errors synchronously.
   * A payload that is a Uint8Array/Buffer of 64 KiB or more is not copied but written to the
   * socket as it is, later: treat it as handed over and do not modify it (as with `socket.write`).
   */
  send(to: string, kind: string, payload: unknown, opts?: SendOptions): void {
    this.check(to);
    if (to === this.deps.selfName) {
      queueMicrotask(() => this.dispatch(to, 'default', [MSG.SEND, kind, payload]));
      return;
    }
    const lane = opts?.lane;
    if (lane === undefined) this.out(to, opts?.channel ?? 'default', [MSG.SEND, kind, payload]);
    else this.outLane(to, opts?.channel ?? 'default', lane, undefined, [MSG.SEND, kind, payload]);
  }

  /**
   * `send` to several nodes with the message encoded once (pub/sub fan-out). Nodes that are not
   * reachable members are skipped and returned; FND_ERR_NODE_STOPPED / FND_ERR_ENCODE still throw.
   */
  sendMany(to: readonly string[], kind: string, payload: unknown, opts?: SendOptions): string[] {
    if (this.stopped) throw new FoundationError('FND_ERR_NODE_STOPPED');
    const skipped: string[] = [];
    let body: ReturnType<typeof encodeParts> | undefined;
    for (const node of to) {
      if (node === this.deps.selfName) {
        this.send(node, kind, payload, opts);
        continue;
      }
      if (!this.deps.reachable(node)) {
        skipped.push(node);
        continue;
      }
      body ??= encodeParts([MSG.SEND, kind, payload]);
      const channel =
        body.byteLength >= this.deps.bulkThreshold ? 'bulk' : (opts?.channel ?? 'default');
      this.deps.send(node, channel, body);
    }
    return skipped;
  }

  /**
   * Sends a request and resolves with the reply; rejects with a coded error. A payload that is a
   * Uint8Array/Buffer of 64 KiB or more is not copied but written to the socket as it is: do not
   * modify it before the promise resolved (after a rejection it may still be queued for the socket).
   */
  request<T = unknown>(
    to: string,
    kind: string,
    payload: unknown,
    opts?: RequestOptions,
  ): Promise<T> {
    const promise = new Promise<T>(capture);
    this.begin(to, kind, payload, opts, captured.resolve, captured.reject, undefined);
    return promise;
  }

  /**
   * `request`, answered through `target` instead of a promise (called once, possibly before this
   * returns: a request that cannot be sent fails at once). Same rules for payloads and timeouts.
   */
  requestTo(
    to: string,
    kind: string,
    payload: unknown,
    opts: RequestOptions | undefined,
    target: ReplyTarget,
  ): void {
    this.begin(to, kind, payload, opts, undefined, undefined, target);
  }

  private begin(
    to: string,
    kind: string,
    payload: unknown,
    opts: RequestOptions | undefined,
    resolve: Pending['resolve'],
    reject: Pending['reject'],
    target: ReplyTarget | undefined,
  ): void {
    let early: Error | undefined;
    try {
      this.check(to);
      if (this.deps.unreachable?.(to)) early = unreachableError(to, false);
    } catch (err) {
      early = err as Error;
    }
    if (early) {
      if (target) target.failed(early);
      else reject!(early);
      return;
    }
    const id = this.nextId++;
    const timeout = opts?.timeout ?? this.deps.requestTimeoutMs;
    const now = this.deps.clock.now();
    const p: Pending = {
      id,
      to,
      kind,
      timeout,
      deadline: now + timeout,
      resolve,
      reject,
      target,
      done: false,
      timeoutError: opts?.timeoutError,
      subject: opts?.subject,
    };
    this.pending.set(id, p);
    this.timeoutQueue(timeout).add(p);
    const lane = to === this.deps.selfName ? undefined : opts?.lane;
    try {
      if (to === this.deps.selfName)
        queueMicrotask(() => this.dispatch(to, 'default', [MSG.REQUEST, id, kind, payload]));
      else if (lane === undefined)
        this.out(to, opts?.channel ?? 'default', [MSG.REQUEST, id, kind, payload]);
      else
        this.outLane(to, opts?.channel ?? 'default', lane, now, [MSG.REQUEST, id, kind, payload]);
    } catch (err) {
      this.settle(id, p);
      fail(p, err as Error);
    }
  }

  private timeoutQueue(timeout: number): TimeoutQueue {
    let q = this.timeouts.get(timeout);
    if (!q) {
      q = new TimeoutQueue(
        this.deps.clock,
        (p) => this.expire(p),
        () => this.timeouts.delete(timeout),
      );
      this.timeouts.set(timeout, q);
    }
    return q;
  }

  private expire(p: Pending): void {
    this.pending.delete(p.id);
    p.done = true;
    fail(
      p,
      p.timeoutError
        ? p.timeoutError(p.subject, p.timeout)
        : new FoundationError(
            'FND_ERR_REQUEST_TIMEOUT',
            `no reply from ${p.to} to "${p.kind}" within ${p.timeout} ms`,
            { node: p.to, kind: p.kind, timeout: p.timeout },
          ),
    );
  }

  /** Marks a pending request settled and forgets it (the caller resolves or rejects it). */
  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    p.done = true;
    const q = this.timeouts.get(p.timeout);
    if (q?.isFront(p)) q.dropSettled();
  }

  /** Rejects every request pending towards `name`: all its connections closed and stayed closed. */
  nodeUnreachable(name: string): void {
    this.lanesIn.connectionLost(name);
    for (const [id, p] of this.pending) {
      if (p.to !== name) continue;
      this.settle(id, p);
      fail(p, unreachableError(name, true));
    }
  }

  /** Rejects every request pending towards `name` (it is down or gone). */
  nodeDown(name: string, reason: 'down' | 'left'): void {
    this.lanesOut.forget(name);
    this.lanesIn.forget(name);
    for (const [id, p] of this.pending) {
      if (p.to !== name) continue;
      this.settle(id, p);
      fail(
        p,
        new FoundationError(
          'FND_ERR_NODE_DOWN',
          `node ${name} ${reason === 'left' ? 'left the cluster' : 'was declared down'}`,
          { node: name, reason },
        ),
      );
    }
  }

  stop(): void {
    this.stopped = true;
    this.lanesIn.stop();
    for (const [id, p] of this.pending) {
      this.settle(id, p);
      fail(
        p,
        new FoundationError('FND_ERR_NODE_STOPPED', 'this node stopped before the reply arrived'),
      );
    }
    for (const q of this.timeouts.values()) q.cancel();
    this.timeouts.clear();
  }

  /** Handles one data message from `from`. Never throws. */
  dispatch(from: string, channel: ChannelName, msg: unknown[]): void {
    switch (msg[0]) {
      case MSG.SEND:
        this.oneWayIn(from, msg[1], msg[2]);
        return;
      case MSG.REQUEST:
        this.requestIn(from, channel, msg[1], msg[2], msg[3]);
        return;
      case MSG.RESPONSE:
        this.responseIn(from, msg);
        return;
      case MSG.SEND_LANE:
      case MSG.REQUEST_LANE: {
        // [33, kind, lane, seq, dep, payload] / [34, id, kind, lane, seq, dep, payload]
        const at = msg[0] === MSG.SEND_LANE ? 2 : 3;
        const lane = msg[at];
        const seq = msg[at + 1];
        const dep = msg[at + 2];
        if (!laneNumber(lane) || !laneNumber(seq) || seq < 1 || !laneNumber(dep) || dep >= seq) {
          this.deps.log.debug({ from, type: msg[0] }, 'malformed lane message; dropped');
          return;
        }
        // The common case (nothing of its lane waiting) is delivered here, allocating nothing.
        if (this.lanesIn.admit(from, lane, seq, dep)) this.dispatchLane(from, channel, msg);
        else this.lanesIn.receive(from, lane, seq, dep, { channel, msg });
        return;
      }
    }
  }

  /** Delivers a lane message (its predecessor was delivered); a marker has done its part then. */
  private dispatchLane(from: string, channel: ChannelName, msg: unknown[]): void {
    if (msg[0] === MSG.SEND_LANE) {
      if (msg[1] !== LANE_MARKER) this.oneWayIn(from, msg[1], msg[5]);
    } else this.requestIn(from, channel, msg[1], msg[2], msg[6]);
  }

  private oneWayIn(from: string, kind: unknown, payload: unknown): void {
    const h = typeof kind === 'string' ? this.oneWay.get(kind) : undefined;
    if (!h) {
      this.deps.log.debug({ from, kind }, 'no handler for message; dropped');
      return;
    }
    try {
      h(payload, from);
    } catch (err) {
      this.deps.log.error({ from, kind, err: (err as Error).message }, 'message handler threw');
    }
  }

  private requestIn(
    from: string,
    channel: ChannelName,
    id: unknown,
    kind: unknown,
    payload: unknown,
  ): void {
    if (typeof id !== 'number' || typeof kind !== 'string') return;
    const h = this.handlers.get(kind);
    if (!h) {
      const e = new FoundationError(
        'FND_ERR_NO_HANDLER',
        `node ${this.deps.selfName} has no handler for "${kind}"`,
        { kind },
      );
      this.reply(from, channel, id, false, e.toJSON());
      return;
    }
    if (h.deferred) {
      const sink = new Reply(this, from, channel, id);
      try {
        (h.fn as DeferredRequestHandler)(payload, from, sink);
      } catch (err) {
        sink.reply(false, err);
      }
      return;
    }
    let result: unknown;
    try {
      result = (h.fn as RequestHandler)(payload, from);
    } catch (err) {
      this.reply(from, channel, id, false, serializeError(err));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (v) => this.reply(from, channel, id, true, v),
        (err) => this.reply(from, channel, id, false, serializeError(err)),
      );
    } else this.reply(from, channel, id, true, result);
  }

  private responseIn(from: string, msg: unknown[]): void {
    const id = msg[1];
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p || p.to !== from) return;
    this.settle(id as number, p);
    if (msg[2]) succeed(p, msg[3]);
    else fail(p, remoteError(from, msg[3]));
  }

  /** @internal A ReplySink's answer: `value` is the reply, or (ok false) the error to send. */
  answer(to: string, channel: ChannelName, id: number, ok: boolean, value: unknown): void {
    this.reply(to, channel, id, ok, ok ? value : serializeError(value));
  }

  private reply(to: string, channel: ChannelName, id: number, ok: boolean, value: unknown): void {
    if (to === this.deps.selfName) {
      this.dispatch(to, channel, [MSG.RESPONSE, id, ok, value]);
      return;
    }
    try {
      this.out(to, channel, [MSG.RESPONSE, id, ok, value]);
    } catch (err) {
      this.deps.log.warn({ to, err: (err as Error).message }, 'could not send reply');
      // A reply that cannot be encoded still answers the caller, with the reason, not a timeout.
      if (ok && (err as FoundationError).code === 'FND_ERR_ENCODE') {
        this.reply(to, channel, id, false, serializeError(err));
      }
    }
  }
}

function remoteError(from: string, value: unknown): FoundationError {
  const v = (value ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
  const message = typeof v.message === 'string' ? v.message : 'remote error';
  if (isErrorCode(v.code) && v.code !== 'FND_ERR_REMOTE') {
    return FoundationError.fromWire(v.code, `node ${from}: ${message}`, {
      ...(v.data as object),
      node: from,
      remote: true,
    });
  }
  return new FoundationError('FND_ERR_REMOTE', `node ${from} failed: ${message}`, {
    node: from,
    code: v.code,
    message,
    data: v.data,
  });
}

/** `sent`: whether the request had gone out (false: refused before sending, so it surely did not run). */
function unreachableError(node: string, sent: boolean): FoundationError {
  return new FoundationError(
    'FND_ERR_NODE_UNREACHABLE',
    `node ${node} is unreachable: every connection to it closed and it did not answer a re-dial`,
    { node, sent },
  );
}

const laneNumber = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
