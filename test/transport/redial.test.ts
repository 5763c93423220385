import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RawConnection, Transport } from '../../src/index.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import type { PeerManager } from '../../src/transport/peers.js';
import { memCluster } from '../helpers/mem-cluster.js';
import { testPeerManager } from '../helpers/peers.js';
import { until } from '../helpers/proc.js';

describe('re-dialling a peer that went away', () => {
  it('keeps its jittered backoff while the application keeps sending (no dial per message)', async () => {
    const c = await memCluster(2);
    let connects = 0;
    const inner = c.net.transport();
    const counting: Transport = {
      listen: (a, on) => inner.listen(a, on),
      connect: (a, t) => {
        connects++;
        return inner.connect(a, t);
      },
      close: () => inner.close(),
    };
    const x = await c.start('x', { transport: counting });
    try {
      await x.join(c.nodes[0]!.address);
      await c.tick(300);
      const target = c.nodes[1]!;
      c.net.crash(target.address);
      await c.net.settle();
      const before = connects;
      // Still a member for a while (suspicion takes time): the app keeps sending to it.
      for (let i = 0; i < 500; i++) {
        try {
          x.messenger.send('n1', 'ping', i);
        } catch {
          break; // declared down: sends are refused from then on
        }
        await c.net.settle(); // each send in its own turn, after the previous dial failed
        if (i % 50 === 0) await c.tick(10);
      }
      const dials = connects - before;
      assert.ok(dials < 20, `${dials} connection attempts for 500 sends`);
    } finally {
      await c.stopAll();
    }
  });
});

describe('a join() racing a control dial to the same peer', () => {
  it('keeps one control connection, and remove() closes it', async () => {
    const net = new InMemoryNetwork();
    const opened: string[] = [];
    const closed: string[] = [];
    const b = testPeerManager(
      net.transport(),
      { cluster: 'c', name: 'B', incarnation: 1, address: { host: 'b', port: 1 } },
      {},
      {
        accept: (hello) => {
          opened.push(hello.channel);
          return undefined;
        },
        linkDown: (_name, channel, dir) => {
          if (dir === 'in') closed.push(channel);
        },
      },
    );
    const addrB = await b.listen({ host: 'b', port: 1 });
    // As membership does: the node a join() reached is learned, which adopts join's link.
    const a: PeerManager = testPeerManager(
      net.transport(),
      { cluster: 'c', name: 'A', incarnation: 1, address: { host: 'a', port: 1 } },
      {},
      { dialled: (peer) => void a.learn(peer.name, addrB, peer.incarnation) },
    );
    await a.listen({ host: 'a', port: 1 });
    try {
      const joined = a.join(addrB);
      // In the same turn, membership hears of B (a SYNC) and keeps it connected: a control dial.
      a.learn('B', addrB, 1);
      a.keepAlive('B', true);
      await joined;
      await net.settle();
      await new Promise((r) => setTimeout(r, 50));
      await net.settle();
      assert.deepEqual(
        opened.filter((ch) => ch === 'control').length,
        2,
        'both dials reached B (the race happened)',
      );
      a.remove('B');
      await net.settle();
      await new Promise((r) => setTimeout(r, 50));
      await net.settle();
      assert.deepEqual(closed.sort(), opened.sort(), 'every connection A made to B is closed');
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('a re-dial refused by this node’s own dial rate', () => {
  it('is not a failed re-dial: the peer is not reported unreachable, and is re-dialled later', async () => {
    const net = new InMemoryNetwork();
    const inner = net.transport();
    const accepted: RawConnection[] = [];
    const tracking: Transport = {
      listen: (a, on) =>
        inner.listen(a, (conn) => {
          accepted.push(conn);
          on(conn);
        }),
      connect: (a, t) => inner.connect(a, t),
      close: () => inner.close(),
    };
    const b = testPeerManager(tracking, {
      cluster: 'c',
      name: 'B',
      incarnation: 1,
      address: { host: 'b', port: 1 },
    });
    const addrB = await b.listen({ host: 'b', port: 1 });
    const events: string[] = [];
    const a = testPeerManager(
      net.transport(),
      { cluster: 'c', name: 'A', incarnation: 1, address: { host: 'a', port: 1 } },
      {
        dialLimits: { ratePerSec: 5, burst: 1, backoffBaseMs: 100, backoffMaxMs: 1000 },
        unreachableAfterMs: 5000,
      },
      {
        unreachable: (n, why) => events.push(`unreachable ${n}: ${why}`),
        reachable: (n) => events.push(`reachable ${n}`),
      },
    );
    await a.listen({ host: 'a', port: 1 });
    try {
      a.learn('B', addrB, 1);
      a.keepAlive('B', true); // the control dial takes the only token
      await until(() => accepted.length === 1, 10_000, 'the control connection');
      // B drops it (B is up and listening): A re-dials at once, and its limiter has no token yet.
      for (const c of accepted) c.destroy();
      await until(() => accepted.length === 2, 10_000, 'the re-dial, once a token came');
      assert.deepEqual(events, []);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
