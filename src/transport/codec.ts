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

export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one frame body into a message array `[type, ...fields]`, or throws FND_ERR_FRAME_DECODE. */
export function decodeMessage(body: Uint8Array): unknown[] {
  let value: unknown;
  try {
    value = packr.unpack(body);
  } catch (err) {
    throw new FoundationError(
      'FND_ERR_FRAME_DECODE',
      `undecodable frame of ${body.length} bytes`,
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
