// The body codec: msgpackr, configured once. Records/structures are off so every frame decodes on
// its own (no per-connection shared state to desynchronise), and binary stays binary (zero-copy
// Buffer slices of the received frame).
import { Packr, RESET_BUFFER_MODE, REUSE_BUFFER_MODE } from 'msgpackr';
import { FoundationError } from '../errors.js';

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
});
/**
 * `encodeTransient`'s mode: msgpackr writes the message at its current position and then moves
 * back, so the next encode (any: msgpackr's buffer is shared by every Packr) writes over it. By
 * default each result is carved out of an 8 KiB buffer and a new one is started when that one is
 * used up: for a body that is copied at once anyway, a buffer allocation every ~50 messages, and
 * garbage collections for the external memory behind them.
 */
const SCRATCH_MODE = REUSE_BUFFER_MODE | RESET_BUFFER_MODE;

/** A trailing binary field at least this large is left out of the head by `encodeParts`, not copied. */
export const LARGE_BINARY = 64 * 1024;

/**
 * A message body in pieces that go on the wire back to back, as one frame body: `head` is the
 * encoded array header, the fields before the binary and its bin header; `tail` is the message's
 * trailing binary itself, the caller's own memory, not a copy; `after`, when present, the encoded
 * fields that follow the binary in its array (an actor call's caller, after its message).
 * `byteLength` is the body's length, as on a Uint8Array, so a body of either form is measured the
 * same way.
 */
export interface SplitBody {
  readonly head: Buffer;
  readonly tail: Uint8Array;
  readonly after: Buffer | undefined;
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
  if (body.after) out.set(body.after, body.head.length + body.tail.length);
  return out;
}

/**
 * Encodes one message body without copying a large payload: a message (array) whose trailing
 * binary (its last field, or an element of a last field that is an array, see `trailingBinary`)
 * is a Uint8Array/Buffer of at least LARGE_BINARY bytes comes back as a SplitBody, whose pieces
 * together are byte for byte what msgpackr encodes for the whole message; anything else as one
 * buffer. The tail is the caller's buffer: whoever writes it must not let it be modified until
 * the write completed (the same rule as node's `socket.write`).
 */
export function encodeParts(value: unknown): Buffer | SplitBody {
  return encodeBody(value, false);
}

/**
 * `encodeParts` for a body that is copied before anything else is encoded (the messenger's:
 * `PeerManager.send` copies it into the connection's batch at once). Its bytes are msgpackr's
 * scratch bytes, which the next encode of any kind overwrites; a trailing binary of any size comes
 * back as a SplitBody's tail (msgpackr copies small binaries slowly; the batch copy is the only
 * one). Allocates no buffer per message.
 */
export function encodeTransient(value: unknown): Buffer | SplitBody {
  return encodeBody(value, true);
}

function encodeBody(value: unknown, transient: boolean): Buffer | SplitBody {
  try {
    const at = Array.isArray(value) && value.length > 1 ? trailingBinary(value) : -1;
    if (at >= 0) {
      const split = splitTail(value as unknown[], at, transient);
      if (split) return split;
    }
    if (!transient) return packr.pack(value);
    const t = packr.pack(value, SCRATCH_MODE) as Scratch;
    if (t.end - t.start < LARGE_BINARY) return scratchViews.view(t, t.start, t.end);
    // A large body is kept by reference (written as it is), so it gets bytes of its own; and the
    // scratch buffer, grown to hold it, is let go instead of being kept at that size.
    const own = Buffer.from(t.subarray(t.start, t.end));
    packr.useBuffer(Buffer.allocUnsafeSlow(8192));
    return own;
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

/** msgpackr's buffer as `pack` returns it in SCRATCH_MODE: the message is `[start, end)`. */
type Scratch = Buffer & { start: number; end: number };

/**
 * Most fields that may follow the binary in its array (`after`): an actor call's caller and request
 * context. Their encoding is copied once more than the rest, so only a few small ones are worth it.
 */
const MAX_AFTER_FIELDS = 2;
/** `after` longer than this (encoded) is not split off: the message is encoded whole instead. */
const MAX_AFTER_BYTES = 1024;

/**
 * Where a message's binary to split off is, as -1 (none), `msg.length - 1` (its last field), or
 * `msg.length + i` (element `i` of its last field, an array). That element is the array's last, or
 * is followed by at most MAX_AFTER_FIELDS fields that are not binary. Array headers come before
 * their elements, so the binary's bytes end the encoding but for those few fields (`after`).
 */
function trailingBinary(msg: unknown[]): number {
  const last = msg[msg.length - 1];
  if (last instanceof Uint8Array) return msg.length - 1;
  if (!Array.isArray(last) || last.length === 0) return -1;
  const stop = Math.max(0, last.length - 1 - MAX_AFTER_FIELDS);
  for (let i = last.length - 1; i >= stop; i--)
    if (last[i] instanceof Uint8Array) return msg.length + i;
  return -1;
}

/**
 * msgpackr's encoding of `msg` with the binary at `at` (see trailingBinary) and everything after it
 * in its array replaced by nil. The array holding them is changed in place for the encode and put
 * back before this returns, so no array is copied per message; a frozen one (whose elements cannot
 * be set) is copied instead, as is one with more fields after the binary than trailingBinary
 * allows (not reached). The values set aside, at most the binary and MAX_AFTER_FIELDS, are locals.
 */
function packWithNilTail(msg: unknown[], at: number, mode?: number): Buffer {
  const top = at < msg.length; // the binary is a field of `msg` itself, not of its last field
  const arr = top ? msg : (msg[msg.length - 1] as unknown[]);
  const from = top ? at : at - msg.length;
  const n = arr.length - from;
  if (Object.isFrozen(arr) || n > 1 + MAX_AFTER_FIELDS) {
    const copy = arr.slice();
    copy.fill(null, from);
    if (top) return packr.pack(copy, mode);
    const outer = msg.slice();
    outer[outer.length - 1] = copy;
    return packr.pack(outer, mode);
  }
  const s0 = arr[from];
  const s1 = n > 1 ? arr[from + 1] : undefined;
  const s2 = n > 2 ? arr[from + 2] : undefined;
  arr[from] = null;
  if (n > 1) arr[from + 1] = null;
  if (n > 2) arr[from + 2] = null;
  try {
    return packr.pack(msg, mode);
  } finally {
    arr[from] = s0;
    if (n > 1) arr[from + 1] = s1;
    if (n > 2) arr[from + 2] = s2;
  }
}

/** Bytes of msgpack's bin header for `n` bytes, in the smallest format (as msgpackr writes it). */
const binHeaderSize = (n: number) => (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);

function writeBinHeader(buf: Buffer, at: number, n: number): void {
  if (n < 0x100) {
    buf[at] = 0xc4;
    buf[at + 1] = n;
  } else if (n < 0x10000) {
    buf[at] = 0xc5;
    buf.writeUInt16BE(n, at + 1);
  } else {
    buf[at] = 0xc6;
    buf.writeUInt32BE(n, at + 1);
  }
}

/**
 * Views of one buffer's bytes from a fixed start, one per length, made on first use and handed
 * out again: a transient encoding that is the same few bytes long every time (a message's head,
 * its `after`, a small message in msgpackr's scratch buffer) costs no Buffer object (making one
 * costs more than encoding a small message by hand). Starts afresh when the buffer or the start
 * changes; lengths of VIEWS or more get a new view each time.
 */
class Views {
  static readonly VIEWS = 2048;
  private of: Uint8Array | undefined;
  private at = -1;
  private list: Buffer[] = [];

  /** `buf`'s bytes [start, end). */
  view(buf: Buffer, start: number, end: number): Buffer {
    const n = end - start;
    if (n >= Views.VIEWS) return buf.subarray(start, end);
    if (buf !== this.of || start !== this.at) {
      this.of = buf;
      this.at = start;
      this.list = [];
    }
    let v = this.list[n];
    if (v === undefined) {
      v = buf.subarray(start, end);
      this.list[n] = v;
    }
    return v;
  }
}

/** A buffer that pieces of messages are written into by hand (scratch bytes: valid until the next encode). */
class HandBytes {
  readonly buf: Buffer;
  private readonly views = new Views();

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  /** The first `n` bytes. */
  view(n: number): Buffer {
    return this.views.view(this.buf, 0, n);
  }

  /** The first `n` bytes, in a buffer of their own. */
  copy(n: number): Buffer {
    return Buffer.from(this.buf.subarray(0, n));
  }
}

/** Views of msgpackr's scratch buffer, for encodeTransient's bodies. */
const scratchViews = new Views();

/** Where a message's `after` bytes are written. */
const afterScratch = new HandBytes(MAX_AFTER_BYTES);

/**
 * Writes `v` at `p` as msgpackr would (codec options above), if it is simple: null, a boolean, a
 * number, a string, or a short array (fewer than 16 elements, at most two levels) of such;
 * returns the position after it, or -1 when `v` is anything else or does not fit before `end`.
 * What an actor call carries after its message (the caller's [node, id]) is written by hand:
 * msgpackr's encoder started a second time costs more than it saves.
 */
function writeSimple(buf: Buffer, p: number, end: number, v: unknown, depth: number): number {
  if (p >= end) return -1;
  if (v === null) {
    buf[p] = 0xc0;
    return p + 1;
  }
  if (typeof v === 'boolean') {
    buf[p] = v ? 0xc3 : 0xc2;
    return p + 1;
  }
  if (typeof v === 'number') {
    if (v >>> 0 !== v && v >> 0 !== v) {
      // Anything but a 32-bit integer is a float64 for msgpackr (these options): larger integers too.
      if (p + 9 > end) return -1;
      buf[p] = 0xcb;
      buf.writeDoubleBE(v, p + 1);
      return p + 9;
    }
    // The longest integer form is a type byte and 4 bytes.
    if (p + 5 > end) return -1;
    if (v < 0x80 && v >= -0x20) {
      buf[p] = v & 0xff; // positive or negative fixint
      return p + 1;
    }
    const unsigned = v >= 0;
    const size = unsigned
      ? v < 0x100
        ? 1
        : v < 0x10000
          ? 2
          : 4
      : v >= -0x80
        ? 1
        : v >= -0x8000
          ? 2
          : 4;
    buf[p] = (unsigned ? 0xcc : 0xd0) + (size >> 1); // uint8/16/32 or int8/16/32
    // Big-endian, byte by byte (two's complement for negatives: `>>` keeps the sign bits).
    for (let i = size; i > 0; i--) buf[p + i] = (v >> ((size - i) * 8)) & 0xff;
    return p + 1 + size;
  }
  if (typeof v === 'string') {
    // Short ASCII (a message kind, a node name): written as it is read, with no length pass first.
    const len = v.length;
    if (len < 0x20 && p + 1 + len <= end) {
      let i = 0;
      for (; i < len; i++) {
        const c = v.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p + 1 + i] = c;
      }
      if (i === len) {
        buf[p] = 0xa0 | len;
        return p + 1 + len;
      }
    }
    const n = Buffer.byteLength(v);
    const h = n < 0x20 ? 1 : n < 0x100 ? 2 : 3;
    if (n >= 0x10000 || p + h + n > end) return -1;
    if (h === 1) buf[p] = 0xa0 | n;
    else if (h === 2) {
      buf[p] = 0xd9;
      buf[p + 1] = n;
    } else {
      buf[p] = 0xda;
      buf.writeUInt16BE(n, p + 1);
    }
    p += h;
    if (n === v.length) for (let i = 0; i < n; i++) buf[p + i] = v.charCodeAt(i);
    else buf.write(v, p, 'utf8');
    return p + n;
  }
  if (Array.isArray(v) && v.length < 16 && depth < 2) {
    buf[p++] = 0x90 | v.length;
    for (let i = 0; i < v.length && p >= 0; i++) p = writeSimple(buf, p, end, v[i], depth + 1);
    return p;
  }
  return -1;
}

/**
 * The encoded fields after the binary at `at` (element `at - msg.length` of the last field), or
 * undefined if there are none; null if they are not simple (see writeSimple) or too long: then the
 * message is encoded whole. Scratch bytes when `transient`, else a buffer of their own.
 */
function afterBytes(msg: unknown[], at: number, transient: boolean): Buffer | undefined | null {
  if (at < msg.length) return undefined;
  const inner = msg[msg.length - 1] as unknown[];
  let p = 0;
  for (let i = at - msg.length + 1; i < inner.length; i++) {
    p = writeSimple(afterScratch.buf, p, MAX_AFTER_BYTES, inner[i], 0);
    if (p < 0) return null;
  }
  if (p === 0) return undefined;
  return transient ? afterScratch.view(p) : afterScratch.copy(p);
}

/** Longest head `handHead` writes; a longer one (a long kind string) is left to msgpackr. */
const MAX_HEAD_BYTES = 256;
/** Where a message's head and simple messages are written (handHead, writeFields). */
const headScratch = new HandBytes(MAX_HEAD_BYTES);

/**
 * Writes the head of `msg` (see splitTail) into headScratch by hand when every field before the
 * binary at `at` (`n` bytes) is simple (writeSimple) and the arrays have fewer than 16 elements:
 * the array headers, those fields and the bin header, the bytes msgpackr writes, without starting
 * msgpackr (whose start-up and type dispatch cost more than the handful of fields of a message
 * envelope). Returns the head's length, or -1 when msgpackr must encode it.
 */
function handHead(msg: unknown[], at: number, n: number): number {
  const top = at < msg.length;
  let p = writeFields(msg, msg.length - 1);
  if (!top && p >= 0) {
    const inner = msg[msg.length - 1] as unknown[];
    if (inner.length >= 16) return -1;
    headScratch.buf[p++] = 0x90 | inner.length;
    for (let i = 0; i < at - msg.length && p >= 0; i++)
      p = writeSimple(headScratch.buf, p, HEAD_END, inner[i], 0);
  }
  if (p < 0) return -1;
  writeBinHeader(headScratch.buf, p, n);
  return p + binHeaderSize(n);
}

/** Room kept at the end of headScratch for an inner array's header (1 byte) and a bin header (at most 5). */
const HEAD_END = MAX_HEAD_BYTES - 6;

/**
 * Writes the array header of `msg` (fewer than 16 fields) and its first `count` fields, if simple,
 * into headScratch: the number of bytes written, or -1.
 */
function writeFields(msg: unknown[], count: number): number {
  if (msg.length >= 16) return -1;
  headScratch.buf[0] = 0x90 | msg.length;
  let p = 1;
  for (let i = 0; i < count && p >= 0; i++)
    p = writeSimple(headScratch.buf, p, HEAD_END, msg[i], 0);
  return p;
}

/**
 * A message of simple fields only (see writeSimple), encoded without msgpackr into a buffer of its
 * own, so that scratch bytes of an encode in progress stay as they are; undefined if it is not
 * simple. The bytes are msgpackr's.
 */
export function encodeSimple(msg: unknown[]): Buffer | undefined {
  const n = writeFields(msg, msg.length);
  return n < 0 ? undefined : headScratch.copy(n);
}

/**
 * The encoding of `wider`, a message with fields added before its last one (the payload) to
 * `msg`, whose encoding `body` (from encodeTransient) is: the payload's bytes are reused, not
 * encoded again (its binary is not copied either). Transient like encodeTransient's.
 */
export function widenTransient(body: EncodedBody, msg: unknown[], wider: unknown[]): EncodedBody {
  if (body instanceof Uint8Array) {
    // One buffer: msgpackr's header and fields, then the payload's bytes.
    const old = writeFields(msg, msg.length - 1);
    const head = old < 0 ? -1 : writeFields(wider, wider.length - 1);
    if (head >= 0) {
      const tail = body.subarray(old);
      return {
        head: headScratch.view(head),
        tail,
        after: undefined,
        byteLength: head + tail.length,
      };
    }
  }
  // A split body (only its head is encoded again), or fields that are not simple.
  return encodeTransient(wider);
}

/**
 * The message as a SplitBody: everything up to the binary's bytes (the encoding with nil in its
 * place and in the fields after it, that nil replaced by the bin header, the other nils dropped),
 * the binary itself, then what follows it (`afterBytes`). Pieces are scratch bytes when
 * `transient`, else buffers of their own. Undefined when not worth it (a small binary for
 * encodeParts, long fields after it) or when the scratch buffer has no room behind the message for
 * the longer header: encode it whole instead.
 */
function splitTail(msg: unknown[], at: number, transient: boolean): SplitBody | undefined {
  const tail = (
    at < msg.length ? msg[at] : (msg[msg.length - 1] as unknown[])[at - msg.length]
  ) as Uint8Array;
  const n = tail.byteLength;
  if (!transient && n < LARGE_BINARY) return undefined;
  const after = afterBytes(msg, at, transient);
  if (after === null) return undefined;
  const dropped =
    after === undefined ? 0 : (msg[msg.length - 1] as unknown[]).length - (at - msg.length) - 1;
  const hs = binHeaderSize(n);
  let head: Buffer;
  const hand = handHead(msg, at, n);
  if (hand >= 0) head = transient ? headScratch.view(hand) : headScratch.copy(hand);
  else if (transient) {
    const t = packWithNilTail(msg, at, SCRATCH_MODE) as Scratch;
    const nil = t.end - 1 - dropped;
    if (nil + hs > t.length) return undefined;
    writeBinHeader(t, nil, n);
    head = t.subarray(t.start, nil + hs);
  } else {
    const packed = packWithNilTail(msg, at);
    const headLen = packed.length - 1 - dropped;
    head = Buffer.allocUnsafe(headLen + hs);
    head.set(packed.subarray(0, headLen), 0);
    writeBinHeader(head, headLen, n);
  }
  return { head, tail, after, byteLength: head.length + n + (after?.length ?? 0) };
}

/** Deepest nesting of arrays/maps a received message may have. */
export const MAX_DEPTH = 64;
/** Default most values (array items, map keys and values, scalars) one received message may hold. */
export const DEFAULT_MAX_FRAME_ELEMENTS = 1_000_000;

// msgpack extension types a received message may carry: msgpackr's `undefined` (0) and the
// timestamp (-1, a Date). Every other extension (RegExp, Error, Set, BigInt, typed arrays,
// records/structures, structured-clone references, bundled strings) is refused before decoding.
const PLAIN_EXT = (type: number) => type === 0 || type === 0xff;

function notPlain(what: string): FoundationError {
  return new FoundationError('FND_ERR_FRAME_DECODE', `frame is not plain data: ${what}`);
}

/**
 * Walks the msgpack value in `src[start, end)` without building it and throws FND_ERR_FRAME_DECODE
 * unless it is plain data (see docs/protocol.md, "Codec"), at most MAX_DEPTH deep, with at most
 * `maxElements` values. Runs before anything is built from the bytes, so nothing but plain data is
 * ever constructed from a peer's message and its decoding cost is bounded. Skips over the bytes of
 * strings and binaries, so a large payload costs nothing here. Returns whether the value is
 * simple: no 64-bit integers, no extensions and no map keys but strings, only what `buildSimple`
 * builds, and at most SIMPLE_MAX_STRINGS strings (map keys included).
 */
export function checkPlain(
  src: Uint8Array,
  start: number,
  end: number,
  maxElements = DEFAULT_MAX_FRAME_ELEMENTS,
): boolean {
  // stack[d] = values still to read at depth d (reused: decoding is synchronous, never nested).
  const stack = STACK;
  // maps[d] = 1 when depth d is a map's entries: there, an even count left means a key is next.
  const maps = MAPS;
  let top = 0;
  stack[0] = 1;
  maps[0] = 0;
  let p = start;
  let elements = 0;
  let simple = true;
  let strings = 0;
  while (top >= 0) {
    const left = stack[top]!;
    if (left === 0) {
      top--;
      continue;
    }
    stack[top] = left - 1;
    if (++elements > maxElements) throw notPlain(`more than ${maxElements} values`);
    if (p >= end) throw notPlain('truncated');
    const b = src[p++]!;
    // A map key that is not a string: msgpackr turns it into one its own way (or refuses it).
    if (
      maps[top] === 1 &&
      (left & 1) === 0 &&
      !((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb))
    )
      simple = false;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
    let container: number;
    let map = false;
    let skip = 0;
    if (b >= 0xa0 && b <= 0xbf) {
      skip = b & 0x1f;
      strings++;
    } else if (b >= 0x90 && b <= 0x9f) container = b & 0x0f;
    else if (b >= 0x80 && b <= 0x8f) {
      container = (b & 0x0f) * 2;
      map = true;
    } else if (b === 0xcc || b === 0xd0) skip = 1;
    else if (b === 0xcd || b === 0xd1) skip = 2;
    else if (b === 0xca || b === 0xce || b === 0xd2) skip = 4;
    else if (b === 0xcb) skip = 8;
    else if (b === 0xcf || b === 0xd3) {
      // uint64, int64
      skip = 8;
      simple = false;
    } else if (b === 0xc4 || b === 0xd9) {
      if (p + 1 > end) throw notPlain('truncated');
      skip = 1 + src[p]!;
      if (b === 0xd9) strings++;
    } else if (b === 0xc5 || b === 0xda) {
      if (p + 2 > end) throw notPlain('truncated');
      skip = 2 + readU(src, p, 2);
      if (b === 0xda) strings++;
    } else if (b === 0xc6 || b === 0xdb) {
      if (p + 4 > end) throw notPlain('truncated');
      skip = 4 + readU(src, p, 4);
      if (b === 0xdb) strings++;
    } else if (b >= 0xd4 && b <= 0xd8) {
      // fixext 1/2/4/8/16: type byte, then 2^(b-0xd4) data bytes.
      if (p + 1 > end) throw notPlain('truncated');
      if (!PLAIN_EXT(src[p]!)) throw notPlain(`extension type ${src[p]}`);
      skip = 1 + (1 << (b - 0xd4));
      simple = false;
    } else if (b === 0xc7 || b === 0xc8 || b === 0xc9) {
      const w = b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4;
      if (p + w + 1 > end) throw notPlain('truncated');
      if (!PLAIN_EXT(src[p + w]!)) throw notPlain(`extension type ${src[p + w]}`);
      skip = w + 1 + readU(src, p, w);
      simple = false;
    } else if (b === 0xdc || b === 0xde) {
      if (p + 2 > end) throw notPlain('truncated');
      map = b === 0xde;
      container = readU(src, p, 2) * (map ? 2 : 1);
      p += 2;
    } else if (b === 0xdd || b === 0xdf) {
      if (p + 4 > end) throw notPlain('truncated');
      map = b === 0xdf;
      container = readU(src, p, 4) * (map ? 2 : 1);
      p += 4;
    } else throw notPlain(`byte 0x${b.toString(16)}`);
    if (skip > 0) {
      p += skip;
      if (p > end) throw notPlain('truncated');
      continue;
    }
    if (container! > 0) {
      if (top + 1 >= MAX_DEPTH) throw notPlain(`nested deeper than ${MAX_DEPTH}`);
      // A container cannot hold more values than there are bytes left.
      if (container! > end - p) throw notPlain('truncated');
      stack[++top] = container!;
      maps[top] = map ? 1 : 0;
    }
  }
  if (p !== end) throw notPlain('trailing bytes');
  return simple && strings <= SIMPLE_MAX_STRINGS;
}

// ---- building simple values by hand ----
//
// msgpackr's decoder costs most of a small message's decode in setting itself up, and a short
// string inside a received batch goes through its native add-on (msgpackr decodes short strings in
// JavaScript only when the decode ends before byte 140 of the buffer): about 65 ns per frame of a
// batch (docs/benchmarks.md, "msgpack without the native add-on"). The messages Foundation sends
// most (requests, replies, actor calls and the small objects they carry: nil, booleans, integers
// of up to 32 bits, floats, a few strings, binaries, arrays, maps with string keys) are built here
// instead, from bytes `checkPlain` has just walked: every length, count and depth in them is
// known to be within bounds, so this code reads without checking them again. It builds what
// msgpackr builds (the property test in test/transport/plain-data.test.ts holds it to that):
// numbers, binaries as views of the received bytes (as msgpackr's `subarray`), strings decoded as
// UTF-8, maps as plain objects (a key `__proto__` renamed `__proto_`, as msgpackr does).

/**
 * Most strings a frame built by hand may hold. msgpackr's add-on extracts all of a frame's
 * strings in one call, which wins over building them one by one (and over STRINGS, which many
 * different strings would only churn) once there are more than a few: a table of 50 rows of
 * names decoded 3x slower by hand (docs/benchmarks.md, "Ninth pass").
 */
export const SIMPLE_MAX_STRINGS = 8;

/**
 * The frame being built and the position in it (building is synchronous, never nested). Let go
 * after each frame, so a received chunk is not kept alive by the last frame built from it.
 */
const NO_BYTES = new Uint8Array(0);
let bSrc: Uint8Array = NO_BYTES;
let bPos = 0;

const fromCharCode = String.fromCharCode;
/** A float's bytes are copied here and read big-endian, whatever the host's byte order. */
const FLOAT_BYTES = new Uint8Array(8);
const FLOAT = new DataView(FLOAT_BYTES.buffer);
const utf8Slice = Buffer.prototype.utf8Slice as (
  this: Uint8Array,
  start: number,
  end: number,
) => string;

/** Longest string looked up in (and kept by) STRINGS. */
const SHORT_STRING = 32;
/**
 * Short ASCII strings decoded lately, one per slot, the slot taken from a string's length and three
 * of its bytes: a message kind, a node or actor name arrives again and again, and finding it here
 * costs less than making it anew (and a string the program already holds is cheaper to use as a
 * map key: its hash is computed once). Strings that differ only in other bytes share a slot and
 * evict each other, one reason for SIMPLE_MAX_STRINGS.
 */
const STRINGS = new Array<string | undefined>(512).fill(undefined);
/**
 * The bytes of STRINGS[i] at i * SHORT_STRING: a lookup compares bytes with bytes (a string built
 * piece by piece is a rope, and reading its characters back costs more than building it).
 */
const STRING_BYTES = new Uint8Array(STRINGS.length * SHORT_STRING);

/** Builds the value starting at `src[start]`, which `checkPlain` found plain and simple. */
function buildSimple(src: Uint8Array, start: number): unknown {
  bSrc = src;
  bPos = start;
  const value = buildValue();
  bSrc = NO_BYTES;
  return value;
}

function buildValue(): unknown {
  const src = bSrc;
  const b = src[bPos++]!;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return buildString(b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return buildArray(b & 0x0f);
  if (b >= 0x80 && b <= 0x8f) return buildMap(b & 0x0f);
  const p = bPos;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcc:
      bPos = p + 1;
      return src[p]!;
    case 0xcd:
      bPos = p + 2;
      return readU(src, p, 2);
    case 0xce:
      bPos = p + 4;
      return readU(src, p, 4);
    case 0xd0:
      bPos = p + 1;
      return (src[p]! << 24) >> 24;
    case 0xd1:
      bPos = p + 2;
      return (readU(src, p, 2) << 16) >> 16;
    case 0xd2:
      bPos = p + 4;
      return readU(src, p, 4) | 0;
    case 0xca:
    case 0xcb: {
      const n = b === 0xca ? 4 : 8;
      for (let i = 0; i < n; i++) FLOAT_BYTES[i] = src[p + i]!;
      bPos = p + n;
      return n === 4 ? FLOAT.getFloat32(0) : FLOAT.getFloat64(0);
    }
    case 0xd9:
      bPos = p + 1;
      return buildString(src[p]!);
    case 0xda:
      bPos = p + 2;
      return buildString(readU(src, p, 2));
    case 0xdb:
      bPos = p + 4;
      return buildString(readU(src, p, 4));
    case 0xc4:
      bPos = p + 1;
      return buildBinary(src[p]!);
    case 0xc5:
      bPos = p + 2;
      return buildBinary(readU(src, p, 2));
    case 0xc6:
      bPos = p + 4;
      return buildBinary(readU(src, p, 4));
    case 0xdc:
      bPos = p + 2;
      return buildArray(readU(src, p, 2));
    case 0xdd:
      bPos = p + 4;
      return buildArray(readU(src, p, 4));
    case 0xde:
      bPos = p + 2;
      return buildMap(readU(src, p, 2));
    default:
      // 0xdf, the only other byte checkPlain passes in a simple value.
      bPos = p + 4;
      return buildMap(readU(src, p, 4));
  }
}

/** A map as msgpackr builds it (`mapsAsObjects`): a plain object, its keys strings (checkPlain). */
function buildMap(n: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    let key = buildValue() as string;
    // msgpackr's guard against prototype pollution, kept so both decoders agree.
    if (key === '__proto__') key = '__proto_';
    o[key] = buildValue();
  }
  return o;
}

function buildArray(n: number): unknown[] {
  const a = new Array<unknown>(n);
  for (let i = 0; i < n; i++) a[i] = buildValue();
  return a;
}

function buildBinary(n: number): Uint8Array {
  const p = bPos;
  bPos = p + n;
  return bSrc.subarray(p, p + n);
}

function buildString(n: number): string {
  const src = bSrc;
  const p = bPos;
  const e = p + n;
  bPos = e;
  if (n > SHORT_STRING) return utf8Slice.call(src, p, e);
  if (n === 0) return '';
  // The slot: from the length and three of the bytes (hashing every byte costs more than the
  // comparison below, which a string in the wrong slot fails anyway).
  const slot =
    (n ^ (src[p]! << 4) ^ (src[p + (n >> 1)]! << 2) ^ (src[e - 1]! << 1)) & (STRINGS.length - 1);
  const known = STRINGS[slot];
  const at = slot * SHORT_STRING;
  if (known !== undefined && known.length === n) {
    let i = 0;
    while (i < n && STRING_BYTES[at + i] === src[p + i]) i++;
    // Same bytes as a string kept here, so ASCII too.
    if (i === n) return known;
  }
  for (let i = p; i < e; i++) if (src[i]! > 0x7f) return utf8Slice.call(src, p, e);
  let s = '';
  let i = p;
  for (; i + 4 <= e; i += 4) s += fromCharCode(src[i]!, src[i + 1]!, src[i + 2]!, src[i + 3]!);
  for (; i < e; i++) s += fromCharCode(src[i]!);
  for (i = 0; i < n; i++) STRING_BYTES[at + i] = src[p + i]!;
  STRINGS[slot] = s;
  return s;
}

const STACK = new Float64Array(MAX_DEPTH + 1);
const MAPS = new Uint8Array(MAX_DEPTH + 1);

function readU(src: Uint8Array, p: number, width: number): number {
  if (width === 1) return src[p]!;
  if (width === 2) return (src[p]! << 8) | src[p + 1]!;
  return src[p]! * 0x1000000 + ((src[p + 1]! << 16) | (src[p + 2]! << 8) | src[p + 3]!);
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
export function decodeMessageAt(
  src: Uint8Array,
  start: number,
  end: number,
  maxElements = DEFAULT_MAX_FRAME_ELEMENTS,
): unknown[] {
  const simple = end > start && checkPlain(src, start, end, maxElements);
  let value: unknown;
  if (simple) value = buildSimple(src, start);
  else
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
