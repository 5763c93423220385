// Jittered exponential backoff ("full jitter", as in the AWS architecture note): the n-th retry
// waits a uniform random time in [base/2, min(max, base * 2^n)], so a cluster that lost a peer
// does not reconnect in lock-step.

export interface BackoffOptions {
  /** First delay in ms. */
  baseMs: number;
  /** Largest delay in ms. */
  maxMs: number;
}

export class Backoff {
  private attempt = 0;
  constructor(
    private readonly opts: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call grows the ceiling. */
  next(): number {
    const ceiling = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    const floor = Math.min(this.opts.baseMs / 2, ceiling);
    return floor + this.random() * (ceiling - floor);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
