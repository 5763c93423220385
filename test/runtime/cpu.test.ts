// cpuIntensive: the results equal a plain map (arrays, typed arrays, generators), the event loop
// keeps running during a long job (a 10 ms timer fires before the job ends, which the plain
// synchronous map does not allow), an AbortSignal stops the job, and errors reject it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuIntensive } from '../../src/runtime/cpu.js';
import { assertCoded } from '../helpers/assert.js';

/** About `ms` of CPU per call. */
function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x = (x * 31 + 7) | 0;
  return x;
}

describe('cpuIntensive', () => {
  it('returns what a plain map returns, in order, for arrays, typed arrays and generators', async () => {
    const items = Array.from({ length: 50_000 }, (_, i) => i);
    const fn = (v: number, i: number) => v * 3 + i;
    assert.deepEqual(await cpuIntensive(items, fn, { budgetMs: 1 }), items.map(fn));

    const typed = Float64Array.from(items);
    assert.deepEqual(
      await cpuIntensive(typed, (v) => Math.sqrt(v)),
      Array.from(typed, (v) => Math.sqrt(v)),
    );

    function* gen() {
      for (let i = 0; i < 10_000; i++) yield `k${i}`;
    }
    assert.deepEqual(
      await cpuIntensive(gen(), (s, i) => `${s}:${i}`, { budgetMs: 1 }),
      Array.from(gen(), (s, i) => `${s}:${i}`),
    );
    assert.deepEqual(await cpuIntensive([], fn), []);
  });

  it('lets a 10 ms timer fire during a long job; the plain synchronous map does not', async () => {
    const items = Array.from({ length: 150 }, (_, i) => i);
    const work = (v: number) => {
      spin(1);
      return v * 2;
    };

    // The plain map: the timer cannot run until the whole job has finished.
    let processed = 0;
    let seenByTimer = -1;
    let timer = setTimeout(() => {
      seenByTimer = processed;
    }, 10);
    const plain = items.map((v) => {
      processed++;
      return work(v);
    });
    assert.equal(seenByTimer, -1, 'the timer could not fire while the map ran');
    await new Promise((r) => setTimeout(r, 15));
    assert.equal(seenByTimer, items.length, 'it fired only after every item');

    // The same job through cpuIntensive: the timer fires while items are still left.
    processed = 0;
    seenByTimer = -1;
    timer = setTimeout(() => {
      seenByTimer = processed;
    }, 10);
    const sliced = await cpuIntensive(
      items,
      (v) => {
        processed++;
        return work(v);
      },
      { budgetMs: 8 },
    );
    clearTimeout(timer);
    assert.deepEqual(sliced, plain);
    assert.ok(seenByTimer >= 0, 'the timer fired before the job ended');
    assert.ok(
      seenByTimer < items.length,
      `the timer ran mid-job (after ${seenByTimer} of ${items.length} items)`,
    );
  });

  it('stops at the next item once the signal is aborted, rejecting with its reason', async () => {
    const ac = new AbortController();
    let calls = 0;
    const items = Array.from({ length: 10_000 }, (_, i) => i);
    const job = cpuIntensive(
      items,
      (v) => {
        calls++;
        spin(0.05);
        return v;
      },
      { budgetMs: 2, signal: ac.signal },
    );
    setTimeout(() => ac.abort(new Error('enough')), 5);
    await assert.rejects(job, /enough/);
    assert.ok(calls > 0 && calls < items.length, `stopped part-way (${calls} calls)`);

    await assert.rejects(
      cpuIntensive([1], (v) => v, { signal: AbortSignal.abort() }),
      {
        name: 'AbortError',
      },
    );
  });

  it('rejects with the error fn throws and closes a generator source', async () => {
    let closed = false;
    function* gen() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    await assert.rejects(
      cpuIntensive(gen(), (v) => {
        if (v === 500) throw new Error('bad item 500');
        return v;
      }),
      /bad item 500/,
    );
    assert.ok(closed, "the generator's finally ran");
  });

  it('refuses a budget that is not a positive number', async () => {
    for (const budgetMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(
        cpuIntensive([1], (v) => v, { budgetMs }),
        (err) => {
          assertCoded(err, 'FND_ERR_INVALID_OPTION');
          assert.equal(err.data?.field, 'budgetMs');
          return true;
        },
      );
    }
  });
});
