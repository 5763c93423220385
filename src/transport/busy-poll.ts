// Busy polling: after this node sent or received something, keep the event loop turning (one
// setImmediate after another, each turn polling the sockets without blocking) for a short window
// instead of letting the process sleep in epoll. A reply or the next request that arrives within
// the window is read at once, without the wake-up of a sleeping process, which on a virtual
// machine is most of a small round trip's time (docs/benchmarks.md, "Busy polling"). BEAM's
// schedulers do the same by default (`+sbwt`), and so does Go's scheduler before it parks.
//
// Adaptive: it polls only while polling pays, judged separately after a send and after a
// receive. After a send, the question is whether a message arrives within the window (the reply
// a caller waits for, the next request of a conversation); after a receive, whether the next
// message arrives within the window of it (a stream). Each answer, a hit or a miss, moves an
// exponential average; at half or more the process polls after the next send (or receive), below
// it the process sleeps as without the option. A caller waiting for replies thus polls after its
// sends, and not after a reply when the next request is its own to make; a server in a
// conversation polls after its replies; a server whose requests come further apart than the window
// never polls. Messages closer than BURST_MS to the one before are the same burst (one read holds
// many) and are not scored, so a burst after a long silence counts as one miss. The CPU it costs
// is at most the window after each send or receive, and only where at least about half of such
// windows catch something. A node with no traffic but membership's polls at most a window after a
// heartbeat whose answer came back within it (bench/busy-poll: no measurable CPU when idle).
//
// One poller per process, shared by every node in it (they share the event loop): a node asking
// for a longer window extends it. Time is real time (performance.now, as the actor scheduler's
// time slice), not the injected clock: it is about this process's CPU, and a manual clock would
// never end a window. createBusyPoller takes both seams for the unit tests.

/** Weight of the newest answer (hit or miss) in each average. */
const ALPHA = 0.25;
/** Poll while the hit average is at least this. */
const THRESHOLD = 0.5;
/** Messages closer together than this are one burst: only the first of them is scored. */
const BURST_MS = 0.02;

export interface BusyPoller {
  /** This process wrote a batch to a socket: poll for `windowMs` if polling after sends pays. */
  sent(windowMs: number): void;
  /** A message arrived: score its gap, then poll for `windowMs` if polling after receives pays. */
  received(windowMs: number): void;
  /** Whether the poller is turning the loop right now. */
  readonly polling: boolean;
  /** How many windows of polling started so far (a window extended by traffic counts once). */
  readonly windows: number;
  /** The hit averages, 0–1, of the gaps after a send and after a receive (polls at THRESHOLD). */
  readonly score: { readonly sent: number; readonly received: number };
}

export function createBusyPoller(
  now: () => number = () => performance.now(),
  later: (fn: () => void) => unknown = setImmediate,
): BusyPoller {
  let until = 0; // the window's end
  let spinning = false;
  let windows = 0;
  let lastReceived = Number.NEGATIVE_INFINITY;
  let waiting: number | undefined; // the first send since the last receive
  let waitingWindow = 0;
  const score = { sent: 0, received: 0 };
  const mark = (which: 'sent' | 'received', hit: boolean): void => {
    score[which] += ((hit ? 1 : 0) - score[which]) * ALPHA;
  };

  const spin = (): void => {
    if (now() < until) later(spin);
    else spinning = false;
  };
  const poll = (windowMs: number, t: number, pays: number): void => {
    if (pays < THRESHOLD) return;
    const end = t + windowMs;
    if (end > until) until = end;
    if (!spinning) {
      spinning = true;
      windows++;
      later(spin);
    }
  };

  return {
    sent(windowMs) {
      const t = now();
      // A send that nothing answered within its window was a miss, even if nothing ever arrives.
      if (waiting !== undefined && t - waiting > waitingWindow) mark('sent', false);
      if (waiting === undefined || t - waiting > waitingWindow) {
        waiting = t;
        waitingWindow = windowMs;
      }
      poll(windowMs, t, score.sent);
    },
    received(windowMs) {
      const t = now();
      if (waiting !== undefined) {
        mark('sent', t - waiting <= waitingWindow);
        waiting = undefined;
      }
      const gap = t - lastReceived;
      if (gap >= BURST_MS) mark('received', gap <= windowMs);
      lastReceived = t;
      poll(windowMs, t, score.received);
    },
    get polling() {
      return spinning;
    },
    get windows() {
      return windows;
    },
    score,
  };
}

/** The process's poller, used by every node's PeerManager that has a window. */
export const busyPoller: BusyPoller = createBusyPoller();
