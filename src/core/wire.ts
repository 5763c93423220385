// The wire messages of the core services (cluster-wide config, distributed events, cluster
// metrics) and the one decoder each goes through, in the style of src/dist/wire.ts: shape, types
// and bounds are checked and a typed value or a reason comes back before any state changes.
import { approxSize, type Decoded, isName } from '../dist/wire.js';
import { FoundationError } from '../errors.js';
import { type Hlc, isHlc } from '../util/hlc.js';

/**
 * The answer of a core service a peer asks while this node stops: FND_ERR_NODE_STOPPED, so the
 * asker counts the node as missing instead of taking an empty answer for its data.
 */
export function stoppedError(service: string): FoundationError {
  return new FoundationError('FND_ERR_NODE_STOPPED', `this node is stopping: ${service} closed`);
}

/** Messenger kinds of the core services (see docs/protocol.md). Append only. */
export const CORE_KINDS = {
  /** Replication of cluster-wide config values (a ReplicaMsg whose values are ConfigEntry). */
  config: 'core:cfg',
  /** A distributed event for the receiving node to store and/or deliver (EventMsg). */
  event: 'core:ev',
  /** "Your events matching this filter" (request, EventQueryMsg → StoredEvent[]). */
  eventQuery: 'core:ev:q',
  /** "Your metrics" (request, no payload → MetricsReply). */
  metrics: 'core:metrics',
} as const;

/**
 * What one member can make this node hold through the core services. Every decoder refuses a
 * message over these; the defaults are in CORE_LIMITS.
 */
export interface CoreLimits {
  /** Longest config path, in UTF-16 units. Default 256. */
  maxConfigPathLength: number;
  /** Most cluster-wide config paths one member may announce. Default 1024. */
  maxConfigEntriesPerNode: number;
  /** Largest cluster-wide config value, estimated bytes. Default 64 KiB. */
  maxConfigValueBytes: number;
  /** Largest event `data`, estimated bytes. Default 64 KiB. */
  maxEventDataBytes: number;
  /** Most events one remote query may return. Default 10 000. */
  maxQueryEvents: number;
  /** Most metric families in one metrics reply. Default 2000. */
  maxMetricFamilies: number;
}

export const CORE_LIMITS: Readonly<CoreLimits> = Object.freeze({
  maxConfigPathLength: 256,
  // Configuration is small by nature: 1024 paths × 64 KiB bounds one member at 64 MiB worst case.
  maxConfigEntriesPerNode: 1024,
  maxConfigValueBytes: 64 * 1024,
  maxEventDataBytes: 64 * 1024,
  maxQueryEvents: 10_000,
  maxMetricFamilies: 2000,
});

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isNat = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// ---- config ----

/** A cluster-wide config value: the value, when it was written (HLC) and by which node. */
export interface ConfigEntry {
  v: unknown;
  ts: Hlc;
  /** The node that wrote it: breaks ties between equal timestamps. */
  o: string;
}

export function decodeConfigEntry(
  v: unknown,
  limits: CoreLimits,
  maxNameLength: number,
): Decoded<ConfigEntry> {
  if (!isObject(v)) return fail('config entry is not an object');
  if (!isHlc(v.ts)) return fail('config entry: bad timestamp');
  if (!isName(v.o, maxNameLength)) return fail('config entry: bad origin');
  if (!('v' in v) || v.v === undefined) return fail('config entry: no value');
  if (approxSize(v.v, limits.maxConfigValueBytes) > limits.maxConfigValueBytes)
    return fail(`config entry: value larger than ${limits.maxConfigValueBytes} bytes`);
  return ok({ v: v.v, ts: { wall: v.ts.wall, counter: v.ts.counter }, o: v.o });
}

// ---- events ----

/** One event as stored and sent between nodes. */
export interface StoredEvent {
  id: string;
  type: string;
  data: unknown;
  /** Wall-clock milliseconds since the epoch. */
  timestamp: number;
  node: string;
  correlationId?: string;
  parentId?: string;
}

/**
 * A distributed event, sent to every member once (encoded once): each delivers it to its
 * cluster-wide subscribers, and the members named in `storeOn` also store it.
 */
export interface EventMsg {
  event: StoredEvent;
  storeOn: string[];
}

/** Most node names in one event's `storeOn`. */
const MAX_STORE_ON = 1024;

const MAX_ID = 128;

export function decodeStoredEvent(
  v: unknown,
  limits: CoreLimits,
  maxNameLength: number,
): Decoded<StoredEvent> {
  if (!isObject(v)) return fail('event is not an object');
  if (!isName(v.id, MAX_ID)) return fail('event: bad id');
  if (!isName(v.type, maxNameLength)) return fail('event: bad type');
  if (!isNat(v.timestamp)) return fail('event: bad timestamp');
  if (!isName(v.node, maxNameLength)) return fail('event: bad node');
  if (approxSize(v.data, limits.maxEventDataBytes) > limits.maxEventDataBytes)
    return fail(`event: data larger than ${limits.maxEventDataBytes} bytes`);
  const out: StoredEvent = {
    id: v.id,
    type: v.type,
    data: v.data,
    timestamp: v.timestamp,
    node: v.node,
  };
  if (v.correlationId !== undefined) {
    if (!isName(v.correlationId, MAX_ID)) return fail('event: bad correlationId');
    out.correlationId = v.correlationId;
  }
  if (v.parentId !== undefined) {
    if (!isName(v.parentId, MAX_ID)) return fail('event: bad parentId');
    out.parentId = v.parentId;
  }
  return ok(out);
}

export function decodeEventMsg(
  p: unknown,
  limits: CoreLimits,
  maxNameLength: number,
): Decoded<EventMsg> {
  if (!isObject(p)) return fail('not an object');
  if (!Array.isArray(p.storeOn) || p.storeOn.length > MAX_STORE_ON) return fail('bad storeOn');
  const storeOn: string[] = [];
  for (const n of p.storeOn) {
    if (!isName(n, maxNameLength)) return fail('bad storeOn name');
    storeOn.push(n);
  }
  const e = decodeStoredEvent(p.event, limits, maxNameLength);
  if (!e.ok) return e;
  return ok({ event: e.value, storeOn });
}

/** A remote query: the same filter as `events.query`, bounded. */
export interface EventQueryMsg {
  type?: string;
  correlationId?: string;
  since?: number;
  until?: number;
  limit: number;
}

export function decodeEventQuery(
  p: unknown,
  limits: CoreLimits,
  maxNameLength: number,
): Decoded<EventQueryMsg> {
  if (!isObject(p)) return fail('not an object');
  if (!isNat(p.limit) || p.limit < 1) return fail('bad limit');
  const out: EventQueryMsg = { limit: Math.min(p.limit, limits.maxQueryEvents) };
  if (p.type !== undefined) {
    if (!isName(p.type, maxNameLength)) return fail('bad type');
    out.type = p.type;
  }
  if (p.correlationId !== undefined) {
    if (!isName(p.correlationId, MAX_ID)) return fail('bad correlationId');
    out.correlationId = p.correlationId;
  }
  if (p.since !== undefined) {
    if (!isNat(p.since)) return fail('bad since');
    out.since = p.since;
  }
  if (p.until !== undefined) {
    if (!isNat(p.until)) return fail('bad until');
    out.until = p.until;
  }
  return ok(out);
}

/** The answer to a remote event query. */
export function decodeEventList(
  p: unknown,
  limits: CoreLimits,
  maxNameLength: number,
): Decoded<StoredEvent[]> {
  if (!Array.isArray(p)) return fail('not an array');
  if (p.length > limits.maxQueryEvents) return fail(`more than ${limits.maxQueryEvents} events`);
  const out: StoredEvent[] = [];
  for (const e of p) {
    const d = decodeStoredEvent(e, limits, maxNameLength);
    if (!d.ok) return d;
    out.push(d.value);
  }
  return ok(out);
}

// ---- metrics ----

/** One metric as prom-client's `getMetricsAsJSON()` gives it, reduced to what aggregation needs. */
export interface MetricFamily {
  name: string;
  type: string;
  help: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

export function decodeMetrics(p: unknown, limits: CoreLimits): Decoded<MetricFamily[]> {
  if (!Array.isArray(p)) return fail('not an array');
  if (p.length > limits.maxMetricFamilies) return fail('too many metric families');
  const out: MetricFamily[] = [];
  for (const f of p) {
    if (!isObject(f) || !isName(f.name, 256) || typeof f.type !== 'string')
      return fail('bad metric family');
    if (!Array.isArray(f.values) || f.values.length > 10_000) return fail('bad metric values');
    const values: MetricFamily['values'] = [];
    for (const v of f.values) {
      if (!isObject(v) || typeof v.value !== 'number' || !isObject(v.labels))
        return fail('bad metric value');
      const labels: Record<string, string | number> = {};
      for (const [k, l] of Object.entries(v.labels)) {
        if (typeof l !== 'string' && typeof l !== 'number') return fail('bad label');
        labels[k] = l;
      }
      const one: MetricFamily['values'][number] = { value: v.value, labels };
      if (typeof v.metricName === 'string') one.metricName = v.metricName;
      values.push(one);
    }
    out.push({
      name: f.name,
      type: f.type,
      help: typeof f.help === 'string' ? f.help : '',
      values,
    });
  }
  return ok(out);
}
