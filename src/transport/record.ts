// The record layer: after the handshake, every byte of a connection travels inside records
// sealed with that connection's key (AES-256-GCM). By default a record is authenticated only
// (GMAC: the payload is the GCM additional data, sent in the clear, so large payloads are not
// copied); with `encrypt` the payload is also encrypted. A record's sequence number is never sent:
// it is the GCM nonce, counted on both sides, so a record dropped, reordered, replayed, cut or
// forged fails verification and closes the connection. Frames (frame.ts) are cut from the verified
// byte stream, so one frame may span records and one record may hold many frames.
//
//   record = | payload length L: uint32 BE | payload: L bytes | tag: 16 bytes |
//
// The header is authenticated too. Nothing from a record reaches the frame decoder before its tag
// checked out.
import { createCipheriv, createDecipheriv, type DecipherGCM } from 'node:crypto';
import { FoundationError } from '../errors.js';

export const RECORD_HEADER = 4;
export const RECORD_TAG = 16;
/**
 * Largest record payload. A receiver holds at most this much unverified data per connection; a
 * sender cuts larger writes into records of this size (a 64 MiB payload is 256 records, each
 * verified as it arrives instead of all at the end).
 */
export const RECORD_MAX = 256 * 1024;

const ALGO = 'aes-256-gcm';

function ivFor(iv: Buffer, seq: number): Buffer {
  // 96-bit nonce: 4 zero bytes, then the 64-bit record counter (safe integers are plenty: at
  // 10^6 records/s a connection would need 285 years to exhaust 2^53).
  iv.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 4);
  iv.writeUInt32BE(seq >>> 0, 8);
  return iv;
}

/** Seals outgoing records for one direction of one connection. */
export class RecordSealer {
  private seq = 0;
  private readonly iv = Buffer.alloc(12);

  constructor(
    private readonly key: Buffer,
    readonly encrypt: boolean,
  ) {}

  /**
   * Seals in place: `buf` holds RECORD_HEADER free bytes, then the payload (at most RECORD_MAX),
   * then RECORD_TAG free bytes. Fills in the header and tag (and encrypts the payload in place
   * with `encrypt`) and returns `buf`, ready to write in one piece.
   */
  sealInPlace(buf: Buffer): Buffer {
    const len = buf.length - RECORD_HEADER - RECORD_TAG;
    buf.writeUInt32BE(len, 0);
    const c = createCipheriv(ALGO, this.key, ivFor(this.iv, this.seq++));
    const header = buf.subarray(0, RECORD_HEADER);
    const payload = buf.subarray(RECORD_HEADER, RECORD_HEADER + len);
    if (this.encrypt) {
      c.setAAD(header);
      const out = c.update(payload);
      out.copy(payload);
    } else c.setAAD(buf.subarray(0, RECORD_HEADER + len));
    c.final();
    c.getAuthTag().copy(buf, RECORD_HEADER + len);
    return buf;
  }

  /**
   * Seals `data` (borrowed, any length) as as many records as it takes. Returns the pieces to
   * write in order; in authenticate-only mode the payload pieces are slices of `data` (not copied),
   * so the caller must not change `data` until written (node's `socket.write` rule).
   */
  seal(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    const buf = Buffer.isBuffer(data)
      ? data
      : Buffer.from(data.buffer, data.byteOffset, data.length);
    let glue: Buffer | undefined; // the previous record's tag followed by this record's header
    // One record per RECORD_MAX bytes (an empty write is one empty record).
    for (let off = 0; ; off += RECORD_MAX) {
      const payload = buf.subarray(off, Math.min(off + RECORD_MAX, buf.length));
      const head = glue ?? Buffer.allocUnsafe(RECORD_HEADER);
      const hoff = glue ? RECORD_TAG : 0;
      head.writeUInt32BE(payload.length, hoff);
      const c = createCipheriv(ALGO, this.key, ivFor(this.iv, this.seq++));
      const header = head.subarray(hoff, hoff + RECORD_HEADER);
      c.setAAD(header);
      out.push(head);
      if (this.encrypt) out.push(c.update(payload));
      else {
        c.setAAD(payload);
        out.push(payload);
      }
      c.final();
      const last = off + RECORD_MAX >= buf.length;
      glue = Buffer.allocUnsafe(RECORD_TAG + (last ? 0 : RECORD_HEADER));
      c.getAuthTag().copy(glue, 0);
      if (last) {
        out.push(glue);
        break;
      }
    }
    return out;
  }
}

/**
 * Opens incoming records for one direction of one connection. `push` takes raw chunks; every
 * verified payload is handed to `onPayload` in order, as one or more pieces (slices of the
 * received chunks in authenticate-only mode, no copy). Throws FND_ERR_RECORD_AUTH when a tag does
 * not verify and FND_ERR_FRAME_TOO_LARGE when a header announces more than RECORD_MAX.
 */
export class RecordOpener {
  private seq = 0;
  private readonly iv = Buffer.alloc(12);
  /** Header bytes (or tag bytes) split across chunks. */
  private readonly small = Buffer.alloc(RECORD_TAG);
  private smallFill = 0;
  /** Payload bytes still to come for the current record, -1 while reading a header. */
  private need = -1;
  /** Tag bytes still to come, once the payload is complete. */
  private tagNeed = 0;
  private decipher: DecipherGCM | undefined;
  private pieces: Buffer[] = [];
  private held = 0;

  constructor(
    private readonly key: Buffer,
    readonly encrypt: boolean,
    private readonly onPayload: (piece: Buffer) => void,
  ) {}

  /** Unverified bytes held for the current record. */
  get pending(): number {
    return this.held + this.smallFill;
  }

  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let off = 0;
    const end = buf.length;
    while (off < end) {
      if (this.need < 0 && this.tagNeed === 0) {
        // Header.
        let len: number;
        if (this.smallFill === 0 && end - off >= RECORD_HEADER) {
          len = buf.readUInt32BE(off);
          this.begin(buf.subarray(off, off + RECORD_HEADER), len);
          off += RECORD_HEADER;
        } else {
          const k = Math.min(RECORD_HEADER - this.smallFill, end - off);
          buf.copy(this.small, this.smallFill, off, off + k);
          this.smallFill += k;
          off += k;
          if (this.smallFill < RECORD_HEADER) break;
          this.smallFill = 0;
          len = this.small.readUInt32BE(0);
          this.begin(Buffer.from(this.small.subarray(0, RECORD_HEADER)), len);
        }
        if (this.need === 0) this.startTag();
        continue;
      }
      if (this.need > 0) {
        const k = Math.min(this.need, end - off);
        const piece = buf.subarray(off, off + k);
        off += k;
        this.need -= k;
        const d = this.decipher!;
        if (this.encrypt) this.pieces.push(d.update(piece));
        else {
          d.setAAD(piece);
          this.pieces.push(piece);
        }
        this.held += k;
        if (this.need === 0) this.startTag();
        continue;
      }
      // Tag.
      const k = Math.min(this.tagNeed, end - off);
      buf.copy(this.small, this.smallFill, off, off + k);
      this.smallFill += k;
      this.tagNeed -= k;
      off += k;
      if (this.tagNeed === 0) this.finish();
    }
  }

  private begin(header: Buffer, len: number): void {
    if (len > RECORD_MAX) {
      throw new FoundationError(
        'FND_ERR_FRAME_TOO_LARGE',
        `record of ${len} bytes exceeds the maximum of ${RECORD_MAX}`,
        { length: len, max: RECORD_MAX },
      );
    }
    const d = createDecipheriv(ALGO, this.key, ivFor(this.iv, this.seq++));
    d.setAAD(header);
    this.decipher = d;
    this.need = len;
  }

  private startTag(): void {
    this.need = -1;
    this.tagNeed = RECORD_TAG;
    this.smallFill = 0;
  }

  private finish(): void {
    const d = this.decipher!;
    this.decipher = undefined;
    this.smallFill = 0;
    const pieces = this.pieces;
    this.pieces = [];
    this.held = 0;
    let last: Buffer | undefined;
    try {
      d.setAuthTag(this.small);
      last = d.final();
    } catch {
      throw new FoundationError(
        'FND_ERR_RECORD_AUTH',
        `record ${this.seq - 1} failed authentication (forged, altered, dropped, reordered or replayed data)`,
        { record: this.seq - 1 },
      );
    }
    for (const p of pieces) if (p.length > 0) this.onPayload(p);
    if (last && last.length > 0) this.onPayload(last);
  }
}
