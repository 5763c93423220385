// The built-in backend of `node.consensus`: a Raft group of 3 or 5 members of the cluster
// (src/coord/raft/raft.ts) replicating the state machine of src/coord/machine.ts, and the client
// side every node of the cluster uses against it: a linearizable KV store with revisions and watches, locks with fencing tokens, leader
// election and barriers. Raft messages and client requests ride on node-level messaging; writes go
// through the log, reads through read index, and clients follow redirects to the leader.
import { join } from 'node:path';
import type { DistContext } from '../dist/context.js';
import { FoundationError } from '../errors.js';
import type { TimerHandle } from '../util/clock.js';
import type {
  ConsensusBackend,
  ConsensusStatus,
  LeaderHandle,
  LockHandle,
  Revisioned,
} from './backend.js';
import { type Command, type KvEvent, Machine, type Result } from './machine.js';
import { type Message, Raft, type Ready } from './raft/raft.js';
import { FileStorage, MemoryStorage, type RaftStorage } from './raft/storage.js';
import {
  COORD_KINDS,
  COORD_LIMITS,
  decodeRaft,
  decodeRequest,
  type Request,
  type Response,
} from './wire.js';

export interface RaftConsensusOptions {
  /** The built-in Raft group (the default). */
  backend?: 'raft';
  /** The group's voters by node name (3 or 5). Every member must be started with the same list. */
  members?: string[];
  /**
   * Without `members`: take the first `size` names (sorted) among this node and the members alive
   * now. Every node must see the same members when it starts (start them together and wait until
   * they see each other); otherwise name them. Default 3.
   */
  size?: 3 | 5;
  /**
   * This node is being added to a running group (see `addMember`): it starts with no voters and
   * learns the configuration from the leader. `members` lists the current voters (where to send
   * requests). Default false.
   */
  join?: boolean;
  /** Directory for this member's Raft log (`raft-<node>.log`, fsynced). Default: memory only. */
  dir?: string;
  /** Raft tick, ms. Default 30 (heartbeats every tick; election timeout 10–20 ticks). */
  tickMs?: number;
  /** Election timeout base, ticks. Default 10. */
  electionTicks?: number;
  /** How long a client operation may look for a leader before failing, ms. Default 5000. */
  timeoutMs?: number;
  /** Compact the log after this many applied entries. Default 1000. */
  snapshotEvery?: number;
}

type Watcher = { prefix: string; fn: (e: KvEvent) => void };

const sleep = (ctx: DistContext, ms: number) =>
  new Promise<void>((r) => ctx.clock.setTimeout(r, ms));

export class RaftBackend implements ConsensusBackend {
  readonly kind = 'raft';
  private opts: Required<
    Omit<RaftConsensusOptions, 'members' | 'dir' | 'size' | 'join' | 'backend'>
  > = {
    tickMs: 30,
    electionTicks: 10,
    timeoutMs: 5000,
    snapshotEvery: 1000,
  };
  private members: string[] = [];
  private started = false;
  /** Set by stop(): the node is going away; campaign loops end and operations fail. */
  private closed = false;
  /** Settles when this member closes: requests still in flight to other members stop waiting. */
  private readonly closing: Promise<undefined>;
  private signalClosed!: () => void;
  private raft: Raft | undefined;
  private storage: RaftStorage | undefined;
  private readonly machine = new Machine();
  private timer: TimerHandle | undefined;
  private leaderHint: string | null = null;
  private seq = 0;
  private readSeq = 0;
  private readonly proposals = new Map<number, { term: number; done: (r: Response) => void }>();
  private readonly reads = new Map<
    number,
    { index: number | undefined; serve: () => void; fail: () => void }
  >();
  private readonly watchers = new Set<Watcher>();
  /** Running leader() campaigns of this node: resigned (deposed, lease released) on stop. */
  private readonly campaigns = new Set<() => Promise<void>>();
  private readonly owner: string;

  constructor(private readonly ctx: DistContext) {
    this.closing = new Promise((resolve) => {
      this.signalClosed = () => resolve(undefined);
    });
    this.owner = `${ctx.self}~${ctx.epoch}`;
    this.machine.onEvent = (e) => {
      for (const w of this.watchers) {
        if (!e.key.startsWith(w.prefix)) continue;
        try {
          w.fn(e);
        } catch (err) {
          ctx.log.error({ err: (err as Error).message }, 'consensus watcher threw');
        }
      }
    };
    ctx.net.on(COORD_KINDS.raft, (payload, from) => this.receive(payload, from));
    ctx.net.handle(COORD_KINDS.request, (payload, from) => {
      const d = decodeRequest(payload, COORD_LIMITS);
      if (!d.ok) throw new FoundationError('FND_ERR_CONSENSUS_MESSAGE', d.reason, { from });
      return this.serve(bind(d.value, from));
    });
  }

  /**
   * Joins (or, on a node outside the group, just points at) the consensus group. Idempotent
   * after the first call. The group runs once a majority of its members have started.
   */
  async start(opts: RaftConsensusOptions = {}): Promise<void> {
    if (this.started) return;
    const { tickMs, electionTicks, timeoutMs, snapshotEvery } = opts;
    this.opts = {
      ...this.opts,
      ...definedOnly({ tickMs, electionTicks, timeoutMs, snapshotEvery }),
    };
    const members =
      opts.members ?? [this.ctx.self, ...this.ctx.members.alive()].sort().slice(0, opts.size ?? 3);
    if (
      members.length === 0 ||
      members.length > COORD_LIMITS.maxVoters ||
      new Set(members).size !== members.length
    )
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'consensus.members: 1 to 7 distinct node names',
        {
          field: 'members',
        },
      );
    this.members = [...members].sort();
    this.started = true;
    if (!this.members.includes(this.ctx.self) && !opts.join) return;
    this.storage = opts.dir
      ? new FileStorage(join(opts.dir, `raft-${this.ctx.self}.log`), opts.join ? [] : this.members)
      : new MemoryStorage(opts.join ? [] : this.members);
    const p = this.storage.load();
    this.raft = new Raft({
      id: this.ctx.self,
      voters: p.bootstrap,
      electionTicks: this.opts.electionTicks,
      maxEntriesPerMessage: 64,
      random: Math.random,
      restore: { hardState: p.hardState, snapshot: p.snapshot, entries: p.entries },
    });
    if (p.snapshot) this.machine.restore(p.snapshot.data);
    this.timer = this.ctx.clock.setInterval(() => {
      this.raft?.tick();
      this.process();
    }, this.opts.tickMs);
    this.process();
  }

  status(): ConsensusStatus {
    return {
      backend: 'raft',
      started: this.started,
      member: this.raft !== undefined,
      members: this.members,
      role: this.raft?.role,
      term: this.raft?.term,
      leader: this.raft?.leader,
      commit: this.raft?.commit,
    };
  }

  /**
   * Leaves the group on this node (the node is stopping): leader() campaigns resign (onDeposed,
   * and their leases go back to the group, so the next candidate need not wait for them to run
   * out), then a leader hands its leadership to the most up-to-date follower, so a planned stop
   * costs the group no election timeout. Each step waits at most an election timeout. Pending and
   * later operations fail.
   */
  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }
  private stopping: Promise<void> | undefined;

  /** When this member leads: transfers the leadership (at most an election timeout); else nothing. */
  async handOver(): Promise<void> {
    if (this.closed || this.raft?.role !== 'leader' || this.raft.voters.length < 2) return;
    try {
      await this.transferLeadership();
    } catch {
      // No follower took over in time: the others elect one after their election timeout.
    }
  }

  private async leave(): Promise<void> {
    const resigned = Promise.all([...this.campaigns].map((resign) => resign()));
    // A group out of reach releases nothing: its leases run out by themselves.
    await Promise.race([resigned, sleep(this.ctx, this.opts.electionTicks * this.opts.tickMs * 2)]);
    await this.handOver();
    this.closed = true;
    this.signalClosed();
    this.timer?.cancel();
    this.timer = undefined;
    this.storage?.close();
    this.storage = undefined;
    this.raft = undefined;
    for (const p of this.proposals.values()) p.done({ ok: false, redirect: null });
    this.proposals.clear();
    for (const r of this.reads.values()) r.fail();
    this.reads.clear();
  }

  // ---- the API ----

  /**
   * Hands this member's leadership to voter `to` (default: the most up-to-date follower) and
   * resolves with the new leader once this member has stepped down. The leader refuses new
   * proposals meanwhile (clients retry), brings the target up to date and tells it to campaign
   * at once; after an election timeout without success the transfer is aborted
   * (FND_ERR_CONSENSUS_TIMEOUT) and this member keeps leading.
   */
  async transferLeadership(to?: string): Promise<string> {
    const raft = this.raft;
    if (raft?.role !== 'leader')
      throw new FoundationError(
        'FND_ERR_CONSENSUS_NOT_LEADER',
        "transferLeadership runs on the group's leader",
        { node: this.ctx.self, leader: raft?.leader ?? null },
      );
    const target = raft.transferLeadership(to);
    if (target === undefined)
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        to === undefined ? 'no other voter to transfer to' : `"${to}" is not another voter`,
        { field: 'to' },
      );
    this.process();
    const deadline = this.ctx.clock.now() + this.opts.electionTicks * this.opts.tickMs * 2;
    for (;;) {
      if (this.raft !== raft) break;
      if (raft.role !== 'leader') return raft.leader ?? target;
      if (raft.transferTarget === undefined || this.ctx.clock.now() >= deadline) break;
      await sleep(this.ctx, Math.max(1, Math.floor(this.opts.tickMs / 3)));
    }
    throw new FoundationError(
      'FND_ERR_CONSENSUS_TIMEOUT',
      `leadership transfer to "${target}" did not complete in an election timeout`,
      { name: target },
    );
  }

  /** Linearizable read: the latest committed value and its revision, or undefined. */
  async get<T = unknown>(key: string): Promise<Revisioned<T> | undefined> {
    const r = (await this.submit({ id: this.nextId(), t: 'get', key })) as Revisioned<T> | null;
    return r ?? undefined;
  }

  async put(key: string, value: unknown): Promise<number> {
    return ((await this.command({ op: 'put', key, value })) as { revision: number }).revision;
  }

  async delete(key: string): Promise<boolean> {
    return ((await this.command({ op: 'del', key })) as { deleted: boolean }).deleted;
  }

  async cas(
    key: string,
    revision: number,
    value: unknown,
  ): Promise<{ ok: boolean; revision: number }> {
    return (await this.command({ op: 'cas', key, rev: revision, value })) as {
      ok: boolean;
      revision: number;
    };
  }

  /** Changes under `prefix` as this member applies them, in log order (members only). */
  watch(prefix: string, fn: (e: KvEvent) => void): () => void {
    if (!this.raft)
      throw new FoundationError(
        'FND_ERR_CONSENSUS_NOT_MEMBER',
        'watch needs a member of the consensus group',
        {
          node: this.ctx.self,
        },
      );
    const w = { prefix, fn };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /**
   * Acquires lock `name` for `ttl` ms (waiting up to `timeout` ms while another node holds it).
   * The fencing token only increases across grants: a resource that remembers the largest token
   * it saw can refuse a holder whose lease expired while it was paused.
   */
  async lock(name: string, opts: { ttl: number; timeout?: number }): Promise<LockHandle> {
    const deadline = this.ctx.clock.now() + (opts.timeout ?? this.opts.timeoutMs);
    const owner = `${this.owner}#${++this.seq}`;
    for (;;) {
      const r = (await this.command({
        op: 'lock',
        name,
        owner,
        ttlMs: Math.ceil(opts.ttl),
      })) as Result & {
        ok: boolean;
      };
      if (r.ok) {
        const { token, expiresAt } = r as { token: number; expiresAt: number };
        return {
          token,
          expiresAt,
          release: async () =>
            ((await this.command({ op: 'unlock', name, token })) as { ok: boolean }).ok,
        };
      }
      if (this.ctx.clock.now() >= deadline)
        throw new FoundationError(
          'FND_ERR_CONSENSUS_TIMEOUT',
          `lock "${name}" is held by another node`,
          {
            name,
          },
        );
      await sleep(
        this.ctx,
        Math.min(Math.max(this.opts.tickMs * 3, 50), Math.max(0, deadline - this.ctx.clock.now())),
      );
    }
  }

  /** Campaigns for leadership of `group` (a lease renewed every ttl/3) until `stop()`. */
  leader(group: string, opts: { ttl?: number } = {}): LeaderHandle {
    const ttl = opts.ttl ?? 3000;
    const elected: Array<(t: number) => void> = [];
    const deposed: Array<() => void> = [];
    let token: number | undefined;
    let stopped = false;
    /**
     * Until when (this node's clock) the lease surely holds: `ttl` after the request that granted
     * or renewed it was sent (the group's leader stamps it later). A renewal not confirmed a tenth
     * of the ttl before that deposes, so no other node can have been granted the lease yet (the
     * tenth: some room for the clocks' skew).
     */
    let heldUntil = 0;
    const margin = ttl / 10;
    /** The lock request whose answer the run loop has not taken: resign gives its grant back. */
    let asking: Promise<{ ok: boolean; token?: number }> | undefined;
    const name = `leader:${group}`;
    const owner = `${this.owner}#${++this.seq}`;
    const lose = () => {
      if (token === undefined) return;
      token = undefined;
      for (const f of deposed) f();
    };
    const resign = async () => {
      stopped = true;
      this.campaigns.delete(resign);
      const held = token;
      lose();
      // A grant on its way (or just arrived) is given back too: the run loop no longer takes it.
      const late = held === undefined ? await asking?.catch(() => undefined) : undefined;
      const t = held ?? (late?.ok ? late.token : undefined);
      if (t !== undefined) await this.command({ op: 'unlock', name, token: t }).catch(() => {});
    };
    this.campaigns.add(resign);
    const run = async () => {
      while (!stopped && !this.closed) {
        try {
          const sentAt = this.ctx.clock.now();
          if (token === undefined) {
            asking = this.command({ op: 'lock', name, owner, ttlMs: ttl }) as Promise<{
              ok: boolean;
              token?: number;
            }>;
            const r = await asking;
            if (!stopped) {
              asking = undefined;
              if (r.ok) {
                token = r.token!;
                heldUntil = sentAt + ttl;
                for (const f of elected) f(token);
              }
            }
          } else {
            const until = heldUntil - margin;
            const r = (await this.command({ op: 'renew', name, token, ttlMs: ttl }, until)) as {
              ok: boolean;
            };
            if (r.ok) heldUntil = sentAt + ttl;
            else lose();
          }
        } catch {
          // No leader reachable: our lease may run out meanwhile; give it up before it does.
          lose();
        }
        await sleep(this.ctx, ttl / 3);
      }
    };
    void run();
    return {
      onElected: (fn) => elected.push(fn),
      onDeposed: (fn) => deposed.push(fn),
      isLeader: () => token !== undefined,
      stop: resign,
    };
  }

  /**
   * Adds `node` to the group's voters (one change at a time; resolves with the new voters once
   * committed). Start the node first with `start({ members: <current voters>, join: true })`: it
   * then learns the log from the leader instead of bootstrapping a group of its own.
   */
  async addMember(node: string): Promise<string[]> {
    const v = (await this.submit({ id: this.nextId(), t: 'conf', op: 'add', node })) as string[];
    if (!this.members.includes(node)) this.members = [...this.members, node].sort();
    return v;
  }

  /** Removes `node` from the group's voters (a removed leader steps down once it commits). */
  async removeMember(node: string): Promise<string[]> {
    const v = (await this.submit({ id: this.nextId(), t: 'conf', op: 'remove', node })) as string[];
    this.members = this.members.filter((m) => m !== node);
    return v;
  }

  /** Resolves once `n` distinct nodes have arrived at barrier `name` (one-shot per name). */
  async barrier(name: string, n: number, opts: { timeout?: number } = {}): Promise<void> {
    const deadline = this.ctx.clock.now() + (opts.timeout ?? this.opts.timeoutMs);
    await this.command({ op: 'arrive', name, node: this.ctx.self });
    for (;;) {
      const count = (await this.submit({ id: this.nextId(), t: 'barrier', name })) as number;
      if (count >= n) return;
      if (this.ctx.clock.now() >= deadline)
        throw new FoundationError(
          'FND_ERR_CONSENSUS_TIMEOUT',
          `barrier "${name}": ${count} of ${n} arrived`,
          {
            name,
            count,
            n,
          },
        );
      await sleep(this.ctx, Math.max(this.opts.tickMs * 3, 50));
    }
  }

  // ---- client side ----

  private nextId(): string {
    return `${this.owner}:${++this.seq}`;
  }

  /** Submits a state machine command; gives up at clock time `until` if that is earlier. */
  private command(cmd: Command, until?: number): Promise<unknown> {
    return this.submit({ id: this.nextId(), t: 'cmd', cmd }, until);
  }

  /** Sends a request to the leader (following redirects, retrying the same id) until the deadline. */
  private async submit(req: Request, until = Number.POSITIVE_INFINITY): Promise<unknown> {
    if (!this.started || this.closed)
      throw new FoundationError(
        'FND_ERR_CONSENSUS_NOT_STARTED',
        this.closed ? 'this node has stopped' : 'call node.consensus.start() first',
      );
    const deadline = Math.min(this.ctx.clock.now() + this.opts.timeoutMs, until);
    let rotate = 0;
    while (this.ctx.clock.now() < deadline) {
      // Stopped meanwhile: pending operations fail (stop()), they are not retried elsewhere.
      if (this.closed)
        throw new FoundationError('FND_ERR_CONSENSUS_NOT_STARTED', 'this node has stopped');
      const to = this.leaderHint ?? this.members[rotate++ % this.members.length]!;
      let res: Response | undefined;
      try {
        const left = Math.max(1, deadline - this.ctx.clock.now());
        res =
          to === this.ctx.self
            ? await this.serve(bind(req, this.ctx.self))
            : ((await Promise.race([
                this.ctx.net.request(to, COORD_KINDS.request, req, left),
                this.closing,
              ])) as Response | undefined);
      } catch {
        this.leaderHint = null;
      }
      if (res?.ok) {
        this.leaderHint = to;
        return res.result;
      }
      if (res?.redirect && res.redirect !== to) {
        this.leaderHint = res.redirect;
        continue;
      }
      this.leaderHint = null;
      await sleep(this.ctx, this.opts.tickMs * 2);
    }
    throw new FoundationError(
      'FND_ERR_CONSENSUS_UNAVAILABLE',
      'no consensus leader answered in time',
      {
        members: this.members,
      },
    );
  }

  // ---- server side (members) ----

  private serve(req: Request): Promise<Response> {
    const raft = this.raft;
    if (raft?.role !== 'leader')
      return Promise.resolve({ ok: false, redirect: raft?.leader ?? null });
    return new Promise((resolve, reject) => {
      if (req.t === 'conf') {
        const next =
          req.op === 'add'
            ? [...new Set([...raft.voters, req.node])]
            : raft.voters.filter((v) => v !== req.node);
        if (next.length === raft.voters.length) return resolve({ ok: true, result: raft.voters });
        if (next.length > COORD_LIMITS.maxVoters) {
          reject(
            new FoundationError(
              'FND_ERR_INVALID_OPTION',
              `at most ${COORD_LIMITS.maxVoters} members`,
              {
                field: 'members',
              },
            ),
          );
          return;
        }
        const r = raft.proposeConf(next);
        // Refused while another change is still uncommitted: the client retries.
        if (!r) return resolve({ ok: false, redirect: null });
        this.proposals.set(r.index, { term: r.term, done: resolve });
      } else if (req.t === 'cmd') {
        const at = Math.max(Math.floor(this.ctx.clock.wallNow()), this.machine.now);
        const r = raft.propose({ id: req.id, at, cmd: req.cmd });
        if (!r) return resolve({ ok: false, redirect: raft.leader });
        this.proposals.set(r.index, { term: r.term, done: resolve });
      } else {
        const id = ++this.readSeq;
        if (!raft.readIndex(id)) return resolve({ ok: false, redirect: raft.leader });
        this.reads.set(id, {
          index: undefined,
          serve: () => {
            if (req.t === 'get') {
              const v = this.machine.get(req.key);
              resolve({ ok: true, result: v ? { value: v.value, revision: v.revision } : null });
            } else resolve({ ok: true, result: this.machine.barrierCount(req.name) });
          },
          fail: () => resolve({ ok: false, redirect: null }),
        });
      }
      this.schedule();
    });
  }

  private receive(payload: unknown, from: string): void {
    if (!this.raft || (!this.members.includes(from) && !this.raft.voters.includes(from))) return;
    const d = decodeRaft(payload, from, this.ctx.self, COORD_LIMITS);
    if (!d.ok) {
      this.ctx.log.warn({ from, reason: d.reason }, 'consensus message refused');
      return;
    }
    this.raft.step(d.value);
    this.schedule();
  }

  /**
   * Drains Ready once the current batch of messages and requests has been stepped: everything
   * that arrived together shares one fsync and one send per peer (group commit).
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.process();
    });
  }
  private scheduled = false;

  private process(): void {
    const raft = this.raft;
    if (!raft) return;
    while (raft.hasReady()) this.handle(raft, raft.ready());
    if (raft.role !== 'leader' && raft.leader) this.leaderHint = raft.leader;
  }

  private handle(raft: Raft, rd: Ready): void {
    // Durable first: a vote or an acknowledged entry must survive a crash before anyone hears of it.
    this.storage!.persist(rd);
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot) this.machine.restore(rd.snapshot.data);
    for (const e of rd.committed) {
      const result =
        e.type === 'normal'
          ? this.machine.apply(e.data)
          : e.type === 'conf'
            ? (e.data as { voters: string[] }).voters
            : undefined;
      const p = this.proposals.get(e.index);
      if (!p) continue;
      this.proposals.delete(e.index);
      p.done(p.term === e.term ? { ok: true, result } : { ok: false, redirect: raft.leader });
    }
    for (const r of rd.reads) {
      const pr = this.reads.get(r.id);
      if (pr) pr.index = r.index;
    }
    for (const id of raft.takeFailedReads()) {
      this.reads.get(id)?.fail();
      this.reads.delete(id);
    }
    for (const [id, r] of this.reads) {
      if (r.index !== undefined && raft.applied >= r.index) {
        this.reads.delete(id);
        r.serve();
      }
    }
    if (raft.role !== 'leader')
      for (const [i, p] of this.proposals) {
        // Deposed: entries may still commit under the next leader, but this node cannot tell
        // its client when; the client retries with the same id (applied at most once).
        this.proposals.delete(i);
        p.done({ ok: false, redirect: raft.leader });
      }
    if (raft.applied - raft.snapshotIndex >= this.opts.snapshotEvery)
      this.storage!.saveSnapshot(raft.compact(raft.applied, this.machine.snapshot()));
  }

  private send(m: Message): void {
    try {
      this.ctx.net.send(m.to, COORD_KINDS.raft, m);
    } catch {
      // Unreachable now: Raft retries on its own (heartbeats, probes, elections).
    }
  }
}

/** The sender owns what it claims: barrier arrivals and lock owners are bound to `from`. */
function bind(req: Request, from: string): Request {
  // Request ids are scoped by sender too, so no node can hit another's deduplicated result.
  const r = { ...req, id: `${from}/${req.id}` };
  if (r.t !== 'cmd') return r;
  const c = r.cmd as Command;
  if (c.op === 'arrive') return { ...r, cmd: { ...c, node: from } };
  if (c.op === 'lock' && !c.owner.startsWith(`${from}~`))
    return { ...r, cmd: { ...c, owner: `${from}~${c.owner}` } };
  return r;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
