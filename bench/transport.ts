// bench/transport: request/response throughput and latency between two processes on 127.0.0.1,
// Foundation's messenger against a bare node:net + msgpackr baseline with the same framing
// (4-byte big-endian length prefix) and the same request pattern, measured in the same run.
//   pipelined-64: 64 requests in flight → requests/s, p50/p99 latency
//   sequential:   1 request in flight   → p50/p99 latency
// One server process hosts every implementation's server, one client process all the clients
// (each pinned to its own CPU when possible), and the client alternates between implementations
// in short blocks, ROUNDS times: on a shared machine, whatever else runs slows every
// implementation alike instead of whichever happened to be measured at the time.
// Usage: node dist/bench/transport.js   (prints JSON lines; about half a minute)
import { fileURLToPath } from 'node:url';
import { Foundation } from '../src/index.js';
import {
  baselineClient,
  baselineServer,
  type Call,
  pipelined,
  pipelinedWithCpu,
  sequential,
} from './baseline.js';
import {
  type Child,
  childLifecycle,
  deadline,
  emit,
  emitSetup,
  latencySummary,
  memberUp,
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

const BENCH = 'transport';
const FILE = fileURLToPath(import.meta.url);
const PAYLOAD_BYTES = 100;
const DEPTH = 64;
const WARMUP_PIPELINED = 30_000;
const WARMUP_SEQUENTIAL = 3_000;
/** Requests per implementation and round; ROUNDS blocks of each are interleaved. */
const PIPELINED = 25_000;
const SEQUENTIAL = 2_000;
const ROUNDS = 16;
const TARGET_RPS_RATIO = 0.8;
const TARGET_P50_RATIO = 1.2;
const SERVER_NAME = 'bench-server';

// `foundation`: the default, every record authenticated (AES-256-GMAC); `foundation-encrypted`:
// the `encrypt: true` option (AES-256-GCM), in its own cluster.
type Impl = 'baseline' | 'baseline-unbatched' | 'foundation' | 'foundation-encrypted';
const IMPLS: Impl[] = ['baseline', 'baseline-unbatched', 'foundation', 'foundation-encrypted'];

interface Result {
  bench: string;
  impl: Impl;
  mode: string;
  requests: number;
  rps?: number;
  /** requests/s of each round's block, to show the spread. */
  rps_rounds?: number[];
  /** CPU time (user + system) the client / server process spent per request. */
  client_cpu_us_per_req?: number;
  server_cpu_us_per_req?: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
}

// ---------------------------------------------------------------------------------------------
// Baseline: bench/baseline.ts. `baseline` batches writes per tick, `baseline-unbatched` writes each
// frame with its own syscall. The ratios are taken against `baseline`, the stronger of the two.

// ---------------------------------------------------------------------------------------------
// Foundation: two nodes; the client finds the server through static discovery.

async function serverNode(cluster: string, encrypt: boolean) {
  const node = await Foundation.start({
    name: SERVER_NAME,
    cluster,
    encrypt,
    discovery: noDiscovery,
    logLevel: 'silent',
  });
  node.messenger.handle('echo', (p) => p);
  // CPU time this process has used, so the client can attribute the server's work to each block.
  node.messenger.handle('cpu', () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  });
  return node;
}

async function serverRole(cluster: string): Promise<void> {
  const node = await serverNode(cluster, false);
  const encrypted = await serverNode(`${cluster}-enc`, true);
  const batched = await baselineServer(true);
  const unbatched = await baselineServer(false);
  childLifecycle(async () => {
    batched.close();
    unbatched.close();
    await node.stop();
    await encrypted.stop();
  });
  emit({
    ready: true,
    address: node.address,
    encAddress: encrypted.address,
    port: batched.port,
    unbatchedPort: unbatched.port,
  });
}

async function foundationClient(
  cluster: string,
  address: string,
  encrypt: boolean,
): Promise<{ call: Call; cpu(): Promise<number>; close(): Promise<void> }> {
  const node = await Foundation.start({
    name: 'bench-client',
    cluster,
    encrypt,
    discovery: { strategy: 'static', hosts: [address] },
    logLevel: 'silent',
  });
  await memberUp(node, SERVER_NAME);
  const m = node.messenger;
  return {
    call: (payload) => m.request(SERVER_NAME, 'echo', payload),
    cpu: () => m.request<number>(SERVER_NAME, 'cpu', null),
    close: () => node.stop(),
  };
}

interface Acc {
  seconds: number;
  cpuUs: number;
  serverCpuUs: number;
  rps: number[];
  pLat: Float64Array[];
  sLat: Float64Array[];
}

async function clientRole(
  cluster: string,
  address: string,
  encAddress: string,
  port: number,
  unbatchedPort: number,
) {
  const foundation = await foundationClient(cluster, address, false);
  const clients: Record<Impl, { call: Call; close(): unknown }> & {
    foundation: { cpu(): Promise<number> };
  } = {
    baseline: await baselineClient(port, true),
    'baseline-unbatched': await baselineClient(unbatchedPort, false),
    foundation,
    'foundation-encrypted': await foundationClient(`${cluster}-enc`, encAddress, true),
  };
  const serverCpuUs = () => clients.foundation.cpu();
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  // Warm-up: JIT, connection set-up, socket buffers.
  for (const impl of IMPLS) {
    await pipelined(clients[impl].call, payload, WARMUP_PIPELINED, DEPTH);
    await sequential(clients[impl].call, payload, WARMUP_SEQUENTIAL);
  }
  const acc = Object.fromEntries(
    IMPLS.map((impl) => [
      impl,
      {
        seconds: 0,
        cpuUs: 0,
        serverCpuUs: 0,
        rps: [] as number[],
        pLat: [] as Float64Array[],
        sLat: [] as Float64Array[],
      },
    ]),
  ) as Record<Impl, Acc>;
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order so that no implementation always runs right after the same one.
    for (let k = 0; k < IMPLS.length; k++) {
      const impl = IMPLS[(r + k) % IMPLS.length]!;
      const a = acc[impl];
      const p = await pipelinedWithCpu(clients[impl].call, payload, PIPELINED, DEPTH, serverCpuUs);
      a.serverCpuUs += p.serverCpuUs;
      a.cpuUs += p.clientCpuUs;
      a.seconds += p.seconds;
      a.rps.push(Math.round(PIPELINED / p.seconds));
      a.pLat.push(p.lat);
      a.sLat.push(await sequential(clients[impl].call, payload, SEQUENTIAL));
    }
  }
  const concat = (xs: Float64Array[]) => {
    const out = new Float64Array(xs.reduce((n, x) => n + x.length, 0));
    let off = 0;
    for (const x of xs) {
      out.set(x, off);
      off += x.length;
    }
    return out;
  };
  for (const impl of IMPLS) {
    const a = acc[impl];
    emit({
      bench: BENCH,
      impl,
      mode: `pipelined-${DEPTH}`,
      requests: PIPELINED * ROUNDS,
      rps: Math.round((PIPELINED * ROUNDS) / a.seconds),
      rps_rounds: a.rps,
      client_cpu_us_per_req: round(a.cpuUs / (PIPELINED * ROUNDS), 2),
      server_cpu_us_per_req: round(a.serverCpuUs / (PIPELINED * ROUNDS), 2),
      ...latencySummary(concat(a.pLat)),
    } satisfies Result);
    emit({
      bench: BENCH,
      impl,
      mode: 'sequential',
      requests: SEQUENTIAL * ROUNDS,
      ...latencySummary(concat(a.sLat)),
    } satisfies Result);
  }
  for (const impl of IMPLS) await clients[impl].close();
}

// ---------------------------------------------------------------------------------------------
// Parent

async function main(): Promise<void> {
  deadline(BENCH, 200_000);
  emitSetup(BENCH, { payload_bytes: PAYLOAD_BYTES, depth: DEPTH, rounds: ROUNDS });
  const cluster = `bench-transport-${process.pid}-${Date.now()}`;
  const server: Child = spawnRole(FILE, 'server', [cluster], 'server');
  let pinned = pinToCpu(server, 1);
  const ready = await server.waitFor((l) => l.ready === true, 15_000, 'ready line');
  const client = spawnRole(
    FILE,
    'client',
    [
      cluster,
      String(ready.address),
      String(ready.encAddress),
      String(ready.port),
      String(ready.unbatchedPort),
    ],
    'client',
  );
  pinned = pinToCpu(client, 0) && pinned;
  const all: Result[] = [];
  for (let i = 0; i < IMPLS.length * 2; i++) {
    const line = await client.waitFor((l) => l.bench === BENCH, 120_000, 'result');
    emit(line);
    all.push(line as unknown as Result);
  }
  const code = await client.exited;
  if (code !== 0) throw new Error(`client exited with ${code}`);
  await server.stop();

  const get = (impl: Impl, mode: string) => all.find((x) => x.impl === impl && x.mode === mode)!;
  const pm = `pipelined-${DEPTH}`;
  const baseRps = get('baseline', pm).rps!;
  const fndRps = get('foundation', pm).rps!;
  const ratioRps = fndRps / baseRps;
  const encRps = get('foundation-encrypted', pm).rps!;
  emit({
    bench: BENCH,
    mode: pm,
    what: 'encrypt: true (AES-256-GCM) against the same baseline; no target, reported',
    baseline_rps: baseRps,
    encrypted_rps: encRps,
    ratio_rps: round(encRps / baseRps),
    pinned,
  });
  emit({
    bench: BENCH,
    mode: pm,
    baseline_rps: baseRps,
    foundation_rps: fndRps,
    ratio_rps: round(ratioRps),
    target: `ratio_rps >= ${TARGET_RPS_RATIO}`,
    met: ratioRps >= TARGET_RPS_RATIO,
    pinned,
  });
  const baseP50 = get('baseline', 'sequential').p50_us;
  const fndP50 = get('foundation', 'sequential').p50_us;
  const ratioP50 = fndP50 / baseP50;
  emit({
    bench: BENCH,
    mode: 'sequential',
    baseline_p50_us: baseP50,
    foundation_p50_us: fndP50,
    ratio_p50: round(ratioP50),
    target: `ratio_p50 <= ${TARGET_P50_RATIO}`,
    met: ratioP50 <= TARGET_P50_RATIO,
    pinned,
  });
  emit({
    bench: BENCH,
    ratio_rps: round(ratioRps),
    ratio_p50: round(ratioP50),
    target: `ratio_rps >= ${TARGET_RPS_RATIO} and ratio_p50 <= ${TARGET_P50_RATIO}`,
    met: ratioRps >= TARGET_RPS_RATIO && ratioP50 <= TARGET_P50_RATIO,
  });
}

switch (role) {
  case undefined:
    runMain(BENCH, main);
    break;
  case 'server':
    void serverRole(roleArgs[0]!);
    break;
  case 'client': {
    const [cluster, address, encAddress, port, unbatchedPort] = roleArgs as [
      string,
      string,
      string,
      string,
      string,
    ];
    childLifecycle(() => {});
    runRole('client', () =>
      clientRole(cluster, address, encAddress, Number(port), Number(unbatchedPort)),
    );
    break;
  }
  default:
    unknownRole();
}
