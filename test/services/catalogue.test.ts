// The service catalogue on the in-memory network: a service published on one node is listed on
// every node with its version, actions, meta, capabilities and health; it goes when withdrawn or
// when its node goes down; health changes replicate and unhealthy endpoints get no calls; a
// malicious member's oversized or malformed catalogue entries are refused before being kept.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundationNode } from '../../src/index.js';
import { SVC_KINDS } from '../../src/services/wire.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';

describe('service catalogue', () => {
  it('replicates services with version, actions, meta, capabilities and health to every node', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      a.service(
        'greeter',
        { hello: (n: string) => `hi ${n}`, ping: { handler: () => 'pong', idempotent: true } },
        { version: '2', meta: { region: 'eu' }, capabilities: ['gpu'] },
      );
      b.service('greeter', { hello: (n: string) => `hey ${n}` }, { version: '1' });
      await tickUntil(
        c.clock,
        c.net,
        () => cc.services.list({ name: 'greeter' }).length === 2,
        'c sees both',
      );
      const rows = cc.services.list({ name: 'greeter' });
      assert.deepEqual(
        rows.map((r) => [r.node, r.version, r.actions.join(','), r.health, r.status]),
        [
          ['a', '2', 'hello,ping', 'ok', 'alive'],
          ['b', '1', 'hello', 'ok', 'alive'],
        ],
      );
      assert.deepEqual(rows[0]!.meta, { region: 'eu' });
      assert.deepEqual(
        cc.services.list({ capability: 'gpu' }).map((r) => r.node),
        ['a'],
      );
      assert.deepEqual(
        cc.services.list({ version: '1' }).map((r) => r.node),
        ['b'],
      );
      assert.deepEqual(
        cc.services.list({ node: 'a' }).map((r) => r.name),
        ['greeter'],
      );
    } finally {
      await c.stop();
    }
  });

  it("a stopping node's services are withdrawn at the start of its stop, not when it leaves", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('s2', { y: () => 2 });
      // The rest of b's stop takes 2 s of simulated time: a child that traps exits and whose
      // terminate never finishes is killed after its shutdown timeout.
      await b.root.startChild({
        id: 'slow',
        start: () => ({
          init(ctx: { trapExits: boolean }) {
            ctx.trapExits = true;
          },
          terminate: () => new Promise<void>(() => {}),
        }),
        shutdown: 2000,
      });
      await tickUntil(c.clock, c.net, () => a.services.list().length === 1, 's2 listed');
      const stopping = b.stop();
      await tickUntil(c.clock, c.net, () => a.services.list().length === 0, 's2 withdrawn', {
        maxMs: 1000,
      });
      assert.equal(a.members().find((m) => m.name === 'b')?.status, 'alive', 'b is still a member');
      await c.clock.tickAsync(2500);
      await stopping;
    } finally {
      await c.stop();
    }
  });

  it('drops a withdrawn service and every service of a node that goes down', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const h = a.service('s1', { x: () => 1 });
      b.service('s2', { y: () => 2 });
      await tickUntil(c.clock, c.net, () => cc.services.list().length === 2, 'both listed');
      h.stop();
      await tickUntil(c.clock, c.net, () => cc.services.list().length === 1, 's1 withdrawn');
      c.net.partition([b.address], [a.address, cc.address]);
      await tickUntil(c.clock, c.net, () => cc.services.list().length === 0, 's2 gone with b', {
        maxMs: 60_000,
      });
      await rejectsWithCode(cc.services.call('s2.y'), 'FND_ERR_SERVICE_NOT_FOUND');
    } finally {
      await c.stop();
    }
  });

  it('replicates health; unhealthy endpoints get no calls and all-unhealthy is SERVICE_UNAVAILABLE', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const ha = a.service('w', { who: () => 'a' });
      let bHealth: 'ok' | 'unhealthy' = 'ok';
      b.service('w', { who: () => 'b' }, { health: { check: () => bHealth, intervalMs: 100 } });
      await tickUntil(c.clock, c.net, () => cc.services.list({ name: 'w' }).length === 2, 'listed');
      bHealth = 'unhealthy';
      await tickUntil(
        c.clock,
        c.net,
        () => cc.services.list({ name: 'w', node: 'b' })[0]?.health === 'unhealthy',
        'b unhealthy seen by c',
      );
      for (let i = 0; i < 6; i++) {
        const p = cc.services.call('w.who');
        await tickUntil(c.clock, c.net, () => true, 'deliver');
        assert.equal(await p, 'a');
      }
      ha.setHealth('unhealthy');
      await tickUntil(
        c.clock,
        c.net,
        () => cc.services.list({ name: 'w', available: true }).length === 0,
        'none available',
      );
      await rejectsWithCode(cc.services.call('w.who'), 'FND_ERR_SERVICE_UNAVAILABLE');
    } finally {
      await c.stop();
    }
  });

  it('refuses bad service definitions with a coded error naming the field', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      assert.throws(() => a.service('has.dot', { x: () => 1 }), { code: 'FND_ERR_INVALID_OPTION' });
      assert.throws(() => a.service('s', { x: 5 as never }), /"x"/);
      assert.throws(
        () => a.service('s', { x: () => 1 }, { meta: { big: 'x'.repeat(5000) } }),
        /"meta"/,
      );
      a.service('s', { x: () => 1 });
      assert.throws(() => a.service('s', { x: () => 1 }), /already offered/);
    } finally {
      await c.stop();
    }
  });

  it("refuses a malicious member's malformed or oversized catalogue entries before keeping them", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('good', { x: () => 1 });
      await tickUntil(c.clock, c.net, () => a.services.list().length === 1, 'good listed');
      // b (has the secret) sends crafted replication deltas through its own messenger.
      const bad = [
        { version: '1', actions: 'nope', events: [], meta: {}, capabilities: [], health: 'ok' },
        {
          version: '1',
          actions: [],
          events: [],
          meta: { x: 'y'.repeat(10_000) },
          capabilities: [],
          health: 'ok',
        },
        { version: '1', actions: [], events: [], meta: {}, capabilities: [], health: 'dead' },
        {
          version: '1',
          actions: Array.from({ length: 300 }, (_, i) => ({ name: `a${i}` })),
          events: [],
          meta: {},
          capabilities: [],
          health: 'ok',
        },
      ];
      const epoch = (b as unknown as { dist: { epoch: number } }).dist.epoch;
      // Find b's current seq by pulling its digest state: send deltas after a fresh snapshot.
      b.messenger.send('a', SVC_KINDS.catalogue, { t: 'pull' });
      await tickUntil(c.clock, c.net, () => true, 'pull');
      let seq = 1;
      for (const v of bad) {
        b.messenger.send('a', SVC_KINDS.catalogue, {
          t: 'snap',
          epoch,
          seq: 100 + seq,
          first: true,
          last: true,
          entries: [
            {
              k: 'good',
              v: {
                version: '1',
                actions: [{ name: 'x' }],
                events: [],
                meta: {},
                capabilities: [],
                health: 'ok',
              },
            },
            { k: `evil${seq}`, v },
            // A valid entry in the same message: the snapshot is applied, only the bad entry dropped.
            {
              k: 'also',
              v: {
                version: '1',
                actions: [],
                events: [],
                meta: {},
                capabilities: [],
                health: 'ok',
              },
            },
          ],
        });
        seq++;
      }
      await tickUntil(c.clock, c.net, () => true, 'deliver');
      assert.deepEqual(
        a.services.list().map((r) => r.name),
        ['also', 'good'],
      );
    } finally {
      await c.stop();
    }
  });
});
