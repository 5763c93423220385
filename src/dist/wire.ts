// The wire messages of the cluster-wide layer (registry, groups, pub/sub, remote spawn, distributed
// supervisor), and the one decoder each kind goes through: it checks shape, types and bounds and
// returns a typed value or a reason, before any state changes. Nothing in src/dist/ reads a field
// of an untrusted payload except through these functions.
import { type Hlc, isHlc } from '../util/hlc.js';

/** Messenger kinds of this layer (node-level messaging `kind`s; see docs/protocol.md). */
export const DIST_KINDS = {
  /** Replication of the name registry (ReplicaMsg). */
  registry: 'dist:reg',
  /** "Tell me once you applied my registry change up to seq; who owns this name?" (request). */
  registryAck: 'dist:reg:ack',
  /** Replication of process groups of one scope: `dist:pg:<scope>` (ReplicaMsg). */
  groupsPrefix: 'dist:pg:',
  /** Replication of pub/sub interest (ReplicaMsg). */
  interest: 'dist:ps',
  /** One published message for the receiving node's subscribers (PublishMsg). */
  publish: 'dist:pub',
  /** Remote spawn (request, SpawnMsg → [node, id]). */
  spawn: 'dist:spawn',
  /** Replication of which distributed-supervisor children run where (ReplicaMsg). */
  placement: 'dist:ds',
  /** State handed from a child's old node to its new one (HandoffMsg). */
  handoff: 'dist:ds:handoff',
} as const;

/**
 * Limits on what one member can make this node hold or do. Defaults in DIST_LIMITS; every
 * decoder refuses a message that exceeds them, so a member with the secret cannot make another
 * node's memory grow without bound with a few messages.
 */
export interface DistLimits {
  /** Longest registry name, group name, topic or kind, in UTF-16 units. Default 256. */
  maxNameLength: number;
  /** Most entries one node may announce per replicated table (names, group joins, topics). Default 100 000. */
  maxEntriesPerNode: number;
  /** Most operations or entries in one replication message. Default 4096. */
  maxOpsPerMessage: number;
  /** Largest registry `meta` / handoff state, estimated bytes. Default 4096 / 1 MiB. */
  maxMetaBytes: number;
  maxHandoffBytes: number;
  /** Most queue groups named in one published message. Default 64. */
  maxQueuesPerMessage: number;
}

export const DIST_LIMITS: Readonly<DistLimits> = Object.freeze({
  maxNameLength: 256,
  // 100 000 names of ≤ 256 characters with small metadata: tens of MB per member at worst.
  maxEntriesPerNode: 100_000,
  maxOpsPerMessage: 4096,
  maxMetaBytes: 4096,
  maxHandoffBytes: 1024 * 1024,
  maxQueuesPerMessage: 64,
});

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isNat = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Whether `s` is well-formed UTF-16 (no lone surrogate). The wire carries strings as UTF-8, which
 * turns a lone surrogate into U+FFFD: such a string would be one thing here and another on every
 * other node.
 */
export function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** A non-empty, well-formed string of at most `max` UTF-16 units. */
export function isName(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max && isWellFormed(v);
}

/**
 * An estimate of a value's encoded size in bytes, walking at most `budget` bytes' worth: returns
 * Infinity as soon as the budget, a depth of 32 or 10 000 nodes is exceeded. Used to bound
 * metadata and handoff state before keeping them.
 */
export function approxSize(v: unknown, budget: number): number {
  let nodes = 0;
  let size = 0;
  const walk = (x: unknown, depth: number): boolean => {
    if (++nodes > 10_000 || depth > 32) return false;
    if (typeof x === 'string') size += x.length * 3 + 5;
    else if (x instanceof Uint8Array) size += x.byteLength + 5;
    else if (Array.isArray(x) || x instanceof Set) {
      // A Set goes on the wire as an array, a Map as an object (the codec's mapsAsObjects).
      size += 5;
      for (const e of x) if (!walk(e, depth + 1)) return false;
    } else if (x instanceof Map) {
      size += 5;
      for (const [k, e] of x) if (!walk(k, depth + 1) || !walk(e, depth + 1)) return false;
    } else if (isObject(x)) {
      size += 5;
      for (const k in x) {
        size += k.length * 3 + 5;
        if (!walk(x[k], depth + 1)) return false;
      }
    } else size += 9;
    return size <= budget;
  };
  return walk(v, 0) ? size : Number.POSITIVE_INFINITY;
}

// ---- replication (registry, groups, interest, placement) ----

/** One replicated entry: a key and its value (the value is checked by the table's own decoder). */
export interface WireEntry {
  k: string;
  v: unknown;
}

/** A set (`v` present) or a delete (`d: 1`). */
export type WireOp = { k: string; v: unknown } | { k: string; d: 1 };

/**
 * Messages of an owner-partitioned replicated table (src/dist/replica.ts). `epoch` identifies one
 * run of the sending node (a restarted node starts a new epoch); `seq` counts its deltas.
 */
export type ReplicaMsg =
  /** A chunk of the sender's whole table as of `seq`; `first` starts a snapshot, `last` ends it. */
  | { t: 'snap'; epoch: number; seq: number; first: boolean; last: boolean; entries: WireEntry[] }
  /** Changes number `seq` (applied only right after `seq - 1`). */
  | { t: 'delta'; epoch: number; seq: number; ops: WireOp[] }
  /** "Send me your snapshot" (after a gap, or an epoch this node has not seen). */
  | { t: 'pull' }
  /** Periodic anti-entropy: the sender's latest seq; a receiver that is behind pulls. */
  | { t: 'digest'; epoch: number; seq: number };

function decodeEntries(v: unknown, limits: DistLimits, keyMax: number): WireEntry[] | string {
  if (!Array.isArray(v)) return 'entries is not an array';
  if (v.length > limits.maxOpsPerMessage) return `more than ${limits.maxOpsPerMessage} entries`;
  const out: WireEntry[] = [];
  for (const e of v) {
    if (!isObject(e) || !isName(e.k, keyMax)) return 'entry without a valid key';
    out.push({ k: e.k, v: e.v });
  }
  return out;
}

/**
 * Decodes a replication message. `keyMax` is the longest key the table uses (a key may combine a
 * name with a pid id or a queue name). Values are returned as received: the table validates them.
 */
export function decodeReplica(
  p: unknown,
  limits: DistLimits,
  keyMax = limits.maxNameLength * 2 + 32,
): Decoded<ReplicaMsg> {
  if (!isObject(p)) return fail('not an object');
  switch (p.t) {
    case 'pull':
      return ok({ t: 'pull' });
    case 'digest':
      if (!isNat(p.epoch) || !isNat(p.seq)) return fail('digest: bad epoch or seq');
      return ok({ t: 'digest', epoch: p.epoch, seq: p.seq });
    case 'snap': {
      if (!isNat(p.epoch) || !isNat(p.seq)) return fail('snap: bad epoch or seq');
      const entries = decodeEntries(p.entries, limits, keyMax);
      if (typeof entries === 'string') return fail(`snap: ${entries}`);
      return ok({
        t: 'snap',
        epoch: p.epoch,
        seq: p.seq,
        first: p.first === true,
        last: p.last === true,
        entries,
      });
    }
    case 'delta': {
      if (!isNat(p.epoch) || !isNat(p.seq) || p.seq < 1) return fail('delta: bad epoch or seq');
      if (!Array.isArray(p.ops)) return fail('delta: ops is not an array');
      if (p.ops.length > limits.maxOpsPerMessage)
        return fail(`delta: more than ${limits.maxOpsPerMessage} ops`);
      const ops: WireOp[] = [];
      for (const o of p.ops) {
        if (!isObject(o) || !isName(o.k, keyMax)) return fail('delta: op without a valid key');
        ops.push(o.d === 1 ? { k: o.k, d: 1 } : { k: o.k, v: o.v });
      }
      return ok({ t: 'delta', epoch: p.epoch, seq: p.seq, ops });
    }
    default:
      return fail('unknown replication message type');
  }
}

// ---- registry ----

/** A registry entry's value on the wire: the actor id on the announcing node, its HLC, its meta. */
export interface RegValue {
  id: number;
  ts: Hlc;
  meta?: unknown;
}

export function decodeRegValue(v: unknown, limits: DistLimits): Decoded<RegValue> {
  if (!isObject(v)) return fail('registry value is not an object');
  if (!isNat(v.id) || v.id < 1) return fail('registry value: bad actor id');
  if (!isHlc(v.ts)) return fail('registry value: bad timestamp');
  if (v.meta !== undefined && approxSize(v.meta, limits.maxMetaBytes) > limits.maxMetaBytes)
    return fail(`registry value: meta larger than ${limits.maxMetaBytes} bytes`);
  const out: RegValue = { id: v.id, ts: { wall: v.ts.wall, counter: v.ts.counter } };
  if (v.meta !== undefined) out.meta = v.meta;
  return ok(out);
}

/** Request `dist:reg:ack`: wait until the sender's registry change `seq` of `epoch` is applied. */
export interface RegAckMsg {
  name: string;
  epoch: number;
  seq: number;
}

export function decodeRegAck(p: unknown, limits: DistLimits): Decoded<RegAckMsg> {
  if (!isObject(p)) return fail('not an object');
  if (!isName(p.name, limits.maxNameLength)) return fail('bad name');
  if (!isNat(p.epoch) || !isNat(p.seq)) return fail('bad epoch or seq');
  return ok({ name: p.name, epoch: p.epoch, seq: p.seq });
}

/** The reply to `dist:reg:ack`: who owns the name on the replying node (null: nobody). */
export interface RegAckReply {
  owner: { node: string; id: number; ts: Hlc } | null;
}

export function decodeRegAckReply(p: unknown, limits: DistLimits): Decoded<RegAckReply> {
  if (!isObject(p)) return fail('not an object');
  if (p.owner === null) return ok({ owner: null });
  const o = p.owner;
  if (!isObject(o) || !isName(o.node, limits.maxNameLength) || !isNat(o.id) || !isHlc(o.ts))
    return fail('bad owner');
  return ok({ owner: { node: o.node, id: o.id, ts: { wall: o.ts.wall, counter: o.ts.counter } } });
}

// ---- pub/sub ----

/**
 * One published message for the receiving node: its subscribers, plus one member of each queue
 * group in `q`. On the wire an array, `[topic, msg]` or `[topic, msg, q]`, and `[topic, msg,
 * q | null, ctx]` when the publisher ran in a request context (the hot path: smaller and faster
 * to encode and decode than an object with keys).
 */
export interface PublishMsg {
  topic: string;
  msg: unknown;
  /** Queue groups this node was chosen to deliver to (one member each). */
  q: string[] | undefined;
  /** The publisher's request context (opaque here; checked by the propagation hook). */
  ctx: unknown;
}

/** Largest request context a published message may carry (estimated bytes). */
const MAX_PUBLISH_CTX = 8192 + 256;

export function decodePublish(p: unknown, limits: DistLimits): Decoded<PublishMsg> {
  if (!Array.isArray(p) || p.length < 2 || p.length > 4) return fail('not [topic, msg, q?, ctx?]');
  const topic: unknown = p[0];
  if (!isName(topic, limits.maxNameLength)) return fail('bad topic');
  let ctx: unknown;
  if (p.length === 4) {
    ctx = p[3];
    if (approxSize(ctx, MAX_PUBLISH_CTX) > MAX_PUBLISH_CTX) return fail('context too large');
  }
  const raw: unknown = p[2];
  if (p.length === 2 || raw === null) return ok({ topic, msg: p[1], q: undefined, ctx });
  if (!Array.isArray(raw) || raw.length > limits.maxQueuesPerMessage) return fail('bad queues');
  const q: string[] = [];
  for (const x of raw) {
    if (!isName(x, limits.maxNameLength)) return fail('bad queue name');
    q.push(x);
  }
  return ok({ topic, msg: p[1], q, ctx });
}

// ---- remote spawn ----

export interface SpawnMsg {
  kind: string;
  args: unknown;
  name?: string;
  trapExits?: boolean;
  mailbox?: { max: number; overflow: 'reject' | 'drop-oldest' | 'drop-newest' };
  /** Link the new actor to this pid (spawn_link across nodes). */
  link?: { node: string; id: number };
  /** State handed over from the child's previous node (distributed supervisor). */
  handoff?: unknown;
  /**
   * How long the requester waits, ms: an actor whose init finishes later is stopped, since
   * nobody would know of it (older senders leave it out: no limit).
   */
  waitMs?: number;
}

const OVERFLOWS: ReadonlySet<unknown> = new Set(['reject', 'drop-oldest', 'drop-newest']);

export function decodeSpawn(p: unknown, limits: DistLimits): Decoded<SpawnMsg> {
  if (!isObject(p)) return fail('not an object');
  if (!isName(p.kind, limits.maxNameLength)) return fail('bad kind');
  const out: SpawnMsg = { kind: p.kind, args: p.args };
  if (p.name !== undefined) {
    if (!isName(p.name, limits.maxNameLength)) return fail('bad name');
    out.name = p.name;
  }
  if (p.trapExits !== undefined) {
    if (typeof p.trapExits !== 'boolean') return fail('bad trapExits');
    out.trapExits = p.trapExits;
  }
  if (p.mailbox !== undefined) {
    const m = p.mailbox;
    if (!isObject(m) || !isNat(m.max) || m.max < 1 || !OVERFLOWS.has(m.overflow))
      return fail('bad mailbox');
    out.mailbox = { max: m.max, overflow: m.overflow as 'reject' };
  }
  if (p.link !== undefined) {
    const l = p.link;
    if (!isObject(l) || !isName(l.node, limits.maxNameLength) || !isNat(l.id))
      return fail('bad link');
    out.link = { node: l.node, id: l.id };
  }
  if (p.handoff !== undefined) {
    if (approxSize(p.handoff, limits.maxHandoffBytes) > limits.maxHandoffBytes)
      return fail('handoff state too large');
    out.handoff = p.handoff;
  }
  if (p.waitMs !== undefined) {
    if (!isNat(p.waitMs)) return fail('bad waitMs');
    out.waitMs = p.waitMs;
  }
  return ok(out);
}

/** A pid in a reply: `{ node, id }`. */
export function decodePidReply(
  p: unknown,
  limits: DistLimits,
): Decoded<{ node: string; id: number }> {
  if (!isObject(p) || !isName(p.node, limits.maxNameLength) || !isNat(p.id)) return fail('bad pid');
  return ok({ node: p.node, id: p.id });
}

// ---- distributed supervisor ----

/** A placement entry: which child of which supervisor runs on the announcing node, since when. */
export interface PlacementValue {
  id: number;
  ts: Hlc;
}

export function decodePlacementValue(v: unknown): Decoded<PlacementValue> {
  if (!isObject(v) || !isNat(v.id) || !isHlc(v.ts)) return fail('bad placement value');
  return ok({ id: v.id, ts: { wall: v.ts.wall, counter: v.ts.counter } });
}

/**
 * What a child's old node hands to the node that will run it next: the placement timestamp of the
 * instance it replaces (so the moved child keeps its place in the earliest-start rule) and,
 * when the supervisor has a handoff hook, its state.
 */
export interface HandoffMsg {
  sup: string;
  child: string;
  ts?: Hlc;
  /** Absent: no state (distinct from a state that is `null`). */
  state?: unknown;
}

export function decodeHandoff(p: unknown, limits: DistLimits): Decoded<HandoffMsg> {
  if (!isObject(p)) return fail('not an object');
  if (!isName(p.sup, limits.maxNameLength) || !isName(p.child, limits.maxNameLength))
    return fail('bad supervisor or child id');
  if (p.ts !== undefined && !isHlc(p.ts)) return fail('bad timestamp');
  if (approxSize(p.state, limits.maxHandoffBytes) > limits.maxHandoffBytes)
    return fail('handoff state too large');
  const out: HandoffMsg = { sup: p.sup, child: p.child };
  if (p.ts !== undefined) out.ts = { wall: p.ts.wall, counter: p.ts.counter };
  if ('state' in p) out.state = p.state;
  return ok(out);
}
