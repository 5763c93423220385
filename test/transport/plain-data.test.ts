// Only plain data crosses the wire: what a peer sends is checked byte by byte before msgpackr
// builds anything, so a member cannot make a node construct a RegExp, Error, Set, BigInt, typed
// array or record, nor nest values without bound or pack millions of them into one frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { FoundationError } from '../../src/errors.js';
import {
  checkPlain,
  DEFAULT_MAX_FRAME_ELEMENTS,
  decodeMessage,
  encode,
  MAX_DEPTH,
} from '../../src/transport/codec.js';

// What an attacker's own msgpackr could produce: every extension switched on.
const rich = new Packr({ moreTypes: true, useRecords: false, useBigIntExtension: true });
const records = new Packr({ useRecords: true });

function refused(bytes: Uint8Array, why: RegExp) {
  assert.throws(
    () => decodeMessage(bytes),
    (e: unknown) =>
      e instanceof FoundationError && e.code === 'FND_ERR_FRAME_DECODE' && why.test(e.message),
  );
}

describe('plain data on the wire', () => {
  it('property: every plain value round-trips (null, booleans, numbers, strings, binary, arrays, objects, undefined, Date)', () => {
    const plain = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.constant(undefined),
        fc.boolean(),
        fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
        fc.integer(),
        fc.maxSafeInteger(),
        fc.string(),
        fc.string({ unit: 'grapheme', maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.date({ noInvalidDate: true }),
        fc.array(tie('value'), { maxLength: 20 }),
        // msgpackr renames a `__proto__` key (prototype pollution guard); see docs/protocol.md.
        fc.dictionary(
          fc.string().filter((k) => k !== '__proto__'),
          tie('value'),
          { maxKeys: 10, noNullPrototype: true },
        ),
      ),
    })).value;
    fc.assert(
      fc.property(plain, (v) => {
        const bytes = encode([30, v]);
        checkPlain(bytes, 0, bytes.length);
        assert.deepEqual(decodeMessage(bytes), [30, v]);
      }),
      { numRuns: 400 },
    );
  });

  it('RegExp, Error, Set, BigInt beyond 64 bits, typed arrays, records and cycles are refused', () => {
    refused(rich.pack([30, /a+$/g]), /extension type/);
    refused(rich.pack([30, new Error('boom')]), /extension type/);
    refused(rich.pack([30, new Set([1, 2])]), /extension type/);
    refused(rich.pack([30, 2n ** 80n]), /extension type/);
    refused(rich.pack([30, new Float64Array([1, 2])]), /extension type/);
    refused(records.pack([30, { a: 1, b: 2 }, { a: 3, b: 4 }]), /extension type/);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    refused(new Packr({ structuredClone: true }).pack([30, cyclic]), /extension type/);
  });

  it(`nesting deeper than ${MAX_DEPTH} is refused`, () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) deep = [deep];
    refused(encode([30, deep]), /nested deeper/);
    let ok: unknown = 1;
    for (let i = 0; i < MAX_DEPTH - 2; i++) ok = [ok];
    assert.doesNotThrow(() => decodeMessage(encode([30, ok])));
  });

  it('a frame with more values than the limit is refused before any is built', () => {
    const many = new Array(DEFAULT_MAX_FRAME_ELEMENTS).fill(0);
    refused(encode([30, many]), /more than/);
    const bytes = encode([30, [1, 2, 3, 4]]);
    // Seven values: the message array, 30, the inner array and its four items.
    assert.throws(() => checkPlain(bytes, 0, bytes.length, 6), /more than 6 values/);
    checkPlain(bytes, 0, bytes.length, 7);
  });

  it('a container announcing more values than bytes left is refused at once', () => {
    // array32 announcing 2^32-1 items in a 6-byte body.
    refused(Buffer.from([0x92, 0x1e, 0xdd, 0xff, 0xff, 0xff, 0xff]), /truncated/);
    // map32 likewise.
    refused(Buffer.from([0x92, 0x1e, 0xdf, 0x7f, 0xff, 0xff, 0xff]), /truncated/);
  });

  it('property: random bytes end in a decoded message or FND_ERR_FRAME_DECODE, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (bytes) => {
        try {
          decodeMessage(bytes);
        } catch (e) {
          assert.ok(e instanceof FoundationError && e.code === 'FND_ERR_FRAME_DECODE', String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
