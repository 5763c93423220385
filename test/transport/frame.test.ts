// Framing and codec: the decoder must give back exactly the bodies that were framed, whatever the
// chunk boundaries; refuse an oversized frame from its header alone; hold a truncated frame; and,
// fed garbage, fail only with coded errors. The codec must never let garbage through as a message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FoundationError } from '../../src/errors.js';
import { decodeMessage, encode } from '../../src/transport/codec.js';
import {
  BUDGETED_FRAME,
  encodeFrame,
  FrameDecoder,
  frameHeader,
  InboundBudget,
} from '../../src/transport/frame.js';
import {
  CONTROL_MAX_FRAME,
  DEFAULT_CHANNEL_MAX_FRAME,
  FRAME_HEADER,
  frameLimit,
  MSG,
} from '../../src/transport/protocol.js';
import { assertCoded } from '../helpers/assert.js';

/** Splits `buf` at the given cut points (any numbers; reduced modulo the length, sorted). */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  return out;
}

describe('FrameDecoder', () => {
  it('gives back exactly the framed bodies, in order, whatever the chunk boundaries', () => {
    fc.assert(
      fc.property(
        // Non-empty bodies (every msgpack value is at least one byte); the zero-length frame has
        // its own test below.
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (bodies, cuts) => {
          const stream = Buffer.concat(bodies.map((b) => encodeFrame(b)));
          const decoder = new FrameDecoder(1024);
          const got: Buffer[] = [];
          for (const chunk of splitAt(stream, cuts)) got.push(...decoder.push(chunk));
          assert.deepEqual(
            got.map((b) => Buffer.from(b)),
            bodies.map((b) => Buffer.from(b)),
          );
          assert.equal(decoder.pending, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('delivers a frame split into single bytes', () => {
    const body = encode([MSG.SEND, 'kind', { a: 1, b: 'x'.repeat(100) }]);
    const decoder = new FrameDecoder(1024);
    const got: Buffer[] = [];
    for (const byte of encodeFrame(body)) got.push(...decoder.push(Uint8Array.of(byte)));
    assert.equal(got.length, 1);
    assert.deepEqual(decodeMessage(got[0]!), [MSG.SEND, 'kind', { a: 1, b: 'x'.repeat(100) }]);
  });

  it('accepts a frame of exactly maxFrameSize', () => {
    const decoder = new FrameDecoder(64);
    const full = Buffer.alloc(64, 7);
    const got = decoder.push(encodeFrame(full));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0], full);
  });

  it('delivers a zero-length frame as an empty body, even as the last bytes of a chunk', () => {
    // A zero-length frame is garbage to the codec (FND_ERR_FRAME_DECODE there), but the decoder
    // itself must deliver it, not fail with a TypeError on its empty chunk list.
    const decoder = new FrameDecoder(64);
    const got = decoder.push(Buffer.concat([encodeFrame(Buffer.from('ab')), frameHeader(0)]));
    assert.deepEqual(
      got.map((b) => b.toString()),
      ['ab', ''],
    );
    assert.equal(decoder.pending, 0);
    assert.deepEqual(
      decoder.push(frameHeader(0)).map((b) => b.length),
      [0],
    );
  });

  it('throws FND_ERR_FRAME_TOO_LARGE from the header alone, before any body byte arrives', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 1 << 20 }),
        fc.integer({ min: 1, max: 2 ** 32 - 1 }),
        (max, excess) => {
          const announced = Math.min(2 ** 32 - 1, max + excess);
          const decoder = new FrameDecoder(max);
          let thrown: unknown;
          try {
            // Only the 4-byte header: the decoder must not wait for (or buffer) the body.
            decoder.push(frameHeader(announced));
          } catch (err) {
            thrown = err;
          }
          assertCoded(thrown, 'FND_ERR_FRAME_TOO_LARGE');
          assert.equal(thrown.data?.length, announced);
          assert.equal(thrown.data?.max, max);
          assert.equal(decoder.pending, 0, 'nothing of the refused frame is kept');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses an oversized frame that follows good ones, after delivering those', () => {
    const decoder = new FrameDecoder(100);
    const good = encodeFrame(Buffer.from('hello'));
    const got = decoder.push(good);
    assert.equal(got.length, 1);
    assert.throws(
      () => decoder.push(Buffer.concat([frameHeader(101), Buffer.alloc(50)])),
      (e) => e instanceof FoundationError && e.code === 'FND_ERR_FRAME_TOO_LARGE',
    );
    assert.equal(decoder.pending, 0);
  });

  it('yields nothing for a truncated frame and keeps the bytes pending until the rest arrives', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 500 }), fc.nat(), (body, cut) => {
        const frame = encodeFrame(body);
        const keep = cut % frame.length; // strictly fewer bytes than the whole frame
        const decoder = new FrameDecoder(1024);
        assert.deepEqual(decoder.push(frame.subarray(0, keep)), []);
        // A parsed header is remembered as the expected length; every other byte is held.
        const held = keep >= FRAME_HEADER ? keep - FRAME_HEADER : keep;
        assert.equal(decoder.pending, held, 'every body byte received so far is held');
        const rest = decoder.push(frame.subarray(keep));
        assert.equal(rest.length, 1);
        assert.deepEqual(Buffer.from(rest[0]!), Buffer.from(body));
        assert.equal(decoder.pending, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('holds a bare header (body length known, body missing) as pending', () => {
    const decoder = new FrameDecoder(1024);
    assert.deepEqual(decoder.push(frameHeader(10)), []);
    assert.deepEqual(decoder.push(Buffer.alloc(9)), []);
    assert.equal(decoder.pending, 9);
    assert.equal(decoder.push(Buffer.alloc(1)).length, 1);
  });

  it('fed random garbage in random chunks, throws nothing but coded FoundationErrors', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 30 }),
        fc.integer({ min: 0, max: 4096 }),
        (chunks, max) => {
          const decoder = new FrameDecoder(max);
          let delivered = 0;
          for (const chunk of chunks) {
            try {
              for (const body of decoder.push(chunk)) {
                assert.ok(body.length <= max, 'a delivered body never exceeds the maximum');
                delivered += body.length + FRAME_HEADER;
              }
            } catch (err) {
              assertCoded(err, 'FND_ERR_FRAME_TOO_LARGE');
            }
            assert.ok(decoder.pending >= 0);
          }
          const total = chunks.reduce((n, c) => n + c.length, 0);
          assert.ok(delivered + decoder.pending <= total, 'no byte is invented');
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('codec', () => {
  it('round-trips messages through encode / frame / decode', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.array(
          fc.oneof(
            fc.string(),
            fc.integer(),
            fc.boolean(),
            fc.constant(null),
            fc.uint8Array({ maxLength: 50 }),
            // `__proto__` is deliberately renamed by the codec (see the prototype-pollution test).
            fc.dictionary(
              fc.string({ minLength: 1 }).filter((k) => k !== '__proto__'),
              fc.integer(),
              { noNullPrototype: true },
            ),
          ),
          { maxLength: 8 },
        ),
        (type, fields) => {
          const decoder = new FrameDecoder(1 << 20);
          const [body] = decoder.push(encodeFrame(encode([type, ...fields])));
          const msg = decodeMessage(body!);
          assert.equal(msg[0], type);
          assert.equal(msg.length, fields.length + 1);
          for (let i = 0; i < fields.length; i++) {
            const f = fields[i];
            const g = msg[i + 1];
            if (f instanceof Uint8Array)
              assert.deepEqual(Buffer.from(g as Uint8Array), Buffer.from(f));
            else assert.deepEqual(g, f);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a "__proto__" key from the wire cannot pollute prototypes', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const [, decoded] = decodeMessage(encode([MSG.SEND, hostile])) as [
      number,
      Record<string, unknown>,
    ];
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.equal(decoded.polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(decoded.a, 1);
  });

  it('decodeMessage on random bytes throws only FND_ERR_FRAME_DECODE or returns [number, ...]', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        let msg: unknown[];
        try {
          msg = decodeMessage(bytes);
        } catch (err) {
          assertCoded(err, 'FND_ERR_FRAME_DECODE');
          return;
        }
        assert.ok(Array.isArray(msg));
        assert.equal(typeof msg[0], 'number');
      }),
      { numRuns: 2000 },
    );
  });

  it('decodeMessage refuses well-formed msgpack that is not a [type, ...] message', () => {
    for (const value of [1, 'x', null, {}, [], ['1', 2], [null], { 0: 1 }]) {
      assert.throws(
        () => decodeMessage(encode(value)),
        (e) => e instanceof FoundationError && e.code === 'FND_ERR_FRAME_DECODE',
        JSON.stringify(value),
      );
    }
  });

  it('decodeMessage on random bytes behind a valid array prefix still fails only with a code', () => {
    // 0x9X = fixarray of X elements, then a positive fixint type: the decoder must read on into
    // the garbage and either finish a message or refuse with FND_ERR_FRAME_DECODE.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 15 }), fc.uint8Array({ maxLength: 128 }), (n, tail) => {
        const bytes = Buffer.concat([Buffer.from([0x90 | n, 0x1e]), tail]);
        try {
          const msg = decodeMessage(bytes);
          assert.equal(msg[0], 0x1e);
        } catch (err) {
          assertCoded(err, 'FND_ERR_FRAME_DECODE');
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('inbound budget', () => {
  const MiB = 1024 * 1024;
  /** Header of a frame of `len` bytes followed by `have` of its body bytes. */
  const start = (len: number, have: number) =>
    Buffer.concat([frameHeader(len), Buffer.alloc(have)]);

  it('links announcing large frames share one budget: the one that would exceed it is refused', () => {
    const budget = new InboundBudget(3 * MiB);
    const decoders = [0, 1, 2, 3].map(() => new FrameDecoder(128 * MiB, budget));
    decoders[0]!.push(start(MiB + 10, 100));
    decoders[1]!.push(start(MiB + 10, 100));
    assert.equal(budget.used, 2 * MiB + 20);
    assert.throws(
      () => decoders[2]!.push(start(MiB, 1)),
      (e: unknown) => e instanceof FoundationError && e.code === 'FND_ERR_INBOUND_MEMORY',
    );
    assert.equal(budget.used, 2 * MiB + 20, 'the refused frame holds nothing');
    // A finished frame gives its share back; so does a connection dropped mid-frame.
    const rest = Buffer.alloc(MiB + 10 - 100);
    assert.equal(decoders[0]!.push(rest).length, 1);
    assert.equal(budget.used, MiB + 10);
    decoders[1]!.reset();
    assert.equal(budget.used, 0);
    decoders[3]!.push(start(2 * MiB, 1));
    assert.equal(budget.used, 2 * MiB);
  });

  it('frames below BUDGETED_FRAME, and frames that arrive in one chunk, do not count', () => {
    const budget = new InboundBudget(MiB);
    const d = new FrameDecoder(128 * MiB, budget);
    d.push(start(BUDGETED_FRAME - 1, 10));
    assert.equal(budget.used, 0);
    const whole = new FrameDecoder(128 * MiB, budget);
    assert.equal(whole.push(encodeFrame(Buffer.alloc(4 * MiB))).length, 1);
    assert.equal(budget.used, 0);
  });
});

describe('frame limits per channel', () => {
  it('control 4 MiB, default 8 MiB, bulk maxFrameSize; maxFrameSize caps all; one connection: bulk', () => {
    const M = 1024 * 1024;
    assert.equal(frameLimit('control', 128 * M), CONTROL_MAX_FRAME);
    assert.equal(frameLimit('default', 128 * M), DEFAULT_CHANNEL_MAX_FRAME);
    assert.equal(frameLimit('bulk', 128 * M), 128 * M);
    assert.equal(frameLimit('default', 2 * M), 2 * M);
    assert.equal(frameLimit('control', 128 * M, true), 128 * M);
  });
});
