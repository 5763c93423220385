// bench/busy-poll: what busy polling (`busyPollUs`, adaptive, 200 µs by default) costs in CPU and
// gives in latency, at loads from idle to one call at a time. Three configurations, each in its own
// pair of processes (the poller is per process), pinned to their own CPU when possible:
//   baseline:  bench/baseline.ts's bare node:net echo (never polls);
//   off:       two Foundation nodes with `busyPollUs: 0`, `messenger.request` to an echo handler;
//   default:   the same with the default options (adaptive busy polling).
// Phases, each measured with process.cpuUsage in both processes:
//   idle:        no requests for 3 s (Foundation: membership heartbeats only);
//   paced-100:   one request every 10 ms (a timer), 3 s;
//   paced-1000:  one request every 1 ms, 3 s;
//   paced-10000: ten requests at once every 1 ms, 3 s;
//   sequential:  one request at a time, as fast as they come back, 2 s.
// Prints per configuration and phase: requests/s, CPU % of a core (client, server), p50 latency;
// then per phase default ÷ off (CPU and p50). Nothing is asserted.
// Usage: node dist/bench/busy-poll.js   (prints JSON lines; about a minute)
import { fileURLToPath } from 'node:url';
import { Foundation, type FoundationNode } from '../src/index.js';
import { baselineClient, baselineServer, type Call } from './baseline.js';
import {
  type Child,
  childLifecycle,
  deadline,
  emit,
  emitSetup,
  memberUp,
  noDiscovery,
  percentile,
  pinToCpu,
  role,
  roleArgs,
  round,
  runMain,
  runRole,
  sleep,
  spawnRole,
  unknownRole,
} from './common.js';

const BENCH = 'busy-poll';
const FILE = fileURLToPath(import.meta.url);
const PAYLOAD_BYTES = 100;
const SERVER_NAME = 'bench-busy-poll-server';

type Config = 'baseline' | 'off' | 'default';
const CONFIGS: Config[] = ['baseline', 'off', 'default'];

interface Phase {
  name: string;
  seconds: number;
  /** Requests sent at once on each tick; 0 = none (idle), -1 = one at a time (sequential). */
  perTick: number;
  tickMs: number;
}
const PHASES: Phase[] = [
  { name: 'idle', seconds: 3, perTick: 0, tickMs: 0 },
  { name: 'paced-100', seconds: 3, perTick: 1, tickMs: 10 },
  { name: 'paced-1000', seconds: 3, perTick: 1, tickMs: 1 },
  { name: 'paced-10000', seconds: 3, perTick: 10, tickMs: 1 },
  { name: 'sequential', seconds: 2, perTick: -1, tickMs: 0 },
];

const nodeOptions = (config: Config) => ({
  logLevel: 'silent' as const,
  ...(config === 'off' ? { busyPollUs: 0 } : {}),
});

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function serverRole(config: Config, cluster: string): Promise<void> {
  let node: FoundationNode | undefined;
  let port = 0;
  let close = () => {};
  if (config === 'baseline') {
    const b = await baselineServer(true);
    port = b.port;
    close = b.close;
  } else {
    node = await Foundation.start({
      name: SERVER_NAME,
      cluster,
      discovery: noDiscovery,
      ...nodeOptions(config),
    });
    node.messenger.handle('echo', (p) => p);
  }
  process.on('message', (m: { cmd?: string }) => {
    if (m?.cmd === 'cpu') emit({ cpu_us: cpuUs() });
  });
  childLifecycle(async () => {
    close();
    await node?.stop();
  });
  emit({ ready: true, address: node?.address ?? '', port });
}

/** Runs one phase; resolves with the requests done and their latencies (ms). */
async function runPhase(call: Call, payload: Buffer, phase: Phase): Promise<number[]> {
  const lat: number[] = [];
  const one = async () => {
    const s = performance.now();
    await call(payload);
    lat.push(performance.now() - s);
  };
  const end = performance.now() + phase.seconds * 1000;
  if (phase.perTick === 0) await sleep(phase.seconds * 1000);
  else if (phase.perTick < 0) while (performance.now() < end) await one();
  else {
    const inFlight = new Set<Promise<void>>();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (performance.now() >= end) {
          clearInterval(timer);
          resolve();
          return;
        }
        for (let i = 0; i < phase.perTick; i++) {
          const p = one();
          inFlight.add(p);
          void p.then(() => inFlight.delete(p));
        }
      }, phase.tickMs);
    });
    await Promise.all(inFlight);
  }
  return lat;
}

async function clientRole(config: Config, cluster: string, address: string, port: number) {
  let call: Call;
  let stop: () => Promise<void> | void;
  if (config === 'baseline') {
    const b = await baselineClient(port, true);
    call = b.call;
    stop = b.close;
  } else {
    const node = await Foundation.start({
      name: 'bench-busy-poll-client',
      cluster,
      discovery: { strategy: 'static', hosts: [address] },
      ...nodeOptions(config),
    });
    await memberUp(node, SERVER_NAME);
    call = (payload) => node.messenger.request(SERVER_NAME, 'echo', payload);
    stop = () => node.stop();
  }
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  // Warm-up: the code paths compiled, the adaptive poller's average settled.
  await runPhase(call, payload, { name: 'warm-up', seconds: 1, perTick: -1, tickMs: 0 });
  await runPhase(call, payload, { name: 'warm-up', seconds: 1, perTick: 1, tickMs: 1 });
  childLifecycle(stop);
  process.on('message', (m: { cmd?: string; phase?: string }) => {
    if (m?.cmd !== 'phase') return;
    const phase = PHASES.find((p) => p.name === m.phase)!;
    const c0 = cpuUs();
    const t0 = performance.now();
    void runPhase(call, payload, phase).then((lat) => {
      const seconds = (performance.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      emit({
        phase: phase.name,
        seconds,
        requests: lat.length,
        cpu_us: cpuUs() - c0,
        p50_us: lat.length ? round(percentile(lat, 50) * 1000, 1) : null,
        p99_us: lat.length ? round(percentile(lat, 99) * 1000, 1) : null,
      });
    });
  });
  emit({ ready: true });
}

async function main(): Promise<void> {
  deadline(BENCH, 240_000);
  emitSetup(BENCH, { payload_bytes: PAYLOAD_BYTES, phases: PHASES.map((p) => p.name) });
  const results = new Map<string, { cpu: number; p50: number | null }>();
  for (const config of CONFIGS) {
    const cluster = `bench-busy-poll-${process.pid}-${config}`;
    const server: Child = spawnRole(FILE, 'server', [config, cluster], 'server');
    let pinned = pinToCpu(server, 1);
    const ready = await server.waitFor((l) => l.ready === true, 15_000, 'ready line');
    const client = spawnRole(
      FILE,
      'client',
      [config, cluster, String(ready.address), String(ready.port)],
      'client',
    );
    pinned = pinToCpu(client, 0) && pinned;
    await client.waitFor((l) => l.ready === true, 30_000, 'client ready');
    const serverCpu = async () => {
      server.send({ cmd: 'cpu' });
      return (await server.waitFor((l) => typeof l.cpu_us === 'number', 5_000, 'cpu')).cpu_us;
    };
    for (const phase of PHASES) {
      const s0 = (await serverCpu()) as number;
      client.send({ cmd: 'phase', phase: phase.name });
      const r = await client.waitFor((l) => l.phase === phase.name, 60_000, phase.name);
      const s1 = (await serverCpu()) as number;
      const seconds = r.seconds as number;
      const clientPct = (r.cpu_us as number) / (seconds * 1e4);
      const serverPct = (s1 - s0) / (seconds * 1e4);
      results.set(`${config} ${phase.name}`, {
        cpu: clientPct + serverPct,
        p50: r.p50_us as number | null,
      });
      emit({
        bench: BENCH,
        config,
        phase: phase.name,
        rps: Math.round((r.requests as number) / seconds),
        client_cpu_pct: round(clientPct, 2),
        server_cpu_pct: round(serverPct, 2),
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        pinned,
      });
    }
    await Promise.all([client.stop(), server.stop()]);
  }
  for (const phase of PHASES) {
    const off = results.get(`off ${phase.name}`)!;
    const def = results.get(`default ${phase.name}`)!;
    const base = results.get(`baseline ${phase.name}`)!;
    emit({
      bench: BENCH,
      phase: phase.name,
      cpu_pct_baseline: round(base.cpu, 2),
      cpu_pct_off: round(off.cpu, 2),
      cpu_pct_default: round(def.cpu, 2),
      p50_us_baseline: base.p50,
      p50_us_off: off.p50,
      p50_us_default: def.p50,
      ratio_p50_default_vs_off: off.p50 && def.p50 ? round(def.p50 / off.p50) : null,
      ratio_p50_default_vs_baseline: base.p50 && def.p50 ? round(def.p50 / base.p50) : null,
    });
  }
}

switch (role) {
  case undefined:
    runMain(BENCH, main);
    break;
  case 'server':
    void serverRole(roleArgs[0] as Config, roleArgs[1]!);
    break;
  case 'client':
    runRole(
      'client',
      () => clientRole(roleArgs[0] as Config, roleArgs[1]!, roleArgs[2]!, Number(roleArgs[3])),
      false,
    );
    break;
  default:
    unknownRole();
}
