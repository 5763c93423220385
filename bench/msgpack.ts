// What the pure-JS msgpack fallback costs: Foundation's codec (src/transport/codec.ts) decoding
// typical frames with msgpackr's native string extraction (msgpackr-extract) and without it
// (MSGPACKR_NATIVE_ACCELERATION_DISABLED=true, what a platform without a prebuilt add-on and with
// install scripts blocked gets). Small frames are decoded twice: alone (offset 0) and in place at
// an offset inside a larger received chunk, the way a link decodes the frames of a batch
// (decodeMessageAt): msgpackr decodes a short string in JavaScript only when the decode's end
// offset is below 140, so the offset changes which path it takes. Each mode runs in its own child
// process, alternating, several times; every line is JSON. Frames the codec builds by hand
// (simple ones: no 64-bit integers, extensions or non-string map keys, at most 8 strings) do not
// reach msgpackr, so the two modes differ only on the others (the table of 50 records). Encoding does not use the add-on; it is measured
// once, in a child of its own: the codec's encodeTransient (what the messenger sends) against
// msgpackr packing the same message into its scratch buffer (the baseline), in alternating rounds.
// Decoding is measured the same way in another child: the codec's decodeMessageAt (checks, then
// builds) against msgpackr unpacking the same frame in place (the baseline), inside a batch.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isNativeAccelerationEnabled, Packr, RESET_BUFFER_MODE, REUSE_BUFFER_MODE } from 'msgpackr';
import { decodeMessageAt, encode, encodeTransient } from '../src/transport/codec.js';
import { emit, emitSetup, role, round } from './common.js';

/** Frames as the runtime sends them: [type, id, kind, payload]. */
const CASES: Record<string, unknown[]> = {
  // An actor call with a 100-byte string (the bench/actors message size).
  'call-100B-string': [2, 12345, 'actor:call', [7, 'x'.repeat(100), null]],
  // bench/actors' request: a 100-byte Buffer to the `echo` handler.
  'request-100B-binary': [31, 12345, 'echo', Buffer.alloc(100, 0x61)],
  // A record-heavy message: 50 entries of short strings (registry / member tables).
  'table-50-records': [
    1,
    'dist:sync',
    Array.from({ length: 50 }, (_, i) => ({
      name: `service.name.${i}`,
      node: `node-${i % 7}.cluster.local`,
      meta: { zone: 'eu-west-1a', role: 'worker' },
    })),
  ],
  // One 16 KiB string (a text payload under the bulk threshold).
  'string-16KiB': [1, 'app:doc', 'lorem ipsum '.repeat(1366)],
};

/** Frames to encode: envelopes around a 100-byte Buffer (bench/actors' message), and an object. */
const payload = Buffer.alloc(100, 0x61);
const ENCODE_CASES: Record<string, (i: number) => unknown[]> = {
  'request-100B-binary': (i) => [31, 100_000 + i, 'echo', payload],
  'reply-100B-binary': (i) => [32, 100_000 + i, true, payload],
  'actor-call-100B-binary': (i) => [31, 100_000 + i, 'actor:call', [7, payload, null]],
  // Not simple: left to msgpackr whole, as before (the codec must not cost more here).
  'actor-call-object': (i) => [31, 100_000 + i, 'actor:call', [7, { op: 'get', key: 'k1' }, null]],
};

/** Cases also decoded at BATCH_OFFSET inside a larger chunk (their lines say `-in-batch`). */
const IN_BATCH = ['call-100B-string', 'request-100B-binary'];
const BATCH_OFFSET = 4096;

/** One result line per decode: a case's frame (`frame`, a key of CASES) at `offset`. */
interface Decode {
  line: string;
  frame: string;
  offset: number;
}
const DECODES: Decode[] = Object.keys(CASES).flatMap((frame) => [
  { line: frame, frame, offset: 0 },
  ...(IN_BATCH.includes(frame) ? [{ line: `${frame}-in-batch`, frame, offset: BATCH_OFFSET }] : []),
]);

/** A decode of `frame` in place at `offset` of a larger buffer, as a link decodes a batch's frames. */
function decodeAt(frame: Uint8Array, offset: number): () => unknown {
  const chunk = Buffer.alloc(offset + frame.byteLength + 64);
  chunk.set(frame, offset);
  return () => decodeMessageAt(chunk, offset, offset + frame.byteLength);
}

const ROUND_MS = 400;
const ROUNDS = 5;
const CHILD_RUNS = 3;

/** Operations per second of one round of ROUND_MS: `op(i)` in batches of 256. */
function round1(op: (i: number) => unknown): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ROUND_MS) {
    for (let i = 0; i < 256; i++) op(n + i);
    n += 256;
    now = performance.now();
  }
  return (n / (now - start)) * 1000;
}

const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ops/s over ROUNDS rounds of each op, the ops alternating round by round; the median round of each. */
function measure(ops: Array<(i: number) => unknown>): number[] {
  const rates: number[][] = ops.map(() => []);
  for (let r = 0; r < ROUNDS; r++)
    for (let k = 0; k < ops.length; k++) rates[k]!.push(round1(ops[k]!));
  return rates.map(median);
}

if (role === 'child') {
  const out: Record<string, number> = {};
  for (const [frame, msg] of Object.entries(CASES)) {
    // A frame's decodes (alone, in a batch) alternate round by round.
    const decodes = DECODES.filter((d) => d.frame === frame);
    const bytes = encode(msg);
    const ops = decodes.map((d) => decodeAt(bytes, d.offset));
    for (const op of ops) for (let i = 0; i < 20_000; i++) op(); // warm up
    measure(ops).forEach((rate, k) => {
      out[decodes[k]!.line] = rate;
    });
  }
  process.send!({ native: isNativeAccelerationEnabled, rates: out });
  process.disconnect();
} else if (role === 'encode' || role === 'decode') {
  // The codec against msgpackr with the codec's options (the baseline): encoding into msgpackr's
  // scratch buffer as the codec does, or decoding a frame in place inside a batch as a link does.
  const packr = new Packr({
    useRecords: false,
    mapsAsObjects: true,
    int64AsType: 'number',
    moreTypes: false,
  });
  const out: Record<string, [number, number]> = {};
  for (const [name, make] of Object.entries(ENCODE_CASES)) {
    let codec: (i: number) => unknown;
    let msgpackr: (i: number) => unknown;
    if (role === 'encode') {
      codec = (i) => encodeTransient(make(i));
      msgpackr = (i) => packr.pack(make(i), REUSE_BUFFER_MODE | RESET_BUFFER_MODE);
    } else {
      const frame = encode(make(0));
      const chunk = Buffer.alloc(BATCH_OFFSET + frame.byteLength + 64);
      chunk.set(frame, BATCH_OFFSET);
      const at = { start: BATCH_OFFSET, end: BATCH_OFFSET + frame.byteLength };
      codec = () => decodeMessageAt(chunk, at.start, at.end);
      msgpackr = () => packr.unpack(chunk, at);
    }
    for (let i = 0; i < 200_000; i++) {
      codec(i); // warm up
      msgpackr(i);
    }
    out[name] = measure([codec, msgpackr]) as [number, number];
  }
  process.send!(out);
  process.disconnect();
} else {
  emitSetup('msgpack', {
    round_ms: ROUND_MS,
    rounds: ROUNDS,
    child_runs: CHILD_RUNS,
    batch_offset: BATCH_OFFSET,
  });
  const self = fileURLToPath(import.meta.url);
  const runChild = (disable: boolean) =>
    new Promise<{ native: boolean; rates: Record<string, number> }>((resolve, reject) => {
      const env = { ...process.env };
      if (disable) env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';
      else delete env.MSGPACKR_NATIVE_ACCELERATION_DISABLED;
      const child = fork(self, ['child'], { env });
      child.once('message', (m) =>
        resolve(m as { native: boolean; rates: Record<string, number> }),
      );
      child.once('error', reject);
    });
  const results: Record<'native' | 'js', Array<Record<string, number>>> = { native: [], js: [] };
  for (let i = 0; i < CHILD_RUNS; i++) {
    for (const disable of [false, true]) {
      const r = await runChild(disable);
      const mode = disable ? 'js' : 'native';
      if (!disable && !r.native) {
        emit({ bench: 'msgpack', error: 'msgpackr-extract is not loaded here: no native mode' });
        process.exit(1);
      }
      results[mode].push(r.rates);
    }
  }
  for (const { line: name, frame, offset } of DECODES) {
    const med = (mode: 'native' | 'js') => {
      const xs = results[mode].map((r) => r[name]!).sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)]!;
    };
    const native = med('native');
    const js = med('js');
    emit({
      bench: 'msgpack',
      case: name,
      frame_bytes: encode(CASES[frame]!).byteLength,
      ...(offset > 0 ? { offset } : {}),
      native_decodes_per_s: Math.round(native),
      js_decodes_per_s: Math.round(js),
      js_over_native: round(js / native, 2),
    });
  }
  const pair = (which: 'encode' | 'decode') =>
    new Promise<Record<string, [number, number]>>((resolve, reject) => {
      const child = fork(self, [which]);
      child.once('message', (m) => resolve(m as Record<string, [number, number]>));
      child.once('error', reject);
    });
  const WHAT = {
    encode: 'encodeTransient (what the messenger sends) against msgpackr packing the same message',
    decode:
      'decodeMessageAt (checkPlain, then built by hand or by msgpackr) against msgpackr unpacking the same frame, inside a batch',
  };
  for (const mode of ['encode', 'decode'] as const) {
    for (const [name, [codec, msgpackr]] of Object.entries(await pair(mode))) {
      emit({
        bench: 'msgpack',
        mode,
        case: name,
        ...(mode === 'decode' ? { offset: BATCH_OFFSET } : {}),
        codec_ns: round(1e9 / codec, 1),
        msgpackr_ns: round(1e9 / msgpackr, 1),
        rate_codec_over_msgpackr: round(codec / msgpackr, 2),
        what: WHAT[mode],
      });
    }
  }
}
