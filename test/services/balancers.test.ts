// Each load balancer on its own (deterministic: seeded random numbers, given latencies), then
// across nodes: per-service and per-call balancer choice, and suspect endpoints skipped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  consistentHash,
  type Endpoint,
  type FoundationNode,
  leastLatency,
  preferLocal,
  random,
  roundRobin,
} from '../../src/index.js';
import { LatencyStats } from '../../src/services/balancers.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';
import { done } from './util.js';

const ep = (node: string, local = false): Endpoint => ({
  node,
  service: 's',
  local,
  info: { version: '1', actions: [], events: [], meta: {}, capabilities: [], health: 'ok' },
});
const EPS = [ep('a'), ep('b'), ep('c')];
const noLatency = { key: undefined, latency: () => undefined };

/** A seeded PRNG (mulberry32): the same sequence in every run. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('balancers', () => {
  it('round-robin visits every endpoint in turn', () => {
    const b = roundRobin();
    const got = Array.from({ length: 6 }, () => b.pick(EPS, noLatency).node);
    assert.deepEqual(got, ['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('random spreads calls over all endpoints', () => {
    const b = random(seeded(7));
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const n = b.pick(EPS, noLatency).node;
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    for (const n of ['a', 'b', 'c'])
      assert.ok((counts.get(n) ?? 0) > 800, `${n}: ${counts.get(n)}`);
  });

  it('least-latency prefers the endpoint with the lower EWMA and still tries unmeasured ones', () => {
    const stats = new LatencyStats();
    for (let i = 0; i < 10; i++) {
      stats.observe('a', 5);
      stats.observe('b', 50);
      stats.observe('c', 100);
    }
    const b = leastLatency(seeded(3));
    const ctx = { key: undefined, latency: (n: string) => stats.get(n) };
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const n = b.pick(EPS, ctx).node;
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    // Power of two choices: the slowest never wins a pair; the fastest wins every pair it is in.
    assert.equal(counts.get('c') ?? 0, 0);
    assert.ok((counts.get('a') ?? 0) > (counts.get('b') ?? 0) * 1.5, JSON.stringify([...counts]));
    // A new endpoint (no measurement yet) is picked whenever drawn.
    const d = ep('d');
    let sawD = false;
    for (let i = 0; i < 100 && !sawD; i++) sawD = b.pick([...EPS, d], ctx).node === 'd';
    assert.ok(sawD);
    // EWMA: a slow node that becomes fast is preferred again.
    for (let i = 0; i < 40; i++) stats.observe('c', 1);
    assert.ok((stats.get('c') ?? 99) < (stats.get('a') ?? 0));
  });

  it('consistent-hash sends a key to the same endpoint and moves only the keys of a removed one', () => {
    const b = consistentHash();
    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const pick = (eps: Endpoint[], key: string) =>
      b.pick(eps, { key, latency: () => undefined }).node;
    const before = new Map(keys.map((k) => [k, pick(EPS, k)]));
    for (const k of keys) assert.equal(pick(EPS, k), before.get(k), 'stable');
    const owners = new Set(before.values());
    assert.equal(owners.size, 3, 'keys spread over all endpoints');
    const without = EPS.filter((e) => e.node !== 'b');
    for (const k of keys) {
      const now = pick(without, k);
      if (before.get(k) !== 'b') assert.equal(now, before.get(k), `${k} moved needlessly`);
      else assert.notEqual(now, 'b');
    }
    // Order of the endpoint list does not matter.
    for (const k of keys.slice(0, 20)) assert.equal(pick([...EPS].reverse(), k), before.get(k));
  });

  it('prefer-local takes the local endpoint when there is one, else the inner balancer', () => {
    const b = preferLocal(roundRobin());
    const withLocal = [ep('a'), ep('b', true), ep('c')];
    for (let i = 0; i < 3; i++) assert.equal(b.pick(withLocal, noLatency).node, 'b');
    assert.deepEqual(
      [0, 1, 2].map(() => b.pick(EPS, noLatency).node),
      ['a', 'b', 'c'],
    );
  });
});

describe('balancing across nodes', () => {
  it('per service and per call; suspect endpoints are skipped', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      for (const n of [b, cc, d]) n.service('w', { who: () => n.name });
      a.service('w', { who: () => 'a' });
      await tickUntil(c.clock, c.net, () => a.services.list({ name: 'w' }).length === 4, 'listed');
      // Per call: consistent-hash with a key always reaches the same node.
      const k1 = await done(
        c,
        a.services.call('w.who', [], { balancer: 'consistent-hash', key: 'k1' }),
      );
      for (let i = 0; i < 5; i++)
        assert.equal(
          await done(c, a.services.call('w.who', [], { balancer: 'consistent-hash', key: 'k1' })),
          k1,
        );
      // Per service: prefer-local answers from a itself.
      a.services.configure('w', { balancer: 'prefer-local' });
      for (let i = 0; i < 3; i++) assert.equal(await done(c, a.services.call('w.who')), 'a');
      // A per-call balancer overrides the service's.
      const rr = new Set<string>();
      for (let i = 0; i < 8; i++)
        rr.add(await done(c, a.services.call('w.who', [], { balancer: 'round-robin' })));
      assert.deepEqual([...rr].sort(), ['a', 'b', 'c', 'd']);
      // d stops answering pings → suspect on a: no more calls go there.
      c.net.partition([d.address], [a.address, b.address, cc.address]);
      await tickUntil(
        c.clock,
        c.net,
        () => a.members().find((m) => m.name === 'd')?.status !== 'alive',
        'd suspect',
      );
      const seen = new Set<string>();
      for (let i = 0; i < 9; i++)
        seen.add(await done(c, a.services.call('w.who', [], { balancer: 'round-robin' })));
      assert.ok(!seen.has('d'), [...seen].join());
    } finally {
      await c.stop();
    }
  });
});
