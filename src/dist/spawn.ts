// Remote spawn. Functions cannot cross the wire, so a behaviour is defined by kind on every node
// that may run it (`node.define(kind, factory)`) and spawned by name elsewhere
// (`node.spawnOn(node, kind, args)`). `childSpec` lets a local supervisor start a child by kind,
// on this node or another one.
import { FoundationError } from '../errors.js';
import type { Behaviour, MailboxOptions } from '../runtime/behaviour.js';
import { Pid, type PidLike } from '../runtime/pid.js';
import type { ChildSpec, RestartType, ShutdownSpec } from '../runtime/supervisor.js';
import type { DistContext } from './context.js';
import { DIST_KINDS, decodePidReply, decodeSpawn, isName, type SpawnMsg } from './wire.js';

/** What a kind's factory is told besides its args. */
export interface SpawnInfo {
  /** State handed over by the previous instance (distributed supervisor moves), if any. */
  handoff?: unknown;
}

/** Builds the behaviour of one instance of a kind. `args` arrive as msgpack decoded them. */
export type KindFactory = (args: unknown, info: SpawnInfo) => Behaviour;

export interface SpawnOnOptions {
  /** Register the new actor under this local name on its node. */
  name?: string;
  mailbox?: MailboxOptions;
  trapExits?: boolean;
  /** Link the new actor to this pid, which must be on the calling node (spawn_link). */
  link?: PidLike;
  /** Milliseconds to wait for the remote node. Default: the node's requestTimeoutMs. */
  timeout?: number;
  /** State for the new instance's factory (`info.handoff`). */
  handoff?: unknown;
}

export class RemoteSpawn {
  private readonly kinds = new Map<string, KindFactory>();

  constructor(private readonly ctx: DistContext) {
    ctx.net.handle(DIST_KINDS.spawn, (payload, from) => this.serve(payload, from));
  }

  /** Defines (or redefines) `kind` on this node. */
  define(kind: string, factory: KindFactory): void {
    if (!isName(kind, this.ctx.limits.maxNameLength) || typeof factory !== 'function') {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'define(kind, factory): a kind name and a function',
        {
          field: 'kind',
        },
      );
    }
    this.kinds.set(kind, factory);
  }

  /** Whether `kind` is defined on this node. */
  defined(kind: string): boolean {
    return this.kinds.has(kind);
  }

  /** Builds the behaviour of one instance of `kind` here; FND_ERR_UNKNOWN_KIND when undefined. */
  build(kind: string, args: unknown, info: SpawnInfo = {}): Behaviour {
    const factory = this.kinds.get(kind);
    if (!factory) throw this.unknown(kind);
    return factory(args, info);
  }

  private unknown(kind: string): FoundationError {
    return new FoundationError(
      'FND_ERR_UNKNOWN_KIND',
      `kind "${kind}" is not defined on ${this.ctx.self}`,
      { kind, node: this.ctx.self },
    );
  }

  /**
   * Spawns an instance of `kind` on `node` (this node's name works too) and resolves with its pid
   * once its `init` finished. Rejects with FND_ERR_UNKNOWN_KIND when `node` has not defined it,
   * FND_ERR_UNKNOWN_NODE / FND_ERR_NODE_DOWN / FND_ERR_REQUEST_TIMEOUT, or the init's error.
   */
  async spawnOn(
    node: string,
    kind: string,
    args: unknown = null,
    opts: SpawnOnOptions = {},
  ): Promise<Pid> {
    const msg: SpawnMsg = { kind, args };
    if (opts.name !== undefined) msg.name = opts.name;
    if (opts.mailbox !== undefined) msg.mailbox = opts.mailbox;
    if (opts.trapExits !== undefined) msg.trapExits = opts.trapExits;
    if (opts.link !== undefined) msg.link = { node: opts.link.node, id: opts.link.id };
    if (opts.handoff !== undefined) msg.handoff = opts.handoff;
    const timeout = opts.timeout ?? this.ctx.requestTimeoutMs;
    msg.waitMs = timeout;
    const reply = await this.ctx.net.request(node, DIST_KINDS.spawn, msg, timeout);
    const d = decodePidReply(reply, this.ctx.limits);
    if (!d.ok || d.value.node !== node) {
      throw new FoundationError(
        'FND_ERR_DIST_MESSAGE',
        `spawn reply from ${node}: ${d.ok ? 'pid of another node' : d.reason}`,
      );
    }
    return new Pid(d.value.node, d.value.id);
  }

  private async serve(payload: unknown, from: string): Promise<{ node: string; id: number }> {
    const d = decodeSpawn(payload, this.ctx.limits);
    if (!d.ok) throw new FoundationError('FND_ERR_DIST_MESSAGE', `spawn: ${d.reason}`);
    const m = d.value;
    if (!this.kinds.has(m.kind)) throw this.unknown(m.kind);
    // A link may only name an actor of the requesting node: a member cannot tie a third node's
    // actors to ours.
    if (m.link && m.link.node !== from) {
      throw new FoundationError(
        'FND_ERR_DIST_MESSAGE',
        'spawn: link must name an actor of the requesting node',
      );
    }
    const behaviour = this.build(
      m.kind,
      m.args,
      m.handoff !== undefined ? { handoff: m.handoff } : {},
    );
    const giveUpAt = m.waitMs !== undefined ? this.ctx.clock.now() + m.waitMs : undefined;
    const pid = await this.ctx.system.spawnAsync(behaviour, {
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...(m.mailbox ? { mailbox: m.mailbox } : {}),
      ...(m.trapExits !== undefined ? { trapExits: m.trapExits } : {}),
      ...(m.link ? { link: new Pid(m.link.node, m.link.id) } : {}),
    });
    if (giveUpAt !== undefined && this.ctx.clock.now() >= giveUpAt) {
      // Its init outlasted the requester's wait: the requester has failed the spawn, so an actor
      // left running here would be known to nobody (a supervisor would start another).
      this.ctx.system.exit(pid, 'kill');
      throw new FoundationError(
        'FND_ERR_REQUEST_TIMEOUT',
        `spawn of ${m.kind}: init took too long`,
        {
          kind: m.kind,
        },
      );
    }
    return { node: pid.node, id: pid.id };
  }

  /**
   * A supervisor child spec that starts an instance of `kind` (on `node`, default this one): the
   * supervisor links to it wherever it runs and restarts it by kind.
   */
  childSpec(
    id: string,
    kind: string,
    args: unknown = null,
    opts: { node?: string; restart?: RestartType; shutdown?: ShutdownSpec } = {},
  ): ChildSpec {
    const spec: ChildSpec = {
      id,
      start: () => this.spawnOn(opts.node ?? this.ctx.self, kind, args),
    };
    if (opts.restart) spec.restart = opts.restart;
    if (opts.shutdown !== undefined) spec.shutdown = opts.shutdown;
    return spec;
  }
}
