// Supervisors, as in OTP: an actor that starts its children in order, links to them, restarts
// them when they exit (one_for_one, one_for_all, rest_for_one) within a restart intensity, and
// shuts them down in reverse order. A supervisor that exceeds its intensity shuts its children down
// and exits with an error, so the supervisor above it sees the exit: trees escalate.
import { FoundationError, serializeError } from '../errors.js';
import { type Clock, systemClock, type TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import {
  type ActorContext,
  type Behaviour,
  type ExitMessage,
  type ExitReason,
  type GenServer,
  isSystemMessage,
  type ProtocolOf,
  type SpawnOptions,
} from './behaviour.js';
import { isPid, type Pid, type PidLike, pidKey, toPid } from './pid.js';
import { ActorSystem } from './system.js';

/** Which children a supervisor restarts when one of them exits and must be restarted. */
export type SupervisorStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
/**
 * When a child is restarted: 'permanent' always; 'transient' only after an abnormal exit (a
 * reason other than 'normal' or 'shutdown'); 'temporary' never (its spec is dropped when it exits).
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';
/**
 * How a child is shut down: milliseconds to wait after the 'shutdown' exit signal before 'kill';
 * 'brutal_kill' kills at once; 'infinity' waits as long as it takes (the default for supervisors).
 */
export type ShutdownSpec = number | 'brutal_kill' | 'infinity';
export type ChildType = 'worker' | 'supervisor';

/** What a child's start function is given. */
export interface ChildStartContext {
  /** The actor system the supervisor runs in. */
  system: ActorSystem;
  /** The supervisor's pid (the child's parent). */
  supervisor: Pid;
  /** The child's id. */
  id: string;
}

/**
 * One child of a supervisor. `Id` and `S` (what `start` returns) are inferred when the spec is
 * written inline in `Supervisor.start({ children: [...] })` or `startChild(...)`, so the child's
 * pid is typed with its protocol (`sup.child('db')`); `ChildSpec` alone is the untyped spec.
 */
export interface ChildSpec<Id extends string = string, S = Behaviour | PidLike> {
  /** Unique among the supervisor's children. */
  id: Id;
  /**
   * Starts the child; called at every (re)start. Return a behaviour (the supervisor spawns it with
   * `spawnAsync` and `options`, waiting for `init`, then links to it), or the pid of an actor you
   * started yourself (local or on another node; the supervisor links to it). A throw or rejection
   * is a failed start. Must not call this supervisor's runtime API (the supervisor is busy
   * starting this child and would wait on itself).
   *
   * A GenServer object literal returned here has `this` typed as itself when the spec is
   * inferred (see above); in a spec typed plainly `ChildSpec`, `this` is `any`.
   */
  // biome-ignore lint/suspicious/noExplicitAny: untyped specs keep `this` loose (see above)
  start: (ctx: ChildStartContext) => (S & ThisType<any>) | Promise<S>;
  /** Default 'permanent'. */
  restart?: RestartType;
  /** Default 5000 ms for workers, 'infinity' for supervisors. */
  shutdown?: ShutdownSpec;
  /** Default 'worker'. Only counted by countChildren and used for the shutdown default. */
  type?: ChildType;
  /** Spawn options when `start` returns a behaviour (name, mailbox, trapExits). */
  options?: Omit<SpawnOptions, 'link'>;
}

/** A child spec of any type, as a type parameter bound. */
// biome-ignore lint/suspicious/noExplicitAny: any start result, typed or not
export type AnyChildSpec = ChildSpec<string, any>;

/** The pid type of child `Id` among specs `C` (the protocol its `start` result gives it). */
export type ChildPid<C, Id extends string> =
  C extends ChildSpec<infer I, infer S>
    ? Id extends I
      ? Pid<ProtocolOf<Awaited<S>>>
      : never
    : never;

export interface SupervisorOptions<C extends readonly AnyChildSpec[] = ChildSpec[]> {
  /** Default 'one_for_one'. */
  strategy?: SupervisorStrategy;
  /** Restarts allowed within `withinMs`; one more and the supervisor gives up. Default 3. */
  maxRestarts?: number;
  /** The restart intensity window, in ms. Default 5000. */
  withinMs?: number;
  /** Started in order; shut down in reverse order. */
  children?: C;
  /** Register the supervisor under this local name. */
  name?: string;
  /**
   * Clock for the intensity window and shutdown timeouts. Default: the actor system's clock when
   * it exposes one, else the system clock.
   */
  clock?: Clock;
  /** Where restarts and give-ups are logged. Default: the actor system's logger, if it exposes one. */
  log?: Logger;
}

/** One child as whichChildren reports it; `pid` is undefined while it is not running. */
export interface ChildInfo {
  id: string;
  pid: Pid | undefined;
  type: ChildType;
  restart: RestartType;
}

export interface ChildCounts {
  /** Child specs held. */
  specs: number;
  /** Children running now. */
  active: number;
  /** Specs of type 'supervisor'. */
  supervisors: number;
  /** Specs of type 'worker'. */
  workers: number;
}

/**
 * The calls a supervisor actor answers (what the Supervisor methods send; other actors, also on
 * other nodes, may send them with `call`). `startChild` carries functions, so it works locally only.
 */
export type SupervisorRequest =
  | { op: 'startChild'; spec: ChildSpec }
  | { op: 'terminateChild' | 'restartChild' | 'deleteChild'; id: string }
  | { op: 'whichChildren' | 'countChildren' };

/** A supervisor's reply: a failed operation is a value (a throw would crash the supervisor). */
export type SupervisorReply =
  | { ok: true; value: unknown }
  | { ok: false; error: Error | ReturnType<typeof serializeError> };

/** Longest child id a supervisor request may name (requests can come from other nodes). */
const MAX_CHILD_ID = 1024;

/** Exit reasons after which a transient child is not restarted. */
const NORMAL_REASONS: ReadonlySet<unknown> = new Set(['normal', 'shutdown']);

/** The Supervisor methods wait as long as the operation takes (a shutdown may be 'infinity'). */
const OP_TIMEOUT_MS = 2 ** 31 - 1;

const DEFAULTS = Object.freeze({
  strategy: 'one_for_one' as SupervisorStrategy,
  // OTP's defaults: a child crashing more than 3 times in 5 s means restarting does not help.
  maxRestarts: 3,
  withinMs: 5000,
  workerShutdownMs: 5000,
});

const STRATEGIES: ReadonlySet<string> = new Set(['one_for_one', 'one_for_all', 'rest_for_one']);
const RESTARTS: ReadonlySet<string> = new Set(['permanent', 'transient', 'temporary']);
const TYPES: ReadonlySet<string> = new Set(['worker', 'supervisor']);

interface NormalSpec {
  id: string;
  start: ChildSpec['start'];
  restart: RestartType;
  shutdown: ShutdownSpec;
  type: ChildType;
  options: Omit<SpawnOptions, 'link'> | undefined;
}

interface ChildRecord {
  spec: NormalSpec;
  pid: Pid | undefined;
}

// Private messages the supervisor sends itself; only this module can make them.
/** Forget a terminated child's pid: every EXIT it could still send is queued before this. */
class Retire {
  constructor(readonly key: string) {}
}
/** Try a failed restart again (after other queued messages, like OTP's try_again). */
class Retry {
  constructor(
    readonly id: string,
    readonly reason: ExitReason,
  ) {}
}
class StopRequest {
  constructor(readonly reason: ExitReason) {}
}

/** Live supervisors by system and actor id, for Supervisor.of. */
const registry = new WeakMap<ActorSystem, Map<number, Supervisor>>();

type Host = ActorSystem | { actors: ActorSystem };

function systemOf(host: Host): ActorSystem {
  return host instanceof ActorSystem ? host : host.actors;
}

/**
 * A running supervisor. Start one with `Supervisor.start`; it is an actor (`pid`), so it can be
 * a child of another supervisor, monitored, linked, and called.
 *
 * Concurrency: every operation (restarts, runtime API calls, shutdown) runs inside the supervisor
 * actor, one at a time, in arrival order; `whichChildren` and `countChildren` read the current
 * state directly and never wait.
 */
export class Supervisor<C extends AnyChildSpec = ChildSpec> {
  /** Resolves with the supervisor's exit reason once it has exited (never rejects). */
  readonly exited: Promise<ExitReason>;
  private resolveExited!: (r: ExitReason) => void;
  private self: Pid | undefined;
  private running = false;
  /** Set once the supervisor has decided to exit: later messages are ignored or refused. */
  private stopping = false;
  private children: ChildRecord[] = [];
  /**
   * Linked child pids (pidKey) → their record; null for a pid that was terminated on purpose
   * and whose EXIT may still be queued (until its Retire marker arrives).
   */
  private readonly linked = new Map<string, ChildRecord | null>();
  /** Times of recent restarts (clock ms), for the intensity check. */
  private restarts: number[] = [];
  private readonly clock: Clock;
  private readonly log: Logger | undefined;

  private constructor(
    readonly system: ActorSystem,
    private readonly strategy: SupervisorStrategy,
    private readonly maxRestarts: number,
    private readonly withinMs: number,
    private readonly initial: NormalSpec[],
    opts: SupervisorOptions<readonly AnyChildSpec[]>,
  ) {
    const exposed = system as unknown as { clock?: Clock; log?: Logger };
    this.clock = opts.clock ?? exposed.clock ?? systemClock;
    this.log = opts.log ?? exposed.log;
    this.exited = new Promise((r) => {
      this.resolveExited = r;
    });
  }

  /**
   * Starts a supervisor and its children, in list order. Resolves once every child has started.
   * If a child fails to start, the ones already started are shut down in reverse order and this
   * rejects with FND_ERR_SUPERVISOR (`data.id`, `data.cause`; the error's `cause` is the original).
   * Invalid options reject with FND_ERR_INVALID_OPTION naming the field.
   */
  static async start<const C extends readonly AnyChildSpec[] = ChildSpec[]>(
    host: Host,
    opts: SupervisorOptions<C> = {},
  ): Promise<Supervisor<C[number]>> {
    const system = systemOf(host);
    const strategy = opts.strategy ?? DEFAULTS.strategy;
    if (!STRATEGIES.has(strategy)) {
      throw invalid('strategy', "must be 'one_for_one', 'one_for_all' or 'rest_for_one'");
    }
    const maxRestarts = opts.maxRestarts ?? DEFAULTS.maxRestarts;
    if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
      throw invalid('maxRestarts', 'must be an integer ≥ 0');
    }
    const withinMs = opts.withinMs ?? DEFAULTS.withinMs;
    if (!Number.isFinite(withinMs) || withinMs <= 0) {
      throw invalid('withinMs', 'must be a positive number of milliseconds');
    }
    const children = opts.children ?? [];
    if (!Array.isArray(children)) throw invalid('children', 'must be an array of child specs');
    const specs = children.map((c, i) => normalizeSpec(c, `children[${i}]`));
    const seen = new Set<string>();
    for (const s of specs) {
      if (seen.has(s.id)) throw duplicate(s.id);
      seen.add(s.id);
    }
    const sup = new Supervisor<C[number]>(system, strategy, maxRestarts, withinMs, specs, opts);
    await system.spawnAsync(sup.behaviour(), { trapExits: true, name: opts.name });
    return sup;
  }

  /**
   * A child spec that starts a nested supervisor with `opts` (type 'supervisor', shutdown
   * 'infinity', restart 'permanent' unless overridden). Every restart starts a fresh one; reach
   * the running one with `Supervisor.of`.
   */
  static childSpec(
    id: string,
    opts: SupervisorOptions,
    overrides: Pick<ChildSpec, 'restart' | 'shutdown'> = {},
  ): ChildSpec {
    return {
      id,
      type: 'supervisor',
      restart: overrides.restart ?? 'permanent',
      shutdown: overrides.shutdown ?? 'infinity',
      start: async ({ system }) => (await Supervisor.start(system, opts)).pid,
    };
  }

  /** The running supervisor with this pid (or local registered name), if there is one. */
  static of(host: Host, target: PidLike | string): Supervisor | undefined {
    const system = systemOf(host);
    const pid = typeof target === 'string' ? system.whereis(target) : target;
    if (!pid || pid.node !== system.nodeName) return undefined;
    return registry.get(system)?.get(pid.id);
  }

  /** The supervisor's actor pid. */
  get pid(): Pid {
    return this.self!;
  }

  /** Whether the supervisor actor is still running. */
  get alive(): boolean {
    return this.running;
  }

  /**
   * Adds a child (last in start order) and starts it; resolves with its pid. Rejects with
   * FND_ERR_SUPERVISOR when the id is taken or the start fails (the spec is then not kept).
   */
  startChild<Id extends string, S>(spec: ChildSpec<Id, S>): Promise<Pid<ProtocolOf<Awaited<S>>>>;
  startChild(spec: ChildSpec): Promise<Pid> {
    return this.request({ op: 'startChild', spec }) as Promise<Pid>;
  }

  /**
   * The running pid of child `id`, typed with the child's protocol when the supervisor was
   * started with inline specs (then an id not among them is a compile error; reach children
   * added later through `(sup as Supervisor).child(id)`); undefined when the child is not running
   * or unknown. A restart gives the child a new pid: look it up again rather than keeping it.
   */
  child<Id extends C['id']>(id: Id): ChildPid<C, Id> | undefined {
    return this.find(id)?.pid as ChildPid<C, Id> | undefined;
  }

  /**
   * Shuts a running child down (as configured by its `shutdown`); its spec stays, so it can be
   * restarted or deleted, except a temporary child's, which is dropped. A child that is not
   * running is left as is. Rejects with FND_ERR_SUPERVISOR for an unknown id.
   */
  async terminateChild(id: string): Promise<void> {
    await this.request({ op: 'terminateChild', id });
  }

  /** Starts a terminated child again; rejects (FND_ERR_SUPERVISOR) if it is running or unknown. */
  restartChild(id: string): Promise<Pid> {
    return this.request({ op: 'restartChild', id }) as Promise<Pid>;
  }

  /** Drops a terminated child's spec; rejects (FND_ERR_SUPERVISOR) if it is running or unknown. */
  async deleteChild(id: string): Promise<void> {
    await this.request({ op: 'deleteChild', id });
  }

  /** Every child in start order. */
  whichChildren(): ChildInfo[] {
    return this.children.map((c) => ({
      id: c.spec.id,
      pid: c.pid,
      type: c.spec.type,
      restart: c.spec.restart,
    }));
  }

  countChildren(): ChildCounts {
    let active = 0;
    let supervisors = 0;
    for (const c of this.children) {
      if (c.pid) active++;
      if (c.spec.type === 'supervisor') supervisors++;
    }
    return {
      specs: this.children.length,
      active,
      supervisors,
      workers: this.children.length - supervisors,
    };
  }

  /**
   * Shuts every child down in reverse start order, then exits with `reason` (default 'shutdown').
   * Resolves once the supervisor has exited; resolves at once if it already has.
   */
  async stop(reason: ExitReason = 'shutdown'): Promise<void> {
    if (this.running) this.system.send(this.self!, new StopRequest(reason));
    await this.exited;
  }

  private async request(req: SupervisorRequest): Promise<unknown> {
    if (!this.running) throw notRunning(this.self);
    const reply = await this.system.call<SupervisorReply>(this.self!, req, {
      timeout: OP_TIMEOUT_MS,
    });
    if (reply.ok) return reply.value;
    throw reply.error;
  }

  // ---- the actor ----

  private behaviour(): GenServer {
    return {
      init: (ctx) => this.init(ctx),
      handleCall: (msg, _ctx, from) => this.handleCall(msg, from),
      handleInfo: (msg) => this.handleInfo(msg),
    };
  }

  private async init(ctx: ActorContext): Promise<void> {
    const self = ctx.self;
    this.self = self;
    this.running = true;
    let mine = registry.get(this.system);
    if (!mine) {
      mine = new Map();
      registry.set(this.system, mine);
    }
    mine.set(self.id, this);
    this.system.monitor(self, (down) => {
      this.running = false;
      if (registry.get(this.system)?.get(self.id) === this)
        registry.get(this.system)!.delete(self.id);
      this.resolveExited(down.reason);
    });
    for (const spec of this.initial) {
      const rec: ChildRecord = { spec, pid: undefined };
      try {
        await this.startRecord(rec);
      } catch (err) {
        this.stopping = true;
        await this.terminateAll();
        throw startFailed(spec.id, err);
      }
      this.children.push(rec);
    }
  }

  private async handleCall(msg: unknown, from: PidLike | undefined): Promise<SupervisorReply> {
    try {
      return { ok: true, value: await this.operate(msg as SupervisorRequest) };
    } catch (err) {
      const remote = from !== undefined && from.node !== this.system.nodeName;
      return { ok: false, error: remote ? serializeError(err) : (err as Error) };
    }
  }

  private async operate(req: SupervisorRequest): Promise<unknown> {
    if (this.stopping) throw notRunning(this.self);
    // Requests may come from other nodes: check the shape before use, and never echo an unchecked
    // value into the error (it has to be encodable for the reply to reach the caller).
    const op: unknown = typeof req === 'object' && req !== null ? req.op : undefined;
    if (
      (op === 'terminateChild' || op === 'restartChild' || op === 'deleteChild') &&
      (typeof (req as { id?: unknown }).id !== 'string' ||
        (req as { id: string }).id.length > MAX_CHILD_ID)
    ) {
      throw new FoundationError(
        'FND_ERR_SUPERVISOR',
        `${op}: the child id must be a string of at most ${MAX_CHILD_ID} characters`,
        { op },
      );
    }
    const r = req as SupervisorRequest & { id: string; spec: ChildSpec };
    switch (op) {
      case 'whichChildren':
        return this.whichChildren();
      case 'countChildren':
        return this.countChildren();
      case 'startChild': {
        const spec = normalizeSpec(r.spec, 'spec');
        if (this.find(spec.id)) throw duplicate(spec.id);
        const rec: ChildRecord = { spec, pid: undefined };
        try {
          await this.startRecord(rec);
        } catch (err) {
          throw startFailed(spec.id, err);
        }
        this.children.push(rec);
        return rec.pid;
      }
      case 'terminateChild':
        await this.shutdownChild(this.get(r.id));
        return undefined;
      case 'restartChild': {
        const rec = this.get(r.id);
        if (rec.pid) throw running(r.id, rec.pid);
        try {
          await this.startRecord(rec);
        } catch (err) {
          throw startFailed(r.id, err);
        }
        return rec.pid;
      }
      case 'deleteChild': {
        const rec = this.get(r.id);
        if (rec.pid) throw running(r.id, rec.pid);
        this.remove(rec);
        return undefined;
      }
      default:
        throw new FoundationError(
          'FND_ERR_SUPERVISOR',
          'unknown supervisor request (expected op startChild, terminateChild, restartChild, deleteChild, whichChildren or countChildren)',
          { op: typeof op === 'string' && op.length <= MAX_CHILD_ID ? op : typeof op },
        );
    }
  }

  private async handleInfo(msg: unknown): Promise<void> {
    if (this.stopping) return;
    if (msg instanceof Retire) {
      if (this.linked.get(msg.key) === null) this.linked.delete(msg.key);
      return;
    }
    if (msg instanceof Retry) {
      const rec = this.find(msg.id);
      if (rec && !rec.pid) await this.restart(rec, msg.reason);
      return;
    }
    if (msg instanceof StopRequest) return this.exitWith(msg.reason);
    if (isExitMessage(msg)) {
      const key = pidKey(msg.from);
      if (this.linked.has(key)) {
        const rec = this.linked.get(key);
        this.linked.delete(key);
        if (rec?.pid && pidKey(rec.pid) === key) await this.childExited(rec, msg.reason);
        return;
      }
      // An exit signal from anyone else (the parent supervisor, node.exit, a linked actor) acts
      // as on any actor: 'normal' is ignored, anything else ends the supervisor, children first.
      // 'noproc' only ever answers a link to a pid that was gone: a stale child, ignored too.
      if (msg.reason === 'normal' || msg.reason === 'noproc') return;
      return this.exitWith(msg.reason);
    }
  }

  private async childExited(rec: ChildRecord, reason: ExitReason): Promise<void> {
    rec.pid = undefined;
    const { restart, id } = rec.spec;
    if (restart === 'temporary') {
      this.remove(rec);
      return;
    }
    if (restart === 'transient' && NORMAL_REASONS.has(reason)) return;
    this.log?.warn(
      { supervisor: String(this.self), child: id, reason: describe(reason) },
      'child exited; restarting',
    );
    await this.restart(rec, reason);
  }

  /** Counts a restart against the intensity, then restarts by strategy (or gives up). */
  private async restart(rec: ChildRecord, reason: ExitReason): Promise<void> {
    const now = this.clock.now();
    this.restarts = this.restarts.filter((t) => now - t < this.withinMs);
    this.restarts.push(now);
    if (this.restarts.length > this.maxRestarts) return this.giveUp(rec, reason);
    const from =
      this.strategy === 'one_for_one'
        ? -1
        : this.strategy === 'one_for_all'
          ? 0
          : this.children.indexOf(rec);
    if (from >= 0) {
      for (const c of this.children.slice(from).reverse()) {
        if (c !== rec) await this.shutdownChild(c);
      }
    }
    const toStart = from < 0 ? [rec] : this.children.slice(from);
    const started: ChildRecord[] = [];
    for (const c of toStart) {
      if (c.pid) continue;
      try {
        await this.startRecord(c);
        started.push(c);
      } catch (err) {
        this.log?.error(
          { supervisor: String(this.self), child: c.spec.id, err: describe(err) },
          'child restart failed',
        );
        // Like OTP: undo this round, count another restart, and try again after queued messages.
        for (const s of started.reverse()) await this.shutdownChild(s);
        this.system.send(this.self!, new Retry(rec.spec.id, err as Error));
        return;
      }
    }
  }

  private async giveUp(rec: ChildRecord, reason: ExitReason): Promise<void> {
    const err = new FoundationError(
      'FND_ERR_SUPERVISOR',
      `supervisor ${this.self} reached max restart intensity (${this.maxRestarts} restarts in ${this.withinMs} ms); child "${rec.spec.id}" exited last with ${describe(reason)}`,
      {
        reason: 'max_restart_intensity',
        maxRestarts: this.maxRestarts,
        withinMs: this.withinMs,
        id: rec.spec.id,
        childReason: reason instanceof Error ? serializeError(reason) : reason,
      },
    );
    this.log?.error({ supervisor: String(this.self), child: rec.spec.id }, err.message);
    return this.exitWith(err);
  }

  /** Shuts every child down in reverse order, then ends the supervisor with `reason`. */
  private async exitWith(reason: ExitReason): Promise<void> {
    this.stopping = true;
    await this.terminateAll();
    // A handler's throw ends the actor with the thrown value as its exit reason (Erlang's exit/1).
    throw reason;
  }

  private async terminateAll(): Promise<void> {
    for (const c of [...this.children].reverse()) await this.shutdownChild(c);
  }

  /**
   * Starts one child and links to it. Throws what the start threw. A spawned behaviour is linked
   * only once its init succeeded, so a child that fails to start leaves no EXIT behind.
   */
  private async startRecord(rec: ChildRecord): Promise<void> {
    const self = this.self!;
    const { spec } = rec;
    let v: unknown = spec.start({ system: this.system, supervisor: self, id: spec.id });
    if (isThenable(v)) v = await v;
    const pid = isPid(v)
      ? toPid(v)
      : await this.system.spawnAsync(supervised(v as Behaviour, self), {
          ...spec.options,
          link: undefined,
        });
    if (!this.running) {
      // The supervisor was killed while this child started: do what the link would have done.
      this.system.exit(pid, 'kill', self);
      throw notRunning(self);
    }
    rec.pid = pid;
    this.linked.set(pidKey(pid), rec);
    this.system.link(self, pid);
  }

  /**
   * OTP's shutdown: monitor, unlink, exit 'shutdown' ('kill' for brutal_kill), and 'kill' after
   * `shutdown` ms if the child is still alive; resolves with its exit reason.
   */
  private async shutdownChild(rec: ChildRecord): Promise<ExitReason | undefined> {
    const pid = rec.pid;
    if (rec.spec.restart === 'temporary') this.remove(rec);
    if (!pid) return undefined;
    rec.pid = undefined;
    const self = this.self!;
    const key = pidKey(pid);
    if (this.linked.get(key) === rec) this.linked.set(key, null);
    const down = new Promise<ExitReason>((resolve) => {
      this.system.monitor(pid, (d) => resolve(d.reason));
    });
    this.system.unlink(self, pid);
    // After the unlink no EXIT from this pid can be queued any more; the marker lands behind any
    // that already is, and clears the pid once those have been ignored.
    this.system.send(self, new Retire(key));
    const { shutdown } = rec.spec;
    let timer: TimerHandle | undefined;
    if (shutdown === 'brutal_kill') this.system.exit(pid, 'kill', self);
    else {
      this.system.exit(pid, 'shutdown', self);
      if (typeof shutdown === 'number') {
        timer = this.clock.setTimeout(() => this.system.exit(pid, 'kill', self), shutdown);
      }
    }
    const reason = await down;
    timer?.cancel();
    return reason;
  }

  private find(id: string): ChildRecord | undefined {
    return this.children.find((c) => c.spec.id === id);
  }

  private get(id: string): ChildRecord {
    const rec = this.find(id);
    if (!rec) {
      throw new FoundationError('FND_ERR_SUPERVISOR', `no child "${id}" in ${this.self}`, { id });
    }
    return rec;
  }

  private remove(rec: ChildRecord): void {
    const i = this.children.indexOf(rec);
    if (i >= 0) this.children.splice(i, 1);
  }
}

/**
 * Wraps a GenServer child so that it behaves like an OTP gen_server under a supervisor: when it
 * traps exits and its supervisor sends an exit signal ('shutdown' on shutdown), its `terminate`
 * runs (and is awaited, within the child's shutdown timeout) and it then exits with that reason.
 * Plain-handler children that trap exits get the EXIT message and should stop themselves.
 */
function supervised(b: Behaviour, parent: Pid): Behaviour {
  if (typeof b !== 'object' || b === null) return b;
  const s = b as GenServer;
  let terminated = false;
  const wrapper: GenServer = {
    init: (ctx) => s.init?.call(s, ctx),
    handleCall: (msg, ctx, from) => s.handleCall?.call(s, msg, ctx, from),
    handleCast: (msg, ctx) => s.handleCast?.call(s, msg, ctx),
    handleInfo: async (msg, ctx) => {
      if (!isExitMessage(msg) || !parent.equals(msg.from)) return s.handleInfo?.call(s, msg, ctx);
      terminated = true;
      // A terminate that throws ends the child with that error instead, as in OTP.
      await s.terminate?.call(s, msg.reason, ctx);
      // A handler's throw ends the actor with the thrown value as its exit reason.
      throw msg.reason;
    },
    terminate: (reason, ctx) => {
      if (terminated) return undefined;
      terminated = true;
      return s.terminate?.call(s, reason, ctx);
    },
  };
  return wrapper;
}

function normalizeSpec(spec: ChildSpec, field: string): NormalSpec {
  if (typeof spec !== 'object' || spec === null)
    throw invalid(field, 'must be a child spec object');
  if (typeof spec.id !== 'string' || spec.id === '') {
    throw invalid(`${field}.id`, 'must be a non-empty string');
  }
  if (typeof spec.start !== 'function') throw invalid(`${field}.start`, 'must be a function');
  const restart = spec.restart ?? 'permanent';
  if (!RESTARTS.has(restart)) {
    throw invalid(`${field}.restart`, "must be 'permanent', 'transient' or 'temporary'");
  }
  const type = spec.type ?? 'worker';
  if (!TYPES.has(type)) throw invalid(`${field}.type`, "must be 'worker' or 'supervisor'");
  const shutdown =
    spec.shutdown ?? (type === 'supervisor' ? 'infinity' : DEFAULTS.workerShutdownMs);
  if (
    shutdown !== 'brutal_kill' &&
    shutdown !== 'infinity' &&
    !(typeof shutdown === 'number' && Number.isFinite(shutdown) && shutdown >= 0)
  ) {
    throw invalid(`${field}.shutdown`, "must be milliseconds ≥ 0, 'brutal_kill' or 'infinity'");
  }
  return { id: spec.id, start: spec.start, restart, shutdown, type, options: spec.options };
}

/**
 * An EXIT the runtime delivered: a plain `{type: 'EXIT', ...}` sent as an ordinary message (from
 * any node) must not make a supervisor restart a running child or shut down.
 */
function isExitMessage(m: unknown): m is ExitMessage {
  return isSystemMessage(m) && m.type === 'EXIT' && isPid(m.from);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

function describe(r: unknown): string {
  if (typeof r === 'string') return r;
  const m = (r as { message?: unknown } | null | undefined)?.message;
  return typeof m === 'string' ? m : String(r);
}

function invalid(field: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${what}`, { field });
}

function duplicate(id: string): FoundationError {
  return new FoundationError('FND_ERR_SUPERVISOR', `a child with id "${id}" already exists`, {
    id,
  });
}

function running(id: string, pid: Pid): FoundationError {
  return new FoundationError('FND_ERR_SUPERVISOR', `child "${id}" is running as ${pid}`, {
    id,
    pid: pid.toJSON(),
  });
}

function startFailed(id: string, cause: unknown): FoundationError {
  return new FoundationError(
    'FND_ERR_SUPERVISOR',
    `child "${id}" failed to start: ${describe(cause)}`,
    { id, cause: serializeError(cause) },
    { cause },
  );
}

function notRunning(pid: Pid | undefined): FoundationError {
  return new FoundationError('FND_ERR_NOPROC', `supervisor ${pid ?? ''} is not running`, {
    pid: pid?.toJSON(),
  });
}
