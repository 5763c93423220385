// Fast failure of a peer whose process is gone: the kernel of a killed process resets its sockets
// at once, long before membership's probes declare it down. The pool counts each peer's open
// connections (both directions); when the last one closes unexpectedly it re-dials at once, and a
// peer that neither answers that dial nor reconnects within `windowMs` is reported unreachable —
// a transport-level state, apart from membership's verdict. Erlang reports `nodedown` the same
// way, as soon as the distribution connection drops.
import type { Clock, TimerHandle } from '../util/clock.js';

export interface ReachabilityEvents {
  /** Every connection to/from `name` closed and it did not come back in time. */
  unreachable(name: string, reason: string): void;
  /** A connection to or from a peer reported unreachable is open again. */
  reachable(name: string): void;
  /** Dial `name` now (its control connection), whatever the re-dial backoff says. */
  redial(name: string): void;
}

interface State {
  links: number;
  check: TimerHandle | undefined;
  unreachable: boolean;
}

export class Reachability {
  private readonly peers = new Map<string, State>();

  /**
   * @param windowMs how long a peer with no connection left may take to come back (an answered
   *   re-dial or a connection from it) before it is reported unreachable.
   */
  constructor(
    private readonly clock: Clock,
    private readonly windowMs: number,
    private readonly events: ReachabilityEvents,
  ) {}

  private state(name: string): State {
    let s = this.peers.get(name);
    if (!s) {
      s = { links: 0, check: undefined, unreachable: false };
      this.peers.set(name, s);
    }
    return s;
  }

  isUnreachable(name: string): boolean {
    return this.peers.get(name)?.unreachable === true;
  }

  /** A connection to or from `name` is open. */
  up(name: string): void {
    const s = this.state(name);
    s.links++;
    s.check?.cancel();
    s.check = undefined;
    if (s.unreachable) {
      s.unreachable = false;
      this.events.reachable(name);
    }
  }

  /**
   * A connection to or from `name` closed. `watch`: the peer is a member we keep connected, so
   * losing its last connection is news (false for peers being dropped on purpose).
   */
  down(name: string, watch: boolean): void {
    const s = this.peers.get(name);
    if (!s) return;
    s.links = Math.max(0, s.links - 1);
    if (s.links > 0 || s.check || s.unreachable) return;
    if (!watch) {
      this.peers.delete(name);
      return;
    }
    s.check = this.clock.setTimeout(() => {
      s.check = undefined;
      this.mark(name, s, `no connection to or from it for ${this.windowMs} ms`);
    }, this.windowMs);
    this.events.redial(name);
  }

  /** A dial to `name` failed: while it has no connection, that settles it. */
  dialFailed(name: string, why: string): void {
    const s = this.peers.get(name);
    if (!s?.check || s.links > 0) return;
    s.check.cancel();
    s.check = undefined;
    this.mark(name, s, `its connections closed and a re-dial failed: ${why}`);
  }

  private mark(name: string, s: State, reason: string): void {
    if (s.unreachable || s.links > 0) return;
    s.unreachable = true;
    this.events.unreachable(name, reason);
  }

  /**
   * Membership dropped the peer (down, left or removed): no more checks or events for it. Its
   * open connections stay counted until they close.
   */
  forget(name: string): void {
    const s = this.peers.get(name);
    if (!s) return;
    s.check?.cancel();
    s.check = undefined;
    s.unreachable = false;
    if (s.links === 0) this.peers.delete(name);
  }

  stop(): void {
    for (const s of this.peers.values()) s.check?.cancel();
    this.peers.clear();
  }
}
