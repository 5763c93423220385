// Trust between nodes in the actor layer, with real processes over real TCP on 127.0.0.1: a third
// member (it has the secret) crafts actor signals through its own messenger and tries to detach a
// supervisor from its child, remove, redirect or fire another node's monitor, and flood a trapping
// actor with 100k exit signals. Each attempt is refused; the legitimate nodes see what they should.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Event, NodeProc, until } from '../helpers/proc.js';

// Deadlines are liveness limits, not performance assertions.
const FORM_MS = 20_000;
const STEP_MS = 30_000;
const BUDGET = 1024; // DEFAULT_SIGNAL_BUDGET

async function run(p: NodeProc, c: Event, ms = STEP_MS): Promise<Event> {
  const id = p.command(c);
  return p.waitFor((e) => e.event === 'result' && e.id === id, ms, `result of ${c.cmd}`);
}

// biome-ignore lint/suspicious/noExplicitAny: values are free-form JSON from the child
async function ok(p: NodeProc, c: Event, ms?: number): Promise<any> {
  const r = await run(p, c, ms);
  assert.equal(r.ok, true, `${p.name} ${c.cmd}: ${r.code} ${r.message}`);
  return r.value;
}

describe('actor trust across real processes', () => {
  const cluster = `itt-${process.pid}-${Date.now()}`;
  const procs: NodeProc[] = [];
  let a: NodeProc;
  let b: NodeProc;
  let evil: NodeProc;
  /** A counter on b that the attacker calls to know its earlier messages were handled there. */
  let barrierOnB: Event;
  let barrierOnA: Event;

  /** Everything `from` sent to the node of `target` so far has been handled (same connection, in order). */
  const barrier = (from: NodeProc, target: Event) =>
    ok(from, { cmd: 'call', to: target, msg: 'get' });

  before(async () => {
    for (const name of ['ta', 'tb', 'tc']) procs.push(new NodeProc(name, ['--cluster', cluster]));
    [a, b, evil] = procs as [NodeProc, NodeProc, NodeProc];
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', FORM_MS, 'start')));
    for (const p of procs) {
      await until(
        async () => (await p.members()).filter((m) => m.status === 'alive').length === 3,
        FORM_MS,
        `${p.name} to see 3 alive`,
      );
    }
    barrierOnB = await ok(b, { cmd: 'spawn', kind: 'counter' });
    barrierOnA = await ok(a, { cmd: 'spawn', kind: 'counter' });
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('a third node cannot detach a supervisor from its child: the crashed child is restarted', async () => {
    const { sup, child } = await ok(b, { cmd: 'supervise', name: 'sup' });
    for (const payload of [
      ['unlink', ['tb', sup.id], child.id],
      ['unlink', ['tb', child.id], sup.id],
    ]) {
      await ok(evil, { cmd: 'wire', to: 'tb', wireKind: 'actor:signal', payload });
    }
    // And an EXIT look-alike as a plain message, "from" the child.
    await ok(evil, {
      cmd: 'send',
      to: sup,
      msg: { type: 'EXIT', from: child, reason: 'forged' },
    });
    await barrier(evil, barrierOnB);
    assert.deepEqual(await ok(b, { cmd: 'children', name: 'sup' }), [child], 'child kept');
    await ok(a, { cmd: 'cast', to: child, msg: { crash: 'real crash' } });
    let now: Event[] = [];
    await until(
      async () => {
        now = await ok(b, { cmd: 'children', name: 'sup' });
        return now[0] !== null && now[0]!.id !== child.id;
      },
      STEP_MS,
      'the supervisor to restart its child',
    );
    const stats = await ok(b, { cmd: 'stats' });
    assert.ok(
      stats.refused.forged >= 2,
      `forged signals counted: ${JSON.stringify(stats.refused)}`,
    );
  });

  it("a third node cannot remove, redirect or fire another node's monitor", async () => {
    const w = await ok(b, { cmd: 'spawn', kind: 'watcher' });
    const ref: string = await ok(a, { cmd: 'monitor', to: w });
    await barrier(a, barrierOnB); // the monitor is in place on tb
    // Even with the ref in hand (it is random: it would have to leak first).
    for (const payload of [
      ['demonitor', ref, w.id],
      ['monitor', ref, w.id],
    ]) {
      await ok(evil, { cmd: 'wire', to: 'tb', wireKind: 'actor:signal', payload });
    }
    await ok(evil, {
      cmd: 'wire',
      to: 'ta',
      wireKind: 'actor:signal',
      payload: ['down', ref, ['tc', 1], 'forged'],
    });
    await barrier(evil, barrierOnB);
    await barrier(evil, barrierOnA);
    assert.equal(a.events.filter((e) => e.event === 'down' && e.ref === ref).length, 0);
    await ok(b, { cmd: 'cast', to: w, msg: { stop: 'bye' } });
    const down = await a.waitFor(
      (e) => e.event === 'down' && e.ref === ref,
      STEP_MS,
      'the real DOWN',
    );
    assert.equal(down.reason, 'bye');
    await barrier(b, barrierOnA);
    assert.equal(a.events.filter((e) => e.event === 'down' && e.ref === ref).length, 1);
    assert.match(ref, /^[A-Za-z0-9_-]{16}$/, 'refs are random, not <node>#<counter>');
  });

  it(`100k exit signals to a trapping actor: ${BUDGET} wait, the rest are dropped and counted`, async () => {
    const stuck = await ok(b, {
      cmd: 'spawn',
      kind: 'stuck',
      trapExits: true,
      mailbox: { max: 50, overflow: 'reject' },
    });
    const N = 100_000;
    assert.equal(
      await ok(evil, {
        cmd: 'wire',
        to: 'tb',
        wireKind: 'actor:signal',
        payload: ['exit', ['tc', 1], stuck.id, 'spam', 0],
        repeat: N,
      }),
      N,
    );
    await barrier(evil, barrierOnB);
    const stats = await ok(b, { cmd: 'stats' });
    assert.equal(stats.mailboxDepth, BUDGET, 'the mailbox holds the budget, not 100k');
    assert.equal(stats.refused.overflow, N - BUDGET, 'the rest counted (the only flood on tb)');
    // Another node's exit signal still gets in.
    await ok(a, { cmd: 'exit', to: stuck, reason: 'from-ta' });
    await barrier(a, barrierOnB);
    assert.equal((await ok(b, { cmd: 'stats' })).mailboxDepth, BUDGET + 1);
  });
});
