// bench/rpc: service calls between two processes on 127.0.0.1, 100 B payload, 64 in flight →
// requests/s and p50/p99, next to (same run, same harness, interleaved rounds):
//   baseline            bare node:net + msgpackr, writes batched per tick (bench/baseline.ts)
//   foundation-request  Foundation's messenger.request (the layer services are built on)
//   foundation-services node.services.call('echo.echo', [payload]) — catalogue lookup, balancer,
//                       deadline, reply decoding; every record authenticated (AES-256-GMAC)
//   moleculer           Moleculer 0.15 with its TCP transporter (JSON serializer, its default),
//                       broker.call('echo.echo', { p }) with a 100-character string
// Targets: foundation-services ≥ 0.8× baseline, ≥ 2× moleculer (requests/s).
// Moleculer's TCP transporter is pinned to loopback: UDP discovery off, static URLs, and a
// subclass whose getNodeAddress always answers 127.0.0.1 (it would otherwise dial the peer's
// advertised hostname / first IP).
// Usage: node dist/bench/rpc.js   (prints JSON lines; about a minute)
import { createRequire } from 'node:module';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Foundation } from '../src/index.js';
import { baselineClient, baselineServer, type Call, pipelined } from './baseline.js';
import {
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

const BENCH = 'rpc';
const FILE = fileURLToPath(import.meta.url);
const PAYLOAD_BYTES = 100;
const DEPTH = 64;
const WARMUP = 20_000;
const PER_ROUND = 20_000;
const ROUNDS = 8;
const SERVER_NAME = 'rpc-server';
const TARGET_BASELINE = 0.8;
const TARGET_MOLECULER = 2;

type Impl = 'baseline' | 'foundation-request' | 'foundation-services' | 'moleculer';
const IMPLS: Impl[] = ['baseline', 'foundation-request', 'foundation-services', 'moleculer'];

// biome-ignore lint/suspicious/noExplicitAny: Moleculer is CommonJS without types we rely on
type Any = any;
const require = createRequire(import.meta.url);

/** Moleculer's TCP transporter, but every peer is dialled on 127.0.0.1. */
function loopbackTcp(opts: object): Any {
  const Tcp = (require('moleculer') as Any).Transporters.TCP as new (o: object) => Any;
  class LoopbackTcp extends Tcp {
    getNodeAddress() {
      return '127.0.0.1';
    }
  }
  return new LoopbackTcp(opts);
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function molBroker(nodeID: string, urls: string[]): Any {
  const { ServiceBroker } = require('moleculer') as Any;
  return new ServiceBroker({
    nodeID,
    logger: false,
    transporter: loopbackTcp({ udpDiscovery: false, urls, useHostname: false }),
  });
}

async function serverRole(cluster: string, molUrls: string[]): Promise<void> {
  const node = await Foundation.start({
    name: SERVER_NAME,
    cluster,
    discovery: noDiscovery,
    logLevel: 'silent',
  });
  node.messenger.handle('echo', (p) => p);
  node.service('echo', { echo: (p: unknown) => p });
  const base = await baselineServer(true);
  const mol = molBroker('mol-server', molUrls);
  mol.createService({ name: 'echo', actions: { echo: (ctx: Any) => ctx.params.p } });
  await mol.start();
  childLifecycle(async () => {
    base.close();
    await mol.stop();
    await node.stop();
  });
  emit({ ready: true, address: node.address, port: base.port });
}

async function clientRole(cluster: string, address: string, port: number, molUrls: string[]) {
  const node = await Foundation.start({
    name: 'rpc-client',
    cluster,
    discovery: { strategy: 'static', hosts: [address] },
    logLevel: 'silent',
  });
  const until = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 15_000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until(() => node.services.list({ name: 'echo' }).length === 1, 'echo in the catalogue');
  const mol = molBroker('mol-client', molUrls);
  await mol.start();
  await mol.waitForServices('echo', 15_000);
  const base = await baselineClient(port, true);
  const molPayload = 'a'.repeat(PAYLOAD_BYTES);
  const calls: Record<Impl, Call> = {
    baseline: base.call,
    'foundation-request': (p) => node.messenger.request(SERVER_NAME, 'echo', p),
    'foundation-services': (p) => node.services.call('echo.echo', [p]),
    moleculer: () => mol.call('echo.echo', { p: molPayload }),
  };
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  for (const impl of IMPLS) await pipelined(calls[impl], payload, WARMUP, DEPTH);
  const acc = Object.fromEntries(
    IMPLS.map((i) => [i, { seconds: 0, rps: [] as number[], lat: [] as Float64Array[] }]),
  ) as Record<Impl, { seconds: number; rps: number[]; lat: Float64Array[] }>;
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < IMPLS.length; k++) {
      const impl = IMPLS[(r + k) % IMPLS.length]!;
      const p = await pipelined(calls[impl], payload, PER_ROUND, DEPTH);
      acc[impl].seconds += p.seconds;
      acc[impl].rps.push(Math.round(PER_ROUND / p.seconds));
      acc[impl].lat.push(p.lat);
    }
  }
  for (const impl of IMPLS) {
    const a = acc[impl];
    const all = new Float64Array(a.lat.reduce((n, x) => n + x.length, 0));
    let off = 0;
    for (const x of a.lat) {
      all.set(x, off);
      off += x.length;
    }
    emit({
      bench: BENCH,
      impl,
      mode: `pipelined-${DEPTH}`,
      requests: PER_ROUND * ROUNDS,
      rps: Math.round((PER_ROUND * ROUNDS) / a.seconds),
      rps_rounds: a.rps,
      ...latencySummary(all),
    });
  }
  base.close();
  await mol.stop();
  await node.stop();
}

async function main(): Promise<void> {
  deadline(BENCH, 240_000);
  emitSetup(BENCH, { payload_bytes: PAYLOAD_BYTES, depth: DEPTH, rounds: ROUNDS });
  const cluster = `bench-rpc-${process.pid}-${Date.now()}`;
  const [ps, pc] = [await freePort(), await freePort()];
  const urls = [`127.0.0.1:${ps}/mol-server`, `127.0.0.1:${pc}/mol-client`];
  const server = spawnRole(FILE, 'server', [cluster, urls.join(',')], 'server');
  let pinned = pinToCpu(server, 1);
  const ready = await server.waitFor((l) => l.ready === true, 20_000, 'ready line');
  const client = spawnRole(
    FILE,
    'client',
    [cluster, String(ready.address), String(ready.port), urls.join(',')],
    'client',
  );
  pinned = pinToCpu(client, 0) && pinned;
  const got = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < IMPLS.length; i++) {
    const line = await client.waitFor((l) => l.bench === BENCH, 200_000, 'result');
    emit(line);
    got.set(String(line.impl), line);
  }
  const code = await client.exited;
  if (code !== 0) throw new Error(`client exited with ${code}`);
  await server.stop();
  const rps = (i: Impl) => Number(got.get(i)?.rps);
  const vsBase = rps('foundation-services') / rps('baseline');
  const vsMol = rps('foundation-services') / rps('moleculer');
  emit({
    bench: BENCH,
    mode: `pipelined-${DEPTH}`,
    baseline_rps: rps('baseline'),
    request_rps: rps('foundation-request'),
    services_rps: rps('foundation-services'),
    moleculer_rps: rps('moleculer'),
    ratio_baseline: round(vsBase),
    ratio_moleculer: round(vsMol),
    target: `services >= ${TARGET_BASELINE}x baseline and >= ${TARGET_MOLECULER}x moleculer`,
    met: vsBase >= TARGET_BASELINE && vsMol >= TARGET_MOLECULER,
    pinned,
  });
}

switch (role) {
  case undefined:
    runMain(BENCH, main);
    break;
  case 'server':
    void serverRole(roleArgs[0]!, roleArgs[1]!.split(','));
    break;
  case 'client': {
    const [cluster, address, port, urls] = roleArgs as [string, string, string, string];
    childLifecycle(() => {});
    runRole('client', () => clientRole(cluster, address, Number(port), urls.split(',')));
    break;
  }
  default:
    unknownRole();
}
