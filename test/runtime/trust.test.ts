// Trust between nodes in the actor layer (issue 7, section 2): a third member that has the secret
// crafts actor signals through its own real messenger and tries to detach a supervisor from its
// child, fire, remove or redirect monitors it does not own, flood a trapping actor with exit
// signals, and crash the built-in `foundation.node` service with requests it cannot handle. Each
// attack used to succeed; each is now refused, counted, and costs nobody but the attacker.
// In-memory network and manual clock: deterministic, no sleeping.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isFoundationError, NODE_SERVICE } from '../../src/index.js';
import type { FoundationNode } from '../../src/node.js';
import type { DownMessage, ExitMessage, GenServer } from '../../src/runtime/behaviour.js';
import { ACTOR_KINDS, DEFAULT_SIGNAL_BUDGET, monitorRef } from '../../src/runtime/remote.js';
import { Supervisor } from '../../src/runtime/supervisor.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

/** The attacker's raw signal: positional, exactly as a node puts it on the wire. */
function craft(attacker: FoundationNode, to: string, signal: unknown[]): void {
  attacker.messenger.send(to, ACTOR_KINDS.signal, signal);
}

/** Lets the network and clock run until `p` settles (then await it or assert on it). */
async function settled(cl: MeshedCluster, p: Promise<unknown>): Promise<void> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await tickUntil(cl.clock, cl.net, () => done, 'a reply');
}

/** `depth` arrays inside each other. */
function nested(depth: number): unknown {
  let v: unknown = 'deep';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** A child that runs until told to crash. */
const worker = (): GenServer => ({
  handleCast(msg) {
    if (msg === 'crash') throw new Error('child crashed');
  },
});

describe('actor signals between nodes: only the owner of a pid speaks for it', () => {
  let cl: MeshedCluster;
  let a: FoundationNode;
  let b: FoundationNode;
  let c: FoundationNode; // the attacker: a member with the secret
  const settle = (cond: () => boolean, what: string) => tickUntil(cl.clock, cl.net, cond, what);
  /**
   * Resolves once everything `from` sent to `to` so far has been handled there: a call travels
   * behind earlier messages and signals of the same pair, and signals are handled on arrival.
   */
  const barrier = async (from: FoundationNode, to: FoundationNode) => {
    const echo = to.spawn((m) => m);
    const reply = from.call(echo, 'sync');
    await settled(cl, reply);
    assert.equal(await reply, 'sync');
    to.exit(echo, 'kill');
  };

  before(async () => {
    cl = await startMeshedCluster(['a', 'b', 'c']);
    [a, b, c] = cl.nodes as [FoundationNode, FoundationNode, FoundationNode];
  });
  after(() => cl.stop());

  it('a third node cannot unlink a supervisor from its child: the crashed child is restarted', async () => {
    const sup = await Supervisor.start(b.actors, {
      children: [{ id: 'w', start: () => worker() }],
    });
    const child = sup.whichChildren()[0]!.pid!;
    // Both directions: "the supervisor unlinks from the child" and "the child unlinks from it".
    craft(c, 'b', ['unlink', ['b', sup.pid.id], child.id]);
    craft(c, 'b', ['unlink', ['b', child.id], sup.pid.id]);
    await barrier(c, b);
    b.cast(child, 'crash');
    await settle(() => {
      const now = sup.whichChildren()[0]!.pid;
      return now !== undefined && now.id !== child.id;
    }, 'the child restarted by its supervisor');
    assert.ok(b.actors.refused.forged >= 2, 'counted as forged');
    await sup.stop();
  });

  it('an EXIT look-alike sent as a plain message does not make a supervisor restart or drop a running child', async () => {
    const sup = await Supervisor.start(b.actors, {
      children: [{ id: 'w', start: () => worker() }],
    });
    const child = sup.whichChildren()[0]!.pid!;
    const before = b.actors.size;
    c.send(sup.pid, { type: 'EXIT', from: { node: 'b', id: child.id }, reason: 'forged' });
    c.send(sup.pid, { type: 'EXIT', from: { node: 'c', id: 1 }, reason: 'forged' });
    // A call queues behind the two sends (same sender, same pair): when it answers, they were handled.
    const counts = c.call(sup.pid, { op: 'countChildren' });
    await settled(cl, counts);
    assert.equal(((await counts) as { value: { active: number } }).value.active, 1);
    assert.equal(sup.alive, true, 'the supervisor did not shut down');
    assert.equal(sup.whichChildren()[0]!.pid!.id, child.id, 'the running child was kept');
    assert.equal(b.actors.size, before, 'no second copy of the child was started');
    await sup.stop();
  });

  it('a third node cannot fire a monitor on a live actor, even knowing the ref', async () => {
    const target = b.spawn(() => {});
    const downs: DownMessage[] = [];
    const ref = a.monitor(target, (d) => downs.push(d));
    // Worst case: the ref leaked. A DOWN "from" the attacker's own pid, and one about b's pid.
    craft(c, 'a', ['down', ref, ['c', 1], 'forged']);
    craft(c, 'a', ['down', ref, ['b', target.id], 'forged']);
    await barrier(c, a);
    assert.equal(downs.length, 0, 'no DOWN while the actor lives');
    assert.equal(a.actors.refused.forged, 2, 'both counted as forged');
    b.exit(target, 'real-reason');
    await settle(() => downs.length === 1, 'the real DOWN');
    assert.equal(downs[0]!.reason, 'real-reason');
    assert.equal(downs[0]!.ref, ref);
  });

  it("a third node cannot remove or redirect another node's monitor", async () => {
    const target = b.spawn(() => {});
    const downs: DownMessage[] = [];
    const ref = a.monitor(target, (d) => downs.push(d));
    await barrier(a, b); // the monitor is in place on b
    const forgedBefore = b.actors.refused.forged;
    craft(c, 'b', ['demonitor', ref, target.id]); // remove it ...
    craft(c, 'b', ['monitor', ref, target.id]); // ... or take it over
    await barrier(c, b);
    b.exit(target, 'gone');
    await settle(() => downs.length === 1, "a's DOWN");
    assert.equal(downs[0]!.reason, 'gone');
    assert.equal(b.actors.refused.forged - forgedBefore, 2, 'both counted as forged');
  });

  it('monitor refs are random (≥ 64 bits), not a counter another node could guess', () => {
    const refs = Array.from({ length: 2000 }, () => monitorRef());
    assert.equal(new Set(refs).size, refs.length);
    for (const r of refs) assert.match(r, /^[A-Za-z0-9_-]{16}$/, '96 bits, base64url');
    const t = a.spawn(() => {});
    const r1 = a.monitor(t, () => {});
    const r2 = a.monitor(t, () => {});
    assert.doesNotMatch(r1, /a#\d+/);
    assert.notEqual(r1.slice(0, 12), r2.slice(0, 12));
  });

  it('a call on behalf of a pid of another node is refused (FND_ERR_SIGNAL_FORGED)', async () => {
    const echo = b.spawn((m) => m);
    const forged = c.messenger.request('b', ACTOR_KINDS.call, [echo.id, 'hi', ['a', 1]]);
    await settled(cl, forged);
    await assert.rejects(forged, (err: unknown) => isFoundationError(err, 'FND_ERR_SIGNAL_FORGED'));
    const ok = c.messenger.request('b', ACTOR_KINDS.call, [echo.id, 'hi', ['c', 7]]);
    await settled(cl, ok);
    assert.equal(await ok, 'hi');
  });

  it(`100k exit signals to a trapping actor: at most ${DEFAULT_SIGNAL_BUDGET} wait, the rest are dropped and counted; other nodes' signals still arrive`, async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const got: ExitMessage[] = [];
    const victim = b.spawn(
      {
        init: () => gate, // busy until released: everything waits in the mailbox
        handleInfo: (m) => {
          got.push(m as ExitMessage);
        },
      },
      { trapExits: true, mailbox: { max: 50, overflow: 'reject' } },
    );
    const N = 100_000;
    for (let i = 0; i < N; i++) craft(c, 'b', ['exit', ['c', 1], victim.id, 'spam', 0]);
    await barrier(c, b);
    assert.equal(b.actors.mailboxDepth(), DEFAULT_SIGNAL_BUDGET, 'the budget, not 100k');
    assert.equal(b.actors.refused.overflow, N - DEFAULT_SIGNAL_BUDGET, 'the rest counted');
    // Someone else's signal is not starved by the attacker's flood.
    a.exit(victim, 'from-a');
    await barrier(a, b);
    assert.equal(b.actors.mailboxDepth(), DEFAULT_SIGNAL_BUDGET + 1, "a's signal queued");
    const actor = b.actors.actorById(victim.id)!;
    release();
    await settle(() => got.length === DEFAULT_SIGNAL_BUDGET + 1, 'mailbox drained');
    assert.equal(got.filter((m) => m.reason === 'from-a').length, 1);
    assert.equal(
      actor.remoteSystemWaiting('c'),
      0,
      'the budget is given back as messages are handled',
    );
    // Once drained, the attacker's node may signal again (the policy is a budget, not a ban).
    craft(c, 'b', ['exit', ['c', 1], victim.id, 'again', 0]);
    await settle(() => got.length === DEFAULT_SIGNAL_BUDGET + 2, 'a later signal');
    b.exit(victim, 'kill');
  });
});

describe('built-in services validate their input', () => {
  let cl: MeshedCluster;
  let a: FoundationNode;
  let c: FoundationNode;

  before(async () => {
    cl = await startMeshedCluster(['a', 'c']);
    [a, c] = cl.nodes as [FoundationNode, FoundationNode];
  });
  after(() => cl.stop());

  it('a BigInt sent 12× to foundation.node gets a coded error each time; the service keeps running', async () => {
    const service = a.whereis(NODE_SERVICE)!;
    // What the messenger hands the actor layer when a frame carried msgpack's BigInt extension.
    for (let i = 0; i < 12; i++) {
      const reply = a.actors.handleRemoteRequest(
        ACTOR_KINDS.call,
        [NODE_SERVICE, 2n ** 70n, ['c', 1]],
        'c',
      ) as Promise<unknown>;
      await settled(cl, reply);
      await assert.rejects(reply, (err: unknown) => isFoundationError(err, 'FND_ERR_BAD_REQUEST'));
    }
    assert.equal(a.whereis(NODE_SERVICE)?.id, service.id, 'same service, never restarted');
    assert.equal(a.root.alive, true);
    assert.equal(a.actors.crashes, 0);
  });

  it('bad requests over the real messenger get FND_ERR_BAD_REQUEST; the service still answers info', async () => {
    const service = a.whereis(NODE_SERVICE)!;
    const bad: unknown[] = [
      'nope',
      42,
      null,
      { op: 'info' },
      ['info'],
      'x'.repeat(100_000),
      { toJSON: 'not a function' },
      nested(40),
      9007199254740993n, // fits in int64: arrives as a number
      -1.5,
      true,
      {},
    ];
    for (const msg of bad) {
      const reply = c.call({ name: NODE_SERVICE, node: 'a' }, msg, { timeout: 2000 });
      await settled(cl, reply);
      await assert.rejects(reply, (err: unknown) => {
        assert.ok(isFoundationError(err, 'FND_ERR_BAD_REQUEST'), String(err));
        assert.ok(!(err as Error).message.includes('xxxxxxxxxx'), 'the request is not echoed');
        return true;
      });
    }
    const info = c.call<{ name: string }>({ name: NODE_SERVICE, node: 'a' }, 'info');
    await settled(cl, info);
    assert.equal((await info).name, 'a');
    assert.equal(a.whereis(NODE_SERVICE)?.id, service.id);
  });

  it('supervisor requests from another node are checked: bad ids and ops get coded errors, no echo', async () => {
    const sup = await Supervisor.start(a.actors, {
      children: [{ id: 'w', start: () => worker() }],
    });
    for (const req of [
      { op: 'terminateChild', id: 2n ** 70n },
      { op: 'terminateChild', id: { nested: true } },
      { op: 2n ** 70n },
      { op: 'x'.repeat(5000) },
      'garbage',
    ]) {
      const reply = a.actors.handleRemoteRequest(
        ACTOR_KINDS.call,
        [sup.pid.id, req, ['c', 1]],
        'c',
      );
      await settled(cl, reply as Promise<unknown>);
      const value = (await reply) as { ok: boolean; error: { code: string; data: unknown } };
      assert.equal(value.ok, false);
      assert.equal(value.error.code, 'FND_ERR_SUPERVISOR');
      // The reply must be encodable: no BigInt or huge string echoed back.
      assert.doesNotThrow(() => JSON.stringify(value));
      assert.ok(JSON.stringify(value).length < 2000);
    }
    assert.equal(sup.whichChildren()[0]!.pid !== undefined, true);
    await sup.stop();
  });
});
