// CPU-bound work on worker_threads, through piscina: a pool of threads that each load one user
// module and run its exported function per task, so heavy computation never blocks the main event
// loop. Binary payloads listed in `transfer` move between threads (zero-copy) instead of being
// copied. Used by ecosystem({ threads }) and usable on its own.
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { FoundationError, isErrorCode } from '../errors.js';
import type { ThreadOutcome, ThreadWorkerData } from './thread-worker.js';

export interface ThreadPoolOptions {
  /**
   * The module that exports the work function: a `file:` URL (typically
   * `new URL('./work.js', import.meta.url)`) or an absolute path. It is loaded once per thread.
   * The function takes one argument (the task input, structured-cloned or transferred) and returns
   * the result or a promise of it; a throw rejects that task only.
   */
  module: string | URL;
  /** Name of the exported function. Default 'default'. */
  export?: string;
  /**
   * Most threads running at once. Default os.availableParallelism(). More threads than cores only
   * adds context switches for CPU-bound work; tasks beyond it wait in the pool's queue.
   */
  maxThreads?: number;
  /**
   * Threads kept running while idle. Default = maxThreads: warm threads take tasks at once, but
   * each holds its own V8 heap (several MB). Set 0 to start threads on demand.
   */
  minThreads?: number;
  /** How long (ms) a thread above minThreads stays idle before it exits. Default 10000. */
  idleTimeoutMs?: number;
  /** V8 heap limits per thread (worker_threads ResourceLimits). A thread over its limit dies. */
  resourceLimits?: {
    maxOldGenerationSizeMb?: number;
    maxYoungGenerationSizeMb?: number;
    codeRangeSizeMb?: number;
    stackSizeMb?: number;
  };
}

export interface ThreadRunOptions {
  /**
   * ArrayBuffers (or MessagePorts) inside the input to move to the thread instead of copying:
   * zero-copy, and they are detached here (byteLength 0) once handed over. A SharedArrayBuffer is
   * shared by being in the input and must not be listed.
   */
  transfer?: readonly Transferable[];
  /**
   * Cancels the task: a queued task is dropped; a running one has its thread terminated (the only
   * way to stop synchronous code) and replaced. The promise rejects with an AbortError.
   */
  signal?: AbortSignal;
}

export interface ThreadPoolStats {
  /** Threads currently running. */
  threads: number;
  maxThreads: number;
  /** Tasks waiting for a free thread. */
  queued: number;
  /** Tasks finished (successfully or not) since the pool started. */
  completed: number;
  /** Fraction of the pool's capacity spent running tasks since it started (0..1). */
  utilization: number;
}

/** Where thread-worker.js lives next to this file, in src (tsx) or dist (compiled). */
const ENTRY = new URL('./thread-worker.js', import.meta.url).href;

function moduleUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  if (m.startsWith('file:')) return m;
  if (isAbsolute(m)) return pathToFileURL(m).href;
  throw new FoundationError(
    'FND_ERR_INVALID_OPTION',
    `option "module": must be a file: URL or an absolute path, got "${m}" (relative paths are ambiguous across threads; use new URL('./work.js', import.meta.url))`,
    { field: 'module' },
  );
}

function positiveInt(v: number, field: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "${field}": must be an integer >= ${min}, got ${v}`,
      { field },
    );
  }
  return v;
}

/**
 * Checks a transfer list before anything is detached: a SharedArrayBuffer cannot be transferred
 * (it is shared by reference already); a duplicate or an already detached buffer would fail
 * later, with a less helpful error.
 */
export function checkTransferList(list: readonly Transferable[] | undefined): Transferable[] {
  if (!list || list.length === 0) return [];
  if (new Set(list).size !== list.length) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      'option "transfer": an item is listed twice',
      {
        field: 'transfer',
      },
    );
  }
  for (const t of list) {
    if (typeof SharedArrayBuffer !== 'undefined' && t instanceof SharedArrayBuffer) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'option "transfer": a SharedArrayBuffer is shared, not transferred; put it in the message and leave it out of the transfer list',
        { field: 'transfer' },
      );
    }
    if (t instanceof ArrayBuffer && t.byteLength === 0 && isDetached(t)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'option "transfer": an ArrayBuffer in the list is already detached (transferred before)',
        { field: 'transfer' },
      );
    }
  }
  return [...list];
}

function isDetached(b: ArrayBuffer): boolean {
  // Node 20 has no ArrayBuffer.prototype.detached; a detached buffer refuses to be sliced.
  const d = (b as { detached?: boolean }).detached;
  if (typeof d === 'boolean') return d;
  try {
    b.slice(0);
    return false;
  } catch {
    return true;
  }
}

/** Rebuilds an error thrown in a thread, keeping its Foundation code, name, data and stack. */
function rebuildError(e: Extract<ThreadOutcome, { ok: false }>['error']): Error {
  let err: Error;
  if (isErrorCode(e.code)) {
    err = FoundationError.fromWire(
      e.code,
      e.message,
      (e.data as Record<string, unknown> | undefined) ?? undefined,
    );
  } else {
    err = new Error(e.message);
    err.name = e.name;
    if (e.code !== undefined) (err as Error & { code?: unknown }).code = e.code;
    if (e.data !== undefined) (err as Error & { data?: unknown }).data = e.data;
  }
  if (e.stack !== undefined) err.stack = `${e.stack}\n    (thrown in a worker thread)`;
  return err;
}

/**
 * A pool of worker threads running one module's exported function. `run` never blocks the event
 * loop: the input is cloned (or transferred) to a thread, and the promise settles with the
 * function's result or its error. Tasks are independent: a throw rejects that task only; a thread
 * that dies (process.exit, out of memory) is replaced and its task rejects.
 */
export class ThreadPool {
  private pool: Piscina;
  /** Pools replaced by resize: still finishing their tasks, or done. */
  private readonly old: Array<{ pool: Piscina; closing: Promise<void> }> = [];
  private readonly base: {
    filename: string;
    workerData: ThreadWorkerData;
    idleTimeout: number;
    resourceLimits: ThreadPoolOptions['resourceLimits'];
  };
  private readonly minThreadsOpt: number | undefined;
  private closed = false;

  constructor(opts: ThreadPoolOptions) {
    const maxThreads = positiveInt(opts.maxThreads ?? availableParallelism(), 'maxThreads');
    if (opts.minThreads !== undefined) positiveInt(opts.minThreads, 'minThreads', 0);
    if (opts.idleTimeoutMs !== undefined) positiveInt(opts.idleTimeoutMs, 'idleTimeoutMs', 0);
    this.minThreadsOpt = opts.minThreads;
    this.base = {
      filename: ENTRY,
      workerData: { module: moduleUrl(opts.module), export: opts.export ?? 'default' },
      idleTimeout: opts.idleTimeoutMs ?? 10_000,
      resourceLimits: opts.resourceLimits,
    };
    this.pool = this.create(maxThreads);
  }

  private create(maxThreads: number): Piscina {
    const minThreads = Math.min(this.minThreadsOpt ?? maxThreads, maxThreads);
    return new Piscina({
      ...this.base,
      maxThreads,
      minThreads,
      // 'async': an idle thread waits with Atomics.waitAsync instead of blocking in Atomics.wait,
      // so timers and promises a work module leaves behind still run between tasks.
      atomics: 'async',
    });
  }

  /** Runs one task on a thread; resolves with the work function's result. */
  async run<R = unknown>(input: unknown, opts: ThreadRunOptions = {}): Promise<R> {
    if (this.closed)
      throw new FoundationError('FND_ERR_POOL_CLOSED', 'this thread pool has been closed');
    const transferList = checkTransferList(opts.transfer);
    const outcome = (await this.pool.run(input, {
      transferList: transferList as never,
      signal: opts.signal ?? null,
    })) as ThreadOutcome;
    if (outcome.ok) return outcome.value as R;
    throw rebuildError(outcome.error);
  }

  get maxThreads(): number {
    return this.pool.maxThreads;
  }

  /**
   * Changes the number of threads. Tasks already running finish on the old threads, which then
   * exit; new tasks go to the new set at once.
   */
  resize(maxThreads: number): void {
    positiveInt(maxThreads, 'maxThreads');
    if (this.closed || maxThreads === this.pool.maxThreads) return;
    const old = this.pool;
    this.pool = this.create(maxThreads);
    this.old.push({ pool: old, closing: old.close() });
  }

  stats(): ThreadPoolStats {
    return {
      threads: this.pool.threads.length,
      maxThreads: this.pool.maxThreads,
      queued: this.pool.queueSize,
      completed: this.old.reduce(
        (n, o) => n + o.pool.completed,
        this.closed ? 0 : this.pool.completed,
      ),
      utilization: this.pool.utilization,
    };
  }

  /** Lets running and queued tasks finish, then stops every thread. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.old.push({ pool: this.pool, closing: this.pool.close() });
    }
    await Promise.all(this.old.map((o) => o.closing));
  }
}
