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
  decodeMessageAt,
  encode,
  MAX_DEPTH,
  SIMPLE_MAX_STRINGS,
} from '../../src/transport/codec.js';

// What an attacker's own msgpackr could produce: every extension switched on.
const rich = new Packr({ moreTypes: true, useRecords: false, useBigIntExtension: true });
const records = new Packr({ useRecords: true });
// msgpackr as the codec configures it: what every frame decoded to before simple frames were built
// by hand, and what they must still decode to.
const reference = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
});

/** `bytes` placed at `at` in a larger buffer, as a frame sits in a received batch. */
function inBatch(bytes: Uint8Array, at: number): { buf: Buffer; start: number; end: number } {
  const buf = Buffer.alloc(at + bytes.length + 16, 0xc1);
  buf.set(bytes, at);
  return { buf, start: at, end: at + bytes.length };
}

/** A simple value (what the codec builds by hand). */
type Simple = number | string | Buffer | null | boolean | Simple[] | { [key: string]: Simple };

/**
 * Writes `v` in the `form`-th msgpack encoding that can hold it (0: the smallest, as msgpackr
 * writes it; higher: wider, as another encoder may): any peer may send any valid form.
 */
function writeForm(out: number[], v: Simple, form: number): void {
  const be = (n: number, bytes: number) => {
    for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  };
  /**
   * A length header: the `form`-th of `forms` ([type, width]; width 0: a fix type, `type | n`,
   * for n below `fixMax`) that can hold n.
   */
  const header = (n: number, forms: Array<[number, number]>, fixMax = 16) => {
    const fit = forms.filter(([, w]) => (w === 0 ? n < fixMax : n < 2 ** (8 * w)));
    const [type, w] = fit[form % fit.length]!;
    if (w === 0) out.push(type | n);
    else {
      out.push(type);
      be(n, w);
    }
  };
  if (v === null) out.push(0xc0);
  else if (v === true) out.push(0xc3);
  else if (v === false) out.push(0xc2);
  else if (typeof v === 'number' && !Number.isInteger(v)) {
    // float64, or float32 when the value is one
    const f32 = Math.fround(v) === v && form % 2 === 1;
    const b = Buffer.alloc(f32 ? 4 : 8);
    if (f32) b.writeFloatBE(v);
    else b.writeDoubleBE(v);
    out.push(f32 ? 0xca : 0xcb, ...b);
  } else if (typeof v === 'number') {
    const forms: Array<[number, number]> = []; // [type byte or -1 for a fixint, bytes]
    if (v >= 0 && v <= 0x7f) forms.push([-1, 0]);
    if (v >= -32 && v < 0) forms.push([-1, 0]);
    if (v >= 0 && v <= 0xff) forms.push([0xcc, 1]);
    if (v >= 0 && v <= 0xffff) forms.push([0xcd, 2]);
    if (v >= 0) forms.push([0xce, 4]);
    if (v >= -0x80 && v <= 0x7f) forms.push([0xd0, 1]);
    if (v >= -0x8000 && v <= 0x7fff) forms.push([0xd1, 2]);
    if (v >= -0x80000000 && v <= 0x7fffffff) forms.push([0xd2, 4]);
    const [type, bytes] = forms[form % forms.length]!;
    if (type < 0) out.push(v & 0xff);
    else {
      out.push(type);
      be(v < 0 ? v + 2 ** (8 * bytes) : v, bytes);
    }
  } else if (typeof v === 'string' || Buffer.isBuffer(v)) {
    const bytes = typeof v === 'string' ? Buffer.from(v) : v;
    if (typeof v === 'string')
      header(
        bytes.length,
        [
          [0xa0, 0],
          [0xd9, 1],
          [0xda, 2],
          [0xdb, 4],
        ],
        32,
      );
    else
      header(bytes.length, [
        [0xc4, 1],
        [0xc5, 2],
        [0xc6, 4],
      ]);
    for (const b of bytes) out.push(b);
  } else if (!Array.isArray(v)) {
    const keys = Object.keys(v);
    header(keys.length, [
      [0x80, 0],
      [0xde, 2],
      [0xdf, 4],
    ]);
    for (const k of keys) {
      writeForm(out, k, form);
      writeForm(out, v[k]!, form);
    }
  } else {
    header(v.length, [
      [0x90, 0],
      [0xdc, 2],
      [0xdd, 4],
    ]);
    for (const item of v) writeForm(out, item, form);
  }
}

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

  describe('simple frames, built without msgpackr', () => {
    const simple: fc.Arbitrary<Simple> = fc.letrec<{ value: Simple }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
        fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, -1, -32, -33, -128),
        fc.constantFrom(-129, -32768, -32769, -(2 ** 31)),
        fc.string({ maxLength: 40 }),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.constantFrom('actor:call', 'echo', 'a'.repeat(32), 'b'.repeat(33), 'é', ''),
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.double({ noNaN: true }).filter((d) => !Number.isInteger(d)),
        fc.constantFrom(0.5, -1.25, 1e300, Number.NEGATIVE_INFINITY, 2 ** 53 + 2, 0.1),
        fc.array(tie('value'), { maxLength: 20 }),
        fc.dictionary(
          fc.oneof(fc.string({ maxLength: 12 }), fc.constant('__proto__')),
          tie('value'),
          {
            maxKeys: 4,
            noNullPrototype: true,
          },
        ),
      ),
    })).value;

    it('property: a simple message decodes to exactly what msgpackr makes of it, in any valid form, alone or inside a batch', () => {
      fc.assert(
        fc.property(simple, fc.nat(3), fc.nat(300), (v, form, at) => {
          const forms = [Buffer.from(encode([30, v]))];
          const out: number[] = [0x92, 30];
          writeForm(out, v, form);
          forms.push(Buffer.from(out));
          for (const bytes of forms) {
            const expected = reference.unpack(bytes);
            assert.deepStrictEqual(decodeMessage(bytes), expected);
            const { buf, start, end } = inBatch(bytes, at);
            const got = decodeMessageAt(buf, start, end);
            assert.deepStrictEqual(got, expected);
            assert.deepStrictEqual(got, reference.unpack(buf, { start, end }));
          }
        }),
        { numRuns: 1000 },
      );
    });

    it(`a message with more than ${SIMPLE_MAX_STRINGS} strings is left to msgpackr, and decodes the same`, () => {
      const names = (k: number) => Array.from({ length: k }, (_, i) => `service.name.${i}`);
      const few = encode([30, names(SIMPLE_MAX_STRINGS)]);
      const many = encode([30, names(SIMPLE_MAX_STRINGS + 1)]);
      assert.equal(checkPlain(few, 0, few.length), true);
      assert.equal(checkPlain(many, 0, many.length), false);
      assert.deepStrictEqual(decodeMessage(many), reference.unpack(many));
    });

    it('a binary in a simple message is a view of the received bytes, as msgpackr makes it', () => {
      const { buf, start, end } = inBatch(encode([30, 'k', Buffer.from([1, 2, 3])]), 500);
      const [, kind, bin] = decodeMessageAt(buf, start, end) as [number, string, Buffer];
      assert.equal(kind, 'k');
      assert.ok(Buffer.isBuffer(bin));
      assert.equal(bin.buffer, buf.buffer);
      buf[end - 1] = 9;
      assert.deepEqual([...bin], [1, 2, 9]);
    });

    it('short strings are shared between messages, and never mistaken for one with the same hash', () => {
      const a = decodeMessage(encode([30, 'actor:call']))[1];
      const b = decodeMessage(encode([30, 'actor:call']))[1];
      assert.equal(a, 'actor:call');
      assert.equal(b, 'actor:call');
      // Every 2-character ASCII string: many share a slot, each decodes to itself.
      for (let x = 0x20; x < 0x7f; x++)
        for (let y = 0x20; y < 0x7f; y++) {
          const s = String.fromCharCode(x, y);
          assert.equal(decodeMessage(encode([30, s, s]))[2], s);
        }
    });

    it('a string that is not valid UTF-8 decodes with replacement characters and the rest of the message stays in place', () => {
      // [30, <0xc3 alone>, 7]: a lead byte without its continuation byte inside a 1-byte string.
      const msg = decodeMessage(Buffer.from([0x93, 0x1e, 0xa1, 0xc3, 0x07]));
      assert.deepEqual(msg, [30, '\ufffd', 7]);
    });

    it('a message with a 64-bit integer, undefined, a Date or a map key that is not a string still decodes through msgpackr', () => {
      const d = new Date(1_700_000_000_000);
      const v = [30, { a: 1, b: ['x', 2] }, 1.5, 2 ** 53 - 1, -(2 ** 40), undefined, d, 'é'];
      assert.deepStrictEqual(decodeMessage(encode(v)), reference.unpack(encode(v)));
      // {1: 'a', true: 2}, keys as another encoder may write them
      const bytes = Buffer.from([0x92, 0x1e, 0x82, 0x01, 0xa1, 0x61, 0xc3, 0x02]);
      const { buf, start, end } = inBatch(bytes, 300);
      assert.equal(checkPlain(buf, start, end), false);
      assert.deepStrictEqual(decodeMessageAt(buf, start, end), reference.unpack(bytes));
      assert.deepStrictEqual(decodeMessageAt(buf, start, end), [30, { 1: 'a', true: 2 }]);
      // A key that is an array or a binary: msgpackr refuses the frame, and so does the codec.
      refused(Buffer.from([0x92, 0x1e, 0x81, 0x92, 0x01, 0x02, 0x03]), /undecodable/);
      refused(Buffer.from([0x92, 0x1e, 0x81, 0xc4, 0x01, 0x41, 0x03]), /undecodable/);
      // uint64, as another encoder may write 2^32 + 5
      const big = Buffer.from([0x92, 0x1e, 0xcf, 0, 0, 0, 1, 0, 0, 0, 5]);
      assert.equal(checkPlain(big, 0, big.length), false);
      assert.deepStrictEqual(decodeMessage(big), [30, 2 ** 32 + 5]);
    });

    it('an actor call carrying a small object is built by hand: a plain object, keys in order, floats exact', () => {
      const call = encode([
        31,
        7,
        'actor:call',
        [5, { op: 'get', key: 'k1', n: 1.5, ok: true }, null],
      ]);
      assert.equal(checkPlain(call, 0, call.length), true);
      const msg = decodeMessage(call);
      assert.deepStrictEqual(msg, reference.unpack(call));
      const obj = (msg[3] as unknown[])[1] as Record<string, unknown>;
      assert.deepEqual(Object.keys(obj), ['op', 'key', 'n', 'ok']);
      assert.equal(Object.getPrototypeOf(obj), Object.prototype);
    });

    it('a key __proto__ is renamed, as msgpackr renames it, and pollutes nothing', () => {
      const key = [...Buffer.from('__proto__')];
      const bytes = Buffer.from([0x92, 0x1e, 0x81, 0xa9, ...key, 0x81, 0xa1, 0x78, 0x01]);
      assert.equal(checkPlain(bytes, 0, bytes.length), true);
      const msg = decodeMessage(bytes) as [number, Record<string, unknown>];
      assert.deepStrictEqual(msg, reference.unpack(bytes));
      assert.deepEqual(Object.keys(msg[1]), ['__proto_']);
      assert.equal(Object.getPrototypeOf(msg[1]), Object.prototype);
      assert.equal(({} as Record<string, unknown>).x, undefined);
    });
  });
});
