// The actor system of one node: spawns actors, routes messages, calls and exit/monitor signals to
// local actors directly and to remote ones over node-level messaging (the wire half, encoding and
// the one inbound decoder, is remote.ts), and turns a node being declared down into
// `noconnection` for every monitor and link that crossed to it.
import { FoundationError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import {
  Actor,
  CallEnvelope,
  CastEnvelope,
  ContextEnvelope,
  type ContextPropagation,
  callIn,
  type ReplySink,
} from './actor.js';
import {
  type ActorContext,
  type Behaviour,
  type CallMessage,
  type CallOptions,
  type CallResult,
  type CastMessage,
  type DownMessage,
  type ExitMessage,
  type ExitReason,
  type HandlerProtocol,
  type InfoMessage,
  type LooseGenServer,
  type MessageHandler,
  markSystemMessage,
  type ProtocolOf,
  type SpawnOptions,
  type Target,
} from './behaviour.js';
import { boundActor, isPid, Pid, type PidLike, pidKey } from './pid.js';
import {
  ACTOR_KINDS,
  DEFAULT_SIGNAL_BUDGET,
  encode,
  monitorRef,
  type RefusedCounts,
  RemoteEndpoint,
  type RemoteRef,
  type RemoteRouter,
  reasonOut,
} from './remote.js';
import { Scheduler } from './scheduler.js';

export { ACTOR_KINDS, type RemoteRouter };

type Watcher = Actor | ((down: DownMessage) => void);

interface OwnMonitor {
  target: PidLike;
  watcher: Watcher;
}

export interface RuntimeOptions {
  nodeName: string;
  clock: Clock;
  log: Logger;
  remote?: RemoteRouter;
  scheduler?: Scheduler;
  /** Default call timeout in ms. */
  callTimeoutMs?: number;
  /**
   * Most system messages (EXIT, DOWN) caused by one other node that may wait in one actor's
   * mailbox; that node's further signals to the actor are dropped (and counted) until it catches
   * up. Default 1024 (DEFAULT_SIGNAL_BUDGET). See docs/actors.md, "Trust between nodes".
   */
  signalBudget?: number;
}

/** Spawn options when none are given (one shared object instead of one per spawn). */
const NO_OPTIONS: SpawnOptions = Object.freeze({});

const PAGE_BITS = 10;
const PAGE = 1 << PAGE_BITS;

/**
 * Live local actors by id. Ids only grow, so they index pages of 1024 slots held in an array
 * (`id / 1024` → page): adding is a store where a Map would rehash its way to a million entries,
 * and each actor costs 8 bytes here. A page is released once every id in it has been issued and
 * its actors have all exited, so memory follows the live actors, not the ids ever issued.
 */
class ActorTable {
  private pages: Array<Array<Actor | undefined> | undefined> = [];
  private live: number[] = [];
  private maxId = 0;
  size = 0;

  add(a: Actor): void {
    const id = a.id;
    const p = Math.floor(id / PAGE);
    let page = this.pages[p];
    if (page === undefined) {
      while (this.pages.length < p) {
        this.pages.push(undefined);
        this.live.push(0);
      }
      page = new Array<Actor | undefined>(PAGE).fill(undefined);
      this.pages[p] = page;
      this.live[p] = 0;
    }
    page[id & (PAGE - 1)] = a;
    this.live[p]!++;
    this.size++;
    if (id > this.maxId) this.maxId = id;
  }

  /** The actor with this id; undefined for anything else (ids come off the wire unchecked). */
  get(id: number): Actor | undefined {
    const page = this.pages[Math.floor(id / PAGE)];
    if (page === undefined) return undefined;
    const a = page[id & (PAGE - 1)];
    return a !== undefined && a.pid.id === id ? a : undefined;
  }

  delete(a: Actor): void {
    const id = a.id;
    const p = Math.floor(id / PAGE);
    const page = this.pages[p];
    if (page === undefined || page[id & (PAGE - 1)] !== a) return;
    page[id & (PAGE - 1)] = undefined;
    this.size--;
    if (--this.live[p]! === 0 && (p + 1) * PAGE - 1 <= this.maxId) this.pages[p] = undefined;
  }

  /** Every live actor, in id (spawn) order. */
  forEach(fn: (a: Actor) => void): void {
    for (const page of this.pages) {
      if (page === undefined) continue;
      for (const a of page) if (a !== undefined) fn(a);
    }
  }

  /** A snapshot, for loops that make actors exit. */
  toArray(): Actor[] {
    const out: Actor[] = [];
    this.forEach((a) => {
      out.push(a);
    });
    return out;
  }
}

export class ActorSystem {
  readonly nodeName: string;
  readonly scheduler: Scheduler;
  private readonly actors = new ActorTable();
  private readonly names = new Map<string, Actor>();
  private readonly ownMonitors = new Map<string, OwnMonitor>();
  /** Local actors that have links to pids on other nodes. */
  private readonly remoteLinked = new Set<Actor>();
  private nextId = 1;
  /** Messages dropped by full mailboxes (drop-oldest / drop-newest). */
  dropped = 0;
  /** Per node and actor, system messages that node's signals may have waiting (see RuntimeOptions). */
  readonly signalBudget: number;
  private readonly endpoint: RemoteEndpoint;
  /** Actors that exited with a reason other than normal/shutdown. */
  crashes = 0;
  private readonly callTimeoutMs: number;
  /** The pid exit signals sent from outside any actor come from (`node.exit`). */
  readonly nodePid: Pid;
  /**
   * Request-context propagation, when the composition root provides it: send, cast, call (local
   * and remote) carry the sender's context to the handler. Undefined: messages carry none.
   */
  propagation: ContextPropagation | undefined = undefined;
  /** Told about every actor exit (supervision, registries, stats). */
  private readonly exitHooks: Array<(pid: Pid, reason: ExitReason) => void> = [];
  /** Exit signals owed to local linked actors, sent by drainLinkExits: [from, to, reason]. */
  private readonly linkExits: Array<[Pid, PidLike, ExitReason]> = [];
  private drainingLinkExits = false;

  /** The clock this system's timers run on (supervisors use it for restart windows and shutdowns). */
  get clock(): Clock {
    return this.opts.clock;
  }

  get log(): Logger {
    return this.opts.log;
  }

  constructor(private readonly opts: RuntimeOptions) {
    this.nodeName = opts.nodeName;
    this.scheduler = opts.scheduler ?? new Scheduler();
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.nodePid = new Pid(opts.nodeName, 0);
    const budget = opts.signalBudget ?? DEFAULT_SIGNAL_BUDGET;
    if (!Number.isSafeInteger(budget) || budget < 1) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'option "signalBudget": must be a positive integer',
        { field: 'signalBudget' },
      );
    }
    this.signalBudget = budget;
    this.endpoint = new RemoteEndpoint(this, opts.clock, opts.log);
  }

  /** Inbound actor messages from other nodes refused since start (malformed, forged, overflow). */
  get refused(): Readonly<RefusedCounts> {
    return this.endpoint.refused;
  }

  /** Live actors on this node. */
  get size(): number {
    return this.actors.size;
  }

  /** Monitors this node's actors and callbacks currently hold (on local or remote actors). */
  get monitorCount(): number {
    return this.ownMonitors.size;
  }

  /** Total messages waiting in all mailboxes. */
  mailboxDepth(): number {
    let n = 0;
    this.actors.forEach((a) => {
      n += a.depth;
    });
    return n;
  }

  onExit(hook: (pid: Pid, reason: ExitReason) => void): void {
    this.exitHooks.push(hook);
  }

  isAlive(pid: PidLike): boolean {
    return pid.node === this.nodeName && (this.actors.get(pid.id)?.alive ?? false);
  }

  // ---- spawning ----

  private create(behaviour: Behaviour, opts: SpawnOptions): Actor {
    if (typeof behaviour !== 'function' && (typeof behaviour !== 'object' || behaviour === null)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'behaviour must be a function or a GenServer object',
        {
          field: 'behaviour',
        },
      );
    }
    if (opts.mailbox && (!Number.isInteger(opts.mailbox.max) || opts.mailbox.max < 1)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'option "mailbox.max": must be a positive integer',
        {
          field: 'mailbox.max',
        },
      );
    }
    if (opts.name !== undefined && this.names.has(opts.name)) {
      throw new FoundationError(
        'FND_ERR_NAME_TAKEN',
        `name "${opts.name}" is registered to ${this.names.get(opts.name)!.pid}`,
        {
          name: opts.name,
        },
      );
    }
    const actor = new Actor(this, this.nextId++, behaviour, opts.mailbox);
    if (opts.trapExits) actor.trapExits = true;
    this.actors.add(actor);
    if (opts.name !== undefined) {
      actor.name = opts.name;
      this.names.set(opts.name, actor);
    }
    if (opts.link) this.link(actor.pid, opts.link);
    return actor;
  }

  /**
   * Spawns an actor and returns its pid at once; `init` (if any) runs before its first message.
   * The pid carries the protocol inferred from the behaviour (see `ProtocolOf`).
   */
  spawn<M = unknown, R = unknown>(
    behaviour: MessageHandler<M, R>,
    opts?: SpawnOptions,
  ): Pid<HandlerProtocol<M, R>>;
  spawn<B extends LooseGenServer>(
    behaviour: B & ThisType<B>,
    opts?: SpawnOptions,
  ): Pid<ProtocolOf<B>>;
  spawn(behaviour: Behaviour, opts?: SpawnOptions): Pid;
  spawn(behaviour: Behaviour, opts: SpawnOptions = NO_OPTIONS): Pid {
    const actor = this.create(behaviour, opts);
    actor.start()?.catch(() => {}); // a failing init ends the actor; links and monitors hear of it
    return actor.pid;
  }

  /** Spawns and waits for `init`: resolves with the pid, or rejects with init's error. */
  spawnAsync<M = unknown, R = unknown>(
    behaviour: MessageHandler<M, R>,
    opts?: SpawnOptions,
  ): Promise<Pid<HandlerProtocol<M, R>>>;
  spawnAsync<B extends LooseGenServer>(
    behaviour: B & ThisType<B>,
    opts?: SpawnOptions,
  ): Promise<Pid<ProtocolOf<B>>>;
  spawnAsync(behaviour: Behaviour, opts?: SpawnOptions): Promise<Pid>;
  async spawnAsync(behaviour: Behaviour, opts: SpawnOptions = NO_OPTIONS): Promise<Pid> {
    const actor = this.create(behaviour, opts);
    await actor.start();
    return actor.pid;
  }

  // ---- naming ----

  register(name: string, pid: PidLike): void {
    const actor = pid.node === this.nodeName ? this.actors.get(pid.id) : undefined;
    if (!actor?.alive)
      throw new FoundationError('FND_ERR_NOPROC', `${pidString(pid)} is not a live local actor`, {
        pid,
      });
    const holder = this.names.get(name);
    if (holder && holder !== actor) {
      throw new FoundationError(
        'FND_ERR_NAME_TAKEN',
        `name "${name}" is registered to ${holder.pid}`,
        { name },
      );
    }
    if (actor.name !== undefined && actor.name !== name) this.names.delete(actor.name);
    actor.name = name;
    this.names.set(name, actor);
  }

  unregister(name: string): void {
    const a = this.names.get(name);
    if (a) {
      this.names.delete(name);
      a.name = undefined;
    }
  }

  whereis(name: string): Pid | undefined {
    return this.names.get(name)?.pid;
  }

  registered(): string[] {
    return [...this.names.keys()];
  }

  // ---- messaging ----

  private local(target: Target): Actor | undefined {
    if (target instanceof Pid) {
      // The pid an actor got from spawn or ctx.self leads straight to it while it lives.
      const a = boundActor(target) as Actor | undefined;
      if (a !== undefined && a.system === this) return a;
    }
    if (typeof target === 'string') return this.names.get(target);
    if ('id' in target)
      return target.node === this.nodeName ? this.actors.get(target.id) : undefined;
    return target.node === this.nodeName ? this.names.get(target.name) : undefined;
  }

  private isRemote(target: Target): target is PidLike | { name: string; node: string } {
    return typeof target !== 'string' && target.node !== this.nodeName;
  }

  private remoteRef(target: PidLike | { name: string; node: string }): RemoteRef {
    return 'id' in target ? target.id : target.name;
  }

  private router(): RemoteRouter {
    if (!this.opts.remote)
      throw new FoundationError('FND_ERR_UNKNOWN_NODE', 'this actor system has no remote nodes');
    return this.opts.remote;
  }

  /**
   * At-most-once, ordered per sender→receiver pair. Local: into the mailbox now (FND_ERR_MAILBOX_FULL
   * from a full 'reject' mailbox); to a dead or unknown local pid: dropped, like Erlang. Remote: sent;
   * a refusal over there is logged (use sendAsync to learn about it).
   */
  send<To extends Target>(target: To, msg: InfoMessage<To>): void;
  send(target: Target, msg: unknown): void {
    this.sendFrom(target, msg, 0);
  }

  /** `send` on behalf of local actor `lane` (0: the node itself): ordered in that lane. */
  private sendFrom(target: Target, msg: unknown, lane: number): void {
    const ctx = this.propagation?.capture();
    if (target instanceof Pid) {
      const a = boundActor(target) as Actor | undefined;
      if (a !== undefined && a.system === this) {
        a.enqueue(ctx === undefined ? msg : new ContextEnvelope(msg, ctx));
        return;
      }
    }
    if (this.isRemote(target)) {
      try {
        this.router().send(
          target.node,
          ACTOR_KINDS.send,
          encode.message(this.remoteRef(target), msg, ctx),
          lane,
        );
      } catch (err) {
        this.opts.log.debug({ to: target, err: (err as Error).message }, 'remote send dropped');
      }
      return;
    }
    this.local(target)?.enqueue(ctx === undefined ? msg : new ContextEnvelope(msg, ctx));
  }

  /** Like send, but resolves once the message is in the mailbox, or rejects with the coded reason. */
  sendAsync<To extends Target>(target: To, msg: InfoMessage<To>, timeoutMs?: number): Promise<void>;
  sendAsync(target: Target, msg: unknown, timeoutMs = this.callTimeoutMs): Promise<void> {
    return this.sendAsyncFrom(target, msg, 0, timeoutMs);
  }

  /** `sendAsync` on behalf of local actor `lane` (0: the node itself). */
  private async sendAsyncFrom(
    target: Target,
    msg: unknown,
    lane: number,
    timeoutMs = this.callTimeoutMs,
  ): Promise<void> {
    const ctx = this.propagation?.capture();
    if (this.isRemote(target)) {
      await this.router().request(
        target.node,
        ACTOR_KINDS.deliver,
        encode.message(this.remoteRef(target), msg, ctx),
        timeoutMs,
        lane,
      );
      return;
    }
    const a = this.local(target);
    if (!a?.alive) throw noproc(target);
    a.enqueue(ctx === undefined ? msg : new ContextEnvelope(msg, ctx));
  }

  cast<To extends Target>(target: To, msg: CastMessage<To>): void;
  cast(target: Target, msg: unknown): void {
    this.castFrom(target, msg, 0);
  }

  /** `cast` on behalf of local actor `lane` (0: the node itself). */
  private castFrom(target: Target, msg: unknown, lane: number): void {
    const ctx = this.propagation?.capture();
    if (this.isRemote(target)) {
      try {
        this.router().send(
          target.node,
          ACTOR_KINDS.cast,
          encode.message(this.remoteRef(target), msg, ctx),
          lane,
        );
      } catch (err) {
        this.opts.log.debug({ to: target, err: (err as Error).message }, 'remote cast dropped');
      }
      return;
    }
    const cast = new CastEnvelope(msg);
    this.local(target)?.enqueue(ctx === undefined ? cast : new ContextEnvelope(cast, ctx));
  }

  /**
   * Sends a call and resolves with the reply. Rejects with FND_ERR_CALL_TIMEOUT, FND_ERR_NOPROC (no
   * such actor), FND_ERR_ACTOR_EXITED (it exited before replying), FND_ERR_NODE_DOWN,
   * FND_ERR_MAILBOX_FULL. A typed target (a pid from a typed spawn, an `ActorRef<P>`) checks `msg`
   * and types the reply; `call<R>` asserts the reply type of an untyped one.
   */
  call<R = never, To extends Target = Target>(
    target: To,
    msg: CallMessage<To>,
    opts?: CallOptions,
    from?: PidLike,
  ): Promise<CallResult<R, To>>;
  call(target: Target, msg: unknown, opts?: CallOptions, from?: PidLike): Promise<unknown> {
    const timeout = opts?.timeout ?? this.callTimeoutMs;
    const ctx = this.propagation?.capture();
    if (this.isRemote(target)) {
      try {
        return this.router().request(
          target.node,
          ACTOR_KINDS.call,
          encode.call(this.remoteRef(target), msg, from, ctx),
          timeout,
          from !== undefined && from.node === this.nodeName ? from.id : 0,
          // Made only if the call times out (no wrapper promise per call to translate the code).
          remoteCallTimeout,
          target,
        );
      } catch (err) {
        // An unknown or unreachable node: a rejected promise like every other failure of a call.
        return Promise.reject(err);
      }
    }
    const actor = this.local(target);
    if (!actor?.alive) return Promise.reject(noproc(target));
    const call = new CallEnvelope(msg, from);
    // Settling twice is harmless (the first answer wins), so the timer needs no flag of its own.
    call.timer = this.opts.clock.setTimeout(
      () => call.reply(false, callTimeout(target, timeout)),
      timeout,
    );
    try {
      actor.enqueue(ctx === undefined ? call : new ContextEnvelope(call, ctx));
    } catch (err) {
      call.reply(false, err);
    }
    return call.promise!;
  }

  // ---- links, monitors, exits ----

  /** Links two pids (at least one local). Linking to a pid that does not exist sends `noproc` back. */
  link(a: PidLike, b: PidLike): void {
    const [mine, other] = a.node === this.nodeName ? [a, b] : [b, a];
    if (mine.node !== this.nodeName) {
      throw new FoundationError('FND_ERR_INVALID_OPTION', 'link needs at least one local pid', {
        field: 'pid',
      });
    }
    const actor = this.actors.get(mine.id);
    if (!actor?.alive) {
      this.exitSignal(mine, other, 'noproc', false);
      return;
    }
    if (other.node !== this.nodeName) {
      actor.addLink(other);
      this.remoteLinked.add(actor);
      try {
        this.router().send(other.node, ACTOR_KINDS.signal, encode.link(mine, other.id), mine.id);
      } catch {
        // Its node is unreachable: the link breaks at once, as it would on that node going down.
        queueMicrotask(() => this.exitSignal(other, mine, 'noconnection'));
      }
      return;
    }
    const peer = this.actors.get(other.id);
    if (!peer?.alive) {
      this.exitSignal(other, mine, 'noproc', false);
      return;
    }
    actor.addLink(other);
    peer.addLink(mine);
  }

  unlink(a: PidLike, b: PidLike): void {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      if (x.node !== this.nodeName) continue;
      this.actors.get(x.id)?.removeLink(y);
      if (y.node !== this.nodeName) this.sendSignal(y.node, encode.unlink(x, y.id), x.id);
    }
  }

  /** Monitors `target`; `watcher` (an actor's pid, or a callback) gets one DOWN. Returns the ref. */
  monitor(target: PidLike, watcher: PidLike | ((down: DownMessage) => void)): string {
    // Random, not a counter: a ref names the monitor to other nodes, so it must not be guessable.
    const ref = monitorRef();
    const w: Watcher | undefined =
      typeof watcher === 'function'
        ? watcher
        : watcher.node === this.nodeName
          ? this.actors.get(watcher.id)
          : undefined;
    if (!w) throw noproc(watcher as PidLike);
    this.ownMonitors.set(ref, { target, watcher: w });
    if (typeof w !== 'function') {
      if (!w.watching) w.watching = new Set();
      w.watching.add(ref);
    }
    if (target.node !== this.nodeName) {
      try {
        this.router().send(
          target.node,
          ACTOR_KINDS.signal,
          encode.monitor(ref, target.id),
          typeof w === 'function' ? 0 : w.pid.id,
        );
      } catch {
        queueMicrotask(() => this.fireDown(ref, target, 'noconnection'));
      }
      return ref;
    }
    const actor = this.actors.get(target.id);
    if (!actor?.alive) queueMicrotask(() => this.fireDown(ref, target, 'noproc'));
    else {
      if (!actor.monitors) actor.monitors = new Map();
      actor.monitors.set(ref, this.nodeName);
    }
    return ref;
  }

  demonitor(ref: string): void {
    const m = this.ownMonitors.get(ref);
    if (!m) return;
    this.ownMonitors.delete(ref);
    if (typeof m.watcher !== 'function') m.watcher.watching?.delete(ref);
    if (m.target.node === this.nodeName) this.actors.get(m.target.id)?.monitors?.delete(ref);
    else
      this.sendSignal(
        m.target.node,
        encode.demonitor(ref, m.target.id),
        typeof m.watcher === 'function' ? 0 : m.watcher.pid.id,
      );
  }

  /** Sends an exit signal from `from` to `to`. 'kill' cannot be trapped. */
  exit(to: PidLike, reason: ExitReason, from: PidLike = this.nodePid): void {
    this.exitSignal(from, to, reason, false);
  }

  /**
   * Internal (remote.ts): an exit signal that node `source` sent on behalf of its pid `from`. The
   * EXIT it may become counts against `source`'s signal budget on the target actor.
   */
  signalExit(
    from: PidLike,
    to: PidLike,
    reason: ExitReason,
    viaLink: boolean,
    source: string,
  ): void {
    this.exitSignal(from, to, reason, viaLink, source);
  }

  /**
   * An exit signal. `viaLink`: sent because a linked actor exited; such a signal only counts while
   * the link still exists (a signal that lost a race with an unlink or a node-down is ignored).
   * `source`: the other node whose signal this is (undefined when it arose on this node).
   */
  private exitSignal(
    from: PidLike,
    to: PidLike,
    reason: ExitReason,
    viaLink = true,
    source?: string,
  ): void {
    if (to.node !== this.nodeName) {
      this.sendSignal(
        to.node,
        encode.exit(from, to.id, reason, viaLink),
        from.node === this.nodeName ? from.id : 0,
      );
      return;
    }
    const actor = this.actors.get(to.id);
    if (!actor?.alive) return;
    if (reason === 'kill' && !viaLink) {
      this.exitActor(actor, 'killed');
      return;
    }
    // Only a signal that travelled over the link ends it: an explicit exit(pid, reason) from a
    // linked actor leaves the link in place (as in Erlang), so its own exit still arrives later.
    if (viaLink && !actor.removeLink(from)) return;
    if (actor.trapExits) {
      const m: ExitMessage = { type: 'EXIT', from: toPidObject(from), reason };
      this.deliverSystem(actor, m, source);
      return;
    }
    if (reason === 'normal' && !(from.node === to.node && from.id === to.id)) return;
    this.exitActor(actor, reason);
  }

  /**
   * A full mailbox still takes system messages, whatever its overflow policy: supervision needs
   * them. Those caused by another node (`source`) are bounded per node by `signalBudget`; the
   * excess is dropped and counted (FND_ERR_SIGNAL_OVERFLOW), so one node's flood costs nobody else.
   */
  private deliverSystem(actor: Actor, msg: ExitMessage | DownMessage, source?: string): void {
    if (!actor.enqueueSystem(markSystemMessage(msg), source) && source !== undefined && actor.alive)
      this.endpoint.refuse(
        'FND_ERR_SIGNAL_OVERFLOW',
        source,
        `${actor.pid} holds ${this.signalBudget} undelivered system messages from ${source}`,
      );
  }

  private fireDown(ref: string, pid: PidLike, reason: ExitReason, source?: string): void {
    const m = this.ownMonitors.get(ref);
    if (!m) return;
    this.ownMonitors.delete(ref);
    if (typeof m.watcher !== 'function') m.watcher.watching?.delete(ref);
    const down: DownMessage = { type: 'DOWN', ref, pid: toPidObject(pid), reason };
    if (typeof m.watcher === 'function') {
      try {
        m.watcher(down);
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message }, 'monitor callback threw');
      }
    } else if (m.watcher.alive) this.deliverSystem(m.watcher, down, source);
  }

  /** Ends an actor with `reason`: terminate, fail its pending calls, signal links and monitors. */
  exitActor(actor: Actor, reason: ExitReason): void {
    if (!actor.alive) return;
    // terminate is for actors that started: not when init failed or never finished.
    const started = actor.started;
    const rest = actor.die();
    this.actors.delete(actor);
    if (actor.name !== undefined && this.names.get(actor.name) === actor)
      this.names.delete(actor.name);
    this.remoteLinked.delete(actor);
    // Monitors this actor held on others go with it (else they leak on both sides).
    if (actor.watching) for (const ref of [...actor.watching]) this.demonitor(ref);
    if (reason !== 'normal' && reason !== 'shutdown') this.crashes++;
    if (reason !== 'killed' && started && actor.server?.terminate) {
      try {
        const r = actor.server.terminate(reason, actor.ctx);
        if (r && typeof (r as Promise<unknown>).catch === 'function') {
          (r as Promise<unknown>).catch((err: Error) =>
            this.opts.log.error(
              { pid: actor.pid.toString(), err: err.message },
              'terminate failed',
            ),
          );
        }
      } catch (err) {
        this.opts.log.error(
          { pid: actor.pid.toString(), err: (err as Error).message },
          'terminate threw',
        );
      }
    }
    for (const r of rest) {
      const m = callIn(r);
      if (m !== undefined) {
        m.reply(
          false,
          new FoundationError(
            'FND_ERR_ACTOR_EXITED',
            `${actor.pid} exited before replying (${reasonText(reason)})`,
            {
              pid: actor.pid.toJSON(),
              reason: reasonOut(reason),
            },
          ),
        );
      }
    }
    if (actor.links) {
      for (const l of actor.links.values()) {
        // To another node: sent now, in this actor's lane, before its exit hooks let the lane
        // go (behind everything it sent). Local: queued (see drainLinkExits).
        if (l.node !== this.nodeName) this.exitSignal(actor.pid, l, reason);
        else this.linkExits.push([actor.pid, l, reason]);
      }
    }
    if (actor.monitors) {
      for (const [ref, node] of actor.monitors) {
        if (node === this.nodeName) this.fireDown(ref, actor.pid, reason);
        else this.sendSignal(node, encode.down(ref, actor.pid, reason), actor.pid.id);
      }
    }
    if (reason !== 'normal' && reason !== 'shutdown' && reason !== 'killed') {
      this.opts.log.debug(
        { pid: actor.pid.toString(), reason: reasonText(reason) },
        'actor exited',
      );
    }
    for (const h of this.exitHooks) h(actor.pid, reason);
    this.drainLinkExits();
  }

  /**
   * Delivers the exit signals queued for local linked actors, in order, in a loop rather than by
   * recursion: an exit that runs down a chain of thousands of linked actors must not overflow the
   * stack. The outermost exit drains; exits it causes queue theirs behind.
   */
  private drainLinkExits(): void {
    if (this.drainingLinkExits) return;
    this.drainingLinkExits = true;
    try {
      const q = this.linkExits;
      for (let i = 0; i < q.length; i++) {
        const [from, to, reason] = q[i]!;
        this.exitSignal(from, to, reason);
      }
    } finally {
      this.linkExits.length = 0;
      this.drainingLinkExits = false;
    }
  }

  // ---- remote side (called by remote.ts, which decoded and checked the message) ----

  /**
   * Internal: sends a signal (encoded by remote.ts) to `node` in the lane of the local actor it
   * speaks for (0: the node); an unreachable node drops it.
   */
  sendSignal(node: string, signal: unknown[], lane = 0): void {
    try {
      this.router().send(node, ACTOR_KINDS.signal, signal, lane);
    } catch (err) {
      this.opts.log.debug({ node, err: (err as Error).message }, 'remote signal dropped');
    }
  }

  /** Internal: the local actor a remote message addresses, by id or registered name. */
  targetOf(ref: RemoteRef): Actor | undefined {
    return typeof ref === 'number' ? this.actors.get(ref) : this.names.get(ref);
  }

  /** Internal: the local actor with this id. */
  actorById(id: number): Actor | undefined {
    return this.actors.get(id);
  }

  /** Internal: a pid of this node. */
  localPid(id: number): Pid {
    return new Pid(this.nodeName, id);
  }

  /** Internal: another node linked its pid `remote` to `actor`. */
  acceptRemoteLink(actor: Actor, remote: PidLike): void {
    actor.addLink(remote);
    this.remoteLinked.add(actor);
  }

  /**
   * Internal: node `node` monitors `actor` under `ref`. False (nothing changes) when another node
   * already holds a monitor with that ref: refs are random, so that is an attempt to take one over.
   */
  acceptRemoteMonitor(actor: Actor, ref: string, node: string): boolean {
    if (!actor.monitors) actor.monitors = new Map();
    const holder = actor.monitors.get(ref);
    if (holder !== undefined && holder !== node) return false;
    actor.monitors.set(ref, node);
    return true;
  }

  /** Internal: node `node` cancels its monitor `ref` on `actor`. False if another node holds it. */
  dropRemoteMonitor(actor: Actor, ref: string, node: string): boolean {
    const holder = actor.monitors?.get(ref);
    if (holder === undefined) return true; // already fired or gone: nothing to do
    if (holder !== node) return false;
    actor.monitors!.delete(ref);
    return true;
  }

  /**
   * Internal: node `node` reports that its actor `pid` ended, for our monitor `ref`. Fires only a
   * monitor that watches exactly that pid; false when `ref` is ours but watches something else.
   */
  remoteDown(ref: string, pid: PidLike, reason: ExitReason, node: string): boolean {
    const m = this.ownMonitors.get(ref);
    if (!m) return true; // demonitored meanwhile, or already fired: a stale DOWN
    if (m.target.node !== node || m.target.id !== pid.id) return false;
    this.fireDown(ref, m.target, reason, node);
    return true;
  }

  /** A one-way actor message (send, cast, signal) from node `from`. Never throws. */
  handleRemote(kind: string, payload: unknown, from: string): void {
    this.endpoint.handle(kind, payload, from);
  }

  /**
   * A remote request (deliver with ack, or call), answered through `sink`; without one, the
   * answer is the promise returned. Throws coded errors back to the caller when refused at once.
   */
  handleRemoteRequest(kind: string, payload: unknown, from: string): Promise<unknown>;
  handleRemoteRequest(kind: string, payload: unknown, from: string, sink: ReplySink): void;
  handleRemoteRequest(
    kind: string,
    payload: unknown,
    from: string,
    sink?: ReplySink,
  ): Promise<unknown> | undefined {
    if (sink !== undefined) {
      this.endpoint.handleRequest(kind, payload, from, sink);
      return undefined;
    }
    let answer!: ReplySink;
    const promise = new Promise<unknown>((resolve, reject) => {
      answer = { reply: (ok, value) => (ok ? resolve(value) : reject(value)) };
    });
    this.endpoint.handleRequest(kind, payload, from, answer);
    return promise;
  }

  /**
   * `node` was declared down or left: monitors of its actors fire `noconnection`, links to them
   * deliver `noconnection` exit signals, and its monitors of our actors are forgotten.
   */
  nodeDown(node: string): void {
    for (const [ref, m] of [...this.ownMonitors]) {
      if (m.target.node === node) this.fireDown(ref, m.target, 'noconnection');
    }
    for (const actor of [...this.remoteLinked]) {
      if (!actor.links) continue;
      for (const l of [...actor.links.values()]) {
        if (l.node === node) this.exitSignal(l, actor.pid, 'noconnection');
      }
    }
    this.actors.forEach((actor) => {
      const monitors = actor.monitors;
      if (!monitors) return;
      for (const [ref, watcherNode] of monitors) if (watcherNode === node) monitors.delete(ref);
    });
    this.endpoint.nodeDown(node);
  }

  /** The context a behaviour runs with: every operation on behalf of `actor`. */
  contextFor(actor: Actor): ActorContext {
    return {
      self: actor.pid,
      node: this.nodeName,
      send: (to: Target, msg: unknown) => this.sendFrom(to, msg, actor.pid.id),
      sendAsync: (to: Target, msg: unknown) => this.sendAsyncFrom(to, msg, actor.pid.id),
      call: ((to: Target, msg: unknown, o?: CallOptions) =>
        this.call(to, msg, o, actor.pid)) as ActorContext['call'],
      cast: (to: Target, msg: unknown) => this.castFrom(to, msg, actor.pid.id),
      spawn: ((b: Behaviour, o?: SpawnOptions) => this.spawn(b, o)) as ActorContext['spawn'],
      monitor: (pid) => this.monitor(pid, actor.pid),
      demonitor: (ref) => this.demonitor(ref),
      link: (pid) => this.link(actor.pid, pid),
      unlink: (pid) => this.unlink(actor.pid, pid),
      exit: (pid, reason) => this.exit(pid, reason, actor.pid),
      register: (name) => this.register(name, actor.pid),
      unregister: (name) => this.unregister(name),
      whereis: (name) => this.whereis(name),
      stop: (reason = 'normal') => actor.requestStop(reason),
      get trapExits() {
        return actor.trapExits;
      },
      set trapExits(v: boolean) {
        actor.trapExits = v;
      },
    };
  }

  /** Stops every actor with 'shutdown' (node stop). */
  shutdown(): void {
    for (const a of this.actors.toArray()) this.exitActor(a, 'shutdown');
  }
}

function pidString(p: PidLike): string {
  return `<${p.node}.${p.id}>`;
}

function toPidObject(p: PidLike): Pid {
  return p instanceof Pid ? p : new Pid(p.node, p.id);
}

function describeTarget(t: Target): string {
  if (typeof t === 'string') return `"${t}"`;
  return isPid(t) ? pidString(t) : `"${t.name}" on ${t.node}`;
}

function noproc(t: Target): FoundationError {
  return new FoundationError('FND_ERR_NOPROC', `no actor ${describeTarget(t)}`, {
    target: typeof t === 'string' ? t : isPid(t) ? { node: t.node, id: t.id } : t,
  });
}

/** callTimeout for a remote call, as the messenger calls it on a timeout (the target as `subject`). */
const remoteCallTimeout = (t: unknown, timeout: number): Error => callTimeout(t as Target, timeout);

function callTimeout(t: Target, timeout: number): FoundationError {
  return new FoundationError(
    'FND_ERR_CALL_TIMEOUT',
    `no reply from ${describeTarget(t)} within ${timeout} ms`,
    {
      timeout,
    },
  );
}

export function reasonText(r: ExitReason): string {
  if (typeof r === 'string') return r;
  // Anything can be thrown (undefined, null, numbers): never let describing it throw.
  const m = (r as { message?: unknown } | null | undefined)?.message;
  return typeof m === 'string' ? m : String(r);
}

export { pidKey };
