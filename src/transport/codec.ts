// The body codec: msgpackr, configured once. Records/structures are off so every frame decodes on
// its own (no per-connection shared state to desynchronise), and binary stays binary (zero-copy
// Buffer slices of the received frame).
import { Packr } from 'msgpackr';
import { FoundationError } from '../errors.js';

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
});

/** A trailing binary field at least this large is left out of the head by `encodeParts`, not copied. */
export const LARGE_BINARY = 64 * 1024;

/**
 * A message body in two pieces that go on the wire back to back, as one frame body: `head` is the
 * encoded array header, the leading fields and a bin32 header; `tail` is the message's trailing
 * binary field itself, the caller's own memory, not a copy. `byteLength` is the body's length, as
 * on a Uint8Array, so a body of either form is measured the same way.
 */
export interface SplitBody {
  readonly head: Buffer;
  readonly tail: Uint8Array;
  readonly byteLength: number;
}

/** An encoded body: one buffer, or a SplitBody whose tail is sent without being copied. */
export type EncodedBody = Uint8Array | SplitBody;

/**
 * Encodes one message body into a single buffer (for callers that need one: the handshake,
 * membership). A message with a large trailing binary gets exactly msgpackr's bytes, built from
 * `encodeParts` with the payload copied once into a buffer of the exact size: msgpackr itself would
 * grow its shared scratch buffer to 1.25x the payload, copy the old scratch buffer's tail into it,
 * and leave every later small message allocating from a buffer that size.
 */
export function encode(value: unknown): Buffer {
  const body = encodeParts(value);
  if (body instanceof Uint8Array) return body;
  const out = Buffer.allocUnsafe(body.byteLength);
  out.set(body.head, 0);
  out.set(body.tail, body.head.length);
  return out;
}

/**
 * Encodes one message body without copying a large payload: a message (array) whose last field
 * is a Uint8Array/Buffer of at least LARGE_BINARY bytes comes back as a SplitBody, whose head and
 * tail together are byte for byte what msgpackr encodes for the whole message; anything else as
 * one buffer. The tail is the caller's buffer: whoever writes it must not let it be modified until
 * the write completed (the same rule as node's `socket.write`).
 */
export function encodeParts(value: unknown): Buffer | SplitBody {
  try {
    if (Array.isArray(value) && value.length > 1) {
      const last: unknown = value[value.length - 1];
      if (last instanceof Uint8Array && last.byteLength >= LARGE_BINARY)
        return splitLargeTail(value, last);
    }
    return packr.pack(value);
  } catch (err) {
    // Circular structures (RangeError), BigInts beyond 64 bits, exotic objects.
    throw new FoundationError(
      'FND_ERR_ENCODE',
      `cannot encode message: ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

function splitLargeTail(value: unknown[], tail: Uint8Array): SplitBody {
  // Same array header and leading fields; the trailing nil (0xc0) is replaced by a bin32 header
  // (what msgpackr writes for any binary longer than 0xffff bytes).
  const packed = packr.pack([...value.slice(0, -1), null]);
  const headLen = packed.length - 1;
  const head = Buffer.allocUnsafe(headLen + 5);
  head.set(packed.subarray(0, headLen), 0);
  head[headLen] = 0xc6;
  head.writeUInt32BE(tail.byteLength, headLen + 1);
  return { head, tail, byteLength: head.length + tail.byteLength };
}

/** Decodes one frame body into a message array `[type, ...fields]`, or throws FND_ERR_FRAME_DECODE. */
export function decodeMessage(body: Uint8Array): unknown[] {
  return decodeMessageAt(body, 0, body.length);
}

// Reused for every call: msgpackr reads start/end synchronously and keeps no reference.
const range = { start: 0, end: 0 };

/**
 * Decodes the frame body `src[start, end)` in place: no slice, and msgpackr's per-buffer DataView
 * is then made once per received chunk instead of once per message.
 */
export function decodeMessageAt(src: Uint8Array, start: number, end: number): unknown[] {
  let value: unknown;
  try {
    if (end <= start) {
      // An empty body is undecodable; decode it on its own (msgpackr reads `end: 0` as "to the
      // end of the buffer", and would read past an empty range into the next frame).
      value = packr.unpack(src.subarray(start, start));
    } else {
      range.start = start;
      range.end = end;
      value = packr.unpack(src, range);
    }
  } catch (err) {
    throw new FoundationError(
      'FND_ERR_FRAME_DECODE',
      `undecodable frame of ${end - start} bytes`,
      undefined,
      {
        cause: err,
      },
    );
  }
  if (!Array.isArray(value) || typeof value[0] !== 'number') {
    throw new FoundationError('FND_ERR_FRAME_DECODE', 'frame is not a [type, ...fields] message');
  }
  return value;
}
