// Ordered lanes over several connections. A node sends small messages on `default` and large ones
// on `bulk` (so a 100 MB transfer never delays anyone else), and two connections keep no order
// between them: a small message sent after a large one by the same sender would overtake it. A
// lane (for the actor runtime: one sending actor) numbers its messages to each node, and each names
// its predecessor (`dep`). The receiver holds a message whose predecessor it has not delivered,
// and every later one of its lane, until the predecessor was delivered. Other lanes, and messages
// without a lane, are never held.
//
// Delivery stays at most once. A predecessor can be lost only with its connection (bytes handed to
// a socket that then broke), so a lane waits as long as no connection from that node closed, and
// at most `gapTimeoutMs` after one did; then its held messages go on in order (the lost one,
// should it still arrive, is dropped as stale). A lane holds at most `maxHeld` messages; past that
// it gives up waiting too. Sender and receiver forget idle lanes, so neither grows with the
// number of actors that ever talked.
import type { Clock, TimerHandle } from '../util/clock.js';

export interface LaneLimits {
  /** Messages one lane may hold while it waits for an earlier one. */
  maxHeld: number;
  /** How long held messages may wait after a connection from their node closed, in ms. */
  gapTimeoutMs: number;
  /**
   * A sender names a predecessor only if it sent it less than this long ago (ms); a receiver
   * forgets a lane idle for twice as long. Bounds both sides' memory.
   */
  windowMs: number;
}

export const DEFAULT_LANE_LIMITS: LaneLimits = Object.freeze({
  maxHeld: 4096,
  gapTimeoutMs: 10_000,
  windowMs: 60_000,
});

interface Out {
  seq: number;
  at: number;
}

/**
 * Numbers each lane's messages per destination node. Every message names its predecessor (`dep`,
 * when that was sent within `windowMs`): the sender need not know which connection either one
 * takes, and a predecessor that went on the same connection was delivered first anyway, so the
 * receiver never waits for it (unless that connection broke and lost it: then until
 * `gapTimeoutMs`).
 */
export class LaneSender {
  private readonly lanes = new Map<string, Map<number, Out>>();
  private sweepAt = 0;

  constructor(
    private readonly clock: Clock,
    private readonly limits: LaneLimits = DEFAULT_LANE_LIMITS,
  ) {}

  /**
   * Numbers the next message of `lane` to `to`: `[seq, dep]` (dep 0: nothing to wait for). `now`:
   * the clock's time, when the caller has just read it.
   */
  next(to: string, lane: number, now = this.clock.now()): [number, number] {
    this.sweep(now);
    let lanes = this.lanes.get(to);
    if (!lanes) {
      lanes = new Map();
      this.lanes.set(to, lanes);
    }
    const prev = lanes.get(lane);
    if (!prev) {
      lanes.set(lane, { seq: 1, at: now });
      return [1, 0];
    }
    const dep = now - prev.at < this.limits.windowMs ? prev.seq : 0;
    prev.seq++;
    prev.at = now;
    return [prev.seq, dep];
  }

  /** The message numbered last was refused before it was queued: give its number back. */
  undo(to: string, lane: number): void {
    const o = this.lanes.get(to)?.get(lane);
    if (o) o.seq--;
  }

  /** The lane ended (its actor exited): forget it everywhere. */
  close(lane: number): void {
    for (const lanes of this.lanes.values()) lanes.delete(lane);
  }

  /** The node went away: its lanes start afresh if it comes back. */
  forget(to: string): void {
    this.lanes.delete(to);
  }

  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + this.limits.windowMs;
    for (const lanes of this.lanes.values())
      for (const [lane, o] of lanes) if (now - o.at >= this.limits.windowMs) lanes.delete(lane);
  }
}

interface In<T> {
  /** Highest number delivered. */
  last: number;
  /** Waiting messages in arrival order (which is number order within a lane's connection). */
  held: Array<{ seq: number; dep: number; item: T }>;
  at: number;
}

export interface LaneStats {
  /** Messages that arrived while their lane waited (held, or the late predecessor itself). */
  held: number;
  /** Times a lane gave up waiting (predecessor lost with its connection, or over maxHeld). */
  skipped: number;
  /** Messages dropped because a later one of their lane was already delivered. */
  stale: number;
}

/** Delivers each (node, lane) in order across connections. */
export class LaneReceiver<T> {
  private readonly nodes = new Map<string, Map<number, In<T>>>();
  private readonly timers = new Map<string, TimerHandle>();
  private sweepAt = 0;
  /** The lane used last, found again without two map lookups (a stream from one lane is common). */
  private lastFrom: string | undefined = undefined;
  private lastLane = -1;
  private lastIn: In<T> | undefined = undefined;
  readonly stats: LaneStats = { held: 0, skipped: 0, stale: 0 };

  constructor(
    private readonly clock: Clock,
    private readonly deliver: (from: string, item: T) => void,
    private readonly limits: LaneLimits = DEFAULT_LANE_LIMITS,
  ) {}

  /**
   * The common case without an item: true when message `seq` of `lane` from `from` may be
   * delivered now (nothing of its lane waiting, its predecessor delivered or none named), and it
   * is then counted as delivered; the caller delivers it. False: call `receive` with the item (it
   * is held, or stale).
   */
  admit(from: string, lane: number, seq: number, dep: number): boolean {
    const l = this.lane(from, lane);
    if (seq <= l.last || l.held.length > 0 || dep > l.last) return false;
    l.last = seq;
    return true;
  }

  /** Message `seq` of `lane` from `from`, after `dep` (0: no predecessor to wait for). */
  receive(from: string, lane: number, seq: number, dep: number, item: T): void {
    if (this.admit(from, lane, seq, dep)) {
      this.deliver(from, item);
      return;
    }
    const l = this.lane(from, lane);
    if (seq <= l.last) {
      this.stats.stale++;
      return;
    }
    // Keep held messages in number order: a late predecessor goes before those waiting for it.
    let i = l.held.length;
    while (i > 0 && l.held[i - 1]!.seq > seq) i--;
    l.held.splice(i, 0, { seq, dep, item });
    this.stats.held++;
    this.release(from, l, l.held.length > this.limits.maxHeld);
  }

  /** The state of one (node, lane), made on first use; marks it used now. */
  private lane(from: string, lane: number): In<T> {
    const now = this.clock.now();
    this.sweep(now);
    if (lane === this.lastLane && from === this.lastFrom) {
      const l = this.lastIn!;
      l.at = now;
      return l;
    }
    let lanes = this.nodes.get(from);
    if (!lanes) {
      lanes = new Map();
      this.nodes.set(from, lanes);
    }
    let l = lanes.get(lane);
    if (!l) {
      l = { last: 0, held: [], at: now };
      lanes.set(lane, l);
    } else l.at = now;
    this.lastFrom = from;
    this.lastLane = lane;
    this.lastIn = l;
    return l;
  }

  /** Forgets the cached lane (its entry may be going away). */
  private uncache(): void {
    this.lastFrom = undefined;
    this.lastLane = -1;
    this.lastIn = undefined;
  }

  /** Delivers held messages, in order, while their predecessor was delivered (all when `force`). */
  private release(from: string, l: In<T>, force: boolean): void {
    if (force && l.held.length > 0) this.stats.skipped++;
    while (l.held.length > 0) {
      const h = l.held[0]!;
      if (!force && h.dep > l.last) return;
      l.held.shift();
      if (h.seq <= l.last) {
        this.stats.stale++;
        continue;
      }
      l.last = h.seq;
      this.deliver(from, h.item);
    }
  }

  /**
   * A connection from `from` closed: whatever was in flight on it is lost, so lanes waiting for a
   * predecessor may never see it. They go on after `gapTimeoutMs` (a message still queued at the
   * sender arrives over its new connection well before that).
   */
  connectionLost(from: string): void {
    if (this.timers.has(from)) return;
    this.timers.set(
      from,
      this.clock.setTimeout(() => {
        this.timers.delete(from);
        for (const l of this.nodes.get(from)?.values() ?? []) this.release(from, l, true);
      }, this.limits.gapTimeoutMs),
    );
  }

  /** The node is gone: drop its lanes (and anything held for them). */
  forget(from: string): void {
    this.uncache();
    this.nodes.delete(from);
    this.timers.get(from)?.cancel();
    this.timers.delete(from);
  }

  stop(): void {
    this.uncache();
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.nodes.clear();
  }

  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + this.limits.windowMs;
    this.uncache();
    const idle = 2 * this.limits.windowMs;
    for (const lanes of this.nodes.values())
      for (const [lane, l] of lanes)
        if (l.held.length === 0 && now - l.at >= idle) lanes.delete(lane);
  }
}
