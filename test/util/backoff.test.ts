// Backoff (src/util/backoff.ts): the n-th delay is uniform in [base/2, min(max, base·2^n)] — it
// grows, it is capped, it is jittered (never the same fixed value), and reset starts over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from '../../src/util/backoff.js';

describe('Backoff', () => {
  it('the ceiling doubles from baseMs with each attempt', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 10_000 }, () => 1);
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      [100, 200, 400, 800, 1600, 3200],
    );
    assert.equal(b.attempts, 6);
  });

  it('never waits more than maxMs, however many attempts', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000 }, () => 1);
    const delays = Array.from({ length: 50 }, () => b.next());
    assert.equal(Math.max(...delays), 1000);
    assert.deepEqual(delays.slice(4), Array(46).fill(1000));
  });

  it('is jittered: each delay is uniform between baseMs/2 and the current ceiling', () => {
    const low = new Backoff({ baseMs: 100, maxMs: 1000 }, () => 0);
    assert.deepEqual(
      Array.from({ length: 5 }, () => low.next()),
      [50, 50, 50, 50, 50],
    );
    const mid = new Backoff({ baseMs: 100, maxMs: 1000 }, () => 0.5);
    // floor 50, ceilings 100, 200, 400, 800, 1000
    assert.deepEqual(
      Array.from({ length: 5 }, () => mid.next()),
      [75, 125, 225, 425, 525],
    );
    // With a real random source, delays at the cap still differ from each other.
    const real = new Backoff({ baseMs: 100, maxMs: 1000 });
    for (let i = 0; i < 5; i++) real.next();
    const capped = Array.from({ length: 20 }, () => real.next());
    for (const d of capped) assert.ok(d >= 50 && d <= 1000, `delay ${d} out of [50, 1000]`);
    assert.ok(new Set(capped).size > 1, 'capped delays are jittered, not one fixed value');
  });

  it('reset starts again from baseMs', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 10_000 }, () => 1);
    for (let i = 0; i < 5; i++) b.next();
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 100);
  });

  it('a maxMs below baseMs caps even the first delay', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 300 }, () => 1);
    assert.equal(b.next(), 300);
    const lo = new Backoff({ baseMs: 1000, maxMs: 300 }, () => 0);
    assert.equal(lo.next(), 300);
  });
});
