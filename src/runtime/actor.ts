// One actor: a behaviour, a mailbox, links and monitors. Messages are handled one at a time, in
// arrival order; a handler that returns a promise is awaited before the next message. The
// scheduler calls `run` with a budget, so one busy actor cannot hold the event loop.
import { FoundationError } from '../errors.js';
import type {
  ActorContext,
  Behaviour,
  ExitReason,
  GenServer,
  MailboxOptions,
  MessageHandler,
} from './behaviour.js';
import { Pid, type PidLike, pidKey } from './pid.js';
import type { Runnable } from './scheduler.js';
import type { ActorSystem } from './system.js';

/** A call waiting in a mailbox: the reply goes to `reply`. */
export class CallEnvelope {
  constructor(
    readonly msg: unknown,
    readonly from: PidLike | undefined,
    readonly reply: (ok: boolean, value: unknown) => void,
  ) {}
}

export class CastEnvelope {
  constructor(readonly msg: unknown) {}
}

enum Status {
  Starting = 0,
  Running = 1,
  Dead = 2,
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

export class Actor implements Runnable {
  queued = false;
  readonly pid: Pid;
  private mailbox: unknown[] = [];
  private head = 0;
  /** Awaiting an async handler (or init): not runnable until it settles. */
  private busy = false;
  private status = Status.Starting;
  private stopReason: ExitReason | undefined;
  readonly handler: MessageHandler | undefined;
  readonly server: GenServer | undefined;
  /** Linked pids, by pidKey. */
  links: Map<string, PidLike> | undefined;
  /** Monitors watching this actor: ref → the watcher's node name. */
  monitors: Map<string, string> | undefined;
  trapExits = false;
  name: string | undefined;
  private ctxCache: ActorContext | undefined;

  constructor(
    readonly system: ActorSystem,
    readonly id: number,
    behaviour: Behaviour,
    private readonly limits: MailboxOptions | undefined,
  ) {
    this.pid = new Pid(system.nodeName, id);
    if (typeof behaviour === 'function') this.handler = behaviour;
    else this.server = behaviour;
  }

  get ctx(): ActorContext {
    if (!this.ctxCache) this.ctxCache = this.system.contextFor(this);
    return this.ctxCache;
  }

  get alive(): boolean {
    return this.status !== Status.Dead;
  }

  /** Messages waiting. */
  get depth(): number {
    return this.mailbox.length - this.head;
  }

  /**
   * Starts the actor: runs `init` when the behaviour has one. Resolves when it is running, rejects
   * (after the actor exited with the error) when init fails.
   */
  start(): Promise<void> | undefined {
    const init = this.server?.init;
    if (!init) {
      this.status = Status.Running;
      return undefined;
    }
    let result: unknown;
    try {
      result = init.call(this.server, this.ctx);
    } catch (err) {
      this.system.exitActor(this, err as Error);
      return Promise.reject(err);
    }
    if (!isThenable(result)) {
      this.status = Status.Running;
      return undefined;
    }
    this.busy = true;
    return Promise.resolve(result).then(
      () => {
        if (this.status === Status.Dead) return;
        this.busy = false;
        this.status = Status.Running;
        if (this.depth > 0) this.system.scheduler.schedule(this);
      },
      (err: Error) => {
        this.system.exitActor(this, err);
        throw err;
      },
    );
  }

  /** Puts a message in the mailbox, applying the overflow policy. Throws FND_ERR_MAILBOX_FULL. */
  enqueue(msg: unknown): void {
    if (this.status === Status.Dead) return;
    const limits = this.limits;
    if (limits && this.depth >= limits.max) {
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
        if (msg instanceof CallEnvelope) msg.reply(false, mailboxDropped(this));
        return;
      }
      const oldest = this.mailbox[this.head];
      this.mailbox[this.head++] = undefined;
      this.system.dropped++;
      if (oldest instanceof CallEnvelope) oldest.reply(false, mailboxDropped(this));
    }
    this.mailbox.push(msg);
    if (!this.busy && !this.queued && this.status === Status.Running)
      this.system.scheduler.schedule(this);
  }

  run(budget: number, deadline: number): boolean {
    let n = 0;
    while (this.head < this.mailbox.length) {
      if (this.busy || this.status !== Status.Running) return false;
      if (n >= budget || ((n & 31) === 31 && performance.now() >= deadline)) return true;
      n++;
      const msg = this.mailbox[this.head];
      this.mailbox[this.head++] = undefined;
      this.handle(msg);
    }
    this.mailbox.length = 0;
    this.head = 0;
    if (this.stopReason !== undefined && this.status === Status.Running) {
      this.system.exitActor(this, this.stopReason);
    }
    return false;
  }

  private handle(msg: unknown): void {
    let result: unknown;
    let call: CallEnvelope | undefined;
    try {
      if (msg instanceof CallEnvelope) {
        call = msg;
        result = this.server
          ? this.server.handleCall
            ? this.server.handleCall(msg.msg, this.ctx, msg.from)
            : undefined
          : this.handler!(msg.msg, this.ctx);
      } else if (msg instanceof CastEnvelope) {
        result = this.server
          ? this.server.handleCast?.(msg.msg, this.ctx)
          : this.handler!(msg.msg, this.ctx);
      } else {
        result = this.server
          ? this.server.handleInfo?.(msg, this.ctx)
          : this.handler!(msg, this.ctx);
      }
    } catch (err) {
      call?.reply(false, crashed(this, err));
      this.system.exitActor(this, err as Error);
      return;
    }
    if (isThenable(result)) {
      this.busy = true;
      Promise.resolve(result).then(
        (value) => {
          if (this.status === Status.Dead) return;
          call?.reply(true, value);
          this.busy = false;
          if (this.depth > 0) this.system.scheduler.schedule(this);
          else if (this.stopReason !== undefined) this.system.exitActor(this, this.stopReason);
        },
        (err: Error) => {
          if (this.status === Status.Dead) return;
          call?.reply(false, crashed(this, err));
          this.system.exitActor(this, err);
        },
      );
      return;
    }
    call?.reply(true, result);
  }

  /** Ends after the current message (ctx.stop). */
  requestStop(reason: ExitReason): void {
    this.stopReason = reason;
    if (!this.busy && this.depth === 0 && this.status === Status.Running) {
      queueMicrotask(() => {
        if (this.alive && !this.busy && this.depth === 0) this.system.exitActor(this, reason);
      });
    }
  }

  /**
   * Marks the actor dead and returns what was left in its mailbox. Called once, by the system,
   * which then notifies links and monitors.
   */
  die(): unknown[] {
    this.status = Status.Dead;
    const rest = this.mailbox.slice(this.head);
    this.mailbox = [];
    this.head = 0;
    return rest;
  }

  addLink(p: PidLike): void {
    if (!this.links) this.links = new Map();
    this.links.set(pidKey(p), p);
  }

  removeLink(p: PidLike): boolean {
    return this.links?.delete(pidKey(p)) ?? false;
  }
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
