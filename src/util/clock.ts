// Time is injected: core code asks a Clock for `now()` and timers, so membership and request
// timeouts run under a ManualClock in tests (no sleeps) and under the system clock in production.

export interface TimerHandle {
  /** Stops the timer; safe to call more than once. */
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (fractional allowed); only differences are meaningful. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (used for incarnation numbers). */
  wallNow(): number;
  /** Runs `fn` once after `ms`. The callback runs on its own tick, never synchronously. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Runs `fn` every `ms` until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/** Largest delay Node's timers honour. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock: performance.now() and unref'd Node timers (they never keep a process alive). */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }
  wallNow(): number {
    return Date.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    // Node clamps delays above 2^31-1 ms to 1 ms: chain long waits; Infinity never fires.
    if (ms === Number.POSITIVE_INFINITY) return { cancel() {} };
    let t: NodeJS.Timeout;
    const arm = (left: number) => {
      t = setTimeout(
        left > MAX_TIMER_MS ? () => arm(left - MAX_TIMER_MS) : fn,
        Math.min(left, MAX_TIMER_MS),
      );
      t.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  }
}

export const systemClock: Clock = new SystemClock();

/**
 * `clock.now()` read at most once per synchronous run: the first read is kept until the microtask
 * queue next drains. For hot paths that stamp every message of a batch read together (64
 * pipelined calls cost one clock read, not 64); the time is that of the batch, stale by at most
 * the synchronous work done since it was read, which only ever makes a deadline earlier.
 */
export function batchNow(clock: Clock): () => number {
  let t: number | undefined;
  const clear = () => {
    t = undefined;
  };
  return () => {
    if (t === undefined) {
      t = clock.now();
      queueMicrotask(clear);
    }
    return t;
  };
}

interface ManualTimer {
  id: number;
  at: number;
  fn: () => void;
  every: number | undefined;
  cancelled: boolean;
}

/** Waits until pending I/O callbacks and microtasks (in-memory deliveries) have run. */
export async function flushIO(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A clock that only moves when told. `tick` fires due timers in time order; `tickAsync` also lets
 * in-memory network deliveries run between timers; `stall` moves time without firing anything,
 * the way a blocked event loop does, so the next tick fires timers late.
 */
export class ManualClock implements Clock {
  private current = 0;
  private seq = 0;
  private timers: ManualTimer[] = [];
  constructor(private readonly wallStart = 1_700_000_000_000) {}

  now(): number {
    return this.current;
  }
  wallNow(): number {
    return this.wallStart + this.current;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, undefined);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }
  /** Number of timers still scheduled. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  private add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const timer: ManualTimer = {
      id: ++this.seq,
      at: this.current + Math.max(0, ms),
      fn,
      every,
      cancelled: false,
    };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  private nextDue(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (t.cancelled || t.at > limit) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    }
    return best;
  }

  private fire(t: ManualTimer): void {
    if (t.every !== undefined) t.at += t.every;
    else {
      t.cancelled = true;
      this.timers = this.timers.filter((x) => x !== t);
    }
    t.fn();
  }

  /** Advances time by `ms`, firing every timer due on the way, synchronously. */
  tick(ms: number): void {
    const end = this.current + ms;
    for (let t = this.nextDue(end); t; t = this.nextDue(end)) {
      this.current = Math.max(this.current, t.at);
      this.fire(t);
    }
    this.current = end;
  }

  /** Like tick, but lets I/O (in-memory deliveries, promise callbacks) run after each timer. */
  async tickAsync(ms: number): Promise<void> {
    const end = this.current + ms;
    await flushIO();
    for (let t = this.nextDue(end); t; t = this.nextDue(end)) {
      this.current = Math.max(this.current, t.at);
      this.fire(t);
      await flushIO();
    }
    this.current = end;
    await flushIO();
  }

  /** Moves time forward without running timers: a blocked event loop. Late timers fire on the next tick. */
  stall(ms: number): void {
    this.current += ms;
  }
}
