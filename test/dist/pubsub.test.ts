// Pub/sub on the in-memory network: delivery to handler and actor subscribers on every node,
// replicated interest (nodes without subscribers get nothing), NATS wildcards, queue groups (one
// member per message, cluster-wide), per publisher→subscriber order, unsubscribe, actor exit,
// publishLocal, and a malicious member's publish messages; plus multiCall and abcast.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matches } from '../../src/dist/pubsub.js';
import { DIST_KINDS } from '../../src/dist/wire.js';
import type { FoundationNode } from '../../src/index.js';
import { fillPubSub, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

/** Counts `dist:pub` messages each node receives (the interest test needs to see none arrive). */
function countPublishes(nodes: FoundationNode[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of nodes) {
    const m = n.messenger as unknown as {
      dispatch: (from: string, ch: string, msg: unknown[]) => void;
    };
    const orig = m.dispatch.bind(m);
    m.dispatch = (from, ch, msg) => {
      if (msg[1] === DIST_KINDS.publish) counts.set(n.name, (counts.get(n.name) ?? 0) + 1);
      orig(from, ch, msg);
    };
  }
  return counts;
}

describe('pubsub', () => {
  it('matches NATS wildcards', () => {
    const t = (p: string, s: string) => matches(p.split('.'), s.split('.'));
    assert.ok(t('orders.*', 'orders.new'));
    assert.ok(!t('orders.*', 'orders.new.eu'));
    assert.ok(!t('orders.*', 'orders'));
    assert.ok(t('orders.>', 'orders.new.eu'));
    assert.ok(!t('orders.>', 'orders'));
    assert.ok(t('*.new', 'orders.new'));
    assert.ok(t('a.b', 'a.b') && !t('a.b', 'a.c'));
  });

  it('reaches subscribers on every node, in order, and only nodes that have subscribers', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd', 'e']);
    try {
      const [a, b, cc, d, e] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      const counts = countPublishes(c.nodes);
      const got = new Map<string, unknown[]>();
      const rec = (k: string) => (msg: unknown) => got.set(k, [...(got.get(k) ?? []), msg]);
      b.pubsub.subscribe('orders.new', rec('b'));
      cc.pubsub.subscribe('orders.*', rec('c'));
      d.pubsub.subscribe('orders.>', rec('d'));
      const actorGot: unknown[] = [];
      const pid = b.spawn((m) => void actorGot.push(m));
      b.pubsub.subscribe('orders.new', pid);
      // e subscribes to something else only.
      e.pubsub.subscribe('billing.*', rec('e'));
      await tickUntil(
        c.clock,
        c.net,
        () => a.pubsub.interestedNodes('orders.new').join() === 'b,c,d',
        'interest replicated',
      );
      for (let i = 0; i < 50; i++) a.pubsub.publish('orders.new', i);
      a.pubsub.publish('orders.new.eu', 'deep');
      const seq = Array.from({ length: 50 }, (_, i) => i);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          (got.get('c')?.length ?? 0) === 50 &&
          (got.get('d')?.length ?? 0) === 51 &&
          actorGot.length === 50,
        'delivered',
      );
      assert.deepEqual(got.get('b'), seq);
      assert.deepEqual(got.get('c'), seq);
      assert.deepEqual(got.get('d'), [...seq, 'deep']);
      assert.deepEqual(actorGot, seq);
      assert.equal(got.get('e'), undefined);
      assert.equal(counts.get('e') ?? 0, 0, 'a node without matching subscribers receives nothing');
      assert.equal(counts.get('b'), 50, 'one message per node, however many subscribers it has');
    } finally {
      await c.stop();
    }
  });

  it('a queue group gets each message once, spread over its members on several nodes', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const got: Array<[string, unknown]> = [];
      b.pubsub.subscribe('jobs.*', (m) => got.push(['b1', m]), { queue: 'workers' });
      b.pubsub.subscribe('jobs.*', (m) => got.push(['b2', m]), { queue: 'workers' });
      cc.pubsub.subscribe('jobs.run', (m) => got.push(['c', m]), { queue: 'workers' });
      const all: unknown[] = [];
      cc.pubsub.subscribe('jobs.run', (m) => all.push(m));
      await tickUntil(
        c.clock,
        c.net,
        () => a.pubsub.interestedNodes('jobs.run').join() === 'b,c',
        'interest',
      );
      for (let i = 0; i < 30; i++) a.pubsub.publish('jobs.run', i);
      await tickUntil(
        c.clock,
        c.net,
        () => got.length === 30 && all.length === 30,
        'all delivered',
      );
      await c.clock.tickAsync(50);
      assert.equal(got.length, 30, 'each message to exactly one queue member');
      assert.deepEqual(
        got.map(([, m]) => m).sort((x, y) => (x as number) - (y as number)),
        Array.from({ length: 30 }, (_, i) => i),
      );
      const by = (k: string) => got.filter(([w]) => w === k).length;
      assert.ok(
        by('b1') > 0 && by('b2') > 0 && by('c') > 0,
        `spread: ${by('b1')}/${by('b2')}/${by('c')}`,
      );
      assert.deepEqual(
        all,
        Array.from({ length: 30 }, (_, i) => i),
        'plain subscribers still get every message',
      );
    } finally {
      await c.stop();
    }
  });

  it("queue groups' round-robin positions stay bounded however many queue names peers use", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      // 12 000 queue names, each with one member on b (a job id per queue, say).
      for (let i = 0; i < 12_000; i++) b.pubsub.subscribe('jobs.run', () => {}, { queue: `q${i}` });
      await tickUntil(
        c.clock,
        c.net,
        () => a.pubsub.interestedNodes('jobs.run').join() === 'b',
        'interest',
      );
      for (let i = 0; i < 20; i++) {
        await c.clock.tickAsync(100);
        await c.net.settle();
      }
      a.pubsub.publish('jobs.run', 1);
      const rr = (a.pubsub as unknown as { rr: Map<string, number> }).rr;
      assert.ok(rr.size > 0 && rr.size <= 10_000, `${rr.size} round-robin positions`);
    } finally {
      await c.stop();
    }
  });

  it('at maxEntriesPerNode, changes that never pass the limit reach peers whole', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const subs = fillPubSub(a);
      const last = `fill.${subs.length - 1}`;
      await tickUntil(
        c.clock,
        c.net,
        () => b.pubsub.interestedNodes(last).length === 1,
        'b holds all of a',
      );
      // In one go, never above the limit on a: leave fill.0, join new, leave fill.1, rejoin fill.0.
      subs[0]!.unsubscribe();
      a.pubsub.subscribe('new.one', () => {});
      subs[1]!.unsubscribe();
      a.pubsub.subscribe('fill.0', () => {});
      await tickUntil(
        c.clock,
        c.net,
        () =>
          b.pubsub.interestedNodes('new.one').join() === 'a' &&
          b.pubsub.interestedNodes('fill.1').length === 0,
        'b has the changes',
      );
      assert.deepEqual(b.pubsub.interestedNodes('fill.0'), ['a']);
    } finally {
      await c.stop();
    }
  });

  it('unsubscribe and actor exit withdraw interest; publishLocal stays local', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const got: unknown[] = [];
      const sub = b.pubsub.subscribe('t', (m) => got.push(m));
      const pid = b.spawn(() => {});
      b.pubsub.subscribe('u', pid);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          a.pubsub.interestedNodes('t').join() === 'b' &&
          a.pubsub.interestedNodes('u').join() === 'b',
        'interest',
      );
      sub.unsubscribe();
      sub.unsubscribe();
      b.exit(pid, 'kill');
      await tickUntil(
        c.clock,
        c.net,
        () =>
          a.pubsub.interestedNodes('t').length === 0 && a.pubsub.interestedNodes('u').length === 0,
        'withdrawn',
      );
      const local: unknown[] = [];
      a.pubsub.subscribe('t', (m) => local.push(m));
      b.pubsub.subscribe('t', (m) => got.push(m));
      await tickUntil(c.clock, c.net, () => a.pubsub.interestedNodes('t').length === 2, 'both');
      a.pubsub.publishLocal('t', 'here');
      await c.clock.tickAsync(50);
      assert.deepEqual(local, ['here']);
      assert.deepEqual(got, []);
      assert.throws(() => a.pubsub.publish('t.*', 1), { code: 'FND_ERR_INVALID_OPTION' });
      assert.throws(() => a.pubsub.subscribe('a.>.b', () => {}), {
        code: 'FND_ERR_INVALID_OPTION',
      });
      assert.throws(() => a.pubsub.subscribe('a..b', () => {}), { code: 'FND_ERR_INVALID_OPTION' });
    } finally {
      await c.stop();
    }
  });

  it('a malicious publish (bad shape, too many queues, huge topic) is dropped; a subscriber that throws harms no one', async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const got: unknown[] = [];
      a.pubsub.subscribe('t', () => {
        throw new Error('bad subscriber');
      });
      a.pubsub.subscribe('t', (x) => got.push(x));
      m.messenger.send('a', DIST_KINDS.publish, { topic: 't', msg: 1 }); // not the wire shape
      m.messenger.send('a', DIST_KINDS.publish, ['x'.repeat(100_000), 1]);
      m.messenger.send('a', DIST_KINDS.publish, [
        't',
        2,
        Array.from({ length: 1000 }, (_, i) => `q${i}`),
      ]);
      m.messenger.send('a', DIST_KINDS.publish, ['t', 4, 'q', 'extra']);
      m.messenger.send('a', DIST_KINDS.publish, ['t', 3]);
      await tickUntil(c.clock, c.net, () => got.length > 0, 'valid one delivered');
      assert.deepEqual(got, [3]);
    } finally {
      await c.stop();
    }
  });
});

describe('multiCall and abcast', () => {
  it('collects replies per node and failures per node', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const casts: string[] = [];
      for (const n of c.nodes.slice(0, 2)) {
        n.spawn(
          {
            handleCall: () => `hi from ${n.name}`,
            handleCast: (m) => void casts.push(`${n.name}:${m}`),
          },
          { name: 'svc' },
        );
      }
      const r = await (async () => {
        const p = a.multiCall<string>('svc', 'hello', { timeout: 1000 });
        let done: Awaited<typeof p> | undefined;
        p.then((v) => {
          done = v;
        });
        await tickUntil(c.clock, c.net, () => done !== undefined, 'multiCall');
        return done!;
      })();
      assert.deepEqual([...r.replies].sort(), [
        ['a', 'hi from a'],
        ['b', 'hi from b'],
      ]);
      assert.deepEqual([...r.failed.keys()], ['c']);
      assert.equal(r.failed.get('c')?.code, 'FND_ERR_NOPROC');
      b.abcast('svc', 'ping');
      await tickUntil(c.clock, c.net, () => casts.length === 2, 'abcast');
      assert.deepEqual(casts.sort(), ['a:ping', 'b:ping']);
    } finally {
      await c.stop();
    }
  });
});
