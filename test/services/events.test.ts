// Service events on the in-memory network: emit reaches one instance of each listening service
// (balanced across its nodes), broadcast reaches every instance, wildcards match, the emitter's
// context reaches the handlers, and a withdrawn service stops listening.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { currentContext, type FoundationNode, withContext } from '../../src/index.js';
import { fillPubSub, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

describe('service events', () => {
  it('emit: one instance per listening service; broadcast: all; wildcards; context flows', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      const got: Array<[string, string, string, string, unknown]> = [];
      const listener =
        (svc: string, node: FoundationNode) =>
        (payload: unknown, info: { event: string; mode: string }) => {
          got.push([
            svc,
            node.name,
            info.event,
            info.mode,
            currentContext()?.values.requestId ?? payload,
          ]);
        };
      const handles = [a, b].map((n) =>
        n.service('mail', {}, { events: { 'user.created': listener('mail', n) } }),
      );
      cc.service('audit', {}, { events: { 'user.*': listener('audit', cc) } });
      await tickUntil(
        c.clock,
        c.net,
        () => d.pubsub.interestedNodes('$svc.e.user.created').length === 3,
        'interest',
      );
      for (let i = 0; i < 4; i++)
        withContext({ requestId: `r${i}` }, () => d.services.emit('user.created', i));
      await tickUntil(c.clock, c.net, () => got.length === 8, '8 deliveries');
      const mails = got.filter((g) => g[0] === 'mail');
      const audits = got.filter((g) => g[0] === 'audit');
      assert.equal(mails.length, 4, 'one mail instance per event');
      assert.equal(audits.length, 4);
      assert.deepEqual(
        new Set(mails.map((m) => m[1])),
        new Set(['a', 'b']),
        'balanced over a and b',
      );
      assert.deepEqual(
        mails.map((m) => m[4]).sort(),
        ['r0', 'r1', 'r2', 'r3'],
        'the emitter context reached the handler',
      );
      assert.ok(got.every((g) => g[2] === 'user.created' && g[3] === 'emit'));
      got.length = 0;
      d.services.broadcast('user.created', 'x');
      await tickUntil(c.clock, c.net, () => got.length === 3, 'broadcast to all 3');
      assert.deepEqual(got.map((g) => `${g[0]}@${g[1]}`).sort(), ['audit@c', 'mail@a', 'mail@b']);
      assert.ok(got.every((g) => g[3] === 'broadcast'));
      got.length = 0;
      d.services.emit('user.deleted', 1); // only audit's wildcard matches
      await tickUntil(c.clock, c.net, () => got.length === 1, 'wildcard');
      assert.equal(got[0]![0], 'audit');
      // Withdrawn services stop listening.
      for (const h of handles) h.stop();
      got.length = 0;
      await tickUntil(
        c.clock,
        c.net,
        () => d.pubsub.interestedNodes('$svc.b.user.created').length === 1,
        'withdrawn',
      );
      d.services.broadcast('user.created', 'y');
      await tickUntil(c.clock, c.net, () => got.length === 1, 'audit only');
      await c.clock.tickAsync(100);
      await c.net.settle();
      assert.deepEqual(
        got.map((g) => g[0]),
        ['audit'],
      );
    } finally {
      await c.stop();
    }
  });

  it('a throwing handler is logged and does not stop other deliveries', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let ok = 0;
      a.service(
        'bad',
        {},
        {
          events: {
            e: () => {
              throw new Error('handler bug');
            },
          },
        },
      );
      a.service('good', {}, { events: { e: () => void ok++ } });
      await tickUntil(
        c.clock,
        c.net,
        () => b.pubsub.interestedNodes('$svc.e.e').length === 1,
        'interest',
      );
      b.services.emit('e', 1);
      b.services.emit('e', 2);
      await tickUntil(c.clock, c.net, () => ok === 2, 'good got both');
    } finally {
      await c.stop();
    }
  });

  it('a service whose event listeners do not all fit in pub/sub keeps none of them', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      // Fill this node's pub/sub entries (maxEntriesPerNode) but for one: an event listener
      // needs two (one for emit, one for broadcast).
      const subs = fillPubSub(a);
      subs.pop()!.unsubscribe();
      assert.throws(() => a.service('s', {}, { events: { e: () => {} } }), {
        code: 'FND_ERR_DIST_LIMIT',
      });
      // The emit listener that did fit was let go with the service: its entry is free again.
      a.pubsub.subscribe('after', () => {}).unsubscribe();
      assert.deepEqual(a.pubsub.interestedNodes('$svc.e.e'), []);
    } finally {
      await c.stop();
    }
  });
});
