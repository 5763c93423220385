// Length-prefixed framing: 4-byte big-endian length, then the body. A body that arrives whole in
// one chunk is handed out as a zero-copy slice of that chunk; one split across chunks is copied
// into a buffer of its announced size as its pieces arrive (no re-concatenation, and the copying of
// a large frame is spread over its arrival instead of happening all at once at the end). The
// maximum frame size is enforced from the header, before a single body byte is buffered.
import { FoundationError } from '../errors.js';
import { FRAME_HEADER } from './protocol.js';

/** Frames at least this large count against the node's inbound budget while they are assembled. */
export const BUDGETED_FRAME = 1024 * 1024;

/**
 * Bytes all inbound connections of a node may hold in partly received large frames, together.
 * Without it, many links each announcing a maximum-size frame could grow memory without bound.
 */
export class InboundBudget {
  used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

export function frameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32BE(length, 0);
  return h;
}

export function encodeFrame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, FRAME_HEADER);
  return out;
}

export class FrameDecoder {
  /** Bytes of a header split across chunks. */
  private readonly head = Buffer.alloc(FRAME_HEADER);
  private headFill = 0;
  /** Body length of the frame being read, -1 while reading a header. */
  private need = -1;
  /** The body being assembled from several chunks, and how much of it has arrived. */
  private body: Buffer | undefined;
  private bodyFill = 0;

  /** Budget bytes held for the frame being assembled. */
  private reserved = 0;

  /**
   * @param budget shared by every inbound connection of a node: a frame of BUDGETED_FRAME bytes
   *   or more is assembled only if the budget has room for it (else FND_ERR_INBOUND_MEMORY).
   */
  constructor(
    public maxFrameSize: number,
    private readonly budget?: InboundBudget,
  ) {}

  /** Bytes held waiting for the rest of a frame (a parsed header is not counted). */
  get pending(): number {
    return this.headFill + this.bodyFill;
  }

  /** True between the first byte of a frame and its last (a header alone counts). */
  get inFrame(): boolean {
    return this.headFill > 0 || this.need >= 0;
  }

  /**
   * Appends a chunk and returns every complete frame body in it, in order. Throws
   * FND_ERR_FRAME_TOO_LARGE as soon as a header announces more than the maximum.
   */
  push(chunk: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    this.each(chunk, (src, start, end) => {
      out.push(start === 0 && end === src.length ? src : src.subarray(start, end));
      return true;
    });
    return out;
  }

  /**
   * Like `push`, without allocating: calls `onFrame(src, start, end)` for every complete body, in
   * order, where the body is `src[start, end)` (a slice of the chunk, or a buffer of its own when
   * it spanned chunks). `onFrame` returns false to stop early (the rest of the chunk is dropped).
   * Bodies before an oversized header in the same chunk are delivered before the throw. Returns
   * how many bytes of the chunk were consumed (all of them unless `onFrame` stopped early).
   */
  each(chunk: Uint8Array, onFrame: (src: Buffer, start: number, end: number) => boolean): number {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const end = buf.length;
    let off = 0;
    while (off < end) {
      if (this.need < 0) {
        let len: number;
        if (this.headFill === 0 && end - off >= FRAME_HEADER) {
          len = buf.readUInt32BE(off);
          off += FRAME_HEADER;
        } else {
          const k = Math.min(FRAME_HEADER - this.headFill, end - off);
          buf.copy(this.head, this.headFill, off, off + k);
          this.headFill += k;
          off += k;
          if (this.headFill < FRAME_HEADER) break;
          len = this.head.readUInt32BE(0);
          this.headFill = 0;
        }
        if (len > this.maxFrameSize) {
          this.reset();
          throw new FoundationError(
            'FND_ERR_FRAME_TOO_LARGE',
            `frame of ${len} bytes exceeds the maximum of ${this.maxFrameSize}`,
            { length: len, max: this.maxFrameSize },
          );
        }
        this.need = len;
      }
      const avail = end - off;
      if (this.body === undefined) {
        if (avail >= this.need) {
          // The whole body is in this chunk: hand out a slice, no copy.
          const start = off;
          off += this.need;
          this.need = -1;
          if (!onFrame(buf, start, off)) return off;
          continue;
        }
        if (avail === 0) break; // a bare header: allocate once body bytes arrive
        if (this.need >= BUDGETED_FRAME && this.budget) {
          if (!this.budget.take(this.need)) {
            const need = this.need;
            this.reset();
            throw new FoundationError(
              'FND_ERR_INBOUND_MEMORY',
              `a frame of ${need} bytes would take inbound buffers past ${this.budget.limit} bytes`,
              { length: need, limit: this.budget.limit },
            );
          }
          this.reserved = this.need;
        }
        this.body = Buffer.allocUnsafe(this.need);
        this.bodyFill = 0;
      }
      const k = Math.min(this.need - this.bodyFill, avail);
      buf.copy(this.body, this.bodyFill, off, off + k);
      this.bodyFill += k;
      off += k;
      if (this.bodyFill === this.need) {
        const body = this.body;
        this.body = undefined;
        this.bodyFill = 0;
        this.need = -1;
        this.release();
        if (!onFrame(body, 0, body.length)) return off;
      }
    }
    return off;
  }

  /** Drops any partial frame and gives back its share of the inbound budget. */
  reset(): void {
    this.headFill = 0;
    this.need = -1;
    this.body = undefined;
    this.bodyFill = 0;
    this.release();
  }

  private release(): void {
    if (this.reserved > 0) {
      this.budget?.give(this.reserved);
      this.reserved = 0;
    }
  }
}
