// An owner-partitioned, delta-replicated table: the state-based CRDT the registry, process groups,
// pub/sub interest and distributed-supervisor placement are built on. Every node writes only its
// own partition (its names, its group members, its subscriptions), so a partition has one writer
// and merging is "keep the newest version of each owner's partition" — no tombstones, no clock
// comparison across nodes. Conflicts between owners (two nodes claiming one name) are the job of
// the table's user, which sees every owner's entries.
//
// Protocol (docs/protocol.md): own changes are batched per microtask into numbered deltas and sent
// to every peer; a receiver applies delta n only right after n-1, else pulls a snapshot. A member
// that comes up gets our snapshot; one that goes down or leaves has its partition dropped; a
// periodic digest (our latest seq) repairs anything lost on a broken connection.
import { FoundationError } from '../errors.js';
import type { TimerHandle } from '../util/clock.js';
import type { DistContext } from './context.js';
import {
  approxSize,
  type Decoded,
  decodeReplica,
  type ReplicaMsg,
  type WireEntry,
  type WireOp,
} from './wire.js';

/** Called for every change of any partition: `prev`/`next` undefined mean absent. Must not throw. */
export type ReplicaListener<V> = (
  owner: string,
  key: string,
  prev: V | undefined,
  next: V | undefined,
) => void;

export interface ReplicaOptions<V> {
  /** Messenger kind of this table. */
  kind: string;
  /** Validates a received value; a refused value drops that op (and is logged). */
  decodeValue(v: unknown, owner: string): Decoded<V>;
  /** Longest key, in UTF-16 units. */
  maxKeyLength: number;
}

interface Partition<V> {
  epoch: number;
  /** Last applied delta; -1 while waiting for a snapshot. */
  seq: number;
  entries: Map<string, V>;
  /** A snapshot being received (first chunk seen, last not yet). */
  staging: Map<string, V> | undefined;
  stagingSeq: number;
  /** Clock time of our last pull to this owner (pulls are rate-limited). */
  pulledAt: number;
}

/** Keep each replication message well under the bulk threshold so all of them share one channel (FIFO). */
const CHUNK_BYTES = 32 * 1024;

export class Replica<V> {
  private readonly own = new Map<string, V>();
  private seq = 0;
  private pending = new Map<string, V | null>();
  private flushQueued = false;
  private readonly parts = new Map<string, Partition<V>>();
  /** Peers that asked for a snapshot while one was rate-limited: served at the next digest. */
  private readonly owed = new Set<string>();
  private readonly snapAt = new Map<string, number>();
  private readonly listeners: ReplicaListener<V>[] = [];
  private readonly seqWaiters: Array<{
    owner: string;
    epoch: number;
    seq: number;
    fn: () => void;
  }> = [];
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly ctx: DistContext,
    private readonly opts: ReplicaOptions<V>,
  ) {
    ctx.net.on(opts.kind, (payload, from) => this.receive(payload, from));
    ctx.members.onUp((name) => this.sendSnapshot(name));
    ctx.members.onDown((name) => this.drop(name));
    this.timer = ctx.clock.setInterval(() => this.antiEntropy(), ctx.syncIntervalMs);
    // Members already up when this table is created (a scope made after start) get our snapshot.
    for (const p of ctx.members.peers()) this.sendSnapshot(p);
  }

  onChange(fn: ReplicaListener<V>): void {
    this.listeners.push(fn);
  }

  /** Our latest delta number (after pending changes are flushed). */
  get version(): number {
    this.flush();
    return this.seq;
  }

  /** This node's own entries. */
  ownEntries(): ReadonlyMap<string, V> {
    return this.own;
  }

  /** Entries of `owner` (this node's name for our own). */
  entriesOf(owner: string): ReadonlyMap<string, V> | undefined {
    return owner === this.ctx.self ? this.own : this.parts.get(owner)?.entries;
  }

  /** Whether we hold `owner`'s whole partition (a snapshot arrived and no gap is open). */
  synced(owner: string): boolean {
    const p = this.parts.get(owner);
    return p !== undefined && p.seq >= 0;
  }

  /** Owners we hold a partition for (this node excluded). */
  owners(): string[] {
    return [...this.parts.keys()];
  }

  /** Sets one of our own entries; FND_ERR_DIST_LIMIT when this node already holds the maximum. */
  set(key: string, value: V): void {
    const prev = this.own.get(key);
    if (prev === undefined && this.own.size >= this.ctx.limits.maxEntriesPerNode) {
      throw new FoundationError(
        'FND_ERR_DIST_LIMIT',
        `this node already holds ${this.own.size} entries in ${this.opts.kind} (maxEntriesPerNode)`,
        { table: this.opts.kind, limit: 'maxEntriesPerNode' },
      );
    }
    this.own.set(key, value);
    if (!this.stopped) this.queue(key, value); // stopped: the node is leaving, peers drop us anyway
    this.emit(this.ctx.self, key, prev, value);
  }

  delete(key: string): boolean {
    const prev = this.own.get(key);
    if (prev === undefined) return false;
    this.own.delete(key);
    if (!this.stopped) this.queue(key, null);
    this.emit(this.ctx.self, key, prev, undefined);
    return true;
  }

  /**
   * Resolves once `owner` has delivered delta `seq` of `epoch` to us (or a snapshot at least as
   * new), or rejects after `timeoutMs`. Used by sync registrations on the receiving side.
   */
  whenApplied(owner: string, epoch: number, seq: number, timeoutMs: number): Promise<void> {
    if (this.applied(owner, epoch, seq)) return Promise.resolve();
    const p = this.parts.get(owner);
    if (!p || p.epoch < epoch || p.seq < 0 || p.seq < seq) this.pull(owner);
    return new Promise((resolve, reject) => {
      const w = {
        owner,
        epoch,
        seq,
        fn: () => {
          timer.cancel();
          resolve();
        },
      };
      const timer = this.ctx.clock.setTimeout(() => {
        const i = this.seqWaiters.indexOf(w);
        if (i >= 0) this.seqWaiters.splice(i, 1);
        reject(
          new FoundationError('FND_ERR_REQUEST_TIMEOUT', `changes of ${owner} not received`, {
            node: owner,
          }),
        );
      }, timeoutMs);
      this.seqWaiters.push(w);
    });
  }

  private applied(owner: string, epoch: number, seq: number): boolean {
    const p = this.parts.get(owner);
    return p !== undefined && (p.epoch > epoch || (p.epoch === epoch && p.seq >= seq));
  }

  private wakeWaiters(owner: string): void {
    for (let i = this.seqWaiters.length - 1; i >= 0; i--) {
      const w = this.seqWaiters[i]!;
      if (w.owner === owner && this.applied(owner, w.epoch, w.seq)) {
        this.seqWaiters.splice(i, 1);
        w.fn();
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  // ---- sending ----

  private queue(key: string, value: V | null): void {
    this.pending.delete(key); // re-insert: a key holds its last change
    this.pending.set(key, value);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Sends pending changes now, as numbered deltas, to every peer. */
  flush(): void {
    this.flushQueued = false;
    if (this.pending.size === 0 || this.stopped) return;
    // One op per key (its last change), so their order does not change the result; deletes go
    // first so that a peer applying them never holds more of our entries than we do (at
    // maxEntriesPerNode it would refuse a set that came before the delete making room for it).
    const ops: WireOp[] = [];
    for (const [k, v] of this.pending) if (v === null) ops.push({ k, d: 1 });
    for (const [k, v] of this.pending) if (v !== null) ops.push({ k, v });
    this.pending = new Map();
    const peers = this.ctx.members.peers();
    for (const chunk of this.chunks(ops)) {
      const msg: ReplicaMsg = { t: 'delta', epoch: this.ctx.epoch, seq: ++this.seq, ops: chunk };
      for (const p of peers) this.sendTo(p, msg);
    }
  }

  /** Splits ops/entries so each message stays under CHUNK_BYTES and maxOpsPerMessage. */
  private *chunks<T extends { k: string }>(items: T[]): Generator<T[]> {
    let chunk: T[] = [];
    let bytes = 0;
    for (const it of items) {
      const size =
        it.k.length * 3 + 16 + ('v' in it ? approxSize((it as { v: unknown }).v, 1 << 30) : 0);
      if (
        chunk.length > 0 &&
        (bytes + size > CHUNK_BYTES || chunk.length >= this.ctx.limits.maxOpsPerMessage)
      ) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
      chunk.push(it);
      bytes += size;
    }
    if (chunk.length > 0) yield chunk;
  }

  private sendTo(to: string, msg: ReplicaMsg): void {
    try {
      this.ctx.net.send(to, this.opts.kind, msg);
    } catch (err) {
      // Unreachable now: the member-up snapshot or the next digest repairs it.
      this.ctx.log.debug({ to, kind: this.opts.kind, err: (err as Error).message }, 'not sent');
    }
  }

  private sendSnapshot(to: string): void {
    if (this.stopped) return;
    this.flush();
    this.snapAt.set(to, this.ctx.clock.now());
    this.owed.delete(to);
    const entries: WireEntry[] = [];
    for (const [k, v] of this.own) entries.push({ k, v });
    const chunks = [...this.chunks(entries)];
    if (chunks.length === 0) chunks.push([]);
    for (let i = 0; i < chunks.length; i++) {
      this.sendTo(to, {
        t: 'snap',
        epoch: this.ctx.epoch,
        seq: this.seq,
        first: i === 0,
        last: i === chunks.length - 1,
        entries: chunks[i]!,
      });
    }
  }

  private pull(owner: string): void {
    const p = this.parts.get(owner);
    const now = this.ctx.clock.now();
    // One pull per owner per half sync interval: the snapshot is on its way.
    if (p && now - p.pulledAt < this.ctx.syncIntervalMs / 2) return;
    if (p) p.pulledAt = now;
    this.sendTo(owner, { t: 'pull' });
  }

  private antiEntropy(): void {
    if (this.stopped) return;
    this.flush();
    for (const to of this.ctx.members.peers()) {
      if (this.owed.has(to)) this.sendSnapshot(to);
      else this.sendTo(to, { t: 'digest', epoch: this.ctx.epoch, seq: this.seq });
    }
  }

  // ---- receiving ----

  private receive(payload: unknown, from: string): void {
    // A node declared down may still have messages in flight: its partition was dropped and comes
    // back by snapshot when it is up again, not by stray deltas.
    if (this.stopped || from === this.ctx.self || !this.ctx.members.isPeer(from)) return;
    const d = decodeReplica(payload, this.ctx.limits, this.opts.maxKeyLength);
    if (!d.ok) {
      this.ctx.log.warn(
        { from, kind: this.opts.kind, reason: d.reason },
        'replication message refused',
      );
      return;
    }
    const m = d.value;
    switch (m.t) {
      case 'pull': {
        // Snapshots cost us traffic: one per requester per half sync interval, the rest owed.
        const last = this.snapAt.get(from);
        if (last !== undefined && this.ctx.clock.now() - last < this.ctx.syncIntervalMs / 2)
          this.owed.add(from);
        else this.sendSnapshot(from);
        return;
      }
      case 'digest': {
        const p = this.parts.get(from);
        if (!p || m.epoch > p.epoch || (m.epoch === p.epoch && (p.seq < 0 || p.seq < m.seq))) {
          this.partition(from, m.epoch);
          this.pull(from);
        }
        return;
      }
      case 'delta': {
        const p = this.partition(from, m.epoch);
        if (!p || p.epoch !== m.epoch) return;
        if (p.seq < 0 || m.seq > p.seq + 1) {
          p.seq = -1;
          this.pull(from);
          return;
        }
        if (m.seq <= p.seq) return;
        for (const op of m.ops) {
          if ('d' in op) this.applyOne(from, p.entries, op.k, undefined);
          else {
            const v = this.opts.decodeValue(op.v, from);
            if (!v.ok) {
              this.ctx.log.warn(
                { from, kind: this.opts.kind, key: op.k, reason: v.reason },
                'entry refused',
              );
              continue;
            }
            this.applyOne(from, p.entries, op.k, v.value);
          }
        }
        p.seq = m.seq;
        this.wakeWaiters(from);
        return;
      }
      case 'snap': {
        const p = this.partition(from, m.epoch);
        if (!p || p.epoch !== m.epoch) return;
        if (m.first) {
          p.staging = new Map();
          p.stagingSeq = m.seq;
        }
        const staging = p.staging;
        if (!staging || p.stagingSeq !== m.seq) return;
        for (const e of m.entries) {
          const v = this.opts.decodeValue(e.v, from);
          if (!v.ok) {
            this.ctx.log.warn(
              { from, kind: this.opts.kind, key: e.k, reason: v.reason },
              'entry refused',
            );
            continue;
          }
          if (staging.size >= this.ctx.limits.maxEntriesPerNode && !staging.has(e.k)) {
            this.ctx.log.warn(
              { from, kind: this.opts.kind },
              'snapshot exceeds maxEntriesPerNode; truncated',
            );
            break;
          }
          staging.set(e.k, v.value);
        }
        if (!m.last) return;
        p.staging = undefined;
        // An older snapshot than what we applied already (a pull answered late) changes nothing.
        if (p.seq >= 0 && m.seq < p.seq) return;
        for (const k of [...p.entries.keys()])
          if (!staging.has(k)) this.applyOne(from, p.entries, k, undefined);
        for (const [k, v] of staging) this.applyOne(from, p.entries, k, v);
        p.seq = m.seq;
        this.wakeWaiters(from);
        return;
      }
    }
  }

  /** The partition of `owner` for `epoch`: a newer epoch replaces an older one (the node restarted). */
  private partition(owner: string, epoch: number): Partition<V> | undefined {
    const p = this.parts.get(owner);
    if (p && p.epoch === epoch) return p;
    if (p && p.epoch > epoch) return undefined; // a message from a previous run, late
    if (p) this.drop(owner);
    const fresh: Partition<V> = {
      epoch,
      seq: -1,
      entries: new Map(),
      staging: undefined,
      stagingSeq: -1,
      pulledAt: Number.NEGATIVE_INFINITY,
    };
    this.parts.set(owner, fresh);
    return fresh;
  }

  private applyOne(owner: string, entries: Map<string, V>, key: string, next: V | undefined): void {
    const prev = entries.get(key);
    if (next === undefined) {
      if (prev === undefined) return;
      entries.delete(key);
    } else {
      if (prev === undefined && entries.size >= this.ctx.limits.maxEntriesPerNode) {
        this.ctx.log.warn(
          { owner, kind: this.opts.kind },
          'owner exceeds maxEntriesPerNode; entry refused',
        );
        return;
      }
      entries.set(key, next);
    }
    this.emit(owner, key, prev, next);
  }

  /** Forgets `owner`'s partition (it went down or left, or restarted with a new epoch). */
  private drop(owner: string): void {
    const p = this.parts.get(owner);
    this.owed.delete(owner);
    this.snapAt.delete(owner);
    if (!p) return;
    this.parts.delete(owner);
    for (const [k, v] of p.entries) this.emit(owner, k, v, undefined);
  }

  private emit(owner: string, key: string, prev: V | undefined, next: V | undefined): void {
    for (const fn of this.listeners) {
      try {
        fn(owner, key, prev, next);
      } catch (err) {
        this.ctx.log.error(
          { kind: this.opts.kind, err: (err as Error).message },
          'replica listener threw',
        );
      }
    }
  }
}
