// What the pure-JS msgpack fallback costs: Foundation's codec (src/transport/codec.ts) decoding
// typical frames with msgpackr's native string extraction (msgpackr-extract) and without it
// (MSGPACKR_NATIVE_ACCELERATION_DISABLED=true, what a platform without a prebuilt add-on and with
// install scripts blocked gets). Each mode runs in its own child process, alternating, several
// times; every line is JSON. Encoding does not use the add-on, so only decoding is measured.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isNativeAccelerationEnabled } from 'msgpackr';
import { decodeMessage, encode } from '../src/transport/codec.js';
import { emit, emitSetup, role, round } from './common.js';

/** Frames as the runtime sends them: [type, id, kind, payload]. */
const CASES: Record<string, unknown[]> = {
  // An actor call with a 100-byte string (the bench/actors message size).
  'call-100B-string': [2, 12345, 'actor:call', [7, 'x'.repeat(100), null]],
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

const ROUND_MS = 400;
const ROUNDS = 5;
const CHILD_RUNS = 3;

function measure(frame: Uint8Array): number {
  // ops/s over ROUNDS rounds of ROUND_MS each; the median round.
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ROUND_MS) {
      for (let i = 0; i < 256; i++) decodeMessage(frame);
      n += 256;
      now = performance.now();
    }
    rates.push((n / (now - start)) * 1000);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}

if (role === 'child') {
  const out: Record<string, number> = {};
  for (const [name, msg] of Object.entries(CASES)) {
    const frame = encode(msg);
    for (let i = 0; i < 20_000; i++) decodeMessage(frame); // warm up
    out[name] = measure(frame);
  }
  process.send!({ native: isNativeAccelerationEnabled, rates: out });
  process.disconnect();
} else {
  emitSetup('msgpack', { round_ms: ROUND_MS, rounds: ROUNDS, child_runs: CHILD_RUNS });
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
  for (const name of Object.keys(CASES)) {
    const med = (mode: 'native' | 'js') => {
      const xs = results[mode].map((r) => r[name]!).sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)]!;
    };
    const native = med('native');
    const js = med('js');
    emit({
      bench: 'msgpack',
      case: name,
      frame_bytes: encode(CASES[name]!).byteLength,
      native_decodes_per_s: Math.round(native),
      js_decodes_per_s: Math.round(js),
      js_over_native: round(js / native, 2),
    });
  }
}
