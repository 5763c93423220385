// The public API. Everything exported here is supported; everything else is internal.
import { FoundationNode } from './node.js';
import type { FoundationOptions } from './options.js';

export const Foundation = {
  /** Starts a node. With no options: a same-host cluster on 127.0.0.1, found with zero configuration. */
  start(options?: FoundationOptions): Promise<FoundationNode> {
    return FoundationNode.start(options);
  },
};

export type { ChangeInfo, Member, MemberStatus } from './cluster/membership.js';
export type {
  MessageHandler,
  Messenger,
  RequestHandler,
  RequestOptions,
  SendOptions,
} from './cluster/messenger.js';
export { type MembershipTiming, PRESETS, type PresetName } from './cluster/presets.js';
export { ClusterNode } from './cluster-node.js';
export {
  Consensus,
  type ConsensusOptions,
  type ConsensusStatus,
  type EtcdConsensusOptions,
  type LeaderHandle,
  type LockHandle,
  type RaftConsensusOptions,
  type Revisioned,
} from './coord/consensus.js';
export type { KvEvent } from './coord/machine.js';
export { COORD_LIMITS, type CoordLimits } from './coord/wire.js';
export type { Config, ConfigChange, ConfigOptions } from './core/config.js';
export type {
  EventQuery,
  EventStats,
  PruneOptions,
} from './core/event-store.js';
export type {
  ClusterQueryResult,
  EmitOptions,
  EventFilter,
  Events,
  NewEventOptions,
  StoredEvent,
} from './core/events.js';
export { uuidv7 } from './core/ids.js';
export type { CoreOptions, EventsOptions, HttpOptions, TelemetryOptions } from './core/options.js';
export type {
  CircuitBreakerOptions,
  PoolOptions,
  Protection,
  ProtectionOptions,
  ProtectionState,
  RateLimiterOptions,
} from './core/protection.js';
export { isTransient, type RetryOptions, retry } from './core/retry.js';
export {
  type Aggregation,
  type Anomaly,
  type AnomalyOptions,
  type ClusterMetrics,
  type CounterLike,
  EwmaDetector,
  type GaugeLike,
  type HistogramLike,
  type Labels,
  type Telemetry,
  type TelemetryEvents,
} from './core/telemetry.js';
export { CORE_LIMITS, type CoreLimits } from './core/wire.js';
export { LIBCLUSTER_STRATEGIES } from './discovery/libcluster.js';
export {
  defaultLocalDirectory,
  type LocalOptions,
  LocalStrategy,
} from './discovery/strategies/local.js';
export type {
  MdnsAdvertisement,
  MdnsControl,
  MdnsOptions,
  MdnsServiceOptions,
} from './discovery/strategies/mdns.js';
export { type StaticOptions, StaticStrategy } from './discovery/strategies/static.js';
export {
  type DiscoveryContext,
  type DiscoveryStrategy,
  poll,
  Reconciler,
} from './discovery/strategy.js';
export type { GroupEvents, Groups, ProcessGroups } from './dist/groups.js';
export type { MultiCallOptions, MultiCallResult } from './dist/multicall.js';
export type {
  PublishOptions,
  PubSub,
  SubscribeOptions,
  Subscription,
  TopicHandler,
} from './dist/pubsub.js';
export {
  NAME_CONFLICT,
  type RegisterOptions,
  type Registration,
  type Registry,
  type RegistryEvents,
} from './dist/registry.js';
export type { KindFactory, RemoteSpawn, SpawnInfo, SpawnOnOptions } from './dist/spawn.js';
export { DIST_LIMITS, type DistLimits } from './dist/wire.js';
export {
  ERRORS,
  type ErrorCode,
  FoundationError,
  isFoundationError,
  type SerializedError,
} from './errors.js';
export {
  FoundationNode,
  type FoundationNodeEvents,
  type MemberEventName,
  NODE_SERVICE,
  type NodeTarget,
} from './node.js';
export {
  type ClusterOptions,
  DEFAULTS,
  type DiscoveryOptions,
  type FoundationOptions,
  type LibclusterTopology,
} from './options.js';
export type {
  ActorContext,
  ActorRef,
  Behaviour,
  CallMessage,
  CallOptions,
  CallResult,
  CastMessage,
  DownMessage,
  ExitMessage,
  ExitReason,
  GenServer,
  HandlerProtocol,
  InfoMessage,
  LooseGenServer,
  MailboxOptions,
  MessageHandler as ActorMessageHandler,
  Protocol,
  ProtocolOf,
  ReplyOf,
  SpawnOptions,
  Target,
} from './runtime/behaviour.js';
export { type CpuIntensiveOptions, cpuIntensive } from './runtime/cpu.js';
export {
  type DispatchOptions,
  type DistributionStrategy,
  type Ecosystem,
  type EcosystemHealth,
  type EcosystemOptions,
  type EcosystemThreads,
  type EcosystemWorkers,
  ecosystem,
  type WorkerHealth,
} from './runtime/ecosystem.js';
export { isPid, Pid, type PidLike, type Typed } from './runtime/pid.js';
export { type ServiceInfo, ServiceRegistry } from './runtime/service-registry.js';
export { DEFAULT_THRESHOLDS, type RuntimeStats, type RuntimeThresholds } from './runtime/stats.js';
export {
  type AnyChildSpec,
  type ChildCounts,
  type ChildInfo,
  type ChildPid,
  type ChildSpec,
  type ChildStartContext,
  type ChildType,
  type RestartType,
  type ShutdownSpec,
  Supervisor,
  type SupervisorOptions,
  type SupervisorStrategy,
} from './runtime/supervisor.js';
export { ActorSystem } from './runtime/system.js';
export {
  ThreadPool,
  type ThreadPoolOptions,
  type ThreadPoolStats,
  type ThreadRunOptions,
} from './runtime/threads.js';
export {
  type Balancer,
  type BalancerName,
  consistentHash,
  type Endpoint,
  leastLatency,
  type PickContext,
  preferLocal,
  random,
  roundRobin,
} from './services/balancers.js';
export type { CatalogueEntry, ServiceFilter } from './services/catalogue.js';
export {
  type ContextValues,
  type ContextView,
  currentContext,
  withContext,
} from './services/context.js';
export type { EventHandler, EventInfo } from './services/events.js';
export type {
  BreakerOptions,
  BulkheadOptions,
  RateLimitOptions,
  RetryOptions as ServiceRetryOptions,
} from './services/resilience.js';
export {
  type ActionSpec,
  CALL_DEFAULTS,
  type Client,
  type Contract,
  type ContractActions,
  contract,
  type Handlers,
  type Implementation,
  type ServiceCallOptions,
  type ServiceHandle,
  type ServiceOptions,
  type Services,
} from './services/services.js';
export { type Health, SERVICE_LIMITS, type ServiceLimits } from './services/wire.js';
export type { CrdtKind, InnerKind } from './state/crdt.js';
export {
  type GCounterHandle,
  type OrMapHandle,
  type OrSetHandle,
  type PNCounterHandle,
  type RegisterHandle,
  STATE_LIMITS,
  type StateLimits,
  type StateListener,
  StateStore,
} from './state/store.js';
export type { TlsOptions } from './transport/tcp.js';
export type { Address, ConnectionHandlers, RawConnection, Transport } from './transport/types.js';
export type { Clock, TimerHandle } from './util/clock.js';
export { CHANNELS } from './util/diagnostics.js';
export { compareHlc, type Hlc, HybridClock } from './util/hlc.js';
export type { Logger, LogLevel } from './util/log.js';
