// ThreadPool on its own: results and errors (code and data intact) come back from worker threads,
// buffers listed in `transfer` move both ways, a SharedArrayBuffer is shared, bad options and bad
// transfer lists are refused with coded errors, and resize swaps the threads without losing tasks.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { FoundationError } from '../../src/errors.js';
import { ThreadPool } from '../../src/runtime/threads.js';
import { assertCoded } from '../helpers/assert.js';

const WORK = new URL('../fixtures/thread-work.js', import.meta.url);

describe('ThreadPool', () => {
  const pool = new ThreadPool({ module: WORK, export: 'digest', maxThreads: 1 });
  after(() => pool.close());

  it('runs the exported function on another thread and resolves with its result', async () => {
    const echo = new ThreadPool({ module: fileURLToPath(WORK), maxThreads: 1, minThreads: 0 });
    try {
      const r = await echo.run<{ input: unknown; threadId: number }>({ a: [1, 2, 3] });
      assert.deepEqual(r.input, { a: [1, 2, 3] });
      assert.notEqual(r.threadId, threadId);
      assert.equal(echo.stats().completed, 1);
    } finally {
      await echo.close();
    }
  });

  it('moves transferred buffers to the thread and back instead of copying them', async () => {
    const bytes = new Uint8Array(1 << 20);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
    const expected = createHash('sha256').update(bytes).digest('hex');
    const buf = bytes.buffer;
    const p = pool.run<{ sha256: string; byteLength: number; buf: ArrayBuffer }>(
      { buf },
      { transfer: [buf] },
    );
    const r = await p;
    assert.equal(buf.byteLength, 0, 'the sender side is detached');
    assert.equal(r.sha256, expected);
    assert.equal(r.byteLength, 1 << 20);
    assert.equal(r.buf.byteLength, 1 << 20, 'the buffer came back whole');
  });

  it('shares a SharedArrayBuffer (both threads see the same memory); refuses bad transfer lists', async () => {
    const shared = new ThreadPool({ module: WORK, export: 'sumShared', maxThreads: 1 });
    try {
      const sab = new SharedArrayBuffer(4 * 11);
      const view = new Int32Array(sab);
      for (let i = 1; i <= 10; i++) view[i] = i;
      assert.equal(await shared.run({ sab, length: 11 }), 55);
      assert.equal(Atomics.load(view, 0), 55, 'the thread wrote into our memory');
      await assert.rejects(
        shared.run({ sab, length: 11 }, { transfer: [sab as unknown as ArrayBuffer] }),
        (err) => {
          assertCoded(err, 'FND_ERR_INVALID_OPTION');
          assert.equal(err.data?.field, 'transfer');
          return true;
        },
      );
      const twice = new ArrayBuffer(8);
      await assert.rejects(shared.run({ twice }, { transfer: [twice, twice] }), (err) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        return true;
      });
      assert.equal(twice.byteLength, 8, 'a refused transfer detaches nothing');
    } finally {
      await shared.close();
    }
  });

  it('rejects a task with the error thrown in the thread, code and data intact, and keeps serving', async () => {
    const failing = new ThreadPool({ module: WORK, export: 'fail', maxThreads: 1 });
    try {
      await assert.rejects(
        failing.run({ code: 'E_APP' }),
        (err: Error & { code?: string; data?: unknown }) => {
          assert.equal(err.code, 'E_APP');
          assert.deepEqual(err.data, { detail: 'from the thread' });
          assert.match(err.message, /failed on purpose/);
          return true;
        },
      );
      await assert.rejects(failing.run({ code: 'FND_ERR_NOPROC' }), (err) => {
        assert.ok(
          err instanceof FoundationError,
          'a Foundation code comes back as a FoundationError',
        );
        assert.equal(err.code, 'FND_ERR_NOPROC');
        return true;
      });
      assert.equal(failing.stats().completed, 2);
    } finally {
      await failing.close();
    }
  });

  it('rejects when the module has no such export', async () => {
    const wrong = new ThreadPool({ module: WORK, export: 'nope', maxThreads: 1 });
    try {
      await assert.rejects(wrong.run(1), /no exported function "nope"/);
    } finally {
      await wrong.close();
    }
  });

  it('refuses relative module paths and bad thread counts with coded errors', () => {
    assert.throws(
      () => new ThreadPool({ module: './work.js' }),
      (err) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal(err.data?.field, 'module');
        return true;
      },
    );
    assert.throws(
      () => new ThreadPool({ module: WORK, maxThreads: 0 }),
      (err) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal(err.data?.field, 'maxThreads');
        return true;
      },
    );
  });

  it('resize swaps the thread set: tasks running meanwhile still complete', async () => {
    const p = new ThreadPool({ module: WORK, export: 'busy', maxThreads: 1 });
    try {
      const running = p.run<{ iterations: number }>({ ms: 50 });
      p.resize(2);
      assert.equal(p.maxThreads, 2);
      const [a, b, c] = await Promise.all([running, p.run({ ms: 10 }), p.run({ ms: 10 })]);
      for (const r of [a, b, c]) assert.ok((r as { iterations: number }).iterations > 0);
      assert.equal(p.stats().completed, 3);
    } finally {
      await p.close();
    }
    await assert.rejects(p.run({ ms: 1 }), (err) => {
      assertCoded(err, 'FND_ERR_POOL_CLOSED');
      return true;
    });
  });
});
