// node.state on the in-memory network: named CRDTs converge across members, survive partitions
// (anti-entropy repairs what the split kept apart) and a member's crash, notify subscribers, and a
// malicious member cannot make a node hold unbounded or malformed state.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FoundationNode, isFoundationError, STATE_LIMITS } from '../../src/index.js';
import { STATE_KIND } from '../../src/state/store.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const code = (c: string) => (err: unknown) => isFoundationError(err) && err.code === c;

describe('node.state', () => {
  it('counters, sets, registers and maps converge on every member; subscribers see remote changes', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const seen: number[] = [];
      cc.state.counter('hits').subscribe((v) => seen.push(v));
      a.state.counter('hits').increment(2);
      b.state.counter('hits').increment(3);
      a.state.pncounter('stock').increment(10);
      b.state.pncounter('stock').decrement(4);
      a.state.set<string>('tags').add('x');
      b.state.set<string>('tags').add('y');
      a.state.register<{ v: number }>('cfg').set({ v: 1 });
      c.clock.tick(1);
      b.state.register<{ v: number }>('cfg').set({ v: 2 }); // later HLC stamp: wins
      a.state.map('carts', 'orset').add('u1', 'apple');
      b.state.map('carts', 'orset').add('u2', 'pear');
      const same = () =>
        c.nodes.every(
          (n) =>
            n.state.counter('hits').value() === 5 &&
            n.state.pncounter('stock').value() === 6 &&
            n.state.set('tags').values().length === 2 &&
            JSON.stringify(n.state.register('cfg').get()) === '{"v":2}' &&
            n.state.map('carts', 'orset').keys().length === 2,
        );
      await tickUntil(c.clock, c.net, same, 'converged');
      assert.deepEqual(cc.state.set('tags').values(), ['x', 'y']);
      assert.deepEqual(cc.state.map('carts', 'orset').value(), { u1: ['apple'], u2: ['pear'] });
      assert.equal(seen.at(-1), 5);
      assert.ok(seen.length >= 1);
      // A remove of what was seen removes everywhere.
      cc.state.set('tags').remove('x');
      cc.state.map('carts', 'orset').delete('u1');
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every(
            (n) =>
              n.state.set('tags').values().join() === 'y' &&
              n.state.map('carts', 'orset').keys().join() === 'u2',
          ),
        'removes converged',
      );
    } finally {
      await c.stop();
    }
  });

  it('both sides of a partition keep writing; after heal every member has every write', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      c.net.partition([a.address, b.address], [cc.address, d.address]);
      await tickUntil(
        c.clock,
        c.net,
        () => a.members().filter((m) => m.status === 'down').length === 2,
        'split seen',
      );
      a.state.counter('n').increment(1);
      d.state.counter('n').increment(10);
      a.state.set('s').add('from-a');
      d.state.set('s').add('from-d');
      d.state.map('m', 'pncounter').increment('k', 5);
      b.state.map('m', 'pncounter').decrement('k', 2);
      await c.clock.tickAsync(50);
      assert.equal(b.state.counter('n').value(), 1, 'the split keeps d’s write from b');
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every(
            (n) =>
              n.state.counter('n').value() === 11 &&
              n.state.set('s').values().length === 2 &&
              n.state.map('m', 'pncounter').get('k') === 3,
          ),
        'healed and converged',
      );
    } finally {
      await c.stop();
    }
  });

  it("a member's contributions stay after it stops", async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      cc.state.counter('n').increment(7);
      a.state.counter('n').increment(1);
      await tickUntil(c.clock, c.net, () => b.state.counter('n').value() === 8, 'replicated');
      await cc.stop();
      await tickUntil(
        c.clock,
        c.net,
        () => a.members().every((m) => m.name !== 'c' || m.status !== 'alive'),
        'c gone',
      );
      b.state.counter('n').increment(1);
      await tickUntil(c.clock, c.net, () => a.state.counter('n').value() === 9, 'still counts c');
    } finally {
      await c.stop();
    }
  });

  it('replicas agree on elements added in any key order, and on map counters near the safe range', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      a.state.set('objs').add({ x: 1, y: 2 });
      b.state.set('objs').add({ y: 2, x: 1 });
      // Each increment is safe where it is made; the three together are not.
      a.state.map('m', 'gcounter').increment('k', Number.MAX_SAFE_INTEGER - 1);
      b.state.map('m', 'gcounter').increment('k', 1);
      cc.state.map('m', 'gcounter').increment('k', 3);
      const form = (n: FoundationNode) => JSON.stringify(n.state.set('objs').values());
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.state.set('objs').values().length === 1),
        'the element everywhere',
      );
      for (let i = 0; i < 30; i++) {
        await c.clock.tickAsync(100);
        await c.net.settle();
      }
      // One element, in one form, on every member (each had kept the key order it was added in).
      for (const n of c.nodes) assert.equal(form(n), '[{"x":1,"y":2}]', n.name);
      // A join that would take a map's counter past a safe integer is refused, as for counters.
      for (const n of c.nodes) {
        const k = n.state.map('m', 'gcounter').get('k');
        assert.ok(Number.isSafeInteger(k), `${n.name}: ${String(k)}`);
      }
    } finally {
      await c.stop();
    }
  });

  it('local misuse gets coded errors', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      a.state.counter('x');
      assert.throws(() => a.state.set('x'), code('FND_ERR_STATE_TYPE'));
      assert.throws(() => a.state.map('m', 'lww').increment('k'), code('FND_ERR_STATE_TYPE'));
      assert.throws(() => a.state.counter('x').increment(-1), code('FND_ERR_INVALID_OPTION'));
      assert.throws(() => a.state.counter('x').increment(1.5), code('FND_ERR_INVALID_OPTION'));
      a.state.counter('x').increment(Number.MAX_SAFE_INTEGER - 1);
      assert.throws(() => a.state.counter('x').increment(2), code('FND_ERR_STATE_LIMIT'));
      assert.throws(() => a.state.register('r').set(() => 1), code('FND_ERR_INVALID_OPTION'));
      assert.throws(
        () => a.state.register('r').set('x'.repeat(STATE_LIMITS.maxValueBytes)),
        code('FND_ERR_STATE_LIMIT'),
      );
      assert.throws(() => a.state.counter('n'.repeat(300)), code('FND_ERR_STATE_LIMIT'));
      // Lone surrogates: UTF-8 on the wire would turn them into U+FFFD on every other member.
      assert.throws(() => a.state.set('s').add('\ud800'), code('FND_ERR_INVALID_OPTION'));
      assert.throws(
        () => a.state.register('r').set({ '\udc00': 1 }),
        code('FND_ERR_INVALID_OPTION'),
      );
      assert.throws(
        () => a.state.map('m2', 'gcounter').increment('\ud83d'),
        code('FND_ERR_STATE_LIMIT'),
      );
      assert.throws(() => a.state.counter('\ud800'), code('FND_ERR_STATE_LIMIT'));
    } finally {
      await c.stop();
    }
  });

  it('a malicious member cannot exceed the limits, poison a counter, push the clock forward or change a kind', async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      a.state.counter('hits').increment(1);
      await tickUntil(c.clock, c.net, () => m.state.counter('hits').value() === 1, 'replicated');
      const send = (p: unknown) => m.messenger.send('a', STATE_KIND, p);
      const now = Math.floor(c.clock.wallNow());
      // Wrong kind for an existing object; an unsafe total; negative entries; garbage.
      send({ t: 'd', items: [['hits', 'orset', [[], [[], []]]]] });
      send({ t: 'd', items: [['hits', 'gcounter', [['m~1', Number.MAX_SAFE_INTEGER]]]] });
      send({ t: 'd', items: [['hits', 'gcounter', [['m~1', -5]]]] });
      send({ t: 'd', items: [['hits', 'gcounter', { evil: true }]] });
      send(['d', 1, 2]);
      // A register stamped an hour ahead would win every later write: refused.
      send({ t: 'd', items: [['cfg', 'lww', ['evil', now + 3_600_000, 0, 'm~1']]] });
      // An object over maxUnitsPerObject in one message.
      const huge = Array.from({ length: STATE_LIMITS.maxUnitsPerObject + 1 }, (_, i) => [
        `r${i}`,
        1,
      ]);
      send({ t: 'd', items: [['big', 'gcounter', huge]] });
      // Too many items in one message.
      const many = Array.from({ length: STATE_LIMITS.maxItemsPerMessage + 1 }, (_, i) => [
        `o${i}`,
        'gcounter',
        [],
      ]);
      send({ t: 'd', items: many });
      // More objects than maxObjects, in allowed-size messages: the excess is refused.
      for (let i = 0; i < STATE_LIMITS.maxObjects / STATE_LIMITS.maxItemsPerMessage + 2; i++) {
        const items = Array.from({ length: STATE_LIMITS.maxItemsPerMessage }, (_, j) => [
          `flood-${i}-${j}`,
          'gcounter',
          [['m~1', 1]],
        ]);
        send({ t: 'd', items });
      }
      await c.clock.tickAsync(50);
      await c.net.settle();
      assert.equal(a.state.counter('hits').value(), 1);
      assert.equal(a.state.names().includes('cfg'), false);
      assert.equal(a.state.names().includes('big'), false);
      assert.equal(a.state.names().length, STATE_LIMITS.maxObjects);
      assert.ok(a.state.names().includes('flood-0-0'), 'the flood is accepted up to the limit');
      assert.throws(() => a.state.counter('one-more'), code('FND_ERR_STATE_LIMIT'));
      // The node still works: its own object still replicates.
      a.state.counter('hits').increment(1);
      await tickUntil(c.clock, c.net, () => m.state.counter('hits').value() === 2, 'still works');
    } finally {
      await c.stop();
    }
  });

  it("a malicious member cannot use up a node's dots or push its clock's counter out of range", async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const send = (p: unknown) => m.messenger.send('a', STATE_KIND, p);
      const now = Math.floor(c.clock.wallNow());
      // A context claiming a's own dots up to the safe limit, and a register stamped with the
      // largest counter: both refused, so a's set keeps issuing fresh dots and its clock stays
      // in range (its later writes are not refused by the others).
      a.state.set('tags').add('x');
      send({
        t: 'd',
        items: [['tags', 'orset', [[], [[[a.state.replicaId, Number.MAX_SAFE_INTEGER]], []]]]],
      });
      send({
        t: 'd',
        items: [['r2', 'lww', ['evil', now + 1000, Number.MAX_SAFE_INTEGER, 'm~1']]],
      });
      await c.clock.tickAsync(50);
      await c.net.settle();
      a.state.set('tags').add('y');
      a.state.set('tags').add('z');
      a.state.register('r2').set('later');
      await tickUntil(
        c.clock,
        c.net,
        () => m.state.set('tags').values().length === 3 && m.state.register('r2').get() === 'later',
        'later adds and writes replicate',
      );
      assert.deepEqual(a.state.set('tags').values(), ['x', 'y', 'z']);
    } finally {
      await c.stop();
    }
  });
});
