// The cluster-wide name registry (`node.registry`, :global / Horde.Registry): a name maps to one
// actor anywhere in the cluster. Each node announces the names of its own actors through a
// Replica; when two nodes claim one name (a race, or a healed partition) every node picks the same
// winner — the earliest registration by hybrid logical clock, then the node name — and the losing
// node unregisters its actor and sends it an exit signal with reason 'name_conflict'.
import { EventEmitter } from 'node:events';
import { FoundationError } from '../errors.js';
import { Pid, type PidLike } from '../runtime/pid.js';
import { compareHlc, type Hlc } from '../util/hlc.js';
import type { DistContext } from './context.js';
import { Replica } from './replica.js';
import {
  approxSize,
  DIST_KINDS,
  decodeRegAck,
  decodeRegAckReply,
  decodeRegValue,
  isName,
  type RegAckReply,
  type RegValue,
} from './wire.js';

export interface RegisterOptions {
  /** Any msgpack-encodable value kept with the name (≤ maxMetaBytes, default 4 KiB). */
  meta?: unknown;
  /**
   * Resolve only once every member reachable now has applied the registration and agrees this
   * node owns the name. Rejects with FND_ERR_NAME_TAKEN when a concurrent registration on another
   * node wins (the local registration is then removed, without an exit signal).
   */
  sync?: boolean;
}

/** A registered name as `select` returns it. */
export interface Registration {
  name: string;
  pid: Pid;
  meta: unknown;
}

export interface RegistryEvents {
  /** `name` now resolves to `pid` (on this node's view). */
  registered: [name: string, pid: Pid, meta: unknown];
  /** `name` no longer resolves to `pid` (unregistered, actor exited, node down, or lost a conflict). */
  unregistered: [name: string, pid: Pid];
  /** Two nodes claimed `name`; `winner` keeps it, `loser`'s node unregisters it. */
  conflict: [name: string, winner: Pid, loser: Pid];
}

interface Claim {
  node: string;
  id: number;
  ts: Hlc;
  meta: unknown;
}

/** Earliest HLC wins; equal timestamps (different nodes) go to the smaller node name. */
function beats(a: Claim, b: Claim): boolean {
  const c = compareHlc(a.ts, b.ts);
  return c !== 0 ? c < 0 : a.node < b.node;
}

/** Exit reason an actor gets when its registration loses to another node's. */
export const NAME_CONFLICT = 'name_conflict';

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly replica: Replica<RegValue>;
  /** name → the claims of every node (usually one). */
  private readonly claims = new Map<string, Map<string, Claim>>();
  /** name → the winning claim (what whereis answers). */
  private readonly winners = new Map<string, Claim>();
  /** Local actor id → names it holds. */
  private readonly byActor = new Map<number, Set<string>>();
  /** Names whose sync registration is still waiting for acknowledgements. */
  private readonly syncing = new Set<string>();

  constructor(private readonly ctx: DistContext) {
    super();
    const maxName = ctx.limits.maxNameLength;
    this.replica = new Replica<RegValue>(ctx, {
      kind: DIST_KINDS.registry,
      maxKeyLength: maxName,
      decodeValue: (v) => {
        const d = decodeRegValue(v, ctx.limits);
        if (d.ok && !ctx.hlc.observe(d.value.ts))
          return { ok: false, reason: 'timestamp too far ahead of this node’s clock' };
        return d;
      },
    });
    this.replica.onChange((owner, name, prev, next) => this.changed(owner, name, prev, next));
    ctx.system.onExit((pid) => {
      if (pid.node !== ctx.self) return;
      const names = this.byActor.get(pid.id);
      if (!names) return;
      this.byActor.delete(pid.id);
      for (const n of names) this.replica.delete(n);
    });
    ctx.net.handle(DIST_KINDS.registryAck, (payload, from) => this.ack(payload, from));
  }

  /**
   * Registers a live local actor under `name`, unique in the cluster. Rejects with
   * FND_ERR_NAME_TAKEN when this node already sees another actor under that name,
   * FND_ERR_NOPROC when `pid` is not a live local actor, FND_ERR_INVALID_OPTION for a bad name or
   * meta, FND_ERR_DIST_LIMIT when this node holds maxEntriesPerNode names. Registering the same
   * pid again under its own name only updates `meta`.
   */
  async register(name: string, pid: PidLike, opts: RegisterOptions = {}): Promise<void> {
    this.check(name);
    if (pid.node !== this.ctx.self || !this.ctx.system.isAlive(pid)) {
      throw new FoundationError(
        'FND_ERR_NOPROC',
        `${pid.node}.${pid.id} is not a live local actor`,
        {
          pid: { node: pid.node, id: pid.id },
        },
      );
    }
    const meta = opts.meta;
    if (
      meta !== undefined &&
      approxSize(meta, this.ctx.limits.maxMetaBytes) > this.ctx.limits.maxMetaBytes
    ) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "meta": larger than ${this.ctx.limits.maxMetaBytes} bytes`,
        {
          field: 'meta',
        },
      );
    }
    const w = this.winners.get(name);
    const mine = this.replica.ownEntries().get(name);
    if (w && !(w.node === this.ctx.self && w.id === pid.id)) throw taken(name, w);
    const value: RegValue = { id: pid.id, ts: mine?.id === pid.id ? mine.ts : this.ctx.hlc.now() };
    if (meta !== undefined) value.meta = meta;
    this.replica.set(name, value);
    let names = this.byActor.get(pid.id);
    if (!names) {
      names = new Set();
      this.byActor.set(pid.id, names);
    }
    names.add(name);
    if (opts.sync) await this.syncAck(name, pid.id);
  }

  /**
   * Registers a live local actor under `name` with timestamp `ts`, without the "taken" check: a
   * singleton (src/dist/dsupervisor.ts) claims its name with the timestamp of its placement, so
   * after a heal the duplicate that loses the placement also loses the name. Not public API.
   */
  claim(name: string, pid: PidLike, ts: Hlc): void {
    this.check(name);
    if (pid.node !== this.ctx.self || !this.ctx.system.isAlive(pid)) {
      throw new FoundationError(
        'FND_ERR_NOPROC',
        `${pid.node}.${pid.id} is not a live local actor`,
        {
          pid: { node: pid.node, id: pid.id },
        },
      );
    }
    const mine = this.replica.ownEntries().get(name);
    if (mine && mine.id !== pid.id) this.byActor.get(mine.id)?.delete(name);
    this.replica.set(name, { id: pid.id, ts });
    let names = this.byActor.get(pid.id);
    if (!names) {
      names = new Set();
      this.byActor.set(pid.id, names);
    }
    names.add(name);
  }

  private check(name: unknown): asserts name is string {
    if (!isName(name, this.ctx.limits.maxNameLength)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "name": a non-empty, well-formed string of at most ${this.ctx.limits.maxNameLength} characters`,
        { field: 'name' },
      );
    }
  }

  /** Waits for every reachable member to apply our registration and name us the owner. */
  private async syncAck(name: string, id: number): Promise<void> {
    const seq = this.replica.version;
    const peers = this.ctx.members.peers();
    this.syncing.add(name);
    try {
      const replies = await Promise.allSettled(
        peers.map((p) =>
          this.ctx.net.request(
            p,
            DIST_KINDS.registryAck,
            { name, epoch: this.ctx.epoch, seq },
            this.ctx.requestTimeoutMs,
          ),
        ),
      );
      let winner: RegAckReply['owner'] = null;
      /** A member that applied our change and holds no owner refused our entry. */
      let refusedBy: string | undefined;
      for (let i = 0; i < replies.length; i++) {
        const r = replies[i]!;
        if (r.status === 'rejected') {
          const code = (r.reason as FoundationError).code;
          // A member that went down meanwhile is no longer reachable: it does not count.
          if (code === 'FND_ERR_NODE_DOWN' || code === 'FND_ERR_UNKNOWN_NODE') continue;
          throw r.reason;
        }
        const d = decodeRegAckReply(r.value, this.ctx.limits);
        if (!d.ok)
          throw new FoundationError('FND_ERR_DIST_MESSAGE', `ack from ${peers[i]}: ${d.reason}`);
        const o = d.value.owner;
        if (o === null) refusedBy ??= peers[i];
        if (o && !(o.node === this.ctx.self && o.id === id)) {
          if (!winner || beats({ ...o, meta: undefined }, { ...winner, meta: undefined }))
            winner = o;
        }
      }
      const mine = this.replica.ownEntries().get(name);
      if (!mine || mine.id !== id) throw taken(name, winner ?? this.winners.get(name));
      if (
        winner &&
        beats(
          { ...winner, meta: undefined },
          { node: this.ctx.self, id, ts: mine.ts, meta: undefined },
        )
      ) {
        this.drop(name, id);
        throw taken(name, winner);
      }
      if (refusedBy !== undefined) {
        // Not agreed by every member: a later claim there could win. Withdrawn here too, so that
        // a rejected registration holds nowhere.
        this.drop(name, id);
        throw new FoundationError(
          'FND_ERR_NAME_REFUSED',
          `"${name}": member ${refusedBy} refused the registration`,
          { name, member: refusedBy },
        );
      }
    } finally {
      this.syncing.delete(name);
    }
  }

  /** Request handler: reply once the requester's change is applied here, naming the owner we see. */
  private async ack(payload: unknown, from: string): Promise<RegAckReply> {
    const d = decodeRegAck(payload, this.ctx.limits);
    if (!d.ok) throw new FoundationError('FND_ERR_DIST_MESSAGE', `registry ack: ${d.reason}`);
    await this.replica.whenApplied(from, d.value.epoch, d.value.seq, this.ctx.requestTimeoutMs);
    const w = this.winners.get(d.value.name);
    return { owner: w ? { node: w.node, id: w.id, ts: w.ts } : null };
  }

  /** Removes this node's registration of `name`. Returns false when this node holds no such name. */
  unregister(name: string): boolean {
    const mine = this.replica.ownEntries().get(name);
    if (!mine) return false;
    this.drop(name, mine.id);
    return true;
  }

  private drop(name: string, id: number): void {
    const names = this.byActor.get(id);
    names?.delete(name);
    if (names?.size === 0) this.byActor.delete(id);
    this.replica.delete(name);
  }

  /** The pid registered under `name` cluster-wide, as this node sees it now (a local read). */
  whereis(name: string): Pid | undefined {
    const w = this.winners.get(name);
    return w ? new Pid(w.node, w.id) : undefined;
  }

  /** The metadata registered with `name`. */
  meta(name: string): unknown {
    return this.winners.get(name)?.meta;
  }

  /** Registrations whose name starts with `prefix`, or satisfies `predicate`; sorted by name. */
  select(filter: string | ((name: string, pid: Pid, meta: unknown) => boolean)): Registration[] {
    const out: Registration[] = [];
    for (const [name, w] of this.winners) {
      const pid = new Pid(w.node, w.id);
      if (typeof filter === 'string' ? name.startsWith(filter) : filter(name, pid, w.meta))
        out.push({ name, pid, meta: w.meta });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Number of names this node sees. */
  get size(): number {
    return this.winners.size;
  }

  /** Every claim this node holds, conflicting ones included (for tests and diagnostics). */
  claimCount(): number {
    let n = 0;
    for (const c of this.claims.values()) n += c.size;
    return n;
  }

  stop(): void {
    this.replica.stop();
  }

  // ---- merging ----

  private changed(
    owner: string,
    name: string,
    _prev: RegValue | undefined,
    next: RegValue | undefined,
  ): void {
    let cs = this.claims.get(name);
    if (next === undefined) {
      if (!cs?.delete(owner)) return;
      if (cs.size === 0) this.claims.delete(name);
    } else {
      if (!cs) {
        cs = new Map();
        this.claims.set(name, cs);
      }
      cs.set(owner, { node: owner, id: next.id, ts: next.ts, meta: next.meta });
    }
    const before = this.winners.get(name);
    let best: Claim | undefined;
    if (cs) for (const c of cs.values()) if (!best || beats(c, best)) best = c;
    if (best) this.winners.set(name, best);
    else this.winners.delete(name);
    const same = before && best && before.node === best.node && before.id === best.id;
    if (before && !same) this.fire('unregistered', name, new Pid(before.node, before.id));
    if (best && (!same || before!.meta !== best.meta))
      this.fire('registered', name, new Pid(best.node, best.id), best.meta);
    if (!best || !cs || cs.size < 2) return;
    // A conflict: our own claim, if it lost, goes (once the event has been raised everywhere).
    const mine = cs.get(this.ctx.self);
    if (next !== undefined && owner !== best.node) {
      this.fire('conflict', name, new Pid(best.node, best.id), new Pid(owner, next.id));
    } else if (next !== undefined && before && owner === best.node && before.node !== owner) {
      this.fire('conflict', name, new Pid(best.node, best.id), new Pid(before.node, before.id));
    }
    if (mine && mine !== best && best.node !== this.ctx.self) {
      const loser = new Pid(this.ctx.self, mine.id);
      this.drop(name, mine.id);
      if (this.syncing.has(name)) return; // the pending register() rejects instead
      this.ctx.log.info(
        { name, winner: `${best.node}.${best.id}`, loser: String(loser) },
        'registry name conflict: this node lost',
      );
      this.ctx.system.exit(loser, NAME_CONFLICT);
    }
  }

  private fire<K extends keyof RegistryEvents>(event: K, ...args: RegistryEvents[K]): void {
    if (this.listenerCount(event) === 0) return;
    try {
      this.emit(event, ...(args as never));
    } catch (err) {
      this.ctx.log.error({ event, err: (err as Error).message }, 'registry listener threw');
    }
  }
}

function taken(name: string, w: { node: string; id: number } | undefined): FoundationError {
  return new FoundationError(
    'FND_ERR_NAME_TAKEN',
    w ? `name "${name}" is registered to <${w.node}.${w.id}>` : `name "${name}" is taken`,
    { name, ...(w ? { pid: { node: w.node, id: w.id } } : {}) },
  );
}
