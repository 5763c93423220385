// The node a user holds: one process's presence in one or more clusters. With one cluster (the
// common case) every call goes straight to it; with several (`clusters: {...}`), each is addressed
// with `node.cluster(name)`, and membership events of all of them arrive here tagged with
// `info.cluster`. Clusters share nothing: each has its own port, secret, discovery and members.
import { EventEmitter } from 'node:events';
import type { Member } from './cluster/membership.js';
import type { Messenger } from './cluster/messenger.js';
import { ClusterNode, type FoundationNodeEvents } from './cluster-node.js';
import { FoundationError } from './errors.js';
import { type FoundationOptions, resolveAll } from './options.js';

export type { FoundationNodeEvents, MemberEventName } from './cluster-node.js';

const FORWARDED = ['memberUp', 'memberDown', 'memberSuspect', 'memberLeft'] as const;

export class FoundationNode extends EventEmitter<FoundationNodeEvents> {
  /** This node's name (in every cluster, unless a cluster's options override it). */
  readonly name: string;
  private readonly byName: Map<string, ClusterNode>;

  private constructor(clusters: ClusterNode[]) {
    super();
    this.byName = new Map(clusters.map((c) => [c.clusterName, c]));
    this.name = clusters[0]!.name;
    for (const c of clusters) {
      for (const event of FORWARDED) c.on(event, (m, info) => this.emit(event, m, info));
      c.on('error', (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
    }
  }

  /**
   * Validates options and starts one membership per cluster (in parallel). If any cluster fails
   * to start, the ones already started are stopped and the error is thrown.
   */
  static async start(options: FoundationOptions = {}): Promise<FoundationNode> {
    const resolved = resolveAll(options);
    const results = await Promise.allSettled(resolved.map((o) => ClusterNode.start(o)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all(
        results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)),
      );
      throw (failed as PromiseRejectedResult).reason;
    }
    return new FoundationNode(results.map((r) => (r as PromiseFulfilledResult<ClusterNode>).value));
  }

  /** Names of the clusters this node belongs to, in the order they were configured. */
  clusters(): string[] {
    return [...this.byName.keys()];
  }

  /**
   * This node's membership in cluster `name`. Without a name: the only cluster, or
   * FND_ERR_AMBIGUOUS_CLUSTER when there are several.
   */
  cluster(name?: string): ClusterNode {
    if (name === undefined) {
      if (this.byName.size === 1) return this.byName.values().next().value!;
      throw new FoundationError(
        'FND_ERR_AMBIGUOUS_CLUSTER',
        `this node is in clusters ${this.clusters().join(', ')}; name one with node.cluster(name)`,
        { clusters: this.clusters() },
      );
    }
    const c = this.byName.get(name);
    if (!c) {
      throw new FoundationError(
        'FND_ERR_UNKNOWN_CLUSTER',
        `this node is not in cluster "${name}"`,
        {
          cluster: name,
          clusters: this.clusters(),
        },
      );
    }
    return c;
  }

  // ---- the single-cluster API: the only cluster's, unchanged ----

  /** The cluster's name (single-cluster nodes). */
  get clusterName(): string {
    return this.cluster().clusterName;
  }

  /** `host:port` peers dial to reach this node (single-cluster nodes). */
  get address(): string {
    return this.cluster().address;
  }

  /** Node-level messaging (single-cluster nodes); with several clusters use node.cluster(name).messenger. */
  get messenger(): Messenger {
    return this.cluster().messenger;
  }

  /** The discovery strategy in use and why it was chosen (single-cluster nodes). */
  get discovery(): { name: string; reason: string } {
    return this.cluster().discovery;
  }

  /** Lifeguard local-health score (single-cluster nodes). */
  get health(): number {
    return this.cluster().health;
  }

  /** This node's incarnation (single-cluster nodes). */
  get incarnation(): number {
    return this.cluster().incarnation;
  }

  /** Every member including this node (single-cluster nodes). */
  members(): Member[] {
    return this.cluster().members();
  }

  /** Joins through a node at `host:port` (single-cluster nodes). */
  join(address: string): Promise<string | undefined> {
    return this.cluster().join(address);
  }

  /** Graceful leave from every cluster. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all([...this.byName.values()].map((c) => c.stop()));
  }
}
