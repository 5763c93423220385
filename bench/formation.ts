// bench/formation: how long 10 real node processes take to form a cluster. Each trial spawns 10
// processes, waits until every one has reported `started`, and measures from the LAST `started`
// to the last `memberUp` any node needed to see all 9 others alive. Timestamps are epoch ms
// (performance.timeOrigin + performance.now()) taken by the children themselves.
// Strategies: `local` and `static` on 127.0.0.1 (test/fixtures/node-process.ts), `gossip` and
// `mdns` with default intervals and the fixture's default `lan` preset, each node in its own
// network namespace on a private bridge (test/fixtures/netns-node.ts; namespaces are created here
// and removed on exit, failure or SIGINT). Baseline: 10 bare `node:net` processes, same spawn
// pattern, each dialling the other 9 over loopback once told their ports (a full TCP mesh).
// Usage: node dist/bench/formation.js [baseline|local|static|gossip|mdns ...] [--trials N]
import { type ChildProcess, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultLocalDirectory } from '../src/index.js';
import { createSegment, NsNode, type Segment } from '../test/helpers/netns.js';
import { type Event, NodeProc } from '../test/helpers/proc.js';

const BENCH = 'formation';
const FILE = fileURLToPath(import.meta.url);
const NODES = 10;
const SECRET = 'formation-bench-secret-0001';
const STRATEGIES = ['baseline', 'local', 'static', 'gossip', 'mdns'] as const;
type Strategy = (typeof STRATEGIES)[number];
const TARGET_MS: Record<Strategy, number | undefined> = {
  baseline: undefined,
  local: 1000,
  static: 1000,
  gossip: 2000,
  mdns: 2000,
};
/** Per trial: all 10 must report `started` within this, then form within FORM_TIMEOUT_MS. */
const START_TIMEOUT_MS = 20_000;
const FORM_TIMEOUT_MS = 15_000;
/** SIGTERM, then SIGKILL whatever still runs after this. */
const STOP_GRACE_MS = 3_000;
/** The whole run stops starting trials after this and is killed (after cleanup) at RUN_LIMIT_MS. */
const RUN_BUDGET_MS = 150_000;
const RUN_LIMIT_MS = 175_000;

const now = () => performance.timeOrigin + performance.now();
const emit = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const round1 = (x: number) => Math.round(x * 10) / 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Baseline child: listens on 127.0.0.1:0, prints `started` with its port, reads the mesh's ports
// as one JSON line on stdin, dials every other port, and prints `meshed` once it has 9 outbound
// connections established and 9 inbound accepted.

function baselineChild(): void {
  const out = (o: object) => process.stdout.write(`${JSON.stringify({ ...o, t: now() })}\n`);
  let inbound = 0;
  let outbound = 0;
  let want = Number.POSITIVE_INFINITY;
  let done = false;
  const check = () => {
    if (!done && inbound >= want && outbound >= want) {
      done = true;
      out({ event: 'meshed', inbound, outbound });
    }
  };
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    inbound++;
    check();
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo;
    createInterface({ input: process.stdin }).on('line', (line) => {
      const ports = (JSON.parse(line) as number[]).filter((p) => p !== port);
      want = ports.length;
      for (const p of ports) {
        const s = net.connect({ host: '127.0.0.1', port: p }, () => {
          outbound++;
          check();
        });
        s.on('error', (err) => out({ event: 'error', port: p, message: err.message }));
        sockets.push(s);
      }
      check();
    });
    out({ event: 'started', port });
  });
  const stop = () => {
    for (const s of sockets) s.destroy();
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** A baseline child process: JSON-line events on stdout, like the fixtures' NodeProc. */
class BaselineProc {
  readonly events: Event[] = [];
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<void>;

  constructor() {
    this.child = spawn(process.execPath, [FILE, 'baseline-child'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line));
      } catch {
        // not an event line
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }
}

// ---------------------------------------------------------------------------------------------
// Parent: process bookkeeping and cleanup.

/** Every process this run spawned and has not yet seen exit: killed on any way out. */
const live = new Map<number, { kill(sig: NodeJS.Signals): void; exited: Promise<unknown> }>();
let segment: Segment | undefined;

function track(pid: number | undefined, exited: Promise<unknown>, kill: () => void): void {
  if (pid === undefined) return;
  live.set(pid, { kill, exited });
  void exited.then(() => live.delete(pid));
}

function killAllNow(): void {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  segment?.destroy();
  segment = undefined;
}

/** Parent only: nothing it started (processes, namespaces) outlives it, however it ends. */
function installCleanup(): void {
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      emit({ bench: BENCH, aborted: sig });
      killAllNow();
      process.exit(130);
    });
  }
}

interface Proc {
  name: string;
  events: Event[];
  stderr: string;
  exited: Promise<unknown>;
  /** The process has exited. */
  gone: boolean;
  signal(sig: NodeJS.Signals): void;
}

/** Wraps a child as a Proc; `gone` flips when it exits. */
function asProc(
  name: string,
  child: { events: Event[]; readonly stderr: string; exited: Promise<unknown> },
  signal: (sig: NodeJS.Signals) => void,
): Proc {
  const proc: Proc = {
    name,
    events: child.events,
    get stderr() {
      return child.stderr;
    },
    exited: child.exited,
    gone: false,
    signal,
  };
  void child.exited.then(() => {
    proc.gone = true;
  });
  return proc;
}

/** SIGTERM to all, then SIGKILL to those still running after STOP_GRACE_MS. */
async function stopAll(procs: Proc[]): Promise<void> {
  for (const p of procs) p.signal('SIGTERM');
  const timeout = sleep(STOP_GRACE_MS).then(() => 'timeout' as const);
  const results = await Promise.all(procs.map((p) => Promise.race([p.exited, timeout])));
  const stuck = procs.filter((_, i) => results[i] === 'timeout');
  for (const p of stuck) p.signal('SIGKILL');
  await Promise.all(stuck.map((p) => p.exited));
}

/** Resolves when `pred` holds (checked every 10 ms; the result never depends on this period). */
async function until(pred: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await sleep(10);
  }
}

const startedEvent = (p: Proc) => p.events.find((e) => e.event === 'started');

async function allStarted(procs: Proc[]): Promise<void> {
  await until(
    () => procs.every((p) => startedEvent(p) !== undefined || p.events.some(isFatal) || p.gone),
    START_TIMEOUT_MS,
    () =>
      `'started' from ${procs
        .filter((p) => !startedEvent(p))
        .map((p) => `${p.name} (stderr: ${p.stderr.slice(-300)})`)
        .join(', ')}`,
  );
  const died = procs.find((p) => !startedEvent(p) && p.gone && !p.events.some(isFatal));
  if (died) throw new Error(`${died.name} exited before starting: ${died.stderr.slice(-500)}`);
  const fatal = procs.find((p) => p.events.some(isFatal));
  if (fatal) {
    const e = fatal.events.find(isFatal)!;
    throw new Error(`${fatal.name} failed to start: ${e.code ?? ''} ${e.message ?? ''}`);
  }
}

const isFatal = (e: Event) => e.event === 'fatal';

/** First memberUp time of `other` as seen by `p`, if any. */
const upAt = (p: Proc, other: string): number | undefined =>
  p.events.find((e) => e.event === 'memberUp' && e.member?.name === other)?.t;

interface TrialResult {
  ms: number;
  startSpreadMs: number;
  /** memberSuspect/memberDown/memberLeft events seen during formation (should be 0). */
  flaps: number;
  discovery?: string;
}

/** Formation time from the children's own events: last `started` → last needed `memberUp`. */
async function measureFormation(procs: Proc[]): Promise<TrialResult> {
  await allStarted(procs);
  const startedTimes = procs.map((p) => startedEvent(p)!.t as number);
  const start = Math.max(...startedTimes);
  const names = procs.map((p) => p.name);
  const formed = () => procs.every((p) => names.every((o) => o === p.name || upAt(p, o)));
  await until(formed, FORM_TIMEOUT_MS, () =>
    procs
      .map((p) => `${p.name} has seen ${names.filter((o) => o !== p.name && upAt(p, o)).length}/9`)
      .join(', '),
  );
  const end = Math.max(
    ...procs.flatMap((p) => names.filter((o) => o !== p.name).map((o) => upAt(p, o)!)),
  );
  const flaps = procs.reduce(
    (n, p) =>
      n +
      p.events.filter(
        (e) =>
          (e.event === 'memberSuspect' || e.event === 'memberDown' || e.event === 'memberLeft') &&
          e.t <= end,
      ).length,
    0,
  );
  return {
    ms: round1(end - start),
    startSpreadMs: round1(start - Math.min(...startedTimes)),
    flaps,
    discovery: startedEvent(procs[0]!)?.discovery?.name,
  };
}

// ---------------------------------------------------------------------------------------------
// One trial per strategy.

function nodeProc(name: string, args: string[]): Proc {
  const p = new NodeProc(name, args);
  track(p.pid, p.exited, () => void p.kill('SIGKILL'));
  return asProc(name, p, (sig) => void p.kill(sig));
}

function nsProc(name: string, host: Segment['hosts'][number], args: string[]): Proc {
  const p = new NsNode(name, host, args);
  // `ip netns exec` execs node in place, so the child's pid is the node's; the segment's destroy
  // kills whatever still runs in the namespaces as a last resort.
  return asProc(name, p, (sig) => void p.kill(sig));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function trialBaseline(): Promise<TrialResult> {
  const procs = Array.from({ length: NODES }, () => new BaselineProc());
  const wrapped: Proc[] = procs.map((b, i) => {
    track(b.child.pid, b.exited, () => b.child.kill('SIGKILL'));
    return asProc(`b${i + 1}`, b, (sig) => {
      if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill(sig);
    });
  });
  try {
    await allStarted(wrapped);
    const ports = procs.map((b) => b.events.find((e) => e.event === 'started')!.port as number);
    for (const b of procs) b.child.stdin!.write(`${JSON.stringify(ports)}\n`);
    const meshed = (p: Proc) => p.events.find((e) => e.event === 'meshed');
    await until(
      () => wrapped.every((p) => meshed(p) || p.events.some((e) => e.event === 'error')),
      FORM_TIMEOUT_MS,
      () => `meshed from ${wrapped.filter((p) => !meshed(p)).map((p) => p.name)}`,
    );
    const failed = wrapped.find((p) => !meshed(p));
    if (failed) throw new Error(`${failed.name}: ${JSON.stringify(failed.events.at(-1))}`);
    const startedTimes = wrapped.map((p) => startedEvent(p)!.t as number);
    const start = Math.max(...startedTimes);
    return {
      ms: round1(Math.max(...wrapped.map((p) => meshed(p)!.t as number)) - start),
      startSpreadMs: round1(start - Math.min(...startedTimes)),
      flaps: 0,
    };
  } finally {
    await stopAll(wrapped);
  }
}

async function trialLocal(trial: number): Promise<TrialResult> {
  // A fresh cluster name per trial: its own discovery directory, no records from earlier trials.
  const cluster = `bench-formation-${process.pid}-${trial}`;
  const procs = Array.from({ length: NODES }, (_, i) =>
    nodeProc(`n${i + 1}`, ['--cluster', cluster]),
  );
  try {
    return await measureFormation(procs);
  } finally {
    await stopAll(procs);
    await rm(defaultLocalDirectory(cluster), { recursive: true, force: true });
  }
}

async function trialStatic(trial: number): Promise<TrialResult> {
  // Node 1 gets a fixed port and is started first; every node (node 1 too, which skips itself)
  // has 127.0.0.1:<port> as its only seed, so all ten run the `static` strategy.
  const cluster = `bench-formation-static-${process.pid}-${trial}`;
  const port = await freePort();
  const seed = `127.0.0.1:${port}`;
  const first = nodeProc('n1', ['--cluster', cluster, '--port', String(port), '--seeds', seed]);
  const procs = [first];
  try {
    await allStarted([first]);
    for (let i = 2; i <= NODES; i++)
      procs.push(nodeProc(`n${i}`, ['--cluster', cluster, '--seeds', seed]));
    return await measureFormation(procs);
  } finally {
    await stopAll(procs);
  }
}

/** The network namespaces could not be built (not root, no iproute2, ...). */
class SetupError extends Error {}

async function trialNetns(strategy: 'gossip' | 'mdns', trial: number): Promise<TrialResult> {
  if (!segment) {
    try {
      segment = createSegment(NODES);
    } catch (err) {
      throw new SetupError((err as Error).message);
    }
  }
  const seg = segment;
  // A fresh cluster per trial: beats/records of an earlier trial's nodes can never count.
  const cluster = `bench-${strategy}-${process.pid}-${trial}`;
  const procs = seg.hosts.map((host, i) =>
    nsProc(`${strategy[0]}${i + 1}`, host, [
      '--cluster',
      cluster,
      '--secret',
      SECRET,
      '--discovery-json',
      JSON.stringify({ strategy }),
    ]),
  );
  try {
    const r = await measureFormation(procs);
    return { ...r, discovery: strategy };
  } finally {
    await stopAll(procs);
  }
}

// ---------------------------------------------------------------------------------------------
// Main.

/** Nearest-rank percentile of an ascending-sorted array. */
function percentile(sorted: number[], p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

const SETTINGS: Record<Strategy, Record<string, unknown>> = {
  baseline: { transport: 'plain TCP, 127.0.0.1', mesh: '9 outbound + 9 inbound per process' },
  local: { host: '127.0.0.1', preset: 'local', discovery: 'auto→local', pollingIntervalMs: 500 },
  static: {
    host: '127.0.0.1',
    preset: 'local',
    seeds: 'node 1 (started first)',
    pollingIntervalMs: 200,
  },
  gossip: { host: 'netns bridge', preset: 'lan', intervalMs: 1000, secret: true },
  mdns: { host: 'netns bridge', preset: 'lan', queryIntervalMs: 30_000, secret: true },
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { trials: { type: 'string', default: '5' } },
    allowPositionals: true,
  });
  const trials = Number(values.trials);
  const chosen = (positionals.length ? positionals : [...STRATEGIES]) as Strategy[];
  for (const s of chosen) if (!STRATEGIES.includes(s)) throw new Error(`unknown strategy ${s}`);
  const runStart = Date.now();
  const watchdog = setTimeout(() => {
    emit({ bench: BENCH, error: `run exceeded ${RUN_LIMIT_MS} ms; killed` });
    process.exit(1);
  }, RUN_LIMIT_MS);
  watchdog.unref();

  emit({
    bench: BENCH,
    setup: {
      node: process.version,
      cpus: os.availableParallelism(),
      cpu_model: os.cpus()[0]?.model,
      loadavg_1m: round1(os.loadavg()[0] ?? 0),
      nodes: NODES,
      trials,
    },
  });

  let baselineP50: number | undefined;
  for (const strategy of chosen) {
    const results: number[] = [];
    let failures = 0;
    let skipped = 0;
    let discovery: string | undefined;
    for (let trial = 1; trial <= trials; trial++) {
      if (Date.now() - runStart > RUN_BUDGET_MS) {
        skipped++;
        continue;
      }
      try {
        const r =
          strategy === 'baseline'
            ? await trialBaseline()
            : strategy === 'local'
              ? await trialLocal(trial)
              : strategy === 'static'
                ? await trialStatic(trial)
                : await trialNetns(strategy, trial);
        discovery ??= r.discovery;
        results.push(r.ms);
        emit({
          bench: BENCH,
          strategy,
          nodes: NODES,
          trial,
          ms: r.ms,
          start_spread_ms: r.startSpreadMs,
          flaps: r.flaps,
        });
      } catch (err) {
        failures++;
        emit({
          bench: BENCH,
          strategy,
          nodes: NODES,
          trial,
          ms: null,
          error: (err as Error).message,
        });
        // Namespaces that cannot be built now will not be buildable on the next trial either.
        if (err instanceof SetupError) break;
      }
    }
    if (!chosen.slice(chosen.indexOf(strategy) + 1).some((s) => s === 'gossip' || s === 'mdns')) {
      segment?.destroy();
      segment = undefined;
    }
    const sorted = [...results].sort((a, b) => a - b);
    const p50 = sorted.length ? percentile(sorted, 50) : null;
    const max = sorted.length ? sorted[sorted.length - 1]! : null;
    const target = TARGET_MS[strategy];
    const summary: Record<string, unknown> = {
      bench: BENCH,
      strategy,
      nodes: NODES,
      trials: results.length,
      p50_ms: p50,
      max_ms: max,
    };
    if (failures) summary.failed = failures;
    if (skipped) summary.skipped = skipped;
    if (strategy === 'baseline') {
      baselineP50 = p50 ?? undefined;
      summary.baseline = 'bare node:net full mesh over loopback';
    } else {
      summary.target_ms = target;
      summary.met = failures === 0 && skipped === 0 && max !== null && max <= target!;
      if (baselineP50 && p50 !== null) summary.x_baseline_p50 = round1(p50 / baselineP50);
    }
    summary.settings = { ...SETTINGS[strategy], ...(discovery ? { discovery } : {}) };
    emit(summary);
  }
  emit({ bench: BENCH, total_s: round1((Date.now() - runStart) / 1000) });
}

if (process.argv[2] === 'baseline-child') {
  baselineChild();
} else {
  installCleanup();
  main().then(
    () => {
      killAllNow();
      process.exit(0);
    },
    (err: Error) => {
      emit({ bench: BENCH, error: err.message });
      killAllNow();
      process.exit(1);
    },
  );
}
