// bench/failure-detection: 5 node processes on 127.0.0.1 with the `local` preset and default
// discovery (auto → local, a fresh cluster name per run). Each trial SIGKILLs one node and measures,
// for every other node, the time from the kill to its `memberDown` event; then restarts the node
// under the same name and waits until every node sees all five alive again. Timestamps are epoch
// milliseconds (performance.timeOrigin + performance.now()) taken in each process.
// Baseline, measured in the same trials: the moment each observer's own connection to the killed
// node closed (the kernel's notice, via the foundation:transport:disconnect diagnostics channel):
// no detector can be told sooner, and `down` must still wait out suspicion to rule out a blip.
// Usage: node dist/bench/failure-detection.js   (prints JSON lines; about a minute)
import diagnostics from 'node:diagnostics_channel';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CHANNELS, defaultLocalDirectory, Foundation, type Member } from '../src/index.js';
import {
  type Child,
  childLifecycle,
  deadline,
  emit,
  emitSetup,
  epochNow,
  percentile,
  role,
  roleArgs,
  round,
  runMain,
  spawnRole,
  unknownRole,
} from './common.js';

const BENCH = 'failure-detection';
const FILE = fileURLToPath(import.meta.url);
const NODES = 5;
const TRIALS = 20;
const TARGET_MS = 2000;
const DETECT_TIMEOUT_MS = 15_000;
const CONVERGE_TIMEOUT_MS = 20_000;

type Line = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Child: one node that reports every membership change and connection loss as a JSON line.

async function nodeRole(name: string, cluster: string): Promise<void> {
  const node = await Foundation.start({ name, cluster, preset: 'local', logLevel: 'silent' });
  const alive = () =>
    node
      .members()
      .filter((m) => m.status === 'alive')
      .map((m) => m.name);
  for (const ev of ['memberUp', 'memberDown', 'memberSuspect', 'memberLeft'] as const) {
    node.on(ev, (m: Member) =>
      emit({ ev, node: name, member: m.name, t: epochNow(), alive: alive() }),
    );
  }
  diagnostics.subscribe(CHANNELS.transportDisconnect, (msg) => {
    const { peer } = msg as { peer: string };
    emit({ ev: 'disconnect', node: name, member: peer, t: epochNow() });
  });
  childLifecycle(() => node.stop());
  emit({ ev: 'started', node: name, t: epochNow(), alive: alive() });
}

// ---------------------------------------------------------------------------------------------
// Parent

class Cluster {
  readonly names = Array.from({ length: NODES }, (_, i) => `fd${i + 1}`);
  readonly procs = new Map<string, Child>();
  /** Latest alive list reported by each running node. */
  readonly views = new Map<string, string[]>();
  private listeners = new Set<(l: Line) => void>();

  constructor(readonly cluster: string) {}

  start(name: string): void {
    const child = spawnRole(FILE, 'node', [name, this.cluster], name);
    this.procs.set(name, child);
    this.views.delete(name);
    child.onLine((l) => {
      if (this.procs.get(name) !== child) return; // a killed incarnation's last words
      if (Array.isArray(l.alive)) this.views.set(name, l.alive as string[]);
      for (const fn of this.listeners) fn(l);
    });
  }

  kill(name: string): number {
    const child = this.procs.get(name)!;
    this.procs.delete(name);
    this.views.delete(name);
    const t = epochNow();
    child.kill('SIGKILL');
    return t;
  }

  /** Every running node sees every node alive. */
  converged(): boolean {
    if (this.procs.size !== NODES) return false;
    for (const n of this.names) {
      const v = this.views.get(n);
      if (!v || v.length !== NODES) return false;
    }
    return true;
  }

  /** Resolves once `cond()` holds (checked after every line any node prints). */
  until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(check);
    });
  }

  /** Calls `fn` for every line any running node prints, until the returned function is called. */
  watch(fn: (l: Line) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.values()].map((c) => c.stop()));
  }
}

function stats(xs: number[]) {
  const s = Float64Array.from(xs).sort();
  return {
    p50_ms: round(percentile(s, 50), 1),
    p99_ms: round(percentile(s, 99), 1),
    max_ms: round(s[s.length - 1] ?? Number.NaN, 1),
  };
}

async function main(): Promise<void> {
  deadline(BENCH, 240_000);
  emitSetup(BENCH, { nodes: NODES, trials: TRIALS, preset: 'local' });
  const cluster = `bench-fd-${process.pid}-${Date.now()}`;
  const c = new Cluster(cluster);
  const detect: number[] = [];
  const closed: number[] = [];
  const rejoin: number[] = [];
  let missed = 0;
  let falseDowns = 0;
  try {
    for (const n of c.names) c.start(n);
    await c.until(() => c.converged(), CONVERGE_TIMEOUT_MS, 'initial convergence');
    for (let trial = 1; trial <= TRIALS; trial++) {
      const victim = c.names[(trial - 1) % NODES]!;
      const observers = c.names.filter((n) => n !== victim);
      const downAt = new Map<string, number>();
      const closedAt = new Map<string, number>();
      const unwatch = c.watch((l) => {
        const node = String(l.node);
        if (l.ev === 'memberDown' && l.member !== victim) falseDowns++;
        if (l.member !== victim) return;
        if (l.ev === 'memberDown' && !downAt.has(node)) downAt.set(node, l.t as number);
        if (l.ev === 'disconnect' && !closedAt.has(node)) closedAt.set(node, l.t as number);
      });
      const tKill = c.kill(victim);
      try {
        await c.until(
          () => observers.every((o) => downAt.has(o)),
          DETECT_TIMEOUT_MS,
          `${victim} seen down by all`,
        );
      } catch {
        // counted as missed below
      }
      unwatch();
      const trialDetect = observers.filter((o) => downAt.has(o)).map((o) => downAt.get(o)! - tKill);
      const trialClosed = observers
        .filter((o) => closedAt.has(o))
        .map((o) => closedAt.get(o)! - tKill);
      missed += observers.length - trialDetect.length;
      detect.push(...trialDetect);
      closed.push(...trialClosed);

      const tRestart = epochNow();
      c.start(victim);
      await c.until(() => c.converged(), CONVERGE_TIMEOUT_MS, `${victim} alive again everywhere`);
      rejoin.push(epochNow() - tRestart);
      emit({
        bench: BENCH,
        trial,
        victim,
        down_ms: trialDetect.map((x) => round(x, 1)),
        conn_closed_ms: trialClosed.map((x) => round(x, 1)),
        missed: observers.length - trialDetect.length,
        rejoin_ms: round(rejoin[rejoin.length - 1]!, 1),
      });
    }
  } finally {
    await c.stopAll();
    await rm(defaultLocalDirectory(cluster), { recursive: true, force: true });
  }
  const d = stats(detect);
  emit({
    bench: BENCH,
    nodes: NODES,
    preset: 'local',
    trials: TRIALS,
    pairs: detect.length,
    missed,
    false_downs: falseDowns,
    down: d,
    baseline_conn_closed: stats(closed),
    rejoin: stats(rejoin),
    target: `every pair down within ${TARGET_MS} ms`,
    met: missed === 0 && d.max_ms <= TARGET_MS,
  });
}

switch (role) {
  case undefined:
    runMain(BENCH, main);
    break;
  case 'node':
    void nodeRole(roleArgs[0]!, roleArgs[1]!);
    break;
  default:
    unknownRole();
}
