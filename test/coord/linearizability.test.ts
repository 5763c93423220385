// The linearizability checker itself: it must reject histories no sequential order explains
// (otherwise the Jepsen-style runs prove nothing) and accept ones that only look odd.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from './linearizability.js';

type Op = Operation<KvInput, KvOutput>;
const put = (call: number, ret: number, value: string): Op => ({
  call,
  ret,
  input: { op: 'put', value },
  output: {},
});
const get = (call: number, ret: number, value: string | null): Op => ({
  call,
  ret,
  input: { op: 'get' },
  output: { value },
});
const cas = (
  call: number,
  ret: number,
  expected: string | null,
  value: string,
  ok: boolean,
): Op => ({
  call,
  ret,
  input: { op: 'cas', expected, value },
  output: { ok },
});
const INF = Number.POSITIVE_INFINITY;

describe('linearizability checker (Wing–Gong / Porcupine)', () => {
  it('rejects a stale read after an acknowledged write', () => {
    assert.equal(isLinearizable(kvModel, [put(1, 2, 'a'), get(3, 4, null)]), false);
    assert.equal(isLinearizable(kvModel, [put(1, 2, 'a'), put(3, 4, 'b'), get(5, 6, 'a')]), false);
  });

  it('accepts reads concurrent with a write seeing either value, but not both orders at once', () => {
    assert.equal(isLinearizable(kvModel, [put(1, 10, 'a'), get(2, 3, null), get(4, 5, 'a')]), true);
    // Once a read saw 'a', a later read cannot see the old value again.
    assert.equal(
      isLinearizable(kvModel, [put(1, 10, 'a'), get(2, 3, 'a'), get(4, 5, null)]),
      false,
    );
  });

  it('an indeterminate write may or may not have happened, but only once and only after its call', () => {
    assert.equal(
      isLinearizable(kvModel, [put(1, INF, 'a'), get(2, 3, null), get(4, 5, 'a')]),
      true,
    );
    assert.equal(isLinearizable(kvModel, [put(1, INF, 'a'), get(2, 3, null)]), true);
    assert.equal(isLinearizable(kvModel, [get(1, 2, 'a'), put(3, INF, 'a')]), false);
  });

  it('checks compare-and-set outcomes', () => {
    assert.equal(
      isLinearizable(kvModel, [put(1, 2, 'a'), cas(3, 4, 'a', 'b', true), get(5, 6, 'b')]),
      true,
    );
    assert.equal(isLinearizable(kvModel, [put(1, 2, 'a'), cas(3, 4, 'a', 'b', false)]), false);
    // Two CAS from the same expected value cannot both succeed.
    assert.equal(
      isLinearizable(kvModel, [
        put(1, 2, 'a'),
        cas(3, 9, 'a', 'b', true),
        cas(4, 8, 'a', 'c', true),
      ]),
      false,
    );
  });
});
