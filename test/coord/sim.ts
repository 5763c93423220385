// A simulated Raft cluster for deterministic, seeded Jepsen-style tests: Raft cores on a message
// queue with per-message delays, drops and partitions, crashes that lose everything not persisted
// and restarts from the persisted state, a KV state machine, clients whose history is recorded for
// the linearizability checker, and the safety oracles (one leader per term, one entry per index).

import { Machine } from '../../src/coord/machine.js';
import {
  type Entry,
  type HardState,
  type Message,
  Raft,
  type Snapshot,
} from '../../src/coord/raft/raft.js';
import type { KvInput, KvOutput, Operation } from './linearizability.js';

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a node persisted (the in-memory twin of FileStorage). */
export class MemStorage {
  constructor(
    /** Voters the group was created with (what a node restarts with when nothing newer is logged). */
    readonly bootstrap: string[],
  ) {}
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];

  truncateFrom(i: number): void {
    this.entries = this.entries.filter((e) => e.index < i);
  }
  append(es: Entry[]): void {
    this.entries.push(...es.map((e) => ({ ...e })));
  }
  saveSnapshot(s: Snapshot): void {
    if (this.snapshot && this.snapshot.index >= s.index) return;
    this.snapshot = structuredClone(s);
    this.entries = this.entries.filter((e) => e.index > s.index);
  }
}

export type Cmd =
  | { op: 'put'; key: string; value: string }
  | { op: 'del'; key: string }
  | { op: 'cas'; key: string; expected: string | null; value: string };

type Kv = Record<string, string>;

interface Pending {
  term: number;
  done: (result: KvOutput | undefined, definite: boolean) => void;
  /** For lock commands: the machine's result, or undefined when the entry was overwritten. */
  lease?: (result: unknown) => void;
}

/** A lock command as the sim proposes it: the leader's time stamp and the machine command. */
export interface LeaseCmd {
  at: number;
  lease:
    | { op: 'lock'; name: string; owner: string; ttlMs: number }
    | { op: 'unlock'; name: string; token: number };
}

export class SimNode {
  raft: Raft;
  kv: Kv = {};
  /** The real consensus state machine, for lock commands (leases, fencing tokens). */
  m = new Machine();
  readonly proposals = new Map<number, Pending>();
  readonly reads = new Map<
    number,
    { index: number | undefined; key: string; done: (v: string | null | undefined) => void }
  >();
  constructor(
    readonly id: string,
    readonly storage: MemStorage,
    voters: string[],
    random: () => number,
    restore: boolean,
    maxEntriesPerMessage = 64,
  ) {
    this.raft = new Raft({
      id,
      voters,
      random,
      electionTicks: 10,
      maxEntriesPerMessage,
      restore: restore
        ? { hardState: storage.hardState, snapshot: storage.snapshot, entries: storage.entries }
        : undefined,
    });
    if (restore && storage.snapshot) this.restore(storage.snapshot.data);
  }

  restore(data: unknown): void {
    const d = structuredClone(data) as { kv: Kv; m: unknown };
    this.kv = d.kv;
    this.m = new Machine();
    this.m.restore(d.m);
  }

  snapshot(): unknown {
    return { kv: structuredClone(this.kv), m: this.m.snapshot() };
  }
}

export interface SimOptions {
  nodes: number;
  seed: number;
  /** Probability a message is lost. */
  drop?: number;
  /** Extra delay, ticks: uniform in [0, maxDelay]. */
  maxDelay?: number;
  /** Compact the log when this many entries are applied past the snapshot. */
  compactEvery?: number;
  /** Raft's maxEntriesPerMessage (small values make replication uneven). */
  maxEntries?: number;
}

export class Sim {
  readonly random: () => number;
  time = 0;
  readonly ids: string[];
  readonly nodes = new Map<string, SimNode | undefined>();
  readonly storage = new Map<string, MemStorage>();
  private queue: Array<{ at: number; seq: number; m: Message }> = [];
  private seq = 0;
  private blocked = new Set<string>();
  drop: number;
  maxDelay: number;
  readonly compactEvery: number;
  readonly maxEntries: number;
  /** Oracles. */
  readonly leaderOfTerm = new Map<number, string>();
  readonly termAtIndex = new Map<number, number>();
  readonly violations: string[] = [];
  /** Logical clock of history events (strictly increasing: no ties). */
  private events = 0;
  readonly history = new Map<string, Operation<KvInput, KvOutput>[]>();
  readonly acked: Array<{ index: number; term: number; key: string; value: string }> = [];
  /** Largest fencing token each node has seen granted, in its apply order. */
  private readonly lastToken = new Map<string, number>();
  private readId = 0;

  constructor(opts: SimOptions) {
    this.random = rng(opts.seed);
    this.drop = opts.drop ?? 0;
    this.maxDelay = opts.maxDelay ?? 0;
    this.compactEvery = opts.compactEvery ?? 20;
    this.maxEntries = opts.maxEntries ?? 64;
    this.ids = Array.from({ length: opts.nodes }, (_, i) => `n${i}`);
    const initial = [...this.ids];
    for (const id of this.ids) {
      const s = new MemStorage(initial);
      this.storage.set(id, s);
      this.nodes.set(id, new SimNode(id, s, this.ids, this.random, false, this.maxEntries));
    }
  }

  now(): number {
    return ++this.events;
  }

  // ---- faults ----

  partition(sides: string[][]): void {
    this.blocked.clear();
    for (const a of sides)
      for (const b of sides)
        if (a !== b) for (const x of a) for (const y of b) this.blocked.add(`${x}|${y}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  crash(id: string): void {
    const n = this.nodes.get(id);
    if (!n) return;
    this.nodes.set(id, undefined);
    // A restarted node re-applies from its snapshot: its token sequence starts over there.
    this.lastToken.delete(id);
    // Outcomes of its clients' requests are now unknown; nothing resolves them.
    n.proposals.clear();
    for (const r of n.reads.values()) r.done(undefined);
    n.reads.clear();
  }

  restart(id: string): void {
    if (this.nodes.get(id)) return;
    const s = this.storage.get(id)!;
    this.nodes.set(id, new SimNode(id, s, s.bootstrap, this.random, true, this.maxEntries));
  }

  /** A brand-new node (empty storage) that learns the configuration from the leader. */
  addBlank(id: string): void {
    const s = new MemStorage([]);
    this.storage.set(id, s);
    if (!this.ids.includes(id)) this.ids.push(id);
    this.nodes.set(id, new SimNode(id, s, [], this.random, false, this.maxEntries));
  }

  live(): SimNode[] {
    return this.ids.map((id) => this.nodes.get(id)).filter((n): n is SimNode => n !== undefined);
  }

  /** Any live node that believes it leads (a deposed leader may not know yet): where clients go. */
  anyLeader(): SimNode | undefined {
    const ls = this.live().filter((n) => n.raft.role === 'leader');
    return ls.length === 0 ? undefined : ls[Math.floor(this.random() * ls.length)];
  }

  leader(): SimNode | undefined {
    // The live leader of the highest term (a deposed one may not know yet).
    let best: SimNode | undefined;
    for (const n of this.live())
      if (n.raft.role === 'leader' && (!best || n.raft.term > best.raft.term)) best = n;
    return best;
  }

  // ---- time ----

  step(): void {
    this.time++;
    const due = this.queue
      .filter((q) => q.at <= this.time)
      .sort((a, b) => a.at - b.at || a.seq - b.seq);
    this.queue = this.queue.filter((q) => q.at > this.time);
    for (const q of due) {
      const n = this.nodes.get(q.m.to);
      if (n) {
        n.raft.step(structuredClone(q.m));
        this.process(n);
      }
    }
    for (const n of this.live()) {
      n.raft.tick();
      this.process(n);
    }
  }

  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) this.step();
  }

  /** Drains one node's Ready: persist, send, apply, serve reads; compacts now and then. */
  process(n: SimNode): void {
    while (n.raft.hasReady()) {
      const rd = n.raft.ready();
      const st = n.storage;
      if (rd.hardState) st.hardState = { ...rd.hardState };
      for (const op of rd.log) {
        if ('truncateFrom' in op) st.truncateFrom(op.truncateFrom);
        else st.append(op.append);
      }
      if (rd.snapshot) {
        st.saveSnapshot(rd.snapshot);
        n.restore(rd.snapshot.data);
      }
      for (const m of rd.messages) {
        if (this.blocked.has(`${m.from}|${m.to}`) || this.random() < this.drop) continue;
        const delay = 1 + Math.floor(this.random() * (this.maxDelay + 1));
        this.queue.push({ at: this.time + delay, seq: this.seq++, m });
      }
      for (const e of rd.committed) this.apply(n, e);
      for (const r of rd.reads) {
        const pr = n.reads.get(r.id);
        if (pr) pr.index = r.index;
      }
      for (const id of n.raft.takeFailedReads()) {
        n.reads.get(id)?.done(undefined);
        n.reads.delete(id);
      }
      this.serveReads(n);
      if (n.raft.role === 'leader') {
        const prev = this.leaderOfTerm.get(n.raft.term);
        if (prev !== undefined && prev !== n.id)
          this.violations.push(`two leaders in term ${n.raft.term}: ${prev} and ${n.id}`);
        this.leaderOfTerm.set(n.raft.term, n.id);
      }
      if (n.raft.applied - n.raft.snapshotIndex >= this.compactEvery) {
        st.saveSnapshot(n.raft.compact(n.raft.applied, n.snapshot()));
      }
    }
  }

  private apply(n: SimNode, e: Entry): void {
    const t = this.termAtIndex.get(e.index);
    if (t !== undefined && t !== e.term)
      this.violations.push(`index ${e.index} applied with term ${t} and ${e.term} (${n.id})`);
    this.termAtIndex.set(e.index, e.term);
    let result: KvOutput = {};
    if (e.type === 'normal' && 'lease' in (e.data as object)) {
      // Lock commands go to the real state machine; the leader stamped `at` when proposing.
      const l = e.data as LeaseCmd;
      const r = n.m.apply({ id: `${e.index}`, at: l.at, cmd: l.lease });
      const prev = this.lastToken.get(n.id) ?? 0;
      if ('token' in r && r.ok) {
        if (r.token <= prev) this.violations.push(`token ${r.token} after ${prev} on ${n.id}`);
        this.lastToken.set(n.id, r.token);
      }
      const p = n.proposals.get(e.index);
      if (p) {
        n.proposals.delete(e.index);
        if (p.term === e.term) p.lease?.(r);
        else p.lease?.(undefined);
      }
      return;
    }
    if (e.type === 'normal') {
      const c = e.data as Cmd;
      if (c.op === 'put') n.kv[c.key] = c.value;
      else if (c.op === 'del') delete n.kv[c.key];
      else {
        const hit = (n.kv[c.key] ?? null) === c.expected;
        if (hit) n.kv[c.key] = c.value;
        result = { ok: hit };
      }
    }
    const p = n.proposals.get(e.index);
    if (p) {
      n.proposals.delete(e.index);
      // Another term's entry at our index: ours was overwritten and can never commit.
      p.done(p.term === e.term ? result : undefined, true);
    }
  }

  private serveReads(n: SimNode): void {
    for (const [id, r] of n.reads) {
      if (r.index !== undefined && n.raft.applied >= r.index) {
        n.reads.delete(id);
        r.done(n.kv[r.key] ?? null);
      }
    }
  }

  // ---- clients ----

  private record(key: string, op: Operation<KvInput, KvOutput>): void {
    let h = this.history.get(key);
    if (!h) {
      h = [];
      this.history.set(key, h);
    }
    h.push(op);
  }

  /** Submits a write through `n`; returns false when `n` is not the leader (nothing happened). */
  write(n: SimNode, cmd: Cmd): boolean {
    const call = this.now();
    const r = n.raft.propose(cmd);
    if (!r) return false;
    const input: KvInput =
      cmd.op === 'put'
        ? { op: 'put', value: cmd.value }
        : cmd.op === 'del'
          ? { op: 'del' }
          : { op: 'cas', expected: cmd.expected, value: cmd.value };
    const op: Operation<KvInput, KvOutput> = {
      call,
      ret: Number.POSITIVE_INFINITY,
      input,
      output: undefined,
    };
    this.record(cmd.key, op);
    n.proposals.set(r.index, {
      term: r.term,
      done: (result, definite) => {
        if (result === undefined && definite) {
          // Definitely not applied: remove it from the history.
          const h = this.history.get(cmd.key)!;
          h.splice(h.indexOf(op), 1);
          return;
        }
        op.ret = this.now();
        op.output = result;
        if (cmd.op === 'put')
          this.acked.push({ index: r.index, term: r.term, key: cmd.key, value: cmd.value });
      },
    });
    this.process(n);
    return true;
  }

  /**
   * Proposes a lock command through `n`, stamped with the simulated time (ms = ticks × 30);
   * `done` gets the machine's result once applied, or undefined if the entry was overwritten.
   */
  lease(n: SimNode, cmd: LeaseCmd['lease'], done: (result: unknown) => void): boolean {
    // The leader's stamp, monotonic per leader like Consensus.serve's.
    const at = Math.max(this.time * 30, n.m.now);
    const r = n.raft.propose({ at, lease: cmd } satisfies LeaseCmd);
    if (!r) return false;
    n.proposals.set(r.index, { term: r.term, done: () => {}, lease: done });
    this.process(n);
    return true;
  }

  /** A linearizable read through `n` (read index); false when `n` is not the leader. */
  read(n: SimNode, key: string, onDone?: (v: string | null | undefined) => void): boolean {
    const call = this.now();
    const id = ++this.readId;
    if (!n.raft.readIndex(id)) return false;
    n.reads.set(id, {
      index: undefined,
      key,
      done: (v) => {
        if (v !== undefined)
          this.record(key, { call, ret: this.now(), input: { op: 'get' }, output: { value: v } });
        onDone?.(v);
      },
    });
    this.process(n);
    return true;
  }
}
