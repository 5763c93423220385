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
 * Bounds on what discovery may make a node dial. Every strategy goes through the Reconciler, so
 * these hold for all of them, whatever a packet, a poll or a record lists: at most
 * `dialBurst + dialsPerSecond × t` join attempts in t seconds in total, and each address at most
 * `evictAfterFailures` attempts per `parkMs` while others wait for a slot.
 */
export interface ReconcilerLimits {
  /**
   * New addresses taken from one call (one mDNS packet, one gossip datagram, one DNS, Kubernetes
   * or file poll). Default 16. The rest are dropped and counted; the next call offers them again,
   * and joining one member teaches membership the others anyway.
   */
  maxNewPerBatch: number;
  /**
   * Addresses discovered but not yet joined, tracked (and retried) at once. Default 64. When full,
   * a new address takes the slot of one that failed `evictAfterFailures` times, or is dropped.
   */
  maxPending: number;
  /** First retry delay of an address whose join failed, in ms; doubles per failure. Default 1000. */
  retryBaseMs: number;
  /** Longest retry delay, in ms. Default 10000. */
  retryMaxMs: number;
  /** Failures after which a pending address may be evicted (and parked) to make room. Default 1: a fresh address beats one that failed. */
  evictAfterFailures: number;
  /** How long an evicted address is not taken again, in ms. Default 60000. */
  parkMs: number;
  /** Failure histories remembered for addresses not pending (LRU). Default 1024. */
  maxRemembered: number;
  /**
   * Join attempts per second, all addresses together (a token bucket). Default 10. Attempts over
   * it wait for the next call; they are not lost.
   */
  dialsPerSecond: number;
  /** Attempts that may be made at once before dialsPerSecond applies. Default 16. */
  dialBurst: number;
}

/** Why the defaults: enough for a cluster forming all at once, small enough that no list can aim a storm of dials. */
export const RECONCILER_LIMITS: Readonly<ReconcilerLimits> = Object.freeze({
  maxNewPerBatch: 16,
  maxPending: 64,
  retryBaseMs: 1000,
  retryMaxMs: 10_000,
  evictAfterFailures: 1,
  parkMs: 60_000,
  maxRemembered: 1024,
  dialsPerSecond: 10,
  dialBurst: 16,
});

/** What the Reconciler did and refused, since it was built. */
export interface ReconcilerStats {
  /** Join attempts made (each one a connection attempt by the node). */
  attempts: number;
  /** Attempts that failed. */
  failures: number;
  /** New addresses dropped because one call offered more than maxNewPerBatch. */
  droppedBatch: number;
  /** New addresses dropped because maxPending addresses were pending and none could be evicted. */
  droppedPending: number;
  /** Pending addresses evicted after evictAfterFailures failures to make room for a new one. */
  evicted: number;
  /** Due attempts postponed because dialsPerSecond was used up. */
  deferred: number;
}

interface Pending {
  address: Address;
  failures: number;
  /** ctx.clock.now() before which it is not dialled again. */
  nextAt: number;
  inFlight: boolean;
}

/**
 * Shared reconcile helper: given the addresses a strategy currently sees, joins those that are not
 * already live members (so a node that dropped and came back is joined again), skips this node,
 * and publishes telemetry for every attempt. Discovered-but-unjoined addresses are pending: at
 * most `maxPending` of them, at most `maxNewPerBatch` new per call, each retried with exponential
 * backoff; an address that joins, or that its strategy stops listing, leaves the pending set.
 * Drops are counted in `stats`, published on `foundation:discovery:dropped` and logged (a warning
 * once a minute at most). Concurrency: calls may overlap (a poll and a packet); state changes are
 * synchronous, so they never interleave.
 */
export class Reconciler {
  readonly stats: ReconcilerStats = {
    attempts: 0,
    failures: 0,
    droppedBatch: 0,
    droppedPending: 0,
    evicted: 0,
    deferred: 0,
  };
  private listed = new Map<string, Address>();
  private readonly pending = new Map<string, Pending>();
  /** Failure history of addresses that left the pending set unjoined (bounded, oldest first out). */
  private readonly remembered = new Map<string, { failures: number; nextAt: number }>();
  private readonly limits: ReconcilerLimits;
  private lastDropWarning = -Infinity;
  private tokens: number;
  private refilledAt: number;
  /** Where the next call resumes reading its list (round robin), so no address is always last in line. */
  private cursor = 0;

  /**
   * @param disconnectRemoved call `ctx.disconnect` for addresses that were listed before and are not
   *   any more (libcluster's behaviour for polling strategies). Default false.
   * @param limits overrides of RECONCILER_LIMITS.
   */
  constructor(
    private readonly ctx: DiscoveryContext,
    private readonly strategy: string,
    private readonly disconnectRemoved = false,
    limits: Partial<ReconcilerLimits> = {},
  ) {
    this.limits = { ...RECONCILER_LIMITS, ...limits };
    this.tokens = this.limits.dialBurst;
    this.refilledAt = ctx.clock.now();
  }

  /** Addresses currently pending (discovered, not joined yet), as `host:port`. */
  pendingAddresses(): string[] {
    return [...this.pending.keys()];
  }

  /**
   * For polling strategies: the full current list; joins what is missing, reports what dropped
   * out, and stops retrying pending addresses that are no longer listed.
   */
  async reconcile(addresses: Address[]): Promise<void> {
    const self = formatAddress(this.ctx.self.address);
    const now = new Map(addresses.map((a) => [formatAddress(a), a]));
    if (this.disconnectRemoved) {
      for (const [key, a] of this.listed) if (!now.has(key) && key !== self) this.dropped(a);
    }
    for (const key of [...this.pending.keys()]) if (!now.has(key)) this.unpend(key);
    this.listed = now;
    await this.joinMissing(addresses);
  }

  /**
   * For event-driven strategies (gossip, mDNS) and polling ones alike: joins the addresses that are
   * not live members and not this node, within the limits. Concurrent joins of one address are
   * coalesced by the node. Resolves when the attempts started by this call have settled.
   */
  async joinMissing(addresses: Address[]): Promise<void> {
    const self = formatAddress(this.ctx.self.address);
    const live = new Set(
      this.ctx
        .knownNodes()
        .filter((m) => m.status === 'alive' || m.status === 'suspect')
        .map((m) => m.address),
    );
    const now = this.ctx.clock.now();
    const due: Pending[] = [];
    const seen = new Set<string>();
    let taken = 0;
    let droppedBatch = 0;
    let droppedPending = 0;
    const n = addresses.length;
    const start = n > 0 ? this.cursor % n : 0;
    for (let i = 0; i < n; i++) {
      const a = addresses[(start + i) % n]!;
      const key = formatAddress(a);
      if (key === self || seen.has(key)) continue;
      seen.add(key);
      if (live.has(key)) {
        // Joined (by us or by someone else): no longer pending, and its history is moot.
        this.pending.delete(key);
        this.remembered.delete(key);
        continue;
      }
      let p = this.pending.get(key);
      if (!p) {
        if (taken >= this.limits.maxNewPerBatch) {
          droppedBatch++;
          continue;
        }
        const past = this.remembered.get(key);
        // A parked address is not taken again before its time, and costs no slot meanwhile.
        if (past && past.nextAt > now) continue;
        if (this.pending.size >= this.limits.maxPending && !this.evictOne()) {
          droppedPending++;
          continue;
        }
        taken++;
        // The next call resumes after the last address this one took.
        this.cursor = start + i + 1;
        this.remembered.delete(key);
        p = { address: a, failures: past?.failures ?? 0, nextAt: now, inFlight: false };
        this.pending.set(key, p);
      }
      if (!p.inFlight && p.nextAt <= now) {
        if (this.takeToken(now)) due.push(p);
        else this.stats.deferred++;
      }
    }
    if (droppedBatch || droppedPending) this.droppedSome(droppedBatch, droppedPending);
    await Promise.all(due.map((p) => this.attempt(p)));
  }

  /** `address` is no longer listed: tell the node (ctx.disconnect) and publish it. */
  dropped(address: Address): void {
    this.unpend(formatAddress(address));
    this.ctx.disconnect(address);
    publish('discoveryDisconnect', () => ({
      metadata: {
        cluster: this.ctx.cluster,
        strategy: this.strategy,
        address: formatAddress(address),
      },
    }));
  }

  /** Stops tracking `key`, keeping its failure history so re-listing it does not reset backoff. */
  private unpend(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    if (p.failures > 0) this.remember(key, p.failures, p.nextAt);
  }

  private remember(key: string, failures: number, nextAt: number): void {
    this.remembered.delete(key);
    if (this.remembered.size >= this.limits.maxRemembered) {
      const oldest = this.remembered.keys().next().value;
      if (oldest !== undefined) this.remembered.delete(oldest);
    }
    this.remembered.set(key, { failures, nextAt });
  }

  private takeToken(now: number): boolean {
    const { dialsPerSecond, dialBurst } = this.limits;
    this.tokens = Math.min(
      dialBurst,
      this.tokens + ((now - this.refilledAt) * dialsPerSecond) / 1000,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Frees a slot held by an address that keeps failing; false when every pending one still has a chance. */
  private evictOne(): boolean {
    for (const [key, p] of this.pending) {
      if (p.inFlight || p.failures < this.limits.evictAfterFailures) continue;
      this.pending.delete(key);
      this.remember(key, p.failures, this.ctx.clock.now() + this.limits.parkMs);
      this.stats.evicted++;
      return true;
    }
    return false;
  }

  private droppedSome(batch: number, pending: number): void {
    this.stats.droppedBatch += batch;
    this.stats.droppedPending += pending;
    const now = this.ctx.clock.now();
    const fields = {
      strategy: this.strategy,
      droppedBatch: this.stats.droppedBatch,
      droppedPending: this.stats.droppedPending,
      pending: this.pending.size,
    };
    const msg =
      'discovery listed more new addresses than it may dial; the rest wait (see docs/discovery.md, limits)';
    if (now - this.lastDropWarning >= 60_000) {
      this.lastDropWarning = now;
      this.ctx.log.warn(fields, msg);
    } else this.ctx.log.debug(fields, msg);
    publish('discoveryDropped', () => ({
      measurements: { batch, pending },
      metadata: { cluster: this.ctx.cluster, strategy: this.strategy },
    }));
  }

  private async attempt(p: Pending): Promise<void> {
    const key = formatAddress(p.address);
    p.inFlight = true;
    this.stats.attempts++;
    const ok = await this.connect(p.address);
    p.inFlight = false;
    if (this.pending.get(key) !== p) return; // unlisted meanwhile
    if (ok) {
      // A member now; if it goes away and is listed again, it starts afresh.
      this.pending.delete(key);
      return;
    }
    this.stats.failures++;
    p.failures++;
    const delay = Math.min(
      this.limits.retryBaseMs * 2 ** Math.min(p.failures - 1, 30),
      this.limits.retryMaxMs,
    );
    p.nextAt = this.ctx.clock.now() + delay;
  }

  /** One join attempt with telemetry; true when a node answered (or a join is already under way). */
  private async connect(address: Address): Promise<boolean> {
    const started = this.ctx.clock.now();
    try {
      const name = await this.ctx.connect(address);
      // undefined: nothing to do (a join to that address is already under way, or it is us).
      if (name === undefined) return true;
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
      return true;
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
      return false;
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
