// Hybrid logical clocks: monotonic on one node, causal across nodes, close to wall time, and
// refusing remote timestamps too far in the future (a broken or malicious clock cannot drag ours).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/util/clock.js';
import { compareHlc, type Hlc, HybridClock, isHlc, MAX_HLC_COUNTER } from '../../src/util/hlc.js';

describe('hybrid logical clock', () => {
  it('never goes backwards on one node, even when the wall clock does not move', () => {
    const clock = new ManualClock();
    const h = new HybridClock(clock);
    let prev = h.now();
    for (let i = 0; i < 100; i++) {
      if (i % 10 === 0) clock.tick(1);
      const t = h.now();
      assert.ok(compareHlc(t, prev) > 0, `${JSON.stringify(t)} after ${JSON.stringify(prev)}`);
      prev = t;
    }
    assert.equal(prev.wall, Math.floor(clock.wallNow()));
  });

  it('orders an event after every remote timestamp it observed (causality)', () => {
    const ca = new ManualClock(1_700_000_000_000);
    const cb = new ManualClock(1_700_000_000_000 - 5000); // b's wall clock is 5 s behind
    const a = new HybridClock(ca);
    const b = new HybridClock(cb);
    const sent = a.now();
    assert.ok(b.observe(sent));
    const after = b.now();
    assert.ok(compareHlc(after, sent) > 0);
    // b's clock stays ahead of its physical time only by what it has seen, not further.
    assert.equal(after.wall, sent.wall);
    cb.tick(6000);
    assert.equal(b.now().wall, Math.floor(cb.wallNow()), 'back to physical time once it passes');
  });

  it('refuses a timestamp further than maxDrift ahead and leaves the clock where it was', () => {
    const clock = new ManualClock();
    const h = new HybridClock(clock, 1000);
    const before = h.now();
    const future: Hlc = { wall: Math.floor(clock.wallNow()) + 1001, counter: 0 };
    assert.equal(h.observe(future), false);
    assert.ok(h.now().wall < future.wall);
    assert.ok(compareHlc(h.peek(), before) > 0);
    assert.equal(h.observe({ wall: Math.floor(clock.wallNow()) + 999, counter: 7 }), true);
    assert.equal(h.now().counter, 9);
  });

  it('rejects malformed timestamps', () => {
    const h = new HybridClock(new ManualClock());
    for (const bad of [
      null,
      1,
      {},
      { wall: -1, counter: 0 },
      { wall: 1.5, counter: 0 },
      { wall: 1, counter: Number.NaN },
      { wall: 2 ** 60, counter: 0 },
    ]) {
      assert.equal(isHlc(bad) && h.acceptable(bad), false, JSON.stringify(bad));
      assert.equal(h.observe(bad as Hlc), false);
    }
  });

  it('converges: concurrent events on many nodes are totally ordered with the node name', () => {
    const clock = new ManualClock();
    const nodes = ['a', 'b', 'c'].map((n) => ({ n, h: new HybridClock(clock) }));
    const stamps: Array<{ t: Hlc; n: string }> = [];
    for (let i = 0; i < 50; i++) {
      const x = nodes[i % 3]!;
      const t = x.h.now();
      stamps.push({ t, n: x.n });
      nodes[(i + 1) % 3]!.h.observe(t);
    }
    const key = (s: { t: Hlc; n: string }) => `${s.t.wall}:${s.t.counter}:${s.n}`;
    assert.equal(new Set(stamps.map(key)).size, stamps.length, 'no two events share (hlc, node)');
  });

  it('a counter at its bound moves the wall on instead: stamps stay in range and in order', () => {
    const clock = new ManualClock();
    const h = new HybridClock(clock);
    const wall = Math.floor(clock.wallNow()) + 10;
    assert.equal(isHlc({ wall, counter: MAX_HLC_COUNTER + 1 }), false);
    assert.ok(h.observe({ wall, counter: MAX_HLC_COUNTER }));
    assert.deepEqual(h.peek(), { wall: wall + 1, counter: 0 });
    const t = h.now();
    assert.deepEqual(t, { wall: wall + 1, counter: 1 });
    assert.ok(isHlc(t));
    assert.ok(compareHlc(t, { wall, counter: MAX_HLC_COUNTER }) > 0);
  });
});
