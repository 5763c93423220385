// The record layer: after the handshake, every byte of a connection travels inside records
// sealed with that connection's key. By default a record is authenticated only (the payload is
// sent in the clear, so large payloads are not copied); with `encrypt` the payload is also
// encrypted (AES-256-GCM). A record's sequence number is never sent: it is counted on both sides
// and enters every tag (as the GCM nonce, or as the first 8 bytes HMAC'd), so a record dropped,
// reordered, replayed, cut or forged fails verification and closes the connection. Frames
// (frame.ts) are cut from the verified byte stream, so one frame may span records and one record
// may hold many frames.
//
//   record = | payload length L: uint32 BE | payload: L bytes | tag: 16 bytes |
//
// The header is authenticated too. Nothing from a record reaches the frame decoder before its tag
// checked out. Authenticate-only tags (docs/protocol.md, "Records"): protocol version 2, GMAC for
// every record; version 3, HMAC-SHA256 (cut to 16 bytes) for records of at most SMALL_RECORD_MAX
// bytes, which costs less than setting up a GCM context (the round trip of a small request costs
// four tags), and GMAC for larger ones, which is several times faster per byte.

import * as nodeCrypto from 'node:crypto';
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type DecipherGCM,
  hkdfSync,
  timingSafeEqual,
} from 'node:crypto';
import { FoundationError } from '../errors.js';
import { PROTOCOL_MAX } from './protocol.js';

export const RECORD_HEADER = 4;
export const RECORD_TAG = 16;
/**
 * Largest record payload. A receiver holds at most this much unverified data per connection; a
 * sender cuts larger writes into records of this size (a 64 MiB payload is 256 records, each
 * verified as it arrives instead of all at the end).
 */
export const RECORD_MAX = 256 * 1024;
/**
 * Version 3, authenticate only: records with at most this many payload bytes are tagged with
 * HMAC-SHA256, larger ones with GMAC (where the two cost the same, measured: about 1–2 KiB).
 */
export const SMALL_RECORD_MAX = 1024;

const ALGO = 'aes-256-gcm';

function ivFor(iv: Buffer, seq: number): Buffer {
  // 96-bit nonce: 4 zero bytes, then the 64-bit record counter (safe integers are plenty: at
  // 10^6 records/s a connection would need 285 years to exhaust 2^53).
  iv.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 4);
  iv.writeUInt32BE(seq >>> 0, 8);
  return iv;
}

/**
 * One direction's keys for `version`: version 2 uses the direction key itself as the GCM key;
 * version 3 derives a GCM key and an HMAC key from it (HKDF-SHA256, labels in docs/protocol.md),
 * so no key serves two algorithms.
 */
function subkeys(key: Buffer, version: number): { gcm: Buffer; mac: Buffer | undefined } {
  if (version < 3) return { gcm: key, mac: undefined };
  const sub = (label: string) =>
    Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from(label), 32));
  return { gcm: sub('FND3 record gcm'), mac: sub('FND3 record hmac') };
}

/** One-shot SHA-256 (Node ≥ 20.12); older versions fall back to createHmac. */
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer })
  .hash;

/**
 * HMAC-SHA256 over `u64(seq) ‖ header ‖ payload` of one small record, built up in place. With
 * the one-shot hash it is two hash calls over buffers prepared once (the key's inner and outer
 * pads stay in front), which is RFC 2104's HMAC exactly, without creating an Hmac object per
 * record.
 */
class SmallMac {
  /** ipad ‖ seq ‖ header ‖ payload */
  private readonly inner = Buffer.alloc(64 + 8 + RECORD_HEADER + SMALL_RECORD_MAX);
  /** opad ‖ inner digest */
  private readonly outer = Buffer.alloc(64 + 32);
  private fill = 0;

  constructor(private readonly key: Buffer) {
    for (let i = 0; i < 64; i++) {
      const k = key[i] ?? 0;
      this.inner[i] = k ^ 0x36;
      this.outer[i] = k ^ 0x5c;
    }
  }

  begin(seq: number, header: Uint8Array): void {
    this.inner.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 64);
    this.inner.writeUInt32BE(seq >>> 0, 68);
    this.inner.set(header, 72);
    this.fill = 72 + RECORD_HEADER;
  }

  add(piece: Uint8Array): void {
    this.inner.set(piece, this.fill);
    this.fill += piece.length;
  }

  /** The full 32-byte HMAC; the record carries its first RECORD_TAG bytes. */
  digest(): Buffer {
    if (oneShot === undefined)
      return createHmac('sha256', this.key).update(this.inner.subarray(64, this.fill)).digest();
    oneShot('sha256', this.inner.subarray(0, this.fill), 'buffer').copy(this.outer, 64);
    return oneShot('sha256', this.outer, 'buffer');
  }
}

/** Seals outgoing records for one direction of one connection. */
export class RecordSealer {
  private seq = 0;
  private readonly iv = Buffer.alloc(12);
  private readonly key: Buffer;
  /** Tags small authenticate-only records (version 3). */
  private readonly mac: SmallMac | undefined;

  /** `version`: the connection's protocol version (it decides the tags, see the top). */
  constructor(
    key: Buffer,
    readonly encrypt: boolean,
    version: number = PROTOCOL_MAX,
  ) {
    const k = subkeys(key, version);
    this.key = k.gcm;
    this.mac = encrypt || !k.mac ? undefined : new SmallMac(k.mac);
  }

  /**
   * Seals in place: `buf` holds RECORD_HEADER free bytes, then the payload (at most RECORD_MAX),
   * then RECORD_TAG free bytes. Fills in the header and tag (and encrypts the payload in place
   * with `encrypt`) and returns `buf`, ready to write in one piece.
   */
  sealInPlace(buf: Buffer): Buffer {
    const len = buf.length - RECORD_HEADER - RECORD_TAG;
    buf.writeUInt32BE(len, 0);
    const mac = this.mac;
    if (mac !== undefined && len <= SMALL_RECORD_MAX) {
      mac.begin(this.seq++, buf.subarray(0, RECORD_HEADER));
      mac.add(buf.subarray(RECORD_HEADER, RECORD_HEADER + len));
      mac.digest().copy(buf, RECORD_HEADER + len, 0, RECORD_TAG);
      return buf;
    }
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
      const header = head.subarray(hoff, hoff + RECORD_HEADER);
      out.push(head);
      let tag: Buffer;
      const mac = this.mac;
      if (mac !== undefined && payload.length <= SMALL_RECORD_MAX) {
        mac.begin(this.seq++, header);
        mac.add(payload);
        out.push(payload);
        tag = mac.digest();
      } else {
        const c = createCipheriv(ALGO, this.key, ivFor(this.iv, this.seq++));
        c.setAAD(header);
        if (this.encrypt) out.push(c.update(payload));
        else {
          c.setAAD(payload);
          out.push(payload);
        }
        c.final();
        tag = c.getAuthTag();
      }
      const last = off + RECORD_MAX >= buf.length;
      glue = Buffer.allocUnsafe(RECORD_TAG + (last ? 0 : RECORD_HEADER));
      tag.copy(glue, 0, 0, RECORD_TAG);
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
  /** The current record is small and tagged by `mac` (version 3, authenticate only). */
  private macced = false;
  private pieces: Buffer[] = [];
  private held = 0;
  private readonly key: Buffer;
  private readonly mac: SmallMac | undefined;

  /** `version`: the connection's protocol version (it decides the tags, see the top). */
  constructor(
    key: Buffer,
    readonly encrypt: boolean,
    private readonly onPayload: (piece: Buffer) => void,
    version: number = PROTOCOL_MAX,
  ) {
    const k = subkeys(key, version);
    this.key = k.gcm;
    this.mac = encrypt || !k.mac ? undefined : new SmallMac(k.mac);
  }

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
        if (this.macced) {
          this.mac!.add(piece);
          this.pieces.push(piece);
        } else {
          const d = this.decipher!;
          if (this.encrypt) this.pieces.push(d.update(piece));
          else {
            d.setAAD(piece);
            this.pieces.push(piece);
          }
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
    this.need = len;
    const mac = this.mac;
    if (mac !== undefined && len <= SMALL_RECORD_MAX) {
      this.macced = true;
      mac.begin(this.seq++, header);
      return;
    }
    this.macced = false;
    const d = createDecipheriv(ALGO, this.key, ivFor(this.iv, this.seq++));
    d.setAAD(header);
    this.decipher = d;
  }

  private startTag(): void {
    this.need = -1;
    this.tagNeed = RECORD_TAG;
    this.smallFill = 0;
  }

  private finish(): void {
    const d = this.decipher;
    this.decipher = undefined;
    this.smallFill = 0;
    const pieces = this.pieces;
    this.pieces = [];
    this.held = 0;
    let last: Buffer | undefined;
    try {
      if (this.macced) {
        if (!timingSafeEqual(this.mac!.digest().subarray(0, RECORD_TAG), this.small))
          throw new Error('tag mismatch');
      } else {
        d!.setAuthTag(this.small);
        last = d!.final();
      }
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
