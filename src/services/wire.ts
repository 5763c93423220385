// The wire messages of the service layer (catalogue entries, calls and replies, events, stream
// messages) and the one decoder each goes through: shape, types and bounds are checked and a typed
// value or a reason comes back, before anything is kept or run. Nothing in src/services/ reads a
// field of an untrusted payload except through these functions.
import { approxSize, type Decoded, isName } from '../dist/wire.js';

/** Messenger kinds of this layer (see docs/protocol.md). */
export const SVC_KINDS = {
  /** Replication of the service catalogue: one entry per service a node offers (ReplicaMsg). */
  catalogue: 'svc:cat',
  /** A call of a service action (request, CallMsg → ReplyMsg). */
  call: 'svc:call',
  /** Stream data and control (StreamMsg); data travels on the bulk channel. */
  stream: 'svc:st',
} as const;

/**
 * Limits on what one member can make this node hold or do through the service layer. Every decoder
 * refuses a message that exceeds them (FND_ERR_SERVICE_MESSAGE), so a member with the secret cannot
 * make this node's memory grow without bound.
 */
export interface ServiceLimits {
  /** Longest service, action or event name (UTF-16 units). Default 256. */
  maxNameLength: number;
  /** Services one node may announce (and that we keep of any node). Default 1024. */
  maxServicesPerNode: number;
  /** Actions per service, and event patterns per service. Default 256 each. */
  maxActionsPerService: number;
  maxEventsPerService: number;
  /** Capabilities per service. Default 64. */
  maxCapabilities: number;
  /** `meta` of a service entry, estimated encoded bytes. Default 4096. */
  maxMetaBytes: number;
  /** Arguments of one call. Default 64. */
  maxArgs: number;
  /** traceparent + baggage of one call or event, bytes. Default 8192 (W3C recommends ≥ 8192 for baggage). */
  maxContextBytes: number;
  /** Streams one peer may have open towards this node (as producer and consumer). Default 256. */
  maxStreamsPerPeer: number;
  /** Largest stream chunk, bytes (estimated for non-binary chunks). Default 1 MiB. */
  maxChunkBytes: number;
  /** Credit window of a stream: chunks the producer may send ahead of the consumer. Default 8. */
  streamWindow: number;
}

export const SERVICE_LIMITS: Readonly<ServiceLimits> = Object.freeze({
  maxNameLength: 256,
  maxServicesPerNode: 1024,
  maxActionsPerService: 256,
  maxEventsPerService: 256,
  maxCapabilities: 64,
  maxMetaBytes: 4096,
  maxArgs: 64,
  maxContextBytes: 8192,
  maxStreamsPerPeer: 256,
  // A receiver holds at most streamWindow × maxChunkBytes per stream (8 MiB by default).
  maxChunkBytes: 1024 * 1024,
  streamWindow: 8,
});

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isNat = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// ---- catalogue ----

export type Health = 'ok' | 'degraded' | 'unhealthy';
const HEALTH: ReadonlySet<unknown> = new Set(['ok', 'degraded', 'unhealthy']);

/** One action as announced: its name and whether it is idempotent (safe to retry / fail over). */
export interface ActionInfo {
  name: string;
  idempotent: boolean;
}

/** A node's catalogue entry for one service it offers (the key is the service name). */
export interface EndpointValue {
  version: string;
  actions: ActionInfo[];
  /** Event patterns the service listens to (NATS wildcards). */
  events: string[];
  meta: Record<string, unknown>;
  capabilities: string[];
  health: Health;
}

function names(v: unknown, max: number, maxLen: number): string[] | undefined {
  if (!Array.isArray(v) || v.length > max) return undefined;
  for (const x of v) if (!isName(x, maxLen)) return undefined;
  return v as string[];
}

/** A catalogue entry travels as the EndpointValue itself (changes are rare; clarity wins). */
export function decodeEndpoint(v: unknown, limits: ServiceLimits): Decoded<EndpointValue> {
  if (!isObject(v)) return fail('endpoint is not an object');
  if (typeof v.version !== 'string' || v.version.length > limits.maxNameLength)
    return fail('bad version');
  if (!Array.isArray(v.actions) || v.actions.length > limits.maxActionsPerService)
    return fail('bad actions');
  const actions: ActionInfo[] = [];
  for (const a of v.actions) {
    if (!isObject(a) || !isName(a.name, limits.maxNameLength)) return fail('bad action');
    actions.push({ name: a.name, idempotent: a.idempotent === true });
  }
  const events = names(v.events, limits.maxEventsPerService, limits.maxNameLength);
  if (!events) return fail('bad events');
  const capabilities = names(v.capabilities, limits.maxCapabilities, limits.maxNameLength);
  if (!capabilities) return fail('bad capabilities');
  if (!isObject(v.meta) || approxSize(v.meta, limits.maxMetaBytes) > limits.maxMetaBytes)
    return fail(`meta is not an object of at most ${limits.maxMetaBytes} bytes`);
  if (!HEALTH.has(v.health)) return fail('bad health');
  return ok({
    version: v.version,
    actions,
    events: [...events],
    meta: v.meta,
    capabilities: [...capabilities],
    health: v.health as Health,
  });
}

// ---- calls ----

/** Trace context on the wire: W3C `traceparent` and `baggage` header values. */
export interface WireContext {
  tp?: string;
  bg?: string;
}

/**
 * A call: `[path, deadlineMs, ...args]`, or `[path, ctx, deadlineMs, ...args]` with a context
 * (an object: never a number). `path` is `service.action` (one string: one lookup on the serving
 * node); the arguments follow flat (no nested array to encode and decode). `deadlineMs` is the
 * time left (relative, so clocks need not agree); `ctx.s` lists arguments that are streams as
 * `[argIndex, streamId]`.
 */
export interface CallMsg {
  path: string;
  args: unknown[];
  deadlineMs: number;
  ctx: (WireContext & { s?: Array<[number, number]> }) | undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Whether `tp` is a valid version-00 traceparent with non-zero ids. */
export function isTraceparent(tp: unknown): tp is string {
  if (typeof tp !== 'string') return false;
  const m = TRACEPARENT.exec(tp);
  return m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!);
}

export function decodeWireContext(v: unknown, limits: ServiceLimits): Decoded<WireContext> {
  if (!isObject(v)) return fail('context is not an object');
  const out: WireContext = {};
  if (v.tp !== undefined) {
    if (!isTraceparent(v.tp)) return fail('bad traceparent');
    out.tp = v.tp;
  }
  if (v.bg !== undefined) {
    if (typeof v.bg !== 'string' || v.bg.length > limits.maxContextBytes)
      return fail(`baggage is not a string of at most ${limits.maxContextBytes} characters`);
    out.bg = v.bg;
  }
  return ok(out);
}

export function decodeCall(p: unknown, limits: ServiceLimits): Decoded<CallMsg> {
  if (!Array.isArray(p) || p.length < 2) return fail('not [path, ctx?, deadline, ...args]');
  const path = p[0];
  // 'service.action': names carry no '.', so the path has exactly one, inside.
  if (!isName(path, 2 * limits.maxNameLength + 1)) return fail('bad path');
  const dot = path.indexOf('.');
  if (dot <= 0 || dot === path.length - 1 || path.indexOf('.', dot + 1) !== -1)
    return fail('bad path');
  const c: unknown = typeof p[1] === 'number' ? undefined : p[1];
  const at = c === undefined ? 1 : 2;
  const dl = p[at];
  if (!isNat(dl)) return fail('bad deadline');
  if (p.length - at - 1 > limits.maxArgs) return fail(`more than ${limits.maxArgs} arguments`);
  const args = p.slice(at + 1);
  if (c === undefined) return ok({ path, args, deadlineMs: dl, ctx: undefined });
  const d = decodeWireContext(c, limits);
  if (!d.ok) return d;
  const ctx: CallMsg['ctx'] = d.value;
  const s = (c as Record<string, unknown>).s;
  if (s !== undefined) {
    if (!Array.isArray(s) || s.length > args.length) return fail('bad stream arguments');
    const list: Array<[number, number]> = [];
    for (const x of s) {
      if (!Array.isArray(x) || !isNat(x[0]) || x[0] >= args.length || !isNat(x[1]))
        return fail('bad stream argument');
      list.push([x[0], x[1]]);
    }
    ctx.s = list;
  }
  return ok({ path, args, deadlineMs: dl, ctx });
}

/**
 * A reply: the value itself when it is not an array (the common case: nothing to wrap and
 * unwrap), `[value]` when it is one, `[null, streamId]` when the result is a stream.
 */
export type ReplyMsg = { stream: false; value: unknown } | { stream: true; id: number };

export function decodeReply(p: unknown): Decoded<ReplyMsg> {
  if (!Array.isArray(p)) return ok({ stream: false, value: p });
  if (p.length < 1 || p.length > 2) return fail('not value / [value] / [null, id]');
  if (p.length === 1) return ok({ stream: false, value: p[0] });
  if (!isNat(p[1])) return fail('bad stream id');
  return ok({ stream: true, id: p[1] });
}

// ---- events ----

/** An event as published on the pub/sub layer: `[payload, ctx?]`. */
export interface EventMsg {
  payload: unknown;
  ctx: WireContext | undefined;
}

export function decodeEvent(p: unknown, limits: ServiceLimits): Decoded<EventMsg> {
  if (!Array.isArray(p) || p.length < 1 || p.length > 2) return fail('not [payload, ctx?]');
  if (p.length === 1 || p[1] === null) return ok({ payload: p[0], ctx: undefined });
  const d = decodeWireContext(p[1], limits);
  if (!d.ok) return d;
  return ok({ payload: p[0], ctx: d.value });
}

// ---- streams ----

/**
 * Producer → consumer (bulk channel, in order): `['d', id, chunk]` data, `['e', id]` end,
 * `['x', id, reason]` failed or cancelled by the producer. Consumer → producer (default channel):
 * `['c', id, n]` n more chunks may be sent, `['k', id, reason]` cancel.
 */
export type StreamMsg =
  | { t: 'd'; id: number; chunk: unknown }
  | { t: 'e'; id: number }
  | { t: 'x'; id: number; reason: string }
  | { t: 'c'; id: number; n: number }
  | { t: 'k'; id: number; reason: string };

export function decodeStream(p: unknown, limits: ServiceLimits): Decoded<StreamMsg> {
  if (!Array.isArray(p) || p.length < 2 || p.length > 3) return fail('not [t, id, ...]');
  const [t, id, x] = p as unknown[];
  if (!isNat(id)) return fail('bad stream id');
  switch (t) {
    case 'd': {
      const size = x instanceof Uint8Array ? x.byteLength : approxSize(x, limits.maxChunkBytes);
      if (size > limits.maxChunkBytes)
        return fail(`chunk larger than ${limits.maxChunkBytes} bytes`);
      return ok({ t, id, chunk: x });
    }
    case 'e':
      return ok({ t, id });
    case 'x':
    case 'k':
      return ok({ t, id, reason: typeof x === 'string' ? x.slice(0, 512) : 'cancelled' });
    case 'c':
      if (!isNat(x) || x < 1 || x > limits.streamWindow) return fail('bad credit');
      return ok({ t, id, n: x });
    default:
      return fail('unknown stream message');
  }
}
