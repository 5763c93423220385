// One actor: a behaviour, a mailbox, links and monitors. Messages are handled one at a time, in
// arrival order; a handler that returns a promise is awaited before the next message. The
// scheduler calls `run` with a budget, so one busy actor cannot hold the event loop.
// Kept small for the million-idle-actors case: ten fields, no mailbox until the first message, no
// context until the first handler runs, and the rarely used state (limits, links, monitors, name,
// trapExits, a pending stop) in one object allocated on first use.
import { FoundationError } from '../errors.js';
import { capture, captured } from '../util/capture.js';
import type { TimerHandle } from '../util/clock.js';
import type {
  ActorContext,
  Behaviour,
  ExitReason,
  GenServer,
  MailboxOptions,
  MessageHandler,
} from './behaviour.js';
import { bindActor, Pid, type PidLike, pidKey } from './pid.js';
import type { Runnable, Scheduler } from './scheduler.js';
import type { ActorSystem } from './system.js';

/** Where the answer of a call from another node goes: to the wire, without a promise. */
export interface ReplySink {
  reply(ok: boolean, value: unknown): void;
}

/**
 * A call waiting in a mailbox (or being handled). `reply` settles it; only the first reply counts,
 * so the actor's answer, its exit and the caller's timeout may race harmlessly. A local call
 * carries the promise its caller waits on (one object per call: no executor, no reply closure);
 * a call from another node carries its ReplySink instead, and makes no promise at all.
 */
export class CallEnvelope {
  /** The caller's promise (local calls; undefined when the call has a ReplySink). */
  readonly promise: Promise<unknown> | undefined;
  private resolve: ((v: unknown) => void) | undefined;
  private reject: ((e: unknown) => void) | undefined;
  private sink: ReplySink | undefined;
  /** The caller's timeout (local calls), cancelled by the reply. */
  timer: TimerHandle | undefined = undefined;

  constructor(
    readonly msg: unknown,
    readonly from: PidLike | undefined,
    sink?: ReplySink,
  ) {
    if (sink !== undefined) {
      this.promise = undefined;
      this.resolve = undefined;
      this.reject = undefined;
      this.sink = sink;
      return;
    }
    this.promise = new Promise(capture);
    this.resolve = captured.resolve;
    this.reject = captured.reject;
    this.sink = undefined;
  }

  reply(ok: boolean, value: unknown): void {
    if (this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
    }
    const sink = this.sink;
    if (sink !== undefined) {
      this.sink = ANSWERED;
      sink.reply(ok, value);
    } else if (ok) this.resolve!(value);
    else this.reject!(value);
  }
}

/** A sink call envelopes switch to once answered: later replies go nowhere. */
const ANSWERED: ReplySink = { reply() {} };

export class CastEnvelope {
  constructor(readonly msg: unknown) {}
}

/**
 * Carries a request context (the service layer's withContext: traceparent + baggage) from the
 * code that sends a message to the handler that runs it. Set by the composition root on the
 * ActorSystem; without it, or outside any context, messages carry nothing.
 */
export interface ContextPropagation {
  /** The current context in wire form, or undefined when there is none (the common case). */
  capture(): unknown;
  /**
   * Runs `fn` inside a context received with a message; none or an invalid one: outside any.
   * `actor`: the actor handling it, named in a span when a tracer records.
   */
  run<T>(ctx: unknown, fn: () => T, actor?: { spanLabel(): string }): T;
  /** Whether the running code is inside some context (one AsyncLocalStorage read). */
  active(): boolean;
}

/** A message (plain, CastEnvelope or CallEnvelope) sent inside a context: handled inside it. */
export class ContextEnvelope {
  constructor(
    readonly msg: unknown,
    readonly ctx: unknown,
  ) {}
}

/** The call a mailbox entry is, if any (a call sent inside a context is wrapped). */
export function callIn(m: unknown): CallEnvelope | undefined {
  if (m instanceof CallEnvelope) return m;
  return m instanceof ContextEnvelope && m.msg instanceof CallEnvelope ? m.msg : undefined;
}

/**
 * A call's answer that is an error for the caller but not a crash of the actor: a handleCall (or
 * plain handler) that returns `new CallRefusal(err)` makes the call reject with `err` and the
 * actor carries on. Built-in services answer bad requests this way, so a caller cannot crash them.
 */
export class CallRefusal {
  constructor(readonly error: Error) {}
}

/**
 * A system message (EXIT, DOWN) waiting in a mailbox: marked, so that the mailbox bound neither
 * counts nor drops it. `node`: the other node whose signal caused it, whose per-node budget is
 * given back when the message is handled (undefined when it arose on this node).
 */
class SystemMessage {
  constructor(
    readonly msg: unknown,
    readonly node: string | undefined,
  ) {}
}

// Lifecycle. STARTING until init is done; BUSY while awaiting an async handler (not runnable
// until it settles); DEAD once exited.
const STARTING = 0;
const RUNNING = 1;
const BUSY = 2;
const DEAD = 3;

/** A drained mailbox array longer than this is let go rather than kept for the next messages. */
const KEEP_MAILBOX = 16;
/** Consumed slots at the front of a full, never-drained mailbox before it is compacted. */
const COMPACT_AFTER = 1024;

const NO_MESSAGES: readonly unknown[] = Object.freeze([]);

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

/** The state few actors need, allocated on first use. */
class Extras {
  limits: MailboxOptions | undefined = undefined;
  stopReason: ExitReason | undefined = undefined;
  /** Linked pids, by pidKey. */
  links: Map<string, PidLike> | undefined = undefined;
  /** Monitors watching this actor: ref → the watcher's node name. */
  monitors: Map<string, string> | undefined = undefined;
  /** Refs of the monitors this actor holds on others (dropped when it exits). */
  watching: Set<string> | undefined = undefined;
  name: string | undefined = undefined;
  trapExits = false;
  /** System messages from other nodes waiting in the mailbox, per node (see enqueueSystem). */
  remoteSystem: Map<string, number> | undefined = undefined;
  /** System messages waiting in the mailbox, from anywhere (the bound does not count them). */
  systemWaiting = 0;
  /** While BUSY: the call whose handler's promise is awaited (its reply is owed). */
  busyCall: CallEnvelope | undefined = undefined;
  /** The reactions to a handler's promise, made once per actor rather than once per message. */
  onSettled: ((value: unknown) => void) | undefined = undefined;
  onFailed: ((err: unknown) => void) | undefined = undefined;
}

export class Actor implements Runnable {
  queued = false;
  readonly pid: Pid;
  /** Messages are mailbox[head..tail); undefined until the first message and after a long drain. */
  private mailbox: unknown[] | undefined = undefined;
  private head = 0;
  private tail = 0;
  private state = STARTING;
  private ctxCache: ActorContext | undefined = undefined;
  private ext: Extras | undefined = undefined;
  private readonly behaviour: Behaviour;

  constructor(
    readonly system: ActorSystem,
    id: number,
    behaviour: Behaviour,
    limits: MailboxOptions | undefined,
  ) {
    this.pid = new Pid(system.nodeName, id);
    this.behaviour = behaviour;
    if (limits) this.extras().limits = limits;
    bindActor(this.pid, this);
  }

  private extras(): Extras {
    if (this.ext === undefined) this.ext = new Extras();
    return this.ext;
  }

  get id(): number {
    return this.pid.id;
  }

  get handler(): MessageHandler | undefined {
    const b = this.behaviour;
    return typeof b === 'function' ? b : undefined;
  }

  get server(): GenServer | undefined {
    const b = this.behaviour;
    return typeof b === 'function' ? undefined : b;
  }

  /** Linked pids, by pidKey. */
  get links(): Map<string, PidLike> | undefined {
    return this.ext?.links;
  }

  set links(v: Map<string, PidLike> | undefined) {
    this.extras().links = v;
  }

  /** Monitors watching this actor: ref → the watcher's node name. */
  get monitors(): Map<string, string> | undefined {
    return this.ext?.monitors;
  }

  set monitors(v: Map<string, string> | undefined) {
    this.extras().monitors = v;
  }

  /** Refs of the monitors this actor holds on others. */
  get watching(): Set<string> | undefined {
    return this.ext?.watching;
  }

  set watching(v: Set<string> | undefined) {
    this.extras().watching = v;
  }

  get name(): string | undefined {
    return this.ext?.name;
  }

  set name(v: string | undefined) {
    if (v !== undefined || this.ext) this.extras().name = v;
  }

  get trapExits(): boolean {
    return this.ext?.trapExits ?? false;
  }

  set trapExits(v: boolean) {
    if (v || this.ext) this.extras().trapExits = v;
  }

  get ctx(): ActorContext {
    if (this.ctxCache === undefined) this.ctxCache = this.system.contextFor(this);
    return this.ctxCache;
  }

  get alive(): boolean {
    return this.state !== DEAD;
  }

  /** Has finished init (a failed or never finished init means terminate is not called). */
  get started(): boolean {
    return this.state === RUNNING || this.state === BUSY;
  }

  /** Messages waiting. */
  get depth(): number {
    return this.tail - this.head;
  }

  /**
   * Starts the actor: runs `init` when the behaviour has one. Resolves when it is running, rejects
   * (after the actor exited with the error) when init fails.
   */
  start(): Promise<void> | undefined {
    const b = this.behaviour;
    const init = typeof b === 'function' ? undefined : b.init;
    if (!init) {
      this.state = RUNNING;
      return undefined;
    }
    let result: unknown;
    try {
      result = init.call(b, this.ctx);
    } catch (err) {
      this.system.exitActor(this, err as Error);
      return Promise.reject(err);
    }
    if (this.state === DEAD) return undefined; // init made it exit (e.g. a link to a dead pid)
    if (!isThenable(result)) {
      this.state = RUNNING;
      this.afterInit();
      return undefined;
    }
    return Promise.resolve(result).then(
      () => {
        if (this.state === DEAD) return;
        this.state = RUNNING;
        this.afterInit();
      },
      (err: Error) => {
        this.system.exitActor(this, err);
        throw err;
      },
    );
  }

  /**
   * An init that called ctx.stop ends the actor here; otherwise messages that came during init (an
   * async one, or sent to itself) run now.
   */
  private afterInit(): void {
    const stop = this.ext?.stopReason;
    if (stop !== undefined) this.system.exitActor(this, stop);
    else if (this.tail > this.head) this.system.scheduler.schedule(this);
  }

  /** Puts a message in the mailbox, applying the overflow policy. Throws FND_ERR_MAILBOX_FULL. */
  enqueue(msg: unknown): void {
    if (this.state === DEAD) return;
    const ext = this.ext;
    const limits = ext?.limits;
    if (limits !== undefined && this.tail - this.head - ext!.systemWaiting >= limits.max) {
      if (limits.overflow === 'reject') {
        throw new FoundationError(
          'FND_ERR_MAILBOX_FULL',
          `mailbox of ${this.pid} holds ${this.depth} messages`,
          {
            pid: this.pid.toJSON(),
            max: limits.max,
          },
        );
      }
      if (limits.overflow === 'drop-newest') {
        this.system.dropped++;
        callIn(msg)?.reply(false, mailboxDropped(this));
        return;
      }
      // drop-oldest: the oldest ordinary message (system messages ahead of it move up one).
      const mb = this.mailbox!;
      let i = this.head;
      while (mb[i] instanceof SystemMessage) i++;
      const oldest = mb[i];
      mb.copyWithin(this.head + 1, this.head, i);
      mb[this.head++] = undefined;
      this.system.dropped++;
      callIn(oldest)?.reply(false, mailboxDropped(this));
    }
    this.push(msg);
  }

  /**
   * A system message (EXIT, DOWN): never refused by the mailbox bound, since supervision depends
   * on it arriving. `node` is set when a signal from another node caused it: each node may have at
   * most `system.signalBudget` such messages waiting in this mailbox; beyond that its signals are
   * dropped (returns false) until the actor catches up, and no other sender is affected.
   */
  enqueueSystem(msg: unknown, node?: string): boolean {
    if (this.state === DEAD) return false;
    const ext = this.extras();
    if (node !== undefined) {
      if (ext.remoteSystem === undefined) ext.remoteSystem = new Map();
      const waiting = ext.remoteSystem.get(node) ?? 0;
      if (waiting >= this.system.signalBudget) return false;
      ext.remoteSystem.set(node, waiting + 1);
    }
    ext.systemWaiting++;
    this.push(new SystemMessage(msg, node));
    return true;
  }

  /** System messages from `node` waiting in the mailbox (for stats and tests). */
  remoteSystemWaiting(node: string): number {
    return this.ext?.remoteSystem?.get(node) ?? 0;
  }

  /** Takes a system message out of the counts (and `m.node`'s budget); returns the message. */
  private release(m: SystemMessage): unknown {
    const ext = this.ext!;
    ext.systemWaiting--;
    if (m.node !== undefined) {
      const counts = ext.remoteSystem!;
      const left = counts.get(m.node)! - 1;
      if (left === 0) counts.delete(m.node);
      else counts.set(m.node, left);
    }
    return m.msg;
  }

  private push(msg: unknown): void {
    const mb = this.mailbox;
    if (mb === undefined) this.mailbox = [msg];
    else {
      // Full: rather than growing, reuse the consumed front when it is at least half the array.
      // Only a mailbox that never drains gets here (a drained one starts again at 0), and the
      // copy is paid for by the messages consumed since the last one.
      if (this.tail === mb.length && this.head >= COMPACT_AFTER && this.head * 2 >= this.tail)
        this.compact(mb);
      mb[this.tail] = msg;
    }
    this.tail++;
    if (this.state === RUNNING && !this.queued) this.system.scheduler.schedule(this);
  }

  run(budget: number, scheduler: Scheduler): boolean {
    // Messages without a context run outside any, whatever context woke the scheduler.
    const prop = this.system.propagation;
    if (prop?.active()) return prop.run(undefined, () => this.run(budget, scheduler));
    let n = 0;
    while (this.head < this.tail) {
      if (this.state !== RUNNING) return false;
      const stop = this.ext?.stopReason;
      if (stop !== undefined) {
        // ctx.stop during the previous message: what is still in the mailbox is not handled
        // (pending calls among it are rejected by the exit).
        this.system.exitActor(this, stop);
        return false;
      }
      if (n >= budget) return true;
      n++;
      const mb = this.mailbox!;
      const msg = mb[this.head];
      mb[this.head++] = undefined;
      if (msg instanceof ContextEnvelope) {
        prop!.run(msg.ctx, () => this.handle(msg.msg), this);
      } else this.handle(msg instanceof SystemMessage ? this.release(msg) : msg);
      if (scheduler.tick()) return this.state === RUNNING && this.head < this.tail;
    }
    if (this.state === DEAD) return false;
    // Drained: reuse a small array from the start, let a big one go.
    this.head = this.tail = 0;
    if (this.mailbox !== undefined && this.mailbox.length > KEEP_MAILBOX) this.mailbox = undefined;
    const stop = this.ext?.stopReason;
    if (stop !== undefined && this.state === RUNNING) this.system.exitActor(this, stop);
    return false;
  }

  /**
   * A mailbox that never drains (the producer keeps ahead) would otherwise grow with every message
   * ever received: the waiting messages move to the front.
   */
  private compact(mb: unknown[]): void {
    const depth = this.tail - this.head;
    mb.copyWithin(0, this.head, this.tail);
    mb.fill(undefined, depth, this.tail);
    this.head = 0;
    this.tail = depth;
  }

  /** What a span of this actor's message names it by: its name, else its pid. */
  spanLabel(): string {
    return this.ext?.name ?? this.pid.toString();
  }

  private handle(msg: unknown): void {
    const b = this.behaviour;
    let result: unknown;
    let call: CallEnvelope | undefined;
    try {
      if (typeof b === 'function') {
        if (msg instanceof CallEnvelope) {
          call = msg;
          result = b(msg.msg, this.ctx);
        } else result = b(msg instanceof CastEnvelope ? msg.msg : msg, this.ctx);
      } else if (msg instanceof CallEnvelope) {
        call = msg;
        result = b.handleCall ? b.handleCall(msg.msg, this.ctx, msg.from) : undefined;
      } else if (msg instanceof CastEnvelope) {
        result = b.handleCast?.(msg.msg, this.ctx);
      } else {
        result = b.handleInfo?.(msg, this.ctx);
      }
    } catch (err) {
      call?.reply(false, crashed(this, err));
      this.system.exitActor(this, err as Error);
      return;
    }
    if (this.state === DEAD) {
      // The handler made this actor exit (a link to a dead pid, an exit signal to a linked
      // actor): its exit did not see this call, and no answer it returns may arrive from the dead.
      call?.reply(false, exitedDuringCall(this));
      if (isThenable(result)) Promise.resolve(result).then(undefined, ignore);
      return;
    }
    if (isThenable(result)) {
      this.awaitResult(result, call);
      return;
    }
    if (result instanceof CallRefusal) call?.reply(false, result.error);
    else call?.reply(true, result);
  }

  /**
   * The handler returned a promise: the actor is BUSY (takes messages, runs none) until it
   * settles. Then the call is answered and the actor goes on with its mailbox right away, in the
   * same microtask, while the scheduler's time slice lasts (Scheduler.resume).
   */
  private awaitResult(result: PromiseLike<unknown>, call: CallEnvelope | undefined): void {
    this.state = BUSY;
    const ext = this.extras();
    ext.busyCall = call;
    if (ext.onSettled === undefined) {
      ext.onSettled = (value) => this.settled(value);
      ext.onFailed = (err) => this.failed(err);
    }
    Promise.resolve(result).then(ext.onSettled, ext.onFailed);
  }

  private settled(value: unknown): void {
    if (this.state === DEAD) return; // killed meanwhile: the exit answered the call
    const ext = this.ext!;
    const call = ext.busyCall;
    if (call !== undefined) {
      ext.busyCall = undefined;
      if (value instanceof CallRefusal) call.reply(false, value.error);
      else call.reply(true, value);
    }
    this.state = RUNNING;
    const stop = ext.stopReason;
    if (stop !== undefined) this.system.exitActor(this, stop);
    else if (this.tail > this.head) this.system.scheduler.resume(this);
  }

  private failed(err: unknown): void {
    if (this.state === DEAD) return;
    const ext = this.ext!;
    const call = ext.busyCall;
    if (call !== undefined) {
      ext.busyCall = undefined;
      call.reply(false, crashed(this, err));
    }
    this.system.exitActor(this, err as Error);
  }

  /** ctx.stop: ends after the current message; what is left in the mailbox is not handled. */
  requestStop(reason: ExitReason): void {
    this.extras().stopReason = reason;
    if (this.state === RUNNING && this.tail === this.head) {
      queueMicrotask(() => {
        if (this.state === RUNNING && this.tail === this.head) this.system.exitActor(this, reason);
      });
    }
  }

  /**
   * Marks the actor dead and returns what was left in its mailbox, led by the call its async
   * handler was still working on (killed or stopped meanwhile: that caller is owed an answer too).
   * Called once, by the system, which then fails those calls and notifies links and monitors.
   */
  die(): readonly unknown[] {
    this.state = DEAD;
    bindActor(this.pid, undefined);
    const mb = this.mailbox;
    const busy = this.ext?.busyCall;
    let rest =
      mb === undefined || this.head === this.tail ? NO_MESSAGES : mb.slice(this.head, this.tail);
    if (busy !== undefined) {
      this.ext!.busyCall = undefined;
      rest = [busy, ...rest];
    }
    this.mailbox = undefined;
    this.head = this.tail = 0;
    return rest;
  }

  addLink(p: PidLike): void {
    const ext = this.extras();
    if (!ext.links) ext.links = new Map();
    ext.links.set(pidKey(p), p);
  }

  removeLink(p: PidLike): boolean {
    return this.ext?.links?.delete(pidKey(p)) ?? false;
  }
}

const ignore = (): void => {};

function exitedDuringCall(actor: Actor): FoundationError {
  return new FoundationError(
    'FND_ERR_ACTOR_EXITED',
    `${actor.pid} exited while handling the call, before replying`,
    { pid: actor.pid.toJSON() },
  );
}

function crashed(actor: Actor, err: unknown): FoundationError {
  return new FoundationError(
    'FND_ERR_ACTOR_EXITED',
    `${actor.pid} crashed: ${(err as Error)?.message ?? err}`,
    {
      pid: actor.pid.toJSON(),
    },
  );
}

function mailboxDropped(actor: Actor): FoundationError {
  return new FoundationError(
    'FND_ERR_MAILBOX_FULL',
    `call dropped by the full mailbox of ${actor.pid}`,
    {
      pid: actor.pid.toJSON(),
    },
  );
}
