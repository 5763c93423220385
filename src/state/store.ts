// `node.state`: named CRDTs shared cluster-wide. Every object is a state-based CRDT from
// ./crdt.ts; a local change produces a small delta that is joined into the local state and, batched
// per microtask, sent to every peer. Receivers only ever join, so order, duplicates and loss cannot
// make replicas diverge; a periodic digest exchange (anti-entropy, one peer per interval, round
// robin) repairs whatever a lost message or a partition left behind. Unlike src/dist/replica.ts
// (one writer per partition, dropped when its owner goes down), every node writes every object and
// a down node's contributions stay: a counter keeps what a crashed node added.

import type { DistContext } from '../dist/context.js';
import type { Decoded } from '../dist/wire.js';
import { approxSize, isName } from '../dist/wire.js';
import { FoundationError } from '../errors.js';
import type { TimerHandle } from '../util/clock.js';
import {
  type AnyState,
  type CrdtKind,
  type CrdtLimits,
  canonicalJson,
  cloneState,
  decode,
  digest,
  empty,
  encode,
  type GCounter,
  gcounterInc,
  gcounterValue,
  type InnerKind,
  type InnerState,
  isKind,
  isPlainData,
  join,
  type Lww,
  type OrMap,
  type OrSet,
  ormapKeys,
  ormapRemove,
  ormapUpdate,
  orsetAdd,
  orsetRemove,
  type PNCounter,
  pncounterAdd,
  pncounterValue,
  stateValue,
  units,
} from './crdt.js';

/** Messenger kind of state replication (docs/protocol.md). */
export const STATE_KIND = 'state:crdt';

/**
 * What one member can make this node hold through `node.state`. Every received message is checked
 * against these before anything is joined; local operations that would exceed them throw
 * FND_ERR_STATE_LIMIT.
 */
export interface StateLimits extends CrdtLimits {
  /** Most named objects this node holds. Default 10 000. */
  maxObjects: number;
  /** Longest object name, UTF-16 units. Default 256. */
  maxNameLength: number;
  /** Most items (deltas, digest entries, wanted names) in one message. Default 1024. */
  maxItemsPerMessage: number;
}

export const STATE_LIMITS: Readonly<StateLimits> = Object.freeze({
  maxObjects: 10_000,
  maxNameLength: 256,
  // Replica ids are `<node name>~<run epoch>`: a 256-unit node name plus its epoch fits.
  maxKeyLength: 512,
  // 100 000 units is a set of tens of thousands of elements: a few MB per object at worst.
  maxUnitsPerObject: 100_000,
  maxValueBytes: 64 * 1024,
  maxItemsPerMessage: 1024,
});

/** One item on the wire: object name, kind (`ormap:<inner>` for maps), payload. */
type Item = [name: string, kind: string, body: unknown];

type StateMsg =
  /** Deltas or whole states (the receiver joins both alike). */
  | { t: 'd'; items: Item[] }
  /** Anti-entropy digest: name, kind, digest of the sender's state. */
  | { t: 'h'; items: Item[] }
  /** "Send me your state of these objects." */
  | { t: 'w'; names: string[] };

function decodeMsg(v: unknown, lim: StateLimits): Decoded<StateMsg> {
  const fail = (reason: string) => ({ ok: false as const, reason });
  if (typeof v !== 'object' || v === null) return fail('not an object');
  const m = v as { t?: unknown; items?: unknown; names?: unknown };
  if (m.t === 'w') {
    if (!Array.isArray(m.names) || m.names.length > lim.maxItemsPerMessage)
      return fail('bad names');
    for (const n of m.names)
      if (typeof n !== 'string' || n.length === 0 || n.length > lim.maxNameLength)
        return fail('bad name');
    return { ok: true, value: { t: 'w', names: m.names as string[] } };
  }
  if (m.t !== 'd' && m.t !== 'h') return fail('unknown message type');
  if (!Array.isArray(m.items) || m.items.length > lim.maxItemsPerMessage) return fail('bad items');
  for (const it of m.items) {
    if (
      !Array.isArray(it) ||
      it.length !== 3 ||
      typeof it[0] !== 'string' ||
      it[0].length === 0 ||
      it[0].length > lim.maxNameLength ||
      typeof it[1] !== 'string' ||
      parseKind(it[1]) === undefined
    )
      return fail('bad item');
    if (m.t === 'h' && (typeof it[2] !== 'string' || it[2].length > 64)) return fail('bad digest');
  }
  return { ok: true, value: { t: m.t, items: m.items as Item[] } };
}

function parseKind(k: string): { kind: CrdtKind; of?: InnerKind } | undefined {
  if (k.startsWith('ormap:')) {
    const of = k.slice(6);
    return isKind(of) && of !== 'ormap' ? { kind: 'ormap', of } : undefined;
  }
  return isKind(k) && k !== 'ormap' ? { kind: k } : undefined;
}

const kindTag = (kind: CrdtKind, of?: InnerKind) => (kind === 'ormap' ? `ormap:${of}` : kind);

/** Called with the object's new value after every change, local or remote. Must not throw. */
export type StateListener<T> = (value: T) => void;

interface Obj {
  kind: CrdtKind;
  of?: InnerKind;
  tag: string;
  state: AnyState;
  hash: string | undefined;
  listeners: Set<StateListener<unknown>>;
}

interface Subscribable<T> {
  /** Calls `fn` with the new value after every change (local or remote); returns an unsubscribe. */
  subscribe(fn: StateListener<T>): () => void;
}

export interface GCounterHandle extends Subscribable<number> {
  /** Adds `n` (a positive safe integer, default 1). */
  increment(n?: number): void;
  value(): number;
}

export interface PNCounterHandle extends GCounterHandle {
  /** Subtracts `n` (a positive safe integer, default 1). */
  decrement(n?: number): void;
}

export interface OrSetHandle<T> extends Subscribable<T[]> {
  add(v: T): void;
  /** Removes the adds of `v` this node has seen; a concurrent add elsewhere wins. */
  remove(v: T): void;
  has(v: T): boolean;
  values(): T[];
  value(): T[];
}

export interface RegisterHandle<T> extends Subscribable<T | undefined> {
  /** Writes `v`, stamped with this node's hybrid logical clock: the latest stamp wins. */
  set(v: T): void;
  get(): T | undefined;
  value(): T | undefined;
}

export interface OrMapHandle extends Subscribable<Record<string, unknown>> {
  keys(): string[];
  has(key: string): boolean;
  /** The value at `key` (as its inner CRDT's value), or undefined when absent. */
  get(key: string): unknown;
  value(): Record<string, unknown>;
  /** Removes `key` as seen here (see docs/state.md: an update elsewhere wins). */
  delete(key: string): void;
  /** gcounter / pncounter maps. */
  increment(key: string, n?: number): void;
  /** pncounter maps. */
  decrement(key: string, n?: number): void;
  /** orset maps: adds / removes one element of the set at `key`. */
  add(key: string, v: unknown): void;
  removeElement(key: string, v: unknown): void;
  /** lww maps: writes the register at `key`. */
  set(key: string, v: unknown): void;
}

export class StateStore {
  private readonly objects = new Map<string, Obj>();
  private pending = new Map<string, AnyState>();
  private flushQueued = false;
  private readonly replica: string;
  private readonly limits: StateLimits;
  private timer: TimerHandle | undefined;
  private rr = 0;
  private stopped = false;

  constructor(
    private readonly ctx: DistContext,
    limits: Partial<StateLimits> = {},
  ) {
    this.limits = { ...STATE_LIMITS, ...limits };
    // One replica id per run: a restarted node must not reuse its old counter entries or dots
    // (it lost them, and reusing them would make its new increments invisible).
    this.replica = `${ctx.self}~${ctx.epoch}`;
    ctx.net.on(STATE_KIND, (payload, from) => this.receive(payload, from));
    ctx.members.onUp((name) => this.sendDigest(name));
    this.timer = ctx.clock.setInterval(() => this.antiEntropy(), ctx.syncIntervalMs);
  }

  /** This run's replica id (appears in counter entries and dots). */
  get replicaId(): string {
    return this.replica;
  }

  /** Names of the objects this node holds (created here or received). */
  names(): string[] {
    return [...this.objects.keys()].sort();
  }

  counter(name: string): GCounterHandle {
    const o = this.obj(name, 'gcounter');
    return {
      increment: (n = 1) => {
        this.checkCount(n, gcounterValue(o.state as GCounter));
        this.local(o, name, gcounterInc(o.state as GCounter, this.replica, n));
      },
      value: () => gcounterValue(o.state as GCounter),
      subscribe: (fn) => this.listen(o, fn),
    };
  }

  pncounter(name: string): PNCounterHandle {
    const o = this.obj(name, 'pncounter');
    const add = (by: number) =>
      this.local(o, name, pncounterAdd(o.state as PNCounter, this.replica, by));
    return {
      increment: (n = 1) => {
        this.checkCount(n, gcounterValue((o.state as PNCounter).p));
        add(n);
      },
      decrement: (n = 1) => {
        this.checkCount(n, gcounterValue((o.state as PNCounter).n));
        add(-n);
      },
      value: () => pncounterValue(o.state as PNCounter),
      subscribe: (fn) => this.listen(o, fn),
    };
  }

  set<T = unknown>(name: string): OrSetHandle<T> {
    const o = this.obj(name, 'orset');
    const values = () => stateValue('orset', o.state) as T[];
    return {
      add: (v) => {
        this.checkValue(v);
        this.local(o, name, orsetAdd(o.state as OrSet, this.replica, v));
      },
      remove: (v) => this.local(o, name, orsetRemove(o.state as OrSet, v)),
      has: (v) => (o.state as OrSet).entries.has(canonicalJson(v)),
      values,
      value: values,
      subscribe: (fn) => this.listen(o, fn),
    };
  }

  register<T = unknown>(name: string): RegisterHandle<T> {
    const o = this.obj(name, 'lww');
    const get = () => stateValue('lww', o.state) as T | undefined;
    return {
      set: (v) => {
        this.checkValue(v);
        this.local(o, name, this.lwwDelta(v));
      },
      get,
      value: get,
      subscribe: (fn) => this.listen(o, fn),
    };
  }

  /** An OR-map whose values are all CRDTs of kind `of`. */
  map(name: string, of: InnerKind): OrMapHandle {
    const o = this.obj(name, 'ormap', of);
    const m = () => o.state as OrMap;
    const need = (...kinds: InnerKind[]) => {
      if (!kinds.includes(of))
        throw new FoundationError(
          'FND_ERR_STATE_TYPE',
          `state map "${name}" holds ${of} values; this operation needs ${kinds.join(' or ')}`,
          { name, kind: of },
        );
    };
    const key = (k: string) => {
      if (!isName(k, this.limits.maxKeyLength))
        throw new FoundationError(
          'FND_ERR_STATE_LIMIT',
          `state map key must be a non-empty well-formed string of at most ${this.limits.maxKeyLength} units`,
          { name, limit: 'maxKeyLength' },
        );
      return k;
    };
    const inner = (k: string) => m().vals.get(k) ?? empty(of);
    const update = (k: string, d: InnerState) =>
      this.local(o, name, ormapUpdate(m(), this.replica, key(k), d));
    const value = () => stateValue('ormap', o.state) as Record<string, unknown>;
    return {
      keys: () => ormapKeys(m()).sort(),
      has: (k) => m().keys.entries.has(canonicalJson(k)),
      get: (k) => (m().keys.entries.has(canonicalJson(k)) ? stateValue(of, inner(k)) : undefined),
      value,
      delete: (k) => this.local(o, name, ormapRemove(m(), k)),
      increment: (k, n = 1) => {
        need('gcounter', 'pncounter');
        const s = inner(k);
        if (of === 'gcounter') {
          this.checkCount(n, gcounterValue(s as GCounter));
          update(k, gcounterInc(s as GCounter, this.replica, n));
        } else {
          this.checkCount(n, gcounterValue((s as PNCounter).p));
          update(k, pncounterAdd(s as PNCounter, this.replica, n));
        }
      },
      decrement: (k, n = 1) => {
        need('pncounter');
        const s = inner(k) as PNCounter;
        this.checkCount(n, gcounterValue(s.n));
        update(k, pncounterAdd(s, this.replica, -n));
      },
      add: (k, v) => {
        need('orset');
        this.checkValue(v);
        update(k, orsetAdd(inner(k) as OrSet, this.replica, v));
      },
      removeElement: (k, v) => {
        need('orset');
        update(k, orsetRemove(inner(k) as OrSet, v));
      },
      set: (k, v) => {
        need('lww');
        this.checkValue(v);
        update(k, this.lwwDelta(v));
      },
      subscribe: (fn) => this.listen(o, fn as StateListener<unknown>),
    };
  }

  /** Calls `fn` after every change of object `name` (created now if absent is not needed). */
  subscribe(name: string, fn: StateListener<unknown>): () => void {
    const o = this.objects.get(name);
    if (!o)
      throw new FoundationError('FND_ERR_STATE_TYPE', `no state object named "${name}" yet`, {
        name,
      });
    return this.listen(o, fn);
  }

  stop(): void {
    this.flush();
    this.stopped = true;
    this.timer?.cancel();
  }

  // ---- local ----

  private obj(name: string, kind: CrdtKind, of?: InnerKind): Obj {
    if (!isName(name, this.limits.maxNameLength))
      throw new FoundationError(
        'FND_ERR_STATE_LIMIT',
        `state object names are non-empty well-formed strings of at most ${this.limits.maxNameLength} units`,
        { limit: 'maxNameLength' },
      );
    const tag = kindTag(kind, of);
    const o = this.objects.get(name);
    if (o) {
      if (o.tag !== tag)
        throw new FoundationError(
          'FND_ERR_STATE_TYPE',
          `state object "${name}" is a ${o.tag}, not a ${tag}`,
          { name, kind: o.tag, wanted: tag },
        );
      return o;
    }
    const created = this.create(name, kind, of);
    if (!created)
      throw new FoundationError(
        'FND_ERR_STATE_LIMIT',
        `this node already holds ${this.objects.size} state objects (maxObjects)`,
        { name, limit: 'maxObjects' },
      );
    return created;
  }

  private create(name: string, kind: CrdtKind, of?: InnerKind): Obj | undefined {
    if (this.objects.size >= this.limits.maxObjects) return undefined;
    const o: Obj = {
      kind,
      of,
      tag: kindTag(kind, of),
      state: empty(kind, of),
      hash: undefined,
      listeners: new Set(),
    };
    this.objects.set(name, o);
    return o;
  }

  private checkCount(n: number, current: number): void {
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'counter steps are positive safe integers',
        {
          n,
        },
      );
    if (!Number.isSafeInteger(current + n))
      throw new FoundationError('FND_ERR_STATE_LIMIT', 'counter would exceed a safe integer', {
        limit: 'safeInteger',
      });
  }

  private checkValue(v: unknown): void {
    if (!isPlainData(v))
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'state values are plain JSON data (null, booleans, finite numbers, well-formed strings, arrays, plain objects)',
      );
    if (approxSize(v, this.limits.maxValueBytes) > this.limits.maxValueBytes)
      throw new FoundationError(
        'FND_ERR_STATE_LIMIT',
        `state value larger than ${this.limits.maxValueBytes} bytes (maxValueBytes)`,
        { limit: 'maxValueBytes' },
      );
  }

  private lwwDelta(v: unknown): Lww {
    return { v, ts: this.ctx.hlc.now(), r: this.replica };
  }

  private local(o: Obj, name: string, delta: AnyState): void {
    if (units(o.kind, o.state) + units(o.kind, delta) > this.limits.maxUnitsPerObject) {
      const trial = cloneState(o.kind, o.state);
      join(o.kind, trial, delta);
      if (units(o.kind, trial) > this.limits.maxUnitsPerObject)
        throw new FoundationError(
          'FND_ERR_STATE_LIMIT',
          `state object "${name}" would exceed ${this.limits.maxUnitsPerObject} units (maxUnitsPerObject)`,
          { name, limit: 'maxUnitsPerObject' },
        );
    }
    if (!join(o.kind, o.state, delta)) return;
    o.hash = undefined;
    const p = this.pending.get(name);
    if (p) join(o.kind, p, delta);
    else this.pending.set(name, cloneState(o.kind, delta));
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    this.notify(o);
  }

  private listen(o: Obj, fn: StateListener<never>): () => void {
    const f = fn as StateListener<unknown>;
    o.listeners.add(f);
    return () => o.listeners.delete(f);
  }

  private notify(o: Obj): void {
    if (o.listeners.size === 0) return;
    const v = stateValue(o.kind, o.state);
    for (const fn of o.listeners) {
      try {
        fn(v);
      } catch (err) {
        this.ctx.log.error({ err: (err as Error).message }, 'state listener threw');
      }
    }
  }

  // ---- sending ----

  /** Sends batched deltas to every peer now. */
  flush(): void {
    this.flushQueued = false;
    if (this.pending.size === 0 || this.stopped) return;
    const items: Item[] = [];
    for (const [name, d] of this.pending) {
      const o = this.objects.get(name)!;
      items.push([name, o.tag, encode(o.kind, d)]);
    }
    this.pending = new Map();
    const peers = this.ctx.members.peers();
    for (let i = 0; i < items.length; i += this.limits.maxItemsPerMessage) {
      const msg: StateMsg = { t: 'd', items: items.slice(i, i + this.limits.maxItemsPerMessage) };
      for (const p of peers) this.sendTo(p, msg);
    }
  }

  private sendTo(to: string, msg: StateMsg): void {
    try {
      this.ctx.net.send(to, STATE_KIND, msg);
    } catch (err) {
      // Unreachable now: anti-entropy repairs it once it is back.
      this.ctx.log.debug({ to, err: (err as Error).message }, 'state message not sent');
    }
  }

  private hashOf(o: Obj): string {
    o.hash ??= digest(o.kind, o.state);
    return o.hash;
  }

  private sendDigest(to: string): void {
    if (this.stopped) return;
    const items: Item[] = [];
    for (const [name, o] of this.objects) items.push([name, o.tag, this.hashOf(o)]);
    for (let i = 0; i < items.length; i += this.limits.maxItemsPerMessage)
      this.sendTo(to, { t: 'h', items: items.slice(i, i + this.limits.maxItemsPerMessage) });
  }

  private antiEntropy(): void {
    if (this.stopped) return;
    this.flush();
    const peers = this.ctx.members.peers();
    if (peers.length === 0 || this.objects.size === 0) return;
    this.sendDigest(peers[this.rr++ % peers.length]!);
  }

  /** Whole states, one object per message (a state may be large; deltas are small). */
  private sendStates(to: string, names: Iterable<string>): void {
    for (const name of names) {
      const o = this.objects.get(name);
      if (o) this.sendTo(to, { t: 'd', items: [[name, o.tag, encode(o.kind, o.state)]] });
    }
  }

  // ---- receiving ----

  private receive(payload: unknown, from: string): void {
    if (this.stopped || from === this.ctx.self || !this.ctx.members.isPeer(from)) return;
    const d = decodeMsg(payload, this.limits);
    if (!d.ok) {
      this.ctx.log.warn({ from, reason: d.reason }, 'state message refused');
      return;
    }
    const m = d.value;
    if (m.t === 'w') {
      this.sendStates(from, m.names);
      return;
    }
    if (m.t === 'h') {
      const want: string[] = [];
      const differ: string[] = [];
      for (const [name, tag, h] of m.items) {
        const o = this.objects.get(name);
        if (!o) want.push(name);
        else if (o.tag !== tag) this.ctx.log.warn({ from, name, tag }, 'state object kind differs');
        else if (this.hashOf(o) !== h) {
          differ.push(name);
          want.push(name);
        }
      }
      this.sendStates(from, differ);
      if (want.length > 0) this.sendTo(from, { t: 'w', names: want });
      return;
    }
    for (const [name, tag, body] of m.items) this.merge(from, name, tag, body);
  }

  private merge(from: string, name: string, tag: string, body: unknown): void {
    const k = parseKind(tag)!;
    let o = this.objects.get(name);
    if (o && o.tag !== tag) {
      this.ctx.log.warn({ from, name, tag, mine: o.tag }, 'state object kind differs; refused');
      return;
    }
    const dec = decode(k.kind, body, this.limits, k.of);
    if (!dec.ok) {
      this.ctx.log.warn({ from, name, reason: dec.reason }, 'state refused');
      return;
    }
    if (!this.clockOk(k.kind, dec.value)) {
      this.ctx.log.warn({ from, name }, 'state refused: timestamp too far in the future');
      return;
    }
    if (!o) {
      o = this.create(name, k.kind, k.of);
      if (!o) {
        this.ctx.log.warn({ from, name }, 'state refused: maxObjects reached');
        return;
      }
    }
    // Counters (alone or as a map's values): every joined total must stay a safe integer, or
    // replicas summing the same entries in another order would disagree; anything near the unit
    // limit: the joined state must stay under it. Both are checked on a copy before the real join.
    const counter = isCounter(o.kind) || (o.kind === 'ormap' && isCounter((o.state as OrMap).of));
    if (
      counter ||
      units(o.kind, o.state) + units(o.kind, dec.value) > this.limits.maxUnitsPerObject
    ) {
      const trial = cloneState(o.kind, o.state);
      join(o.kind, trial, dec.value);
      if (units(o.kind, trial) > this.limits.maxUnitsPerObject || !totalsSafe(o.kind, trial)) {
        this.ctx.log.warn({ from, name }, 'state refused: object would exceed its limits');
        return;
      }
    }
    if (!join(o.kind, o.state, dec.value)) return;
    o.hash = undefined;
    this.notify(o);
  }

  /** LWW timestamps: refused when too far ahead of our clock, else folded into our HLC. */
  private clockOk(kind: CrdtKind, s: AnyState): boolean {
    const stamps: Lww[] = [];
    if (kind === 'lww') stamps.push(s as Lww);
    else if (kind === 'ormap' && (s as OrMap).of === 'lww')
      for (const v of (s as OrMap).vals.values()) stamps.push(v as Lww);
    for (const l of stamps) if (l.r !== '' && !this.ctx.hlc.acceptable(l.ts)) return false;
    for (const l of stamps) if (l.r !== '') this.ctx.hlc.observe(l.ts);
    return true;
  }
}

const isCounter = (kind: CrdtKind): boolean => kind === 'gcounter' || kind === 'pncounter';

/** Whether every counter total in `s` (a counter, or a map's counters) is a safe integer. */
function totalsSafe(kind: CrdtKind, s: AnyState): boolean {
  if (kind === 'gcounter') return Number.isSafeInteger(gcounterValue(s as GCounter));
  if (kind === 'pncounter') {
    const c = s as PNCounter;
    return Number.isSafeInteger(gcounterValue(c.p)) && Number.isSafeInteger(gcounterValue(c.n));
  }
  if (kind === 'ormap') {
    const m = s as OrMap;
    for (const v of m.vals.values()) if (!totalsSafe(m.of, v)) return false;
  }
  return true;
}
