// node.protection: circuit breaker (cockatiel), rate limiter (rate-limiter-flexible) and pool
// (generic-pool) per key behind execute(key, fn), with coded refusals that never call fn, state
// and diagnostics events, bad input, and cluster-scoped rate limits split among alive members.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { describe, it, mock } from 'node:test';
import { Protection } from '../../src/core/protection.js';
import type { FoundationNode } from '../../src/index.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import { createLogger } from '../../src/util/log.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const quiet = () => new Protection(createLogger('silent', { node: 't' }), () => 1);
const boom = async () => {
  throw new Error('dependency down');
};

describe('protection', () => {
  it('a circuit opens after threshold failures, refuses without calling fn, and closes after a trial call', async () => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const events: unknown[] = [];
    const onState = (m: unknown) => events.push(m);
    diagnostics.subscribe(CHANNELS.protectionState, onState);
    const p = quiet();
    try {
      p.configure('db', { circuitBreaker: { threshold: 2, halfOpenAfter: 1000 } });
      assert.equal(p.state('db').circuit, 'closed');
      await assert.rejects(p.execute('db', boom), /dependency down/);
      await assert.rejects(p.execute('db', boom), /dependency down/);
      assert.equal(p.state('db').circuit, 'open');
      let called = 0;
      const err = await rejectsWithCode(
        p.execute('db', () => {
          called++;
          return 1;
        }),
        'FND_ERR_CIRCUIT_OPEN',
      );
      assert.equal(err.data?.key, 'db');
      assert.equal(called, 0);
      mock.timers.tick(1001);
      assert.equal(await p.execute('db', () => 'ok'), 'ok'); // the trial call
      assert.equal(p.state('db').circuit, 'closed');
      assert.deepEqual(
        events.map((e) => (e as { state: string }).state),
        ['open', 'half-open', 'closed'],
      );
    } finally {
      diagnostics.unsubscribe(CHANNELS.protectionState, onState);
      mock.timers.reset();
      await p.stop();
    }
  });

  it('a rate limiter refuses past its points with retryAfterMs, without calling fn', async () => {
    const p = quiet();
    const rejected: unknown[] = [];
    const onRej = (m: unknown) => rejected.push(m);
    diagnostics.subscribe(CHANNELS.protectionRejected, onRej);
    try {
      p.configure('api', { rateLimiter: { points: 3, durationMs: 60_000 } });
      let called = 0;
      const fn = () => ++called;
      for (let i = 0; i < 3; i++) await p.execute('api', fn);
      const err = await rejectsWithCode(p.execute('api', fn), 'FND_ERR_RATE_LIMITED');
      assert.equal(called, 3);
      const after = err.data?.retryAfterMs as number;
      assert.ok(after > 0 && after <= 60_000, `retryAfterMs ${after}`);
      assert.deepEqual(rejected, [{ key: 'api', reason: 'rate-limited' }]);
      assert.equal(p.state('api').ratePoints, 3);
    } finally {
      diagnostics.unsubscribe(CHANNELS.protectionRejected, onRej);
      await p.stop();
    }
  });

  it('a pool lends resources to fn, refuses when none frees up in time, replaces one a failed call used, drains on stop', async () => {
    const p = quiet();
    let made = 0;
    const destroyed: number[] = [];
    try {
      p.configure<{ id: number }>('conn', {
        pool: {
          create: async () => ({ id: ++made }),
          destroy: async (r) => {
            destroyed.push(r.id);
          },
          max: 1,
          acquireTimeoutMs: 50,
        },
      });
      assert.equal(await p.execute('conn', (r: { id: number }) => r.id), 1);
      let release!: () => void;
      const holding = p.execute('conn', () => new Promise<void>((r) => (release = r)));
      await rejectsWithCode(
        p.execute('conn', () => 'never'),
        'FND_ERR_POOL_EXHAUSTED',
      );
      release();
      await holding;
      await assert.rejects(p.execute('conn', boom), /dependency down/);
      assert.equal(await p.execute('conn', (r: { id: number }) => r.id), 2, 'a fresh resource');
      assert.deepEqual(destroyed, [1]);
      assert.deepEqual(p.state('conn').pool, { size: 1, available: 1, borrowed: 0, pending: 0 });
    } finally {
      await p.stop();
    }
    assert.deepEqual(destroyed, [1, 2], 'stop drains the pool');
  });

  it('a pool whose create keeps failing refuses at acquireTimeoutMs, and the event loop runs meanwhile', async () => {
    const p = quiet();
    let creates = 0;
    try {
      p.configure('down', {
        pool: {
          // Fails without waiting on anything; after 1000 tries (only if retried without a
          // pause) it would succeed, and the call below would not be refused.
          create: async () => {
            if (++creates > 1000) return {};
            throw new Error('db down');
          },
          destroy: async () => {},
          max: 2,
          acquireTimeoutMs: 100,
        },
      });
      await rejectsWithCode(
        p.execute('down', () => 'ran'),
        'FND_ERR_POOL_EXHAUSTED',
      );
      assert.ok(creates <= 20, `${creates} creates`);
    } finally {
      await p.stop();
    }
  });

  it('a pool of slots (create resolves undefined) gives every slot back', async () => {
    const p = quiet();
    try {
      p.configure('slots', {
        pool: {
          create: async () => undefined,
          destroy: async () => {},
          max: 2,
          acquireTimeoutMs: 100,
        },
      });
      for (let i = 0; i < 5; i++) assert.equal(await p.execute('slots', () => 'ran'), 'ran');
      const both = await Promise.all([p.execute('slots', () => 1), p.execute('slots', () => 2)]);
      assert.deepEqual(both, [1, 2]);
      assert.equal(p.state('slots').pool?.borrowed, 0);
    } finally {
      await p.stop();
    }
  });

  it('bad input: unknown key, bad options, a non-function', async () => {
    const p = quiet();
    try {
      await rejectsWithCode(
        p.execute('nope', () => 1),
        'FND_ERR_UNKNOWN_PROTECTION',
      );
      assert.throws(() => p.state('nope'), { code: 'FND_ERR_UNKNOWN_PROTECTION' });
      const cases: Array<[string, unknown]> = [
        ['', {}],
        ['k', null],
        ['k', { circuitBreaker: { threshold: 0, halfOpenAfter: 10 } }],
        ['k', { circuitBreaker: { threshold: 1 } }],
        ['k', { rateLimiter: { points: 1.5, durationMs: 10 } }],
        ['k', { rateLimiter: { points: 1, durationMs: 10, scope: 'galaxy' } }],
        ['k', { pool: { create: 1, destroy: async () => {}, max: 1 } }],
        ['k', { pool: { create: async () => 1, destroy: async () => {}, max: 1, min: 2 } }],
      ];
      for (const [key, opts] of cases) {
        assert.throws(() => p.configure(key, opts as never), { code: 'FND_ERR_INVALID_ARGUMENT' });
      }
      p.configure('k', {});
      await rejectsWithCode(p.execute('k', 42 as never), 'FND_ERR_INVALID_ARGUMENT');
      assert.equal(await p.execute('k', () => 'plain'), 'plain');
      assert.deepEqual(p.keys(), ['k']);
    } finally {
      await p.stop();
    }
  });

  it("scope 'cluster' splits the rate budget among alive members, and re-splits when one leaves", async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      a.protection.configure('search', {
        rateLimiter: { points: 9, durationMs: 1000, scope: 'cluster' },
      });
      assert.equal(a.protection.state('search').ratePoints, 3);
      await c.nodes[2]!.stop();
      await tickUntil(c.clock, c.net, () => a.protection.state('search').ratePoints === 4, '9/2');
      b.protection.configure('x', { rateLimiter: { points: 5, durationMs: 1000 } });
      assert.equal(b.protection.state('x').ratePoints, 5, "scope 'node' is not split");
    } finally {
      await c.stop();
    }
  });
});
