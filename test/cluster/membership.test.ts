import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DiscoveryContext, FoundationNode, Member } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { aliveCount, memCluster, statusOf } from '../helpers/mem-cluster.js';

type Seen = Array<{
  observer: string;
  event: string;
  member: string;
  previous: string | undefined;
}>;

function record(nodes: FoundationNode[]): Seen {
  const seen: Seen = [];
  for (const n of nodes) {
    for (const event of ['memberUp', 'memberSuspect', 'memberDown', 'memberLeft'] as const) {
      n.on(event, (m: Member, info) =>
        seen.push({ observer: n.name, event, member: m.name, previous: info.previous }),
      );
    }
  }
  return seen;
}

describe('membership (in-memory network, manual clock)', () => {
  it('five nodes joining through one seed all see five alive members', async () => {
    const c = await memCluster(5);
    try {
      await c.tick(500);
      for (const n of c.nodes)
        assert.equal(aliveCount(n), 5, `${n.name} sees ${JSON.stringify(n.members())}`);
      const self = c.nodes[2]!.members().find((m) => m.self);
      assert.equal(self?.name, 'n2');
    } finally {
      await c.stopAll();
    }
  });

  it('a crashed node is suspected, then declared down by every other node', async () => {
    const c = await memCluster(5);
    try {
      await c.tick(300);
      const seen = record(c.nodes);
      c.net.crash(c.nodes[4]!.address);
      await c.tick(2000);
      for (const n of c.nodes.slice(0, 4))
        assert.equal(statusOf(n, 'n4'), 'down', `${n.name} view of n4`);
      const downs = seen.filter((s) => s.event === 'memberDown' && s.member === 'n4');
      assert.equal(new Set(downs.map((d) => d.observer)).size, 4);
      // Somebody went through suspicion first (SWIM never jumps straight from alive to down).
      assert.ok(seen.some((s) => s.event === 'memberSuspect' && s.member === 'n4'));
      for (const n of c.nodes.slice(0, 4)) assert.equal(aliveCount(n), 4);
    } finally {
      await c.stopAll();
    }
  });

  it('a suspected node refutes with a higher incarnation and is never declared down', async () => {
    // Long suspicion timeouts so the refutation has time to travel after the partition heals.
    const c = await memCluster(4, { membership: { suspicionMinMs: 4000, suspicionMaxMs: 6000 } });
    try {
      await c.tick(300);
      const seen = record(c.nodes);
      const target = c.nodes[3]!;
      const before = target.incarnation;
      const others = c.nodes.slice(0, 3).map((n) => n.address);
      c.net.partition([target.address], others);
      // Probe order is random: tick until someone has probed n3 and suspects it (well before the
      // 4 s suspicion timeout could declare it down).
      const suspected = () => c.nodes.slice(0, 3).some((n) => statusOf(n, 'n3') === 'suspect');
      for (let t = 0; t < 2500 && !suspected(); t += 50) await c.tick(50);
      assert.ok(
        c.nodes.slice(0, 3).some((n) => statusOf(n, 'n3') === 'suspect'),
        'n3 should be suspected while cut off',
      );
      c.net.heal();
      await c.tick(2000);
      for (const n of c.nodes) assert.equal(statusOf(n, 'n3'), 'alive', `${n.name} view of n3`);
      assert.ok(target.incarnation > before, 'n3 refuted with a higher incarnation');
      assert.equal(seen.filter((s) => s.event === 'memberDown').length, 0);
      const n3 = c.nodes[0]!.members().find((m) => m.name === 'n3');
      assert.equal(n3?.incarnation, target.incarnation);
    } finally {
      await c.stopAll();
    }
  });

  it('a partition makes each side declare the other down; after healing everyone is alive again', async () => {
    const c = await memCluster(5);
    try {
      await c.tick(300);
      const a = c.nodes.slice(0, 3);
      const b = c.nodes.slice(3);
      c.net.partition(
        a.map((n) => n.address),
        b.map((n) => n.address),
      );
      await c.tick(4000);
      for (const n of a) {
        assert.equal(statusOf(n, 'n3'), 'down');
        assert.equal(statusOf(n, 'n4'), 'down');
        assert.equal(aliveCount(n), 3);
      }
      for (const n of b) {
        assert.equal(statusOf(n, 'n0'), 'down');
        assert.equal(aliveCount(n), 2);
      }
      c.net.heal();
      await c.tick(5000);
      for (const n of c.nodes)
        assert.equal(aliveCount(n), 5, `${n.name} sees ${JSON.stringify(n.members())}`);
    } finally {
      await c.stopAll();
    }
  });

  it('a graceful stop is seen as left at once, without any clock tick', async () => {
    const c = await memCluster(3);
    try {
      await c.tick(300);
      const seen = record(c.nodes);
      await c.nodes[2]!.stop();
      await c.net.settle();
      for (const n of c.nodes.slice(0, 2)) assert.equal(statusOf(n, 'n2'), 'left');
      assert.deepEqual(
        seen.filter((s) => s.member === 'n2').map((s) => s.event),
        ['memberLeft', 'memberLeft'],
      );
      // And it stays left: no suspicion or down follows.
      await c.tick(3000);
      for (const n of c.nodes.slice(0, 2)) assert.equal(statusOf(n, 'n2'), 'left');
      assert.equal(seen.filter((s) => s.event !== 'memberLeft').length, 0);
    } finally {
      await c.stopAll();
    }
  });

  it('a node restarted with the same name rejoins with a higher incarnation', async () => {
    const c = await memCluster(3);
    try {
      await c.tick(300);
      const old = c.nodes[2]!;
      const oldInc = old.incarnation;
      c.net.crash(old.address);
      await c.tick(2500);
      assert.equal(statusOf(c.nodes[0]!, 'n2'), 'down');
      await old.stop();
      const seen = record(c.nodes.slice(0, 2));
      const again = await c.start('n2');
      await again.join(c.nodes[0]!.address);
      await c.tick(500);
      assert.ok(again.incarnation > oldInc);
      for (const n of c.nodes.slice(0, 2)) {
        const m = n.members().find((x) => x.name === 'n2');
        assert.equal(m?.status, 'alive');
        assert.equal(m?.incarnation, again.incarnation);
        assert.equal(m?.address, again.address);
      }
      assert.equal(aliveCount(again), 3);
      assert.deepEqual(
        seen.filter((s) => s.member === 'n2').map((s) => [s.event, s.previous]),
        [
          ['memberUp', 'down'],
          ['memberUp', 'down'],
        ],
      );
    } finally {
      await c.stopAll();
    }
  });

  it('a node whose event loop stalls 500 ms (local preset) is not declared down, and suspects nobody', async () => {
    // n3 runs on its own clock so it can stall while the others keep time.
    const c = await memCluster(3);
    const ownClock = new ManualClock();
    ownClock.tick(c.clock.now());
    const slow = await c.start('n3', { clock: ownClock });
    await slow.join(c.nodes[0]!.address);
    const both = async (ms: number) => {
      for (let t = 0; t < ms; t += 10) {
        ownClock.tick(10);
        await c.clock.tickAsync(10);
        await c.net.settle();
      }
    };
    try {
      await both(500);
      for (const n of c.nodes)
        assert.equal(aliveCount(n), 4, `${n.name}: ${JSON.stringify(n.members())}`);
      const seen = record(c.nodes);
      // Stall: nothing reaches n3 and none of its timers run for 500 ms.
      c.net.pause(slow.address);
      await c.tick(500);
      ownClock.stall(500);
      c.net.resume(slow.address);
      // As in Node's event loop after a stall: overdue timers fire before pending I/O is read.
      ownClock.tick(1);
      await both(3000);
      assert.deepEqual(
        seen.filter((s) => s.event === 'memberDown'),
        [],
        'nobody may be declared down',
      );
      assert.equal(
        seen.filter((s) => s.observer === 'n3' && s.event === 'memberSuspect').length,
        0,
        'the stalled node must not suspect the others',
      );
      for (const n of c.nodes) assert.equal(aliveCount(n), 4);
    } finally {
      await c.stopAll();
    }
  });

  it('a stalled node does not condemn a member whose refutation waits unread in its socket', async () => {
    // n0..n2 suspect slowly; n3 suspects fast, so its suspicion of n2 expires while it is stalled.
    const slowSuspicion = { membership: { suspicionMinMs: 6000, suspicionMaxMs: 8000 } };
    const c = await memCluster(3, slowSuspicion);
    const ownClock = new ManualClock();
    ownClock.tick(c.clock.now());
    const n3 = await c.start('n3', {
      clock: ownClock,
      membership: { suspicionMinMs: 300, suspicionMaxMs: 300 },
    });
    await n3.join(c.nodes[0]!.address);
    const step = async () => {
      ownClock.tick(10);
      await c.clock.tickAsync(10);
      await c.net.settle();
    };
    try {
      for (let i = 0; i < 50; i++) await step();
      const n2 = c.nodes[2]!;
      const seen = record([n3]);
      c.net.partition(
        [n2.address],
        c.nodes.filter((n) => n !== n2).map((n) => n.address),
      );
      for (let i = 0; i < 200 && statusOf(n3, 'n2') !== 'suspect'; i++) await step();
      assert.equal(statusOf(n3, 'n2'), 'suspect', 'n3 suspects the cut-off n2');
      // n2 comes back while n3 stalls: n2 learns it is suspected and refutes; n3's copy waits.
      c.net.heal();
      c.net.pause(n3.address);
      const before = n2.incarnation;
      let stalled = 0;
      for (
        ;
        stalled < 5000 &&
        c.nodes[0]!.members().find((m) => m.name === 'n2')?.incarnation === before;
        stalled += 10
      ) {
        await c.clock.tickAsync(10);
        await c.net.settle();
      }
      assert.ok(n2.incarnation > before, 'n2 refuted');
      // Stall long enough that n3's 300 ms suspicion timer is overdue when it wakes up.
      const total = Math.max(stalled + 50, 600);
      await c.tick(total - stalled);
      ownClock.stall(total);
      c.net.resume(n3.address);
      ownClock.tick(1); // overdue timers first, then the unread refutation
      assert.ok(n3.health > 0, 'n3 noticed its own stall (Lifeguard local health)');
      for (let i = 0; i < 100; i++) await step();
      assert.equal(statusOf(n3, 'n2'), 'alive');
      assert.deepEqual(
        seen.filter((s) => s.event === 'memberDown'),
        [],
        'n3 must not declare n2 down on a timer that fired late',
      );
    } finally {
      await c.stopAll();
    }
  });

  it('discovery disconnect forgets a down member at once and only probes an alive one', async () => {
    const c = await memCluster(3);
    let ctx: DiscoveryContext | undefined;
    const watcher = await c.start('w', {
      discovery: {
        name: 'capture',
        start(x) {
          ctx = x;
        },
        stop() {},
      },
    });
    try {
      await watcher.join(c.nodes[0]!.address);
      await c.tick(300);
      assert.equal(aliveCount(watcher), 4);
      const gone = c.nodes[2]!;
      c.net.crash(gone.address);
      await c.tick(2500);
      assert.equal(statusOf(watcher, 'n2'), 'down');
      const parse = (s: string) => ({ host: s.split(':')[0]!, port: Number(s.split(':')[1]) });
      ctx!.disconnect(parse(gone.address));
      assert.equal(statusOf(watcher, 'n2'), undefined, 'forgotten');
      ctx!.disconnect(parse(c.nodes[1]!.address));
      await c.tick(500);
      assert.equal(statusOf(watcher, 'n1'), 'alive', 'an alive member stays');
      // ...until it is declared down: then it is dropped at once, not retried for downRetentionMs.
      c.net.crash(c.nodes[1]!.address);
      await c.tick(2500);
      assert.equal(statusOf(watcher, 'n1'), undefined, 'an unlisted member is forgotten when down');
      assert.equal(
        statusOf(c.nodes[0]!, 'n1'),
        'down',
        'others (no discovery change) keep it as down',
      );
    } finally {
      await c.stopAll();
    }
  });
});
