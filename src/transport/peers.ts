// Peers: one outbound connection per (peer, channel), dialled lazily (control eagerly for
// members), re-dialled with jittered backoff, with a bounded outbound queue and one write per tick
// per connection. Data flows one way per connection: a node sends on the connections it dialled
// and receives on the ones it accepted, so two nodes never race to dial each other.
import { type ErrorCode, FoundationError } from '../errors.js';
import { Backoff } from '../util/backoff.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { publish } from '../util/diagnostics.js';
import type { Logger } from '../util/log.js';
import {
  Admission,
  DEFAULT_MAX_PENDING_CONNECTIONS,
  DEFAULT_MAX_PENDING_PER_SOURCE,
  type Refusal,
} from './admission.js';
import { busyPoller } from './busy-poll.js';
import { type EncodedBody, LARGE_BINARY } from './codec.js';
import { DEFAULT_DIAL_LIMITS, DialLimiter, type DialLimits } from './dial-limiter.js';
import { InboundBudget } from './frame.js';
import type { Identity } from './handshake.js';
import { Link, type LinkOptions, type PeerHello } from './link.js';
import { type ChannelName, FRAME_HEADER, frameLimit } from './protocol.js';
import { Reachability } from './reachability.js';
import { type Address, formatAddress, type RawConnection, type Transport } from './types.js';

export interface PeerManagerOptions {
  transport: Transport;
  self: Identity;
  secret: string;
  clock: Clock;
  log: Logger;
  maxFrameSize: number;
  /** Ask for encrypted records on every connection (see the `encrypt` option). */
  encrypt: boolean;
  /** Bytes all inbound connections together may hold in partly received large frames. */
  maxInboundBufferBytes: number;
  /** Most bytes queued for one (peer, channel) before sends are refused with FND_ERR_BACKPRESSURE. */
  maxQueueBytes: number;
  /** Busy-poll window after traffic, in ms (busy-poll.ts); 0 or undefined: off. */
  busyPollMs?: number;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  backoff: { baseMs: number; maxMs: number };
  /** Send every channel over one connection (only to measure head-of-line blocking). */
  singleConnection: boolean;
  /**
   * How long a member whose every connection closed may take to come back before it is reported
   * unreachable (see reachability.ts). Default 1000 ms.
   */
  unreachableAfterMs?: number;
  /** Global dial rate and per-address backoff (src/transport/dial-limiter.ts). Default DEFAULT_DIAL_LIMITS. */
  dialLimits?: DialLimits;
  /** Most inbound connections pending (not yet authenticated) at once. Default 256. */
  maxPendingConnections?: number;
  /** Most of those from one source address (IPv6: per /64). Default 32. */
  maxPendingPerSource?: number;
}

export interface PeerEvents {
  /** A decoded message from an authenticated peer. Never called concurrently; must not block. */
  message(from: PeerHello, channel: ChannelName, msg: unknown[]): void;
  /**
   * An inbound handshake passed; may refuse (e.g. duplicate name). The pool learns nothing from
   * it: membership hands it addresses (`learn`).
   */
  accept(peer: PeerHello): { code: ErrorCode; message: string } | undefined;
  /**
   * A dial this node made was answered and authenticated by `peer` (first-hand news of it for
   * membership). Called synchronously before the dial resolves; a `learn(peer.name, ...)` made
   * from here during `join()` adopts the new connection as that peer's control link.
   */
  dialled?(peer: PeerHello): void;
  /** A connection to/from `name` closed unexpectedly (hint for failure detection). */
  linkDown(name: string, channel: ChannelName, direction: 'in' | 'out'): void;
  /** A handshake failed; `err.code` says why. */
  handshakeError(err: FoundationError, remote: string, direction: 'in' | 'out'): void;
  /**
   * Every connection to and from member `name` closed and it did not come back within
   * `unreachableAfterMs` (or a re-dial failed first): its process is probably gone. Membership
   * has not necessarily declared it down.
   */
  unreachable?(name: string, reason: string): void;
  /** A peer reported unreachable has a connection again. */
  reachable?(name: string): void;
}

/**
 * Bodies (and SplitBody tails) at least this large are written to the socket as they are instead
 * of being copied into a batch. The same size as the codec's LARGE_BINARY: a transient body
 * (encodeTransient) below it is copied at once, as it must be.
 */
const ZERO_COPY_BYTES = LARGE_BINARY;

/**
 * Queued frames are copied into slabs; a batch takes its bytes from the current slab, so sending
 * allocates a buffer per slab, not per message or per flush. A slab is let go when a batch no
 * longer fits, and freed once written. A new slab holds about SLAB_BATCHES batches the size of the
 * last one, within these bounds (or one frame that needs more): a busy connection gets 32 KiB
 * slabs, an idle one (a member's control link) 2 KiB.
 */
const SLAB_MIN = 2 * 1024;
const SLAB_MAX = 32 * 1024;
const SLAB_BATCHES = 16;

/** A large body queued behind a batch holding its header: written as it is, not copied. */
interface Tail {
  tail: Uint8Array;
}

class Outbound {
  link: Link | undefined;
  private closed = false;
  connecting = false;
  /**
   * What the next flush writes, in order: batches (sealed in place: HEADROOM free bytes, frames,
   * TAILROOM free bytes) and the large bodies between them.
   */
  private parts: Array<Buffer | Tail> = [];
  /** The slab frames are copied into, how much of it is taken, and where the open batch starts (-1: none). */
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private batchStart = -1;
  /** Bytes of the last batch closed (sizes the next slab). */
  private lastBatch = 0;
  queuedBytes = 0;
  private flushScheduled = false;
  private waitingDrain = false;
  private retry: TimerHandle | undefined;
  readonly backoff: Backoff;

  constructor(
    readonly peer: Peer,
    readonly channel: ChannelName,
    private readonly mgr: PeerManager,
  ) {
    this.backoff = new Backoff(mgr.opts.backoff);
  }

  /**
   * Queues one message body (a SplitBody's tail included: it counts against `maxQueueBytes` like
   * any other byte). A body below ZERO_COPY_BYTES, or a SplitBody whose tail is, is copied into
   * the open batch before this returns, with its length header (so a transient body may be
   * overwritten afterwards); a larger body, or a larger tail, is kept by reference and written as
   * it is (what precedes and follows it is copied).
   */
  enqueue(body: EncodedBody): void {
    const size = FRAME_HEADER + body.byteLength;
    if (this.queuedBytes > 0 && this.queuedBytes + size > this.mgr.opts.maxQueueBytes) {
      throw new FoundationError(
        'FND_ERR_BACKPRESSURE',
        `outbound queue to ${this.peer.name} (${this.channel}) holds ${this.queuedBytes} bytes`,
        { peer: this.peer.name, channel: this.channel, queuedBytes: this.queuedBytes },
      );
    }
    // Everything is copied into the open batch except a large body (or tail): that one ends the
    // batch, behind its header (and a SplitBody's head), and is written as it is.
    const whole = body instanceof Uint8Array;
    const head = whole ? undefined : body.head;
    const rest = whole ? body : body.tail;
    const after = whole ? undefined : body.after;
    const large = rest.length >= ZERO_COPY_BYTES ? rest : undefined;
    const n = FRAME_HEADER + (head?.length ?? 0) + (large ? 0 : rest.length + (after?.length ?? 0));
    let at = this.reserve(n);
    const slab = this.slab!;
    slab.writeUInt32BE(body.byteLength, at);
    at += FRAME_HEADER;
    if (head) {
      slab.set(head, at);
      at += head.length;
    }
    if (large) {
      this.closeBatch();
      this.parts.push({ tail: large });
      // The fields after it (an actor call's caller) open the next batch.
      if (after) {
        const a = this.reserve(after.length); // may start a new slab
        this.slab!.set(after, a);
      }
    } else {
      slab.set(rest, at);
      if (after) slab.set(after, at + rest.length);
    }
    this.queuedBytes += size;
    if (this.link) this.scheduleFlush();
    else if (!this.retry) this.connect(); // an armed retry carries the queue: keep the backoff
  }

  /** Room for `n` more bytes in the open batch (opening one, in a new slab if need be): their offset in the slab. */
  private reserve(n: number): number {
    if (this.batchStart >= 0) {
      if (this.slab!.length - this.slabUsed >= n + Link.TAILROOM) {
        const at = this.slabUsed;
        this.slabUsed += n;
        return at;
      }
      this.closeBatch();
    }
    const need = Link.HEADROOM + n + Link.TAILROOM;
    if (this.slab === undefined || this.slab.length - this.slabUsed < need) {
      const size = Math.min(SLAB_MAX, Math.max(SLAB_MIN, SLAB_BATCHES * this.lastBatch));
      this.slab = Buffer.allocUnsafe(Math.max(size, need));
      this.slabUsed = 0;
    }
    this.batchStart = this.slabUsed;
    const at = this.batchStart + Link.HEADROOM;
    this.slabUsed = at + n;
    return at;
  }

  /** Ends the open batch (its TAILROOM taken from the slab) and queues it for the next flush. */
  private closeBatch(): void {
    if (this.batchStart < 0) return;
    const end = this.slabUsed + Link.TAILROOM;
    this.parts.push(this.slab!.subarray(this.batchStart, end));
    this.lastBatch = end - this.batchStart;
    this.slabUsed = end;
    this.batchStart = -1;
  }

  private get hasQueued(): boolean {
    return this.parts.length > 0 || this.batchStart >= 0;
  }

  // process.nextTick, not setImmediate: everything queued by the current macrotask and the
  // microtasks it spawns (e.g. replies resolved from one socket read) still goes out in one write,
  // but without waiting for the event loop's check phase, which costs a request/response round
  // trip several microseconds.
  private scheduleFlush(): void {
    if (this.flushScheduled || this.waitingDrain) return;
    this.flushScheduled = true;
    process.nextTick(this.flushTask);
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /**
   * Writes everything queued: each batch sealed in place as one record (one syscall for the usual
   * single batch), each large body as it is (sealed as records of its own, not copied when
   * authenticating only; the socket keeps a reference to it until the kernel took it). Does
   * nothing while the socket asked us to wait for `drain`.
   */
  flush(): void {
    const link = this.link;
    if (!link || this.waitingDrain || !this.hasQueued) return;
    this.closeBatch();
    const parts = this.parts;
    this.parts = [];
    this.queuedBytes = 0;
    let ok = true;
    for (const part of parts) {
      ok = (part instanceof Uint8Array ? link.writeBatch(part) : link.write(part.tail)) && ok;
    }
    if (!ok) this.waitingDrain = true;
    const poll = this.mgr.opts.busyPollMs;
    if (poll) busyPoller.sent(poll); // an answer may come back within the window
  }

  connect(): void {
    if (this.closed || this.link || this.connecting || this.peer.removed || this.mgr.stopped)
      return;
    this.retry?.cancel();
    this.retry = undefined;
    this.connecting = true;
    this.mgr
      .dialLink(this.peer.address, this.channel)
      .then((link) => {
        this.connecting = false;
        if (link.peer.name !== this.peer.name) {
          link.destroy();
          throw new Error(
            `${formatAddress(this.peer.address)} is now node ${link.peer.name}, not ${this.peer.name}`,
          );
        }
        // `this.link` too: join()'s connection to this peer may have been adopted meanwhile.
        if (this.closed || this.link || this.peer.removed || this.mgr.stopped) {
          link.end();
          return;
        }
        this.attach(link);
      })
      .catch((err: Error) => {
        this.connecting = false;
        // This node's own dial rate refused the dial: nothing was tried, so nothing failed.
        const rate =
          err instanceof FoundationError &&
          err.code === 'FND_ERR_DIAL_RATE_LIMITED' &&
          err.data?.reason === 'rate';
        if (!rate) this.mgr.reach.dialFailed(this.peer.name, err.message);
        this.mgr.opts.log.debug(
          { peer: this.peer.name, channel: this.channel, err: err.message },
          'connect failed',
        );
        this.scheduleRetry(rate ? Number((err as FoundationError).data?.retryInMs) || 0 : 0);
      });
  }

  attach(link: Link): void {
    this.link = link;
    this.mgr.reach.up(this.peer.name);
    this.backoff.reset();
    this.waitingDrain = false;
    link.setHandlers({
      message: () => {}, // outbound connections carry no data back after the handshake
      drain: () => {
        this.waitingDrain = false;
        this.flush();
      },
      close: (err) => {
        const unexpected =
          this.link === link && !this.peer.removed && !this.mgr.stopped && this.peer.keepAlive;
        this.mgr.reach.down(this.peer.name, unexpected);
        if (this.link !== link) return;
        this.link = undefined;
        publish('transportDisconnect', () => ({
          peer: this.peer.name,
          channel: this.channel,
          reason: err?.message,
        }));
        if (!this.peer.removed && !this.mgr.stopped) {
          this.mgr.events.linkDown(this.peer.name, this.channel, 'out');
          this.scheduleRetry();
        }
      },
    });
    publish('transportConnect', () => ({
      peer: this.peer.name,
      channel: this.channel,
      address: link.remote,
    }));
    this.flush();
  }

  /** Re-dials after the backoff's next delay, and not before `atLeastMs`. */
  private scheduleRetry(atLeastMs = 0): void {
    if (this.peer.removed || this.mgr.stopped || this.retry) return;
    if (!this.hasQueued && !(this.channel === 'control' && this.peer.keepAlive)) return;
    this.retry = this.mgr.opts.clock.setTimeout(
      () => {
        this.retry = undefined;
        this.connect();
      },
      Math.max(atLeastMs, this.backoff.next()),
    );
  }

  /** Drops the connection to re-dial (the peer moved to another address). */
  reset(): void {
    const link = this.link;
    this.link = undefined;
    link?.destroy();
    this.retry?.cancel();
    this.retry = undefined;
    this.backoff.reset();
    if (this.hasQueued || (this.channel === 'control' && this.peer.keepAlive)) this.connect();
  }

  close(graceful: boolean): void {
    // Closed for good: a dial still in flight must not attach to this discarded channel.
    this.closed = true;
    this.retry?.cancel();
    this.retry = undefined;
    if (graceful) {
      this.flush();
      this.link?.end();
    } else this.link?.destroy();
    this.link = undefined;
    this.parts = [];
    this.slab = undefined;
    this.batchStart = -1;
    this.queuedBytes = 0;
  }
}

/** Refused admissions are logged at most this often (an attack makes thousands). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export class Peer {
  readonly channels = new Map<ChannelName, Outbound>();
  removed = false;
  keepAlive = false;
  constructor(
    readonly name: string,
    public address: Address,
    public incarnation: number,
  ) {}
}

export class PeerManager {
  private readonly peers = new Map<string, Peer>();
  private readonly inbound = new Set<Link>();
  private readonly linkOptions: LinkOptions;
  /** Every dial asks it first (dialLink). */
  readonly limiter: DialLimiter;
  /** Messages queued to peers and received from them, per channel, since start (telemetry). */
  readonly counts = {
    sent: { control: 0, default: 0, bulk: 0 } as Record<ChannelName, number>,
    received: { control: 0, default: 0, bulk: 0 } as Record<ChannelName, number>,
  };
  /** Open connections per peer, and which members lost them all (fast failure, reachability.ts). */
  readonly reach: Reachability;
  /** A control link join() offers to membership; learn() adopts it for that peer. */
  private adopting: Link | undefined;
  stopped = false;
  /** Pending (unauthenticated) inbound connections, capped in total and per source. */
  readonly admission: Admission;
  private refusalsUnlogged = 0;
  private refusalLoggedAt = Number.NEGATIVE_INFINITY;
  /** The last refused admission not logged yet, and the timer that logs it at the interval's end. */
  private lastRefusal: Refusal | undefined;
  private refusalTimer: TimerHandle | undefined;
  /** Inbound connections refused because of bad frames or handshakes (for tests and stats). */
  rejected = 0;

  constructor(
    readonly opts: PeerManagerOptions,
    readonly events: PeerEvents,
  ) {
    this.linkOptions = {
      self: opts.self,
      secret: opts.secret,
      maxFrameSize: (channel) => frameLimit(channel, opts.maxFrameSize, opts.singleConnection),
      encrypt: opts.encrypt,
      budget: new InboundBudget(opts.maxInboundBufferBytes),
      handshakeTimeoutMs: opts.handshakeTimeoutMs,
      clock: opts.clock,
    };
    this.limiter = new DialLimiter(opts.dialLimits ?? DEFAULT_DIAL_LIMITS, opts.clock);
    this.reach = new Reachability(opts.clock, opts.unreachableAfterMs ?? 1000, {
      unreachable: (name, reason) => {
        this.opts.log.info({ peer: name, reason }, 'peer unreachable');
        events.unreachable?.(name, reason);
      },
      reachable: (name) => events.reachable?.(name),
      redial: (name) => {
        const peer = this.peers.get(name);
        if (peer?.keepAlive && !this.stopped) this.outbound(peer, 'control').connect();
      },
    });
    this.admission = new Admission(
      {
        maxPending: opts.maxPendingConnections ?? DEFAULT_MAX_PENDING_CONNECTIONS,
        maxPendingPerSource: opts.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE,
      },
      (r) => this.admissionRefused(r),
    );
  }

  async listen(address: Address): Promise<Address> {
    return this.opts.transport.listen(address, (conn) => this.accept(conn), {
      admission: this.admission,
      refused: (err, remote) => this.handshakeFailed(err, remote, 'in'),
    });
  }

  private accept(conn: RawConnection): void {
    if (this.stopped) {
      conn.destroy();
      return;
    }
    // Unauthenticated connections cost a socket and a timer each: cap how many may be pending, in
    // total and per source. The TCP transport took the slot already, before reading a byte.
    const ticket = conn.ticket ?? this.admission.admit(conn.source ?? conn.remote);
    if (!ticket) {
      conn.destroy();
      return;
    }
    const settled = Link.server(conn, this.linkOptions, (hello) => this.events.accept(hello));
    settled.then(ticket.release, ticket.release);
    settled.then(
      (link) => {
        if (this.stopped) {
          link.destroy();
          return;
        }
        const from = link.peer;
        this.inbound.add(link);
        this.reach.up(from.name);
        const poll = this.opts.busyPollMs;
        link.setHandlers({
          message: (msg) => {
            this.counts.received[from.channel]++;
            if (poll) busyPoller.received(poll); // more may follow within the window
            this.events.message(from, from.channel, msg);
          },
          drain: () => {},
          close: (err) => {
            this.inbound.delete(link);
            this.reach.down(
              from.name,
              !this.stopped && this.peers.get(from.name)?.keepAlive === true,
            );
            if (err instanceof FoundationError) {
              // A bad frame from an authenticated peer: we closed it.
              this.rejected++;
              this.opts.log.warn(
                { peer: from.name, remote: link.remote, code: err.code, err: err.message },
                'closed connection from peer',
              );
              publish('transportFrameError', () => ({
                peer: from.name,
                remote: link.remote,
                code: err.code,
                reason: err.message,
              }));
            } else if (err) {
              // The socket failed (e.g. ECONNRESET from a killed peer): failure detection's business.
              this.opts.log.debug(
                { peer: from.name, remote: link.remote, err: err.message },
                'connection from peer lost',
              );
            }
            if (!this.stopped) this.events.linkDown(from.name, from.channel, 'in');
          },
        });
      },
      (err: FoundationError) => this.handshakeFailed(err, conn.remote, 'in'),
    );
  }

  /** The one path for refused connections (TLS or handshake): warn, diagnostics, node 'error'. */
  private handshakeFailed(err: FoundationError, remote: string, direction: 'in' | 'out'): void {
    if (this.stopped) {
      // This node's own stop closed the connection mid-handshake: not the peer's doing.
      this.opts.log.debug({ remote, code: err.code, direction }, 'handshake ended by stop');
      return;
    }
    if (direction === 'in') this.rejected++;
    this.opts.log.warn(
      { remote, code: err.code, err: err.message },
      direction === 'in' ? 'inbound handshake failed' : 'outbound handshake failed',
    );
    publish('transportHandshakeError', () => ({ remote, code: err.code, direction }));
    this.events.handshakeError(err, remote, direction);
  }

  /**
   * Logs refused admissions, at most one line per interval with the count (an attack makes
   * thousands): the first at once, the rest of a burst when the interval ends.
   */
  private admissionRefused(r: Refusal): void {
    this.rejected++;
    this.refusalsUnlogged++;
    this.lastRefusal = r;
    const clock = this.opts.clock;
    const wait = this.refusalLoggedAt + REFUSAL_LOG_INTERVAL_MS - clock.now();
    if (wait <= 0) this.logRefusals();
    else
      this.refusalTimer ??= clock.setTimeout(() => {
        this.refusalTimer = undefined;
        this.logRefusals();
      }, wait);
  }

  private logRefusals(): void {
    const r = this.lastRefusal;
    if (!r || this.refusalsUnlogged === 0 || this.stopped) return;
    this.refusalLoggedAt = this.opts.clock.now();
    const { maxPending, maxPendingPerSource } = this.admission.limits;
    this.opts.log.warn(
      { ...r, refused: this.refusalsUnlogged, maxPending, maxPendingPerSource },
      r.limit === 'source'
        ? 'too many pending connections from one source; connections refused'
        : 'too many pending connections; connections refused',
    );
    this.refusalsUnlogged = 0;
    this.lastRefusal = undefined;
  }

  /**
   * Opens and authenticates one connection; used for channels and for joining by address. Every
   * dial of this node goes through here, so here the dial limiter is asked first: a refused dial
   * rejects with FND_ERR_DIAL_RATE_LIMITED without opening a socket. A failed connect or
   * handshake backs that address off. The node that answered is reported to `events.dialled`
   * (unless `report` is false: join() reports it itself).
   */
  async dialLink(address: Address, channel: ChannelName, report = true): Promise<Link> {
    const key = formatAddress(address);
    const refusal = this.limiter.acquire(key);
    if (refusal) {
      throw new FoundationError(
        'FND_ERR_DIAL_RATE_LIMITED',
        `not dialling ${key}: ${refusal.reason === 'rate' ? 'dial rate exceeded' : 'address backed off after failed dials'}`,
        { address: key, reason: refusal.reason, retryInMs: Math.ceil(refusal.retryInMs) },
      );
    }
    let conn: RawConnection;
    try {
      conn = await this.opts.transport.connect(address, this.opts.connectTimeoutMs);
    } catch (err) {
      this.limiter.failed(key);
      // A refusal the transport explained (TLS): reported like a handshake failure.
      if (err instanceof FoundationError) {
        this.handshakeFailed(err, formatAddress(address), 'out');
        throw err;
      }
      const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new FoundationError(
        'FND_ERR_CONNECT',
        `cannot connect to ${formatAddress(address)}: ${cause}`,
        {
          address: formatAddress(address),
          cause,
        },
      );
    }
    let link: Link;
    try {
      link = await Link.client(conn, channel, this.linkOptions);
    } catch (err) {
      this.limiter.failed(key);
      this.handshakeFailed(err as FoundationError, key, 'out');
      throw err;
    }
    this.limiter.succeeded(key);
    if (report && !this.stopped) this.events.dialled?.(link.peer);
    return link;
  }

  /**
   * Dials an address whose node we may not know yet (discovery), on the control channel, and
   * reports who answered (`events.dialled`). If membership then hands the pool that node's
   * address (`learn`), the connection becomes its control link; otherwise it is closed.
   */
  async join(address: Address): Promise<PeerHello> {
    const link = await this.dialLink(address, this.route('control'), false);
    const hello = link.peer;
    this.adopting = link;
    try {
      if (!this.stopped) this.events.dialled?.(hello);
    } finally {
      if (this.adopting === link) {
        this.adopting = undefined;
        link.end();
      }
    }
    return hello;
  }

  /**
   * Membership hands the pool a member's address (or its newer incarnation); a newer incarnation
   * at a new address re-dials. The only way the pool learns of a peer. Also clears the dial
   * backoff of that address: a member vouched for it.
   */
  learn(name: string, address: Address, incarnation: number): Peer {
    let peer = this.peers.get(name);
    if (!peer || (peer.removed && incarnation >= peer.incarnation)) {
      peer = new Peer(name, address, incarnation);
      this.peers.set(name, peer);
    } else if (incarnation >= peer.incarnation) {
      const moved = formatAddress(peer.address) !== formatAddress(address);
      peer.incarnation = incarnation;
      if (moved) {
        peer.address = address;
        for (const out of peer.channels.values()) out.reset();
      }
    }
    this.limiter.succeeded(formatAddress(peer.address));
    const offered = this.adopting;
    if (offered?.peer.name === name && !peer.removed && !this.stopped) {
      this.adopting = undefined;
      const out = this.outbound(peer, 'control');
      if (out.link) offered.end();
      else out.attach(offered);
    }
    return peer;
  }

  get(name: string): Peer | undefined {
    return this.peers.get(name);
  }

  /** Whether every connection to and from `name` closed and it did not come back in time. */
  isUnreachable(name: string): boolean {
    return this.reach.isUnreachable(name);
  }

  /** Keep the control connection to this peer open (and re-dialled) while it is a member. */
  keepAlive(name: string, on: boolean): void {
    const peer = this.peers.get(name);
    if (!peer || peer.removed) return;
    peer.keepAlive = on;
    if (on) this.outbound(peer, 'control').connect();
    else this.reach.forget(name);
  }

  private route(channel: ChannelName): ChannelName {
    return this.opts.singleConnection ? 'control' : channel;
  }

  private outbound(peer: Peer, channel: ChannelName): Outbound {
    const ch = this.route(channel);
    let out = peer.channels.get(ch);
    if (!out) {
      out = new Outbound(peer, ch, this);
      peer.channels.set(ch, out);
    }
    return out;
  }

  /**
   * Queues one encoded message body for `name` on `channel`. Throws FND_ERR_UNKNOWN_NODE for a
   * peer we have no address for, FND_ERR_BACKPRESSURE when the queue is full.
   *
   * A body below 64 KiB is copied into the connection's batch before this returns (so it may be
   * transient, see encodeTransient). Large buffers are not copied: a body, or a SplitBody's tail,
   * of 64 KiB or more is handed to the socket as it is when the queue is flushed, and the socket
   * holds on to it until the kernel took the bytes. They must not be modified after this
   * call (node's `socket.write` has the same rule); once the peer has answered a request, they
   * have all been sent.
   */
  send(name: string, channel: ChannelName, body: EncodedBody): void {
    if (this.stopped) throw new FoundationError('FND_ERR_NODE_STOPPED');
    const peer = this.peers.get(name);
    if (!peer || peer.removed)
      throw new FoundationError('FND_ERR_UNKNOWN_NODE', `no route to node ${name}`, { node: name });
    const max = frameLimit(this.route(channel), this.opts.maxFrameSize, this.opts.singleConnection);
    if (body.byteLength > max) {
      throw new FoundationError(
        'FND_ERR_FRAME_TOO_LARGE',
        `message of ${body.byteLength} bytes to ${name} on ${channel}`,
        { length: body.byteLength, max, channel },
      );
    }
    const out = this.outbound(peer, channel);
    out.enqueue(body);
    this.counts.sent[out.channel]++;
  }

  /**
   * Closes a peer's connections, its own to this node included, and stops re-dialling, but
   * remembers its address (it may come back).
   */
  disconnect(name: string): void {
    const peer = this.peers.get(name);
    if (peer) peer.keepAlive = false;
    // Its connections to this node go too: bytes it wrote while cut off (a verdict about a third
    // member, say) can reach this node after a partition heals, TCP retransmitting them even from
    // a socket the sender has closed, and by then it may count as a member again. A closed socket
    // answers them with a reset; what it has to say comes again over a new connection.
    for (const link of this.inbound) if (link.peer.name === name) link.destroy();
    this.reach.forget(name);
    if (!peer) return;
    for (const out of peer.channels.values()) out.close(false);
    peer.channels.clear();
  }

  /** Forgets a peer: closes its connections (flushing them when graceful) and stops re-dialling. */
  remove(name: string, graceful = false): void {
    const peer = this.peers.get(name);
    if (!peer) return;
    peer.removed = true;
    peer.keepAlive = false;
    this.reach.forget(name);
    for (const out of peer.channels.values()) out.close(graceful);
    peer.channels.clear();
    // Forget it entirely (learn() recreates it if it comes back): names must not pile up.
    this.peers.delete(name);
  }

  /** Bytes waiting in outbound queues (not yet handed to the OS). */
  queuedBytes(name: string): number {
    let n = 0;
    for (const out of this.peers.get(name)?.channels.values() ?? []) n += out.queuedBytes;
    return n;
  }

  /** Flushes queues and closes everything. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.refusalTimer?.cancel();
    this.refusalTimer = undefined;
    this.reach.stop();
    for (const peer of this.peers.values())
      for (const out of peer.channels.values()) out.close(true);
    for (const link of this.inbound) link.end();
    // Give ended sockets a moment to flush before the transport destroys them.
    await new Promise((r) => setTimeout(r, 20));
    await this.opts.transport.close();
  }
}
