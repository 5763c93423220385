// Shared helpers for the benchmark programs: re-running a bench file as a child role, reading the
// JSON lines children print, percentiles, and the JSON-line output every bench uses. Benchmarks
// are programs, not tests: they print one JSON object per line and always stop by themselves.
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import os from 'node:os';
import { createInterface } from 'node:readline';
import type { FoundationNode } from '../src/index.js';

/** The role a bench file was started with (`undefined` in the parent). */
export const role: string | undefined = process.argv[2];
/** Arguments after the role. */
export const roleArgs: string[] = process.argv.slice(3);

/** Prints one JSON line on stdout (the only output format of the benches). */
export function emit(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/**
 * Prints the run's setup first: the numbers mean little without the machine and its load
 * (1-minute load average at the start) next to them.
 */
export function emitSetup(bench: string, extra: Record<string, unknown> = {}): void {
  emit({
    bench,
    setup: {
      node: process.version,
      cpus: os.availableParallelism(),
      cpu_model: os.cpus()[0]?.model,
      loadavg_1m: round(os.loadavg()[0] ?? 0, 2),
      ...extra,
    },
  });
}

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Nearest-rank percentile of an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** p50 / p99 / max in microseconds of latencies given in milliseconds. */
export function latencySummary(samplesMs: Float64Array | number[]): {
  p50_us: number;
  p99_us: number;
  max_us: number;
} {
  const sorted = Float64Array.from(samplesMs).sort();
  const us = (ms: number) => Math.round(ms * 1000 * 10) / 10;
  return {
    p50_us: us(percentile(sorted, 50)),
    p99_us: us(percentile(sorted, 99)),
    max_us: us(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

export const round = (x: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

type Line = Record<string, unknown>;

/**
 * A child process running this same bench file in another role. It talks back with JSON lines on
 * stdout (kept in a backlog until someone waits for them) and takes commands over IPC.
 */
export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private backlog: Line[] = [];
  private waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  private listeners: ((l: Line) => void)[] = [];
  private exitCode: number | null | undefined;

  constructor(
    file: string,
    args: string[],
    readonly label: string,
  ) {
    this.proc = fork(file, args, {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')),
      env: { ...process.env },
    });
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
    createInterface({ input: this.proc.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        process.stderr.write(`[${label}] ${text}\n`);
        return;
      }
      for (const l of this.listeners) l(line);
      const i = this.waiters.findIndex((w) => w.pred(line));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(line);
      else this.backlog.push(line);
    });
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** Calls `fn` for every line the child prints from now on (lines are still kept for waitFor). */
  onLine(fn: (l: Line) => void): void {
    this.listeners.push(fn);
  }

  /** Resolves with the first (not yet consumed) line matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (l: Line) => boolean, timeoutMs: number, what = 'line'): Promise<Line> {
    const i = this.backlog.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.backlog.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: Line) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
      void this.exited.then((code) => {
        if (!this.waiters.includes(w)) return;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(timer);
        reject(new Error(`${this.label} exited (${code}) while waiting for ${what}`));
      });
    });
  }

  send(msg: unknown): void {
    if (this.alive && this.proc.connected) this.proc.send(msg as object);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) this.proc.kill(signal);
  }

  /** Asks the child to stop (IPC 'stop'), then kills it if it has not exited after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.alive) return;
    this.send({ cmd: 'stop' });
    const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * Pins a child (all its threads) to one CPU with `taskset`, so that two communicating processes
 * run on distinct cores the same way in every run instead of wherever the scheduler puts them
 * (on a 2-core machine, same-core vs cross-core placement changes a loopback round trip ~3x).
 * Skipped with fewer than 2 CPUs, without taskset, or with BENCH_PIN=0. Returns whether it pinned.
 */
export function pinToCpu(child: Child, cpu: number): boolean {
  if (process.env.BENCH_PIN === '0' || os.availableParallelism() < 2 || !child.proc.pid)
    return false;
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(child.proc.pid)], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

const children = new Set<Child>();

/** Starts `file` (a compiled bench file) again as a child in `childRole`. */
export function spawnRole(
  file: string,
  childRole: string,
  args: string[],
  label = childRole,
): Child {
  const c = new Child(file, [childRole, ...args], label);
  children.add(c);
  void c.exited.then(() => children.delete(c));
  return c;
}

/** SIGKILLs every child still running (used on errors and timeouts). */
export function killAllChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}

/**
 * Bounds a parent's whole run: after `ms` it prints an error line, kills every child and exits 1.
 * Also kills children when the parent is interrupted.
 */
export function deadline(bench: string, ms: number): void {
  setTimeout(() => {
    emit({ bench, error: `did not finish within ${ms} ms` });
    killAllChildren();
    process.exit(1);
  }, ms).unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAllChildren();
      process.exit(130);
    });
  }
}

/** Runs the parent's main; on failure prints an error line, kills children and exits 1. */
export function runMain(bench: string, main: () => Promise<void>): void {
  main().then(
    () => {
      killAllChildren();
      process.exit(0);
    },
    (err: Error) => {
      emit({ bench, error: err.message });
      killAllChildren();
      process.exit(1);
    },
  );
}

/**
 * In a child: calls `onStop` when the parent sends {cmd:'stop'} or goes away (IPC disconnect), then
 * exits. A child therefore never outlives its parent.
 */
export function childLifecycle(onStop: () => Promise<void> | void): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const hard = setTimeout(() => process.exit(0), 2000);
    hard.unref();
    try {
      await onStop();
    } finally {
      process.exit(0);
    }
  };
  process.on('message', (m: { cmd?: string }) => {
    if (m?.cmd === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Discovery that finds nobody: bench nodes are given each other's address (static seeds, join). */
export const noDiscovery = { name: 'none', start() {}, stop() {} };

/** Resolves once `node` sees `name` alive (10 s at most). */
export async function memberUp(node: FoundationNode, name: string): Promise<void> {
  const up = () => node.members().some((m) => m.name === name && m.status === 'alive');
  if (up()) return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} never became a member`)), 10_000);
    node.on('memberUp', () => {
      if (up()) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

/**
 * In a child: runs a role's main. A failure is printed to stderr and exits 1; when the role is
 * done, the child exits 0 (unless `exitWhenDone` is false: a role that keeps serving after setup).
 */
export function runRole(label: string, main: () => Promise<void>, exitWhenDone = true): void {
  main().then(
    () => {
      if (exitWhenDone) process.exit(0);
    },
    (err: Error) => {
      process.stderr.write(`${label} failed: ${err.stack}\n`);
      process.exit(1);
    },
  );
}

/** In a child started with a role its file does not know. */
export function unknownRole(): never {
  process.stderr.write(`unknown role ${role}\n`);
  process.exit(2);
}
