// The actor core on a standalone ActorSystem: pids, the two behaviour styles (plain handler and
// GenServer), init and terminate, call/cast/send and their coded failures, per-sender ordering,
// ctx.stop, and crash isolation (a throw or a rejected promise ends that actor and nothing else).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FoundationError } from '../../src/errors.js';
import type {
  ActorContext,
  DownMessage,
  ExitMessage,
  ExitReason,
  GenServer,
} from '../../src/runtime/behaviour.js';
import { isPid, Pid, type PidLike } from '../../src/runtime/pid.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { type Clock, flushIO, ManualClock, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { fulfilled, rejectedWith, rejectsWithCode, track } from '../helpers/assert.js';

const log = createLogger('silent');
const system = (clock: Clock = systemClock) => new ActorSystem({ nodeName: 'n', clock, log });

/** Lets the scheduler and promise callbacks run until `cond` holds (bounded in event-loop turns). */
async function until(cond: () => boolean, what: string, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

/** A promise the test resolves by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/** Records the DOWN of `pid` through a monitor callback. */
function watch(sys: ActorSystem, pid: PidLike): DownMessage[] {
  const downs: DownMessage[] = [];
  sys.monitor(pid, (d) => downs.push(d));
  return downs;
}

describe('pids', () => {
  it('spawn returns a Pid printable as <node.N>, JSON-serialisable, distinct per actor', () => {
    const sys = system();
    const a = sys.spawn(() => {});
    const b = sys.spawn(() => {});
    assert.ok(a instanceof Pid);
    assert.equal(a.node, 'n');
    assert.match(String(a), /^<n\.\d+>$/);
    assert.equal(`${a}`, `<n.${a.id}>`);
    assert.notEqual(a.id, b.id);
    assert.ok(!a.equals(b));
    const wire = JSON.parse(JSON.stringify(a));
    assert.deepEqual(wire, { node: 'n', id: a.id });
    assert.ok(isPid(wire));
    assert.ok(a.equals(wire));
    assert.ok(!isPid({ node: 'n', id: 1.5 }));
    assert.ok(!isPid({ node: 1, id: 1 }));
  });

  it('a pid that went through JSON addresses the same actor', async () => {
    const sys = system();
    const got: unknown[] = [];
    const pid = sys.spawn((m) => {
      got.push(m);
      return 'pong';
    });
    const plain = JSON.parse(JSON.stringify(pid)) as PidLike;
    sys.send(plain, 'hello');
    assert.equal(await sys.call(plain, 'ping'), 'pong');
    assert.deepEqual(got, ['hello', 'ping']);
    assert.ok(sys.isAlive(plain));
  });
});

describe('plain handler behaviour', () => {
  it('gets sends, casts and calls; the return value (or resolved promise) is the call reply', async () => {
    const sys = system();
    const got: unknown[] = [];
    const pid = sys.spawn(async (msg) => {
      got.push(msg);
      if (msg === 'slow') {
        await new Promise((r) => setImmediate(r));
        return 'slow-reply';
      }
      return { echo: msg };
    });
    sys.send(pid, 1);
    sys.cast(pid, 2);
    assert.deepEqual(await sys.call(pid, 3), { echo: 3 });
    assert.equal(await sys.call(pid, 'slow'), 'slow-reply');
    assert.deepEqual(got, [1, 2, 3, 'slow']);
  });

  it('handles one message at a time: an async handler is awaited before the next message', async () => {
    const sys = system();
    let active = 0;
    let maxActive = 0;
    const done: number[] = [];
    const pid = sys.spawn(async (msg) => {
      active++;
      maxActive = Math.max(maxActive, active);
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      active--;
      done.push(msg as number);
    });
    for (let i = 0; i < 20; i++) sys.send(pid, i);
    await until(() => done.length === 20, '20 messages handled');
    assert.equal(maxActive, 1);
    assert.deepEqual(
      done,
      Array.from({ length: 20 }, (_, i) => i),
    );
  });
});

class Counter implements GenServer<{ add: number } | 'get' | 'whoami', { add: number }> {
  count = 0;
  log: string[] = [];
  constructor(private readonly initial = 0) {}
  init() {
    this.log.push('init');
    this.count = this.initial;
  }
  handleCall(msg: { add: number } | 'get' | 'whoami', _ctx: ActorContext, from?: PidLike) {
    this.log.push('call');
    if (msg === 'whoami') return from ? { node: from.node, id: from.id } : null;
    if (msg === 'get') return this.count;
    this.count += msg.add;
    return this.count;
  }
  handleCast(msg: { add: number }) {
    this.log.push('cast');
    this.count += msg.add;
  }
  handleInfo(msg: unknown) {
    this.log.push(`info:${JSON.stringify(msg)}`);
  }
  terminate(reason: ExitReason) {
    this.log.push(`terminate:${typeof reason === 'string' ? reason : reason.message}`);
  }
}

describe('GenServer behaviour', () => {
  it('routes calls to handleCall, casts to handleCast and plain sends to handleInfo', async () => {
    const sys = system();
    const server = new Counter(10);
    const pid = sys.spawn(server);
    sys.cast(pid, { add: 5 });
    sys.send(pid, { hello: 1 });
    assert.equal(await sys.call(pid, { add: 1 }), 16);
    assert.equal(await sys.call(pid, 'get'), 16);
    assert.deepEqual(server.log, ['init', 'cast', 'info:{"hello":1}', 'call', 'call']);
  });

  it('handleCall gets the calling actor as `from` (undefined from outside any actor)', async () => {
    const sys = system();
    const server = sys.spawn(new Counter());
    assert.equal(await sys.call(server, 'whoami'), null);
    let seen: unknown;
    const client = sys.spawn(async (_m, ctx) => {
      seen = await ctx.call(server, 'whoami');
    });
    sys.send(client, 'go');
    await until(() => seen !== undefined, 'client got its reply');
    assert.deepEqual(seen, { node: 'n', id: client.id });
  });

  it('init runs before the first message, even for messages sent right after spawn', async () => {
    const sys = system();
    const server = new Counter(100);
    const pid = sys.spawn(server);
    sys.send(pid, 'early');
    assert.equal(await sys.call(pid, 'get'), 100);
    assert.deepEqual(server.log, ['init', 'info:"early"', 'call']);
  });

  it('an async init holds messages until it resolves; spawnAsync resolves after it', async () => {
    const sys = system();
    const g = gate();
    const order: string[] = [];
    const spawned = track(
      sys.spawnAsync({
        async init() {
          order.push('init:start');
          await g.promise;
          order.push('init:done');
        },
        handleInfo(msg) {
          order.push(`info:${String(msg)}`);
        },
        handleCall() {
          return order.length;
        },
      }),
    );
    await flushIO();
    assert.equal(spawned.result.state, 'pending');
    assert.equal(sys.size, 1);
    // The actor exists, so its pid can already be found and messages queue up behind init.
    const pid = new Pid('n', 1);
    sys.send(pid, 'a');
    sys.send(pid, 'b');
    await flushIO(8);
    assert.deepEqual(order, ['init:start']);
    g.open();
    const p = await spawned.promise;
    assert.ok(p.equals(pid));
    assert.equal(await sys.call(pid, 'len'), 4);
    assert.deepEqual(order, ['init:start', 'init:done', 'info:a', 'info:b']);
  });

  for (const style of ['throws', 'rejects'] as const) {
    it(`an init that ${style}: spawnAsync rejects with its error and the actor is dead`, async () => {
      const sys = system();
      const exits: Array<[Pid, ExitReason]> = [];
      sys.onExit((pid, reason) => exits.push([pid, reason]));
      const boom = new Error(`init ${style}`);
      let handled = 0;
      let terminated = 0;
      // A trapping parent linked to the child hears about the failure, the way a supervisor would.
      const parentGot: ExitMessage[] = [];
      const parent = sys.spawn((m) => void parentGot.push(m as ExitMessage), { trapExits: true });
      await assert.rejects(
        sys.spawnAsync(
          {
            init:
              style === 'throws'
                ? () => {
                    throw boom;
                  }
                : async () => {
                    await new Promise((r) => setImmediate(r));
                    throw boom;
                  },
            handleInfo: () => void handled++,
            terminate: () => void terminated++,
          },
          { link: parent },
        ),
        (err) => err === boom,
      );
      assert.equal(exits.length, 1);
      const [child, reason] = exits[0]!;
      assert.equal(reason, boom);
      assert.ok(!sys.isAlive(child));
      assert.equal(sys.size, 1, 'only the parent is left');
      sys.send(child, 'ignored');
      await rejectsWithCode(sys.call(child, 'x'), 'FND_ERR_NOPROC');
      await until(() => parentGot.length === 1, 'parent got EXIT');
      assert.deepEqual(parentGot[0], { type: 'EXIT', from: child, reason: boom });
      assert.equal(handled, 0);
      assert.equal(terminated, 0, 'an actor whose init failed never started: no terminate');
    });
  }

  it('spawn (not async) with a failing init returns a pid that is dead by the next tick', async () => {
    const sys = system();
    const pid = sys.spawn({
      async init() {
        throw new Error('nope');
      },
    });
    assert.ok(pid instanceof Pid);
    const downs = watch(sys, pid);
    await until(() => downs.length === 1, 'DOWN');
    assert.equal((downs[0]!.reason as Error).message, 'nope');
    assert.ok(!sys.isAlive(pid));
  });

  it('terminate runs on ctx.stop and on a crash (with the reason), and not on kill', async () => {
    const sys = system();
    const stopped = new Counter();
    const crashed = new Counter();
    const killed = new Counter();
    const shut = new Counter();
    const a = sys.spawn(
      Object.assign(stopped, {
        handleInfo(this: Counter, _m: unknown, ctx: ActorContext) {
          ctx.stop('done');
        },
      }),
    );
    const b = sys.spawn(
      Object.assign(crashed, {
        handleInfo() {
          throw new Error('kaput');
        },
      }),
    );
    const c = sys.spawn(killed);
    const d = sys.spawn(shut);
    const downs = [a, b, c, d].map((p) => watch(sys, p));
    sys.send(a, 'stop');
    sys.send(b, 'crash');
    sys.exit(c, 'kill');
    sys.exit(d, 'shutdown');
    await until(() => downs.every((x) => x.length === 1), 'four DOWNs');
    assert.deepEqual(
      downs.map((x) => {
        const r = x[0]!.reason;
        return typeof r === 'string' ? r : r.message;
      }),
      ['done', 'kaput', 'killed', 'shutdown'],
    );
    assert.deepEqual(stopped.log.slice(-1), ['terminate:done']);
    assert.deepEqual(crashed.log.slice(-1), ['terminate:kaput']);
    assert.deepEqual(killed.log, ['init'], 'no terminate after kill');
    assert.deepEqual(shut.log.slice(-1), ['terminate:shutdown']);
  });

  it('terminate that throws is logged; the exit still completes', async () => {
    const sys = system();
    const pid = sys.spawn({
      terminate() {
        throw new Error('terminate failed');
      },
    });
    const downs = watch(sys, pid);
    sys.exit(pid, 'shutdown');
    await until(() => downs.length === 1, 'DOWN');
    assert.equal(downs[0]!.reason, 'shutdown');
    assert.equal(sys.size, 0);
  });
});

describe('call', () => {
  it('times out with FND_ERR_CALL_TIMEOUT on the injected clock; the actor lives on', async () => {
    const clock = new ManualClock();
    const sys = system(clock);
    const g = gate();
    const pid = sys.spawn({
      async handleCall(msg) {
        if (msg === 'hang') await g.promise;
        return msg;
      },
    });
    const call = track(sys.call(pid, 'hang', { timeout: 250 }));
    await flushIO();
    clock.tick(249);
    await flushIO();
    assert.equal(call.result.state, 'pending');
    clock.tick(1);
    await flushIO();
    const err = rejectedWith(call, 'FND_ERR_CALL_TIMEOUT', 'the hanging call');
    assert.equal((err.data as { timeout: number }).timeout, 250);
    assert.ok(sys.isAlive(pid));
    // The late reply is discarded; the actor answers the next call normally.
    g.open();
    const next = track(sys.call(pid, 'next', { timeout: 250 }));
    await until(() => next.result.state !== 'pending', 'next reply');
    assert.equal(fulfilled(next), 'next');
  });

  it('uses the system default timeout when none is given', async () => {
    const clock = new ManualClock();
    const sys = new ActorSystem({ nodeName: 'n', clock, log, callTimeoutMs: 1000 });
    const pid = sys.spawn(() => new Promise(() => {}));
    const call = track(sys.call(pid, 'x'));
    await flushIO();
    clock.tick(999);
    await flushIO();
    assert.equal(call.result.state, 'pending');
    clock.tick(1);
    await flushIO();
    rejectedWith(call, 'FND_ERR_CALL_TIMEOUT');
  });

  it('to a dead pid, a never-spawned pid or an unknown name rejects with FND_ERR_NOPROC', async () => {
    const sys = system();
    const pid = sys.spawn(() => 'ok');
    assert.equal(await sys.call(pid, 'x'), 'ok');
    const downs = watch(sys, pid);
    sys.exit(pid, 'kill');
    await until(() => downs.length === 1, 'DOWN');
    await rejectsWithCode(sys.call(pid, 'x'), 'FND_ERR_NOPROC');
    await rejectsWithCode(sys.call({ node: 'n', id: 9999 }, 'x'), 'FND_ERR_NOPROC');
    await rejectsWithCode(sys.call('nobody', 'x'), 'FND_ERR_NOPROC');
    await rejectsWithCode(sys.sendAsync(pid, 'x'), 'FND_ERR_NOPROC');
  });

  it('a crash while handling a call rejects it with FND_ERR_ACTOR_EXITED, and calls queued behind it too', async () => {
    const sys = system();
    const pid = sys.spawn({
      handleCall(msg) {
        if (msg === 'crash') throw new Error('handler broke');
        return msg;
      },
    });
    const first = track(sys.call(pid, 'crash'));
    const queued = track(sys.call(pid, 'after'));
    await until(() => queued.result.state !== 'pending', 'both calls settled');
    const err = rejectedWith(first, 'FND_ERR_ACTOR_EXITED', 'crashing call');
    assert.match(err.message, /handler broke/);
    assert.deepEqual((err.data as { pid: unknown }).pid, { node: 'n', id: pid.id });
    const err2 = rejectedWith(queued, 'FND_ERR_ACTOR_EXITED', 'queued call');
    assert.match(err2.message, /exited before replying/);
    assert.ok(!sys.isAlive(pid));
  });

  it('an async handleCall that rejects ends the call with FND_ERR_ACTOR_EXITED', async () => {
    const sys = system();
    const pid = sys.spawn({
      async handleCall() {
        await new Promise((r) => setImmediate(r));
        throw new Error('async broke');
      },
    });
    const err = await rejectsWithCode(sys.call(pid, 'x'), 'FND_ERR_ACTOR_EXITED');
    assert.match(err.message, /async broke/);
    assert.ok(!sys.isAlive(pid));
  });

  it('killed while its async handler works on a call: that call and the queued ones reject with FND_ERR_ACTOR_EXITED at once', async () => {
    // The caller must not wait for its timeout (here the manual clock never moves): the exit
    // answers the call in progress as it answers the queued ones.
    const sys = system(new ManualClock());
    const g = gate();
    let started = false;
    const pid = sys.spawn(async (msg) => {
      started = true;
      await g.promise;
      return msg;
    });
    const inProgress = track(sys.call(pid, 'first'));
    const queued = track(sys.call(pid, 'second'));
    await until(() => started, 'handler started');
    sys.exit(pid, 'kill');
    await until(() => queued.result.state !== 'pending', 'queued call settled');
    await until(() => inProgress.result.state !== 'pending', 'call in progress settled');
    const err = rejectedWith(inProgress, 'FND_ERR_ACTOR_EXITED', 'call in progress');
    assert.match(err.message, /exited before replying \(killed\)/);
    rejectedWith(queued, 'FND_ERR_ACTOR_EXITED', 'queued call');
    g.open(); // the handler finishes after the exit: nothing more happens
    await flushIO(2);
    assert.ok(!sys.isAlive(pid));
  });

  it('a GenServer without handleCall replies undefined', async () => {
    const sys = system();
    // Typed, calling it is a compile error (its protocol's call message is never); untyped, it answers.
    const pid: Pid = sys.spawn({ handleInfo() {} });
    assert.equal(await sys.call(pid, 'x'), undefined);
  });
});

describe('crash isolation', () => {
  it('a throw or a rejected promise ends only that actor, with the error as exit reason', async () => {
    const sys = system();
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    try {
      const bystanders = Array.from({ length: 5 }, () => sys.spawn(new Counter()));
      const sync = new Error('sync throw');
      const async_ = new Error('async rejection');
      const thrower = sys.spawn((m) => {
        if (m === 'boom') throw sync;
      });
      const rejecter = sys.spawn(async (m) => {
        await new Promise((r) => setImmediate(r));
        if (m === 'boom') throw async_;
      });
      const d1 = watch(sys, thrower);
      const d2 = watch(sys, rejecter);
      for (const b of bystanders) sys.cast(b, { add: 1 });
      sys.send(thrower, 'boom');
      sys.send(rejecter, 'boom');
      for (const b of bystanders) sys.cast(b, { add: 1 });
      await until(() => d1.length === 1 && d2.length === 1, 'both crashed');
      assert.equal(d1[0]!.reason, sync);
      assert.equal(d2[0]!.reason, async_);
      assert.equal(sys.crashes, 2);
      for (const b of bystanders) {
        assert.ok(sys.isAlive(b));
        assert.equal(await sys.call(b, 'get'), 2);
      }
      // The system keeps spawning and serving after crashes.
      const fresh = sys.spawn(() => 'fresh');
      assert.equal(await sys.call(fresh, 'x'), 'fresh');
      await flushIO(4);
      assert.deepEqual(unhandled, [], 'no unhandled rejection or uncaught exception escaped');
    } finally {
      process.off('unhandledRejection', onUnhandled);
      process.off('uncaughtException', onUnhandled);
    }
  });

  it('messages to an actor after it crashed are dropped, sendAsync says FND_ERR_NOPROC', async () => {
    const sys = system();
    let handled = 0;
    const pid = sys.spawn((m) => {
      handled++;
      if (m === 'boom') throw new Error('x');
    });
    sys.send(pid, 'boom');
    sys.send(pid, 'lost');
    await until(() => !sys.isAlive(pid), 'crash');
    sys.send(pid, 'also lost');
    await flushIO();
    assert.equal(handled, 1);
    await rejectsWithCode(sys.sendAsync(pid, 'y'), 'FND_ERR_NOPROC');
  });
});

describe('ordering', () => {
  it('messages from one sender arrive in send order, whatever other senders do', async () => {
    const sys = system();
    const seen = new Map<number, number[]>();
    const sink = sys.spawn((m) => {
      const [from, seq] = m as [number, number];
      const l = seen.get(from) ?? [];
      seen.set(from, l);
      l.push(seq);
    });
    const N = 2000;
    const senders = Array.from({ length: 4 }, (_, k) =>
      sys.spawn(async (_m, ctx) => {
        for (let i = 0; i < N; i++) {
          // Casts mixed in: the sender→receiver order holds across send and cast.
          if (i % 3 === 0) ctx.cast(sink, [k, i]);
          else ctx.send(sink, [k, i]);
          if (i % 7 === 0) await new Promise((r) => setImmediate(r));
        }
      }),
    );
    for (const s of senders) sys.send(s, 'go');
    // Messages sent from outside any actor interleave too.
    for (let i = 0; i < N; i++) sys.send(sink, [99, i]);
    await until(() => [...seen.values()].reduce((n, l) => n + l.length, 0) === 5 * N, 'all');
    const expected = Array.from({ length: N }, (_, i) => i);
    for (const k of [0, 1, 2, 3, 99]) assert.deepEqual(seen.get(k), expected, `sender ${k}`);
  });

  it('send, cast and call from one sender are handled in the order they were made', async () => {
    const sys = system();
    const order: string[] = [];
    const pid = sys.spawn({
      handleInfo: (m) => void order.push(`info:${m}`),
      handleCast: (m) => void order.push(`cast:${m}`),
      handleCall: (m) => {
        order.push(`call:${m}`);
        return order.slice();
      },
    });
    sys.send(pid, 1);
    sys.cast(pid, 2);
    sys.send(pid, 3);
    const snapshot = await sys.call(pid, 4);
    assert.deepEqual(snapshot, ['info:1', 'cast:2', 'info:3', 'call:4']);
  });
});

describe('ctx.stop', () => {
  it('ends the actor with the given reason (default normal)', async () => {
    const sys = system();
    const a = sys.spawn((m, ctx) => {
      if (m === 'stop') ctx.stop();
    });
    const b = sys.spawn(async (m, ctx) => {
      await new Promise((r) => setImmediate(r));
      if (m === 'stop') ctx.stop({ message: 'custom', code: 'X' });
    });
    const da = watch(sys, a);
    const db = watch(sys, b);
    sys.send(a, 'stop');
    sys.send(b, 'stop');
    await until(() => da.length === 1 && db.length === 1, 'both stopped');
    assert.equal(da[0]!.reason, 'normal');
    assert.deepEqual(db[0]!.reason, { message: 'custom', code: 'X' });
    assert.equal(sys.crashes, 1, "'normal' is not a crash, anything else is");
  });

  it('a call handled while stopping still gets its reply', async () => {
    const sys = system();
    const pid = sys.spawn((m, ctx) => {
      ctx.stop('shutdown');
      return `bye ${m}`;
    });
    assert.equal(await sys.call(pid, 'x'), 'bye x');
    await until(() => !sys.isAlive(pid), 'stopped');
  });

  it('an actor that keeps sending itself messages still stops', async () => {
    const sys = system();
    const handled: unknown[] = [];
    // A ticking loop, the usual shape of a poller: every tick sends the next one (up to a limit,
    // so that a runtime that never stops it fails this test instead of running out of memory).
    const pid = sys.spawn((m, ctx) => {
      handled.push(m);
      if (m === 'stop') ctx.stop();
      else if ((m as number) < 100_000) ctx.send(ctx.self, (m as number) + 1);
    });
    const downs = watch(sys, pid);
    sys.send(pid, 0);
    await until(() => handled.length >= 10, 'ticking');
    sys.send(pid, 'stop');
    await until(() => downs.length === 1, 'the ticking actor stopped');
    const after = handled.slice(handled.indexOf('stop') + 1);
    assert.deepEqual(after, [], `${after.length} messages handled after stop`);
    assert.equal(downs[0]!.reason, 'normal');
  });

  // Erlang's {stop, Reason, State}: the actor ends after the message that asked for it. Messages
  // still in its mailbox are not handled; calls among them reject with FND_ERR_ACTOR_EXITED.
  for (const style of ['sync', 'async'] as const) {
    it(`nothing after the message that called ctx.stop is handled (${style} handler)`, async () => {
      const sys = system();
      const handled: unknown[] = [];
      let afterCall: ReturnType<typeof track<unknown>> | undefined;
      const onStop = (ctx: ActorContext) => {
        ctx.stop();
        ctx.send(ctx.self, 'sent after stop');
        afterCall = track(sys.call(ctx.self, 'called after stop'));
      };
      const pid = sys.spawn(
        style === 'sync'
          ? (m, ctx) => {
              handled.push(m);
              if (m === 'stop') onStop(ctx);
              return `re: ${m}`;
            }
          : async (m, ctx) => {
              handled.push(m);
              await new Promise((r) => setImmediate(r));
              if (m === 'stop') onStop(ctx);
              return `re: ${m}`;
            },
      );
      const downs = watch(sys, pid);
      sys.send(pid, 'a');
      const stopCall = track(sys.call(pid, 'stop'));
      sys.send(pid, 'b');
      const queued = track(sys.call(pid, 'c'));
      await until(() => downs.length === 1, 'stopped');
      await flushIO();
      assert.equal(downs[0]!.reason, 'normal');
      assert.deepEqual(handled, ['a', 'stop'], 'nothing is handled after the stopping message');
      assert.equal(fulfilled(stopCall, 'the call that stopped the actor'), 're: stop');
      rejectedWith(queued, 'FND_ERR_ACTOR_EXITED', 'a call queued behind the stop');
      rejectedWith(afterCall!, 'FND_ERR_ACTOR_EXITED', 'a call made after the stop');
    });
  }
});

describe('errors are coded', () => {
  it('invalid behaviours and mailbox options are refused with FND_ERR_INVALID_OPTION', () => {
    const sys = system();
    assert.throws(
      () => sys.spawn(42 as never),
      (e) => e instanceof FoundationError && e.code === 'FND_ERR_INVALID_OPTION',
    );
    assert.throws(
      () => sys.spawn(() => {}, { mailbox: { max: 0, overflow: 'reject' } }),
      (e) => e instanceof FoundationError && e.code === 'FND_ERR_INVALID_OPTION',
    );
    assert.equal(sys.size, 0);
  });
});
