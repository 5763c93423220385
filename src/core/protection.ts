// `node.protection`: per-key guards around calls to anything that can fail or be overloaded — a
// circuit breaker (cockatiel), a rate limiter (rate-limiter-flexible) and a resource pool
// (generic-pool) — behind one `execute(key, fn)` that rejects with coded errors. State changes and
// refusals are published on diagnostics channels, which telemetry turns into metrics.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleAll,
} from 'cockatiel';
import { createPool, type Pool } from 'generic-pool';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { FoundationError } from '../errors.js';
import { publish } from '../util/diagnostics.js';
import type { Logger } from '../util/log.js';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold: number;
  /** Milliseconds the circuit stays open before one trial call is let through. */
  halfOpenAfter: number;
}

export interface RateLimiterOptions {
  /** Calls allowed per window. */
  points: number;
  /** Window length, ms. */
  durationMs: number;
  /**
   * 'node' (default): this node's own budget. 'cluster': `points` is the cluster's budget, and each
   * node allows its share, `points / alive members` (at least 1), recomputed as members come and
   * go. A share, not a shared counter: uneven load across nodes uses less than the whole budget.
   */
  scope?: 'node' | 'cluster';
}

export interface PoolOptions<R> {
  /** Makes one resource. */
  create(): Promise<R>;
  /** Releases one resource for good. */
  destroy(resource: R): Promise<void>;
  /** Most resources at once. */
  max: number;
  /** Resources kept ready. Default 0. */
  min?: number;
  /** How long execute waits for a free resource, ms. Default 5000. */
  acquireTimeoutMs?: number;
}

export interface ProtectionOptions<R = unknown> {
  circuitBreaker?: CircuitBreakerOptions;
  rateLimiter?: RateLimiterOptions;
  pool?: PoolOptions<R>;
}

/** What `state(key)` reports. */
export interface ProtectionState {
  circuit: 'closed' | 'open' | 'half-open' | 'isolated' | undefined;
  pool: { size: number; available: number; borrowed: number; pending: number } | undefined;
  /** This node's rate-limit points per window (its share when scope is 'cluster'). */
  ratePoints: number | undefined;
}

/**
 * A pooled resource in a box of its own: generic-pool tells its loans apart by identity, so
 * resources that are all `undefined` (a pool used as a plain concurrency limit) or otherwise
 * equal would share one loan, and their slots would never come back.
 */
interface Loan {
  r: unknown;
}

/** The longest pause after a failed pool create before generic-pool may try again. */
const CREATE_RETRY_MAX_MS = 1000;

interface Guard {
  key: string;
  breaker: CircuitBreakerPolicy | undefined;
  limiter: RateLimiterMemory | undefined;
  rate: RateLimiterOptions | undefined;
  ratePoints: number;
  pool: Pool<Loan> | undefined;
  dispose(): void;
}

const CIRCUIT_NAMES: Record<CircuitState, ProtectionState['circuit']> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

function bad(argument: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_ARGUMENT', `${argument}: ${what}`, { argument });
}

const posInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;

export class Protection {
  private readonly guards = new Map<string, Guard>();

  /** `aliveMembers()` counts this node too; used to split cluster-scoped rate limits. */
  constructor(
    private readonly log: Logger,
    private readonly aliveMembers: () => number,
  ) {}

  /**
   * Sets (or replaces) the guards of `key`. FND_ERR_INVALID_ARGUMENT names a bad field. Replacing
   * a key drains its old pool.
   */
  configure<R = unknown>(key: string, opts: ProtectionOptions<R>): void {
    if (typeof key !== 'string' || key.length === 0 || key.length > 256)
      throw bad('key', 'a non-empty string of at most 256 characters');
    if (typeof opts !== 'object' || opts === null) throw bad('options', 'an object');
    const cb = opts.circuitBreaker;
    if (cb !== undefined && (!posInt(cb.threshold) || !posInt(cb.halfOpenAfter)))
      throw bad('circuitBreaker', '{ threshold ≥ 1, halfOpenAfter ≥ 1 ms } (integers)');
    const rl = opts.rateLimiter;
    if (
      rl !== undefined &&
      (!posInt(rl.points) ||
        !posInt(rl.durationMs) ||
        (rl.scope !== undefined && rl.scope !== 'node' && rl.scope !== 'cluster'))
    )
      throw bad('rateLimiter', "{ points ≥ 1, durationMs ≥ 1, scope?: 'node' | 'cluster' }");
    const po = opts.pool;
    if (
      po !== undefined &&
      (typeof po.create !== 'function' ||
        typeof po.destroy !== 'function' ||
        !posInt(po.max) ||
        (po.min !== undefined &&
          (!Number.isSafeInteger(po.min) || po.min < 0 || po.min > po.max)) ||
        (po.acquireTimeoutMs !== undefined && !posInt(po.acquireTimeoutMs)))
    )
      throw bad('pool', '{ create, destroy, max ≥ 1, min? ≤ max, acquireTimeoutMs? ≥ 1 }');

    this.remove(key);
    let breaker: CircuitBreakerPolicy | undefined;
    const subs: Array<{ dispose(): void }> = [];
    if (cb) {
      breaker = circuitBreaker(handleAll, {
        halfOpenAfter: cb.halfOpenAfter,
        breaker: new ConsecutiveBreaker(cb.threshold),
      });
      subs.push(
        breaker.onStateChange((s) =>
          publish('protectionState', () => ({ key, state: CIRCUIT_NAMES[s] })),
        ),
      );
    }
    let pool: Pool<Loan> | undefined;
    if (po) {
      let failures = 0;
      const create = async (): Promise<Loan> => {
        try {
          const r = await po.create();
          failures = 0;
          return { r };
        } catch (err) {
          // generic-pool retries a failed create at once while a caller waits: without a pause,
          // a create that fails without waiting on anything would spin the event loop (no timer,
          // not even the acquire timeout, would fire). 10 ms doubling, at most 1 s.
          failures++;
          await sleep(Math.min(CREATE_RETRY_MAX_MS, 10 * 2 ** Math.min(failures, 10)));
          throw err;
        }
      };
      pool = createPool<Loan>(
        { create, destroy: (l) => po.destroy(l.r as R) },
        { max: po.max, min: po.min ?? 0, acquireTimeoutMillis: po.acquireTimeoutMs ?? 5000 },
      );
      // Factory failures surface as acquire timeouts; keep the reason in the log.
      pool.on('factoryCreateError', (err) =>
        this.log.warn({ key, err: (err as Error).message }, 'pool create failed'),
      );
    }
    const guard: Guard = {
      key,
      breaker,
      limiter: undefined,
      rate: rl,
      ratePoints: 0,
      pool,
      dispose: () => {
        for (const s of subs) s.dispose();
      },
    };
    this.guards.set(key, guard);
    if (rl) this.rebuildLimiter(guard);
  }

  /** Recomputes cluster-scoped rate-limit shares (called by the node on member changes). */
  membersChanged(): void {
    for (const g of this.guards.values()) if (g.rate?.scope === 'cluster') this.rebuildLimiter(g);
  }

  private rebuildLimiter(g: Guard): void {
    const rl = g.rate!;
    const points =
      rl.scope === 'cluster'
        ? Math.max(1, Math.floor(rl.points / Math.max(1, this.aliveMembers())))
        : rl.points;
    if (g.limiter && points === g.ratePoints) return;
    g.ratePoints = points;
    g.limiter = new RateLimiterMemory({ points, duration: rl.durationMs / 1000 });
  }

  /** Keys configured. */
  keys(): string[] {
    return [...this.guards.keys()];
  }

  /** The state of `key`'s guards; FND_ERR_UNKNOWN_PROTECTION for an unknown key. */
  state(key: string): ProtectionState {
    const g = this.guard(key);
    return {
      circuit: g.breaker ? CIRCUIT_NAMES[g.breaker.state] : undefined,
      pool: g.pool
        ? {
            size: g.pool.size,
            available: g.pool.available,
            borrowed: g.pool.borrowed,
            pending: g.pool.pending,
          }
        : undefined,
      ratePoints: g.limiter ? g.ratePoints : undefined,
    };
  }

  /**
   * Runs `fn` under `key`'s guards: rate limiter, then a pool resource (passed to `fn`), then the
   * circuit breaker. Rejects with FND_ERR_RATE_LIMITED, FND_ERR_POOL_EXHAUSTED or
   * FND_ERR_CIRCUIT_OPEN without calling `fn`, FND_ERR_UNKNOWN_PROTECTION for an unknown key, and
   * with `fn`'s own error when `fn` fails (counted by the breaker).
   */
  async execute<T, R = unknown>(key: string, fn: (resource: R) => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw bad('fn', 'a function');
    const g = this.guard(key);
    if (g.limiter) {
      try {
        await g.limiter.consume(key);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        publish('protectionRejected', () => ({ key, reason: 'rate-limited' }));
        throw new FoundationError('FND_ERR_RATE_LIMITED', `"${key}"`, {
          key,
          retryAfterMs: err.msBeforeNext,
        });
      }
    }
    let loan: Loan | undefined;
    if (g.pool) {
      try {
        loan = await g.pool.acquire();
      } catch (err) {
        publish('protectionRejected', () => ({ key, reason: 'pool-exhausted' }));
        throw new FoundationError('FND_ERR_POOL_EXHAUSTED', `"${key}"`, { key }, { cause: err });
      }
    }
    const resource = loan?.r as R;
    let destroy = false;
    try {
      if (!g.breaker) return await fn(resource);
      return await g.breaker.execute(() => fn(resource));
    } catch (err) {
      if (err instanceof BrokenCircuitError) {
        publish('protectionRejected', () => ({ key, reason: 'circuit-open' }));
        throw new FoundationError('FND_ERR_CIRCUIT_OPEN', `"${key}"`, { key }, { cause: err });
      }
      destroy = true; // a resource a failed call used may be broken: replace it
      throw err;
    } finally {
      if (g.pool && loan !== undefined) {
        const p = destroy ? g.pool.destroy(loan) : g.pool.release(loan);
        p.catch((e: unknown) =>
          this.log.warn({ key, err: (e as Error).message }, 'pool release failed'),
        );
      }
    }
  }

  /** Removes `key`'s guards, draining its pool. */
  remove(key: string): boolean {
    const g = this.guards.get(key);
    if (!g) return false;
    this.guards.delete(key);
    g.dispose();
    if (g.pool) void this.drain(g.pool);
    return true;
  }

  private guard(key: string): Guard {
    const g = this.guards.get(key);
    if (!g) {
      throw new FoundationError('FND_ERR_UNKNOWN_PROTECTION', `"${String(key)}"`, { key });
    }
    return g;
  }

  private async drain(pool: Pool<Loan>): Promise<void> {
    try {
      await pool.drain();
      await pool.clear();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pool drain failed');
    }
  }

  /** Drains every pool. */
  async stop(): Promise<void> {
    const pools = [...this.guards.values()].flatMap((g) => (g.pool ? [g.pool] : []));
    for (const g of this.guards.values()) g.dispose();
    this.guards.clear();
    await Promise.all(pools.map((p) => this.drain(p)));
  }
}
