// Process ecosystems on a standalone ActorSystem: work distribution (round robin in exact order,
// least loaded prefers the idle worker), resizing up and down (idle workers first, busy ones
// drained), supervision (a crashing worker or coordinator is restarted and the ecosystem keeps
// serving; too many restarts end it), health and size queries, stop, and the threads variant:
// CPU work on worker threads leaves the main event loop responsive, payloads are transferred.
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { threadId } from 'node:worker_threads';
import type { DownMessage, GenServer } from '../../src/runtime/behaviour.js';
import { type Ecosystem, ecosystem } from '../../src/runtime/ecosystem.js';
import { type Pid, type PidLike, pidKey } from '../../src/runtime/pid.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { busy } from '../fixtures/thread-work.js';
import { assertCoded, rejectsWithCode } from '../helpers/assert.js';

const log = createLogger('silent');
const newSystem = () => new ActorSystem({ nodeName: 'n', clock: systemClock, log });
const WORK = new URL('../fixtures/thread-work.js', import.meta.url);

/** Lets the scheduler and promise callbacks run until `cond` holds (bounded in event-loop turns). */
async function until(cond: () => boolean, what: string, rounds = 20_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

/** A promise the test opens by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

const keys = (pids: PidLike[]) => pids.map(pidKey);

/**
 * A worker for the distribution tests: 'who' replies with its pid, { wait: gate } blocks until the
 * gate opens, 'crash' throws, anything else is recorded.
 */
function worker(seen: Array<{ by: Pid; msg: unknown }>) {
  return async (msg: unknown, ctx: { self: Pid }) => {
    if (msg === 'who') return ctx.self;
    if (msg === 'crash') throw new Error('worker crashed on purpose');
    if (typeof msg === 'object' && msg !== null && 'wait' in msg) {
      await (msg as { wait: Promise<void> }).wait;
      return ctx.self;
    }
    seen.push({ by: ctx.self, msg });
    return undefined;
  };
}

const coordinator = () => undefined;

describe('ecosystem: distribution', () => {
  it('round robin hands jobs to the workers in exact slot order, calls and dispatches alike', async () => {
    const sys = newSystem();
    const seen: Array<{ by: Pid; msg: unknown }> = [];
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker(seen), count: 3 },
      strategy: 'round-robin',
    });
    try {
      const w = keys(eco.workers());
      assert.equal(w.length, 3);
      assert.equal(new Set(w).size, 3);
      const order: string[] = [];
      for (let i = 0; i < 7; i++) order.push(pidKey(await eco.call<Pid>('who')));
      assert.deepEqual(order, [w[0], w[1], w[2], w[0], w[1], w[2], w[0]]);

      for (let i = 0; i < 6; i++) eco.dispatch(i);
      await until(() => seen.length === 6, 'six dispatched jobs handled');
      const byMsg = new Map(seen.map((s) => [s.msg, pidKey(s.by)]));
      // The cursor continues where the calls left off: worker 1 is next.
      assert.deepEqual(
        [0, 1, 2, 3, 4, 5].map((i) => byMsg.get(i)),
        [w[1], w[2], w[0], w[1], w[2], w[0]],
      );
      assert.equal(eco.health().completed, 13);
    } finally {
      await eco.stop();
    }
  });

  it('least loaded sends work to the idle worker, not the busy one', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 2 },
      strategy: 'least-loaded',
    });
    try {
      const [w0, w1] = keys(eco.workers());
      const g = gate();
      const blocked = eco.call<Pid>({ wait: g.promise });
      const h = eco.health();
      assert.equal(h.inFlight, 1);
      const busyKey = h.workers.find((x) => x.inFlight === 1)!.pid!;
      const idleKey = pidKey(busyKey) === w0 ? w1 : w0;
      for (let i = 0; i < 4; i++) {
        // A call to the blocked worker would wait for the gate and time out.
        assert.equal(pidKey(await eco.call<Pid>('who', { timeout: 2000 })), idleKey);
      }
      g.open();
      assert.equal(pidKey(await blocked), pidKey(busyKey));
      assert.equal(eco.health().inFlight, 0);
    } finally {
      await eco.stop();
    }
  });

  it('round robin, by contrast, keeps the turn order even when a worker is busy', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 2 },
    });
    try {
      const [w0, w1] = keys(eco.workers());
      const g = gate();
      const blocked = eco.call<Pid>({ wait: g.promise }); // w0
      const next = eco.call<Pid>('who'); // w1
      const queued = eco.call<Pid>('who'); // w0 again: queued behind the blocked job
      assert.equal(pidKey(await next), w1);
      assert.deepEqual(
        eco.health().workers.map((x) => x.inFlight),
        [2, 0],
      );
      g.open();
      assert.equal(pidKey(await blocked), w0);
      assert.equal(pidKey(await queued), w0);
    } finally {
      await eco.stop();
    }
  });

  it('maxInFlight skips full workers and refuses work when every worker is full', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 2, maxInFlight: 1 },
    });
    try {
      const g = gate();
      const a = eco.call({ wait: g.promise });
      const b = eco.call({ wait: g.promise });
      assert.throws(
        () => eco.dispatch('more'),
        (err) => {
          assertCoded(err, 'FND_ERR_MAILBOX_FULL');
          return true;
        },
      );
      await rejectsWithCode(eco.call('more'), 'FND_ERR_MAILBOX_FULL');
      assert.equal(eco.health().inFlight, 2, 'refused jobs are not counted');
      g.open();
      await Promise.all([a, b]);
      assert.ok(await eco.call('who'));
    } finally {
      await eco.stop();
    }
  });

  it('transfer detaches the sender’s buffer at dispatch; the worker gets the bytes', async () => {
    const sys = newSystem();
    const got: number[] = [];
    const eco = await ecosystem(sys, {
      coordinator,
      workers: {
        behaviour: (msg: unknown) => {
          const m = msg as { buf: ArrayBuffer };
          got.push(m.buf.byteLength, new Uint8Array(m.buf)[1000]!);
        },
        count: 1,
      },
    });
    try {
      const bytes = new Uint8Array(1 << 16).fill(7);
      const buf = bytes.buffer;
      eco.dispatch({ buf }, { transfer: [buf] });
      assert.equal(buf.byteLength, 0, 'detached as soon as dispatch returned');
      await until(() => got.length === 2, 'worker saw the buffer');
      assert.deepEqual(got, [1 << 16, 7]);
      assert.throws(
        () => eco.dispatch({ buf }, { transfer: [buf] }),
        (err) => {
          assertCoded(err, 'FND_ERR_INVALID_OPTION');
          return true;
        },
        'an already transferred buffer is refused',
      );
    } finally {
      await eco.stop();
    }
  });
});

describe('ecosystem: size, resize, health', () => {
  it('grows and shrinks at runtime; removed workers stop, the rest keep serving', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 2 },
    });
    try {
      assert.equal(eco.size(), 2);
      await eco.resize(5);
      assert.equal(eco.size(), 5);
      const five = eco.workers();
      assert.equal(new Set(keys(five)).size, 5);
      assert.ok(five.every((p) => sys.isAlive(p)));
      const served = new Set<string>();
      for (let i = 0; i < 5; i++) served.add(pidKey(await eco.call<Pid>('who')));
      assert.equal(served.size, 5, 'new workers take work');

      await eco.resize(1);
      assert.equal(eco.size(), 1);
      const [left] = eco.workers();
      assert.equal(five.filter((p) => sys.isAlive(p)).length, 1);
      assert.ok(sys.isAlive(left!));
      assert.equal(pidKey(await eco.call<Pid>('who')), pidKey(left!));
      const h = eco.health();
      assert.equal(h.size, 1);
      assert.equal(h.alive, 1);
      assert.equal(h.restarts, 0, 'removing workers is not restarting them');

      await eco.resize(0);
      assert.equal(eco.size(), 0);
      await rejectsWithCode(eco.call('who'), 'FND_ERR_NOPROC');
      await eco.resize(1);
      assert.ok(await eco.call('who'));
    } finally {
      await eco.stop();
    }
  });

  it('shrinking removes idle workers first and lets a busy one finish its jobs', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 3 },
    });
    try {
      const [w0, w1, w2] = eco.workers();
      const g = gate();
      const blocked = eco.call<Pid>({ wait: g.promise }); // goes to w0
      await eco.resize(1);
      assert.deepEqual(keys(eco.workers()), keys([w0!]), 'the busy worker stays');
      assert.ok(!sys.isAlive(w1!) && !sys.isAlive(w2!));
      g.open();
      assert.equal(pidKey(await blocked), pidKey(w0!));

      // Both busy: the one removed drains its queued jobs before it stops.
      await eco.resize(2);
      const g2 = gate();
      const jobs = [eco.call<Pid>({ wait: g2.promise }), eco.call<Pid>({ wait: g2.promise })];
      const shrinking = eco.resize(1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(eco.size(), 1, 'the removed worker takes no new work at once');
      assert.equal(eco.health().inFlight, 2, 'but still holds its job');
      g2.open();
      const done = await Promise.all(jobs);
      await shrinking;
      assert.equal(new Set(keys(done)).size, 2, 'both jobs completed, one on the removed worker');
      assert.equal(eco.health().completed, 3);
      assert.equal(eco.health().lost, 0);
    } finally {
      await eco.stop();
    }
  });

  it('health reports in-flight, completed and failed jobs per worker', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: {
        create: () => async (msg: unknown) => {
          if (msg === 'reject') throw new Error('no');
          return msg;
        },
        count: 2,
      },
    });
    try {
      assert.equal(await eco.call('a'), 'a');
      assert.equal(await eco.call('b'), 'b');
      await rejectsWithCode(eco.call('reject'), 'FND_ERR_ACTOR_EXITED');
      await until(() => eco.health().alive === 2, 'crashed worker restarted');
      const h = eco.health();
      assert.equal(h.size, 2);
      assert.equal(h.completed, 2);
      assert.equal(h.failed, 1);
      assert.equal(h.restarts, 1);
      assert.equal(h.inFlight, 0);
      assert.deepEqual(
        h.workers.map((w) => [w.completed, w.failed, w.restarts]),
        [
          [1, 1, 1],
          [1, 0, 0],
        ],
      );
      assert.ok(h.coordinator.alive);
      assert.equal(h.stopped, false);
    } finally {
      await eco.stop();
    }
  });
});

describe('ecosystem: supervision', () => {
  it('restarts a crashed worker with fresh state and keeps serving', async () => {
    const sys = newSystem();
    let created = 0;
    const eco = await ecosystem(sys, {
      coordinator,
      workers: {
        create: () => {
          created++;
          let handled = 0; // per-incarnation state
          return (msg: unknown, ctx: { self: Pid }) => {
            if (msg === 'crash') throw new Error('boom');
            return { self: ctx.self, handled: ++handled };
          };
        },
        count: 2,
      },
    });
    try {
      const [w0, w1] = eco.workers();
      const first = await eco.call<{ handled: number }>('x'); // w0
      assert.equal(first.handled, 1);
      await rejectsWithCode(eco.call('crash'), 'FND_ERR_ACTOR_EXITED'); // w1 crashes
      assert.ok(!sys.isAlive(w1!));
      await until(() => eco.workers().length === 2, 'worker restarted');
      const [again0, again1] = eco.workers();
      assert.equal(pidKey(again0!), pidKey(w0!), 'the other worker is untouched');
      assert.notEqual(pidKey(again1!), pidKey(w1!), 'a new actor took the slot');
      assert.equal(created, 3);
      const replies = [await eco.call<{ self: Pid; handled: number }>('y')];
      replies.push(await eco.call('z'));
      const fromNew = replies.find((r) => pidKey(r.self) === pidKey(again1!));
      assert.equal(fromNew?.handled, 1, 'the restarted worker starts with fresh state');
      assert.equal(eco.health().restarts, 1);

      // A worker killed from outside is restarted too.
      sys.exit(again0!, 'kill');
      await until(() => eco.workers().length === 2 && eco.health().restarts === 2, 'restarted');
      assert.ok(await eco.call('after'));
    } finally {
      await eco.stop();
    }
  });

  it('restarts the coordinator; it sees the workers through the ecosystem and keeps its name', async () => {
    const sys = newSystem();
    let starts = 0;
    const eco = await ecosystem(sys, {
      name: 'fanout',
      createCoordinator: (e: Ecosystem) => {
        starts++;
        return async (msg: unknown) => {
          if (msg === 'crash') throw new Error('coordinator crashed');
          // Fan the job out to every worker and gather the answers.
          return Promise.all(e.workers().map(() => e.call<Pid>('who')));
        };
      },
      workers: { behaviour: worker([]), count: 3 },
    });
    try {
      const c0 = eco.coordinator!;
      assert.equal(pidKey(sys.whereis('fanout')!), pidKey(c0));
      const answers = await sys.call<Pid[]>('fanout', 'go');
      assert.deepEqual(new Set(keys(answers)), new Set(keys(eco.workers())));
      await rejectsWithCode(sys.call('fanout', 'crash'), 'FND_ERR_ACTOR_EXITED');
      await until(
        () => eco.coordinator !== undefined && sys.whereis('fanout') !== undefined,
        'coordinator back',
      );
      assert.notEqual(pidKey(eco.coordinator!), pidKey(c0));
      assert.equal(pidKey(sys.whereis('fanout')!), pidKey(eco.coordinator!));
      assert.equal(starts, 2);
      assert.equal(eco.health().coordinator.restarts, 1);
      assert.equal((await sys.call<Pid[]>('fanout', 'go')).length, 3);
    } finally {
      await eco.stop();
    }
  });

  it('too many restarts in the window end the ecosystem with FND_ERR_SUPERVISOR', async () => {
    const sys = newSystem();
    const eco = await ecosystem(sys, {
      coordinator,
      workers: { behaviour: worker([]), count: 1 },
      maxRestarts: 2,
      withinMs: 60_000,
    });
    const downs: DownMessage[] = [];
    sys.monitor(eco.supervisor, (d) => downs.push(d));
    for (let i = 0; i < 3; i++) {
      await until(() => eco.workers().length === 1 || downs.length > 0, 'worker up');
      if (downs.length > 0) break;
      await rejectsWithCode(eco.call('crash'), 'FND_ERR_ACTOR_EXITED');
    }
    await until(() => downs.length === 1, 'supervisor exited');
    const reason = downs[0]!.reason;
    assertCoded(reason, 'FND_ERR_SUPERVISOR');
    assert.match(reason.message, /restart intensity/);
    await until(() => sys.size === 0, 'every actor of the ecosystem gone');
    assert.equal(eco.health().stopped, true);
    assert.throws(
      () => eco.dispatch('x'),
      (err) => {
        assertCoded(err, 'FND_ERR_NOPROC');
        return true;
      },
    );
    await eco.stop(); // idempotent after a failure
  });

  it('a worker whose init fails makes ecosystem() reject; nothing is left running', async () => {
    const sys = newSystem();
    const failing: GenServer = {
      init() {
        throw new Error('cannot start');
      },
    };
    await assert.rejects(
      ecosystem(sys, { coordinator, workers: { behaviour: failing, count: 2 } }),
      (err) => {
        assertCoded(err, 'FND_ERR_SUPERVISOR');
        assert.match(err.message, /cannot start/);
        return true;
      },
    );
    await until(() => sys.size === 0, 'no actor left');
  });

  it('stop drains the workers, ends every actor and refuses new work', async () => {
    const sys = newSystem();
    const terminated: string[] = [];
    const eco = await ecosystem(sys, {
      coordinator: {
        terminate: (reason) => {
          terminated.push(`coordinator:${String(reason)}`);
        },
      },
      workers: {
        create: () => ({
          handleCall: async (msg: unknown) => {
            await (msg as { wait: Promise<void> }).wait;
            return 'done';
          },
          terminate: (reason) => {
            terminated.push(`worker:${String(reason)}`);
          },
        }),
        count: 2,
      },
    });
    assert.equal(sys.size, 4, 'supervisor, coordinator, two workers');
    const g = gate();
    const job = eco.call({ wait: g.promise });
    const stopping = eco.stop();
    assert.throws(
      () => eco.dispatch('late'),
      (err) => {
        assertCoded(err, 'FND_ERR_NOPROC');
        return true;
      },
    );
    setTimeout(g.open, 20);
    assert.equal(await job, 'done', 'the job in flight finished');
    await stopping;
    assert.equal(sys.size, 0);
    assert.deepEqual(terminated, ['worker:shutdown', 'worker:shutdown', 'coordinator:shutdown']);
    await rejectsWithCode(eco.resize(3), 'FND_ERR_NOPROC');
  });

  it('refuses bad options with FND_ERR_INVALID_OPTION naming the field', async () => {
    const sys = newSystem();
    const cases: Array<[Parameters<typeof ecosystem>[1], string]> = [
      [{ workers: { behaviour: coordinator, count: 1 } }, 'coordinator'],
      [{ coordinator, workers: { count: 1 } }, 'workers.behaviour'],
      [
        { coordinator, workers: { behaviour: coordinator, create: () => coordinator, count: 1 } },
        'workers.behaviour',
      ],
      [{ coordinator, workers: { behaviour: coordinator, count: -1 } }, 'workers.count'],
      [
        { coordinator, workers: { behaviour: coordinator, count: 1, maxInFlight: 0 } },
        'workers.maxInFlight',
      ],
      [{ coordinator, workers: { count: 1 }, threads: true as never }, 'threads'],
      [
        { coordinator, workers: { behaviour: coordinator, count: 1 }, strategy: 'random' as never },
        'strategy',
      ],
    ];
    for (const [opts, field] of cases) {
      await assert.rejects(ecosystem(sys, opts), (err) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal(err.data?.field, field);
        return true;
      });
    }
    assert.equal(sys.size, 0);
  });
});

describe('ecosystem: threads', () => {
  const sys = newSystem();
  let eco: Ecosystem | undefined;
  after(() => eco?.stop());

  it('runs CPU work on worker threads while the main event loop stays responsive', async (t) => {
    eco = await ecosystem(sys, {
      coordinator,
      workers: { count: 2 },
      threads: { module: WORK, export: 'busy' },
      strategy: 'least-loaded',
    });
    // Warm up: both threads have loaded the module.
    await Promise.all([eco.call({ ms: 1 }), eco.call({ ms: 1 })]);

    const TASK_MS = 500;
    // Behaviour, not timing: count the main loop's turns (a 10 ms interval) while the work runs.
    // Inline, the work is synchronous, so no turn can happen; on threads the loop keeps turning.
    // The loop-delay histogram is reported for information only (the machine may be shared).
    const measure = async (work: () => Promise<unknown>) => {
      const h = monitorEventLoopDelay({ resolution: 10 });
      h.enable();
      await new Promise((r) => setTimeout(r, 25));
      let turns = 0;
      const tick = setInterval(() => turns++, 10);
      await work();
      const during = turns;
      clearInterval(tick);
      await new Promise((r) => setTimeout(r, 20));
      h.disable();
      return { turns: during, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
    };

    // The same function inline blocks the loop for the whole task.
    const inline = await measure(async () => {
      busy({ ms: TASK_MS });
    });
    assert.equal(inline.turns, 0, 'inline work: the loop cannot turn while it runs');

    // Four such tasks on the threads (two rounds of 500 ms on two threads): the loop keeps turning.
    let results: Array<{ iterations: number; threadId: number }> = [];
    const threaded = await measure(async () => {
      results = await Promise.all(
        [1, 2, 3, 4].map(() =>
          eco!.call<{ iterations: number; threadId: number }>({ ms: TASK_MS }),
        ),
      );
    });
    t.diagnostic(
      `loop delay: inline max ${inline.max.toFixed(1)} ms; threads p99 ${threaded.p99.toFixed(1)} ms, max ${threaded.max.toFixed(1)} ms; loop turns during threaded work ${threaded.turns}`,
    );
    assert.ok(
      threaded.turns >= 3,
      `the main loop kept turning while the threads worked (${threaded.turns} turns of a 10 ms interval in ~1 s)`,
    );
    assert.equal(results.length, 4);
    for (const r of results) {
      assert.ok(r.iterations > 0);
      assert.notEqual(r.threadId, threadId, 'ran on a worker thread');
    }
    const h = eco.health();
    assert.equal(h.completed, 6);
    assert.equal(h.threads?.maxThreads, 2);
  });

  it('transfers an ArrayBuffer to the thread (detached here at dispatch) and back', async () => {
    const e = await ecosystem(sys, {
      coordinator,
      workers: { count: 1 },
      threads: { module: WORK, export: 'digest', maxThreads: 1 },
    });
    try {
      const bytes = new Uint8Array(1 << 20).fill(42);
      const { createHash } = await import('node:crypto');
      const expected = createHash('sha256').update(bytes).digest('hex');
      const buf = bytes.buffer;
      const reply = e.call<{ sha256: string; byteLength: number; buf: ArrayBuffer }>(
        { buf },
        { transfer: [buf] },
      );
      assert.equal(buf.byteLength, 0, 'the sender side is detached right after dispatch');
      const r = await reply;
      assert.equal(r.sha256, expected);
      assert.equal(r.byteLength, 1 << 20);
      assert.equal(r.buf.byteLength, 1 << 20, 'the buffer was transferred back whole');
    } finally {
      await e.stop();
    }
  });

  it('a failing thread job rejects its call with the thrown error and the worker keeps serving', async () => {
    const e = await ecosystem(sys, {
      coordinator,
      workers: { count: 1 },
      threads: { module: WORK, export: 'fail', maxThreads: 1 },
    });
    try {
      const [w] = e.workers();
      await assert.rejects(e.call({ code: 'E_JOB' }), {
        code: 'E_JOB',
        message: /failed on purpose/,
      });
      e.dispatch({ code: 'E_DISPATCHED' });
      await until(() => e.health().failed === 2, 'dispatched failure counted');
      assert.equal(pidKey(e.workers()[0]!), pidKey(w!), 'no restart for a failed job');
      assert.equal(e.health().restarts, 0);
    } finally {
      await e.stop();
    }
  });

  it('resizing a threads ecosystem resizes its thread pool', async () => {
    const e = await ecosystem(sys, {
      coordinator,
      workers: { count: 1 },
      threads: { module: WORK },
    });
    try {
      assert.equal(e.health().threads?.maxThreads, 1);
      await e.resize(2);
      assert.equal(e.health().threads?.maxThreads, 2);
      const rs = await Promise.all([
        e.call<{ input: unknown }>('a'),
        e.call<{ input: unknown }>('b'),
      ]);
      assert.deepEqual(
        rs.map((r) => r.input),
        ['a', 'b'],
      );
      await e.resize(1);
      assert.equal(e.health().threads?.maxThreads, 1);
      assert.equal(e.size(), 1);
    } finally {
      await e.stop();
    }
  });
});
