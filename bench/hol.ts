// bench/hol: head-of-line blocking. Small requests on the `default` channel, issued at a fixed
// rate (one due every millisecond), while 64 MiB payloads are sent back to back on `bulk`. Modes:
//   channels           Foundation as shipped: one connection per channel
//   single-connection  Foundation with `singleConnection: true` (everything queued on one socket)
//   bare-net           the machine's floor: two bare node:net sockets, the small requests as
//                      msgpackr [id, payload] frames on one, the 64 MiB frames on the other, whose
//                      bytes the receiver only counts (no encoding, no copy, no decoding)
//   bare-net-buffer    the same, but the receiver assembles each 64 MiB payload into one Buffer
//                      as its pieces arrive: the least any receiver that hands a payload to
//                      application code must do (one allocation and one copy per payload)
// p50/p99 are measured from the moment each request was sent; p99_from_due also counts the time a
// request waited to be sent because the sender's own event loop was stalled. Each process also
// reports its event-loop delay and its garbage-collection pauses during the phase.
// Usage: node dist/bench/hol.js   (prints JSON lines; about a minute)
import net from 'node:net';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { Foundation } from '../src/index.js';
import {
  type Child,
  childLifecycle,
  deadline,
  emit,
  emitSetup,
  latencySummary,
  noDiscovery,
  pinToCpu,
  role,
  roleArgs,
  round,
  runMain,
  runRole,
  spawnRole,
  unknownRole,
} from './common.js';

const BENCH = 'hol';
const FILE = fileURLToPath(import.meta.url);
const BLOB_BYTES = 64 << 20;
/** The loaded phase lasts until at least BLOBS payloads went through and at least LOADED_MS passed. */
const BLOBS = 8;
const LOADED_MS = 3000;
const SMALL_BYTES = 100;
/** One small request is due every PERIOD_MS. */
const PERIOD_MS = 1;
const IDLE_MS = 1000;
const PHASE_LIMIT_MS = 20_000;
const TARGET_P99_US = 5000;
const RECEIVER = 'hol-receiver';
/** Both modes get the same, larger queue bound: with one connection a 64 MiB payload and the small
 * requests behind it share one queue, which the default 64 MiB bound would refuse. */
const MAX_QUEUE_BYTES = 256 << 20;

type Mode = 'channels' | 'single-connection' | 'bare-net' | 'bare-net-buffer';
const MODES: Mode[] = ['channels', 'single-connection', 'bare-net', 'bare-net-buffer'];
const isBare = (mode: Mode) => mode === 'bare-net' || mode === 'bare-net-buffer';

type LoopDelay = {
  max_us: number;
  p99_us: number;
  /** Garbage collections (minor and major) and their total and longest duration. */
  gc_count: number;
  gc_ms: number;
  gc_max_ms: number;
};

/**
 * A 1 ms event-loop-delay monitor and a GC observer; `take()` returns how late the ticks were, and
 * the collections that ran, since the last call.
 */
function loopMonitor(): { take(): LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let gc = { count: 0, ms: 0, max: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
      gc.max = Math.max(gc.max, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  // The histogram records whole tick intervals; subtract the 1 ms resolution to get the lateness.
  const late = (ns: number) => round(Math.max(0, ns / 1000 - 1000), 1);
  return {
    take() {
      const r = {
        max_us: late(h.max),
        p99_us: late(h.percentile(99)),
        gc_count: gc.count,
        gc_ms: round(gc.ms, 1),
        gc_max_ms: round(gc.max, 1),
      };
      h.reset();
      gc = { count: 0, ms: 0, max: 0 };
      return r;
    },
  };
}

/** What the sender needs from an implementation. */
interface Sender {
  small(payload: Buffer): Promise<unknown>;
  blob(payload: Buffer): Promise<number>;
  /** The receiver's event-loop delay since the last call. */
  receiverLoop(): Promise<LoopDelay>;
  close(): Promise<void> | void;
}

// ---------------------------------------------------------------------------------------------
// Foundation

async function foundationReceiver(cluster: string, single: boolean): Promise<void> {
  const node = await Foundation.start({
    name: RECEIVER,
    cluster,
    discovery: noDiscovery,
    logLevel: 'silent',
    singleConnection: single,
    maxQueueBytes: MAX_QUEUE_BYTES,
  });
  const loop = loopMonitor();
  node.messenger.handle('echo', (p) => p);
  node.messenger.handle('blob', (p) => (p as Buffer).length);
  node.messenger.handle('loop', () => loop.take());
  childLifecycle(() => node.stop());
  emit({ ready: true, address: node.address });
}

async function foundationSender(
  cluster: string,
  address: string,
  single: boolean,
): Promise<Sender> {
  const node = await Foundation.start({
    name: 'hol-sender',
    cluster,
    discovery: { strategy: 'static', hosts: [address] },
    logLevel: 'silent',
    singleConnection: single,
    maxQueueBytes: MAX_QUEUE_BYTES,
  });
  const up = () => node.members().some((m) => m.name === RECEIVER && m.status === 'alive');
  for (let i = 0; !up(); i++) {
    if (i > 1000) throw new Error('receiver never became a member');
    await new Promise((r) => setTimeout(r, 10));
  }
  const m = node.messenger;
  return {
    small: (p) => m.request(RECEIVER, 'echo', p, { timeout: 60_000 }),
    blob: (p) => m.request<number>(RECEIVER, 'blob', p, { channel: 'bulk', timeout: 60_000 }),
    receiverLoop: () => m.request<LoopDelay>(RECEIVER, 'loop', null),
    close: () => node.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// bare-net: the floor. Frames are a 4-byte length + body; small bodies are msgpackr [id, value].

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function frame(value: unknown): Buffer {
  const body = packr.pack(value);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/**
 * Streaming reader: hands complete small bodies to `onSmall`; bodies above 1 MiB are only counted
 * (or, with `assemble`, copied into a Buffer of their size as they arrive), and `onLarge(length)`
 * is called when the last byte arrived.
 */
function bareReader(
  onSmall: (body: Buffer) => void,
  onLarge: (n: number) => void,
  assemble = false,
) {
  let head = Buffer.alloc(0);
  let need = -1;
  let got = 0;
  let parts: Buffer[] = [];
  let large: Buffer | undefined;
  return (chunk: Buffer) => {
    let off = 0;
    while (off < chunk.length) {
      if (need < 0) {
        const k = Math.min(4 - head.length, chunk.length - off);
        head = Buffer.concat([head, chunk.subarray(off, off + k)]);
        off += k;
        if (head.length < 4) return;
        need = head.readUInt32BE(0);
        head = Buffer.alloc(0);
        got = 0;
        parts = [];
      }
      const k = Math.min(need - got, chunk.length - off);
      if (need <= 1 << 20) parts.push(chunk.subarray(off, off + k));
      else if (assemble) {
        large ??= Buffer.allocUnsafe(need);
        chunk.copy(large, got, off, off + k);
      }
      got += k;
      off += k;
      if (got === need) {
        if (need <= 1 << 20) onSmall(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
        else onLarge(large?.length ?? need);
        large = undefined;
        need = -1;
      }
    }
  };
}

async function bareReceiver(assemble: boolean): Promise<void> {
  const loop = loopMonitor();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.on(
      'data',
      bareReader(
        (body) => {
          const [id, value] = packr.unpack(body) as [number, unknown];
          sock.write(frame([id, id === 0 ? loop.take() : value]));
        },
        (n) => sock.write(frame([-1, n])),
        assemble,
      ),
    );
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  childLifecycle(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  emit({ ready: true, port: (server.address() as net.AddressInfo).port });
}

async function bareSender(port: number): Promise<Sender> {
  const dial = async () => {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    s.setNoDelay(true);
    return s;
  };
  const small = await dial();
  const bulk = await dial();
  const pending = new Map<number, (v: unknown) => void>();
  let nextId = 1;
  small.on(
    'data',
    bareReader(
      (body) => {
        const [id, value] = packr.unpack(body) as [number, unknown];
        pending.get(id)?.(value);
        pending.delete(id);
      },
      () => {},
    ),
  );
  let blobDone: ((n: number) => void) | undefined;
  bulk.on(
    'data',
    bareReader(
      (body) => blobDone?.((packr.unpack(body) as [number, number])[1]),
      () => {},
    ),
  );
  const call = (id: number, value: unknown) =>
    new Promise<unknown>((resolve) => {
      pending.set(id, resolve);
      small.write(frame([id, value]));
    });
  const header = Buffer.alloc(4);
  return {
    small: (p) => call(nextId++, p),
    blob: (p) =>
      new Promise<number>((resolve) => {
        blobDone = resolve;
        header.writeUInt32BE(p.length, 0);
        bulk.write(header);
        bulk.write(p);
      }),
    receiverLoop: () => call(0, null) as Promise<LoopDelay>,
    close: () => {
      small.destroy();
      bulk.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The sender's measurement, shared by every mode.

interface Samples {
  /** Reply time minus send time, ms. */
  fromSend: Float64Array;
  /** Reply time minus the time the request was due (includes the sender's own stalls), ms. */
  fromDue: Float64Array;
}

/** Issues one small request every PERIOD_MS (catching up after a stall) until `until()` says stop. */
function fixedRate(sender: Sender, until: () => boolean): Promise<Samples> {
  const small = Buffer.alloc(SMALL_BYTES, 0x62);
  const fromSend: number[] = [];
  const fromDue: number[] = [];
  let outstanding = 0;
  let k = 0;
  let stopped = false;
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const finish = () => {
      if (stopped && outstanding === 0)
        resolve({ fromSend: Float64Array.from(fromSend), fromDue: Float64Array.from(fromDue) });
    };
    const issue = (due: number) => {
      outstanding++;
      const sent = performance.now();
      sender.small(small).then(() => {
        const now = performance.now();
        fromSend.push(now - sent);
        fromDue.push(now - due);
        outstanding--;
        finish();
      }, reject);
    };
    const tick = () => {
      const now = performance.now();
      for (let due = start + k * PERIOD_MS; due <= now; due = start + k * PERIOD_MS) {
        issue(due);
        k++;
      }
      if (until()) {
        stopped = true;
        finish();
      } else setTimeout(tick, PERIOD_MS);
    };
    tick();
  });
}

function summary(s: Samples) {
  const due = latencySummary(s.fromDue);
  return {
    requests: s.fromSend.length,
    ...latencySummary(s.fromSend),
    p99_from_due_us: due.p99_us,
    max_from_due_us: due.max_us,
  };
}

async function senderRole(mode: Mode, target: string, cluster: string): Promise<void> {
  const sender = isBare(mode)
    ? await bareSender(Number(target))
    : await foundationSender(cluster, target, mode === 'single-connection');
  const loop = loopMonitor();
  const small = Buffer.alloc(SMALL_BYTES, 0x62);
  const blob = Buffer.alloc(BLOB_BYTES, 0x63);
  // Warm-up: JIT, and every connection used once.
  for (let i = 0; i < 2000; i++) await sender.small(small);
  await sender.blob(blob);

  // Reference: the same small-request pattern with nothing else going on.
  loop.take();
  await sender.receiverLoop();
  const idleEnd = performance.now() + IDLE_MS;
  const idle = await fixedRate(sender, () => performance.now() >= idleEnd);
  emit({
    bench: BENCH,
    mode,
    phase: 'idle',
    ...summary(idle),
    sender_loop_delay: loop.take(),
    receiver_loop_delay: await sender.receiverLoop(),
  });

  // Loaded: 64 MiB payloads back to back on `bulk`, small requests at the same fixed rate.
  let blobsDone = 0;
  let bulkDone = false;
  const t0 = performance.now();
  const bulk = (async () => {
    try {
      for (;;) {
        const elapsed = performance.now() - t0;
        if ((blobsDone >= BLOBS && elapsed >= LOADED_MS) || elapsed >= PHASE_LIMIT_MS) break;
        const n = await sender.blob(blob);
        if (n !== BLOB_BYTES) throw new Error(`receiver got ${n} bytes`);
        blobsDone++;
      }
    } finally {
      bulkDone = true;
    }
  })();
  const loaded = await fixedRate(sender, () => bulkDone);
  await bulk;
  const seconds = (performance.now() - t0) / 1000;
  emit({
    bench: BENCH,
    mode,
    phase: 'bulk',
    blobs: blobsDone,
    blob_bytes: BLOB_BYTES,
    bulk_MBps: round((blobsDone * BLOB_BYTES) / 2 ** 20 / seconds, 1),
    ...summary(loaded),
    sender_loop_delay: loop.take(),
    receiver_loop_delay: await sender.receiverLoop(),
  });
  await sender.close();
}

// ---------------------------------------------------------------------------------------------
// Parent

async function runMode(mode: Mode, cluster: string): Promise<Record<string, unknown>[]> {
  const recv: Child = spawnRole(FILE, 'receiver', [mode, cluster], `${mode}-receiver`);
  pinToCpu(recv, 1);
  const ready = await recv.waitFor((l) => l.ready === true, 15_000, 'ready line');
  const target = isBare(mode) ? String(ready.port) : String(ready.address);
  const send = spawnRole(FILE, 'sender', [mode, target, cluster], `${mode}-sender`);
  pinToCpu(send, 0);
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < 2; i++) {
    const line = await send.waitFor((l) => l.bench === BENCH, 60_000, 'result');
    emit(line);
    out.push(line);
  }
  const code = await send.exited;
  if (code !== 0) throw new Error(`${mode} sender exited with ${code}`);
  await recv.stop();
  return out;
}

async function main(): Promise<void> {
  deadline(BENCH, 180_000);
  emitSetup(BENCH, { blob_bytes: BLOB_BYTES, small_bytes: SMALL_BYTES, period_ms: PERIOD_MS });
  const cluster = `bench-hol-${process.pid}-${Date.now()}`;
  const results: Record<string, Record<string, unknown>[]> = {};
  for (const mode of MODES) results[mode] = await runMode(mode, cluster);
  const bulkOf = (mode: Mode) => results[mode]!.find((l) => l.phase === 'bulk')!;
  const ch = bulkOf('channels');
  const one = bulkOf('single-connection');
  const bare = bulkOf('bare-net');
  const bareBuffer = bulkOf('bare-net-buffer');
  emit({
    bench: BENCH,
    channels_p99_us: ch.p99_us,
    single_connection_p99_us: one.p99_us,
    bare_net_p99_us: bare.p99_us,
    bare_net_buffer_p99_us: bareBuffer.p99_us,
    single_over_channels_p99: round((one.p99_us as number) / (ch.p99_us as number), 1),
    target: `channels_p99_us <= ${TARGET_P99_US}`,
    met: (ch.p99_us as number) <= TARGET_P99_US,
  });
}

switch (role) {
  case undefined:
    runMain(BENCH, main);
    break;
  case 'receiver': {
    const [mode, cluster] = roleArgs as [Mode, string];
    if (isBare(mode)) void bareReceiver(mode === 'bare-net-buffer');
    else void foundationReceiver(cluster, mode === 'single-connection');
    break;
  }
  case 'sender': {
    const [mode, target, cluster] = roleArgs as [Mode, string, string];
    childLifecycle(() => {});
    runRole('sender', () => senderRole(mode, target, cluster));
    break;
  }
  default:
    unknownRole();
}
