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

/** A trailing binary field at least this large is copied into the body by `encode` itself. */
const LARGE_BINARY = 64 * 1024;

/**
 * Encodes one message body. A message whose last field is a large Uint8Array/Buffer (a payload on
 * its way to `bulk`) gets exactly the bytes msgpackr would produce, but built here: the fields
 * before it, a bin32 header, then the payload copied once into a buffer of the exact size.
 * msgpackr itself would grow its shared scratch buffer to 1.25x the payload, copy the old scratch
 * buffer's tail into it, and leave every later small message allocating from a buffer that size.
 */
export function encode(value: unknown): Buffer {
  try {
    if (Array.isArray(value) && value.length > 1) {
      const last: unknown = value[value.length - 1];
      if (last instanceof Uint8Array && last.byteLength >= LARGE_BINARY)
        return encodeWithLargeTail(value, last);
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

function encodeWithLargeTail(value: unknown[], tail: Uint8Array): Buffer {
  // Same array header and leading fields; the trailing nil (0xc0) is replaced by the bin32 field.
  const head = packr.pack([...value.slice(0, -1), null]);
  const headLen = head.length - 1;
  const out = Buffer.allocUnsafe(headLen + 5 + tail.byteLength);
  out.set(head.subarray(0, headLen), 0);
  out[headLen] = 0xc6;
  out.writeUInt32BE(tail.byteLength, headLen + 1);
  out.set(tail, headLen + 5);
  return out;
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
