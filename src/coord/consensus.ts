// `node.consensus`: one API — a linearizable KV store with revisions and watches, locks with
// fencing tokens, leader election and barriers — over the backend the options choose: the
// built-in Raft group of 3 or 5 members of the cluster (src/coord/raft-backend.ts, the default) or
// an external etcd v3 cluster (src/coord/etcd.ts). Options are validated in src/options.ts.
import type { DistContext } from '../dist/context.js';
import { FoundationError } from '../errors.js';
import { parseConsensusOptions } from '../options.js';
import type {
  ConsensusBackend,
  ConsensusStatus,
  LeaderHandle,
  LockHandle,
  Revisioned,
} from './backend.js';
import type { EtcdConsensusOptions } from './etcd.js';
import type { KvEvent } from './machine.js';
import { RaftBackend, type RaftConsensusOptions } from './raft-backend.js';

export type {
  ConsensusStatus,
  EtcdConsensusOptions,
  LeaderHandle,
  LockHandle,
  RaftConsensusOptions,
  Revisioned,
};

/** `backend: 'raft'` (or none): the built-in group. `backend: 'etcd'`: an etcd v3 cluster. */
export type ConsensusOptions = RaftConsensusOptions | EtcdConsensusOptions;

export class Consensus {
  /** Always there: it answers the Raft messages and requests of other nodes. */
  private readonly raft: RaftBackend;
  private backend: ConsensusBackend | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly ctx: DistContext) {
    this.raft = new RaftBackend(ctx);
  }

  /**
   * Joins (or, on a node outside the group, just points at) the consensus group, or connects to
   * etcd with `backend: 'etcd'`. Idempotent after the first call. Invalid options throw
   * FND_ERR_INVALID_OPTION naming the field (`consensus.endpoints`, ...).
   */
  start(opts: ConsensusOptions = {}): Promise<void> {
    if (this.starting) return this.starting;
    let o: ConsensusOptions;
    try {
      o = parseConsensusOptions(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    this.starting = (async () => {
      if (o.backend === 'etcd') {
        const { EtcdBackend } = await import('./etcd.js');
        const b = new EtcdBackend(this.ctx.self, this.ctx.log, o);
        await b.start();
        this.backend = b;
      } else {
        await this.raft.start(o);
        this.backend = this.raft;
      }
    })();
    this.starting.catch(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  status(): ConsensusStatus {
    return (this.backend ?? this.raft).status();
  }

  /** The node is stopping: a Raft leader hands its leadership over first; leader handles are deposed. */
  async stop(): Promise<void> {
    const other = this.backend !== this.raft ? this.backend : undefined;
    await Promise.all([this.raft.stop(), other?.stop()]);
  }

  /**
   * The node is about to stop: when it leads the Raft group it hands the leadership over now
   * (waiting at most an election timeout) and goes on serving as a follower until `stop()`.
   * Called first by `node.stop()`; nothing to do on etcd.
   */
  async handOver(): Promise<void> {
    if (this.backend === this.raft) await this.raft.handOver();
  }

  private get b(): ConsensusBackend {
    return this.backend ?? this.raft;
  }

  readonly kv = {
    /** Linearizable read: the latest committed value and its revision, or undefined. */
    get: <T = unknown>(key: string): Promise<Revisioned<T> | undefined> => this.b.get<T>(key),
    /** Writes `value`; resolves with the new revision once committed. */
    put: (key: string, value: unknown): Promise<number> => this.b.put(key, value),
    /** Deletes `key`; resolves true when it existed. */
    delete: (key: string): Promise<boolean> => this.b.delete(key),
    /**
     * Writes `value` only if `key`'s revision is still `revision` (0: only if absent). Resolves
     * `{ ok, revision }`: the new revision, or the current one when it did not match.
     */
    cas: (
      key: string,
      revision: number,
      value: unknown,
    ): Promise<{ ok: boolean; revision: number }> => this.b.cas(key, revision, value),
    /**
     * Calls `fn` for every change of a key under `prefix`, in revision order. Raft: on group
     * members only, as they apply the log. etcd: on every node. Returns an unsubscribe.
     */
    watch: (prefix: string, fn: (e: KvEvent) => void): (() => void) => this.b.watch(prefix, fn),
  };

  /**
   * Acquires lock `name` for `ttl` ms (waiting up to `timeout` ms while another node holds it).
   * The fencing token only increases across grants: a resource that remembers the largest token
   * it saw can refuse a holder whose lease expired while it was paused.
   */
  lock(name: string, opts: { ttl: number; timeout?: number }): Promise<LockHandle> {
    return this.b.lock(name, opts);
  }

  /** Campaigns for leadership of `group` (a lease of `ttl` ms, renewed) until `stop()`. */
  leader(group: string, opts: { ttl?: number } = {}): LeaderHandle {
    return this.b.leader(group, opts);
  }

  /** Resolves once `n` distinct nodes have arrived at barrier `name` (one-shot per name). */
  barrier(name: string, n: number, opts: { timeout?: number } = {}): Promise<void> {
    return this.b.barrier(name, n, opts);
  }

  /**
   * Adds `node` to the group's voters (Raft only; one change at a time; resolves with the new
   * voters once committed). Start the node first with `start({ members: <current voters>, join:
   * true })`: it then learns the log from the leader instead of bootstrapping a group of its own.
   */
  async addMember(node: string): Promise<string[]> {
    return this.raftOnly('addMember').addMember(node);
  }

  /** Removes `node` from the group's voters (Raft only; a removed leader steps down once it commits). */
  async removeMember(node: string): Promise<string[]> {
    return this.raftOnly('removeMember').removeMember(node);
  }

  /**
   * Hands the Raft group's leadership from this member (the leader) to `to` (default: the most
   * up-to-date follower) without waiting for an election timeout; resolves with the new leader.
   * Raft only. A leader's node does this on its own when it stops.
   */
  async transferLeadership(to?: string): Promise<string> {
    return this.raftOnly('transferLeadership').transferLeadership(to);
  }

  private raftOnly(op: string): RaftBackend {
    if (this.backend?.kind === 'etcd')
      throw new FoundationError(
        'FND_ERR_CONSENSUS_UNSUPPORTED',
        `${op} is not available on the etcd backend`,
        { op },
      );
    return this.raft;
  }
}
