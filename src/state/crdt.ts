// The conflict-free replicated data types behind `node.state`, as pure values: each type has an
// empty state, delta mutators (a mutation returns the small state that, joined anywhere, has its
// effect), a join that is commutative, associative and idempotent, a canonical wire encoding and a
// bounded decoder. Replication (src/state/store.ts) only ever joins, so delivery order, duplicates
// and loss (repaired by anti-entropy) cannot make replicas diverge. Delta-state CRDTs after
// Almeida, Shoker, Baquero, "Delta State Replicated Data Types" (2018), as delta_crdt does it.
import { createHash } from 'node:crypto';
import { approxSize, type Decoded, isName, isWellFormed } from '../dist/wire.js';
import { FoundationError } from '../errors.js';
import { compareHlc, type Hlc, isHlc } from '../util/hlc.js';

/** Bounds a decoded state must respect: what one member can make this node hold per object. */
export interface CrdtLimits {
  /** Longest replica id, element key or map key, UTF-16 units. */
  maxKeyLength: number;
  /** Most size units in one object (replica entries, set elements, dots, map keys). */
  maxUnitsPerObject: number;
  /** Largest LWW value or set element, estimated bytes. */
  maxValueBytes: number;
}

export type CrdtKind = 'gcounter' | 'pncounter' | 'orset' | 'lww' | 'ormap';
/** Types an OR-map can hold (maps do not nest). */
export type InnerKind = Exclude<CrdtKind, 'ormap'>;

// ---------------------------------------------------------------------------------------------
// Counters: one non-negative entry per replica; join is the pointwise maximum.

export type GCounter = Map<string, number>;

export function gcounterInc(s: GCounter, replica: string, n: number): GCounter {
  return new Map([[replica, (s.get(replica) ?? 0) + n]]);
}

export function gcounterValue(s: GCounter): number {
  let sum = 0;
  for (const v of s.values()) sum += v;
  return sum;
}

function joinMax(into: Map<string, number>, other: Map<string, number>): boolean {
  let changed = false;
  for (const [k, v] of other) {
    if ((into.get(k) ?? -1) < v) {
      into.set(k, v);
      changed = true;
    }
  }
  return changed;
}

export interface PNCounter {
  p: GCounter;
  n: GCounter;
}

export function pncounterAdd(s: PNCounter, replica: string, by: number): PNCounter {
  return by >= 0
    ? { p: gcounterInc(s.p, replica, by), n: new Map() }
    : { p: new Map(), n: gcounterInc(s.n, replica, -by) };
}

export function pncounterValue(s: PNCounter): number {
  return gcounterValue(s.p) - gcounterValue(s.n);
}

// ---------------------------------------------------------------------------------------------
// Causal context: which events (dots: replica + sequence number) a state has seen. A compact
// version vector plus a "cloud" of dots seen out of order (deltas arrive in any order).

/**
 * The highest dot sequence number: a replica never issues more, and a peer's state claiming more
 * is refused. 2^48 adds on one replica is out of reach, and every dot + 1 stays exact.
 */
export const MAX_DOT = 2 ** 48;

export class CausalContext {
  readonly vv = new Map<string, number>();
  readonly cloud = new Map<string, Set<number>>();

  has(replica: string, n: number): boolean {
    return n <= (this.vv.get(replica) ?? 0) || (this.cloud.get(replica)?.has(n) ?? false);
  }

  /** The next dot of `replica` (this replica's events are always contiguous in its own context). */
  next(replica: string): number {
    return (this.vv.get(replica) ?? 0) + 1;
  }

  add(replica: string, n: number): boolean {
    if (this.has(replica, n)) return false;
    let c = this.cloud.get(replica);
    if (!c) {
      c = new Set();
      this.cloud.set(replica, c);
    }
    c.add(n);
    // Only a dot right after the version vector can extend it (a full compact here would make
    // adding many out-of-order dots quadratic).
    if (n === (this.vv.get(replica) ?? 0) + 1) this.compact(replica);
    return true;
  }

  join(other: CausalContext): boolean {
    let changed = false;
    for (const [r, n] of other.vv) {
      if ((this.vv.get(r) ?? 0) < n) {
        this.vv.set(r, n);
        changed = true;
        this.compact(r);
      }
    }
    for (const [r, ns] of other.cloud) for (const n of ns) if (this.add(r, n)) changed = true;
    return changed;
  }

  /** Moves cloud dots that extend the version vector into it: the canonical form. */
  private compact(replica: string): void {
    const c = this.cloud.get(replica);
    if (!c) return;
    let top = this.vv.get(replica) ?? 0;
    for (const n of c) if (n <= top) c.delete(n);
    while (c.has(top + 1)) {
      c.delete(top + 1);
      top++;
    }
    if (top > 0) this.vv.set(replica, top);
    if (c.size === 0) this.cloud.delete(replica);
  }

  clone(): CausalContext {
    const c = new CausalContext();
    for (const [r, n] of this.vv) c.vv.set(r, n);
    for (const [r, ns] of this.cloud) c.cloud.set(r, new Set(ns));
    return c;
  }

  get units(): number {
    let u = this.vv.size;
    for (const s of this.cloud.values()) u += s.size;
    return u;
  }
}

const dotKey = (r: string, n: number) => `${n}@${r}`;

// ---------------------------------------------------------------------------------------------
// OR-set (add-wins observed-remove set): every add is a fresh dot; a remove deletes the dots it
// has seen. Join keeps a dot present on both sides, or on one side and unseen by the other.

export interface OrSetEntry {
  /** The element itself (its canonical JSON is the entry's key). */
  v: unknown;
  /** Dots still supporting the element: dotKey → [replica, n]. */
  dots: Map<string, [string, number]>;
}

export interface OrSet {
  entries: Map<string, OrSetEntry>;
  ctx: CausalContext;
}

export const emptyOrSet = (): OrSet => ({ entries: new Map(), ctx: new CausalContext() });

export function orsetAdd(s: OrSet, replica: string, v: unknown): OrSet {
  const key = canonicalJson(v);
  const n = s.ctx.next(replica);
  if (n > MAX_DOT)
    throw new FoundationError('FND_ERR_STATE_LIMIT', `replica ${replica} has used all its dots`, {
      limit: 'dots',
    });
  const d = emptyOrSet();
  // The element is kept in its canonical form (object keys sorted), as every replica keeps it: the
  // same element then encodes to the same bytes everywhere, whatever key order it was added with.
  d.entries.set(key, { v: JSON.parse(key), dots: new Map([[dotKey(replica, n), [replica, n]]]) });
  d.ctx.add(replica, n);
  // The delta's context also covers the element's older dots: the new add replaces them.
  for (const [r, m] of s.entries.get(key)?.dots.values() ?? []) d.ctx.add(r, m);
  // This replica's own context must stay contiguous, so a delta always carries dot n as seen here.
  return d;
}

export function orsetRemove(s: OrSet, v: unknown): OrSet {
  const d = emptyOrSet();
  for (const [r, m] of s.entries.get(canonicalJson(v))?.dots.values() ?? []) d.ctx.add(r, m);
  return d;
}

/** The elements, in the order of their canonical JSON (the same on every replica). */
export function orsetValues(s: OrSet): unknown[] {
  return sortedEntries(s.entries).map(([, e]) => e.v);
}

function joinOrSet(into: OrSet, other: OrSet): boolean {
  let changed = false;
  // Dots of `into` that `other` has seen but no longer holds were removed there.
  for (const [key, e] of into.entries) {
    const oe = other.entries.get(key);
    for (const [dk, [r, n]] of e.dots) {
      if (!oe?.dots.has(dk) && other.ctx.has(r, n)) {
        e.dots.delete(dk);
        changed = true;
      }
    }
    if (e.dots.size === 0) into.entries.delete(key);
  }
  // Dots of `other` that `into` has not seen yet are new adds.
  for (const [key, oe] of other.entries) {
    for (const [dk, [r, n]] of oe.dots) {
      if (into.ctx.has(r, n)) continue;
      let e = into.entries.get(key);
      if (!e) {
        e = { v: oe.v, dots: new Map() };
        into.entries.set(key, e);
      }
      e.dots.set(dk, [r, n]);
      changed = true;
    }
  }
  if (into.ctx.join(other.ctx)) changed = true;
  return changed;
}

// ---------------------------------------------------------------------------------------------
// LWW register: the value with the greatest (hybrid logical timestamp, replica) wins; a tie on both
// (only a misbehaving member produces one) is broken by the value's canonical JSON.

export interface Lww {
  v: unknown;
  ts: Hlc;
  r: string;
}

/** The register before any write: loses against every write. */
export const emptyLww = (): Lww => ({ v: null, ts: { wall: 0, counter: 0 }, r: '' });

export function compareLww(a: Lww, b: Lww): number {
  const c = compareHlc(a.ts, b.ts);
  if (c !== 0) return c;
  if (a.r !== b.r) return a.r < b.r ? -1 : 1;
  const av = canonicalJson(a.v);
  const bv = canonicalJson(b.v);
  return av === bv ? 0 : av < bv ? -1 : 1;
}

function joinLww(into: Lww, other: Lww): boolean {
  if (compareLww(other, into) <= 0) return false;
  into.v = other.v;
  into.ts = other.ts;
  into.r = other.r;
  return true;
}

// ---------------------------------------------------------------------------------------------
// OR-map of CRDTs: keys are present by add-wins dots (like the OR-set); each key's value is a CRDT
// of one inner kind, joined with its own join. Removing a key hides it (removes the dots seen);
// the value's state is kept, so an update concurrent with or after the remove shows the key again
// with every contribution made to it (the "update wins" rule, documented in docs/state.md).

export interface OrMap {
  of: InnerKind;
  keys: OrSet;
  vals: Map<string, InnerState>;
}

export type InnerState = GCounter | PNCounter | OrSet | Lww;
export type AnyState = InnerState | OrMap;

export const emptyOrMap = (of: InnerKind): OrMap => ({ of, keys: emptyOrSet(), vals: new Map() });

/** The delta of "key now has this inner delta": a fresh presence dot plus the inner delta. */
export function ormapUpdate(s: OrMap, replica: string, key: string, inner: InnerState): OrMap {
  const d = emptyOrMap(s.of);
  d.keys = orsetAdd(s.keys, replica, key);
  d.vals.set(key, inner);
  return d;
}

export function ormapRemove(s: OrMap, key: string): OrMap {
  const d = emptyOrMap(s.of);
  d.keys = orsetRemove(s.keys, key);
  return d;
}

export function ormapKeys(s: OrMap): string[] {
  return [...s.keys.entries.values()].map((e) => e.v as string);
}

function joinOrMap(into: OrMap, other: OrMap): boolean {
  let changed = joinOrSet(into.keys, other.keys);
  for (const [k, v] of other.vals) {
    const mine = into.vals.get(k);
    if (mine === undefined) {
      into.vals.set(k, cloneState(into.of, v) as InnerState);
      changed = true;
    } else if (join(into.of, mine, v)) changed = true;
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------
// Generic operations, by kind.

export function empty(kind: CrdtKind, of?: InnerKind): AnyState {
  switch (kind) {
    case 'gcounter':
      return new Map();
    case 'pncounter':
      return { p: new Map(), n: new Map() };
    case 'orset':
      return emptyOrSet();
    case 'lww':
      return emptyLww();
    case 'ormap':
      return emptyOrMap(of ?? 'lww');
  }
}

/** Joins `other` into `into` (mutating it); true when `into` changed. */
export function join(kind: CrdtKind, into: AnyState, other: AnyState): boolean {
  switch (kind) {
    case 'gcounter':
      return joinMax(into as GCounter, other as GCounter);
    case 'pncounter': {
      const a = into as PNCounter;
      const b = other as PNCounter;
      const p = joinMax(a.p, b.p);
      return joinMax(a.n, b.n) || p;
    }
    case 'orset':
      return joinOrSet(into as OrSet, other as OrSet);
    case 'lww':
      return joinLww(into as Lww, other as Lww);
    case 'ormap':
      return joinOrMap(into as OrMap, other as OrMap);
  }
}

export function cloneState(kind: CrdtKind, s: AnyState): AnyState {
  const c = kind === 'ormap' ? emptyOrMap((s as OrMap).of) : empty(kind);
  join(kind, c, s);
  return c;
}

/** The user-visible value. */
export function stateValue(kind: CrdtKind, s: AnyState): unknown {
  switch (kind) {
    case 'gcounter':
      return gcounterValue(s as GCounter);
    case 'pncounter':
      return pncounterValue(s as PNCounter);
    case 'orset':
      return orsetValues(s as OrSet);
    case 'lww':
      return (s as Lww).r === '' ? undefined : (s as Lww).v;
    case 'ormap': {
      const m = s as OrMap;
      const out: Record<string, unknown> = {};
      for (const k of ormapKeys(m).sort()) {
        const v = m.vals.get(k);
        out[k] = v === undefined ? stateValue(m.of, empty(m.of)) : stateValue(m.of, v);
      }
      return out;
    }
  }
}

/** Size units (what CrdtLimits.maxUnitsPerObject bounds). */
export function units(kind: CrdtKind, s: AnyState): number {
  switch (kind) {
    case 'gcounter':
      return (s as GCounter).size;
    case 'pncounter':
      return (s as PNCounter).p.size + (s as PNCounter).n.size;
    case 'orset': {
      const o = s as OrSet;
      let u = o.ctx.units;
      for (const e of o.entries.values()) u += 1 + e.dots.size;
      return u;
    }
    case 'lww':
      return 1;
    case 'ormap': {
      const m = s as OrMap;
      let u = units('orset', m.keys);
      for (const v of m.vals.values()) u += 1 + units(m.of, v);
      return u;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Wire form: canonical (sorted) plain arrays, so equal states encode to equal bytes and hash alike.

const sortedEntries = <V>(m: Map<string, V>): Array<[string, V]> =>
  [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

function encodeCtx(c: CausalContext): unknown {
  return [
    sortedEntries(c.vv),
    sortedEntries(c.cloud).map(([r, ns]) => [r, [...ns].sort((a, b) => a - b)]),
  ];
}

export function encode(kind: CrdtKind, s: AnyState): unknown {
  switch (kind) {
    case 'gcounter':
      return sortedEntries(s as GCounter);
    case 'pncounter':
      return [encode('gcounter', (s as PNCounter).p), encode('gcounter', (s as PNCounter).n)];
    case 'orset': {
      const o = s as OrSet;
      return [
        sortedEntries(o.entries).map(([, e]) => [
          e.v,
          [...e.dots.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])),
        ]),
        encodeCtx(o.ctx),
      ];
    }
    case 'lww': {
      const l = s as Lww;
      return [l.v, l.ts.wall, l.ts.counter, l.r];
    }
    case 'ormap': {
      const m = s as OrMap;
      return [
        m.of,
        encode('orset', m.keys),
        sortedEntries(m.vals).map(([k, v]) => [k, encode(m.of, v)]),
      ];
    }
  }
}

/** A stable digest of a state (anti-entropy compares these instead of whole states). */
export function digest(kind: CrdtKind, s: AnyState): string {
  return createHash('sha1')
    .update(JSON.stringify(encode(kind, s)))
    .digest('base64')
    .slice(0, 16);
}

/** JSON with object keys sorted: equal values, equal strings. Only plain data reaches it. */
export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * Plain JSON data only (what values and elements may be): no functions, bigints, cycles, bytes,
 * and well-formed strings only, keys included (see isWellFormed).
 */
export function isPlainData(v: unknown, depth = 0): boolean {
  if (depth > 32) return false;
  if (v === null || typeof v === 'boolean') return true;
  if (typeof v === 'string') return isWellFormed(v);
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isPlainData(x, depth + 1));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)
    return Object.entries(v as object).every(
      ([k, x]) => isWellFormed(k) && isPlainData(x, depth + 1),
    );
  return false;
}

// ---- decoding (untrusted input) ----

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
const isNat = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A dot's sequence number (or a version vector's top): 1..MAX_DOT (0 too when `zero`). */
const isDot = (v: unknown, zero = false): v is number =>
  isNat(v) && v <= MAX_DOT && (zero || v > 0);
const isKey = isName;

class Budget {
  used = 0;
  constructor(readonly max: number) {}
  take(n = 1): boolean {
    this.used += n;
    return this.used <= this.max;
  }
}

function decodeCounter(w: unknown, lim: CrdtLimits, b: Budget): GCounter | string {
  if (!Array.isArray(w)) return 'counter: not an array';
  const m: GCounter = new Map();
  for (const e of w) {
    if (!b.take()) return 'object too large';
    if (!Array.isArray(e) || e.length !== 2 || !isKey(e[0], lim.maxKeyLength) || !isNat(e[1]))
      return 'counter: bad entry';
    if (m.has(e[0])) return 'counter: duplicate replica';
    m.set(e[0], e[1]);
  }
  // Sums must stay exact: refuse a state whose total is not a safe integer.
  if (!Number.isSafeInteger(gcounterValue(m))) return 'counter: total not a safe integer';
  return m;
}

function decodeCtx(w: unknown, lim: CrdtLimits, b: Budget): CausalContext | string {
  if (!Array.isArray(w) || w.length !== 2 || !Array.isArray(w[0]) || !Array.isArray(w[1]))
    return 'context: bad shape';
  const c = new CausalContext();
  for (const e of w[0]) {
    if (!b.take()) return 'object too large';
    if (!Array.isArray(e) || e.length !== 2 || !isKey(e[0], lim.maxKeyLength) || !isDot(e[1], true))
      return 'context: bad entry';
    c.vv.set(e[0], Math.max(c.vv.get(e[0]) ?? 0, e[1]));
  }
  for (const e of w[1]) {
    if (
      !Array.isArray(e) ||
      e.length !== 2 ||
      !isKey(e[0], lim.maxKeyLength) ||
      !Array.isArray(e[1])
    )
      return 'context: bad cloud entry';
    for (const n of e[1]) {
      if (!b.take()) return 'object too large';
      if (!isDot(n)) return 'context: bad dot';
      c.add(e[0], n);
    }
  }
  return c;
}

function decodeValue(v: unknown, lim: CrdtLimits): string | undefined {
  if (!isPlainData(v)) return 'value is not plain JSON data';
  if (approxSize(v, lim.maxValueBytes) > lim.maxValueBytes) return 'value too large';
  return undefined;
}

function decodeOrSet(w: unknown, lim: CrdtLimits, b: Budget, keysOnly: boolean): OrSet | string {
  if (!Array.isArray(w) || w.length !== 2 || !Array.isArray(w[0])) return 'set: bad shape';
  const ctx = decodeCtx(w[1], lim, b);
  if (typeof ctx === 'string') return ctx;
  const s: OrSet = { entries: new Map(), ctx };
  for (const e of w[0]) {
    if (!b.take()) return 'object too large';
    if (!Array.isArray(e) || e.length !== 2 || !Array.isArray(e[1]) || e[1].length === 0)
      return 'set: bad entry';
    if (keysOnly ? !isKey(e[0], lim.maxKeyLength) : decodeValue(e[0], lim) !== undefined)
      return 'set: bad element';
    const key = canonicalJson(e[0]);
    if (s.entries.has(key)) return 'set: duplicate element';
    const dots = new Map<string, [string, number]>();
    for (const d of e[1]) {
      if (!b.take()) return 'object too large';
      if (!Array.isArray(d) || d.length !== 2 || !isKey(d[0], lim.maxKeyLength) || !isDot(d[1]))
        return 'set: bad dot';
      // A state holds only dots its own context has seen (the join relies on it).
      if (!ctx.has(d[0], d[1])) return 'set: dot outside its context';
      dots.set(dotKey(d[0], d[1]), [d[0], d[1]]);
    }
    s.entries.set(key, { v: keysOnly ? e[0] : JSON.parse(key), dots });
  }
  return s;
}

function decodeInner(
  kind: CrdtKind,
  w: unknown,
  lim: CrdtLimits,
  b: Budget,
): AnyState | string | undefined {
  switch (kind) {
    case 'gcounter':
      return decodeCounter(w, lim, b);
    case 'pncounter': {
      if (!Array.isArray(w) || w.length !== 2) return 'pncounter: bad shape';
      const p = decodeCounter(w[0], lim, b);
      if (typeof p === 'string') return p;
      const n = decodeCounter(w[1], lim, b);
      if (typeof n === 'string') return n;
      return { p, n };
    }
    case 'orset':
      return decodeOrSet(w, lim, b, false);
    case 'lww': {
      if (!Array.isArray(w) || w.length !== 4) return 'lww: bad shape';
      const ts = { wall: w[1], counter: w[2] };
      if (!isHlc(ts)) return 'lww: bad timestamp';
      // The never-written register (replica '') is the only one with an empty replica id.
      if (w[3] === '' && w[0] === null && ts.wall === 0 && ts.counter === 0) return emptyLww();
      if (!isKey(w[3], lim.maxKeyLength)) return 'lww: bad replica';
      const bad = decodeValue(w[0], lim);
      if (bad) return bad;
      return { v: w[0], ts, r: w[3] };
    }
    case 'ormap':
      return undefined;
  }
}

const KINDS: readonly CrdtKind[] = ['gcounter', 'pncounter', 'orset', 'lww', 'ormap'];
export const isKind = (v: unknown): v is CrdtKind => KINDS.includes(v as CrdtKind);

/** Decodes and bounds a wire state of `kind` (for an OR-map, its inner kind must match `of`). */
export function decode(
  kind: CrdtKind,
  w: unknown,
  lim: CrdtLimits,
  of?: InnerKind,
): Decoded<AnyState> {
  const b = new Budget(lim.maxUnitsPerObject);
  if (kind !== 'ormap') {
    const s = decodeInner(kind, w, lim, b);
    return typeof s === 'string' || s === undefined
      ? fail(s ?? 'bad kind')
      : { ok: true, value: s };
  }
  if (!Array.isArray(w) || w.length !== 3 || !Array.isArray(w[2])) return fail('map: bad shape');
  if (!isKind(w[0]) || w[0] === 'ormap' || (of !== undefined && w[0] !== of))
    return fail('map: wrong value kind');
  const inner = w[0] as InnerKind;
  const keys = decodeOrSet(w[1], lim, b, true);
  if (typeof keys === 'string') return fail(keys);
  const m: OrMap = { of: inner, keys, vals: new Map() };
  for (const e of w[2]) {
    if (!b.take()) return fail('object too large');
    if (!Array.isArray(e) || e.length !== 2 || !isKey(e[0], lim.maxKeyLength))
      return fail('map: bad entry');
    if (m.vals.has(e[0])) return fail('map: duplicate key');
    const v = decodeInner(inner, e[1], lim, b);
    if (typeof v === 'string' || v === undefined) return fail(v ?? 'map: bad value');
    m.vals.set(e[0], v as InnerState);
  }
  return { ok: true, value: m };
}
