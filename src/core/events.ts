// `node.events`: an event log with correlation ids, stored in memory or SQLite, and its cluster
// side: events emitted to every member (stored on all or on N of them), cluster-wide subscribers,
// and queries gathered from every member that say which members could not answer.
import type { DistContext } from '../dist/context.js';
import { FoundationError } from '../errors.js';
import type { EventQuery, EventStats, EventStore, PruneOptions } from './event-store.js';
import { uuidv7 } from './ids.js';
import {
  CORE_KINDS,
  type CoreLimits,
  decodeEventList,
  decodeEventMsg,
  decodeEventQuery,
  decodeStoredEvent,
  type EventQueryMsg,
  type StoredEvent,
  stoppedError,
} from './wire.js';

export type { StoredEvent } from './wire.js';

export interface NewEventOptions {
  correlationId?: string;
  parentId?: string;
}

export interface EmitOptions extends NewEventOptions {
  /** Nodes that store the event: 'all' (default) or this many, this node first. */
  replicas?: 'all' | number;
}

export interface EventFilter {
  /** Exact type, or a prefix ending in `*` (`order.*`). Default: every type. */
  type?: string;
  correlationId?: string;
}

export interface ClusterQueryResult {
  /** Events from every node that answered, without duplicates, by timestamp. */
  events: StoredEvent[];
  /** Nodes that answered, this one included. */
  nodes: string[];
  /** Members known to the cluster (alive, suspect or down) that did not answer. */
  missing: string[];
}

const DEFAULT_LIMIT = 1000;

function bad(argument: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_ARGUMENT', `${argument}: ${what}`, { argument });
}

function filterMatches(f: EventFilter, e: StoredEvent): boolean {
  if (f.correlationId !== undefined && e.correlationId !== f.correlationId) return false;
  if (f.type === undefined) return true;
  return f.type.endsWith('*') ? e.type.startsWith(f.type.slice(0, -1)) : e.type === f.type;
}

export class Events {
  private readonly subscribers = new Set<{ filter: EventFilter; fn: (e: StoredEvent) => void }>();
  private stopped = false;

  constructor(
    private readonly ctx: DistContext,
    private readonly store_: EventStore,
    private readonly limits: CoreLimits,
  ) {
    const maxName = ctx.limits.maxNameLength;
    ctx.net.on(CORE_KINDS.event, (payload, from) => {
      if (this.stopped || !ctx.members.isPeer(from)) return;
      const d = decodeEventMsg(payload, limits, maxName);
      if (!d.ok) {
        ctx.log.warn({ from, reason: d.reason }, 'distributed event refused');
        return;
      }
      if (d.value.storeOn.includes(ctx.self)) {
        try {
          this.store_.insert([d.value.event]);
        } catch (err) {
          ctx.log.error({ from, err: (err as Error).message }, 'distributed event not stored');
        }
      }
      this.deliver(d.value.event);
    });
    ctx.net.handle(CORE_KINDS.eventQuery, (payload) => {
      // Stopping (the store is closed): the asker lists this node as missing, not as empty.
      if (this.stopped) throw stoppedError('events');
      const d = decodeEventQuery(payload, limits, maxName);
      if (!d.ok) {
        throw new FoundationError('FND_ERR_DIST_MESSAGE', `event query: ${d.reason}`, {
          reason: d.reason,
        });
      }
      return this.store_.query(d.value);
    });
  }

  /** Which store is in use. */
  get storage(): 'memory' | 'sqlite' {
    return this.store_.kind;
  }

  /** A new event (not stored): a UUIDv7 id, this node's name, the wall-clock time. */
  newEvent(type: string, data?: unknown, opts: NewEventOptions = {}): StoredEvent {
    if (
      typeof type !== 'string' ||
      type.length === 0 ||
      type.length > this.ctx.limits.maxNameLength
    )
      throw bad(
        'type',
        `a non-empty string of at most ${this.ctx.limits.maxNameLength} characters`,
      );
    const e: StoredEvent = {
      id: uuidv7(this.ctx.clock.wallNow()),
      type,
      data,
      timestamp: Math.floor(this.ctx.clock.wallNow()),
      node: this.ctx.self,
    };
    for (const k of ['correlationId', 'parentId'] as const) {
      const v = opts[k];
      if (v === undefined) continue;
      if (typeof v !== 'string' || v.length === 0 || v.length > 128)
        throw bad(k, 'a non-empty string of at most 128 characters');
      e[k] = v;
    }
    return e;
  }

  /** A fresh correlation id (a UUIDv7) for a chain of events. */
  newCorrelationId(): string {
    return uuidv7(this.ctx.clock.wallNow());
  }

  /** Stores one event on this node. */
  async store(event: StoredEvent): Promise<void> {
    const c = this.check(event);
    this.store_.insert([c.event], [c.json]);
  }

  /** Stores many events in one transaction (SQLite) — much faster than one store() each. */
  async storeBatch(events: readonly StoredEvent[]): Promise<number> {
    if (!Array.isArray(events)) throw bad('events', 'an array');
    const checked = events.map((e) => this.check(e));
    return this.store_.insert(
      checked.map((c) => c.event),
      checked.map((c) => c.json),
    );
  }

  /** Events of this node matching `q`, by timestamp (`order`, default 'asc'), at most `limit` (default 1000). */
  async query(q: EventQuery = {}): Promise<StoredEvent[]> {
    return this.store_.query(this.checkQuery(q));
  }

  /** Every event of this node with `correlationId`, oldest first. */
  async getByCorrelation(correlationId: string, limit = 10_000): Promise<StoredEvent[]> {
    return this.query({ correlationId, limit });
  }

  async stats(): Promise<EventStats> {
    return this.store_.stats();
  }

  /** Removes events before `olderThan` (wall ms), then all but the newest `keepLast`. Returns how many. */
  async prune(opts: PruneOptions): Promise<number> {
    if (typeof opts !== 'object' || opts === null) throw bad('options', 'an object');
    if (opts.olderThan !== undefined && !(Number.isFinite(opts.olderThan) && opts.olderThan >= 0))
      throw bad('olderThan', 'wall-clock ms ≥ 0');
    if (opts.keepLast !== undefined && !(Number.isSafeInteger(opts.keepLast) && opts.keepLast >= 0))
      throw bad('keepLast', 'an integer ≥ 0');
    if (opts.olderThan === undefined && opts.keepLast === undefined)
      throw bad('options', 'olderThan and/or keepLast');
    return this.store_.prune(opts);
  }

  /**
   * Creates an event and sends it to every member (one encoding for all): each hands it to its
   * cluster-wide subscribers, and `replicas` of them store it ('all' by default; a number: this
   * node and the next members by name). Resolves with the event, the nodes asked to store it and
   * the members it could not be sent to now (at most once: no retry).
   */
  async emitDistributed(
    type: string,
    data?: unknown,
    opts: EmitOptions = {},
  ): Promise<{ event: StoredEvent; storedOn: string[]; unreachable: string[] }> {
    const event = this.check(this.newEvent(type, data, opts)).event;
    const peers = this.ctx.members.peers();
    const replicas = opts.replicas ?? 'all';
    if (replicas !== 'all' && !(Number.isSafeInteger(replicas) && replicas >= 1))
      throw bad('replicas', "'all' or an integer ≥ 1");
    const storeOn =
      replicas === 'all'
        ? [this.ctx.self, ...peers]
        : [this.ctx.self, ...rotate(peers, this.ctx.self)].slice(0, replicas);
    if (storeOn.includes(this.ctx.self)) this.store_.insert([event]);
    const unreachable =
      peers.length === 0
        ? []
        : this.ctx.net.sendMany(peers, CORE_KINDS.event, {
            event,
            storeOn: storeOn.filter((n) => n !== this.ctx.self),
          });
    this.deliver(event);
    return { event, storedOn: storeOn.filter((n) => !unreachable.includes(n)), unreachable };
  }

  /**
   * Calls `handler` for every event emitted with emitDistributed on any node (this one included)
   * that matches `filter`. Returns the unsubscribe function. The handler runs on this node's
   * event loop, never concurrently; a throw is logged.
   */
  subscribeClusterWide(filter: EventFilter, handler: (e: StoredEvent) => void): () => void {
    if (typeof handler !== 'function') throw bad('handler', 'a function');
    if (typeof filter !== 'object' || filter === null) throw bad('filter', 'an object');
    const sub = { filter: { ...filter }, fn: handler };
    this.subscribers.add(sub);
    return () => {
      this.subscribers.delete(sub);
    };
  }

  /**
   * Runs `q` on every member known to the cluster and merges the answers (deduplicated by id,
   * by timestamp, at most `limit`). Members that are down, do not answer within `timeoutMs`
   * (default: the request timeout) or answer with something invalid are listed in `missing`.
   */
  async queryCluster(q: EventQuery & { timeoutMs?: number } = {}): Promise<ClusterQueryResult> {
    const { timeoutMs, ...rest } = q;
    const local = this.checkQuery(rest);
    const wire: EventQueryMsg = { limit: local.limit };
    if (local.type !== undefined) wire.type = local.type;
    if (local.correlationId !== undefined) wire.correlationId = local.correlationId;
    if (local.since !== undefined) wire.since = local.since;
    if (local.until !== undefined) wire.until = local.until;
    const peers = new Set(this.ctx.members.peers());
    const known = this.ctx.members.known().filter((n) => n !== this.ctx.self);
    const missing = known.filter((n) => !peers.has(n));
    const asked = [...peers];
    const replies = await Promise.allSettled(
      asked.map((p) =>
        this.ctx.net.request(
          p,
          CORE_KINDS.eventQuery,
          wire,
          timeoutMs ?? this.ctx.requestTimeoutMs,
        ),
      ),
    );
    const byId = new Map<string, StoredEvent>();
    for (const e of this.store_.query(local)) byId.set(e.id, e);
    const nodes = [this.ctx.self];
    for (const [i, r] of replies.entries()) {
      const node = asked[i]!;
      if (r.status === 'rejected') {
        missing.push(node);
        continue;
      }
      const d = decodeEventList(r.value, this.limits, this.ctx.limits.maxNameLength);
      if (!d.ok) {
        this.ctx.log.warn({ from: node, reason: d.reason }, 'event query answer refused');
        missing.push(node);
        continue;
      }
      nodes.push(node);
      for (const e of d.value) if (!byId.has(e.id)) byId.set(e.id, e);
    }
    const events = [...byId.values()].sort((a, b) =>
      a.timestamp !== b.timestamp
        ? a.timestamp - b.timestamp
        : a.id < b.id
          ? -1
          : a.id > b.id
            ? 1
            : 0,
    );
    if (local.order === 'desc') events.reverse();
    return { events: events.slice(0, local.limit), nodes, missing: missing.sort() };
  }

  private deliver(e: StoredEvent): void {
    for (const s of [...this.subscribers]) {
      if (!filterMatches(s.filter, e)) continue;
      try {
        s.fn(e);
      } catch (err) {
        this.ctx.log.error({ err: (err as Error).message, type: e.type }, 'event subscriber threw');
      }
    }
  }

  /**
   * The checks a received event goes through, so what this node stores is what others accept;
   * `data` must be JSON (what SQLite keeps) and is copied, so later changes by the caller do not
   * reach the store. Returns the event and its serialised data.
   */
  private check(e: StoredEvent): { event: StoredEvent; json: string | undefined } {
    if (typeof e !== 'object' || e === null) throw bad('event', 'an object');
    let json: string | undefined;
    try {
      json = e.data === undefined ? undefined : JSON.stringify(e.data);
    } catch (err) {
      throw bad('event.data', `not JSON-serialisable (${(err as Error).message})`);
    }
    if (json !== undefined && json.length > this.limits.maxEventDataBytes)
      throw bad('event.data', `larger than ${this.limits.maxEventDataBytes} bytes as JSON`);
    // Fields are checked by the wire decoder, data included: its estimate (depth and size) is
    // what every peer applies, so an event stored here is one the others accept.
    const d = decodeStoredEvent(e, this.limits, this.ctx.limits.maxNameLength);
    if (!d.ok) throw bad('event', d.reason);
    // SQLite keeps the JSON text; the memory store keeps a copy, out of the caller's reach.
    d.value.data =
      json === undefined ? undefined : this.store_.kind === 'memory' ? JSON.parse(json) : e.data;
    return { event: d.value, json };
  }

  private checkQuery(q: EventQuery): EventQuery & { limit: number } {
    if (typeof q !== 'object' || q === null) throw bad('query', 'an object');
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.limits.maxQueryEvents)
      throw bad('limit', `an integer in [1, ${this.limits.maxQueryEvents}]`);
    for (const k of ['since', 'until'] as const) {
      const v = q[k];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
        throw bad(k, 'wall-clock ms ≥ 0');
    }
    for (const k of ['type', 'correlationId'] as const) {
      const v = q[k];
      if (v !== undefined && (typeof v !== 'string' || v.length === 0))
        throw bad(k, 'a non-empty string');
    }
    if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc')
      throw bad('order', "'asc' | 'desc'");
    return { ...q, limit };
  }

  stop(): void {
    this.stopped = true;
    this.subscribers.clear();
    this.store_.close();
  }
}

/** `peers` (sorted) starting after `self`, wrapping: replicas spread over the ring of names. */
function rotate(peers: string[], self: string): string[] {
  const i = peers.findIndex((p) => p > self);
  return i <= 0 ? peers : [...peers.slice(i), ...peers.slice(0, i)];
}
