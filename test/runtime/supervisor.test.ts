// Supervisors on a standalone ActorSystem with a manual clock: ordered start and reverse-order
// shutdown, the three strategies, the three restart types, restart intensity (and its window),
// escalation through nested supervisors, shutdown timeouts ('kill' after the timeout,
// 'brutal_kill', 'infinity'), the runtime API and its coded errors, start rollback; and one
// supervisor whose child lives on another node.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FoundationError } from '../../src/errors.js';
import type { DownMessage, ExitReason, GenServer } from '../../src/runtime/behaviour.js';
import type { Pid, PidLike } from '../../src/runtime/pid.js';
import {
  type ChildSpec,
  Supervisor,
  type SupervisorOptions,
} from '../../src/runtime/supervisor.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { flushIO, ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { rejectsWithCode, track } from '../helpers/assert.js';
import { startMemNode, tickUntil } from '../helpers/nodes.js';

const log = createLogger('silent');

function setup() {
  const clock = new ManualClock();
  const system = new ActorSystem({ nodeName: 'n', clock, log });
  const start = (opts: SupervisorOptions) => Supervisor.start(system, { clock, ...opts });
  return { clock, system, start };
}

/** Lets the scheduler and promise callbacks run until `cond` holds (bounded in event-loop turns). */
async function until(cond: () => boolean, what: string, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

function text(r: ExitReason): string {
  return typeof r === 'string' ? r : r.message;
}

/** A GenServer that records its start and its terminate (with the reason) in `ev`. */
function worker(ev: string[], name: string, extra: Partial<GenServer> = {}): GenServer {
  return {
    init() {
      ev.push(`start:${name}`);
    },
    handleCall(msg) {
      return msg === 'who' ? name : undefined;
    },
    handleInfo(msg, ctx) {
      const m = msg as { crash?: Error; stop?: string };
      if (m.crash) throw m.crash;
      if (m.stop) ctx.stop(m.stop);
    },
    terminate(reason) {
      ev.push(`stop:${name}:${text(reason)}`);
    },
    ...extra,
  };
}

const spec = (ev: string[], id: string, more: Partial<ChildSpec> = {}): ChildSpec => ({
  id,
  start: () => worker(ev, id),
  ...more,
});

function pidOf(sup: Supervisor, id: string): Pid | undefined {
  return sup.whichChildren().find((c) => c.id === id)?.pid;
}

function pids(sup: Supervisor): Record<string, Pid | undefined> {
  return Object.fromEntries(sup.whichChildren().map((c) => [c.id, c.pid]));
}

function watch(system: ActorSystem, pid: PidLike): DownMessage[] {
  const downs: DownMessage[] = [];
  system.monitor(pid, (d) => downs.push(d));
  return downs;
}

const boom = (m = 'boom') => ({ crash: new Error(m) });

describe('Supervisor start and stop', () => {
  it('starts children in list order and stops them in reverse order, then exits', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: ['a', 'b', 'c'].map((id) => spec(ev, id)) });
    assert.deepEqual(ev, ['start:a', 'start:b', 'start:c']);
    assert.ok(system.isAlive(sup.pid));
    assert.equal(Supervisor.of(system, sup.pid), sup);
    const kids = pids(sup);
    assert.deepEqual(Object.keys(kids), ['a', 'b', 'c']);
    for (const p of Object.values(kids)) assert.ok(p && system.isAlive(p));
    assert.equal(await system.call(kids.b!, 'who'), 'b');
    await sup.stop();
    assert.deepEqual(ev.slice(3), ['stop:c:shutdown', 'stop:b:shutdown', 'stop:a:shutdown']);
    assert.equal(await sup.exited, 'shutdown');
    assert.equal(sup.alive, false);
    assert.equal(system.size, 0, 'no actor left');
    assert.equal(Supervisor.of(system, sup.pid), undefined);
    await sup.stop(); // idempotent
  });

  it('registers under its name and is found by it', async () => {
    const { system, start } = setup();
    const sup = await start({ name: 'root', children: [] });
    assert.ok(system.whereis('root')?.equals(sup.pid));
    assert.equal(Supervisor.of(system, 'root'), sup);
    await sup.stop();
    assert.equal(system.whereis('root'), undefined);
  });

  it('a child that fails to start rolls back the started ones in reverse order', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const children = [
      spec(ev, 'a'),
      spec(ev, 'b'),
      {
        id: 'c',
        start: () =>
          worker(ev, 'c', {
            init() {
              throw new Error('no database');
            },
            terminate() {}, // c never started; only what was started is shut down
          }),
      },
      spec(ev, 'd'),
    ];
    const err = await rejectsWithCode(start({ children }), 'FND_ERR_SUPERVISOR');
    assert.equal(err.data?.id, 'c');
    assert.equal((err.cause as Error).message, 'no database');
    assert.match((err.data!.cause as { message: string }).message, /no database/);
    assert.deepEqual(ev, ['start:a', 'start:b', 'stop:b:shutdown', 'stop:a:shutdown']);
    await until(() => system.size === 0, 'supervisor gone');
  });

  it('a start function that throws is a failed start too', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const children: ChildSpec[] = [
      spec(ev, 'a'),
      {
        id: 'x',
        start: async () => {
          throw new Error('refused');
        },
      },
    ];
    const err = await rejectsWithCode(start({ children }), 'FND_ERR_SUPERVISOR');
    assert.equal(err.data?.id, 'x');
    assert.deepEqual(ev, ['start:a', 'stop:a:shutdown']);
    await until(() => system.size === 0, 'supervisor gone');
  });

  it('rejects invalid options naming the field, and duplicate ids', async () => {
    const { start } = setup();
    const ev: string[] = [];
    const bad: Array<[SupervisorOptions, string]> = [
      [{ strategy: 'one_for_none' as never }, 'strategy'],
      [{ maxRestarts: -1 }, 'maxRestarts'],
      [{ withinMs: 0 }, 'withinMs'],
      [{ children: [{ id: '', start: () => worker(ev, 'x') }] }, 'children[0].id'],
      [{ children: [spec(ev, 'a'), { id: 'b' } as ChildSpec] }, 'children[1].start'],
      [{ children: [spec(ev, 'a', { restart: 'sometimes' as never })] }, 'children[0].restart'],
      [{ children: [spec(ev, 'a', { shutdown: -5 })] }, 'children[0].shutdown'],
      [{ children: [spec(ev, 'a', { type: 'manager' as never })] }, 'children[0].type'],
    ];
    for (const [opts, field] of bad) {
      const err = await rejectsWithCode(start(opts), 'FND_ERR_INVALID_OPTION');
      assert.equal(err.data?.field, field);
    }
    const dup = await rejectsWithCode(
      start({ children: [spec(ev, 'a'), spec(ev, 'a')] }),
      'FND_ERR_SUPERVISOR',
    );
    assert.equal(dup.data?.id, 'a');
    assert.deepEqual(ev, [], 'nothing started');
  });
});

describe('Supervisor strategies', () => {
  it('one_for_one restarts only the child that exited', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      strategy: 'one_for_one',
      children: ['a', 'b', 'c'].map((id) => spec(ev, id)),
    });
    const before = pids(sup);
    system.send(before.b!, boom());
    await until(() => pidOf(sup, 'b') !== undefined && pidOf(sup, 'b') !== before.b, 'b again');
    const after = pids(sup);
    assert.ok(after.a!.equals(before.a!));
    assert.ok(after.c!.equals(before.c!));
    assert.ok(system.isAlive(after.b!));
    assert.deepEqual(ev.slice(3), ['stop:b:boom', 'start:b']);
    await sup.stop();
  });

  it('one_for_all terminates the others in reverse order and restarts all in order', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      strategy: 'one_for_all',
      children: ['a', 'b', 'c', 'd'].map((id) => spec(ev, id)),
    });
    const before = pids(sup);
    system.send(before.b!, boom());
    await until(
      () => sup.whichChildren().every((c) => c.pid && !c.pid.equals(before[c.id]!)),
      'all restarted',
    );
    assert.deepEqual(ev.slice(4), [
      'stop:b:boom',
      'stop:d:shutdown',
      'stop:c:shutdown',
      'stop:a:shutdown',
      'start:a',
      'start:b',
      'start:c',
      'start:d',
    ]);
    for (const p of Object.values(before)) assert.ok(!system.isAlive(p!));
    assert.equal(system.size, 5);
    await sup.stop();
  });

  it('rest_for_one restarts the exited child and those started after it', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      strategy: 'rest_for_one',
      children: ['a', 'b', 'c', 'd'].map((id) => spec(ev, id)),
    });
    const before = pids(sup);
    system.send(before.b!, boom());
    await until(
      () => ['b', 'c', 'd'].every((id) => pidOf(sup, id) && !pidOf(sup, id)!.equals(before[id]!)),
      'b, c, d restarted',
    );
    assert.ok(pidOf(sup, 'a')!.equals(before.a!), 'a untouched');
    assert.deepEqual(ev.slice(4), [
      'stop:b:boom',
      'stop:d:shutdown',
      'stop:c:shutdown',
      'start:b',
      'start:c',
      'start:d',
    ]);
    await sup.stop();
  });

  it('one_for_all counts simultaneous crashes once, ignoring the stale exit of the second', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      strategy: 'one_for_all',
      maxRestarts: 1,
      children: ['a', 'b', 'c'].map((id) => spec(ev, id)),
    });
    const before = pids(sup);
    // Both crash before the supervisor runs: b's EXIT is still queued while a's restarts all.
    system.exit(before.a!, new Error('a down'));
    system.exit(before.c!, new Error('c down'));
    await until(
      () => sup.whichChildren().every((c) => c.pid && !c.pid.equals(before[c.id]!)),
      'all restarted',
    );
    await flushIO(8);
    assert.ok(sup.alive, 'one restart, within maxRestarts 1');
    assert.deepEqual(ev.filter((e) => e.startsWith('start:')).length, 6, 'each started twice');
    assert.deepEqual(
      Object.values(pids(sup)).map((p) => system.isAlive(p!)),
      [true, true, true],
    );
    await sup.stop();
  });
});

describe('Supervisor restart types', () => {
  it('permanent children are restarted after any exit, normal included', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: [spec(ev, 'p', { restart: 'permanent' })] });
    for (const reason of ['normal', 'shutdown']) {
      const old = pidOf(sup, 'p')!;
      system.send(old, { stop: reason });
      await until(() => !!pidOf(sup, 'p') && !pidOf(sup, 'p')!.equals(old), `restart ${reason}`);
    }
    assert.deepEqual(ev, ['start:p', 'stop:p:normal', 'start:p', 'stop:p:shutdown', 'start:p']);
    await sup.stop();
  });

  it('transient children are restarted after an abnormal exit only', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      children: [
        spec(ev, 't1', { restart: 'transient' }),
        spec(ev, 't2', { restart: 'transient' }),
      ],
    });
    const t1 = pidOf(sup, 't1')!;
    system.send(t1, boom());
    await until(() => !!pidOf(sup, 't1') && !pidOf(sup, 't1')!.equals(t1), 't1 restarted');
    system.send(pidOf(sup, 't1')!, { stop: 'normal' });
    system.send(pidOf(sup, 't2')!, { stop: 'shutdown' });
    await until(() => sup.countChildren().active === 0, 'both gone');
    await flushIO(8);
    assert.deepEqual(sup.whichChildren(), [
      { id: 't1', pid: undefined, type: 'worker', restart: 'transient' },
      { id: 't2', pid: undefined, type: 'worker', restart: 'transient' },
    ]);
    assert.deepEqual(
      ev.filter((e) => e.startsWith('start:')),
      ['start:t1', 'start:t2', 'start:t1'],
    );
    await sup.stop();
  });

  it('temporary children are never restarted and their spec is dropped', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      children: [spec(ev, 'keep'), spec(ev, 'tmp', { restart: 'temporary' })],
    });
    system.send(pidOf(sup, 'tmp')!, boom());
    await until(() => sup.countChildren().specs === 1, 'tmp dropped');
    await flushIO(8);
    assert.deepEqual(
      sup.whichChildren().map((c) => c.id),
      ['keep'],
    );
    assert.deepEqual(ev, ['start:keep', 'start:tmp', 'stop:tmp:boom']);
    await sup.stop();
  });
});

describe('Supervisor restart intensity', () => {
  it('more than maxRestarts within withinMs: children shut down, the supervisor exits', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      maxRestarts: 2,
      withinMs: 1000,
      children: [spec(ev, 'a'), spec(ev, 'flaky')],
    });
    const downs = watch(system, sup.pid);
    for (let i = 0; i < 2; i++) {
      const old = pidOf(sup, 'flaky')!;
      system.send(old, boom(`crash ${i}`));
      await until(() => !!pidOf(sup, 'flaky') && !pidOf(sup, 'flaky')!.equals(old), 'restart');
    }
    system.send(pidOf(sup, 'flaky')!, boom('crash 2'));
    const reason = await sup.exited;
    assert.ok(reason instanceof FoundationError);
    assert.equal(reason.code, 'FND_ERR_SUPERVISOR');
    assert.equal(reason.data?.reason, 'max_restart_intensity');
    assert.equal(reason.data?.id, 'flaky');
    assert.match(reason.message, /max restart intensity/);
    assert.equal(downs[0]?.reason, reason, 'monitors see the same reason');
    assert.deepEqual(ev.slice(-2), ['stop:flaky:crash 2', 'stop:a:shutdown']);
    assert.equal(system.size, 0);
    await rejectsWithCode(sup.startChild(spec(ev, 'late')), 'FND_ERR_NOPROC');
  });

  it('restarts older than withinMs no longer count', async () => {
    const { clock, system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ maxRestarts: 2, withinMs: 1000, children: [spec(ev, 'w')] });
    const crash = async () => {
      const old = pidOf(sup, 'w')!;
      system.send(old, boom());
      await until(() => !sup.alive || (!!pidOf(sup, 'w') && !pidOf(sup, 'w')!.equals(old)), 'w');
    };
    // Restarts at t = 0, 600, 1200: never more than two inside any 1000 ms window.
    await crash();
    clock.tick(600);
    await crash();
    clock.tick(600);
    await crash();
    assert.ok(sup.alive, 'the restart at t=0 left the window');
    // A fourth at t = 1200 makes three within the window (600, 1200, 1200).
    await crash();
    const reason = (await sup.exited) as FoundationError;
    assert.equal(reason.code, 'FND_ERR_SUPERVISOR');
  });

  it('maxRestarts 0 gives up on the first exit that needs a restart', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      maxRestarts: 0,
      children: [spec(ev, 'once', { restart: 'transient' })],
    });
    // A normal exit of a transient child needs no restart, so it does not count.
    system.send(pidOf(sup, 'once')!, { stop: 'normal' });
    await until(() => sup.countChildren().active === 0, 'exited');
    await flushIO(8);
    assert.ok(sup.alive);
    await sup.restartChild('once');
    system.send(pidOf(sup, 'once')!, boom());
    assert.equal(((await sup.exited) as FoundationError).data?.reason, 'max_restart_intensity');
  });
});

describe('Supervisor trees', () => {
  /** top: [w0, inner: [x, y], w3]; the handle of the current inner supervisor is kept. */
  async function tree(topOpts: Partial<SupervisorOptions> = {}) {
    const s = setup();
    const ev: string[] = [];
    const inners: Supervisor[] = [];
    const top = await s.start({
      strategy: 'one_for_one',
      ...topOpts,
      children: [
        spec(ev, 'w0'),
        {
          id: 'inner',
          type: 'supervisor',
          start: async ({ system }) => {
            const inner = await Supervisor.start(system, {
              clock: s.clock,
              maxRestarts: 1,
              children: [spec(ev, 'x'), spec(ev, 'y')],
            });
            inners.push(inner);
            return inner.pid;
          },
        },
        spec(ev, 'w3'),
      ],
    });
    return { ...s, ev, top, inners };
  }

  it('a nested supervisor that exceeds its intensity is restarted, subtree and all', async () => {
    const { system, top, inners, ev } = await tree();
    assert.deepEqual(ev, ['start:w0', 'start:x', 'start:y', 'start:w3']);
    assert.deepEqual(top.countChildren(), { specs: 3, active: 3, supervisors: 1, workers: 2 });
    const inner = inners[0]!;
    assert.ok(pidOf(top, 'inner')!.equals(inner.pid));
    assert.equal(Supervisor.of(system, inner.pid), inner);
    const w0 = pidOf(top, 'w0')!;
    const oldX = pidOf(inner, 'x')!;
    system.send(oldX, boom('x1'));
    await until(() => !!pidOf(inner, 'x') && !pidOf(inner, 'x')!.equals(oldX), 'x restarted');
    system.send(pidOf(inner, 'x')!, boom('x2'));
    const reason = (await inner.exited) as FoundationError;
    assert.equal(reason.data?.reason, 'max_restart_intensity');
    await until(() => inners.length === 2 && !!pidOf(top, 'inner'), 'inner restarted by top');
    const again = inners[1]!;
    assert.ok(pidOf(top, 'inner')!.equals(again.pid));
    assert.ok(!again.pid.equals(inner.pid));
    assert.equal(again.countChildren().active, 2, 'a fresh subtree');
    assert.ok(pidOf(top, 'w0')!.equals(w0), 'siblings untouched (one_for_one)');
    assert.deepEqual(ev.slice(4), [
      'stop:x:x1',
      'start:x',
      'stop:x:x2',
      'stop:y:shutdown',
      'start:x',
      'start:y',
    ]);
    assert.ok(top.alive);
    await top.stop();
  });

  it('escalation goes all the way up when the parent is out of restarts too', async () => {
    const { system, top, inners } = await tree({ maxRestarts: 0 });
    const downs = watch(system, top.pid);
    const inner = inners[0]!;
    const x = pidOf(inner, 'x')!;
    system.send(x, boom('x1'));
    await until(() => !!pidOf(inner, 'x') && !pidOf(inner, 'x')!.equals(x), 'x restarted');
    system.send(pidOf(inner, 'x')!, boom('x2'));
    const reason = (await top.exited) as FoundationError;
    assert.equal(reason.code, 'FND_ERR_SUPERVISOR');
    assert.equal(reason.data?.id, 'inner', 'the top gave up because of inner');
    const childReason = reason.data?.childReason as { code: string };
    assert.equal(childReason.code, 'FND_ERR_SUPERVISOR');
    assert.equal(downs.length, 1);
    assert.equal(system.size, 0, 'the whole tree is gone');
  });

  it('stopping the root shuts the tree down depth-first in reverse order', async () => {
    const { system, top, ev, inners } = await tree();
    await top.stop();
    assert.deepEqual(ev.slice(4), [
      'stop:w3:shutdown',
      'stop:y:shutdown',
      'stop:x:shutdown',
      'stop:w0:shutdown',
    ]);
    assert.equal(await inners[0]!.exited, 'shutdown');
    assert.equal(system.size, 0);
  });

  it('Supervisor.childSpec starts a nested supervisor found with Supervisor.of', async () => {
    const { clock, system, start } = setup();
    const ev: string[] = [];
    const top = await start({
      children: [
        Supervisor.childSpec('pool', {
          clock,
          name: 'pool',
          strategy: 'one_for_all',
          children: [spec(ev, 'p1'), spec(ev, 'p2')],
        }),
      ],
    });
    assert.deepEqual(top.whichChildren()[0]?.type, 'supervisor');
    const pool = Supervisor.of(system, 'pool')!;
    assert.ok(pool.pid.equals(pidOf(top, 'pool')!));
    assert.deepEqual(
      pool.whichChildren().map((c) => c.id),
      ['p1', 'p2'],
    );
    await top.stop();
    assert.deepEqual(ev, ['start:p1', 'start:p2', 'stop:p2:shutdown', 'stop:p1:shutdown']);
  });
});

describe('Supervisor shutdown timeouts', () => {
  it("a trapping child's async terminate is awaited within its shutdown timeout", async () => {
    const { clock, system, start } = setup();
    const ev: string[] = [];
    let finish!: () => void;
    const sup = await start({
      children: [
        {
          id: 'graceful',
          shutdown: 1000,
          options: { trapExits: true },
          start: () =>
            worker(ev, 'graceful', {
              terminate: async (reason) => {
                ev.push(`terminating:${text(reason)}`);
                await new Promise<void>((r) => {
                  finish = r;
                });
                ev.push('terminated');
              },
            }),
        },
      ],
    });
    const pid = pidOf(sup, 'graceful')!;
    const downs = watch(system, pid);
    const done = track(sup.terminateChild('graceful'));
    await until(() => ev.includes('terminating:shutdown'), 'terminate running');
    clock.tick(999);
    await flushIO(8);
    assert.ok(system.isAlive(pid), 'still cleaning up, not killed');
    assert.equal(done.result.state, 'pending', 'the supervisor waits for it');
    finish();
    await done.promise;
    assert.equal(downs[0]?.reason, 'shutdown');
    assert.deepEqual(ev.slice(1), ['terminating:shutdown', 'terminated']);
    await sup.stop();
  });

  it('a child that does not finish within its shutdown timeout is killed', async () => {
    const { clock, system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      children: [
        spec(ev, 'first'),
        {
          id: 'stubborn',
          shutdown: 50,
          options: { trapExits: true },
          start: () =>
            worker(ev, 'stubborn', {
              terminate: async () => {
                ev.push('stop:stubborn:begun');
                await new Promise(() => {}); // never finishes
              },
            }),
        },
      ],
    });
    const pid = pidOf(sup, 'stubborn')!;
    const downs = watch(system, pid);
    const stopped = track(sup.stop());
    await until(() => ev.includes('stop:stubborn:begun'), 'terminate begun');
    await flushIO(8);
    assert.ok(system.isAlive(pid));
    assert.equal(stopped.result.state, 'pending');
    assert.ok(!ev.includes('stop:first:shutdown'), 'the next child waits its turn');
    clock.tick(50);
    await stopped.promise;
    assert.equal(downs[0]?.reason, 'killed');
    assert.deepEqual(ev.slice(2), ['stop:stubborn:begun', 'stop:first:shutdown']);
  });

  it("'brutal_kill' kills at once (no terminate); 'infinity' waits as long as it takes", async () => {
    const { clock, system, start } = setup();
    const ev: string[] = [];
    let release!: () => void;
    const sup = await start({
      children: [
        spec(ev, 'brute', { shutdown: 'brutal_kill' }),
        {
          id: 'patient',
          shutdown: 'infinity',
          options: { trapExits: true },
          start: () =>
            worker(ev, 'patient', {
              terminate: async () => {
                await new Promise<void>((r) => {
                  release = r;
                });
                ev.push('stop:patient:done');
              },
            }),
        },
      ],
    });
    const brute = watch(system, pidOf(sup, 'brute')!);
    await sup.terminateChild('brute');
    assert.equal(brute[0]?.reason, 'killed');
    assert.ok(!ev.some((e) => e.startsWith('stop:brute')), 'killed: terminate does not run');
    const patientPid = pidOf(sup, 'patient')!;
    const t = track(sup.terminateChild('patient'));
    await until(() => release !== undefined, 'terminate begun');
    clock.tick(3_600_000);
    await flushIO(8);
    assert.equal(t.result.state, 'pending');
    assert.ok(system.isAlive(patientPid));
    release();
    await t.promise;
    assert.ok(!system.isAlive(patientPid));
    assert.ok(ev.includes('stop:patient:done'));
    await sup.stop();
  });

  it('a trapping child still gets EXIT messages from other linked actors', async () => {
    const { system, start } = setup();
    const got: unknown[] = [];
    const sup = await start({
      children: [
        {
          id: 'trapper',
          options: { trapExits: true },
          start: () => ({ handleInfo: (m: unknown) => void got.push(m) }),
        },
      ],
    });
    const trapper = pidOf(sup, 'trapper')!;
    const other = system.spawn(() => {
      throw new Error('other died');
    });
    system.link(other, trapper);
    system.send(other, 'go');
    await until(() => got.length === 1, 'EXIT from the other actor');
    assert.equal(((got[0] as { reason: Error }).reason as Error).message, 'other died');
    assert.ok(system.isAlive(trapper));
    await sup.stop();
    assert.ok(!system.isAlive(trapper));
  });
});

describe('Supervisor runtime API', () => {
  it('startChild, terminateChild, restartChild, deleteChild, whichChildren, countChildren', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: [spec(ev, 'a')] });
    const b = await sup.startChild(spec(ev, 'b', { restart: 'transient' }));
    assert.ok(system.isAlive(b));
    assert.deepEqual(sup.whichChildren(), [
      { id: 'a', pid: pidOf(sup, 'a'), type: 'worker', restart: 'permanent' },
      { id: 'b', pid: b, type: 'worker', restart: 'transient' },
    ]);
    assert.deepEqual(sup.countChildren(), { specs: 2, active: 2, supervisors: 0, workers: 2 });

    let err = await rejectsWithCode(sup.startChild(spec(ev, 'a')), 'FND_ERR_SUPERVISOR');
    assert.equal(err.data?.id, 'a');
    err = await rejectsWithCode(sup.restartChild('b'), 'FND_ERR_SUPERVISOR');
    assert.match(err.message, /running/);
    await rejectsWithCode(sup.deleteChild('b'), 'FND_ERR_SUPERVISOR');
    for (const op of [
      () => sup.terminateChild('nope'),
      () => sup.restartChild('nope'),
      () => sup.deleteChild('nope'),
    ]) {
      err = await rejectsWithCode(op(), 'FND_ERR_SUPERVISOR');
      assert.equal(err.data?.id, 'nope');
    }

    await sup.terminateChild('a');
    assert.ok(system.isAlive(b), 'b untouched');
    assert.equal(pidOf(sup, 'a'), undefined);
    assert.deepEqual(sup.countChildren(), { specs: 2, active: 1, supervisors: 0, workers: 2 });
    await sup.terminateChild('a'); // already terminated: nothing to do
    await flushIO(8);
    assert.equal(pidOf(sup, 'a'), undefined, 'a terminated child is not restarted');

    const a2 = await sup.restartChild('a');
    assert.ok(system.isAlive(a2));
    await sup.terminateChild('b');
    await sup.deleteChild('b');
    assert.deepEqual(
      sup.whichChildren().map((c) => c.id),
      ['a'],
    );
    assert.deepEqual(ev, ['start:a', 'start:b', 'stop:a:shutdown', 'start:a', 'stop:b:shutdown']);
    await sup.stop();
  });

  it('a child added with startChild is restarted, and shut down first', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: [spec(ev, 'a')] });
    const d = await sup.startChild(spec(ev, 'dyn'));
    system.send(d, boom());
    await until(() => !!pidOf(sup, 'dyn') && !pidOf(sup, 'dyn')!.equals(d), 'dyn restarted');
    await sup.stop();
    assert.deepEqual(ev.slice(-2), ['stop:dyn:shutdown', 'stop:a:shutdown']);
  });

  it('a failing startChild or restartChild rejects with the cause and keeps the state', async () => {
    const { start } = setup();
    const ev: string[] = [];
    let fail = false;
    const sup = await start({
      children: [
        {
          id: 'f',
          start: () => {
            if (fail) throw new Error('cannot');
            return worker(ev, 'f');
          },
        },
      ],
    });
    const err = await rejectsWithCode(
      sup.startChild({
        id: 'bad',
        start: () => ({
          init() {
            throw new Error('bad init');
          },
        }),
      }),
      'FND_ERR_SUPERVISOR',
    );
    assert.equal((err.cause as Error).message, 'bad init');
    assert.deepEqual(
      sup.whichChildren().map((c) => c.id),
      ['f'],
      'the failed spec is not kept',
    );
    await sup.terminateChild('f');
    fail = true;
    const err2 = await rejectsWithCode(sup.restartChild('f'), 'FND_ERR_SUPERVISOR');
    assert.equal((err2.cause as Error).message, 'cannot');
    assert.equal(pidOf(sup, 'f'), undefined);
    fail = false;
    await sup.restartChild('f');
    assert.ok(pidOf(sup, 'f'));
    const invalid = await rejectsWithCode(
      sup.startChild({ id: 'x' } as ChildSpec),
      'FND_ERR_INVALID_OPTION',
    );
    assert.equal(invalid.data?.field, 'spec.start');
    await sup.stop();
  });

  it('answers calls from other actors with { ok, value | error }', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: [spec(ev, 'a')] });
    const which = await system.call(sup.pid, { op: 'whichChildren' });
    assert.deepEqual(which, { ok: true, value: sup.whichChildren() });
    const bad = (await system.call(sup.pid, { op: 'deleteChild', id: 'zzz' })) as {
      ok: boolean;
      error: FoundationError;
    };
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, 'FND_ERR_SUPERVISOR');
    assert.ok(sup.alive, 'a failed request does not crash the supervisor');
    await sup.stop();
  });

  it('a custom start returning a pid is linked, restarted through the start, and shut down', async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    let n = 0;
    const seen: Array<{ supervisor: Pid; id: string; same: boolean }> = [];
    const sup = await start({
      children: [
        {
          id: 'own',
          start: ({ system: sys, supervisor, id }) => {
            seen.push({ supervisor, id, same: sys === system });
            return sys.spawn(worker(ev, `own${++n}`));
          },
        },
      ],
    });
    const first = pidOf(sup, 'own')!;
    system.send(first, boom());
    await until(() => !!pidOf(sup, 'own') && !pidOf(sup, 'own')!.equals(first), 'restarted');
    await sup.stop();
    assert.deepEqual(ev, ['start:own1', 'stop:own1:boom', 'start:own2', 'stop:own2:shutdown']);
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.ok(s.supervisor.equals(sup.pid));
      assert.equal(s.id, 'own');
      assert.ok(s.same);
    }
  });
});

describe('Supervisor and exit signals', () => {
  it("exit(sup, 'shutdown') from outside shuts the children down; 'normal' is ignored", async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({ children: [spec(ev, 'a'), spec(ev, 'b')] });
    system.exit(sup.pid, 'normal');
    await flushIO(8);
    assert.ok(sup.alive);
    system.exit(sup.pid, 'shutdown');
    assert.equal(await sup.exited, 'shutdown');
    assert.deepEqual(ev.slice(2), ['stop:b:shutdown', 'stop:a:shutdown']);
    assert.equal(system.size, 0);
  });

  it("a killed supervisor takes its children with it ('killed' through the links)", async () => {
    const { system, start } = setup();
    const ev: string[] = [];
    const sup = await start({
      children: [
        spec(ev, 'plain'),
        { id: 'trapping', options: { trapExits: true }, start: () => worker(ev, 'trapping') },
      ],
    });
    const plain = watch(system, pidOf(sup, 'plain')!);
    const trapping = watch(system, pidOf(sup, 'trapping')!);
    system.exit(sup.pid, 'kill');
    assert.equal(await sup.exited, 'killed');
    await until(() => plain.length === 1 && trapping.length === 1, 'children gone');
    assert.equal(plain[0]!.reason, 'killed');
    assert.equal(trapping[0]!.reason, 'killed', 'a trapping GenServer child follows its parent');
    assert.ok(ev.includes('stop:trapping:killed'), 'after running its terminate');
    assert.equal(system.size, 0);
    await rejectsWithCode(sup.terminateChild('plain'), 'FND_ERR_NOPROC');
  });
});

describe('Supervisor across nodes', () => {
  it('supervises an actor on another node: restarts it there, and gives up when the node goes', async () => {
    const net = new InMemoryNetwork();
    const clock = new ManualClock();
    const a = await startMemNode(net, clock, { name: 'a' });
    const b = await startMemNode(net, clock, { name: 'b' });
    try {
      await a.join(b.address);
      await tickUntil(
        clock,
        net,
        () => a.members().some((m) => m.name === 'b' && m.status === 'alive'),
        'a sees b',
      );
      const started: string[] = [];
      // A factory on b spawns workers there on request.
      b.register(
        'factory',
        b.spawn((msg, ctx) => {
          if (msg !== 'spawn') return undefined;
          const pid = ctx.spawn((m: unknown) => {
            if (m === 'crash') throw new Error('remote crash');
          });
          started.push(String(pid));
          return pid;
        }),
      );
      const sup = await Supervisor.start(a, {
        clock,
        maxRestarts: 2,
        withinMs: 60_000,
        children: [
          {
            id: 'remote',
            start: ({ system }) => system.call<PidLike>({ name: 'factory', node: 'b' }, 'spawn'),
          },
        ],
      });
      const first = pidOf(sup, 'remote')!;
      assert.equal(first.node, 'b');
      b.send(first, 'crash');
      await tickUntil(
        clock,
        net,
        () => !!pidOf(sup, 'remote') && !pidOf(sup, 'remote')!.equals(first),
        'restarted on b',
      );
      assert.equal(pidOf(sup, 'remote')!.node, 'b');
      assert.equal(started.length, 2);
      assert.ok(!b.actors.isAlive(first));
      // b disappears: the link delivers 'noconnection', the restart cannot reach b's factory, and
      // the supervisor runs out of restarts.
      await b.stop();
      let reason: ExitReason | undefined;
      void sup.exited.then((r) => {
        reason = r;
      });
      await tickUntil(clock, net, () => reason !== undefined, 'supervisor gave up');
      assert.equal((reason as FoundationError).data?.reason, 'max_restart_intensity');
    } finally {
      await a.stop();
      await b.stop().catch(() => {});
    }
  });
});
