// A retry helper for calls that fail transiently: exponential backoff with jitter, from cockatiel
// (the library's RetryPolicy, not our own loop), with Foundation's argument checks and a filter
// so that errors that will not go away (bad input, a refused option) are not retried.
import { ExponentialBackoff, handleWhen, retry as retryPolicy } from 'cockatiel';
import { FoundationError, isFoundationError } from '../errors.js';

export interface RetryOptions {
  /** Tries in all, the first included. Default 3. */
  attempts?: number;
  /** First delay, ms. Default 100. */
  initialDelayMs?: number;
  /** Longest delay, ms. Default 5000. */
  maxDelayMs?: number;
  /**
   * Which errors are worth another try. Default: everything except Foundation errors that
   * describe the call itself (FND_ERR_INVALID_ARGUMENT, FND_ERR_INVALID_OPTION,
   * FND_ERR_CONFIG_*) and open circuits (FND_ERR_CIRCUIT_OPEN: the breaker says wait).
   */
  retryOn?: (err: unknown) => boolean;
  /** Stops waiting and rejects with the signal's reason. */
  signal?: AbortSignal;
}

const PERMANENT = new Set([
  'FND_ERR_INVALID_ARGUMENT',
  'FND_ERR_INVALID_OPTION',
  'FND_ERR_CONFIG_PATH',
  'FND_ERR_CONFIG_NOT_UPDATABLE',
  'FND_ERR_CONFIG_INVALID',
  'FND_ERR_CIRCUIT_OPEN',
]);

/** The default `retryOn`. */
export function isTransient(err: unknown): boolean {
  return !(isFoundationError(err) && PERMANENT.has(err.code));
}

/**
 * Calls `fn` until it succeeds, it throws an error `retryOn` refuses, or `attempts` tries have
 * been made; rejects with the last error. `fn` gets the attempt number (1-based).
 */
export async function retry<T>(
  fn: (attempt: number) => T | Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const attempts = opts.attempts ?? 3;
  const initialDelay = opts.initialDelayMs ?? 100;
  const maxDelay = opts.maxDelayMs ?? 5000;
  const bad = (argument: string, what: string) =>
    new FoundationError('FND_ERR_INVALID_ARGUMENT', `retry ${argument}: ${what}`, { argument });
  if (typeof fn !== 'function') throw bad('fn', 'a function');
  if (!Number.isSafeInteger(attempts) || attempts < 1) throw bad('attempts', 'an integer ≥ 1');
  if (!(initialDelay >= 0) || !(maxDelay >= initialDelay))
    throw bad('delays', '0 ≤ initialDelayMs ≤ maxDelayMs');
  const signal = opts.signal;
  if (signal?.aborted) throw signal.reason;
  const retryOn = opts.retryOn ?? isTransient;
  const policy = retryPolicy(
    handleWhen((err) => retryOn(err)),
    {
      maxAttempts: attempts - 1,
      backoff: new ExponentialBackoff({ initialDelay, maxDelay }),
    },
  );
  const run = policy.execute(({ attempt }) => {
    if (signal?.aborted) throw signal.reason; // aborted during a backoff wait
    return fn(attempt + 1);
  }, signal);
  if (!signal) return run;
  // cockatiel's backoff wait does not watch the signal: reject on abort ourselves, at once. (Its
  // timer still runs out; the attempt after it sees the signal and does not call fn.)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    run.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
