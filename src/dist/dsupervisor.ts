// The distributed supervisor (`node.distributedSupervisor`, Horde.DynamicSupervisor) and the
// singleton (`node.singleton`): children defined by kind, each placed on one member by rendezvous
// hashing over the members that run the same supervisor, restarted on a survivor when its node
// goes down, moved (with handed-over state) on graceful leave and — with `redistribution:
// 'active'` — when members join. Which child runs where is an owner-partitioned Replica
// (`dist:ds`); two instances of one child (a race, a healed partition) are resolved on every node
// by the registry's rule: the earliest start by hybrid logical clock, then the node name.
import { FoundationError } from '../errors.js';
import type { ExitReason } from '../runtime/behaviour.js';
import { Pid } from '../runtime/pid.js';
import type { RestartType } from '../runtime/supervisor.js';
import type { TimerHandle } from '../util/clock.js';
import { compareHlc, type Hlc } from '../util/hlc.js';
import type { DistContext } from './context.js';
import type { Registry } from './registry.js';
import { Replica } from './replica.js';
import type { RemoteSpawn } from './spawn.js';
import {
  approxSize,
  DIST_KINDS,
  decodeHandoff,
  decodePlacementValue,
  type HandoffMsg,
  isName,
  type PlacementValue,
} from './wire.js';

/** One child of a distributed supervisor: an instance of `kind` (defined on every member). */
export interface DistChildSpec {
  /** Unique within the supervisor. */
  id: string;
  kind: string;
  /** Passed to the kind's factory; must be msgpack-encodable only if you compare it across nodes. */
  args?: unknown;
  /**
   * 'permanent' (default): restarted after any exit, on its node, and on a survivor when its node
   * goes down. 'transient': not restarted after a 'normal' or 'shutdown' exit. 'temporary': started
   * once in the cluster's lifetime, never restarted, not even when its node goes down.
   */
  restart?: RestartType;
}

export interface DistributedSupervisorOptions {
  children: DistChildSpec[];
  /**
   * 'passive' (default): a child stays where it runs until its node goes down or leaves.
   * 'active': when a member joins, children whose rendezvous owner it now is move to it.
   */
  redistribution?: 'passive' | 'active';
  /**
   * Called on the old node when a child moves (graceful leave, `stop()`, active redistribution):
   * its result is given to the new instance's factory as `info.handoff`. Must be msgpack-encodable
   * and at most maxHandoffBytes (1 MiB). Not called when a node dies: its state is lost.
   */
  handoff?: (child: { id: string; pid: Pid }) => unknown;
  /** Local restart intensity: more than `maxRestarts` exits within `withinMs` and this node gives the child up (default 3 in 5000 ms). */
  maxRestarts?: number;
  withinMs?: number;
}

export interface SingletonOptions {
  /** 'keep-majority': run only on a side of a split with a majority of the known members. */
  quorum?: 'keep-majority';
  restart?: RestartType;
  handoff?: (child: { id: string; pid: Pid }) => unknown;
}

/** Where a child runs, as this node sees it. */
export interface DistChildInfo {
  id: string;
  /** The node running it; undefined while it runs nowhere (starting, moving, given up). */
  node: string | undefined;
  pid: Pid | undefined;
}

/** Exit reason of an instance stopped because an earlier instance of the same child runs elsewhere. */
export const DUPLICATE_CHILD = 'duplicate_child';
/** Exit reason of a singleton stopped because its node is on a minority side (keep-majority). */
export const QUORUM_LOST = 'quorum_lost';

const SEP = '\u0000';
/** Handoff calls get this long before the child moves without state. */
const HANDOFF_TIMEOUT_MS = 5000;
/**
 * An instance this node stops (a move, a duplicate, quorum lost, a stop) gets this long to exit
 * after its 'shutdown' (one that traps exits may finish its work), then is killed: the child must
 * not run in two places, nor stay unstarted elsewhere. A local supervisor's worker default.
 */
export const DIST_SHUTDOWN_MS = 5000;

interface Child {
  spec: Required<Omit<DistChildSpec, 'args'>> & { args: unknown };
  /** The local instance, while this node runs it. */
  pid: Pid | undefined;
  /** Placement timestamp of the local instance (kept across local restarts). */
  ts: Hlc | undefined;
  /** This node is stopping the local instance (moving it, a duplicate, quorum lost, leaving). */
  stopping: boolean;
  /** Local exits, clock times, for the restart intensity. */
  exits: number[];
  /** This node gave the child up (restart intensity); cleared when membership changes. */
  failed: boolean;
  /** What the child's previous node handed over, for the next local start. */
  stash: HandoffMsg | undefined;
  /** Kills the local instance if it has not exited DIST_SHUTDOWN_MS after being stopped. */
  kill: TimerHandle | undefined;
}

interface Runner {
  node: string;
  id: number;
  ts: Hlc;
}

/** Earliest HLC wins, then the smaller node name (the registry's rule). */
function earlier(a: Runner, b: Runner): boolean {
  const c = compareHlc(a.ts, b.ts);
  return c !== 0 ? c < 0 : a.node < b.node;
}

/** A 32-bit hash (FNV-1a with a murmur3 finaliser): the same on every node. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Rendezvous (highest-random-weight) choice of a node for `key`; ties to the smaller name. */
export function rendezvous(key: string, nodes: string[]): string | undefined {
  let best: string | undefined;
  let bestH = -1;
  for (const n of nodes) {
    const h = hash(`${key}${SEP}${n}`);
    if (h > bestH || (h === bestH && best !== undefined && n < best)) {
      best = n;
      bestH = h;
    }
  }
  return best;
}

/**
 * The node's placement table and every distributed supervisor / singleton on it. Keys of the
 * `dist:ds` table, each in the announcing node's own partition:
 * `<sup>` — this node takes part in supervisor `<sup>`;
 * `<sup>␀<child>` — this node runs the child (value: local actor id, placement HLC);
 * `<sup>␀<child>␀` — the child is finished for good (temporary started, transient ended normally);
 * every node that sees this marker copies it into its own partition, so it outlives its author.
 */
export class Placement {
  private readonly replica: Replica<PlacementValue>;
  private readonly sups = new Map<string, DistributedSupervisor>();
  /** Local actor id → its supervisor and child. */
  private readonly byPid = new Map<number, { sup: DistributedSupervisor; child: Child }>();
  private queued = false;
  private leaving = false;
  private readonly timer: TimerHandle;

  constructor(
    readonly ctx: DistContext,
    readonly spawner: RemoteSpawn,
    readonly registry: Registry,
  ) {
    this.replica = new Replica<PlacementValue>(ctx, {
      kind: DIST_KINDS.placement,
      maxKeyLength: ctx.limits.maxNameLength * 2 + 4,
      decodeValue: (v) => {
        const d = decodePlacementValue(v);
        if (d.ok && !ctx.hlc.observe(d.value.ts))
          return { ok: false, reason: 'timestamp too far ahead of this node’s clock' };
        return d;
      },
    });
    this.replica.onChange(() => this.schedule());
    ctx.members.onUp(() => this.membershipChanged());
    ctx.members.onDown(() => this.membershipChanged());
    ctx.system.onExit((pid, reason) => {
      if (pid.node !== ctx.self) return;
      const hit = this.byPid.get(pid.id);
      if (!hit) return;
      this.byPid.delete(pid.id);
      hit.sup.exited(hit.child, pid, reason);
    });
    ctx.net.on(DIST_KINDS.handoff, (payload, from) => {
      if (!ctx.members.isPeer(from)) return;
      const d = decodeHandoff(payload, ctx.limits);
      if (!d.ok) {
        ctx.log.warn({ from, reason: d.reason }, 'handoff message refused');
        return;
      }
      // Kept only for a child of a supervisor this node runs (bounded by its children), even
      // while a duplicate of it runs here: that one is about to lose to the sender's instance.
      const child = this.sups.get(d.value.sup)?.child(d.value.child);
      if (!child) return;
      if (d.value.ts && !ctx.hlc.observe(d.value.ts)) {
        ctx.log.warn({ from }, 'handoff refused: timestamp too far ahead of this node’s clock');
        return;
      }
      child.stash = d.value;
    });
    // Quorum depends on members reaped after downRetentionMs, which raises no event: re-check.
    this.timer = ctx.clock.setInterval(() => this.schedule(), ctx.syncIntervalMs);
  }

  /** Creates a supervisor (`d:<name>`) or singleton (`s:<name>`) on this node. */
  add(key: string, sup: DistributedSupervisor): void {
    if (this.sups.has(key)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `a distributed supervisor or singleton "${key.slice(2)}" already runs on this node`,
        { field: 'name' },
      );
    }
    this.sups.set(key, sup);
    this.replica.set(key, { id: 0, ts: this.ctx.hlc.now() });
    this.schedule();
  }

  remove(key: string): void {
    if (this.sups.delete(key)) this.replica.delete(key);
  }

  // ---- what sups read and write ----

  /** Peers that announce taking part in `key` (alive or suspect members only: others are dropped). */
  participants(key: string): string[] {
    return this.replica.owners().filter((o) => this.replica.entriesOf(o)?.has(key));
  }

  /** Whether every current peer's placement partition is here (starting earlier could duplicate). */
  synced(): boolean {
    return this.ctx.members.peers().every((p) => this.replica.synced(p));
  }

  /** Instances of `key`'s child `id` announced by peers. */
  remoteRunners(key: string, id: string): Runner[] {
    const k = `${key}${SEP}${id}`;
    const out: Runner[] = [];
    for (const o of this.replica.owners()) {
      const v = this.replica.entriesOf(o)?.get(k);
      if (v && v.id > 0) out.push({ node: o, id: v.id, ts: v.ts });
    }
    return out;
  }

  /** Whether any node (this one included) marked the child finished for good. */
  done(key: string, id: string): boolean {
    const k = `${key}${SEP}${id}${SEP}`;
    if (this.replica.ownEntries().has(k)) return true;
    for (const o of this.replica.owners()) {
      if (this.replica.entriesOf(o)?.has(k)) {
        this.replica.set(k, { id: 0, ts: this.ctx.hlc.now() }); // keep it when o goes
        return true;
      }
    }
    return false;
  }

  markDone(key: string, id: string): void {
    const k = `${key}${SEP}${id}${SEP}`;
    if (!this.replica.ownEntries().has(k)) this.replica.set(k, { id: 0, ts: this.ctx.hlc.now() });
  }

  announce(key: string, id: string, pid: Pid, ts: Hlc): void {
    this.replica.set(`${key}${SEP}${id}`, { id: pid.id, ts });
  }

  withdraw(key: string, id: string): void {
    this.replica.delete(`${key}${SEP}${id}`);
  }

  track(pid: Pid, sup: DistributedSupervisor, child: Child): void {
    this.byPid.set(pid.id, { sup, child });
  }

  get isLeaving(): boolean {
    return this.leaving;
  }

  /** Re-evaluates every supervisor once, after the current burst of changes. */
  schedule(): void {
    if (this.queued || this.leaving) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      if (this.leaving) return;
      for (const s of this.sups.values()) s.reconcile();
    });
  }

  private membershipChanged(): void {
    for (const s of this.sups.values()) s.membershipChanged();
    this.schedule();
  }

  /**
   * Graceful leave (node.stop): hands every local child to the node that will run it next, stops
   * it, withdraws this node from every supervisor and sends that out before the node leaves.
   */
  async leave(): Promise<void> {
    if (this.leaving) return;
    this.leaving = true;
    await Promise.all([...this.sups.values()].map((s) => s.handOffAll()));
    for (const key of [...this.sups.keys()]) this.remove(key);
    this.replica.flush();
    this.replica.stop();
    this.timer.cancel();
  }
}

/** One distributed supervisor (or singleton) on this node. */
export class DistributedSupervisor {
  private readonly children: Child[];
  private readonly byId = new Map<string, Child>();
  private readonly mode: 'passive' | 'active';
  private stopped = false;

  constructor(
    private readonly p: Placement,
    /** `d:<name>` or `s:<name>`. */
    private readonly key: string,
    private readonly opts: DistributedSupervisorOptions & {
      quorum?: 'keep-majority';
      /** Register the (single) child under this cluster-wide name (singletons). */
      globalName?: string;
    },
  ) {
    const ctx = p.ctx;
    const max = ctx.limits.maxNameLength;
    if (!Array.isArray(opts.children)) throw invalid('children', 'an array of child specs');
    this.mode = opts.redistribution ?? 'passive';
    if (this.mode !== 'passive' && this.mode !== 'active')
      throw invalid('redistribution', "'passive' or 'active'");
    if (opts.handoff !== undefined && typeof opts.handoff !== 'function')
      throw invalid('handoff', 'a function');
    this.children = opts.children.map((c, i) => {
      const f = `children[${i}]`;
      if (typeof c !== 'object' || c === null) throw invalid(f, 'a child spec');
      if (!isName(c.id, max) || c.id.includes(SEP)) throw invalid(`${f}.id`, 'a non-empty string');
      if (this.byId.has(c.id)) throw invalid(`${f}.id`, `unique (duplicate "${c.id}")`);
      if (!p.spawner.defined(c.kind)) {
        throw new FoundationError(
          'FND_ERR_UNKNOWN_KIND',
          `kind "${String(c.kind)}" is not defined on ${ctx.self}; node.define it first`,
          { kind: c.kind, node: ctx.self },
        );
      }
      const restart = c.restart ?? 'permanent';
      if (!['permanent', 'transient', 'temporary'].includes(restart))
        throw invalid(`${f}.restart`, "'permanent', 'transient' or 'temporary'");
      const child: Child = {
        spec: { id: c.id, kind: c.kind, args: c.args ?? null, restart },
        pid: undefined,
        ts: undefined,
        stopping: false,
        exits: [],
        failed: false,
        stash: undefined,
        kill: undefined,
      };
      this.byId.set(c.id, child);
      return child;
    });
    p.add(key, this);
  }

  /** The supervisor's name. */
  get name(): string {
    return this.key.slice(2);
  }

  child(id: string): Child | undefined {
    return this.byId.get(id);
  }

  /** Where each child runs, as this node sees it (the winning instance when there are two). */
  whichChildren(): DistChildInfo[] {
    return this.children.map((c) => {
      const r = this.runners(c)[0];
      return {
        id: c.spec.id,
        node: r?.node,
        pid: r ? new Pid(r.node, r.id) : undefined,
      };
    });
  }

  /**
   * Stops this supervisor on this node: its children move to the other members (with handed-over
   * state); they keep running there as long as some node runs the supervisor.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.handOffAll();
    this.stopped = true;
    this.p.remove(this.key);
    this.p.schedule();
  }

  /** Instances of child `c` (this node's included), the winner first. */
  private runners(c: Child): Runner[] {
    const out = this.p.remoteRunners(this.key, c.spec.id);
    if (c.pid && c.ts && !c.stopping) out.push({ node: this.p.ctx.self, id: c.pid.id, ts: c.ts });
    return out.sort((a, b) => (earlier(a, b) ? -1 : earlier(b, a) ? 1 : 0));
  }

  /** Whether this node may run the supervisor's children now (keep-majority). */
  private quorate(): boolean {
    if (this.opts.quorum !== 'keep-majority') return true;
    const m = this.p.ctx.members;
    const known = m.known();
    // Only members alive now count: a side cut off stops on suspicion, before the other side
    // declares it down and starts its own instance.
    const reach = new Set([this.p.ctx.self, ...m.alive()]);
    const r = known.filter((k) => reach.has(k)).length;
    if (2 * r !== known.length) return 2 * r > known.length;
    // An even split: the side with the smallest known name keeps it (both sides agree on it).
    return reach.has([...known].sort()[0]!);
  }

  membershipChanged(): void {
    for (const c of this.children) {
      c.failed = false;
      c.exits = [];
    }
  }

  /** Brings this node's part in line with the placement table. Idempotent; never throws. */
  reconcile(): void {
    if (this.stopped) return;
    const ctx = this.p.ctx;
    const quorate = this.quorate();
    const nodes = this.p.participants(this.key);
    if (quorate) nodes.push(ctx.self);
    const synced = this.p.synced();
    for (const c of this.children) {
      if (c.stopping) continue;
      const runners = this.runners(c);
      const mine = c.pid !== undefined;
      if (mine && runners[0]!.node !== ctx.self) {
        // A second instance (a race, or a healed partition): the earliest start keeps running.
        ctx.log.info(
          { supervisor: this.name, child: c.spec.id, winner: runners[0]!.node },
          'duplicate child stopped',
        );
        this.stopLocal(c, DUPLICATE_CHILD);
        continue;
      }
      if (mine && !quorate) {
        ctx.log.warn({ singleton: this.name }, 'minority side: stopping (keep-majority)');
        this.stopLocal(c, QUORUM_LOST);
        continue;
      }
      if (mine) {
        // The only instance runs here: a handoff stashed meanwhile is stale.
        if (runners.length === 1) c.stash = undefined;
        // A temporary child runs once, where it started: never moved (a move is a new run).
        if (this.mode === 'active' && c.spec.restart !== 'temporary') {
          const want = rendezvous(`${this.key}${SEP}${c.spec.id}`, nodes);
          if (want !== undefined && want !== ctx.self) void this.move(c, want);
        }
        continue;
      }
      // Checked (and so copied into this node's part of the table) while the child still runs
      // elsewhere: the mark must outlive the node that set it, which may go down with the child.
      if (this.p.done(this.key, c.spec.id)) continue;
      if (runners.length > 0 || !quorate || !synced || c.failed) continue;
      if (rendezvous(`${this.key}${SEP}${c.spec.id}`, nodes) !== ctx.self) continue;
      // A singleton's name still held by another node's actor: wait until it is released.
      const g = this.opts.globalName;
      if (g !== undefined) {
        const holder = this.p.registry.whereis(g);
        if (holder && holder.node !== ctx.self) continue;
      }
      // A moved child keeps the timestamp of the instance it replaces.
      this.start(c, c.stash?.ts ?? ctx.hlc.now());
    }
  }

  private start(c: Child, ts: Hlc): void {
    const ctx = this.p.ctx;
    const info = c.stash && 'state' in c.stash ? { handoff: c.stash.state } : {};
    c.stash = undefined;
    let pid: Pid;
    try {
      pid = ctx.system.spawn(this.p.spawner.build(c.spec.kind, c.spec.args, info));
    } catch (err) {
      ctx.log.error(
        { supervisor: this.name, child: c.spec.id, err: (err as Error).message },
        'child could not be built; given up on this node until membership changes',
      );
      c.failed = true;
      return;
    }
    c.pid = pid;
    c.ts = ts;
    this.p.track(pid, this, c);
    this.p.announce(this.key, c.spec.id, pid, ts);
    if (c.spec.restart === 'temporary') this.p.markDone(this.key, c.spec.id);
    if (this.opts.globalName !== undefined) {
      try {
        this.p.registry.claim(this.opts.globalName, pid, ts);
      } catch (err) {
        ctx.log.error({ singleton: this.name, err: (err as Error).message }, 'name not claimed');
      }
    }
  }

  private stopLocal(c: Child, reason: ExitReason): void {
    if (!c.pid) return;
    c.stopping = true;
    this.terminate(c, c.pid, reason);
  }

  /** Sends the exit signal; kills the instance if it is still there DIST_SHUTDOWN_MS later. */
  private terminate(c: Child, pid: Pid, reason: ExitReason): void {
    const ctx = this.p.ctx;
    c.kill?.cancel();
    c.kill = ctx.clock.setTimeout(() => {
      c.kill = undefined;
      if (c.pid?.id !== pid.id) return;
      ctx.log.warn(
        { supervisor: this.name, child: c.spec.id, afterMs: DIST_SHUTDOWN_MS },
        'child did not exit after its shutdown; killed',
      );
      ctx.system.exit(pid, 'kill');
    }, DIST_SHUTDOWN_MS);
    ctx.system.exit(pid, reason);
  }

  /** The local instance exited (Placement routes onExit here). */
  exited(c: Child, pid: Pid, reason: ExitReason): void {
    if (c.pid?.id !== pid.id) return;
    const ctx = this.p.ctx;
    const ours = c.stopping;
    c.kill?.cancel();
    c.kill = undefined;
    c.pid = undefined;
    c.stopping = false;
    const ts = c.ts;
    c.ts = undefined;
    const finished =
      c.spec.restart === 'temporary' ||
      (c.spec.restart === 'transient' && (reason === 'normal' || reason === 'shutdown'));
    // Stopped by this node, or lost its name to an earlier instance elsewhere: not a crash.
    if (ours || reason === 'name_conflict' || finished || this.stopped || this.p.isLeaving) {
      if (finished && !ours) this.p.markDone(this.key, c.spec.id);
      this.p.withdraw(this.key, c.spec.id);
      this.p.schedule();
      return;
    }
    const now = ctx.clock.now();
    const within = this.opts.withinMs ?? 5000;
    c.exits = c.exits.filter((t) => now - t < within);
    c.exits.push(now);
    if (c.exits.length > (this.opts.maxRestarts ?? 3)) {
      ctx.log.error(
        { supervisor: this.name, child: c.spec.id },
        'child restarted too often; given up on this node until membership changes',
      );
      c.failed = true;
      this.p.withdraw(this.key, c.spec.id);
      return;
    }
    ctx.log.warn({ supervisor: this.name, child: c.spec.id }, 'child exited; restarting');
    // Restart here, keeping the placement timestamp: it is the same child, not a newer claim.
    queueMicrotask(() => {
      if (c.pid || this.stopped || this.p.isLeaving) return;
      this.start(c, ts ?? ctx.hlc.now());
    });
  }

  /** Hands child `c` to node `to`: handoff state first, then the stop (same ordered connection). */
  private async move(c: Child, to: string): Promise<void> {
    const pid = c.pid;
    if (!pid || c.stopping) return;
    c.stopping = true;
    const ctx = this.p.ctx;
    const msg: HandoffMsg = { sup: this.key, child: c.spec.id };
    if (c.ts) msg.ts = c.ts;
    const state = await this.handoffState(c, pid);
    if (state !== undefined) {
      if (approxSize(state, ctx.limits.maxHandoffBytes) > ctx.limits.maxHandoffBytes) {
        ctx.log.warn(
          { supervisor: this.name, child: c.spec.id },
          'handoff state too large; moved without it',
        );
      } else msg.state = state;
    }
    try {
      ctx.net.send(to, DIST_KINDS.handoff, msg);
    } catch (err) {
      ctx.log.warn({ to, err: (err as Error).message }, 'handoff not sent');
    }
    ctx.log.info({ supervisor: this.name, child: c.spec.id, to }, 'child moves');
    this.terminate(c, pid, 'shutdown');
  }

  private async handoffState(c: Child, pid: Pid): Promise<unknown> {
    const fn = this.opts.handoff;
    if (!fn) return undefined;
    const ctx = this.p.ctx;
    let timer: { cancel(): void } | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(() => fn({ id: c.spec.id, pid })),
        new Promise((_, reject) => {
          timer = ctx.clock.setTimeout(
            () => reject(new Error(`handoff took longer than ${HANDOFF_TIMEOUT_MS} ms`)),
            HANDOFF_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      ctx.log.warn(
        { supervisor: this.name, child: c.spec.id, err: (err as Error).message },
        'handoff failed; the child moves without state',
      );
      return undefined;
    } finally {
      timer?.cancel();
    }
  }

  /** Graceful leave of this node: every local child goes to its next owner among the others. */
  async handOffAll(): Promise<void> {
    const nodes = this.p.participants(this.key);
    await Promise.all(
      this.children.map(async (c) => {
        if (!c.pid || c.stopping) return;
        const to = rendezvous(`${this.key}${SEP}${c.spec.id}`, nodes);
        // A temporary child is not moved (it runs once): it stops with its node.
        if (to !== undefined && c.spec.restart !== 'temporary') await this.move(c, to);
        else this.stopLocal(c, 'shutdown');
      }),
    );
    this.stopped = true;
  }
}

/** A cluster singleton (`node.singleton`): at most one instance in a connected cluster, named cluster-wide. */
export class Singleton {
  constructor(
    private readonly sup: DistributedSupervisor,
    /** The cluster-wide name: `node.send({ global: name }, msg)` reaches the instance. */
    readonly name: string,
  ) {}

  /** The running instance as this node sees it, or undefined while it runs nowhere. */
  whereis(): Pid | undefined {
    return this.sup.whichChildren()[0]!.pid;
  }

  /** The node running it, or undefined. */
  get node(): string | undefined {
    return this.whereis()?.node;
  }

  /** This node stops taking part; the instance moves to another member if it ran here. */
  stop(): Promise<void> {
    return this.sup.stop();
  }
}

/** Checks a supervisor or singleton name. */
export function checkSupName(name: unknown, max: number): asserts name is string {
  if (!isName(name, max - 2) || name.includes(SEP)) throw invalid('name', 'a non-empty string');
}

function invalid(field: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${what}`, { field });
}
