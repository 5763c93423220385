// Assertions shared by the transport and cluster tests: coded rejections and promise state that
// can be inspected without awaiting (so a test on a manual clock never hangs on a stuck promise).
import assert from 'node:assert/strict';
import { type ErrorCode, FoundationError, isErrorCode } from '../../src/errors.js';

/** Awaits `p`, asserts it rejects with a FoundationError of `code`, and returns that error. */
export async function rejectsWithCode(
  p: Promise<unknown>,
  code: ErrorCode,
): Promise<FoundationError> {
  let value: unknown;
  try {
    value = await p;
  } catch (err) {
    assertCoded(err, code);
    return err;
  }
  assert.fail(`expected a rejection with ${code}, but it resolved with ${String(value)}`);
}

/** Asserts `err` is a FoundationError whose code is in the registry (and is `code` when given). */
export function assertCoded(err: unknown, code?: ErrorCode): asserts err is FoundationError {
  assert.ok(err instanceof FoundationError, `expected a FoundationError, got ${String(err)}`);
  assert.ok(isErrorCode(err.code), `code ${err.code} is not in the registry`);
  if (code !== undefined) assert.equal(err.code, code, err.message);
}

export type Settled<T> =
  | { state: 'pending' }
  | { state: 'fulfilled'; value: T }
  | { state: 'rejected'; error: unknown };

/** Tracks a promise so a test can look at its state after letting I/O run. */
export function track<T>(p: Promise<T>): { readonly result: Settled<T>; promise: Promise<T> } {
  const t: { result: Settled<T>; promise: Promise<T> } = {
    result: { state: 'pending' },
    promise: p,
  };
  p.then(
    (value) => {
      t.result = { state: 'fulfilled', value };
    },
    (error: unknown) => {
      t.result = { state: 'rejected', error };
    },
  );
  return t;
}

/** The error of a tracked promise that must have rejected with `code`. */
export function rejectedWith<T>(
  t: { readonly result: Settled<T> },
  code: ErrorCode,
  what = 'promise',
): FoundationError {
  const r = t.result;
  assert.equal(r.state, 'rejected', `${what} should have rejected with ${code}, is ${r.state}`);
  const err = (r as { error: unknown }).error;
  assertCoded(err, code);
  return err;
}

/** The value of a tracked promise that must have resolved. */
export function fulfilled<T>(t: { readonly result: Settled<T> }, what = 'promise'): T {
  const r = t.result;
  if (r.state === 'rejected') {
    assert.fail(`${what} rejected: ${(r.error as Error)?.message ?? String(r.error)}`);
  }
  assert.equal(r.state, 'fulfilled', `${what} is still pending`);
  return (r as { value: T }).value;
}
