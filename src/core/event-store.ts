// Where node.events keeps events: in memory (bounded, lost on exit) or in a SQLite file through
// better-sqlite3 (durable, WAL). Both answer the same queries; the SQLite store is opened and
// checked before the node listens, and a file that is not an event database is left untouched.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { FoundationError } from '../errors.js';
import type { StoredEvent } from './wire.js';

export interface EventQuery {
  type?: string;
  correlationId?: string;
  /** Events at or after this wall-clock ms. */
  since?: number;
  /** Events at or before this wall-clock ms. */
  until?: number;
  /** Most events returned. Default 1000. */
  limit?: number;
  /** By timestamp (then insertion). Default 'asc'. */
  order?: 'asc' | 'desc';
}

export interface EventStats {
  storage: 'memory' | 'sqlite';
  count: number;
  byType: Record<string, number>;
  oldest: number | undefined;
  newest: number | undefined;
}

export interface PruneOptions {
  /** Remove events with a timestamp before this wall-clock ms. */
  olderThan?: number;
  /** Then keep at most this many of the newest events. */
  keepLast?: number;
}

export interface EventStore {
  readonly kind: 'memory' | 'sqlite';
  /**
   * Stores events; an event whose id is already stored is skipped. Returns how many were new.
   * `json`, when given, holds each event's `data` already serialised (the caller checked it).
   */
  insert(events: readonly StoredEvent[], json?: readonly (string | undefined)[]): number;
  query(q: EventQuery & { limit: number }): StoredEvent[];
  stats(): EventStats;
  prune(opts: PruneOptions): number;
  close(): void;
}

function matches(e: StoredEvent, q: EventQuery): boolean {
  return (
    (q.type === undefined || e.type === q.type) &&
    (q.correlationId === undefined || e.correlationId === q.correlationId) &&
    (q.since === undefined || e.timestamp >= q.since) &&
    (q.until === undefined || e.timestamp <= q.until)
  );
}

/** Events in an array in insertion order, at most `maxEvents` (the oldest inserted go first). */
export class MemoryEventStore implements EventStore {
  readonly kind = 'memory' as const;
  private events: StoredEvent[] = [];
  private readonly ids = new Set<string>();

  constructor(private readonly maxEvents: number) {}

  insert(events: readonly StoredEvent[]): number {
    let n = 0;
    for (const e of events) {
      if (this.ids.has(e.id)) continue;
      this.ids.add(e.id);
      // Copies in and out: what a caller or a subscriber holds is never the stored event.
      this.events.push(structuredClone(e));
      n++;
    }
    if (this.events.length > this.maxEvents) {
      const drop = this.events.splice(0, this.events.length - this.maxEvents);
      for (const e of drop) this.ids.delete(e.id);
    }
    return n;
  }

  query(q: EventQuery & { limit: number }): StoredEvent[] {
    const hits = this.events.filter((e) => matches(e, q));
    // Stable sort by timestamp: equal timestamps keep insertion order.
    hits.sort((a, b) => a.timestamp - b.timestamp);
    if (q.order === 'desc') hits.reverse();
    return hits.slice(0, q.limit).map((e) => structuredClone(e));
  }

  stats(): EventStats {
    const byType: Record<string, number> = {};
    let oldest: number | undefined;
    let newest: number | undefined;
    for (const e of this.events) {
      byType[e.type] = (byType[e.type] ?? 0) + 1;
      if (oldest === undefined || e.timestamp < oldest) oldest = e.timestamp;
      if (newest === undefined || e.timestamp > newest) newest = e.timestamp;
    }
    return { storage: 'memory', count: this.events.length, byType, oldest, newest };
  }

  prune(opts: PruneOptions): number {
    const before = this.events.length;
    let kept = this.events;
    if (opts.olderThan !== undefined) kept = kept.filter((e) => e.timestamp >= opts.olderThan!);
    if (opts.keepLast !== undefined && kept.length > opts.keepLast) {
      const newest =
        opts.keepLast === 0
          ? []
          : [...kept].sort((a, b) => a.timestamp - b.timestamp).slice(-opts.keepLast);
      const keep = new Set(newest);
      kept = kept.filter((e) => keep.has(e));
    }
    const keptSet = new Set(kept);
    for (const e of this.events) if (!keptSet.has(e)) this.ids.delete(e.id);
    this.events = kept;
    return before - kept.length;
  }

  close(): void {
    this.events = [];
    this.ids.clear();
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS foundation_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  ts INTEGER NOT NULL,
  node TEXT NOT NULL,
  correlation_id TEXT,
  parent_id TEXT,
  data TEXT
);
CREATE INDEX IF NOT EXISTS foundation_events_ts ON foundation_events (ts);
CREATE INDEX IF NOT EXISTS foundation_events_type_ts ON foundation_events (type, ts);
CREATE INDEX IF NOT EXISTS foundation_events_corr ON foundation_events (correlation_id) WHERE correlation_id IS NOT NULL;
`;
const COLUMNS = ['seq', 'id', 'type', 'ts', 'node', 'correlation_id', 'parent_id', 'data'];

interface Row {
  id: string;
  type: string;
  ts: number;
  node: string;
  correlation_id: string | null;
  parent_id: string | null;
  data: string | null;
}

function storeError(
  path: string,
  reason: string,
  detail: string,
  cause?: unknown,
): FoundationError {
  return new FoundationError(
    'FND_ERR_EVENT_STORE',
    `${path}: ${detail}`,
    { path, reason },
    cause === undefined ? undefined : { cause },
  );
}

type DatabaseCtor = typeof BetterSqlite3;

/** Loads better-sqlite3 (an optional peer dependency) or fails with reason 'missing-driver'. */
function loadDriver(path: string): DatabaseCtor {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as DatabaseCtor;
  } catch (err) {
    throw storeError(
      path,
      'missing-driver',
      'storage "sqlite" needs better-sqlite3: npm install better-sqlite3@12 (and allow its install script)',
      err,
    );
  }
}

/** Events in a SQLite table `foundation_events` (WAL, synchronous=NORMAL). */
export class SqliteEventStore implements EventStore {
  readonly kind = 'sqlite' as const;
  private readonly insertStmt: BetterSqlite3.Statement;
  private readonly insertMany: (
    events: readonly StoredEvent[],
    json: readonly (string | undefined)[] | undefined,
  ) => number;
  /** Prepared queries by SQL text (a handful of shapes: which filters are set, and the order). */
  private readonly queries = new Map<string, BetterSqlite3.Statement>();

  private constructor(private readonly db: BetterSqlite3.Database) {
    this.insertStmt = db.prepare(
      'INSERT OR IGNORE INTO foundation_events (id, type, ts, node, correlation_id, parent_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.insertMany = db.transaction(
      (events: readonly StoredEvent[], json: readonly (string | undefined)[] | undefined) => {
        let n = 0;
        for (const [i, e] of events.entries()) {
          const data = json ? json[i] : e.data === undefined ? undefined : JSON.stringify(e.data);
          n += this.insertStmt.run(
            e.id,
            e.type,
            e.timestamp,
            e.node,
            e.correlationId ?? null,
            e.parentId ?? null,
            data ?? null,
          ).changes;
        }
        return n;
      },
    );
  }

  /**
   * Opens (or creates) the event database at `path`. An existing file is first opened read-only
   * and checked — a SQLite database whose `foundation_events` table, if any, has our columns — so
   * that a corrupted or foreign file is refused (FND_ERR_EVENT_STORE, reason 'corrupt' or
   * 'incompatible') before anything is written to it. A file or directory that cannot be written
   * is reason 'unwritable'.
   */
  static open(path: string): SqliteEventStore {
    const Database = loadDriver(path);
    if (existsSync(path)) {
      let ro: BetterSqlite3.Database | undefined;
      try {
        ro = new Database(path, { readonly: true, fileMustExist: true });
        const cols = ro
          .prepare("SELECT name FROM pragma_table_info('foundation_events')")
          .all() as Array<{ name: string }>;
        if (cols.length > 0 && COLUMNS.some((c) => !cols.some((x) => x.name === c))) {
          throw storeError(
            path,
            'incompatible',
            'has a foundation_events table with other columns',
          );
        }
      } catch (err) {
        if (err instanceof FoundationError) throw err;
        throw storeError(
          path,
          'corrupt',
          `not a readable SQLite database (${(err as Error).message})`,
          err,
        );
      } finally {
        ro?.close();
      }
    }
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
      return new SqliteEventStore(db);
    } catch (err) {
      db?.close();
      if (err instanceof FoundationError) throw err;
      const code = (err as { code?: string }).code ?? '';
      const reason = /CORRUPT|NOTADB/.test(code) ? 'corrupt' : 'unwritable';
      throw storeError(path, reason, `cannot open for writing (${(err as Error).message})`, err);
    }
  }

  insert(events: readonly StoredEvent[], json?: readonly (string | undefined)[]): number {
    return this.insertMany(events, json);
  }

  query(q: EventQuery & { limit: number }): StoredEvent[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.type !== undefined) {
      where.push('type = ?');
      args.push(q.type);
    }
    if (q.correlationId !== undefined) {
      where.push('correlation_id = ?');
      args.push(q.correlationId);
    }
    if (q.since !== undefined) {
      where.push('ts >= ?');
      args.push(q.since);
    }
    if (q.until !== undefined) {
      where.push('ts <= ?');
      args.push(q.until);
    }
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT id, type, ts, node, correlation_id, parent_id, data FROM foundation_events${
      where.length ? ` WHERE ${where.join(' AND ')}` : ''
    } ORDER BY ts ${dir}, seq ${dir} LIMIT ?`;
    let stmt = this.queries.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.queries.set(sql, stmt);
    }
    const rows = stmt.all(...args, q.limit) as Row[];
    return rows.map((r) => {
      const e: StoredEvent = {
        id: r.id,
        type: r.type,
        timestamp: r.ts,
        node: r.node,
        data: r.data === null ? undefined : JSON.parse(r.data),
      };
      if (r.correlation_id !== null) e.correlationId = r.correlation_id;
      if (r.parent_id !== null) e.parentId = r.parent_id;
      return e;
    });
  }

  stats(): EventStats {
    const rows = this.db
      .prepare(
        'SELECT type, COUNT(*) AS n, MIN(ts) AS oldest, MAX(ts) AS newest FROM foundation_events GROUP BY type',
      )
      .all() as Array<{ type: string; n: number; oldest: number; newest: number }>;
    const byType: Record<string, number> = {};
    let count = 0;
    let oldest: number | undefined;
    let newest: number | undefined;
    for (const r of rows) {
      byType[r.type] = r.n;
      count += r.n;
      if (oldest === undefined || r.oldest < oldest) oldest = r.oldest;
      if (newest === undefined || r.newest > newest) newest = r.newest;
    }
    return { storage: 'sqlite', count, byType, oldest, newest };
  }

  prune(opts: PruneOptions): number {
    let n = 0;
    if (opts.olderThan !== undefined)
      n += this.db
        .prepare('DELETE FROM foundation_events WHERE ts < ?')
        .run(opts.olderThan).changes;
    if (opts.keepLast !== undefined) {
      n += this.db
        .prepare(
          'DELETE FROM foundation_events WHERE seq NOT IN (SELECT seq FROM foundation_events ORDER BY ts DESC, seq DESC LIMIT ?)',
        )
        .run(opts.keepLast).changes;
    }
    return n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
