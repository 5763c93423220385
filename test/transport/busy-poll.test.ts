// Busy polling (the `busyPollUs` option, src/transport/busy-poll.ts): the option is validated; the
// adaptive gate polls only while traffic comes back within the window, which the unit tests drive
// with a manual clock and scheduler; over TCP, calls one at a time between nodes with the default
// start polling windows, and nodes with 0 never start the poller. How much it saves
// and costs is measured in bench/actors and bench/busy-poll, never asserted here.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { resolveAll } from '../../src/options.js';
import { busyPoller, createBusyPoller } from '../../src/transport/busy-poll.js';
import {
  fullyMeshed,
  nullDiscovery,
  startMeshedCluster,
  TEST_SECRET,
  waitUntil,
} from '../helpers/nodes.js';

/** A poller on a manual clock (ms) whose scheduled turns run only when `turn()` is called. */
function manualPoller() {
  let t = 1_000;
  let queued: (() => void)[] = [];
  const p = createBusyPoller(
    () => t,
    (fn) => queued.push(fn),
  );
  return {
    p,
    advance(ms: number) {
      t += ms;
    },
    /** Runs the scheduled loop turns; returns how many there were. */
    turn(): number {
      const run = queued;
      queued = [];
      for (const fn of run) fn();
      return run.length;
    },
  };
}

describe('busy polling', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('busyPollUs is an integer from 0 to 10 000 microseconds, default 200', () => {
    assert.equal(resolveAll({})[0]!.busyPollUs, 200);
    assert.equal(resolveAll({ busyPollUs: 0 })[0]!.busyPollUs, 0);
    assert.equal(resolveAll({ busyPollUs: 250 })[0]!.busyPollUs, 250);
    for (const bad of [-1, 10_001, 1.5, '100']) {
      assert.throws(
        () => resolveAll({ busyPollUs: bad as number }),
        (e: { code?: string; data?: { field?: string } }) =>
          e.code === 'FND_ERR_INVALID_OPTION' && e.data?.field === 'busyPollUs',
        `busyPollUs: ${JSON.stringify(bad)}`,
      );
    }
  });

  it('a caller whose replies come back within the window polls after its sends once a few did, and the window ends by itself', () => {
    const m = manualPoller();
    const afterSend: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      m.p.sent(0.2); // a request goes out
      afterSend.push(m.p.polling);
      m.advance(0.1);
      m.p.received(0.2); // its reply, 100 µs later: a hit for "after a send"
      m.turn();
      m.advance(5); // the caller thinks for 5 ms before the next request
      m.turn(); // the window has passed: this loop turn ends the polling
      assert.equal(m.p.polling, false, `polling ended after exchange ${i}`);
    }
    // The average starts at 0 and each hit moves it a quarter of the way to 1: polling from the
    // fourth send. Nothing ever followed a reply, so no window starts after one.
    assert.deepEqual(afterSend, [false, false, false, true, true]);
    assert.equal(m.p.windows, 2);
    assert.equal(m.p.score.received, 0);
    // While polling, every loop turn inside the window schedules the next one.
    m.p.sent(0.2);
    assert.equal(m.p.polling, true);
    for (let i = 0; i < 3; i++) {
      m.advance(0.05);
      assert.equal(m.turn(), 1);
      assert.equal(m.p.polling, true);
    }
    m.advance(0.1);
    assert.equal(m.turn(), 1, 'the turn past the window runs and stops');
    assert.equal(m.p.polling, false);
    assert.equal(m.turn(), 0, 'nothing scheduled after it');
    // Sends that nothing answers (casts, one a millisecond) are misses: polling stops after a few.
    const casts: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      m.advance(1);
      m.turn();
      m.p.sent(0.2);
      casts.push(m.p.polling);
    }
    assert.deepEqual(casts.slice(-3), [false, false, false]);
  });

  it('a server in a conversation polls after its replies; requests further apart than the window never start it', () => {
    const m = manualPoller();
    for (let i = 0; i < 20; i++) {
      m.advance(1); // a request every millisecond, window 200 µs
      m.p.received(0.2);
      m.p.sent(0.2); // the reply goes out at once
      assert.equal(m.p.polling, false, `request ${i}`);
    }
    assert.equal(m.p.windows, 0);
    // Now one caller at a time: the next request comes 50 µs after each reply.
    for (let i = 0; i < 6; i++) {
      m.advance(0.05);
      m.p.received(0.2);
      m.p.sent(0.2);
    }
    assert.equal(m.p.polling, true, 'polling after the reply');
    assert.ok(m.p.score.sent >= 0.5, JSON.stringify(m.p.score));
    // The caller goes away: a few misses after replies and the poller stays off.
    for (let i = 0; i < 5; i++) {
      m.advance(2);
      m.turn();
      m.p.received(0.2);
      m.p.sent(0.2);
    }
    m.advance(1);
    m.turn();
    assert.equal(m.p.polling, false);
    assert.ok(m.p.score.sent < 0.5, `score ${m.p.score.sent}`);
  });

  it('a stream of messages within the window polls after what it receives; messages of one burst count once', () => {
    const m = manualPoller();
    for (let i = 0; i < 6; i++) {
      m.advance(0.1); // casts 100 µs apart, nothing sent back
      m.p.received(0.2);
    }
    assert.equal(m.p.polling, true);
    assert.ok(m.p.score.received >= 0.5);
    const s = manualPoller();
    for (let burst = 0; burst < 10; burst++) {
      s.advance(50); // a burst of 30 messages every 50 ms, 10 µs apart
      for (let i = 0; i < 30; i++) {
        s.p.received(0.2);
        s.advance(0.01);
      }
      s.turn();
    }
    assert.equal(s.p.score.received, 0);
    assert.equal(s.p.windows, 0);
  });

  async function pair(busyPollUs: number | undefined): Promise<[FoundationNode, FoundationNode]> {
    const start = (name: string) =>
      Foundation.start({
        name,
        cluster: `busy-poll-${busyPollUs}`,
        secret: TEST_SECRET,
        logLevel: 'silent',
        discovery: nullDiscovery(),
        ...(busyPollUs === undefined ? {} : { busyPollUs }),
      });
    const a = await start('a');
    const b = await start('b');
    nodes.push(a, b);
    await a.join(b.address);
    await waitUntil(() => fullyMeshed([a, b]), 'a and b see each other');
    b.messenger.handle('echo', (p) => p);
    return [a, b];
  }

  it('over TCP, with the default, calls one at a time start polling windows; requests and actor calls work as without', async () => {
    const [a, b] = await pair(undefined);
    const echo = b.spawn(async (msg: unknown) => msg);
    const before = busyPoller.windows;
    // The highest score seen: a few slow round trips at the end (a busy machine) may lower the
    // running average again, which is the poller working as meant.
    let best = 0;
    for (let i = 0; i < 300; i++) {
      assert.equal(await a.messenger.request('b', 'echo', i), i);
      if (i % 20 === 0) assert.deepEqual(await a.call(echo, { i }), { i });
      best = Math.max(best, busyPoller.score.sent);
    }
    // Both nodes share this process's poller: each request and reply arrives within microseconds of
    // the send before it, so the averages reach the threshold after a few and windows start.
    assert.ok(busyPoller.windows > before, `windows ${before} -> ${busyPoller.windows}`);
    assert.ok(best >= 0.5, `highest score ${best}`);
  });

  it('over TCP, nodes with busyPollUs: 0 never start the poller', async () => {
    const [a] = await pair(0);
    await waitUntil(() => !busyPoller.polling, 'no poller left from before');
    const before = busyPoller.windows;
    for (let i = 0; i < 50; i++) {
      assert.equal(await a.messenger.request('b', 'echo', i), i);
      assert.equal(busyPoller.polling, false);
    }
    assert.equal(busyPoller.windows, before);
  });

  it('nodes on the in-memory transport never feed the poller (no socket, no wake-up to save)', async () => {
    const before = { windows: busyPoller.windows, ...busyPoller.score };
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let got = 0;
      b.messenger.on('n', () => {
        got++;
      });
      for (let i = 0; i < 200; i++) a.messenger.send('b', 'n', i);
      await c.net.settle();
      c.clock.tick(10);
      await c.net.settle();
      assert.equal(got, 200);
      assert.deepEqual({ windows: busyPoller.windows, ...busyPoller.score }, before);
    } finally {
      await c.stop();
    }
  });
});
