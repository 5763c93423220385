// retry(): retries transient failures up to `attempts`, rethrows the last error, does not retry
// errors that describe the call itself, honours retryOn and abort, and refuses bad arguments.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { isTransient, retry } from '../../src/core/retry.js';
import { FoundationError } from '../../src/errors.js';
import { rejectsWithCode } from '../helpers/assert.js';

const fast = { initialDelayMs: 1, maxDelayMs: 2 };

describe('retry', () => {
  it('retries until success and passes the attempt number', async () => {
    const seen: number[] = [];
    const v = await retry(
      (n) => {
        seen.push(n);
        if (n < 3) throw new Error('flaky');
        return 'done';
      },
      { attempts: 5, ...fast },
    );
    assert.equal(v, 'done');
    assert.deepEqual(seen, [1, 2, 3]);
  });

  it('gives up after `attempts` with the last error', async () => {
    let calls = 0;
    await assert.rejects(
      retry(
        () => {
          calls++;
          throw new Error(`fail ${calls}`);
        },
        { attempts: 3, ...fast },
      ),
      /fail 3/,
    );
    assert.equal(calls, 3);
  });

  it('does not retry errors about the call itself, or what retryOn refuses', async () => {
    let calls = 0;
    await rejectsWithCode(
      retry(() => {
        calls++;
        throw new FoundationError('FND_ERR_CONFIG_INVALID', 'x');
      }, fast),
      'FND_ERR_CONFIG_INVALID',
    );
    assert.equal(calls, 1);
    assert.equal(isTransient(new FoundationError('FND_ERR_REQUEST_TIMEOUT')), true);
    assert.equal(isTransient(new FoundationError('FND_ERR_CIRCUIT_OPEN')), false);
    calls = 0;
    await assert.rejects(
      retry(
        () => {
          calls++;
          throw new Error('permanent');
        },
        { ...fast, retryOn: (e) => (e as Error).message !== 'permanent' },
      ),
    );
    assert.equal(calls, 1);
  });

  it('an abort during a backoff wait rejects at once with the reason, and fn runs no more', async () => {
    // The backoff's timer never fires here (mocked): only the abort can settle the call.
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const ac = new AbortController();
      let calls = 0;
      let settled: unknown;
      retry(
        () => {
          calls++;
          throw new Error('flaky');
        },
        { attempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000, signal: ac.signal },
      ).then(
        () => {
          settled = 'resolved';
        },
        (err: Error) => {
          settled = err.message;
        },
      );
      await new Promise((r) => setImmediate(r));
      assert.equal(calls, 1);
      assert.equal(settled, undefined, 'waiting for the backoff');
      ac.abort(new Error('stop'));
      await new Promise((r) => setImmediate(r));
      assert.equal(settled, 'stop');
      assert.equal(calls, 1);
    } finally {
      mock.timers.reset();
    }
  });

  it('stops when aborted, and refuses bad arguments', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await assert.rejects(retry(() => 1, { signal: ac.signal }));
    await rejectsWithCode(
      retry(() => 1, { attempts: 0 }),
      'FND_ERR_INVALID_ARGUMENT',
    );
    await rejectsWithCode(retry(42 as never), 'FND_ERR_INVALID_ARGUMENT');
    await rejectsWithCode(
      retry(() => 1, { initialDelayMs: 10, maxDelayMs: 1 }),
      'FND_ERR_INVALID_ARGUMENT',
    );
  });
});
