// The discovery contract (libcluster's Cluster.Strategy, in TypeScript): a strategy finds
// addresses and proposes them through its context; the node does the joining, and the shared
// Reconciler does the diffing, logging and telemetry for every strategy.
import type { Member } from '../cluster/membership.js';
import { type Address, formatAddress } from '../transport/types.js';
import type { Clock } from '../util/clock.js';
import { publish } from '../util/diagnostics.js';
import type { Logger } from '../util/log.js';

export interface DiscoveryContext {
  /** Cluster name this node belongs to. */
  readonly cluster: string;
  /** This node: its name and the address peers dial. */
  readonly self: { name: string; address: Address; incarnation: number };
  /** Asks the node to join through `address`. Resolves with the node name that answered, or rejects. */
  connect(address: Address): Promise<string | undefined>;
  /**
   * The strategy no longer lists `address` (libcluster's disconnect). Membership stays the judge
   * of liveness: a down or left member there is forgotten at once (no more reconnect attempts); an
   * alive one is probed right away, and forgotten the moment it is declared down.
   */
  disconnect(address: Address): void;
  /** Current members (including this node). */
  knownNodes(): Member[];
  readonly clock: Clock;
  readonly log: Logger;
  /** Aborted when the node stops; strategies stop their loops on it. */
  readonly signal: AbortSignal;
}

export interface DiscoveryStrategy {
  /** Short name for logs, e.g. 'static'. */
  readonly name: string;
  /** Starts finding peers. Called once, after the node listens. May return before peers are found. */
  start(ctx: DiscoveryContext): void | Promise<void>;
  /** Stops and releases everything (files, sockets, timers). Called once. */
  stop(): void | Promise<void>;
}

/**
 * Shared reconcile helper: given the addresses a strategy currently sees, joins those that are not
 * already live members (so a node that dropped and came back is joined again), skips this node,
 * and publishes telemetry for every attempt.
 */
export class Reconciler {
  private listed = new Map<string, Address>();

  /**
   * @param disconnectRemoved call `ctx.disconnect` for addresses that were listed before and are not
   *   any more (libcluster's behaviour for polling strategies). Default false.
   */
  constructor(
    private readonly ctx: DiscoveryContext,
    private readonly strategy: string,
    private readonly disconnectRemoved = false,
  ) {}

  /** For polling strategies: the full current list; joins what is missing, reports what dropped out. */
  async reconcile(addresses: Address[]): Promise<void> {
    const self = formatAddress(this.ctx.self.address);
    const now = new Map(addresses.map((a) => [formatAddress(a), a]));
    if (this.disconnectRemoved) {
      for (const [key, a] of this.listed) if (!now.has(key) && key !== self) this.dropped(a);
    }
    this.listed = now;
    await this.joinMissing(addresses);
  }

  /**
   * For event-driven strategies (gossip, mDNS) and polling ones alike: joins the addresses that are
   * not live members and not this node. Concurrent joins of one address are coalesced by the node.
   */
  async joinMissing(addresses: Address[]): Promise<void> {
    const self = formatAddress(this.ctx.self.address);
    const live = new Set(
      this.ctx
        .knownNodes()
        .filter((m) => m.status === 'alive' || m.status === 'suspect')
        .map((m) => m.address),
    );
    const todo = addresses.filter((a) => {
      const key = formatAddress(a);
      return key !== self && !live.has(key);
    });
    await Promise.all(todo.map((a) => this.connect(a)));
  }

  /** `address` is no longer listed: tell the node (ctx.disconnect) and publish it. */
  dropped(address: Address): void {
    this.ctx.disconnect(address);
    publish('discoveryDisconnect', () => ({
      metadata: {
        cluster: this.ctx.cluster,
        strategy: this.strategy,
        address: formatAddress(address),
      },
    }));
  }

  private async connect(address: Address): Promise<void> {
    const started = this.ctx.clock.now();
    try {
      const name = await this.ctx.connect(address);
      // undefined: nothing to do (a join to that address is already under way, or it is us).
      if (name === undefined) return;
      publish('discoveryConnect', () => ({
        measurements: { durationMs: this.ctx.clock.now() - started },
        metadata: {
          cluster: this.ctx.cluster,
          strategy: this.strategy,
          address: formatAddress(address),
          node: name,
          ok: true,
        },
      }));
    } catch (err) {
      this.ctx.log.debug(
        { strategy: this.strategy, address: formatAddress(address), err: (err as Error).message },
        'discovery connect failed',
      );
      publish('discoveryConnect', () => ({
        measurements: { durationMs: this.ctx.clock.now() - started },
        metadata: {
          cluster: this.ctx.cluster,
          strategy: this.strategy,
          address: formatAddress(address),
          ok: false,
          error: (err as Error).message,
        },
      }));
    }
  }
}

/** Runs `fn` now and every `ms` until the signal aborts; one run at a time. */
export function poll(ctx: DiscoveryContext, ms: number, fn: () => Promise<void>): { stop(): void } {
  let running = false;
  const tick = () => {
    if (running || ctx.signal.aborted) return;
    running = true;
    fn()
      .catch((err: Error) => ctx.log.warn({ err: err.message }, 'discovery poll failed'))
      .finally(() => {
        running = false;
      });
  };
  const timer = ctx.clock.setInterval(tick, ms);
  tick();
  const stop = () => timer.cancel();
  ctx.signal.addEventListener('abort', stop, { once: true });
  return { stop };
}
