// Typed behaviours: the protocol `spawn` infers from a behaviour flows to the pid, so `call`,
// `cast` and `send` are checked at compile time and replies are typed without a cast; the same
// through supervisors' child specs. The compile-time half is the build itself: every
// `@ts-expect-error` below must be an error (else tsc fails on the unused directive) and every
// `Expect<Equal<...>>` must hold. The runtime half checks that the typed calls do what they say.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  ActorRef,
  CallMessage,
  ExitMessage,
  GenServer,
  Protocol,
  ReplyOf,
} from '../../src/runtime/behaviour.js';
import type { Pid } from '../../src/runtime/pid.js';
import { type ChildSpec, Supervisor } from '../../src/runtime/supervisor.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

/** Holds lines that must not compile (`@ts-expect-error`): checked by tsc, never run. */
function compileOnly(_lines: () => unknown): void {}

function system(): ActorSystem {
  return new ActorSystem({ nodeName: 'n', clock: new ManualClock(), log: createLogger('silent') });
}

class Cache
  implements GenServer<{ get: string } | { put: string; value: number }, never, number | undefined>
{
  private readonly map = new Map<string, number>();
  handleCall(msg: { get: string } | { put: string; value: number }): number | undefined {
    if ('get' in msg) return this.map.get(msg.get);
    this.map.set(msg.put, msg.value);
    return msg.value;
  }
}

describe('typed behaviours', () => {
  it('a GenServer object literal: state on this, call and cast checked, reply typed', async () => {
    const sys = system();
    const counter = sys.spawn({
      n: 0,
      handleCall(msg: 'get'): number {
        return msg === 'get' ? this.n : -1;
      },
      handleCast(by: number) {
        this.n += by;
      },
    });
    type _reply = Expect<Equal<ReplyOf<typeof counter>, number>>;
    type _call = Expect<Equal<CallMessage<typeof counter>, 'get'>>;
    sys.cast(counter, 5);
    compileOnly(() => {
      // @ts-expect-error: the counter casts numbers only
      sys.cast(counter, 'five');
    });
    const n = await sys.call(counter, 'get');
    type _n = Expect<Equal<typeof n, number>>;
    assert.equal(n, 5);
    compileOnly(() => {
      // @ts-expect-error: 'set' is not a call the counter answers
      sys.call(counter, 'set');
    });
    compileOnly(() => {
      // @ts-expect-error: it has no handleInfo, so a plain send is refused at compile time
      sys.send(counter, 'hello');
    });
  });

  it('a class: the protocol comes from its callbacks', async () => {
    const sys = system();
    const cache = sys.spawn(new Cache());
    const put = await sys.call(cache, { put: 'a', value: 1 });
    const got = await sys.call(cache, { get: 'a' });
    type _got = Expect<Equal<typeof got, number | undefined>>;
    assert.equal(put, 1);
    assert.equal(got, 1);
    compileOnly(() => {
      // @ts-expect-error: not a message Cache answers
      sys.call(cache, { delete: 'a' });
    });
    const awaited = await sys.spawnAsync(new Cache());
    type _awaited = Expect<Equal<typeof awaited, typeof cache>>;
  });

  it('a plain handler: its message type is what call, cast and send take', async () => {
    const sys = system();
    const len = sys.spawn(async (msg: string) => msg.length);
    const r = await sys.call(len, 'four');
    type _r = Expect<Equal<typeof r, number>>;
    assert.equal(r, 4);
    compileOnly(() => {
      // @ts-expect-error: the handler takes strings
      sys.send(len, 4);
    });
  });

  it('untyped use keeps working: unknown messages, unknown replies, call<R> as an assertion', async () => {
    const sys = system();
    const echo = sys.spawn(async (msg) => msg);
    const r = await sys.call(echo, { any: 'thing' });
    type _r = Expect<Equal<typeof r, unknown>>;
    assert.deepEqual(r, { any: 'thing' });
    sys.register('echo', echo);
    const s = await sys.call<string>('echo', 'by name');
    type _s = Expect<Equal<typeof s, string>>;
    assert.equal(s, 'by name');
    // A GenServer whose reply depends on `this` without a return annotation still compiles (the
    // protocol is then untyped): annotate the reply type to get it checked.
    const loose = sys.spawn({
      n: 1,
      handleCall() {
        return this.n;
      },
    });
    assert.equal(await sys.call(loose, 'whatever'), 1);
    // A typed pid widens to Pid where one is expected.
    const pids: Pid[] = [echo, loose, sys.spawn(new Cache())];
    assert.equal(pids.length, 3);
  });

  it('an ActorRef types a name, local or on another node, without a cast', async () => {
    const sys = system();
    sys.spawn(new Cache(), { name: 'cache' });
    const ref: ActorRef<
      Protocol<{ get: string } | { put: string; value: number }, number | undefined>
    > = { name: 'cache', node: 'n' };
    await sys.call(ref, { put: 'k', value: 7 });
    const v = await sys.call(ref, { get: 'k' });
    type _v = Expect<Equal<typeof v, number | undefined>>;
    assert.equal(v, 7);
    compileOnly(() => {
      // @ts-expect-error: the ref's protocol does not answer this
      sys.call(ref, 'get');
    });
  });

  it('ctx.call and ctx.spawn inside an actor are typed the same way', async () => {
    const sys = system();
    const double = sys.spawn((x: number) => x * 2);
    const outer = sys.spawn({
      async handleCall(x: number, ctx): Promise<number> {
        const inner = ctx.spawn((y: number) => y + 1);
        const a = await ctx.call(double, x);
        const b = await ctx.call(inner, a);
        type _b = Expect<Equal<typeof b, number>>;
        return b;
      },
    });
    assert.equal(await sys.call(outer, 20), 41);
  });
});

describe('typed supervisor child specs', () => {
  it('sup.child(id) is typed by the spec with that id; startChild by its spec', async () => {
    const sys = system();
    const lines: string[] = [];
    const sup = await Supervisor.start(sys, {
      children: [
        { id: 'cache', start: () => new Cache() },
        {
          id: 'writer',
          options: { trapExits: true },
          start: () => ({
            buffer: [] as string[],
            handleCast(line: string) {
              this.buffer.push(line);
            },
            handleCall(_msg: 'flush'): number {
              lines.push(...this.buffer);
              return this.buffer.length;
            },
            handleInfo(_msg: ExitMessage) {},
          }),
        },
      ],
    });
    const writer = sup.child('writer');
    assert.ok(writer);
    sys.cast(writer, 'a line');
    compileOnly(() => {
      // @ts-expect-error: the writer casts strings
      sys.cast(writer, 42);
    });
    const flushed = await sys.call(writer, 'flush');
    type _flushed = Expect<Equal<typeof flushed, number>>;
    assert.equal(flushed, 1);
    assert.deepEqual(lines, ['a line']);
    const cache = sup.child('cache');
    assert.ok(cache);
    assert.equal(await sys.call(cache, { put: 'x', value: 3 }), 3);
    compileOnly(() => {
      // @ts-expect-error: no child spec with that id was given at start
      sup.child('nope');
    });
    const echo = await sup.startChild({ id: 'echo', start: () => (m: string) => m.toUpperCase() });
    assert.equal(await sys.call(echo, 'hi'), 'HI');
    // Children added later are reachable untyped.
    const untyped = (sup as Supervisor).child('echo');
    assert.ok(untyped);
    // A plain ChildSpec[] is the untyped form: any id, unknown protocol.
    const specs: ChildSpec[] = [{ id: 'x', start: () => async (m) => m }];
    const plain = await Supervisor.start(sys, { children: specs });
    const x = plain.child('x');
    assert.ok(x);
    assert.equal(await sys.call(x, 'anything'), 'anything');
    await plain.stop();
    await sup.stop();
  });
});
