// The run queue: actors with messages wait here and run in turn, each for a bounded number of
// messages, and the whole queue yields to the event loop (setImmediate) after a time slice, so a
// flooded actor never starves timers, I/O or other actors. The Node.js answer to BEAM reductions.

export interface Runnable {
  /**
   * Processes up to `budget` messages, calling `scheduler.tick()` after each one and stopping as
   * soon as it returns true (the time slice is over); returns true when it still has messages
   * ready to run.
   */
  run(budget: number, scheduler: Scheduler): boolean;
  /** Set while queued, so an actor is queued at most once. */
  queued: boolean;
}

export interface SchedulerOptions {
  /** Messages one actor may process before the next actor's turn. */
  budget: number;
  /** Milliseconds of actor work before yielding to the event loop. */
  sliceMs: number;
}

/** Most messages between two clock reads (reading the clock costs about as much as a message). */
const MAX_STRIDE = 64;

export class Scheduler {
  /** Ring buffer of queued actors (capacity a power of two). */
  private ring: Array<Runnable | undefined> = new Array<Runnable | undefined>(16).fill(undefined);
  private head = 0;
  private count = 0;
  private pending = false;
  /** Times the scheduler yielded to the event loop mid-work (observable fairness). */
  yields = 0;
  // Time slice accounting, shared by every actor that runs in one drain: the clock is read every
  // `stride` messages, the stride adapting so that a read happens about every `checkMs` of work.
  // Cheap handlers then cost one clock read per 64 messages, and slow ones (a read after each)
  // cannot overrun the slice by more than about one handler.
  private readonly checkMs: number;
  private deadline = 0;
  private lastCheck = 0;
  private stride = 1;
  private countdown = 1;
  private expired = false;

  constructor(readonly opts: SchedulerOptions = { budget: 256, sliceMs: 4 }) {
    this.checkMs = opts.sliceMs / 8;
  }

  schedule(r: Runnable): void {
    if (r.queued) return;
    r.queued = true;
    this.push(r);
    if (!this.pending) {
      this.pending = true;
      setImmediate(this.drain);
    }
  }

  /**
   * An actor whose async handler just settled and that has messages waiting (called from the
   * promise reaction, a microtask): it carries on right there while the current time slice lasts,
   * instead of waiting for the next drain (a setImmediate, that is a whole event-loop turn per
   * message for an actor whose handler returns a promise). Once the slice is over it is queued
   * like any other. The slice bounds the chain of such continuations as it bounds a drain, so
   * timers and I/O still get their turn at least every `sliceMs`. No clock read here: the
   * running actor's `tick()` reads it every `stride` messages, so a continuation in a later turn
   * of the loop (the handler awaited I/O or a timer), whose slice is long over, runs at most
   * about slice/8 of work before it finds that out and yields.
   */
  resume(r: Runnable): void {
    if (r.queued) return;
    if (this.expired) {
      // The slice ran out during this chain: the loop gets its turn before the actor goes on.
      this.yields++;
      this.schedule(r);
      return;
    }
    let again = false;
    try {
      again = r.run(this.opts.budget, this);
    } catch (err) {
      // As in drain: a runtime bug, reported on its own without breaking the caller's chain.
      queueMicrotask(() => {
        throw err;
      });
    }
    if (again) {
      // Out of slice, or out of budget: queued behind the other actors either way.
      if (this.expired) this.yields++;
      this.schedule(r);
    }
  }

  /** Actors waiting to run. */
  get length(): number {
    return this.count;
  }

  /**
   * Called by the running actor after each message; true once the time slice is over, and then
   * for the rest of this drain.
   */
  tick(): boolean {
    if (--this.countdown > 0) return false;
    return this.check();
  }

  private check(): boolean {
    const now = performance.now();
    const elapsed = now - this.lastCheck;
    this.lastCheck = now;
    let s = this.stride;
    if (elapsed * 2 < this.checkMs) {
      if (s < MAX_STRIDE) s *= 2;
    } else if (elapsed > this.checkMs) {
      s = Math.max(1, Math.floor((s * this.checkMs) / elapsed));
    }
    this.stride = s;
    if (now >= this.deadline) {
      this.expired = true;
      this.countdown = 1;
      return true;
    }
    this.countdown = s;
    return false;
  }

  private push(r: Runnable): void {
    const ring = this.ring;
    if (this.count === ring.length) {
      // Grow: unroll the ring into a twice as large array, oldest first.
      const bigger = new Array<Runnable | undefined>(ring.length * 2).fill(undefined);
      for (let i = 0; i < this.count; i++) bigger[i] = ring[(this.head + i) & (ring.length - 1)];
      this.ring = bigger;
      this.head = 0;
      bigger[this.count++] = r;
      return;
    }
    ring[(this.head + this.count) & (ring.length - 1)] = r;
    this.count++;
  }

  private readonly drain = (): void => {
    this.pending = false;
    const budget = this.opts.budget;
    const now = performance.now();
    this.deadline = now + this.opts.sliceMs;
    this.lastCheck = now;
    this.countdown = this.stride;
    this.expired = false;
    while (this.count > 0) {
      const ring = this.ring;
      const r = ring[this.head]!;
      ring[this.head] = undefined;
      this.head = (this.head + 1) & (ring.length - 1);
      this.count--;
      r.queued = false;
      // An actor that sent itself a message while running is queued already.
      let again = false;
      try {
        again = r.run(budget, this);
      } catch (err) {
        // Actors catch their handlers' errors; this is a runtime bug. Report it without letting
        // it take down every other actor's turn (rethrown on its own, as an uncaught exception).
        queueMicrotask(() => {
          throw err;
        });
      }
      if (again && !r.queued) {
        r.queued = true;
        this.push(r);
      }
      if (this.expired) break;
    }
    if (this.count > 0) {
      this.yields++;
      this.pending = true;
      setImmediate(this.drain);
    }
  };
}
