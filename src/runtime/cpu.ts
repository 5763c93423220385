// Event-loop-aware bulk work: `cpuIntensive` maps a large collection on the main thread in slices,
// yielding to the event loop (setImmediate) whenever a slice has used its time budget, so timers,
// I/O and actors keep running. Work too heavy to share the main thread belongs on worker threads
// (ecosystem({ threads }) / ThreadPool in threads.ts).
import { FoundationError } from '../errors.js';

export interface CpuIntensiveOptions {
  /**
   * Milliseconds of work per slice before yielding to the event loop. Default 8. Smaller keeps
   * timers and I/O more punctual; larger finishes sooner (fewer yields). One item is never split:
   * an item that takes longer than the budget delays the loop by that long.
   */
  budgetMs?: number;
  /** Stops the job: the promise rejects with `signal.reason` at the next item. */
  signal?: AbortSignal;
}

/** The clock is read every `stride` items; the stride adapts: cheap checks, punctual yields. */
const MAX_STRIDE = 1024;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Maps `items` with `fn` and resolves with the results in order, like `Array.from(items, fn)`,
 * but yields to the event loop whenever a slice has run for `budgetMs`. `fn` is synchronous,
 * is called once per item in order, and never concurrently; a throw rejects the promise (items
 * after it are not processed). Iterables (generators included) are consumed lazily, one slice at
 * a time.
 */
export async function cpuIntensive<T, R>(
  items: Iterable<T> | ArrayLike<T>,
  fn: (item: T, index: number) => R,
  opts: CpuIntensiveOptions = {},
): Promise<R[]> {
  const budgetMs = opts.budgetMs ?? 8;
  if (!(budgetMs > 0) || !Number.isFinite(budgetMs)) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "budgetMs": must be a positive number of milliseconds, got ${budgetMs}`,
      { field: 'budgetMs' },
    );
  }
  const signal = opts.signal;
  signal?.throwIfAborted();
  // Arrays and typed arrays are walked by index (fast); other iterables through their iterator.
  const indexed =
    Array.isArray(items) ||
    ArrayBuffer.isView(items) ||
    typeof (items as Partial<Iterable<T>>)[Symbol.iterator] !== 'function';
  const arrayLike = indexed ? (items as ArrayLike<T>) : undefined;
  const iterator = indexed ? undefined : (items as Iterable<T>)[Symbol.iterator]();
  let inIterator = false;
  const out: R[] = arrayLike ? new Array<R>(arrayLike.length) : [];
  let index = 0;
  let stride = 1;
  let done = false;
  try {
    while (!done) {
      const sliceStart = performance.now();
      let lastCheck = sliceStart;
      let sinceCheck = 0;
      for (;;) {
        if (arrayLike) {
          if (index >= arrayLike.length) {
            done = true;
            break;
          }
          out[index] = fn(arrayLike[index] as T, index);
        } else {
          inIterator = true;
          const next = iterator!.next();
          inIterator = false;
          if (next.done) {
            done = true;
            break;
          }
          out.push(fn(next.value, index));
        }
        index++;
        if (++sinceCheck < stride) continue;
        sinceCheck = 0;
        const now = performance.now();
        // Widen the stride while items are cheap, narrow it when a stride takes a sizeable part
        // of the budget: the slice then overruns its budget by at most about a quarter.
        const took = now - lastCheck;
        if (took < budgetMs / 16 && stride < MAX_STRIDE) stride *= 2;
        else if (took > budgetMs / 4 && stride > 1) stride >>= 1;
        lastCheck = now;
        if (signal?.aborted) signal.throwIfAborted();
        if (now - sliceStart >= budgetMs) break;
      }
      if (!done) {
        await yieldToLoop();
        signal?.throwIfAborted();
      }
    }
  } catch (err) {
    // Close the source (a generator's finally blocks run), unless the source itself threw.
    if (!inIterator) iterator?.return?.();
    throw err;
  }
  return out;
}
