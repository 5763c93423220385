// Hybrid logical clocks (Kulkarni et al. 2014) on the injected Clock's wall time: timestamps that
// stay close to physical time, never go backwards on one node, and order every event after the
// events it has seen from other nodes. The cluster-wide layer (src/dist/) compares them across
// nodes; a node's monotonic clock means nothing on another node (the flaw this replaces).
import type { Clock } from './clock.js';

/** A hybrid logical timestamp: wall milliseconds, a counter for events within one millisecond. */
export interface Hlc {
  /** Wall-clock milliseconds since the epoch (integer). */
  wall: number;
  /** Orders events that share `wall`; reset to 0 when `wall` moves. */
  counter: number;
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall !== b.wall ? a.wall - b.wall : a.counter - b.counter;
}

/**
 * The highest counter a timestamp carries. A clock about to pass it moves its wall on by 1 ms
 * instead, so a remote timestamp at the bound cannot push this clock's stamps out of range.
 */
export const MAX_HLC_COUNTER = 2 ** 31;

/**
 * Whether `v` is a timestamp that cannot poison comparisons: a non-negative safe integer wall and
 * a counter of at most MAX_HLC_COUNTER.
 */
export function isHlc(v: unknown): v is Hlc {
  if (typeof v !== 'object' || v === null) return false;
  const { wall, counter } = v as { wall?: unknown; counter?: unknown };
  return (
    typeof wall === 'number' &&
    Number.isSafeInteger(wall) &&
    wall >= 0 &&
    typeof counter === 'number' &&
    Number.isSafeInteger(counter) &&
    counter >= 0 &&
    counter <= MAX_HLC_COUNTER
  );
}

/** Default tolerance for remote timestamps ahead of our wall clock: one minute. */
export const DEFAULT_MAX_DRIFT_MS = 60_000;

/**
 * One node's hybrid logical clock. `now()` stamps a local event; `observe(remote)` folds in a
 * timestamp received from another node so that everything stamped afterwards orders after it.
 *
 * A remote timestamp further than `maxDriftMs` ahead of our wall clock is refused (observe returns
 * false and the clock does not move): one member with a broken clock, or a malicious one, must not
 * drag every node's clock into the future for good.
 */
export class HybridClock {
  private last: Hlc = { wall: 0, counter: 0 };

  constructor(
    private readonly clock: Clock,
    readonly maxDriftMs = DEFAULT_MAX_DRIFT_MS,
  ) {}

  private physical(): number {
    return Math.floor(this.clock.wallNow());
  }

  /** A timestamp for a local event: after every timestamp this clock produced or observed. */
  now(): Hlc {
    const pt = this.physical();
    if (pt > this.last.wall) this.last = { wall: pt, counter: 0 };
    else this.last = next(this.last.wall, this.last.counter + 1);
    return this.last;
  }

  /** The latest timestamp produced or observed (without making a new one). */
  peek(): Hlc {
    return this.last;
  }

  /** Whether a remote timestamp is acceptable (not too far ahead of our wall clock). */
  acceptable(remote: Hlc): boolean {
    return isHlc(remote) && remote.wall <= this.physical() + this.maxDriftMs;
  }

  /**
   * Folds in a timestamp received from another node. Returns false (and changes nothing) when it
   * is malformed or more than `maxDriftMs` ahead of our wall clock.
   */
  observe(remote: Hlc): boolean {
    if (!this.acceptable(remote)) return false;
    const pt = this.physical();
    const wall = Math.max(pt, this.last.wall, remote.wall);
    let counter: number;
    if (wall === this.last.wall && wall === remote.wall)
      counter = Math.max(this.last.counter, remote.counter) + 1;
    else if (wall === this.last.wall) counter = this.last.counter + 1;
    else if (wall === remote.wall) counter = remote.counter + 1;
    else counter = 0;
    this.last = next(wall, counter);
    return true;
  }
}

/** `{ wall, counter }`, or the next millisecond when the counter would pass MAX_HLC_COUNTER. */
function next(wall: number, counter: number): Hlc {
  return counter > MAX_HLC_COUNTER ? { wall: wall + 1, counter: 0 } : { wall, counter };
}
