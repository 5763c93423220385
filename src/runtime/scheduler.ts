// The run queue: actors with messages wait here and run in turn, each for a bounded number of
// messages, and the whole queue yields to the event loop (setImmediate) after a time slice, so a
// flooded actor never starves timers, I/O or other actors. The Node.js answer to BEAM reductions.

export interface Runnable {
  /**
   * Processes up to `budget` messages, stopping early once `performance.now()` passes `deadline`
   * (checked every few messages); returns true when it still has messages ready to run.
   */
  run(budget: number, deadline: number): boolean;
  /** Set while queued, so an actor is queued at most once. */
  queued: boolean;
}

export interface SchedulerOptions {
  /** Messages one actor may process before the next actor's turn. */
  budget: number;
  /** Milliseconds of actor work before yielding to the event loop. */
  sliceMs: number;
}

export class Scheduler {
  private queue: Runnable[] = [];
  private head = 0;
  private pending = false;
  /** Times the scheduler yielded to the event loop mid-work (observable fairness). */
  yields = 0;

  constructor(readonly opts: SchedulerOptions = { budget: 256, sliceMs: 4 }) {}

  schedule(r: Runnable): void {
    if (r.queued) return;
    r.queued = true;
    this.queue.push(r);
    if (!this.pending) {
      this.pending = true;
      setImmediate(this.drain);
    }
  }

  /** Actors waiting to run. */
  get length(): number {
    return this.queue.length - this.head;
  }

  private readonly drain = (): void => {
    this.pending = false;
    const { budget, sliceMs } = this.opts;
    const deadline = performance.now() + sliceMs;
    let n = 0;
    while (this.head < this.queue.length) {
      const r = this.queue[this.head++]!;
      r.queued = false;
      if (r.run(budget, deadline)) {
        r.queued = true;
        this.queue.push(r);
      }
      if ((++n & 15) === 0 && performance.now() >= deadline) break;
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 4096) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.yields++;
      this.pending = true;
      setImmediate(this.drain);
    }
  };
}
