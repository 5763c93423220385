// bench/events: node.events on SQLite next to raw better-sqlite3, in the same run and process.
// Inserts N events (default 1 000 000; BENCH_EVENTS overrides) in batches of 1000 through
// `node.events.storeBatch` (validation, JSON, the store's prepared statement in a transaction) and
// the same rows through a bare prepared INSERT in a transaction on a second file with the same
// schema and the same kind of ids (UUIDv7, generated in the loop); then query latency on the Foundation store: getByCorrelation of one of N/10 correlation
// ids (10 events each) and the newest 100 of one type. JSON lines; files in a temporary directory.
// Usage: node dist/bench/events.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Foundation } from '../src/index.js';
import { deadline, emit, emitSetup, latencySummary, round, runMain } from './common.js';

const BENCH = 'events';
const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const BATCH = 1000;
const TYPES = ['order.created', 'order.paid', 'order.shipped', 'user.login', 'user.logout'];
const QUERIES = 2000;

function rowData(i: number) {
  return { orderId: i, amount: (i * 7) % 1000, sku: `sku-${i % 5000}`, note: 'a short payload' };
}

async function main(): Promise<void> {
  deadline(BENCH, 15 * 60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'fnd-bench-events-'));
  emitSetup(BENCH, { events: N, batch: BATCH, journal: 'WAL', synchronous: 'NORMAL' });
  const node = await Foundation.start({
    name: 'bench-events',
    logLevel: 'silent',
    discovery: { name: 'none', start() {}, stop() {} },
    telemetry: { runtimeMetrics: false },
    events: { storage: 'sqlite', path: path.join(dir, 'foundation.db') },
  });
  try {
    // ---- inserts through node.events ----
    let t0 = performance.now();
    for (let b = 0; b < N; b += BATCH) {
      const batch = [];
      for (let i = b; i < Math.min(N, b + BATCH); i++) {
        batch.push(
          node.events.newEvent(TYPES[i % TYPES.length]!, rowData(i), {
            correlationId: `corr-${Math.floor(i / 10)}`,
          }),
        );
      }
      await node.events.storeBatch(batch);
    }
    const fndMs = performance.now() - t0;
    emit({
      bench: BENCH,
      case: 'insert',
      impl: 'node.events (sqlite)',
      events: N,
      ms: round(fndMs, 0),
      per_s: Math.round(N / (fndMs / 1000)),
    });

    // ---- the same rows, raw better-sqlite3 ----
    const raw = new Database(path.join(dir, 'raw.db'));
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.exec(`CREATE TABLE e (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, ts INTEGER NOT NULL, node TEXT NOT NULL, correlation_id TEXT, parent_id TEXT, data TEXT);
      CREATE INDEX e_ts ON e (ts); CREATE INDEX e_type_ts ON e (type, ts);
      CREATE INDEX e_corr ON e (correlation_id) WHERE correlation_id IS NOT NULL;`);
    const ins = raw.prepare(
      'INSERT INTO e (id, type, ts, node, correlation_id, parent_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const tx = raw.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        ins.run(
          `id-${i}`,
          TYPES[i % TYPES.length]!,
          Date.now(),
          'bench-events',
          `corr-${Math.floor(i / 10)}`,
          null,
          JSON.stringify(rowData(i)),
        );
      }
    });
    t0 = performance.now();
    for (let b = 0; b < N; b += BATCH) tx(b, Math.min(N, b + BATCH));
    const rawMs = performance.now() - t0;
    raw.close();
    emit({
      bench: BENCH,
      case: 'insert',
      impl: 'raw better-sqlite3',
      events: N,
      ms: round(rawMs, 0),
      per_s: Math.round(N / (rawMs / 1000)),
    });
    emit({ bench: BENCH, case: 'insert', ratio_foundation_to_raw: round(rawMs / fndMs, 2) });

    // ---- query latency (Foundation store, N events) ----
    const corrLat: number[] = [];
    let found = 0;
    for (let q = 0; q < QUERIES; q++) {
      const id = `corr-${(q * 7919) % Math.floor(N / 10)}`;
      const s = performance.now();
      found += (await node.events.getByCorrelation(id)).length;
      corrLat.push(performance.now() - s);
    }
    emit({
      bench: BENCH,
      case: 'getByCorrelation',
      events: N,
      queries: QUERIES,
      events_per_query: found / QUERIES,
      ...latencySummary(corrLat),
    });
    const typeLat: number[] = [];
    for (let q = 0; q < QUERIES / 4; q++) {
      const s = performance.now();
      await node.events.query({ type: TYPES[q % TYPES.length]!, order: 'desc', limit: 100 });
      typeLat.push(performance.now() - s);
    }
    emit({
      bench: BENCH,
      case: 'query type, newest 100',
      events: N,
      queries: QUERIES / 4,
      ...latencySummary(typeLat),
    });
    const stats = await node.events.stats();
    emit({ bench: BENCH, case: 'stats', count: stats.count });
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain(BENCH, main);
