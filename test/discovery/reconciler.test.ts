import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RECONCILER_LIMITS } from '../../src/discovery/strategy.js';
import { type DiscoveryContext, type Member, Reconciler } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { type Address, formatAddress } from '../../src/transport/types.js';
import { createLogger } from '../../src/util/log.js';

/** A discovery context that records what the reconciler asks the node to do. */
function recordingContext(members: Member[]) {
  const calls: string[] = [];
  const ctx: DiscoveryContext = {
    cluster: 'c',
    self: { name: 'me', address: { host: '127.0.0.1', port: 1000 }, incarnation: 1 },
    async connect(a: Address) {
      calls.push(`connect ${formatAddress(a)}`);
      if (a.port === 6666) throw new Error('refused');
      return `node-${a.port}`;
    },
    disconnect(a: Address) {
      calls.push(`disconnect ${formatAddress(a)}`);
    },
    knownNodes: () => members,
    clock: new ManualClock(),
    log: createLogger('silent'),
    signal: new AbortController().signal,
  };
  return { ctx, calls };
}

const a = (port: number): Address => ({ host: '127.0.0.1', port });

describe('Reconciler (shared by every strategy)', () => {
  it('joins listed addresses that are not live members, never itself, and survives failures', async () => {
    const members: Member[] = [
      { name: 'x', address: '127.0.0.1:2000', status: 'alive', incarnation: 1 },
      { name: 'y', address: '127.0.0.1:3000', status: 'down', incarnation: 1 },
    ];
    const { ctx, calls } = recordingContext(members);
    await new Reconciler(ctx, 'test').reconcile([a(1000), a(2000), a(3000), a(4000), a(6666)]);
    // 2000 is alive already; 3000 is down, so it is joined again (a node that came back).
    assert.deepEqual(calls.sort(), [
      'connect 127.0.0.1:3000',
      'connect 127.0.0.1:4000',
      'connect 127.0.0.1:6666',
    ]);
  });

  it('with disconnectRemoved, reports addresses that dropped out of the list, once', async () => {
    const { ctx, calls } = recordingContext([]);
    const r = new Reconciler(ctx, 'test', true);
    await r.reconcile([a(2000), a(3000)]);
    calls.length = 0;
    await r.reconcile([a(3000)]);
    assert.deepEqual(calls, ['disconnect 127.0.0.1:2000', 'connect 127.0.0.1:3000']);
    calls.length = 0;
    await r.reconcile([a(3000)]);
    assert.deepEqual(calls, ['connect 127.0.0.1:3000']);
  });

  it('without disconnectRemoved, never disconnects', async () => {
    const { ctx, calls } = recordingContext([]);
    const r = new Reconciler(ctx, 'test');
    await r.reconcile([a(2000)]);
    await r.reconcile([]);
    assert.deepEqual(calls, ['connect 127.0.0.1:2000']);
  });

  describe('limits: discovery can never make the node dial without bound', () => {
    const L = RECONCILER_LIMITS;
    /** A context whose connects fail, except to `good` ports; records every attempt with its time. */
    function floodContext(good = new Set<number>()) {
      const clock = new ManualClock();
      const attempts: Array<{ port: number; at: number }> = [];
      const members: Member[] = [];
      const ctx: DiscoveryContext = {
        cluster: 'c',
        self: { name: 'me', address: a(1000), incarnation: 1 },
        async connect(addr: Address) {
          attempts.push({ port: addr.port, at: clock.now() });
          if (!good.has(addr.port)) throw new Error('ECONNREFUSED');
          members.push({
            name: `n${addr.port}`,
            address: formatAddress(addr),
            status: 'alive',
            incarnation: 1,
          });
          return `n${addr.port}`;
        },
        disconnect() {},
        knownNodes: () => members,
        clock,
        log: createLogger('silent'),
        signal: new AbortController().signal,
      };
      return { ctx, clock, attempts };
    }
    const forged = (n: number, from = 20_000) => Array.from({ length: n }, (_, i) => a(from + i));

    it('one call (one packet, one poll) adds at most maxNewPerBatch new addresses; the rest are counted', async () => {
      const { ctx, attempts } = floodContext();
      const r = new Reconciler(ctx, 'test');
      await r.joinMissing(forged(1000));
      assert.equal(attempts.length, L.maxNewPerBatch);
      assert.equal(r.stats.droppedBatch, 1000 - L.maxNewPerBatch);
      assert.equal(r.pendingAddresses().length, L.maxNewPerBatch);
    });

    it('at most maxPending addresses are pending at once, however many calls list new ones', async () => {
      const { ctx, clock, attempts } = floodContext();
      const r = new Reconciler(ctx, 'test');
      for (let i = 0; i < 50; i++) {
        await r.joinMissing(forged(1000));
        assert.ok(r.pendingAddresses().length <= L.maxPending);
        clock.tick(100);
      }
      assert.equal(r.pendingAddresses().length, L.maxPending);
      // Only an address that failed can lose its slot to a new one.
      const distinct = new Set(attempts.map((x) => x.port)).size;
      assert.ok(distinct <= L.maxPending + r.stats.evicted, `${distinct} addresses dialled`);
      assert.ok(r.stats.droppedPending > 0, 'addresses over the cap are counted');
    });

    it('a failing address is retried with exponential backoff up to retryMaxMs, however often it is listed', async () => {
      const { ctx, clock, attempts } = floodContext();
      const r = new Reconciler(ctx, 'test');
      for (let t = 0; t <= 60_000; t += 100) {
        await r.joinMissing([a(20_000)]);
        clock.tick(100);
      }
      // 1 s, 2 s, 4 s, 8 s, then every 10 s.
      assert.deepEqual(
        attempts.map((x) => x.at),
        [0, 1000, 3000, 7000, 15_000, 25_000, 35_000, 45_000, 55_000],
      );
    });

    it('1000 forged addresses listed every 100 ms for 5 minutes cost a bounded number of dials (not one per address per call)', async () => {
      const { ctx, clock, attempts } = floodContext();
      const r = new Reconciler(ctx, 'test');
      const list = forged(1000);
      const seconds = 300;
      for (let t = 0; t < seconds * 1000; t += 100) {
        await r.joinMissing(list);
        clock.tick(100);
      }
      // Without limits this is 1000 dials per call: 3,000,000.
      const bound = L.dialBurst + L.dialsPerSecond * seconds;
      console.log(
        `# reconciler flood: ${attempts.length} dials in ${seconds} s (bound ${Math.round(bound)}), ${r.stats.evicted} evictions`,
      );
      assert.ok(attempts.length <= bound, `${attempts.length} dials > ${bound}`);
      // No address is hammered: at most evictAfterFailures attempts per parking period.
      const perAddress = new Map<number, number>();
      for (const x of attempts) perAddress.set(x.port, (perAddress.get(x.port) ?? 0) + 1);
      const worst = Math.max(...perAddress.values());
      const periods = Math.ceil((seconds * 1000) / L.parkMs) + 1;
      assert.ok(worst <= L.evictAfterFailures * periods, `one address was dialled ${worst} times`);
    });

    it('a real node listed after a flood still gets a slot once forged addresses have failed enough', async () => {
      const { ctx, clock, attempts } = floodContext(new Set([7000]));
      const r = new Reconciler(ctx, 'test');
      const list = forged(1000);
      for (let t = 0; t < 10_000; t += 100) {
        await r.joinMissing(list);
        clock.tick(100);
      }
      assert.equal(r.pendingAddresses().length, L.maxPending, 'the flood fills every slot');
      const withReal = [...list, a(7000)];
      let joined = false;
      const from = clock.now();
      for (let t = 0; t < 600_000 && !joined; t += 100) {
        await r.joinMissing(withReal);
        joined = attempts.some((x) => x.port === 7000);
        clock.tick(100);
      }
      console.log(
        `# reconciler: real node dialled ${(clock.now() - from) / 1000} s into a 1000-address flood`,
      );
      assert.ok(joined, 'the real node was dialled');
      assert.ok(r.stats.evicted > 0);
      assert.ok(!r.pendingAddresses().includes('127.0.0.1:7000'), 'joined: no longer pending');
    });

    it('an unlisted address leaves the pending set, and listing it again does not reset its backoff', async () => {
      const { ctx, clock, attempts } = floodContext();
      const r = new Reconciler(ctx, 'test');
      await r.reconcile([a(20_000)]);
      assert.equal(attempts.length, 1);
      await r.reconcile([]);
      assert.deepEqual(r.pendingAddresses(), []);
      await r.reconcile([a(20_000)]);
      assert.equal(attempts.length, 1, 'a forged goodbye + re-announce buys no extra dial');
      clock.tick(1000);
      await r.reconcile([a(20_000)]);
      assert.equal(attempts.length, 2);
      // Event-driven strategies unlist through dropped() (mDNS goodbye, gossip timeout).
      r.dropped(a(20_000));
      assert.deepEqual(r.pendingAddresses(), []);
    });
  });
});
