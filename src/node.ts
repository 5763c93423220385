// The node a user holds: one process's presence in one or more clusters. With one cluster (the
// common case) every call goes straight to it; with several (`clusters: {...}`), each is addressed
// with `node.cluster(name)`, and membership events of all of them arrive here tagged with
// `info.cluster`. Clusters share nothing: each has its own port, secret, discovery and members.
import { EventEmitter } from 'node:events';
import type { Member } from './cluster/membership.js';
import type { Messenger, RequestOptions, SendOptions } from './cluster/messenger.js';
import { ClusterNode, type FoundationNodeEvents } from './cluster-node.js';
import { Consensus } from './coord/consensus.js';
import type { Config } from './core/config.js';
import type { Events } from './core/events.js';
import { HttpEndpoints } from './core/http.js';
import { splitCoreOptions } from './core/options.js';
import type { Protection } from './core/protection.js';
import { CoreServices, type PreparedCore, prepareCore, releasePrepared } from './core/services.js';
import type { Telemetry } from './core/telemetry.js';
import type { MdnsControl } from './discovery/strategies/mdns.js';
import { contextFor, type DistContext } from './dist/context.js';
import {
  checkSupName,
  DistributedSupervisor,
  type DistributedSupervisorOptions,
  Placement,
  Singleton,
  type SingletonOptions,
} from './dist/dsupervisor.js';
import { Groups } from './dist/groups.js';
import {
  abcast,
  type MultiCallOptions,
  type MultiCallResult,
  multiCall,
} from './dist/multicall.js';
import { PubSub } from './dist/pubsub.js';
import { Registry } from './dist/registry.js';
import { type KindFactory, RemoteSpawn, type SpawnOnOptions } from './dist/spawn.js';
import { DIST_LIMITS } from './dist/wire.js';
import { FoundationError } from './errors.js';
import { type FoundationOptions, resolveAll, withDefaultSecrets } from './options.js';
import type {
  Behaviour,
  CallMessage,
  CallOptions,
  CallResult,
  CastMessage,
  DownMessage,
  ExitReason,
  HandlerProtocol,
  InfoMessage,
  LooseGenServer,
  MessageHandler,
  ProtocolOf,
  SpawnOptions,
  Target,
} from './runtime/behaviour.js';
import type { Pid, PidLike } from './runtime/pid.js';
import { badRequest } from './runtime/remote.js';
import { ServiceRegistry } from './runtime/service-registry.js';
import { RuntimeMonitor, type RuntimeStats } from './runtime/stats.js';
import { Supervisor } from './runtime/supervisor.js';
import { ACTOR_KINDS, ActorSystem, type RemoteRouter } from './runtime/system.js';
import { propagation } from './services/context.js';
import type {
  Contract,
  Handlers,
  Implementation,
  ServiceHandle,
  ServiceOptions,
} from './services/services.js';
import { Services } from './services/services.js';
import { StateStore } from './state/store.js';
import { busyPoller } from './transport/busy-poll.js';
import { HybridClock } from './util/hlc.js';

export type { FoundationNodeEvents, MemberEventName } from './cluster-node.js';

const FORWARDED = ['memberUp', 'memberDown', 'memberSuspect', 'memberLeft'] as const;

/** Where node.send / node.call can address: any actor target, or a cluster-wide registered name. */
export type NodeTarget = Target | { global: string };

/** Anti-entropy interval of the cluster-wide tables (registry, groups, pub/sub interest), ms. */
const DIST_SYNC_INTERVAL_MS = 1000;

export class FoundationNode extends EventEmitter<FoundationNodeEvents> {
  /** This node's name (in every cluster, unless a cluster's options override it). */
  readonly name: string;
  /** The actor runtime of this node: local actors, and routing to actors on other nodes. */
  readonly actors: ActorSystem;
  /** Foundation 1.x ServiceRegistry: (namespace, name) → pid, with health; local to this node. */
  readonly serviceRegistry: ServiceRegistry;
  private readonly monitor_: RuntimeMonitor;
  /**
   * The node's root supervisor (one_for_one): the node's own services run under it, and your
   * long-lived actors can too (`node.root.startChild(spec)`). Stopped first, in reverse order, by stop().
   */
  root!: Supervisor;
  private readonly byName: Map<string, ClusterNode>;
  /** The only cluster, when there is one. */
  private readonly single: ClusterNode | undefined;
  /** The cluster-wide layer's context (built over the first cluster; see docs/distributed.md). */
  private readonly dist: DistContext;
  /** The cluster-wide name registry (docs/distributed.md): names unique across the cluster. */
  readonly registry: Registry;
  /** Process groups with :pg semantics (default scope; `groups.scope(name)` for others). */
  readonly groups: Groups;
  /** Topic pub/sub with replicated interest, queue groups and NATS wildcards. */
  readonly pubsub: PubSub;
  /** Remote spawn by kind (node.define / node.spawnOn; `spawner.childSpec` for supervisors). */
  readonly spawner: RemoteSpawn;
  /** Named CRDTs shared cluster-wide: counters, sets, registers, maps (docs/state.md). */
  readonly state: StateStore;
  /** Raft-backed KV, locks with fencing tokens, leader election, barriers (docs/coordination.md). */
  readonly consensus: Consensus;
  /** Placement of distributed-supervisor children and singletons (docs/distributed.md). */
  private readonly placement: Placement;
  /** Services: catalogue, typed calls, events, streams (docs/services.md). */
  readonly services: Services;
  /** Config, protection, telemetry, events and HTTP endpoints (docs/core-services.md). */
  private readonly core: CoreServices;
  private http_: HttpEndpoints | undefined;
  private stopping = false;
  /** The one stop in progress or done: every call of stop() waits for it. */
  private stopped: Promise<void> | undefined;

  private constructor(clusters: ClusterNode[], prepared: PreparedCore) {
    super();
    this.byName = new Map(clusters.map((c) => [c.clusterName, c]));
    this.single = clusters.length === 1 ? clusters[0] : undefined;
    const first = clusters[0]!;
    this.name = first.name;
    // One options object for every remote call and send: the messenger reads it before it returns
    // and keeps none of it, so a call allocates no options of its own.
    const sendOpts: SendOptions = {};
    const callOpts: RequestOptions = {};
    const router: RemoteRouter = {
      send: (node, kind, payload, lane) => {
        sendOpts.lane = lane;
        this.route(node).messenger.send(node, kind, payload, sendOpts);
      },
      request: (node, kind, payload, timeout, lane, timeoutError, subject) => {
        callOpts.timeout = timeout;
        callOpts.lane = lane;
        callOpts.timeoutError = timeoutError;
        callOpts.subject = subject;
        return this.route(node).messenger.request(node, kind, payload, callOpts);
      },
    };
    this.actors = new ActorSystem({
      nodeName: this.name,
      clock: first.clock,
      log: first.log,
      remote: router,
    });
    this.serviceRegistry = new ServiceRegistry(this.actors);
    // An exited actor's lane numbering is no longer needed on any node.
    this.actors.onExit((pid) => {
      for (const c of clusters) c.messenger.closeLane(pid.id);
    });
    this.dist = contextFor(first, this.actors, new HybridClock(first.clock), {
      limits: DIST_LIMITS,
      syncIntervalMs: DIST_SYNC_INTERVAL_MS,
      requestTimeoutMs: first.requestTimeoutMs,
    });
    // Pub/sub and actor messages carry the service layer's request context (withContext) to
    // their handlers.
    this.dist.propagation = propagation;
    this.actors.propagation = propagation;
    this.registry = new Registry(this.dist);
    this.groups = new Groups(this.dist);
    this.pubsub = new PubSub(this.dist);
    this.state = new StateStore(this.dist);
    this.consensus = new Consensus(this.dist);
    this.spawner = new RemoteSpawn(this.dist);
    this.placement = new Placement(this.dist, this.spawner, this.registry);
    this.services = new Services({
      dist: this.dist,
      pubsub: this.pubsub,
      request: (to, kind, payload, timeout) =>
        first.messenger.request(to, kind, payload, { timeout }),
      requestTo: (to, kind, payload, timeout, target) =>
        first.messenger.requestTo(to, kind, payload, timeoutOptions(timeout), target),
      handle: (kind, h) => first.messenger.handle(kind, h),
      send: (to, kind, payload, bulk) =>
        first.messenger.send(to, kind, payload, bulk ? { channel: 'bulk' } : undefined),
      on: (kind, h) => first.messenger.on(kind, h),
      status: (n) => first.memberStatus(n),
    });
    this.monitor_ = new RuntimeMonitor(this.actors);
    this.core = new CoreServices(
      prepared,
      this.dist,
      {
        members: () => first.members(),
        actors: () => ({
          count: this.actors.size,
          mailboxDepth: this.actors.mailboxDepth(),
          dropped: this.actors.dropped,
          crashes: this.actors.crashes,
          runQueue: this.actors.scheduler.length,
        }),
        health: () => first.health,
        registrySize: () => this.registry.size,
        busyPoll: () => busyPoller,
        transport: () => {
          const sum = {
            sent: {} as Record<string, number>,
            received: {} as Record<string, number>,
          };
          for (const c of clusters)
            for (const d of ['sent', 'received'] as const)
              for (const [ch, n] of Object.entries(c.transportCounts[d]))
                sum[d][ch] = (sum[d][ch] ?? 0) + n;
          return sum;
        },
      },
      this.consensus,
    );
    for (const c of clusters) {
      for (const event of FORWARDED) c.on(event, (m, info) => this.emit(event, m, info));
      c.on('memberUnreachable', (m, info) => this.emit('memberUnreachable', m, info));
      c.on('memberReachable', (m, info) => this.emit('memberReachable', m, info));
      c.on('error', (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
      for (const kind of [ACTOR_KINDS.send, ACTOR_KINDS.cast, ACTOR_KINDS.signal]) {
        c.messenger.on(kind, (payload, from) => this.actors.handleRemote(kind, payload, from));
      }
      for (const kind of [ACTOR_KINDS.call, ACTOR_KINDS.deliver]) {
        c.messenger.handleDeferred(kind, (payload, from, reply) =>
          this.actors.handleRemoteRequest(kind, payload, from, reply),
        );
      }
      const gone = (m: Member) => {
        // Only when no cluster can still reach it (a node may be in several of ours).
        if (!this.reachable(m.name)) this.actors.nodeDown(m.name);
      };
      c.on('memberDown', gone);
      c.on('memberLeft', gone);
    }
  }

  private reachable(node: string): boolean {
    for (const c of this.byName.values()) {
      const s = c.memberStatus(node);
      if (s === 'alive' || s === 'suspect') return true;
    }
    return false;
  }

  /** The cluster through which `node` is reachable (the first that has it alive). */
  private route(node: string): ClusterNode {
    // One cluster (the common case): its messenger checks membership itself, with the same code.
    if (this.single !== undefined) return this.single;
    for (const c of this.byName.values()) {
      const s = c.memberStatus(node);
      if (s === 'alive' || s === 'suspect') return c;
    }
    throw new FoundationError(
      'FND_ERR_UNKNOWN_NODE',
      `node ${node} is not an alive member of any cluster of this node`,
      {
        node,
      },
    );
  }

  // ---- actors (docs/actors.md) ----

  /**
   * Spawns an actor on this node; returns its pid at once (init runs before its first message).
   * The pid is typed with the protocol inferred from the behaviour, so calls to it are checked.
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
  spawn(behaviour: Behaviour, opts?: SpawnOptions): Pid {
    return this.actors.spawn(behaviour, opts);
  }

  /** Spawns and waits for init: resolves with the (typed) pid or rejects with init's error. */
  spawnAsync<M = unknown, R = unknown>(
    behaviour: MessageHandler<M, R>,
    opts?: SpawnOptions,
  ): Promise<Pid<HandlerProtocol<M, R>>>;
  spawnAsync<B extends LooseGenServer>(
    behaviour: B & ThisType<B>,
    opts?: SpawnOptions,
  ): Promise<Pid<ProtocolOf<B>>>;
  spawnAsync(behaviour: Behaviour, opts?: SpawnOptions): Promise<Pid>;
  spawnAsync(behaviour: Behaviour, opts?: SpawnOptions): Promise<Pid> {
    return this.actors.spawnAsync(behaviour, opts);
  }

  /** At-most-once, ordered per sender→receiver pair; to a local or remote pid, or a registered name. */
  send<To extends NodeTarget>(to: To, msg: InfoMessage<To>): void;
  send(to: NodeTarget, msg: unknown): void {
    if (isGlobal(to)) {
      const pid = this.registry.whereis(to.global);
      if (pid) this.actors.send(pid, msg);
      return;
    }
    this.actors.send(to, msg);
  }

  /** Like send, but resolves once the message is in the target's mailbox (local or remote). */
  sendAsync<To extends Target>(to: To, msg: InfoMessage<To>): Promise<void>;
  sendAsync(to: Target, msg: unknown): Promise<void> {
    return this.actors.sendAsync(to, msg);
  }

  /**
   * Calls an actor; rejects with FND_ERR_CALL_TIMEOUT / FND_ERR_NOPROC / FND_ERR_NODE_DOWN / ...
   * A typed target (a pid from a typed spawn, an `ActorRef<P>`) checks `msg` at compile time and
   * types the reply; an untyped one takes anything and resolves with `unknown` (or `call<R>`).
   */
  call<R = never, To extends NodeTarget = NodeTarget>(
    to: To,
    msg: CallMessage<To>,
    opts?: CallOptions,
  ): Promise<CallResult<R, To>>;
  call(to: NodeTarget, msg: unknown, opts?: CallOptions): Promise<unknown> {
    if (isGlobal(to)) {
      const pid = this.registry.whereis(to.global);
      if (!pid) return Promise.reject(noGlobal(to.global));
      return this.actors.call(pid, msg, opts);
    }
    return this.actors.call(to, msg, opts);
  }

  cast<To extends NodeTarget>(to: To, msg: CastMessage<To>): void;
  cast(to: NodeTarget, msg: unknown): void {
    if (isGlobal(to)) {
      const pid = this.registry.whereis(to.global);
      if (pid) this.actors.cast(pid, msg);
      return;
    }
    this.actors.cast(to, msg);
  }

  /** Calls `onDown` once when `pid` exits, never existed (`noproc`) or its node goes down (`noconnection`). */
  monitor(pid: PidLike, onDown: (down: DownMessage) => void): string {
    return this.actors.monitor(pid, onDown);
  }

  demonitor(ref: string): void {
    this.actors.demonitor(ref);
  }

  /** Links two pids (at least one on this node): when one exits abnormally, the other gets the signal. */
  link(a: PidLike, b: PidLike): void {
    this.actors.link(a, b);
  }

  unlink(a: PidLike, b: PidLike): void {
    this.actors.unlink(a, b);
  }

  /** Sends an exit signal to `pid` ('kill' cannot be trapped). */
  exit(pid: PidLike, reason: ExitReason): void {
    this.actors.exit(pid, reason);
  }

  // ---- the cluster-wide layer (docs/distributed.md) ----

  /**
   * Defines behaviour `kind` on this node, so any node can `spawnOn` it here. A GenServer object
   * literal the factory returns has `this` typed as itself (its state fields).
   */
  define<B extends Behaviour>(
    kind: string,
    factory: (...args: Parameters<KindFactory>) => B & ThisType<B>,
  ): void {
    this.spawner.define(kind, factory);
  }

  /** Spawns an instance of `kind` on `node`; FND_ERR_UNKNOWN_KIND when that node has not defined it. */
  spawnOn(node: string, kind: string, args?: unknown, opts?: SpawnOnOptions): Promise<Pid> {
    return this.spawner.spawnOn(node, kind, args, opts);
  }

  /**
   * Starts this node's part of distributed supervisor `name` (call it with the same children on
   * every node that takes part): each child runs on one member, chosen by rendezvous hashing, and
   * is restarted on a survivor when its node goes down. FND_ERR_UNKNOWN_KIND for an undefined kind.
   */
  distributedSupervisor(name: string, opts: DistributedSupervisorOptions): DistributedSupervisor {
    checkSupName(name, DIST_LIMITS.maxNameLength);
    return new DistributedSupervisor(this.placement, `d:${name}`, opts);
  }

  /**
   * Takes part in singleton `name` (call it on every node that may run it): one instance of `kind`
   * in a connected cluster, registered cluster-wide as `name` (`node.call({ global: name }, msg)`).
   * `quorum: 'keep-majority'` runs it only on a side of a split with a majority of known members.
   */
  singleton(name: string, kind: string, args?: unknown, opts: SingletonOptions = {}): Singleton {
    checkSupName(name, DIST_LIMITS.maxNameLength);
    if (opts.quorum !== undefined && opts.quorum !== 'keep-majority') {
      throw new FoundationError('FND_ERR_INVALID_OPTION', `option "quorum": 'keep-majority'`, {
        field: 'quorum',
      });
    }
    const sup = new DistributedSupervisor(this.placement, `s:${name}`, {
      children: [{ id: name, kind, args, restart: opts.restart ?? 'permanent' }],
      ...(opts.handoff ? { handoff: opts.handoff } : {}),
      ...(opts.quorum ? { quorum: opts.quorum } : {}),
      globalName: name,
    });
    return new Singleton(sup, name);
  }

  /**
   * Publishes service `name` (or a contract's service) on this node with its actions, announced
   * cluster-wide in the service catalogue (docs/services.md).
   */
  service<T>(
    contract: Contract<T>,
    handlers: Implementation<T>,
    opts?: ServiceOptions,
  ): ServiceHandle;
  service(name: string, handlers: Handlers, opts?: ServiceOptions): ServiceHandle;
  service(
    name: string | Contract<unknown>,
    handlers: unknown,
    opts?: ServiceOptions,
  ): ServiceHandle {
    return this.services.register(name, handlers as Handlers, opts);
  }

  /** Calls the actor registered under local `name` on every reachable node (GenServer.multi_call). */
  multiCall<T = unknown>(
    name: string,
    msg: unknown,
    opts?: MultiCallOptions,
  ): Promise<MultiCallResult<T>> {
    return multiCall<T>(this.dist, name, msg, opts);
  }

  /** Casts to the actor registered under local `name` on every reachable node. */
  abcast(name: string, msg: unknown, nodes?: string[]): void {
    abcast(this.dist, name, msg, nodes);
  }

  register(name: string, pid: PidLike): void {
    this.actors.register(name, pid);
  }

  unregister(name: string): void {
    this.actors.unregister(name);
  }

  whereis(name: string): Pid | undefined {
    return this.actors.whereis(name);
  }

  // ---- core services (docs/core-services.md) ----

  /** The node's configuration: defaults → file → environment → runtime; cluster-wide values. */
  get config(): Config {
    return this.core.config;
  }

  /** The HTTP endpoints (`http` option), or undefined: `node.http?.port` is the port listened on. */
  get http(): { readonly port: number } | undefined {
    return this.http_;
  }

  /** The event log: in memory or SQLite; emitDistributed, subscribeClusterWide, queryCluster. */
  get events(): Events {
    return this.core.events;
  }

  /** Circuit breakers, rate limiters and pools per key around your calls: `execute(key, fn)`. */
  get protection(): Protection {
    return this.core.protection;
  }

  /** Metrics (prom-client): your own, every layer's, runtime figures; cluster-wide gathering. */
  get telemetry(): Telemetry {
    return this.core.telemetry;
  }

  /**
   * `runtime.stats()`: actor count, total mailbox depth, event-loop delay and heap, with
   * plain-language warnings when thresholds are crossed.
   */
  readonly runtime: { stats(): RuntimeStats } = { stats: () => this.monitor_.stats() };

  /**
   * Validates options and starts one membership per cluster (in parallel). If any cluster fails
   * to start, the ones already started are stopped and the error is thrown.
   */
  static async start(options: FoundationOptions = {}): Promise<FoundationNode> {
    // Core-service options (config, http, events, telemetry) are checked and their sources read
    // first: a bad config file or schema fails start before anything listens.
    const { core, rest } = splitCoreOptions(options);
    const prepared = await prepareCore(core);
    // Every cluster gets its secret here (loopback default: this user's), before anything listens.
    let resolved: Awaited<ReturnType<typeof withDefaultSecrets>>;
    try {
      resolved = await withDefaultSecrets(resolveAll(rest));
    } catch (err) {
      releasePrepared(prepared);
      throw err;
    }
    const results = await Promise.allSettled(resolved.map((o) => ClusterNode.start(o)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      releasePrepared(prepared);
      await Promise.all(
        results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)),
      );
      throw (failed as PromiseRejectedResult).reason;
    }
    const node = new FoundationNode(
      results.map((r) => (r as PromiseFulfilledResult<ClusterNode>).value),
      prepared,
    );
    try {
      node.root = await Supervisor.start(node.actors, {
        name: 'foundation.root',
        strategy: 'one_for_one',
        maxRestarts: 10,
        withinMs: 10_000,
        children: [{ id: 'node-info', start: () => nodeInfoService(node) }],
      });
      if (core.http) {
        const src = resolved[0]!.secretSource;
        node.http_ = await HttpEndpoints.start(
          {
            name: node.name,
            clock: node.dist.clock,
            clusters: () =>
              node.clusters().map((c) => ({
                name: c,
                members: node
                  .cluster(c)
                  .members()
                  .map((m) => ({
                    name: m.name,
                    address: m.address,
                    status: m.status,
                    incarnation: m.incarnation,
                  })),
              })),
            running: () => !node.stopping && node.root.alive,
            metrics: () => node.telemetry.getMetrics(),
            metricsContentType: node.telemetry.contentType,
            services: () => {
              const out: Record<string, Array<{ name: string; healthy: boolean }>> = {};
              for (const ns of node.serviceRegistry.namespaces()) {
                out[ns] = node.serviceRegistry
                  .listServices(ns)
                  .map((x) => ({ name: x.name, healthy: x.healthy }));
              }
              return out;
            },
            registrySize: () => node.registry.size,
          },
          core.http,
          // The node's own bind rule: off loopback only with a secret or `insecure: true`.
          src === 'option' || src === 'env' || src === 'insecure',
        );
      }
    } catch (err) {
      await node.stop(); // nothing may be left listening when start() rejects
      throw err;
    }
    return node;
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

  /**
   * Application services over mDNS, mdns_lite style (single-cluster nodes; with several clusters
   * use node.cluster(name).mdns): `node.mdns.advertise({ type: '_http._tcp', port })`. Throws
   * FND_ERR_MDNS_INACTIVE unless discovery runs the `mdns` strategy; see `node.mdns.active`.
   */
  get mdns(): MdnsControl {
    return this.cluster().mdns;
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

  /**
   * Hands over consensus leadership (when this node leads the Raft group), stops the root
   * supervisor's tree (reverse order, with shutdown timeouts), then every other actor
   * ('shutdown'), then leaves every cluster gracefully. Idempotent: a second call, during the stop
   * or after it, resolves when the first one has finished.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    // First: a consensus leader hands its leadership over while everything still runs, so the
    // group does not wait for the rest of the shutdown (or an election timeout).
    await this.consensus.handOver();
    await this.http_?.stop();
    this.http_ = undefined;
    // Distributed children first: they move to other members with their handed-over state.
    await this.placement.leave();
    this.services.stop();
    if (this.root?.alive) await this.root.stop();
    this.registry.stop();
    this.groups.stop();
    this.pubsub.stop();
    await this.core.stop();
    this.state.stop();
    await this.consensus.stop();
    this.actors.shutdown();
    this.monitor_.stop();
    // Let the exit signals and DOWNs of those actors be written before the leave announcement.
    await new Promise((r) => setImmediate(r));
    await Promise.all([...this.byName.values()].map((c) => c.stop()));
  }
}

/**
 * The node's own service, registered as `foundation.node`: any node can ask any other for its
 * view (`node.call({ name: 'foundation.node', node: 'b' }, 'info')`).
 */
function nodeInfoService(node: FoundationNode): Behaviour {
  return {
    init(ctx) {
      node.actors.register(NODE_SERVICE, ctx.self);
    },
    handleCall(msg: unknown) {
      // Any node may call this: anything but 'info' is refused with a coded error (never echoed,
      // never thrown, so a bad request cannot crash the service; see test/runtime/trust.test.ts).
      if (msg !== 'info') return badRequest(NODE_SERVICE, ['info']);
      const stats = node.runtime.stats();
      return {
        name: node.name,
        clusters: node.clusters().map((c) => ({ name: c, members: node.cluster(c).members() })),
        actors: stats.actors,
        mailboxDepth: stats.mailboxDepth,
        heapUsedBytes: stats.heap.usedBytes,
        warnings: stats.warnings,
      };
    },
  };
}

function isGlobal(t: NodeTarget): t is { global: string } {
  return (
    typeof t === 'object' && t !== null && typeof (t as { global?: unknown }).global === 'string'
  );
}

function noGlobal(name: string): FoundationError {
  return new FoundationError('FND_ERR_NOPROC', `no actor registered as "${name}" in the cluster`, {
    target: { global: name },
  });
}

/** Registered name of the node's own info service. */
export const NODE_SERVICE = 'foundation.node';

/**
 * `{ timeout }` request options, one object per distinct value (service calls pass the same few
 * values, in whole 10 ms steps, on every call).
 */
const timeoutOpts = new Map<number, { timeout: number }>();
function timeoutOptions(timeout: number): { timeout: number } {
  let o = timeoutOpts.get(timeout);
  if (!o) {
    if (timeoutOpts.size >= 1000) timeoutOpts.clear();
    o = { timeout };
    timeoutOpts.set(timeout, o);
  }
  return o;
}
