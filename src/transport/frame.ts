// Length-prefixed framing: 4-byte big-endian length, then the body. The decoder keeps chunks in a
// list (no quadratic re-concatenation for large frames) and enforces a maximum frame size before
// buffering a single byte of an oversized frame.
import { FoundationError } from '../errors.js';
import { FRAME_HEADER } from './protocol.js';

export function frameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32BE(length, 0);
  return h;
}

export function encodeFrame(body: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(body.length), body]);
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1; // body length of the frame being read, -1 while reading a header

  constructor(public maxFrameSize: number) {}

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.buffered;
  }

  /**
   * Appends a chunk and returns every complete frame body in it, in order. Throws
   * FND_ERR_FRAME_TOO_LARGE as soon as a header announces more than the maximum.
   */
  push(chunk: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length === 0) return out;
    this.chunks.push(
      Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
    );
    this.buffered += chunk.length;
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < FRAME_HEADER) break;
        const len = this.take(FRAME_HEADER).readUInt32BE(0);
        if (len > this.maxFrameSize) {
          this.chunks = [];
          this.buffered = 0;
          throw new FoundationError(
            'FND_ERR_FRAME_TOO_LARGE',
            `frame of ${len} bytes exceeds the maximum of ${this.maxFrameSize}`,
            { length: len, max: this.maxFrameSize },
          );
        }
        this.need = len;
      }
      if (this.buffered < this.need) break;
      out.push(this.take(this.need));
      this.need = -1;
    }
    return out;
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
