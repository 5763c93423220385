// Streams between nodes: an async iterable passed as a call argument or returned as a result
// flows chunk by chunk over the bulk channel with credit-based flow control. The consumer grants
// credit (at most `streamWindow` chunks ahead) as it reads, so it never holds more than
// streamWindow × maxChunkBytes of one stream; cancelling either side stops the other, and a node
// going down fails every stream shared with it.
import { FoundationError } from '../errors.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { decodeStream, type ServiceLimits, SVC_KINDS } from './wire.js';

export interface StreamNet {
  /** Sends a stream message; `bulk` puts it on the bulk channel (data, end, failure). */
  send(to: string, payload: unknown, bulk: boolean): void;
}

interface Producer {
  to: string;
  it: AsyncIterator<unknown>;
  credit: number;
  pumping: boolean;
  done: boolean;
  /** Armed until the first credit arrives: a consumer that never shows up frees the stream. */
  idle: TimerHandle | undefined;
}

interface Consumer {
  from: string;
  id: number;
  queue: unknown[];
  /** Chunks read since the last credit grant. */
  read: number;
  ended: boolean;
  error: FoundationError | undefined;
  wake: (() => void) | undefined;
}

/** Whether `v` is something to stream (an async iterable that is not a plain value). */
export function isStreamable(v: unknown): v is AsyncIterable<unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

function cancelled(reason: string, node: string): FoundationError {
  return new FoundationError('FND_ERR_STREAM_CANCELLED', `stream with ${node}: ${reason}`, {
    reason,
    node,
  });
}

export class Streams {
  private nextId = 1;
  private readonly producers = new Map<number, Producer>();
  private readonly consumers = new Map<string, Consumer>();
  /** Open streams per peer (both directions), bounded by maxStreamsPerPeer. */
  private readonly perPeer = new Map<string, number>();

  constructor(
    private readonly net: StreamNet,
    private readonly limits: ServiceLimits,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** How long a produced stream waits for its consumer's first credit, ms. */
    private readonly idleMs: number,
  ) {}

  private count(peer: string, delta: number): void {
    const n = (this.perPeer.get(peer) ?? 0) + delta;
    if (n <= 0) this.perPeer.delete(peer);
    else this.perPeer.set(peer, n);
  }

  private checkRoom(peer: string): void {
    if ((this.perPeer.get(peer) ?? 0) >= this.limits.maxStreamsPerPeer) {
      throw new FoundationError(
        'FND_ERR_SERVICE_MESSAGE',
        `${peer} already has ${this.limits.maxStreamsPerPeer} streams open with this node (maxStreamsPerPeer)`,
        { node: peer, limit: 'maxStreamsPerPeer' },
      );
    }
  }

  /** Offers `source` to `to`; returns the stream id to send along. Nothing flows before credit. */
  produce(to: string, source: AsyncIterable<unknown>): number {
    this.checkRoom(to);
    const id = this.nextId++;
    const p: Producer = {
      to,
      it: source[Symbol.asyncIterator](),
      credit: 0,
      pumping: false,
      done: false,
      idle: undefined,
    };
    p.idle = this.clock.setTimeout(() => this.stopProducer(id, 'no consumer'), this.idleMs);
    this.producers.set(id, p);
    this.count(to, 1);
    return id;
  }

  /** Stops a stream this node offered, before the other side used it (the call failed). */
  abandon(id: number): void {
    this.stopProducer(id, 'call failed');
  }

  /** The async iterable reading stream `id` offered by `from`; grants the first credit now. */
  consume(from: string, id: number): AsyncIterable<unknown> {
    this.checkRoom(from);
    const key = `${from}\u0000${id}`;
    if (this.consumers.has(key))
      throw new FoundationError('FND_ERR_SERVICE_MESSAGE', `stream ${id} of ${from} used twice`);
    const c: Consumer = {
      from,
      id,
      queue: [],
      read: 0,
      ended: false,
      error: undefined,
      wake: undefined,
    };
    this.consumers.set(key, c);
    this.count(from, 1);
    this.send(from, ['c', id, this.limits.streamWindow], false);
    const pull = async (): Promise<IteratorResult<unknown>> => {
      for (;;) {
        if (c.queue.length > 0) {
          const value = c.queue.shift();
          // Grant credit in batches of half the window: fewer messages, reader never starves.
          if (++c.read >= Math.max(1, this.limits.streamWindow >> 1) && !c.ended) {
            this.send(from, ['c', id, c.read], false);
            c.read = 0;
          }
          return { value, done: false };
        }
        if (c.error) throw c.error;
        if (c.ended) return { value: undefined, done: true };
        await new Promise<void>((r) => {
          c.wake = r;
        });
      }
    };
    // Calls of next() may overlap (the protocol allows several in flight): each waits for the one
    // before, so they settle in order and there is only ever one waiter to wake.
    let last: Promise<unknown> = Promise.resolve();
    const next = (): Promise<IteratorResult<unknown>> => {
      const p = last.then(pull, pull);
      last = p;
      return p;
    };
    const stop = async (): Promise<IteratorResult<unknown>> => {
      if (!c.ended) {
        this.send(from, ['k', id, 'consumer stopped reading'], false);
        this.closeConsumer(c, undefined);
      }
      c.queue.length = 0;
      return { value: undefined, done: true };
    };
    let taken = false;
    return {
      [Symbol.asyncIterator]: () => {
        if (taken)
          throw new FoundationError('FND_ERR_INVALID_OPTION', 'a received stream can be read once');
        taken = true;
        return { next, return: stop };
      },
    };
  }

  /** Cancels a consumed stream from this side (e.g. the call that carried it was refused). */
  cancelConsumer(from: string, id: number, reason: string): void {
    const c = this.consumers.get(`${from}\u0000${id}`);
    if (!c || c.ended) return;
    this.send(from, ['k', id, reason], false);
    this.closeConsumer(c, cancelled(reason, from));
  }

  private send(to: string, msg: unknown[], bulk: boolean): void {
    try {
      this.net.send(to, msg, bulk);
    } catch (err) {
      this.log.debug({ to, err: (err as Error).message }, 'stream message not sent');
    }
  }

  /** Handles one stream message from `from` (already known to be a peer). */
  receive(payload: unknown, from: string): void {
    const d = decodeStream(payload, this.limits);
    if (!d.ok) {
      this.log.warn({ from, reason: d.reason }, 'stream message refused');
      // A bad message for a stream we consume ends that stream (the producer broke the protocol).
      if (Array.isArray(payload) && typeof payload[1] === 'number')
        this.cancelConsumer(from, payload[1], `bad stream message: ${d.reason}`);
      return;
    }
    const m = d.value;
    switch (m.t) {
      case 'd': {
        const c = this.consumers.get(`${from}\u0000${m.id}`);
        if (!c || c.ended) return;
        // More than the window ahead: the producer ignores credit. End the stream, keep nothing.
        if (c.queue.length >= this.limits.streamWindow) {
          this.cancelConsumer(from, m.id, 'producer exceeded its credit');
          return;
        }
        c.queue.push(m.chunk);
        this.wake(c);
        return;
      }
      case 'e':
      case 'x': {
        const c = this.consumers.get(`${from}\u0000${m.id}`);
        if (!c || c.ended) return;
        this.closeConsumer(c, m.t === 'x' ? cancelled(m.reason, from) : undefined);
        return;
      }
      case 'c': {
        const p = this.producers.get(m.id);
        if (!p || p.to !== from || p.done) return;
        p.idle?.cancel();
        p.idle = undefined;
        p.credit = Math.min(p.credit + m.n, this.limits.streamWindow);
        void this.pump(m.id, p);
        return;
      }
      case 'k': {
        const p = this.producers.get(m.id);
        if (!p || p.to !== from) return;
        this.stopProducer(m.id, undefined);
        return;
      }
    }
  }

  private wake(c: Consumer): void {
    const w = c.wake;
    c.wake = undefined;
    w?.();
  }

  private closeConsumer(c: Consumer, error: FoundationError | undefined): void {
    if (c.ended) return;
    c.ended = true;
    c.error = error;
    this.consumers.delete(`${c.from}\u0000${c.id}`);
    this.count(c.from, -1);
    this.wake(c);
  }

  private async pump(id: number, p: Producer): Promise<void> {
    if (p.pumping) return;
    p.pumping = true;
    try {
      while (p.credit > 0 && !p.done) {
        let r: IteratorResult<unknown>;
        try {
          r = await p.it.next();
        } catch (err) {
          if (p.done) return;
          this.send(p.to, ['x', id, `producer failed: ${(err as Error)?.message ?? err}`], true);
          this.finishProducer(id, p);
          return;
        }
        if (p.done) return;
        if (r.done) {
          this.send(p.to, ['e', id], true);
          this.finishProducer(id, p);
          return;
        }
        p.credit--;
        this.send(p.to, ['d', id, r.value], true);
      }
    } finally {
      p.pumping = false;
    }
  }

  private finishProducer(id: number, p: Producer): void {
    if (p.done) return;
    p.done = true;
    p.idle?.cancel();
    this.producers.delete(id);
    this.count(p.to, -1);
  }

  /** Stops a producer: `reason` set → the consumer is told; the source's `return()` runs. */
  private stopProducer(id: number, reason: string | undefined): void {
    const p = this.producers.get(id);
    if (!p || p.done) return;
    if (reason) this.send(p.to, ['x', id, reason], true);
    this.finishProducer(id, p);
    // An async generator suspended at a yield runs its finally blocks now.
    Promise.resolve(p.it.return?.()).catch(() => {});
  }

  /** Fails every stream shared with `node` (it went down or left). */
  nodeDown(node: string): void {
    for (const [id, p] of [...this.producers]) if (p.to === node) this.stopProducer(id, undefined);
    for (const c of [...this.consumers.values()])
      if (c.from === node) this.closeConsumer(c, cancelled('node down', node));
  }

  /** Fails every stream (this node stops). */
  stop(): void {
    for (const id of [...this.producers.keys()]) this.stopProducer(id, 'node stopped');
    for (const c of [...this.consumers.values()])
      this.closeConsumer(c, cancelled('node stopped', c.from));
  }

  /** Open streams (for tests and diagnostics). */
  get open(): { producing: number; consuming: number } {
    return { producing: this.producers.size, consuming: this.consumers.size };
  }
}

export const STREAM_KIND = SVC_KINDS.stream;
