// bench/pubsub: messages/s delivered to subscribers on 5 node processes by one publisher process,
// all on 127.0.0.1, next to a bare-socket broadcast baseline in the same run.
//   foundation: `node.pubsub.publish('bench.x', payload)`; each of the 5 subscriber nodes has one
//               handler subscribed to 'bench.>' (interest replicated, one message per node).
//   baseline:   the publisher holds one node:net connection to each subscriber process and writes
//               every message, framed once (bench/baseline.ts: length prefix + msgpackr, one
//               writev per tick), to all 5 sockets; each subscriber decodes and counts.
// Each round publishes N messages of PAYLOAD_BYTES in batches of BATCH per event-loop turn;
// throughput = 5 × N deliveries / (last subscriber's last delivery − first publish), epoch ms
// taken by the processes themselves. Rounds alternate the implementations.
// Usage: node dist/bench/pubsub.js   (prints JSON lines; about half a minute)
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { Foundation, type FoundationNode } from '../src/index.js';
import { frame, frameReader, writer } from './baseline.js';
import {
  type Child,
  childLifecycle,
  deadline,
  emit,
  emitSetup,
  epochNow,
  role,
  roleArgs,
  round,
  runMain,
  spawnRole,
} from './common.js';

const BENCH = 'pubsub';
const FILE = fileURLToPath(import.meta.url);
const SUBS = 5;
const N = 50_000;
const PAYLOAD_BYTES = 100;
const BATCH = 200;
const ROUNDS = 4;
const TARGET_RATIO = 0.7;
type Impl = 'baseline' | 'foundation';
const IMPLS: Impl[] = ['baseline', 'foundation'];

const none = { name: 'none', start() {}, stop() {} };
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function waitAlive(node: FoundationNode, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () =>
      node.members().filter((m) => m.status === 'alive').length === n
        ? resolve()
        : setTimeout(check, 20);
    check();
  });
}

// ---------------------------------------------------------------------------------------------
// Subscriber: a node with one handler on 'bench.>' plus a baseline server; counts per impl.

async function subRole(index: number, cluster: string, seed: string | undefined): Promise<void> {
  const node = await Foundation.start({
    name: `ps${index}`,
    cluster,
    logLevel: 'silent',
    discovery: seed ? { strategy: 'static', hosts: [seed], pollingIntervalMs: 200 } : none,
  });
  const count: Record<Impl, number> = { baseline: 0, foundation: 0 };
  const want: Record<Impl, number> = { baseline: -1, foundation: -1 };
  const got = (impl: Impl) => {
    if (++count[impl] === want[impl]) emit({ done: true, impl, t: epochNow() });
  };
  node.pubsub.subscribe('bench.>', () => got('foundation'));
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on(
      'data',
      frameReader((body) => {
        packr.unpack(body); // decoded like a delivery would be
        got('baseline');
      }),
    );
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  childLifecycle(async () => {
    server.close();
    await node.stop();
  });
  process.on('message', (m: { cmd?: string; impl?: Impl; n?: number }) => {
    if (m.cmd !== 'expect' || !m.impl || m.n === undefined) return;
    count[m.impl] = 0;
    want[m.impl] = m.n;
    emit({ expecting: true, impl: m.impl });
  });
  emit({ started: true, address: node.address, port: (server.address() as net.AddressInfo).port });
}

// ---------------------------------------------------------------------------------------------
// Publisher

async function pubRole(cluster: string, seed: string, ports: number[]): Promise<void> {
  const node = await Foundation.start({
    name: 'pspub',
    cluster,
    logLevel: 'silent',
    discovery: { strategy: 'static', hosts: [seed], pollingIntervalMs: 200 },
  });
  const socks = await Promise.all(
    ports.map(
      (port) =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port });
          s.once('connect', () => {
            s.setNoDelay(true);
            resolve(s);
          });
          s.once('error', reject);
        }),
    ),
  );
  const writes = socks.map((s) => writer(s, true));
  childLifecycle(async () => {
    for (const s of socks) s.destroy();
    await node.stop();
  });
  await waitAlive(node, SUBS + 1);
  await new Promise<void>((resolve) => {
    const check = () =>
      node.pubsub.interestedNodes('bench.x').length === SUBS ? resolve() : setTimeout(check, 20);
    check();
  });
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x61);
  const publish: Record<Impl, () => void> = {
    foundation: () => node.pubsub.publish('bench.x', payload),
    baseline: () => {
      const f = frame(['bench.x', payload]);
      for (const w of writes) w(f);
    },
  };
  process.on('message', (m: { cmd?: string; impl?: Impl; n?: number }) => {
    if (m.cmd !== 'run' || !m.impl || m.n === undefined) return;
    const fn = publish[m.impl];
    const n = m.n;
    const t0 = epochNow();
    const cpu = process.cpuUsage();
    let sent = 0;
    const batch = () => {
      for (let i = 0; i < BATCH && sent < n; i++, sent++) fn();
      if (sent < n) setImmediate(batch);
      else {
        const used = process.cpuUsage(cpu);
        emit({ published: true, impl: m.impl, t0, t1: epochNow(), cpuUs: used.user + used.system });
      }
    };
    batch();
  });
  emit({ ready: true });
}

// ---------------------------------------------------------------------------------------------
// Parent

async function main(): Promise<void> {
  deadline(BENCH, 150_000);
  emitSetup(BENCH, {
    subscribers: SUBS,
    messages_per_round: N,
    payload_bytes: PAYLOAD_BYTES,
    batch: BATCH,
    rounds: ROUNDS,
  });
  const cluster = `bench-pubsub-${process.pid}-${Date.now()}`;
  const subs: Child[] = [spawnRole(FILE, 'sub', ['0', cluster], 'ps0')];
  const first = await subs[0]!.waitFor((l) => l.started === true, 15_000, 'started');
  const seed = String(first.address);
  for (let i = 1; i < SUBS; i++) subs.push(spawnRole(FILE, 'sub', [String(i), cluster, seed]));
  const started = [first];
  for (const s of subs.slice(1))
    started.push(await s.waitFor((l) => l.started === true, 15_000, 'started'));
  const ports = started.map((l) => Number(l.port));
  const pub = spawnRole(FILE, 'pub', [cluster, seed, JSON.stringify(ports)], 'pub');
  await pub.waitFor((l) => l.ready === true, 30_000, 'publisher ready');
  const acc: Record<Impl, { deliveries: number; seconds: number; rates: number[] }> = {
    baseline: { deliveries: 0, seconds: 0, rates: [] },
    foundation: { deliveries: 0, seconds: 0, rates: [] },
  };
  const runOnce = async (impl: Impl) => {
    for (const s of subs) s.send({ cmd: 'expect', impl, n: N });
    await Promise.all(subs.map((s) => s.waitFor((l) => l.expecting === true, 10_000, 'expect')));
    pub.send({ cmd: 'run', impl, n: N });
    const p = await pub.waitFor((l) => l.published === true, 60_000, 'published');
    const dones = await Promise.all(
      subs.map((s) => s.waitFor((l) => l.done === true && l.impl === impl, 60_000, 'done')),
    );
    const seconds = (Math.max(...dones.map((d) => d.t as number)) - (p.t0 as number)) / 1000;
    return {
      seconds,
      cpuUs: p.cpuUs as number,
      publishS: ((p.t1 as number) - (p.t0 as number)) / 1000,
    };
  };
  for (const impl of IMPLS) await runOnce(impl); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < IMPLS.length; k++) {
      const impl = IMPLS[(r + k) % IMPLS.length]!;
      const { seconds, cpuUs, publishS } = await runOnce(impl);
      const a = acc[impl];
      a.deliveries += N * SUBS;
      a.seconds += seconds;
      a.rates.push(Math.round((N * SUBS) / seconds));
      emit({
        bench: BENCH,
        impl,
        round: r,
        deliveries: N * SUBS,
        deliveries_per_s: Math.round((N * SUBS) / seconds),
        publisher_cpu_us_per_msg: round(cpuUs / N, 2),
        publish_loop_ms: round(publishS * 1000, 1),
        last_delivery_ms: round(seconds * 1000, 1),
      });
    }
  }
  const rate = (impl: Impl) => acc[impl].deliveries / acc[impl].seconds;
  for (const impl of IMPLS) {
    emit({
      bench: BENCH,
      impl,
      deliveries: acc[impl].deliveries,
      deliveries_per_s: Math.round(rate(impl)),
      rounds: acc[impl].rates,
    });
  }
  const ratio = rate('foundation') / rate('baseline');
  emit({
    bench: BENCH,
    summary: true,
    ratio_to_baseline: round(ratio, 3),
    target: TARGET_RATIO,
    met: ratio >= TARGET_RATIO,
  });
  await Promise.all([pub, ...subs].map((k) => k.stop()));
}

if (role === 'sub') {
  const [index, cluster, seed] = roleArgs as [string, string, string | undefined];
  subRole(Number(index), cluster, seed).catch((err: Error) => {
    emit({ bench: BENCH, error: err.message });
    process.exit(1);
  });
} else if (role === 'pub') {
  const [cluster, seed, ports] = roleArgs as [string, string, string];
  pubRole(cluster, seed, JSON.parse(ports) as number[]).catch((err: Error) => {
    emit({ bench: BENCH, error: err.message });
    process.exit(1);
  });
} else if (role === undefined) runMain(BENCH, main);
