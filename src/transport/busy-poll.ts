// Busy polling: after this node sent or received something, keep the event loop turning (one
// setImmediate after another, each turn polling the sockets without blocking) for a short window
// instead of letting the process sleep in epoll. A reply or the next request that arrives within
// the window is read at once, without the wake-up of a sleeping process, which on a virtual
// machine is most of a small round trip's time (docs/benchmarks.md, "Busy polling"). It costs CPU:
// up to the window after every burst of traffic. BEAM's schedulers do the same by default (`+sbwt`);
// here it is off unless the `busyPollUs` option asks for it.
//
// One poller per process, shared by every node in it: a node asking for a longer window extends
// it. The deadline is real time (performance.now, as the actor scheduler's time slice), not the
// injected clock: it is about this process's CPU, and a manual clock would never end the window.

let until = 0;
let spinning = false;

const spin = (): void => {
  if (performance.now() < until) setImmediate(spin);
  else spinning = false;
};

/** Traffic happened: keep polling for at least `windowMs` from now. */
export function busyPoll(windowMs: number): void {
  const end = performance.now() + windowMs;
  if (end > until) until = end;
  if (!spinning) {
    spinning = true;
    setImmediate(spin);
  }
}

/** Whether the poller is turning the loop right now (for tests). */
export function busyPolling(): boolean {
  return spinning;
}
