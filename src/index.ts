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
  type LeaderHandle,
  type LockHandle,
  type Revisioned,
} from './coord/consensus.js';
export type { KvEvent } from './coord/machine.js';
export { COORD_LIMITS, type CoordLimits } from './coord/wire.js';
export { LIBCLUSTER_STRATEGIES } from './discovery/libcluster.js';
export {
  defaultLocalDirectory,
  type LocalOptions,
  LocalStrategy,
} from './discovery/strategies/local.js';
export { type StaticOptions, StaticStrategy } from './discovery/strategies/static.js';
export {
  type DiscoveryContext,
  type DiscoveryStrategy,
  poll,
  Reconciler,
} from './discovery/strategy.js';
export type { GroupEvents, Groups, ProcessGroups } from './dist/groups.js';
export type { MultiCallOptions, MultiCallResult } from './dist/multicall.js';
export type { PubSub, SubscribeOptions, Subscription, TopicHandler } from './dist/pubsub.js';
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
