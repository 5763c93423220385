// Bounds the outbound connections a node opens, whatever it is told to dial: a token bucket caps
// the global dial rate, and an address whose dials fail is backed off exponentially. Every dial
// goes through PeerManager.dialLink, which asks this limiter first, so no message (a SYNC full of
// invented members, a forged discovery record) can turn one node into a connection flood.
import type { Clock } from '../util/clock.js';

export interface DialLimits {
  /** Sustained dials per second, all addresses together (token refill rate). */
  ratePerSec: number;
  /** Dials allowed in a burst above the sustained rate (bucket size). */
  burst: number;
  /** Wait before re-dialling an address after its first failed dial, in ms; doubles per failure. */
  backoffBaseMs: number;
  /** Longest wait before re-dialling a failing address, in ms. */
  backoffMaxMs: number;
}

/**
 * 50 dials/s with bursts of 100: a node joining a 100-member cluster dials every member at once,
 * while one message can cause at most a few hundred connects in 5 s (it caused 57,020 before).
 */
export const DEFAULT_DIAL_RATE_PER_SEC = 50;
export const DEFAULT_DIAL_BURST = 100;
/**
 * Per-address backoff: 100 ms after the first failure, doubling up to 10 s. The cluster node sets
 * these from the timing preset (ceiling max(500 ms, reconnectIntervalMs / 2)), so a
 * partition heals no slower than the preset's reconnect interval.
 */
export const DEFAULT_DIAL_BACKOFF_BASE_MS = 100;
export const DEFAULT_DIAL_BACKOFF_MAX_MS = 10_000;
/** Most addresses whose failures are remembered; the oldest are forgotten first. */
export const MAX_TRACKED_ADDRESSES = 4096;

export const DEFAULT_DIAL_LIMITS: Readonly<DialLimits> = Object.freeze({
  ratePerSec: DEFAULT_DIAL_RATE_PER_SEC,
  burst: DEFAULT_DIAL_BURST,
  backoffBaseMs: DEFAULT_DIAL_BACKOFF_BASE_MS,
  backoffMaxMs: DEFAULT_DIAL_BACKOFF_MAX_MS,
});

/** Why a dial was refused, and when trying again could succeed. */
export interface DialRefusal {
  reason: 'rate' | 'backoff';
  retryInMs: number;
}

interface Failing {
  failures: number;
  /** Monotonic time before which this address is not dialled again. */
  until: number;
}

export class DialLimiter {
  private tokens: number;
  private refilledAt: number;
  private readonly failing = new Map<string, Failing>();
  /** Dials refused so far (for stats and tests). */
  refused = 0;

  constructor(
    private readonly limits: DialLimits,
    private readonly clock: Clock,
  ) {
    this.tokens = limits.burst;
    this.refilledAt = clock.now();
  }

  /**
   * Asks to dial `address` (`host:port`) now: undefined means go ahead (a token was taken), else
   * why not. Never throws; call once per connection attempt, before opening the socket.
   */
  acquire(address: string): DialRefusal | undefined {
    const now = this.clock.now();
    const f = this.failing.get(address);
    if (f && now < f.until) {
      this.refused++;
      return { reason: 'backoff', retryInMs: f.until - now };
    }
    this.refill(now);
    if (this.tokens < 1) {
      this.refused++;
      return { reason: 'rate', retryInMs: ((1 - this.tokens) * 1000) / this.limits.ratePerSec };
    }
    this.tokens -= 1;
    return undefined;
  }

  /** The dial to `address` failed (connect or handshake): back it off. */
  failed(address: string): void {
    const prev = this.failing.get(address);
    const failures = (prev?.failures ?? 0) + 1;
    const wait = Math.min(
      this.limits.backoffMaxMs,
      this.limits.backoffBaseMs * 2 ** Math.min(failures - 1, 30),
    );
    // Re-inserted so Map order is least recently failed first (what gets forgotten first).
    this.failing.delete(address);
    this.failing.set(address, { failures, until: this.clock.now() + wait });
    if (this.failing.size > MAX_TRACKED_ADDRESSES) {
      const oldest = this.failing.keys().next().value;
      if (oldest !== undefined) this.failing.delete(oldest);
    }
  }

  /**
   * A dial to `address` succeeded, or a member vouched for it first-hand: forget its failures so
   * the next dial is not delayed.
   */
  succeeded(address: string): void {
    this.failing.delete(address);
  }

  /** Consecutive failures of `address` still remembered (0 when none). */
  failures(address: string): number {
    return this.failing.get(address)?.failures ?? 0;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.refilledAt);
    this.refilledAt = now;
    this.tokens = Math.min(
      this.limits.burst,
      this.tokens + (elapsed * this.limits.ratePerSec) / 1000,
    );
  }
}
