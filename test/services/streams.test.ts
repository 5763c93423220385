// Streams on the in-memory network: async-iterable results and arguments flow in order; the
// producer never runs more than the credit window ahead of a slow consumer; a consumer that stops
// reading stops the producer (its finally runs); a producer that fails ends the consumer with
// FND_ERR_STREAM_CANCELLED; a node going down fails its streams; a malicious producer that
// ignores credit gets its stream cancelled without the receiver buffering beyond the window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundationNode } from '../../src/index.js';
import { SERVICE_LIMITS, SVC_KINDS } from '../../src/services/wire.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';
import { done, ready } from './util.js';

async function drain(c: MeshedCluster, it: AsyncIterable<unknown>, max = Number.POSITIVE_INFINITY) {
  const out: unknown[] = [];
  const iter = it[Symbol.asyncIterator]();
  while (out.length < max) {
    const r = await done(c, iter.next());
    if (r.done) break;
    out.push(r.value);
  }
  return { out, iter };
}

describe('streams', () => {
  it('streams results and arguments in order', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('s', {
        count: async function* (n: number) {
          for (let i = 0; i < n; i++) yield i;
        },
        sum: async (xs: AsyncIterable<number>) => {
          let t = 0;
          for await (const x of xs) t += x;
          return t;
        },
        upper: async function* (xs: AsyncIterable<string>) {
          for await (const x of xs) yield x.toUpperCase();
        },
      });
      await ready(c, a, 's');
      const r = (await done(c, a.services.call('s.count', [100]))) as AsyncIterable<number>;
      const { out } = await drain(c, r);
      assert.deepEqual(
        out,
        Array.from({ length: 100 }, (_, i) => i),
      );
      async function* nums() {
        for (let i = 1; i <= 50; i++) yield i;
      }
      assert.equal(await done(c, a.services.call('s.sum', [nums()])), 1275);
      async function* words() {
        yield 'a';
        yield Buffer.from('not a string').toString();
        yield 'c';
      }
      const up = (await done(c, a.services.call('s.upper', [words()]))) as AsyncIterable<string>;
      assert.deepEqual((await drain(c, up)).out, ['A', 'NOT A STRING', 'C']);
      assert.deepEqual(a.services.streams.open, { producing: 0, consuming: 0 });
      assert.deepEqual(b.services.streams.open, { producing: 0, consuming: 0 });
    } finally {
      await c.stop();
    }
  });

  it('next() calls made before any chunk arrives settle in order, none left waiting', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      b.service('s', {
        count: async function* (n: number) {
          await gate;
          for (let i = 0; i < n; i++) yield i;
        },
      });
      await ready(c, a, 's');
      const r = (await done(c, a.services.call('s.count', [2]))) as AsyncIterable<number>;
      const it = r[Symbol.asyncIterator]();
      const settled: Array<IteratorResult<unknown>> = [];
      const pending = [it.next(), it.next(), it.next()].map((p) => p.then((v) => settled.push(v)));
      await c.clock.tickAsync(50);
      await c.net.settle();
      assert.equal(settled.length, 0);
      release();
      await done(c, Promise.all(pending));
      assert.deepEqual(settled, [
        { value: 0, done: false },
        { value: 1, done: false },
        { value: undefined, done: true },
      ]);
      assert.deepEqual(a.services.streams.open, { producing: 0, consuming: 0 });
    } finally {
      await c.stop();
    }
  });

  it('keeps the producer within the credit window of a slow consumer; break stops the producer', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let produced = 0;
      let finished = false;
      b.service('s', {
        endless: async function* () {
          try {
            for (;;) {
              produced++;
              yield Buffer.alloc(1024);
            }
          } finally {
            finished = true;
          }
        },
      });
      await ready(c, a, 's');
      const r = (await done(c, a.services.call('s.endless'))) as AsyncIterable<Buffer>;
      const { iter } = await drain(c, r, 3);
      await c.clock.tickAsync(100);
      await c.net.settle();
      // Read 3, so at most 3 + window were produced (plus the one a generator runs ahead).
      assert.ok(produced <= 3 + SERVICE_LIMITS.streamWindow + 1, `produced ${produced}`);
      await iter.return!();
      await tickUntil(c.clock, c.net, () => finished, "producer's finally ran");
      assert.deepEqual(b.services.streams.open, { producing: 0, consuming: 0 });
    } finally {
      await c.stop();
    }
  });

  it('a failing producer ends the consumer with FND_ERR_STREAM_CANCELLED; so does node down', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('s', {
        broken: async function* () {
          yield 1;
          throw new Error('disk on fire');
        },
        forever: async function* () {
          for (let i = 0; ; i++) yield i;
        },
      });
      await ready(c, a, 's');
      const r = (await done(c, a.services.call('s.broken'))) as AsyncIterable<number>;
      const it = r[Symbol.asyncIterator]();
      assert.deepEqual(await done(c, it.next()), { value: 1, done: false });
      const e = await rejectsWithCode(done(c, it.next()), 'FND_ERR_STREAM_CANCELLED');
      assert.match(String(e.data?.reason), /disk on fire/);
      const f = (await done(c, a.services.call('s.forever'))) as AsyncIterable<number>;
      const fi = f[Symbol.asyncIterator]();
      await done(c, fi.next());
      c.net.partition([b.address], [a.address]);
      // Drain what was granted, then the stream fails once b is declared down.
      let err: unknown;
      for (let i = 0; i < 100 && !err; i++) {
        try {
          await done(c, fi.next(), 60_000);
        } catch (x) {
          err = x;
        }
      }
      assert.equal((err as { code?: string }).code, 'FND_ERR_STREAM_CANCELLED');
    } finally {
      await c.stop();
    }
  });

  it('cancels the stream arguments of a call that fails, so the producer stops', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('s', {
        fail: async (_xs: AsyncIterable<number>) => {
          throw new Error('refused before reading');
        },
      });
      await ready(c, a, 's');
      let finished = false;
      async function* endless() {
        try {
          for (let i = 0; ; i++) yield i;
        } finally {
          finished = true;
        }
      }
      await rejectsWithCode(
        done(c, a.services.call('s.fail', [endless()])),
        'FND_ERR_SERVICE_ACTION',
      );
      await tickUntil(c.clock, c.net, () => finished, "producer's finally ran");
      await tickUntil(
        c.clock,
        c.net,
        () => a.services.streams.open.producing === 0 && b.services.streams.open.consuming === 0,
        'no stream left open',
      );
    } finally {
      await c.stop();
    }
  });

  it("cancels a malicious producer's stream that ignores credit, holding at most the window", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      // b announces a stream result, then floods data past any credit through its own messenger.
      let id = 0;
      b.service('s', {
        // The honest producer never yields; the flood below is the only data.
        res: async function* () {
          await new Promise(() => {});
          yield 0;
        },
      });
      await ready(c, a, 's');
      const orig = b.services.streams.produce.bind(b.services.streams);
      b.services.streams.produce = (to, src) => {
        id = orig(to, src);
        return id;
      };
      const r = (await done(c, a.services.call('s.res'))) as AsyncIterable<unknown>;
      for (let i = 0; i < 1000; i++) b.messenger.send('a', SVC_KINDS.stream, ['d', id + 1000, i]);
      for (let i = 0; i < 100; i++)
        b.messenger.send('a', SVC_KINDS.stream, ['d', id, i], { channel: 'bulk' });
      await c.net.settle();
      const it = r[Symbol.asyncIterator]();
      const got: unknown[] = [];
      let err: unknown;
      try {
        for (;;) {
          const x = await done(c, it.next());
          if (x.done) break;
          got.push(x.value);
        }
      } catch (e) {
        err = e;
      }
      assert.equal((err as { code?: string })?.code, 'FND_ERR_STREAM_CANCELLED');
      assert.ok(got.length <= SERVICE_LIMITS.streamWindow, `buffered ${got.length}`);
      assert.deepEqual(a.services.streams.open, { producing: 0, consuming: 0 });
    } finally {
      await c.stop();
    }
  });
});
