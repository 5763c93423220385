// Resilience policies, each on its own: which failures are retried (unit), failover when the
// serving node dies mid-call (idempotent → another endpoint; not idempotent → FND_ERR_NODE_DOWN),
// retries of errors marked retryable, circuit breaker per endpoint (opens, skips, half-opens),
// bulkhead and rate limit on the serving node, fallback, and a malicious member's bad replies.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { FoundationError, type FoundationNode } from '../../src/index.js';
import { hash32 as hash } from '../../src/services/balancers.js';
import { isRetryable } from '../../src/services/resilience.js';
import { rejectsWithCode, track } from '../helpers/assert.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';
import { done, ready } from './util.js';

const coded = (
  code: ConstructorParameters<typeof FoundationError>[0],
  data?: Record<string, unknown>,
) => new FoundationError(code, undefined, data);

describe('retry rule', () => {
  it('fails over after "did not run" errors always, after "may have run" only when idempotent', () => {
    for (const code of [
      'FND_ERR_SERVICE_NOT_FOUND',
      'FND_ERR_BULKHEAD_FULL',
      'FND_ERR_RATE_LIMITED',
    ] as const) {
      assert.ok(isRetryable(coded(code, { remote: true }), false), code);
    }
    assert.ok(!isRetryable(coded('FND_ERR_NODE_DOWN'), false));
    assert.ok(isRetryable(coded('FND_ERR_NODE_DOWN'), true));
    assert.ok(isRetryable(coded('FND_ERR_NODE_UNREACHABLE'), true));
    assert.ok(!isRetryable(coded('FND_ERR_NODE_UNREACHABLE'), false));
    // Refused before it was sent: did not run, so any action fails over.
    assert.ok(isRetryable(coded('FND_ERR_NODE_UNREACHABLE', { sent: false }), false));
    assert.ok(!isRetryable(coded('FND_ERR_NODE_UNREACHABLE', { sent: true }), false));
    assert.ok(!isRetryable(coded('FND_ERR_SERVICE_ACTION', { retryable: false }), true));
    assert.ok(isRetryable(coded('FND_ERR_SERVICE_ACTION', { retryable: true }), true));
    assert.ok(!isRetryable(coded('FND_ERR_SERVICE_ACTION', { retryable: true }), false));
    assert.ok(!isRetryable(coded('FND_ERR_VALIDATION'), true));
    assert.ok(
      !isRetryable(coded('FND_ERR_REQUEST_TIMEOUT'), true),
      'no time is left after a timeout',
    );
    assert.ok(!isRetryable(coded('FND_ERR_NODE_STOPPED'), true), 'our own stop is final');
    assert.ok(!isRetryable(new Error('x'), true));
  });
});

describe('resilience across nodes', () => {
  it('fails over when the serving node dies mid-call (idempotent), else rejects with NODE_DOWN', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      const started: string[] = [];
      // Version 2 (on d) declares put idempotent; the calls below ask for version 1, where it is
      // not: d's flag must not let a retry repeat put.
      d.service('store', { put: { idempotent: true, handler: () => 'v2' } }, { version: '2' });
      for (const n of [b, cc]) {
        n.service(
          'store',
          {
            get: {
              idempotent: true,
              handler: () => {
                started.push(n.name);
                // b hangs (it is about to die); c answers.
                return n === b ? new Promise(() => {}) : `from ${n.name}`;
              },
            },
            put: () => {
              started.push(n.name);
              return n === b ? new Promise(() => {}) : 'ok';
            },
          },
          { version: '1' },
        );
      }
      await ready(c, a, 'store', 3);
      const opts = {
        balancer: 'consistent-hash' as const,
        key: 'k',
        timeout: 60_000,
        version: '1',
      };
      // A key that b serves, so the first attempt hangs there.
      let key = 'k0';
      for (let i = 0; consistentOwner(['b', 'c'], key) !== 'b'; i++) key = `k${i}`;
      const get = track(a.services.call('store.get', [], { ...opts, key }));
      const put = track(a.services.call('store.put', [], { ...opts, key }));
      await tickUntil(
        c.clock,
        c.net,
        () => started.filter((x) => x === 'b').length === 2,
        'both running on b',
      );
      c.net.partition([b.address], [a.address, cc.address, d.address]);
      await tickUntil(
        c.clock,
        c.net,
        () => get.result.state !== 'pending' && put.result.state !== 'pending',
        'settled',
        {
          maxMs: 60_000,
        },
      );
      assert.equal(await get.promise, 'from c');
      await rejectsWithCode(put.promise, 'FND_ERR_NODE_DOWN');
      assert.deepEqual(started, ['b', 'b', 'c'], 'put never ran on c');
    } finally {
      await c.stop();
    }
  });

  it('a call towards a node already known unreachable fails over, whatever the action', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const ran: string[] = [];
      for (const n of [b, cc]) {
        n.service('store', {
          put: () => {
            ran.push(n.name);
            return `put on ${n.name}`;
          },
        });
      }
      await ready(c, a, 'store', 2);
      let unreachable = false;
      a.on('memberUnreachable', (m) => {
        if (m.name === 'b') unreachable = true;
      });
      c.net.crash(b.address);
      await tickUntil(c.clock, c.net, () => unreachable, 'a sees b unreachable', { stepMs: 1 });
      assert.equal(a.members().find((m) => m.name === 'b')?.status, 'alive', 'not down yet');
      for (let i = 0; i < 4; i++)
        assert.equal(await done(c, a.services.call('store.put', [i])), 'put on c');
      assert.deepEqual(ran, ['c', 'c', 'c', 'c']);
    } finally {
      await c.stop();
    }
  });

  it('retries errors marked retryable for idempotent actions only', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const runs = { idem: 0, plain: 0, hard: 0 };
      const flaky = (k: keyof typeof runs) => () => {
        if (++runs[k] < 3) throw Object.assign(new Error('busy'), { retryable: k !== 'hard' });
        return 'ok';
      };
      b.service('f', {
        idem: { idempotent: true, handler: flaky('idem') },
        plain: flaky('plain'),
        hard: { idempotent: true, handler: flaky('hard') },
      });
      await ready(c, a, 'f');
      assert.equal(
        await done(
          c,
          a.services.call('f.idem', [], { retry: { initialDelayMs: 1, maxDelayMs: 2 } }),
        ),
        'ok',
      );
      assert.equal(runs.idem, 3);
      await rejectsWithCode(done(c, a.services.call('f.plain')), 'FND_ERR_SERVICE_ACTION');
      assert.equal(runs.plain, 1);
      await rejectsWithCode(done(c, a.services.call('f.hard')), 'FND_ERR_SERVICE_ACTION');
      assert.equal(runs.hard, 1, 'not marked retryable: not retried');
      // retries: 2 means at most 3 attempts in all.
      let always = 0;
      b.service('g', {
        x: {
          idempotent: true,
          handler: () => {
            always++;
            throw Object.assign(new Error('still busy'), { retryable: true });
          },
        },
      });
      await ready(c, a, 'g');
      await rejectsWithCode(
        done(c, a.services.call('g.x', [], { retry: { retries: 2, initialDelayMs: 1 } })),
        'FND_ERR_SERVICE_ACTION',
      );
      assert.equal(always, 3);
      // Per call: retries: 0 turns retries off.
      runs.idem = 0;
      await rejectsWithCode(
        done(c, a.services.call('f.idem', [], { retry: { retries: 0 } })),
        'FND_ERR_SERVICE_ACTION',
      );
      assert.equal(runs.idem, 1);
      // Per call: idempotent: true makes a plain action retryable.
      runs.plain = 0;
      assert.equal(
        await done(
          c,
          a.services.call('f.plain', [], { idempotent: true, retry: { initialDelayMs: 1 } }),
        ),
        'ok',
      );
      assert.equal(runs.plain, 3);
    } finally {
      await c.stop();
    }
  });

  it('opens a circuit per endpoint after consecutive failures, skips it, and half-opens later', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      let bFails = true;
      const calls = { b: 0, c: 0 };
      b.service('x', {
        go: () => {
          calls.b++;
          if (bFails) throw new Error('b broken');
          return 'b';
        },
      });
      cc.service('x', {
        go: () => {
          calls.c++;
          return 'c';
        },
      });
      await ready(c, a, 'x', 2);
      // cockatiel measures the break with Date.now: mocked, so that a slow machine cannot let the
      // break run out during the calls that must find the circuit open.
      mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const opts = {
        breaker: { threshold: 3, halfOpenAfterMs: 200 },
        retry: false as const,
        balancer: 'round-robin' as const,
      };
      for (let i = 0; i < 6; i++) await done(c, a.services.call('x.go', [], opts)).catch(() => {});
      assert.equal(calls.b, 3);
      assert.equal(a.services.circuit('b', 'x'), 'open');
      assert.equal(a.services.circuit('c', 'x'), 'closed');
      // Only b allowed, and its circuit open: refused, saying why.
      const e = await rejectsWithCode(
        done(c, a.services.call('x.go', [], { ...opts, node: 'b' })),
        'FND_ERR_SERVICE_UNAVAILABLE',
      );
      assert.equal(e.data?.reason, 'circuit_open');
      calls.b = 0;
      for (let i = 0; i < 4; i++)
        assert.equal(await done(c, a.services.call('x.go', [], opts)), 'c');
      assert.equal(calls.b, 0, 'open circuit: b gets nothing');
      // The break elapses, then b gets a trial call.
      bFails = false;
      mock.timers.tick(250);
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add(await done(c, a.services.call('x.go', [], opts)));
      assert.ok(seen.has('b'), 'b closed again after a successful trial');
    } finally {
      mock.timers.reset();
      await c.stop();
    }
  });

  it('refuses calls past the bulkhead and the rate limit on the serving node', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const release: Array<() => void> = [];
      b.service(
        'bh',
        { wait: () => new Promise<string>((r) => release.push(() => r('done'))) },
        { bulkhead: { maxConcurrent: 1, maxQueue: 1 } },
      );
      b.service('rl', { x: () => 'x' }, { rateLimit: { points: 2, durationMs: 60_000 } });
      await ready(c, a, 'rl');
      await ready(c, a, 'bh');
      const p1 = track(a.services.call('bh.wait'));
      const p2 = track(a.services.call('bh.wait'));
      await tickUntil(c.clock, c.net, () => release.length === 1, 'first running');
      const e = await rejectsWithCode(
        done(c, a.services.call('bh.wait', [], { retry: false })),
        'FND_ERR_BULKHEAD_FULL',
      );
      assert.equal(e.data?.service, 'bh');
      release.shift()!();
      await tickUntil(c.clock, c.net, () => release.length === 1, 'queued one running');
      release.shift()!();
      assert.equal(await done(c, p1.promise), 'done');
      assert.equal(await done(c, p2.promise), 'done');
      assert.equal(await done(c, a.services.call('rl.x')), 'x');
      assert.equal(await done(c, a.services.call('rl.x')), 'x');
      const r = await rejectsWithCode(
        done(c, a.services.call('rl.x', [], { retry: false })),
        'FND_ERR_RATE_LIMITED',
      );
      assert.ok((r.data?.retryInMs as number) > 0);
    } finally {
      await c.stop();
    }
  });

  it('a call that waited in the bulkhead past its deadline is not run', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const release: Array<() => void> = [];
      const charged: number[] = [];
      b.service(
        'bh',
        {
          wait: () => new Promise<string>((r) => release.push(() => r('done'))),
          charge: (n: number) => {
            charged.push(n);
            return 'charged';
          },
        },
        { bulkhead: { maxConcurrent: 1, maxQueue: 1 } },
      );
      await ready(c, a, 'bh');
      const p1 = track(a.services.call('bh.wait', [], { timeout: 60_000, retry: false }));
      await tickUntil(c.clock, c.net, () => release.length === 1, 'first running');
      await rejectsWithCode(
        done(c, a.services.call('bh.charge', [42], { timeout: 1000, retry: false })),
        'FND_ERR_REQUEST_TIMEOUT',
      );
      await c.clock.tickAsync(5000);
      release.shift()!();
      assert.equal(await done(c, p1.promise), 'done');
      await c.clock.tickAsync(100);
      await c.net.settle();
      assert.deepEqual(charged, [], 'the expired call did not run');
      // A call within its deadline still runs.
      assert.equal(await done(c, a.services.call('bh.charge', [7])), 'charged');
      assert.deepEqual(charged, [7]);
    } finally {
      await c.stop();
    }
  });

  it('resolves with the fallback when the call finally fails', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      const got = await a.services.call('nobody.home', [], {
        fallback: (err) => `fallback after ${err.code}`,
      });
      assert.equal(got, 'fallback after FND_ERR_SERVICE_NOT_FOUND');
    } finally {
      await c.stop();
    }
  });
});

/** The rendezvous owner of `key` among `nodes` (what consistent-hash picks). */
function consistentOwner(nodes: string[], key: string): string {
  let best = '';
  let bestScore = -1;
  for (const n of nodes) {
    const s = hash(`${key}\u0000${n}`);
    if (s > bestScore) {
      best = n;
      bestScore = s;
    }
  }
  return best;
}
