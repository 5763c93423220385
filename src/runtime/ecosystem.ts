// Process ecosystems (the seed's spawn_ecosystem): a supervised coordinator actor plus a pool of
// supervised worker actors, with work distribution (round robin or least loaded), health and size
// queries, and resizing at runtime. With `threads`, each worker hands its jobs to a worker_threads
// pool (piscina, threads.ts), so CPU-heavy work never blocks the event loop.
import { availableParallelism } from 'node:os';
import type { Transferable } from 'node:worker_threads';
import { FoundationError } from '../errors.js';
import { type Clock, systemClock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type {
  ActorContext,
  Behaviour,
  CallOptions,
  DownMessage,
  ExitReason,
  GenServer,
} from './behaviour.js';
import { type Pid, type PidLike, pidKey } from './pid.js';
import { Supervisor } from './supervisor.js';
import { ActorSystem } from './system.js';
import {
  checkTransferList,
  ThreadPool,
  type ThreadPoolOptions,
  type ThreadPoolStats,
} from './threads.js';

export type DistributionStrategy = 'round-robin' | 'least-loaded';

export interface EcosystemWorkers {
  /**
   * The workers' behaviour, shared by every worker and every restart. A GenServer object given
   * here is one object for all workers (its `this` state is shared): use `create` for per-worker
   * state. Exactly one of `behaviour`, `create` (or `threads` on the ecosystem) is given.
   */
  behaviour?: Behaviour;
  /** Builds a fresh behaviour for each worker, and again for each restart. */
  create?: () => Behaviour;
  /** How many workers. 'cpus' = os.availableParallelism(). */
  count: number | 'cpus';
  /**
   * Most jobs queued or running per worker (counted by the ecosystem). Distribution skips full
   * workers; when all are full, `dispatch` throws and `call` rejects with FND_ERR_MAILBOX_FULL.
   * Default unbounded.
   */
  maxInFlight?: number;
}

/** `threads`: run the workers' jobs on worker threads. */
export interface EcosystemThreads extends Omit<ThreadPoolOptions, 'maxThreads'> {
  /**
   * Threads in the pool. Default: the worker count, following `resize`. A fixed number here stays
   * fixed; extra workers then queue jobs in the pool.
   */
  maxThreads?: number;
}

export interface EcosystemOptions {
  /** The coordinator's behaviour, reused on restart. Give this or `createCoordinator`. */
  coordinator?: Behaviour;
  /**
   * Builds the coordinator's behaviour, at start and for each restart, given the ecosystem, so the
   * coordinator can see and use the workers (`eco.workers()`, `eco.call`, `eco.dispatch`).
   */
  createCoordinator?: (eco: Ecosystem) => Behaviour;
  /** Registers the coordinator under this local name (follows it across restarts). */
  name?: string;
  workers: EcosystemWorkers;
  /** How `dispatch`/`call` pick a worker. Default 'round-robin'. */
  strategy?: DistributionStrategy;
  /**
   * Run jobs on worker_threads (piscina): `{ module, export?, maxThreads?, ... }` where `module`
   * is a file: URL or absolute path of an ES module exporting the work function. Workers then
   * need no behaviour: each one runs its jobs, one at a time, on the pool.
   */
  threads?: EcosystemThreads;
  /**
   * Restart intensity: more than `maxRestarts` restarts (all children together) within
   * `withinMs` end the ecosystem. Default 10 (a pool has many children; OTP's 3 suits one).
   */
  maxRestarts?: number;
  /** Window (ms) for `maxRestarts`. Default 5000. */
  withinMs?: number;
  /**
   * How long (ms) a worker removed by `resize` or `stop` may take to finish its queued jobs (and a
   * trapping actor to exit on 'shutdown') before it is killed. Default 5000.
   */
  shutdownTimeoutMs?: number;
  /** Timers for shutdown grace and the restart window. Default the system clock. */
  clock?: Clock;
  /** Failed dispatched jobs are logged here at 'warn' (they are always counted in `health()`). */
  log?: Logger;
}

export interface DispatchOptions {
  /**
   * ArrayBuffers / MessagePorts inside `msg` whose ownership moves with the job: they are detached
   * here (byteLength 0) as soon as `dispatch`/`call` returns, and in threads mode cross to the
   * thread without a copy. The rest of the message is cloned once. A SharedArrayBuffer is not
   * listed: it is shared as is.
   */
  transfer?: readonly Transferable[];
}

export interface WorkerHealth {
  /** Current pid; undefined while the worker is being restarted. */
  pid: Pid | undefined;
  alive: boolean;
  /** Jobs queued or running on this worker. */
  inFlight: number;
  completed: number;
  failed: number;
  restarts: number;
}

export interface EcosystemHealth {
  /** Workers the ecosystem is sized for (excludes workers being removed). */
  size: number;
  /** Workers alive right now. */
  alive: number;
  /** Jobs queued or running, all workers. */
  inFlight: number;
  /** Worker restarts since start (including workers since removed). */
  restarts: number;
  /** Jobs finished / failed since start. A failed call job is one whose handler threw. */
  completed: number;
  failed: number;
  /** Jobs lost because their worker exited before running them. */
  lost: number;
  coordinator: { pid: Pid | undefined; alive: boolean; restarts: number };
  workers: WorkerHealth[];
  /** Thread pool numbers (threads mode). */
  threads?: ThreadPoolStats;
  stopped: boolean;
}

export interface Ecosystem {
  /**
   * The supervisor actor over the coordinator and the workers: link or monitor it to nest the
   * ecosystem in a tree (an exit signal to it ends the ecosystem).
   */
  readonly supervisor: Pid;
  /** The coordinator's current pid (changes when it is restarted; undefined while restarting). */
  readonly coordinator: Pid | undefined;
  /** Pids of the live workers, in slot order. */
  workers(): Pid[];
  /**
   * Hands `msg` to a worker picked by the strategy (a cast: GenServer workers get it in
   * `handleCast`). Throws FND_ERR_NOPROC when no worker is alive or the ecosystem is stopped,
   * FND_ERR_MAILBOX_FULL when every worker is at `maxInFlight`.
   */
  dispatch(msg: unknown, opts?: DispatchOptions): void;
  /**
   * Calls a worker picked by the strategy and resolves with its reply (in threads mode: the work
   * function's result; its error rejects the call as thrown, code included). Rejects like
   * `dispatch` throws, plus the actor call errors (FND_ERR_CALL_TIMEOUT, FND_ERR_ACTOR_EXITED).
   */
  call<R = unknown>(msg: unknown, opts?: CallOptions & DispatchOptions): Promise<R>;
  /** Workers the ecosystem is sized for. */
  size(): number;
  health(): EcosystemHealth;
  /**
   * Grows (spawns workers) or shrinks (removes idle workers first; a removed worker takes no new
   * jobs, finishes its queued ones, then stops with 'shutdown'). Resolves when done. Resizes and
   * stop run one at a time, in call order.
   */
  resize(count: number | 'cpus'): Promise<void>;
  /**
   * Stops taking work at once, lets workers finish their jobs, shuts the workers down, then the
   * coordinator, then closes the threads. Idempotent.
   */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Jobs and worker slots

/** A job in a worker's mailbox; only the ecosystem creates them (plain messages pass through). */
class Job {
  constructor(
    readonly msg: unknown,
    readonly slot: Slot,
    readonly incarnation: number,
    readonly transfer: Transferable[] | undefined,
  ) {}
}

/** A thread job that threw: travels back as a reply, so the worker actor itself does not crash. */
class ThreadFailure {
  constructor(readonly error: unknown) {}
}

/** One worker position. Survives restarts of its actor; `incarnation` counts them. */
class Slot {
  pid: Pid | undefined;
  incarnation = 0;
  inFlight = 0;
  completed = 0;
  failed = 0;
  starts = 0;
  retiring = false;
  /** Called when a retiring slot has no job left (or its actor died). */
  drained: (() => void) | undefined;
  constructor(readonly id: string) {}

  get restarts(): number {
    return Math.max(0, this.starts - 1);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

/** Calls one callback of a user behaviour: plain handlers get every kind of message. */
function invoke(
  b: Behaviour,
  kind: 'call' | 'cast' | 'info',
  msg: unknown,
  ctx: ActorContext,
  from?: PidLike,
): unknown {
  if (typeof b === 'function') return b(msg, ctx);
  if (kind === 'call') return b.handleCall?.(msg, ctx, from);
  if (kind === 'cast') return b.handleCast?.(msg, ctx);
  return b.handleInfo?.(msg, ctx);
}

function countWorkers(c: number | 'cpus', field = 'workers.count'): number {
  const n = c === 'cpus' ? availableParallelism() : c;
  if (!Number.isInteger(n) || n < 0) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "${field}": must be a non-negative integer or 'cpus', got ${String(c)}`,
      { field },
    );
  }
  return n;
}

function invalid(field: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${what}`, { field });
}

// ---------------------------------------------------------------------------------------------
// The ecosystem

class EcosystemImpl implements Ecosystem {
  readonly supervisor: Pid;
  coordinator: Pid | undefined;
  private coordinatorStarts = 0;
  /** Active slots, in order; retiring slots leave this list at once. */
  private slots: Slot[] = [];
  /** Slots being removed (still counted in health until their actor is gone). */
  private readonly retiring = new Set<Slot>();
  private cursor = 0;
  private nextSlot = 0;
  private removedRestarts = 0;
  private removedCompleted = 0;
  private removedFailed = 0;
  private lost = 0;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private ops: Promise<void> = Promise.resolve();
  private readonly strategy: DistributionStrategy;
  private readonly maxInFlight: number;
  private readonly shutdownTimeoutMs: number;
  private readonly clock: Clock;

  constructor(
    private readonly system: ActorSystem,
    private readonly opts: EcosystemOptions,
    private readonly sup: Supervisor,
    private readonly pool: ThreadPool | undefined,
    private readonly fixedThreads: boolean,
  ) {
    this.supervisor = sup.pid;
    this.strategy = opts.strategy ?? 'round-robin';
    this.maxInFlight = opts.workers.maxInFlight ?? Number.POSITIVE_INFINITY;
    this.shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 5000;
    this.clock = opts.clock ?? systemClock;
  }

  // ---- start-up ----

  async startCoordinator(): Promise<void> {
    const { coordinator, createCoordinator, name } = this.opts;
    await this.sup.startChild({
      id: 'coordinator',
      start: () => this.wrapCoordinator(createCoordinator ? createCoordinator(this) : coordinator!),
      shutdown: this.shutdownTimeoutMs,
      ...(name !== undefined ? { options: { name } } : {}),
    });
  }

  private wrapCoordinator(user: Behaviour): GenServer {
    const server = typeof user === 'function' ? undefined : user;
    return {
      init: (ctx) => {
        this.coordinator = ctx.self;
        this.coordinatorStarts++;
        this.system.monitor(ctx.self, (down) => {
          if (this.coordinator && pidKey(this.coordinator) === pidKey(down.pid)) {
            this.coordinator = undefined;
          }
        });
        return server?.init?.call(server, ctx);
      },
      handleCall: (msg, ctx, from) =>
        server ? server.handleCall?.call(server, msg, ctx, from) : invoke(user, 'call', msg, ctx),
      handleCast: (msg, ctx) =>
        server ? server.handleCast?.call(server, msg, ctx) : invoke(user, 'cast', msg, ctx),
      handleInfo: (msg, ctx) =>
        server ? server.handleInfo?.call(server, msg, ctx) : invoke(user, 'info', msg, ctx),
      terminate: (reason, ctx) => server?.terminate?.call(server, reason, ctx),
    };
  }

  async addWorkers(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const slot = new Slot(`worker-${this.nextSlot++}`);
      this.slots.push(slot);
      try {
        await this.sup.startChild({
          id: slot.id,
          start: () => this.wrapWorker(slot),
          shutdown: this.shutdownTimeoutMs,
        });
      } catch (err) {
        this.slots.splice(this.slots.indexOf(slot), 1);
        throw err;
      }
    }
  }

  /** The user's behaviour around the ecosystem's bookkeeping: pid tracking and job completion. */
  private wrapWorker(slot: Slot): GenServer {
    const user = this.pool
      ? undefined
      : (this.opts.workers.create?.() ?? this.opts.workers.behaviour!);
    const server = user && typeof user !== 'function' ? user : undefined;
    const run = (job: Job, kind: 'call' | 'cast', ctx: ActorContext, from?: PidLike): unknown => {
      if (this.pool) {
        const p = this.pool.run(job.msg, job.transfer ? { transfer: job.transfer } : {});
        return p.then(
          (value) => {
            this.finish(job, true);
            return value;
          },
          (error: unknown) => {
            this.finish(job, false, error);
            return kind === 'call' ? new ThreadFailure(error) : undefined;
          },
        );
      }
      let result: unknown;
      try {
        result = server
          ? kind === 'call'
            ? server.handleCall?.call(server, job.msg, ctx, from)
            : server.handleCast?.call(server, job.msg, ctx)
          : invoke(user!, kind, job.msg, ctx, from);
      } catch (err) {
        this.finish(job, false, err);
        throw err; // let it crash: the supervisor restarts the worker
      }
      if (!isThenable(result)) {
        this.finish(job, true);
        return result;
      }
      Promise.resolve(result).then(
        () => this.finish(job, true),
        (err: unknown) => this.finish(job, false, err),
      );
      return result;
    };
    return {
      init: (ctx) => {
        this.attach(slot, ctx.self);
        return server?.init?.call(server, ctx);
      },
      handleCall: (msg, ctx, from) =>
        msg instanceof Job
          ? run(msg, 'call', ctx, from)
          : this.pool
            ? this.pool.run(msg)
            : server
              ? server.handleCall?.call(server, msg, ctx, from)
              : invoke(user!, 'call', msg, ctx, from),
      handleCast: (msg, ctx) =>
        msg instanceof Job
          ? run(msg, 'cast', ctx)
          : this.pool
            ? this.pool.run(msg)
            : server
              ? server.handleCast?.call(server, msg, ctx)
              : invoke(user!, 'cast', msg, ctx),
      handleInfo: (msg, ctx) =>
        this.pool
          ? undefined
          : server
            ? server.handleInfo?.call(server, msg, ctx)
            : invoke(user!, 'info', msg, ctx),
      terminate: (reason, ctx) => server?.terminate?.call(server, reason, ctx),
    };
  }

  private attach(slot: Slot, pid: Pid): void {
    slot.pid = pid;
    slot.incarnation++;
    slot.starts++;
    slot.inFlight = 0;
    this.system.monitor(pid, (down: DownMessage) => this.detach(slot, down.pid));
  }

  private detach(slot: Slot, pid: PidLike): void {
    if (!slot.pid || pidKey(slot.pid) !== pidKey(pid)) return;
    slot.pid = undefined;
    this.lost += slot.inFlight;
    slot.inFlight = 0;
    slot.incarnation++;
    slot.drained?.();
  }

  private finish(job: Job, ok: boolean, err?: unknown): void {
    const slot = job.slot;
    if (slot.incarnation !== job.incarnation) return;
    slot.inFlight--;
    if (ok) slot.completed++;
    else {
      slot.failed++;
      this.opts.log?.warn(
        { worker: slot.pid?.toString(), err: (err as Error)?.message ?? String(err) },
        'ecosystem job failed',
      );
    }
    if (slot.inFlight === 0) slot.drained?.();
  }

  // ---- distribution ----

  private pick(): Slot {
    if (this.stopped) {
      throw new FoundationError('FND_ERR_NOPROC', 'the ecosystem has been stopped', {
        supervisor: this.supervisor.toJSON(),
      });
    }
    const slots = this.slots;
    const n = slots.length;
    let full = false;
    if (this.strategy === 'round-robin') {
      for (let i = 0; i < n; i++) {
        const s = slots[(this.cursor + i) % n]!;
        if (!s.pid) continue;
        if (s.inFlight >= this.maxInFlight) {
          full = true;
          continue;
        }
        this.cursor = (this.cursor + i + 1) % n;
        return s;
      }
    } else {
      // Fewest jobs queued or running; ties go to the next in turn, so equal load spreads evenly.
      let best: Slot | undefined;
      let bestAt = 0;
      for (let i = 0; i < n; i++) {
        const at = (this.cursor + i) % n;
        const s = slots[at]!;
        if (!s.pid) continue;
        if (s.inFlight >= this.maxInFlight) {
          full = true;
          continue;
        }
        if (!best || s.inFlight < best.inFlight) {
          best = s;
          bestAt = at;
        }
      }
      if (best) {
        this.cursor = (bestAt + 1) % n;
        return best;
      }
    }
    if (full) {
      throw new FoundationError(
        'FND_ERR_MAILBOX_FULL',
        `every worker of the ecosystem has ${this.maxInFlight} jobs in flight`,
        { max: this.maxInFlight },
      );
    }
    throw new FoundationError('FND_ERR_NOPROC', 'the ecosystem has no live worker', {
      supervisor: this.supervisor.toJSON(),
    });
  }

  private job(msg: unknown, opts: DispatchOptions | undefined): Job {
    const slot = this.pick();
    let transfer: Transferable[] | undefined;
    if (opts?.transfer && opts.transfer.length > 0) {
      // Ownership moves now: the sender's buffers are detached whatever happens next, and the
      // moved copies (same memory, no copy) are what the worker or thread receives.
      const list = checkTransferList(opts.transfer);
      const moved = structuredClone({ msg, list }, { transfer: list });
      msg = moved.msg;
      transfer = moved.list;
    }
    slot.inFlight++;
    return new Job(msg, slot, slot.incarnation, transfer);
  }

  dispatch(msg: unknown, opts?: DispatchOptions): void {
    const job = this.job(msg, opts);
    try {
      this.system.cast(job.slot.pid!, job);
    } catch (err) {
      this.finishUnsent(job);
      throw err;
    }
  }

  async call<R = unknown>(msg: unknown, opts: CallOptions & DispatchOptions = {}): Promise<R> {
    const job = this.job(msg, opts);
    let reply: unknown;
    try {
      reply = await this.system.call(
        job.slot.pid!,
        job,
        opts.timeout !== undefined ? { timeout: opts.timeout } : {},
      );
    } catch (err) {
      if ((err as FoundationError).code === 'FND_ERR_MAILBOX_FULL') this.finishUnsent(job);
      throw err;
    }
    if (reply instanceof ThreadFailure) throw reply.error;
    return reply as R;
  }

  /** A job that never reached a mailbox. */
  private finishUnsent(job: Job): void {
    if (job.slot.incarnation !== job.incarnation) return;
    job.slot.inFlight--;
    if (job.slot.inFlight === 0) job.slot.drained?.();
  }

  workers(): Pid[] {
    const out: Pid[] = [];
    for (const s of this.slots) if (s.pid) out.push(s.pid);
    return out;
  }

  size(): number {
    return this.slots.length;
  }

  health(): EcosystemHealth {
    const all = [...this.slots, ...this.retiring];
    const workers: WorkerHealth[] = this.slots.map((s) => ({
      pid: s.pid,
      alive: s.pid !== undefined,
      inFlight: s.inFlight,
      completed: s.completed,
      failed: s.failed,
      restarts: s.restarts,
    }));
    const h: EcosystemHealth = {
      size: this.slots.length,
      alive: workers.filter((w) => w.alive).length,
      inFlight: all.reduce((n, s) => n + s.inFlight, 0),
      restarts: all.reduce((n, s) => n + s.restarts, this.removedRestarts),
      completed: all.reduce((n, s) => n + s.completed, this.removedCompleted),
      failed: all.reduce((n, s) => n + s.failed, this.removedFailed),
      lost: this.lost,
      coordinator: {
        pid: this.coordinator,
        alive: this.coordinator !== undefined,
        restarts: Math.max(0, this.coordinatorStarts - 1),
      },
      workers,
      stopped: this.stopped,
    };
    if (this.pool) h.threads = this.pool.stats();
    return h;
  }

  // ---- resizing and stopping ----

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.ops.then(fn);
    this.ops = next.catch(() => {});
    return next;
  }

  resize(count: number | 'cpus'): Promise<void> {
    const n = countWorkers(count, 'count');
    return this.serial(async () => {
      if (this.stopped) {
        throw new FoundationError('FND_ERR_NOPROC', 'the ecosystem has been stopped');
      }
      const current = this.slots.length;
      if (n > current) {
        if (this.pool && !this.fixedThreads) this.pool.resize(Math.max(1, n));
        await this.addWorkers(n - current);
        return;
      }
      if (n === current) return;
      // Idle workers go first; among equals, the most recently added.
      const order = this.slots
        .map((s, i) => ({ s, i }))
        .sort((a, b) => a.s.inFlight - b.s.inFlight || b.i - a.i)
        .slice(0, current - n)
        .map((x) => x.s);
      const gone = new Set(order);
      this.slots = this.slots.filter((s) => !gone.has(s));
      this.cursor = 0;
      await Promise.all(order.map((s) => this.retire(s)));
      if (this.pool && !this.fixedThreads) this.pool.resize(Math.max(1, n));
    });
  }

  /**
   * Takes a slot out of service: it gets no new jobs, finishes the ones it holds (bounded by the
   * shutdown timeout), then the supervisor shuts it down ('shutdown', 'kill' after the timeout)
   * and forgets it. A crash while draining is still restarted (the jobs it held are lost).
   */
  private async retire(slot: Slot): Promise<void> {
    slot.retiring = true;
    this.retiring.add(slot);
    await this.drain(slot);
    if (this.sup.alive) {
      try {
        await this.sup.terminateChild(slot.id);
        await this.sup.deleteChild(slot.id);
      } catch (err) {
        // Only a supervisor that exited meanwhile gets here; it has shut its children down.
        if (this.sup.alive) throw err;
      }
    }
    this.retiring.delete(slot);
    this.removedRestarts += slot.restarts;
    this.removedCompleted += slot.completed;
    this.removedFailed += slot.failed;
  }

  /** Resolves once the slot holds no job (or its actor died), or after the shutdown timeout. */
  private drain(slot: Slot): Promise<void> {
    if (slot.inFlight === 0 || !slot.pid) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(done, this.shutdownTimeoutMs);
      function done(): void {
        timer.cancel();
        slot.drained = undefined;
        resolve();
      }
      slot.drained = done;
    });
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopped = true; // refuse new work from now on, not from when earlier resizes are done
      this.stopping = this.serial(() => this.teardown());
    }
    return this.stopping;
  }

  /**
   * Lets every worker finish its jobs (bounded by the shutdown timeout), then the supervisor shuts
   * its children down in reverse start order (workers, then the coordinator) and exits; then the
   * thread pool closes.
   */
  private async teardown(): Promise<void> {
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) {
      s.retiring = true;
      this.retiring.add(s);
    }
    await Promise.all(slots.map((s) => this.drain(s)));
    await this.sup.stop();
    for (const s of slots) {
      this.retiring.delete(s);
      this.removedRestarts += s.restarts;
      this.removedCompleted += s.completed;
      this.removedFailed += s.failed;
    }
    await this.pool?.close();
  }

  /** The supervisor went down on its own (intensity exceeded, or a linked parent exited). */
  supervisorDown(reason: ExitReason): void {
    if (this.stopping) return;
    this.stopped = true;
    this.opts.log?.warn(
      {
        supervisor: this.supervisor.toString(),
        reason: String((reason as Error)?.message ?? reason),
      },
      'ecosystem supervisor exited; stopping the ecosystem',
    );
    this.stopping = this.serial(() => this.teardown());
    this.stopping.catch((err: Error) =>
      this.opts.log?.error({ err: err.message }, 'ecosystem teardown failed'),
    );
  }
}

/**
 * Starts an ecosystem on a node (`node`, or an ActorSystem such as `node.actors`): a supervisor,
 * under it the coordinator, then the workers in order. Resolves when all are started; rejects
 * with FND_ERR_INVALID_OPTION for bad options (the message names the field) and
 * FND_ERR_SUPERVISOR when a child cannot start (nothing is left running then).
 */
export async function ecosystem(
  host: ActorSystem | { actors: ActorSystem },
  opts: EcosystemOptions,
): Promise<Ecosystem> {
  const system = host instanceof ActorSystem ? host : host.actors;
  const w = opts.workers;
  if (!w || typeof w !== 'object') throw invalid('workers', 'is required');
  if ((opts.coordinator === undefined) === (opts.createCoordinator === undefined)) {
    throw invalid('coordinator', 'give exactly one of "coordinator" and "createCoordinator"');
  }
  const sources = [w.behaviour, w.create, opts.threads].filter((x) => x !== undefined).length;
  if (sources !== 1) {
    throw invalid(
      'workers.behaviour',
      'give exactly one of "workers.behaviour", "workers.create" or "threads" (thread workers ' +
        "run the module's function)",
    );
  }
  if ((opts.threads as unknown) === true || (opts.threads as unknown) === false) {
    throw invalid(
      'threads',
      'must be { module, export?, maxThreads?, ... }: the module to run on the threads',
    );
  }
  const count = countWorkers(w.count);
  if (w.maxInFlight !== undefined && (!Number.isInteger(w.maxInFlight) || w.maxInFlight < 1)) {
    throw invalid('workers.maxInFlight', 'must be a positive integer');
  }
  if (
    opts.strategy !== undefined &&
    opts.strategy !== 'round-robin' &&
    opts.strategy !== 'least-loaded'
  ) {
    throw invalid('strategy', "must be 'round-robin' or 'least-loaded'");
  }
  const maxRestarts = opts.maxRestarts ?? 10;
  const withinMs = opts.withinMs ?? 5000;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0)
    throw invalid('maxRestarts', 'must be an integer >= 0');
  if (!(withinMs > 0)) throw invalid('withinMs', 'must be a positive number of milliseconds');

  const pool = opts.threads
    ? new ThreadPool({ ...opts.threads, maxThreads: opts.threads.maxThreads ?? Math.max(1, count) })
    : undefined;
  let sup: Supervisor;
  try {
    sup = await Supervisor.start(system, {
      strategy: 'one_for_one',
      maxRestarts,
      withinMs,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
  } catch (err) {
    await pool?.close();
    throw err;
  }
  const eco = new EcosystemImpl(system, opts, sup, pool, opts.threads?.maxThreads !== undefined);
  void sup.exited.then((reason) => eco.supervisorDown(reason));
  try {
    await eco.startCoordinator();
    await eco.addWorkers(count);
  } catch (err) {
    await eco.stop();
    throw err;
  }
  return eco;
}
