// Ordered lanes over several connections. A node sends small messages on `default` and large ones
// on `bulk` (so a 100 MB transfer never delays anyone else), and two connections keep no order
// between them: a small message sent after a large one by the same sender would overtake it. A
// lane (for the actor runtime: one sending actor) keeps its messages to each node in send order.
//
// Only where a lane changes connection does it need numbers. Messages that follow each other on
// `default` are ordered by that connection, so they go plain (no lane fields: the common case,
// which costs nothing). A message on another channel (`bulk`) is numbered, and so is every
// message of its lane on `default` for `windowMs` after it: each names its predecessor (`dep`),
// and the receiver holds a message whose predecessor it has not delivered, and every later one of
// its lane, until the predecessor was delivered. For the other direction (a large message after
// plain small ones), a numbered marker goes on `default` first, behind the plain ones, and the
// large message names it: it is delivered only after them. Other lanes, and messages without a
// lane, are never held. The receiver needs nothing of this: numbered messages are what it always
// handled, and a marker is a one-way message that nothing handles.
//
// Numbers come from one counter per sender that starts at the wall clock's milliseconds × 1000
// and only grows, so a lane that was forgotten (idle for `windowMs`) or a process that restarted
// never repeats a number a receiver still remembers (it would drop that message as stale).
//
// Delivery stays at most once. A predecessor can be lost only with its connection (bytes handed to
// a socket that then broke), so a lane that started waiting waits `gapTimeoutMs` from then or from
// the last close of a connection from that node, whichever is later, once such a close happened
// (a close more than `windowMs` before the wait began cannot have taken its predecessor), and at
// most `windowMs` when none did (a predecessor that never comes: a peer's bug, or a member
// holding lanes on purpose); then its held messages go on in order (the lost one, should it still
// arrive, is dropped as stale). A lane holds at most `maxHeld` messages, and so do all the lanes
// of one node together; past that the lane gives up waiting too. Sender and receiver forget idle
// lanes, so neither grows with the number of actors that ever talked.
import type { ChannelName } from '../transport/protocol.js';
import type { Clock, TimerHandle } from '../util/clock.js';

export interface LaneLimits {
  /** Messages one lane, and all the lanes of one node together, may hold while they wait. */
  maxHeld: number;
  /**
   * How long held messages may wait after a connection from their node closed, in ms (counted
   * from when their lane began waiting, if that was later).
   */
  gapTimeoutMs: number;
  /**
   * A message is taken as delivered (or lost) this long after it was sent (ms): a sender names a
   * predecessor, and numbers a lane's messages on `default` after one on another channel, only
   * within it; a receiver holds a lane's messages at most this long, and forgets a lane idle for
   * twice as long. Bounds both sides' memory.
   */
  windowMs: number;
}

export const DEFAULT_LANE_LIMITS: LaneLimits = Object.freeze({
  maxHeld: 4096,
  gapTimeoutMs: 10_000,
  windowMs: 60_000,
});

/** A lane's numbering towards one node. */
interface Out {
  /** Number of its last numbered message (0: none yet). */
  seq: number;
  /** When that one was sent. */
  at: number;
  /** When its last numbered message on a channel other than `default` was sent. */
  otherAt: number;
  /** A plain message went on `default` since the last numbered one (or may have: state is new). */
  plain: boolean;
}

/**
 * The kind of a lane's marker: a SEND_LANE with this kind and no payload, delivered to nothing
 * (a receiver without this code finds no handler for it and drops it, after it took its place in
 * the lane).
 */
export const LANE_MARKER = 'lane:marker';

/** The channel on which a lane's messages go plain, in that connection's order. */
const HOME: ChannelName = 'default';

/**
 * Decides, per message, whether a lane's message to a node goes plain or numbered (see the top of
 * this file). `next` returns the decision and leaves the numbers in `seq`/`dep` (and a marker's
 * in `markerSeq`/`markerDep`); `undo` takes a decision back when the message could not be queued.
 */
export class LaneSender {
  private readonly lanes = new Map<string, Map<number, Out>>();
  private sweepAt = 0;
  private counter: number;
  /** The numbered message's number and predecessor (0: none to wait for), set by `next`. */
  seq = 0;
  dep = 0;
  /** A marker to send on `default` before the numbered message (markerSeq 0: none). */
  markerSeq = 0;
  markerDep = 0;
  /** The lane state before the last numbered `next`, for `undo` (undefined: it had none). */
  private saved: { to: string; lane: number; out: Out | undefined } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly limits: LaneLimits = DEFAULT_LANE_LIMITS,
  ) {
    this.counter = Math.floor(clock.wallNow()) * 1000;
  }

  /**
   * How the next message of `lane` to `to`, going on `channel`, travels: false, plain; true,
   * numbered `seq` after `dep`, and when `markerSeq` is not 0, behind a marker numbered
   * `markerSeq` after `markerDep` that the caller sends on `default` first. `now`: the clock's
   * time, when the caller has just read it (read here only when needed).
   */
  next(to: string, lane: number, channel: ChannelName, now?: number): boolean {
    // No lane has numbers: a message on `default` goes plain, without even a clock read.
    if (this.lanes.size === 0 && channel === HOME) return false;
    now ??= this.clock.now();
    this.sweep(now);
    let o = this.lanes.get(to)?.get(lane);
    const w = this.limits.windowMs;
    if (channel === HOME) {
      // Plain unless a message of this lane on another connection may still be on its way.
      if (o === undefined) return false;
      if (now - o.otherAt >= w) {
        o.plain = true;
        return false;
      }
      this.save(to, lane, o);
      this.markerSeq = 0;
    } else {
      if (o === undefined) {
        // Nothing known of this lane: plain messages may have gone on `default` before.
        o = {
          seq: 0,
          at: Number.NEGATIVE_INFINITY,
          otherAt: Number.NEGATIVE_INFINITY,
          plain: true,
        };
        let lanes = this.lanes.get(to);
        if (!lanes) {
          lanes = new Map();
          this.lanes.set(to, lanes);
        }
        lanes.set(lane, o);
        this.saved = { to, lane, out: undefined };
      } else this.save(to, lane, o);
      if (o.plain) {
        this.markerDep = now - o.at < w ? o.seq : 0;
        this.markerSeq = o.seq = ++this.counter;
        o.at = now;
      } else this.markerSeq = 0;
      o.otherAt = now;
    }
    this.dep = now - o.at < w ? o.seq : 0;
    this.seq = o.seq = ++this.counter;
    o.at = now;
    o.plain = false;
    return true;
  }

  private save(to: string, lane: number, o: Out): void {
    this.saved = { to, lane, out: { ...o } };
  }

  /**
   * The message numbered last (by `next`, for this `to` and `lane`) was not queued: its lane goes
   * on as before it. (Its number is not reused; a marker already sent is harmless.)
   */
  undo(to: string, lane: number): void {
    const s = this.saved;
    this.saved = undefined;
    if (s === undefined || s.to !== to || s.lane !== lane) return;
    const lanes = this.lanes.get(to);
    if (!lanes) return;
    if (s.out === undefined) lanes.delete(lane);
    else {
      const o = lanes.get(lane);
      if (o) Object.assign(o, s.out);
    }
  }

  /** The lane ended (its actor exited): forget it everywhere. */
  close(lane: number): void {
    for (const [to, lanes] of this.lanes)
      if (lanes.delete(lane) && lanes.size === 0) this.lanes.delete(to);
  }

  /** The node went away: its lanes start afresh if it comes back (numbers still only grow). */
  forget(to: string): void {
    this.lanes.delete(to);
  }

  /** Lanes whose last numbered message is older than the window need no state (numbers never repeat). */
  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + this.limits.windowMs;
    for (const [to, lanes] of this.lanes) {
      for (const [lane, o] of lanes) if (now - o.at >= this.limits.windowMs) lanes.delete(lane);
      if (lanes.size === 0) this.lanes.delete(to);
    }
  }
}

interface In<T> {
  /** Highest number delivered. */
  last: number;
  /** Waiting messages in arrival order (which is number order within a lane's connection). */
  held: Array<{ seq: number; dep: number; item: T }>;
  at: number;
  /** When `held` last went from empty to not empty. */
  since: number;
}

/** What a receiver keeps per sending node besides its lanes: the ones waiting, and their timer. */
interface Waits<T> {
  /** Lanes holding messages. */
  lanes: Set<In<T>>;
  /** Messages held by all of them. */
  held: number;
  /** When a connection from the node last closed (-Infinity: none did). */
  lostAt: number;
  timer: TimerHandle | undefined;
  /** When `timer` fires. */
  due: number;
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
  /** Nodes with a lane holding messages, or a lost connection (kept until the node is forgotten). */
  private readonly waits = new Map<string, Waits<T>>();
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
    const w = this.waitsOf(from);
    if (l.held.length === 0) {
      l.since = this.clock.now();
      w.lanes.add(l);
      this.schedule(from, w);
    }
    // Keep held messages in number order: a late predecessor goes before those waiting for it.
    let i = l.held.length;
    while (i > 0 && l.held[i - 1]!.seq > seq) i--;
    l.held.splice(i, 0, { seq, dep, item });
    w.held++;
    this.stats.held++;
    this.release(from, l, l.held.length > this.limits.maxHeld || w.held > this.limits.maxHeld);
  }

  private waitsOf(from: string): Waits<T> {
    let w = this.waits.get(from);
    if (!w) {
      w = {
        lanes: new Set(),
        held: 0,
        lostAt: Number.NEGATIVE_INFINITY,
        timer: undefined,
        due: Number.POSITIVE_INFINITY,
      };
      this.waits.set(from, w);
    }
    return w;
  }

  /** When a waiting lane gives up: see the top of this file. */
  private deadline(l: In<T>, w: Waits<T>): number {
    const { gapTimeoutMs, windowMs } = this.limits;
    const latest = l.since + windowMs;
    if (w.lostAt < l.since - windowMs) return latest;
    return Math.min(latest, Math.max(l.since, w.lostAt) + gapTimeoutMs);
  }

  /**
   * Arms the node's timer for its earliest deadline; drops the node's state when nothing waits and
   * no connection from it was lost.
   */
  private schedule(from: string, w: Waits<T>): void {
    let due = Number.POSITIVE_INFINITY;
    for (const l of w.lanes) due = Math.min(due, this.deadline(l, w));
    if (due !== w.due) {
      w.timer?.cancel();
      w.timer = undefined;
      w.due = due;
      if (due !== Number.POSITIVE_INFINITY) {
        const wait = Math.max(0, due - this.clock.now());
        w.timer = this.clock.setTimeout(() => this.expire(from, w), wait);
      }
    }
    if (w.lanes.size === 0 && w.lostAt === Number.NEGATIVE_INFINITY) this.waits.delete(from);
  }

  private expire(from: string, w: Waits<T>): void {
    w.timer = undefined;
    w.due = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    for (const l of [...w.lanes]) if (this.deadline(l, w) <= now) this.release(from, l, true);
    if (this.waits.get(from) === w) this.schedule(from, w);
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
      l = { last: 0, held: [], at: now, since: now };
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
    if (l.held.length === 0) return;
    if (force) this.stats.skipped++;
    const w = this.waits.get(from);
    while (l.held.length > 0) {
      const h = l.held[0]!;
      if (!force && h.dep > l.last) return;
      l.held.shift();
      if (w) w.held--;
      if (h.seq <= l.last) {
        this.stats.stale++;
        continue;
      }
      l.last = h.seq;
      this.deliver(from, h.item);
    }
    // Nothing held any more (a handler may have forgotten the node meanwhile: `w` is stale then).
    if (w && this.waits.get(from) === w && w.lanes.delete(l)) this.schedule(from, w);
  }

  /**
   * A connection from `from` closed: whatever was in flight on it is lost, so lanes waiting for a
   * predecessor may never see it. They go on `gapTimeoutMs` after this, or after they began
   * waiting if later (a message still queued at the sender arrives over its new connection well
   * before that).
   */
  connectionLost(from: string): void {
    const w = this.waitsOf(from);
    w.lostAt = this.clock.now();
    this.schedule(from, w);
  }

  /** The node is gone: drop its lanes (and anything held for them). */
  forget(from: string): void {
    this.uncache();
    this.nodes.delete(from);
    this.waits.get(from)?.timer?.cancel();
    this.waits.delete(from);
  }

  stop(): void {
    this.uncache();
    for (const w of this.waits.values()) w.timer?.cancel();
    this.waits.clear();
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
