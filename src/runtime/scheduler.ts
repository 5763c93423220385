// The run queue: actors with messages wait here and run in turn, each for a bounded number of
// messages, and the whole queue yields to the event loop (until its next check phase) after a
// time slice, so a flooded actor never starves timers, I/O or other actors. The Node.js answer to
// BEAM reductions.

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
  /** A drain is queued (microtask) or waiting for the end of the slice, or running. */
  private draining = false;
  /** The queued drain waits for the event loop's turn (the slice ran out). */
  private waiting = false;
  /** Times the scheduler yielded to the event loop mid-work (observable fairness). */
  yields = 0;
  // Time slices. A slice opens when actor work starts after the event loop had its turn, and
  // closes at the loop's next check phase (a setImmediate queued when it opens): all actor work
  // in between (drains, which run as microtasks right after the code that made an actor
  // runnable, and async handlers' continuations) shares its `sliceMs`. Once that is used up,
  // nothing runs until the slice closes, so timers and I/O get their turn at least every slice.
  // Within a slice the clock is read every `stride` messages, the stride adapting so that a read
  // happens about every `checkMs` of work: cheap handlers cost one clock read per 64 messages,
  // and slow ones (a read after each) cannot overrun the slice by more than about one handler.
  private sliceOpen = false;
  private readonly checkMs: number;
  private deadline = 0;
  private lastCheck = 0;
  private stride = 1;
  private countdown = 1;
  private expired = false;

  constructor(readonly opts: SchedulerOptions = { budget: 256, sliceMs: 4 }) {
    this.checkMs = opts.sliceMs / 8;
  }

  /**
   * Queues an actor that has messages. The queue is drained in a microtask, right after the code
   * that made the actor runnable (an I/O callback delivering a request, a timer, another actor's
   * turn), not in the event loop's next check phase: a request waits for no other phase of the
   * loop (1-3 µs of latency measured, see docs/benchmarks.md). Within the time slice only;
   * afterwards the drain waits for the slice to close.
   */
  schedule(r: Runnable): void {
    if (r.queued) return;
    r.queued = true;
    this.push(r);
    if (this.draining) return;
    this.draining = true;
    if (this.expired) this.waiting = true;
    else queueMicrotask(this.drain);
  }

  /**
   * An actor whose async handler just settled and that has messages waiting (called from the
   * promise reaction, a microtask): it carries on right there while the current time slice lasts,
   * instead of being queued for a drain. Once the slice is over it is queued like any other.
   */
  resume(r: Runnable): void {
    if (r.queued) return;
    if (!this.sliceOpen) this.openSlice(performance.now());
    else if (this.expired) {
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
   * until it closes.
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

  private openSlice(now: number): void {
    this.sliceOpen = true;
    this.expired = false;
    this.deadline = now + this.opts.sliceMs;
    this.lastCheck = now;
    this.countdown = this.stride;
    setImmediate(this.closeSlice);
  }

  /** The event loop reached its check phase: timers and I/O had their turn since the slice opened. */
  private readonly closeSlice = (): void => {
    this.sliceOpen = false;
    this.expired = false;
    if (this.waiting) {
      this.waiting = false;
      this.drain();
    }
  };

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
    const now = performance.now();
    if (!this.sliceOpen) this.openSlice(now);
    else if (!this.expired && now >= this.deadline) this.expired = true;
    const budget = this.opts.budget;
    while (this.count > 0 && !this.expired) {
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
    }
    if (this.count > 0) {
      // Slice over with actors waiting: they go on once the loop had its turn (closeSlice).
      this.yields++;
      this.waiting = true;
    } else this.draining = false;
  };
}
