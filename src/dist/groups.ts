// Process groups with :pg semantics (`node.groups`): any actor can join any number of groups, a
// group spans the cluster, members leave when they exit or their node goes down. Scopes are
// independent sets of groups (each its own replicated table, `dist:pg:<scope>`), created on every
// node that takes part, like :pg scope processes. Each node announces only its own members.
import { EventEmitter } from 'node:events';
import { FoundationError } from '../errors.js';
import { Pid, type PidLike } from '../runtime/pid.js';
import type { DistContext } from './context.js';
import { Replica } from './replica.js';
import { DIST_KINDS, isName } from './wire.js';

export interface GroupEvents {
  /** `pids` joined `group` (on this node's view). */
  join: [group: string, pids: Pid[]];
  /** `pids` left `group` (left, exited, or their node went down). */
  leave: [group: string, pids: Pid[]];
}

const SEP = '\u0000';

/** One scope of process groups. */
export class ProcessGroups extends EventEmitter<GroupEvents> {
  private readonly replica: Replica<1>;
  /** group → pidKey → pid. */
  private readonly groups = new Map<string, Map<string, Pid>>();
  /** local actor id → groups it joined (a count per group: :pg allows joining twice). */
  private readonly local = new Map<number, Map<string, number>>();

  constructor(
    private readonly ctx: DistContext,
    readonly scopeName: string,
  ) {
    super();
    this.replica = new Replica<1>(ctx, {
      kind: DIST_KINDS.groupsPrefix + scopeName,
      maxKeyLength: ctx.limits.maxNameLength + 24,
      decodeValue: (v) => (v === 1 ? { ok: true, value: 1 } : { ok: false, reason: 'bad value' }),
    });
    this.replica.onChange((owner, key, prev, next) => {
      const i = key.lastIndexOf(SEP);
      const group = key.slice(0, i);
      const suffix = key.slice(i + 1);
      const id = Number(suffix);
      // Only the form this code writes (a canonical decimal id): " 1" or "0x1" would be a second
      // entry for the same pid.
      if (i <= 0 || !Number.isSafeInteger(id) || id < 1 || String(id) !== suffix) return;
      if (next !== undefined && prev === undefined) this.add(group, new Pid(owner, id));
      else if (next === undefined && prev !== undefined) this.remove(group, new Pid(owner, id));
    });
    ctx.system.onExit((pid) => {
      if (pid.node !== ctx.self) return;
      const mine = this.local.get(pid.id);
      if (!mine) return;
      this.local.delete(pid.id);
      for (const g of mine.keys()) this.replica.delete(g + SEP + pid.id);
    });
  }

  /** Adds a live local actor to `group` (joining twice needs leaving twice, as in :pg). */
  join(group: string, pid: PidLike): void {
    this.checkGroup(group);
    if (pid.node !== this.ctx.self || !this.ctx.system.isAlive(pid)) {
      throw new FoundationError(
        'FND_ERR_NOPROC',
        `${pid.node}.${pid.id} is not a live local actor`,
        {
          pid: { node: pid.node, id: pid.id },
        },
      );
    }
    let mine = this.local.get(pid.id);
    if (!mine) {
      mine = new Map();
      this.local.set(pid.id, mine);
    }
    const n = mine.get(group) ?? 0;
    if (n === 0) this.replica.set(group + SEP + pid.id, 1);
    mine.set(group, n + 1);
  }

  /** Removes a local actor from `group` once; returns false when it was not a member. */
  leave(group: string, pid: PidLike): boolean {
    if (pid.node !== this.ctx.self) return false;
    const mine = this.local.get(pid.id);
    const n = mine?.get(group);
    if (!mine || !n) return false;
    if (n > 1) {
      mine.set(group, n - 1);
      return true;
    }
    mine.delete(group);
    if (mine.size === 0) this.local.delete(pid.id);
    this.replica.delete(group + SEP + pid.id);
    return true;
  }

  /** Every member of `group` on every node this node sees. */
  members(group: string): Pid[] {
    const g = this.groups.get(group);
    return g ? [...g.values()] : [];
  }

  /** Members of `group` on this node. */
  localMembers(group: string): Pid[] {
    return this.members(group).filter((p) => p.node === this.ctx.self);
  }

  /** Names of every group with at least one member. */
  whichGroups(): string[] {
    return [...this.groups.keys()].sort();
  }

  stop(): void {
    this.replica.stop();
  }

  private checkGroup(group: unknown): asserts group is string {
    if (!isName(group, this.ctx.limits.maxNameLength)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "group": a non-empty, well-formed string of at most ${this.ctx.limits.maxNameLength} characters`,
        { field: 'group' },
      );
    }
  }

  private add(group: string, pid: Pid): void {
    let g = this.groups.get(group);
    if (!g) {
      g = new Map();
      this.groups.set(group, g);
    }
    g.set(`${pid.node}${SEP}${pid.id}`, pid);
    this.fire('join', group, [pid]);
  }

  private remove(group: string, pid: Pid): void {
    const g = this.groups.get(group);
    if (!g?.delete(`${pid.node}${SEP}${pid.id}`)) return;
    if (g.size === 0) this.groups.delete(group);
    this.fire('leave', group, [pid]);
  }

  private fire<K extends keyof GroupEvents>(event: K, ...args: GroupEvents[K]): void {
    if (this.listenerCount(event) === 0) return;
    try {
      this.emit(event, ...(args as never));
    } catch (err) {
      this.ctx.log.error({ event, err: (err as Error).message }, 'groups listener threw');
    }
  }
}

/** `node.groups`: the default scope, plus `scope(name)` for others. */
export class Groups extends ProcessGroups {
  private readonly scopes = new Map<string, ProcessGroups>();

  constructor(private readonly dctx: DistContext) {
    super(dctx, 'default');
  }

  /** The scope `name` (created on first use; create it on every node that takes part). */
  scope(name: string): ProcessGroups {
    if (name === 'default') return this;
    let s = this.scopes.get(name);
    if (!s) {
      if (!isName(name, 64)) {
        throw new FoundationError('FND_ERR_INVALID_OPTION', 'option "scope": 1 to 64 characters', {
          field: 'scope',
        });
      }
      s = new ProcessGroups(this.dctx, name);
      this.scopes.set(name, s);
    }
    return s;
  }

  override stop(): void {
    for (const s of this.scopes.values()) s.stop();
    super.stop();
  }
}
