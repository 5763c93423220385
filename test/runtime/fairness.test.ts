// Fairness: a flooded actor yields to the event loop, so a 10 ms timer, loopback I/O and other
// actors keep running while the flood is being processed. The timer's bound is counted in work,
// not time (tests assert no timings; the lateness is printed): the timer must fire before the
// actor got far into the flood, which the same work done in one synchronous loop does not allow.
// Also: the per-actor message budget and the time slice, deterministically
// with a custom scheduler, the same for actors whose handler returns a promise, and what runtime
// stats report about a flood.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Scheduler } from '../../src/runtime/scheduler.js';
import { RuntimeMonitor } from '../../src/runtime/stats.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('silent');
const system = (scheduler?: Scheduler) =>
  new ActorSystem({ nodeName: 'n', clock: systemClock, log, ...(scheduler ? { scheduler } : {}) });

/** Per-message work of the burning flood, spun by the wall clock: 300 ms in all. */
const BURN_MS = 0.2;
const BURN_N = 1500;
/**
 * The 10 ms timer must fire before this many burning messages ran (60 ms of work). A slow or
 * stalled machine only lowers the count: `burn` spins until the wall clock says so, so a stall
 * counts as work done, and the scheduler reads the clock within a few messages. A scheduler that
 * does not yield lets the timer fire only after all BURN_N.
 */
const MAX_AT_FIRE = BURN_N / 5;

function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: CPU-bound work, the kind that blocks an event loop
  }
}

/** Resolves with the ms a `ms` timer fired late, and runs `atFire` when it fires. */
function lateTimer(ms: number, atFire: () => void): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) => {
    setTimeout(() => {
      atFire();
      resolve(performance.now() - start - ms);
    }, ms);
  });
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms: ${what}`);
    await new Promise<void>((r) => setImmediate(r));
  }
}

describe('a flooded actor does not starve the event loop', () => {
  it(`the same work in one synchronous loop lets a 10 ms timer fire only after all of it (the bound of ${MAX_AT_FIRE} means something)`, async () => {
    let processed = 0;
    let processedAtFire = -1;
    const late = lateTimer(10, () => {
      processedAtFire = processed;
    });
    for (let i = 0; i < BURN_N; i++) {
      burn(BURN_MS);
      processed++;
    }
    const lateness = await late;
    console.log(`# synchronous loop: 10 ms timer fired ${lateness.toFixed(1)} ms late`);
    assert.equal(processedAtFire, BURN_N);
    assert.ok(processedAtFire > MAX_AT_FIRE);
  });

  // For the async handler: its next message runs right in the settling microtask while the slice
  // lasts, so that chain must end with the slice too, or it would starve the loop like a sync loop.
  for (const isAsync of [false, true]) {
    const label = isAsync ? 'async actor' : 'actor';
    it(`an ${isAsync ? 'async handler' : 'actor'} burning ${BURN_MS} ms per message for ${BURN_N} messages lets a 10 ms timer fire within its first ${MAX_AT_FIRE}`, async () => {
      const sys = system();
      let processed = 0;
      const work = () => {
        burn(BURN_MS);
        processed++;
      };
      const pid = sys.spawn(isAsync ? async () => work() : work);
      for (let i = 0; i < BURN_N; i++) sys.send(pid, i);
      let processedAtFire = -1;
      const lateness = await lateTimer(10, () => {
        processedAtFire = processed;
      });
      await until(() => processed === BURN_N, 'flood processed');
      console.log(
        `# flooded ${label}: 10 ms timer late by ${lateness.toFixed(1)} ms, after ${processedAtFire}/${BURN_N} messages`,
      );
      assert.ok(processedAtFire > 0, 'the actor had started on the flood');
      assert.ok(
        processedAtFire <= MAX_AT_FIRE,
        `the timer fired after ${processedAtFire} of ${BURN_N} messages`,
      );
      assert.ok(sys.scheduler.yields > 0);
    });
  }

  it('2,000,000 cheap messages: a 10 ms timer fires within the first quarter of the flood', async () => {
    // A few % of the flood is done when it fires here (150 ms in all); a slower machine does
    // fewer messages per ms, so fewer by then.
    const N = 2_000_000;
    const sys = system();
    let processed = 0;
    let sum = 0;
    const pid = sys.spawn((m) => {
      sum += m as number;
      processed++;
    });
    for (let i = 0; i < N; i++) sys.send(pid, i);
    let processedAtFire = -1;
    const t0 = performance.now();
    const lateness = await lateTimer(10, () => {
      processedAtFire = processed;
    });
    await until(() => processed === N, 'flood processed');
    assert.equal(sum, (N * (N - 1)) / 2, 'every message handled once');
    const total = performance.now() - t0;
    console.log(
      `# 2M flood: 10 ms timer late by ${lateness.toFixed(1)} ms, after ${processedAtFire}/${N} messages, flood took ${total.toFixed(0)} ms`,
    );
    assert.ok(processedAtFire < N / 4, `the timer fired after ${processedAtFire} of ${N} messages`);
  });

  it('loopback I/O is served while a flood is being processed', async () => {
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => client.once('connect', r));
    try {
      const sys = system();
      let processed = 0;
      const pid = sys.spawn(() => {
        burn(BURN_MS);
        processed++;
      });
      const echoed = new Promise<number>((r) => client.once('data', () => r(processed)));
      for (let i = 0; i < BURN_N; i++) sys.send(pid, i);
      client.write('ping');
      const processedAtEcho = await echoed;
      console.log(`# echo arrived after ${processedAtEcho}/${BURN_N} flood messages`);
      assert.ok(processedAtEcho < BURN_N, 'the echo came back before the flood was done');
      await until(() => processed === BURN_N, 'flood processed');
    } finally {
      client.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('other actors keep running: one message to another actor is handled long before a flood ends', async () => {
    const sys = system();
    const N = 200_000;
    let flooded = 0;
    const a = sys.spawn(() => {
      flooded++;
    });
    let floodedWhenBRan = -1;
    const b = sys.spawn(() => {
      floodedWhenBRan = flooded;
    });
    for (let i = 0; i < N; i++) sys.send(a, i);
    sys.send(b, 'hello');
    await until(() => flooded === N, 'flood processed');
    assert.ok(floodedWhenBRan >= 0, 'b ran');
    assert.ok(
      floodedWhenBRan <= sys.scheduler.opts.budget,
      `b ran after ${floodedWhenBRan} flood messages (budget ${sys.scheduler.opts.budget})`,
    );
  });
});

describe('scheduler budget and time slice', () => {
  it('each actor runs at most `budget` messages before the next actor’s turn', async () => {
    const sys = system(new Scheduler({ budget: 4, sliceMs: 60_000 }));
    const order: string[] = [];
    const a = sys.spawn((m) => void order.push(`a${m}`));
    const b = sys.spawn((m) => void order.push(`b${m}`));
    for (let i = 0; i < 10; i++) sys.send(a, i);
    for (let i = 0; i < 6; i++) sys.send(b, i);
    await until(() => order.length === 16, 'all handled');
    assert.deepEqual(order, [
      ...['a0', 'a1', 'a2', 'a3'],
      ...['b0', 'b1', 'b2', 'b3'],
      ...['a4', 'a5', 'a6', 'a7'],
      ...['b4', 'b5'],
      ...['a8', 'a9'],
    ]);
    assert.equal(sys.scheduler.yields, 0, 'no time slice ran out: one drain did it all');
  });

  it('the scheduler yields to the event loop when the time slice runs out, even with an unlimited budget', async () => {
    const sys = system(new Scheduler({ budget: Number.MAX_SAFE_INTEGER, sliceMs: 2 }));
    let processed = 0;
    const pid = sys.spawn(() => {
      burn(BURN_MS);
      processed++;
    });
    const N = 200; // about 40 ms of work, 20 slices of 2 ms
    for (let i = 0; i < N; i++) sys.send(pid, i);
    let immediates = 0;
    const tick = () => {
      immediates++;
      if (processed < N) setImmediate(tick);
    };
    setImmediate(tick);
    await until(() => processed === N, 'flood processed');
    assert.ok(sys.scheduler.yields >= 2, `yields: ${sys.scheduler.yields}`);
    assert.ok(immediates >= 2, `other setImmediate callbacks ran ${immediates} times meanwhile`);
    assert.equal(sys.scheduler.length, 0, 'run queue empty afterwards');
  });
});

describe('actors whose handler returns a promise', () => {
  /** setImmediate turns of the event loop until `done()`. */
  async function turnsUntil(done: () => boolean): Promise<number> {
    let turns = 0;
    while (!done()) {
      await new Promise<void>((r) => setImmediate(r));
      if (++turns > 1_000_000) assert.fail('never done');
    }
    return turns;
  }

  it('handle their mailbox in order, one message at a time, without an event-loop turn per message', async () => {
    const sys = system(new Scheduler({ budget: 256, sliceMs: 60_000 }));
    const N = 2000;
    const seen: number[] = [];
    let active = 0;
    let overlapped = false;
    const pid = sys.spawn(async (m) => {
      if (++active > 1) overlapped = true;
      await null; // a real suspension: the actor is busy until it resumes
      seen.push(m as number);
      active--;
    });
    for (let i = 0; i < N; i++) sys.send(pid, i);
    const turns = await turnsUntil(() => seen.length === N);
    assert.equal(overlapped, false, 'never two messages at once');
    assert.deepEqual(
      seen,
      Array.from({ length: N }, (_, i) => i),
      'mailbox order',
    );
    // Before, each settled handler queued the actor for the next drain (setImmediate): N turns.
    assert.ok(turns < N / 10, `${N} messages took ${turns} event-loop turns`);
  });

  it('still yield to the event loop when the time slice runs out', async () => {
    const sys = system(new Scheduler({ budget: Number.MAX_SAFE_INTEGER, sliceMs: 2 }));
    let processed = 0;
    const pid = sys.spawn(async () => {
      burn(BURN_MS);
      processed++;
    });
    const N = 200; // about 40 ms of work, 20 slices of 2 ms
    for (let i = 0; i < N; i++) sys.send(pid, i);
    const turns = await turnsUntil(() => processed === N);
    assert.ok(turns >= 2, `other setImmediate callbacks ran ${turns} times meanwhile`);
    assert.ok(sys.scheduler.yields >= 2, `yields: ${sys.scheduler.yields}`);
    assert.equal(sys.scheduler.length, 0, 'run queue empty afterwards');
  });

  it('a crash in the middle of an async chain ends only that actor; the calls behind it are rejected', async () => {
    const sys = system(new Scheduler({ budget: 256, sliceMs: 60_000 }));
    let handled = 0;
    const bad = sys.spawn(async (m) => {
      await null;
      if (m === 3) throw new Error('boom at 3');
      handled++;
      return m;
    });
    const other = sys.spawn(async (m) => m);
    const calls = Array.from({ length: 6 }, (_, i) => sys.call(bad, i));
    const results = await Promise.allSettled(calls);
    assert.deepEqual(
      results.slice(0, 3).map((r) => (r.status === 'fulfilled' ? r.value : r.status)),
      [0, 1, 2],
    );
    for (const r of results.slice(3)) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as { code?: string }).code, 'FND_ERR_ACTOR_EXITED');
    }
    assert.equal(handled, 3);
    assert.equal(sys.isAlive(bad), false);
    assert.equal(await sys.call(other, 'still here'), 'still here');
  });
});

describe('when queued actors run', () => {
  it('a message sent outside any actor is handled before the event loop moves on (no wait for its check phase)', async () => {
    const sys = system();
    const order: string[] = [];
    const pid = sys.spawn((m) => void order.push(`actor ${m}`));
    setImmediate(() => order.push('setImmediate'));
    sys.send(pid, 1);
    order.push('sync code');
    await new Promise<void>((r) => setImmediate(r));
    assert.deepEqual(order, ['sync code', 'actor 1', 'setImmediate']);
  });

  it('two actors with async handlers bouncing a message forever let a 10 ms timer fire within 60 ms of their work', async () => {
    // Every hop makes the other actor runnable from a microtask: without time slices spanning
    // those, the bouncing would never leave the microtask queue and the timer would never fire.
    // Each hop spins HOP_MS by the wall clock, so a slow machine only makes fewer hops.
    const HOP_MS = 0.01;
    const sys = system();
    let hops = 0;
    let stop = false;
    const bounce = async (
      to: unknown,
      ctx: { send(to: never, m: unknown): void; self: unknown },
    ) => {
      burn(HOP_MS);
      hops++;
      if (!stop) ctx.send(to as never, ctx.self);
    };
    const a = sys.spawn((m, ctx) => bounce(m, ctx));
    const b = sys.spawn((m, ctx) => bounce(m, ctx));
    sys.send(a, b);
    let hopsAtFire = -1;
    const lateness = await lateTimer(10, () => {
      hopsAtFire = hops;
      stop = true;
    });
    console.log(
      `# async ping-pong: 10 ms timer late by ${lateness.toFixed(1)} ms; ${hopsAtFire} hops by then`,
    );
    assert.ok(hopsAtFire > 0, 'the actors were bouncing');
    assert.ok(hopsAtFire <= 60 / HOP_MS, `the timer fired after ${hopsAtFire} hops`);
  });
});

describe('runtime stats during a flood', () => {
  it('report actors, mailbox depth, run queue, yields, loop delay and heap, and warn past thresholds', async () => {
    // A zero time slice: the scheduler yields at every check, so the flood surely shows yields.
    const sys = system(new Scheduler({ budget: 256, sliceMs: 0 }));
    const mon = new RuntimeMonitor(sys, {
      loopDelayP99Ms: 100_000,
      heapUsedRatio: 1,
      mailboxDepth: 1000,
    });
    mon.start();
    let processed = 0;
    const pid = sys.spawn(() => {
      processed++;
    });
    sys.spawn(() => {});
    const N = 50_000;
    for (let i = 0; i < N; i++) sys.send(pid, i);
    const during = mon.stats();
    assert.equal(during.actors, 2);
    assert.equal(during.mailboxDepth, N);
    assert.equal(during.runQueue, 1);
    assert.equal(during.warnings.length, 1, during.warnings.join('\n'));
    assert.match(during.warnings[0]!, /50000 messages are waiting in mailboxes \(threshold 1000\)/);
    assert.ok(during.heap.usedBytes > 0 && during.heap.limitBytes >= during.heap.usedBytes);
    await until(() => processed === N, 'flood processed');
    const after = mon.stats();
    mon.stop();
    assert.equal(after.mailboxDepth, 0);
    assert.equal(after.runQueue, 0);
    assert.deepEqual(after.warnings, []);
    assert.ok(after.schedulerYields > 0, 'the flood made the scheduler yield');
    assert.ok(after.schedulerYields === sys.scheduler.yields);
    for (const v of Object.values(after.eventLoopDelay)) assert.ok(Number.isFinite(v) && v >= 0);
    assert.equal(after.crashes, 0);
    assert.equal(after.dropped, 0);
  });
});
