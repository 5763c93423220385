// The narrow interfaces the cluster-wide layer is built from: node-level messaging, membership
// events and the actor system, plus clock and logger. The composition root (node.ts) builds one
// DistContext from a cluster's messenger and membership; nothing in src/dist/ sees more than this.
import type { MessageHandler, RequestHandler } from '../cluster/messenger.js';
import type { ContextPropagation } from '../runtime/actor.js';
import type { ActorSystem } from '../runtime/system.js';
import type { Clock } from '../util/clock.js';
import type { HybridClock } from '../util/hlc.js';
import type { Logger } from '../util/log.js';
import type { DistLimits } from './wire.js';

/** Node-level messaging, as much as this layer uses (a subset of Messenger). */
export interface DistNet {
  /** One-way, ordered per node pair on the default channel. Throws coded errors (unknown node, stopped). */
  send(to: string, kind: string, payload: unknown): void;
  /** `send` to several nodes, encoded once; returns the nodes skipped as unreachable. */
  sendMany(to: readonly string[], kind: string, payload: unknown): string[];
  request(to: string, kind: string, payload: unknown, timeoutMs?: number): Promise<unknown>;
  on(kind: string, handler: MessageHandler): void;
  handle(kind: string, handler: RequestHandler): void;
}

/** Membership, as much as this layer uses. */
export interface DistMembers {
  /** Other members this node can talk to now (alive or suspect), sorted by name. */
  peers(): string[];
  /** Other members alive now (not suspect), sorted by name. */
  alive(): string[];
  /** Whether `name` is such a member now. Messages from anyone else are ignored by this layer. */
  isPeer(name: string): boolean;
  /**
   * Members counted for a majority: alive, suspect and down (not those that left), this node
   * included. Used by `quorum: 'keep-majority'`.
   */
  known(): string[];
  /** Called when a member becomes alive (joins, rejoins after a partition). Never concurrently. */
  onUp(fn: (name: string) => void): void;
  /** Called when a member is declared down or leaves. Never concurrently. */
  onDown(fn: (name: string, reason: 'down' | 'left') => void): void;
}

export interface DistContext {
  /** This node's name. */
  self: string;
  /** Identifies this run of the node: a restarted node with the same name has another epoch. */
  epoch: number;
  net: DistNet;
  members: DistMembers;
  system: ActorSystem;
  clock: Clock;
  hlc: HybridClock;
  log: Logger;
  limits: DistLimits;
  /** Anti-entropy interval of every replicated table, ms. */
  syncIntervalMs: number;
  /** Timeout of the requests this layer makes (sync acks, spawnOn, multiCall default), ms. */
  requestTimeoutMs: number;
  /**
   * Request-context propagation (the service layer's withContext: traceparent + baggage), when
   * the composition root provides it: pub/sub carries the publisher's context to handlers.
   */
  propagation?: ContextPropagation;
}

/** What `contextFor` reads from one cluster membership (a ClusterNode has all of it). */
export interface ClusterView {
  readonly name: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly messenger: {
    send(to: string, kind: string, payload: unknown): void;
    sendMany(to: readonly string[], kind: string, payload: unknown): string[];
    request(
      to: string,
      kind: string,
      payload: unknown,
      opts?: { timeout?: number },
    ): Promise<unknown>;
    on(kind: string, handler: MessageHandler): void;
    handle(kind: string, handler: RequestHandler): void;
  };
  members(): Array<{ name: string; status: string; self?: true }>;
  memberStatus(name: string): string | undefined;
  on(event: 'memberUp' | 'memberDown' | 'memberLeft', fn: (m: { name: string }) => void): unknown;
}

export interface DistSettings {
  limits: DistLimits;
  syncIntervalMs: number;
  requestTimeoutMs: number;
}

/** Builds the context of the cluster-wide layer from one cluster membership and the actor system. */
export function contextFor(
  cluster: ClusterView,
  system: ActorSystem,
  hlc: HybridClock,
  settings: DistSettings,
): DistContext {
  const m = cluster.messenger;
  const isPeer = (name: string) => {
    const s = cluster.memberStatus(name);
    return name !== cluster.name && (s === 'alive' || s === 'suspect');
  };
  return {
    self: cluster.name,
    // Unique per run: the wall clock in ms, times 1000, plus a random tail for two runs in one ms.
    epoch: Math.floor(cluster.clock.wallNow()) * 1000 + Math.floor(Math.random() * 1000),
    net: {
      send: (to, kind, payload) => m.send(to, kind, payload),
      sendMany: (to, kind, payload) => m.sendMany(to, kind, payload),
      request: (to, kind, payload, timeout) => m.request(to, kind, payload, { timeout }),
      on: (kind, h) => m.on(kind, h),
      handle: (kind, h) => m.handle(kind, h),
    },
    members: {
      peers: () =>
        cluster
          .members()
          .filter((x) => !x.self && (x.status === 'alive' || x.status === 'suspect'))
          .map((x) => x.name),
      alive: () =>
        cluster
          .members()
          .filter((x) => !x.self && x.status === 'alive')
          .map((x) => x.name),
      isPeer,
      known: () =>
        cluster
          .members()
          .filter((x) => x.status !== 'left')
          .map((x) => x.name),
      onUp: (fn) => cluster.on('memberUp', (x) => fn(x.name)),
      onDown: (fn) => {
        cluster.on('memberDown', (x) => fn(x.name, 'down'));
        cluster.on('memberLeft', (x) => fn(x.name, 'left'));
      },
    },
    system,
    clock: cluster.clock,
    hlc,
    log: cluster.log.child({ layer: 'dist' }),
    limits: settings.limits,
    syncIntervalMs: settings.syncIntervalMs,
    requestTimeoutMs: settings.requestTimeoutMs,
  };
}
