// Resilience policies of service calls, built on cockatiel (retry with backoff, circuit breaker,
// bulkhead, fallback) and rate-limiter-flexible (rate limit per service), plus the one rule that
// decides which failures may be retried: an attempt that surely did not run the action fails over
// to another endpoint always; one that may have run it is retried only for idempotent actions.
import {
  type BulkheadPolicy,
  BulkheadRejectedError,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type RetryPolicy,
  retry,
} from 'cockatiel';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { type ErrorCode, FoundationError, isFoundationError } from '../errors.js';

/** Retries of one call. Defaults in CALL_DEFAULTS. */
export interface RetryOptions {
  /** Further attempts after the first (each on another endpoint when there is one). Default 2. */
  retries: number;
  /** First backoff delay, ms (exponential, decorrelated jitter, up to maxDelayMs). Default 20. */
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Circuit breaker per endpoint (node × service), on the caller. */
export interface BreakerOptions {
  /** Consecutive failures that open it. Default 5. */
  threshold: number;
  /** How long it stays open before one trial call (half-open), ms. Default 10 000. */
  halfOpenAfterMs: number;
}

/** Bulkhead of a service on its serving node: calls running at once, and waiting. */
export interface BulkheadOptions {
  maxConcurrent: number;
  /** Calls that may wait for a slot; more are refused with FND_ERR_BULKHEAD_FULL. Default 0. */
  maxQueue?: number;
}

/** Rate limit of a service on its serving node (token bucket over a fixed window). */
export interface RateLimitOptions {
  /** Calls allowed per window. */
  points: number;
  /** Window length, ms. */
  durationMs: number;
  /** Count per calling node instead of for all callers together. Default false. */
  perCaller?: boolean;
}

/** Codes after which the action surely did not run on that endpoint: another may take the call. */
const NOT_RUN: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'FND_ERR_SERVICE_NOT_FOUND',
  'FND_ERR_NO_HANDLER',
  'FND_ERR_BULKHEAD_FULL',
  'FND_ERR_RATE_LIMITED',
  'FND_ERR_UNKNOWN_NODE',
  'FND_ERR_SERVICE_UNAVAILABLE',
  'FND_ERR_BACKPRESSURE',
]);
/** Codes after which the action may or may not have run: retried only when idempotent. */
const MAYBE_RUN: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'FND_ERR_NODE_DOWN',
  'FND_ERR_NODE_UNREACHABLE',
  'FND_ERR_NODE_STOPPED',
]);

/** Whether `err` may be retried on another attempt of an action that is (not) idempotent. */
export function isRetryable(err: unknown, idempotent: boolean): boolean {
  if (!isFoundationError(err)) return false;
  // Our own stop is final; a remote node's stop (data.remote) is like that node going down.
  if (err.code === 'FND_ERR_NODE_STOPPED' && err.data?.remote !== true) return false;
  if (NOT_RUN.has(err.code)) return true;
  // Refused before anything was sent (the node was already known unreachable): it did not run.
  if (err.code === 'FND_ERR_NODE_UNREACHABLE' && err.data?.sent === false) return true;
  if (!idempotent) return false;
  if (MAYBE_RUN.has(err.code)) return true;
  return err.code === 'FND_ERR_SERVICE_ACTION' && err.data?.retryable === true;
}

/** Whether a failure counts against an endpoint's breaker (not the caller's fault, not a refusal). */
export function countsForBreaker(err: unknown): boolean {
  if (!isFoundationError(err)) return true;
  switch (err.code) {
    case 'FND_ERR_VALIDATION':
    case 'FND_ERR_DEADLINE_EXCEEDED':
    case 'FND_ERR_RATE_LIMITED':
    case 'FND_ERR_BULKHEAD_FULL':
      return false;
    default:
      return true;
  }
}

/**
 * A cockatiel retry policy for the attempts after a call's first (which ran outside it): its own
 * first execution is retry number 1, so it retries `retries - 1` more times. `idempotent` decides
 * which failures are retried.
 */
export function retryPolicy(opts: RetryOptions, idempotent: boolean): RetryPolicy {
  return retry(
    handleWhen((e) => isRetryable(e, idempotent)),
    {
      maxAttempts: Math.max(0, opts.retries - 1),
      backoff: new ExponentialBackoff({
        initialDelay: opts.initialDelayMs,
        maxDelay: opts.maxDelayMs,
      }),
    },
  );
}

/**
 * Circuit breakers of the endpoints one node calls (keyed by node and service). cockatiel keeps
 * an open circuit "open" until the next execution after the break, so `usable` tracks when it
 * opened to let the balancer offer the endpoint again for the half-open trial.
 */
export class Breakers {
  private readonly map = new Map<string, { policy: CircuitBreakerPolicy; openedAt: number }>();

  /** Most breakers kept; the oldest are forgotten beyond this (they are re-created closed). */
  constructor(private readonly max = 10_000) {}

  private get(key: string, opts: BreakerOptions) {
    let b = this.map.get(key);
    if (!b) {
      if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
      const policy = circuitBreaker(handleWhen(countsForBreaker), {
        halfOpenAfter: opts.halfOpenAfterMs,
        breaker: new ConsecutiveBreaker(opts.threshold),
      });
      const entry = { policy, openedAt: 0 };
      policy.onBreak(() => {
        entry.openedAt = Date.now();
      });
      b = entry;
      this.map.set(key, b);
    }
    return b;
  }

  /** Whether an endpoint may be offered: closed, or open for at least halfOpenAfterMs. */
  usable(node: string, service: string, opts: BreakerOptions): boolean {
    const b = this.map.get(`${node}\u0000${service}`);
    if (!b) return true;
    switch (b.policy.state) {
      case CircuitState.Closed:
        return true;
      case CircuitState.Open:
        return Date.now() - b.openedAt >= opts.halfOpenAfterMs;
      default:
        return false; // half-open: its trial call is running; isolated: held open
    }
  }

  state(node: string, service: string): CircuitState {
    return this.map.get(`${node}\u0000${service}`)?.policy.state ?? CircuitState.Closed;
  }

  run<T>(node: string, service: string, opts: BreakerOptions, fn: () => Promise<T>): Promise<T> {
    return this.get(`${node}\u0000${service}`, opts)
      .policy.execute(fn)
      .catch((err: unknown) => {
        if (isFoundationError(err)) throw err;
        if (
          (err as Error)?.name === 'BrokenCircuitError' ||
          (err as Error)?.name === 'IsolatedCircuitError'
        ) {
          throw new FoundationError(
            'FND_ERR_SERVICE_UNAVAILABLE',
            `the circuit breaker of ${service} on ${node} is open`,
            { service, node, reason: 'circuit_open' },
          );
        }
        throw err;
      });
  }

  forgetNode(node: string): void {
    for (const k of [...this.map.keys()]) if (k.startsWith(`${node}\u0000`)) this.map.delete(k);
  }
}

/** The guards a serving node puts in front of one service: bulkhead and rate limit. */
export class ServerGuards {
  private readonly bulkhead: BulkheadPolicy | undefined;
  private readonly limiter: RateLimiterMemory | undefined;

  constructor(
    private readonly service: string,
    private readonly opts: { bulkhead?: BulkheadOptions; rateLimit?: RateLimitOptions },
  ) {
    if (opts.bulkhead)
      this.bulkhead = bulkhead(opts.bulkhead.maxConcurrent, opts.bulkhead.maxQueue ?? 0);
    if (opts.rateLimit) {
      this.limiter = new RateLimiterMemory({
        points: opts.rateLimit.points,
        duration: opts.rateLimit.durationMs / 1000,
      });
    }
  }

  get empty(): boolean {
    return !this.bulkhead && !this.limiter;
  }

  /** Runs `fn` through the rate limit, then the bulkhead; refusals are coded. */
  async run<T>(caller: string, fn: () => Promise<T> | T): Promise<T> {
    if (this.limiter) {
      const key = this.opts.rateLimit?.perCaller ? caller : '*';
      try {
        await this.limiter.consume(key);
      } catch (res) {
        if (!(res instanceof RateLimiterRes)) throw res;
        throw new FoundationError(
          'FND_ERR_RATE_LIMITED',
          `service ${this.service}: rate limit of ${this.opts.rateLimit!.points} per ${this.opts.rateLimit!.durationMs} ms used up`,
          { service: this.service, retryInMs: res.msBeforeNext },
        );
      }
    }
    if (!this.bulkhead) return fn();
    try {
      return await this.bulkhead.execute(() => fn());
    } catch (err) {
      if (err instanceof BulkheadRejectedError) {
        throw new FoundationError(
          'FND_ERR_BULKHEAD_FULL',
          `service ${this.service}: ${this.opts.bulkhead!.maxConcurrent} calls running and ${this.opts.bulkhead!.maxQueue ?? 0} waiting`,
          { service: this.service },
        );
      }
      throw err;
    }
  }
}
