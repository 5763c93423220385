// bench/registry: the cluster-wide registry's convergence. 5 node processes on 127.0.0.1 each
// register 2 000 names (one local actor each; 10 000 in all) at the same moment; the measurement is
// the time from the parent's "go" (as each child received it) until the LAST node sees all
// 10 000 names. Timestamps are epoch ms taken by the children (performance.timeOrigin + now()).
// Several rounds, each with fresh names on top of the previous rounds'. Also reported: how long
// the 2 000 `register` calls took in each process (they are local; replication is asynchronous).
// Usage: node dist/bench/registry.js   (prints JSON lines; about ten seconds)
import { fileURLToPath } from 'node:url';
import { Foundation, type FoundationNode } from '../src/index.js';
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

const BENCH = 'registry';
const FILE = fileURLToPath(import.meta.url);
const NODES = 5;
const NAMES = 10_000;
const PER_NODE = NAMES / NODES;
const ROUNDS = 3;

// ---------------------------------------------------------------------------------------------
// Child: one node. Waits for {cmd:'go', round}, registers its names, reports when it sees them all.

async function nodeRole(index: number, cluster: string, seed: string | undefined): Promise<void> {
  const node: FoundationNode = await Foundation.start({
    name: `reg${index}`,
    cluster,
    logLevel: 'silent',
    // The first node finds nobody; the others find it (and, through it, each other).
    discovery: seed
      ? { strategy: 'static', hosts: [seed], pollingIntervalMs: 200 }
      : { name: 'none', start() {}, stop() {} },
  });
  childLifecycle(() => node.stop());
  emit({ started: true, address: node.address });
  const alive = () => node.members().filter((m) => m.status === 'alive').length;
  await new Promise<void>((resolve) => {
    const check = () => (alive() === NODES ? resolve() : setTimeout(check, 20));
    check();
  });
  emit({ ready: true });
  const idle = { handleInfo() {} };
  process.on('message', (m: { cmd?: string; round?: number }) => {
    if (m.cmd !== 'go' || m.round === undefined) return;
    const r = m.round;
    const goAt = epochNow();
    const want = NAMES * (r + 1);
    let doneAt = 0;
    const check = () => {
      if (doneAt === 0 && node.registry.size >= want) {
        doneAt = epochNow();
        node.registry.off('registered', check);
        emit({ done: true, round: r, goAt, doneAt, registerMs: round(registerMs, 1) });
      }
    };
    node.registry.on('registered', check);
    const t0 = performance.now();
    for (let i = 0; i < PER_NODE; i++) {
      const pid = node.spawn(idle);
      void node.registry.register(`r${r}.n${index}.${i}`, pid);
    }
    const registerMs = performance.now() - t0;
    check();
  });
}

// ---------------------------------------------------------------------------------------------
// Parent

async function main(): Promise<void> {
  deadline(BENCH, 120_000);
  emitSetup(BENCH, { nodes: NODES, names: NAMES, rounds: ROUNDS });
  const cluster = `bench-registry-${process.pid}-${Date.now()}`;
  const first = spawnRole(FILE, 'node', ['0', cluster], 'reg0');
  const { address } = await first.waitFor((l) => l.started === true, 15_000, 'started');
  const kids: Child[] = [first];
  for (let i = 1; i < NODES; i++)
    kids.push(spawnRole(FILE, 'node', [String(i), cluster, String(address)], `reg${i}`));
  await Promise.all(kids.map((k) => k.waitFor((l) => l.ready === true, 20_000, 'ready')));
  const results: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of kids) k.send({ cmd: 'go', round: r });
    const lines = await Promise.all(
      kids.map((k) => k.waitFor((l) => l.done === true && l.round === r, 30_000, `round ${r}`)),
    );
    const go = Math.min(...lines.map((l) => l.goAt as number));
    const done = Math.max(...lines.map((l) => l.doneAt as number));
    results.push(done - go);
    emit({
      bench: BENCH,
      round: r,
      names: NAMES,
      total_names: NAMES * (r + 1),
      converged_ms: round(done - go, 1),
      register_ms_per_node: lines.map((l) => l.registerMs),
    });
  }
  const sorted = [...results].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  emit({
    bench: BENCH,
    summary: true,
    converged_ms_median: round(median, 1),
    converged_ms_max: round(sorted[sorted.length - 1]!, 1),
  });
  await Promise.all(kids.map((k) => k.stop()));
}

if (role === 'node') {
  const [index, cluster, seed] = roleArgs as [string, string, string | undefined];
  nodeRole(Number(index), cluster, seed).catch((err: Error) => {
    emit({ bench: BENCH, error: err.message });
    process.exit(1);
  });
} else if (role === undefined) runMain(BENCH, main);
