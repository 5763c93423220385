// bench/raft: election time after the leader dies, and committed writes per second.
// - simulated: 100 trials of the Raft core on the simulated network of the tests (5 members, one
//   tick = 30 ms as node.consensus uses by default, 1-tick message latency): crash the leader,
//   count ticks until a member of a later term leads.
// - real: 5 node processes on loopback with file-backed Raft logs (fsync on): SIGKILL the leader,
//   time until a survivor reports itself leader (polled every 20 ms: that is the resolution).
// - planned stop: the leader of 5 real processes stops gracefully (it hands its leadership over,
//   src/coord/raft-backend.ts): time from the stop command until a survivor reports itself leader.
// - throughput: 3 and 5 processes, 2000 puts with 32 in flight from a non-leader member (so each
//   put is forwarded to the leader), fsync on every Ready.
// - next to etcd, in the same run when etcd-server is installed: the same 2000 puts, 32 in flight,
//   from one node process on the etcd backend (src/coord/etcd.ts) against a 1-member and a
//   3-member etcd on loopback (test/helpers/etcd.ts; etcd fsyncs too), and the Raft/etcd ratios.
// Usage: node dist/bench/raft.js   (JSON lines; about two minutes)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sim } from '../test/coord/sim.js';
import { etcdInstalled, startEtcd } from '../test/helpers/etcd.js';
import { type Event, NodeProc, until } from '../test/helpers/proc.js';
import { emit, emitSetup, percentile, round, runMain } from './common.js';

const BENCH = 'raft';
const TICK_MS = 30;
const SIM_TRIALS = 100;
const REAL_TRIALS = Number(process.env.RAFT_REAL_TRIALS ?? 10);
const WRITES = 2000;
const PLANNED_TRIALS = Number(process.env.RAFT_PLANNED_TRIALS ?? 5);

function simulated(): void {
  const ms: number[] = [];
  for (let seed = 1; seed <= SIM_TRIALS; seed++) {
    const sim = new Sim({ nodes: 5, seed });
    sim.run(100);
    const l = sim.leader();
    if (!l) throw new Error(`seed ${seed}: no leader`);
    const term = l.raft.term;
    sim.crash(l.id);
    let t = 0;
    while (!sim.live().some((n) => n.raft.role === 'leader' && n.raft.term > term)) {
      sim.step();
      if (++t > 1000) throw new Error(`seed ${seed}: no new leader`);
    }
    ms.push(t * TICK_MS);
  }
  ms.sort((a, b) => a - b);
  emit({
    bench: BENCH,
    case: 'election-after-leader-kill',
    mode: 'simulated',
    trials: ms.length,
    tick_ms: TICK_MS,
    p50_ms: percentile(ms, 50),
    p99_ms: percentile(ms, 99),
    max_ms: ms[ms.length - 1],
  });
}

// biome-ignore lint/suspicious/noExplicitAny: values are free-form JSON from the child
async function ok(p: NodeProc, c: Event, ms = 30_000): Promise<any> {
  const id = p.command(c);
  const r = await p.waitFor((e) => e.event === 'result' && e.id === id, ms, `result of ${c.cmd}`);
  if (!r.ok) throw new Error(`${p.name} ${c.cmd}: ${r.code} ${r.message}`);
  return r.value;
}

async function group(
  n: number,
  tag: string,
): Promise<{ procs: NodeProc[]; dir: string; stop(): Promise<void> }> {
  const cluster = `bench-raft-${tag}-${process.pid}-${Date.now()}`;
  const names = Array.from({ length: n }, (_, i) => `r${i}`);
  const dir = mkdtempSync(join(tmpdir(), 'fnd-bench-raft-'));
  const procs = names.map(
    (name) => new NodeProc(name, ['--cluster', cluster, '--preset', 'local']),
  );
  const stop = async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', 20_000, 'start')));
    for (const p of procs)
      await until(
        async () => (await p.members()).filter((m) => m.status === 'alive').length === n,
        20_000,
        `${p.name} sees ${n}`,
      );
    await Promise.all(procs.map((p) => ok(p, { cmd: 'cstart', members: names, dir })));
    await leaderOf(procs, 0);
  } catch (err) {
    await stop();
    throw err;
  }
  return { procs, dir, stop };
}

async function leaderOf(
  procs: NodeProc[],
  afterTerm: number,
): Promise<{ p: NodeProc; term: number }> {
  for (;;) {
    for (const p of procs) {
      const s = await ok(p, { cmd: 'cstatus' });
      if (s.role === 'leader' && s.term > afterTerm) return { p, term: s.term };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `trials` fresh 5-process groups: in each, `end` removes the leader (a SIGKILL or a planned stop)
 * and the time until a survivor leads in a later term is one sample.
 */
async function timeNewLeader(
  trials: number,
  prefix: string,
  end: (leader: NodeProc) => unknown,
  line: Record<string, unknown>,
): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < trials; i++) {
    const g = await group(5, `${prefix}${i}`);
    try {
      const l = await leaderOf(g.procs, 0);
      await ok(g.procs.find((p) => p !== l.p)!, { cmd: 'cput', key: 'warm', value: 1 });
      const t0 = performance.now();
      await end(l.p);
      await leaderOf(
        g.procs.filter((p) => p !== l.p),
        l.term,
      );
      ms.push(performance.now() - t0);
    } finally {
      await g.stop();
    }
  }
  ms.sort((a, b) => a - b);
  emit({
    bench: BENCH,
    ...line,
    mode: 'real',
    trials: ms.length,
    p50_ms: round(percentile(ms, 50), 1),
    p99_ms: round(percentile(ms, 99), 1),
    samples_ms: ms.map((x) => round(x, 1)),
  });
}

const realElections = () =>
  timeNewLeader(REAL_TRIALS, 'e', (leader) => leader.kill('SIGKILL'), {
    case: 'election-after-leader-kill',
  });

const plannedStops = () =>
  timeNewLeader(PLANNED_TRIALS, 'p', (leader) => leader.command({ cmd: 'stop' }), {
    case: 'new-leader-after-planned-stop',
    transfer: true,
  });

/** WRITES puts with 32 in flight through `client` (after a warm-up): prints and returns writes/s. */
async function committedWrites(client: NodeProc, line: Record<string, unknown>): Promise<number> {
  await ok(client, { cmd: 'cwrites', count: 200, concurrency: 32 }); // warm-up
  const elapsed = (await ok(
    client,
    { cmd: 'cwrites', count: WRITES, concurrency: 32 },
    120_000,
  )) as number;
  const perS = (WRITES / elapsed) * 1000;
  emit({
    bench: BENCH,
    case: 'committed-writes',
    ...line,
    writes: WRITES,
    in_flight: 32,
    fsync: true,
    elapsed_ms: round(elapsed, 1),
    writes_per_s: round(perS, 0),
  });
  return perS;
}

async function throughput(n: number): Promise<number> {
  const g = await group(n, `w${n}`);
  try {
    const l = await leaderOf(g.procs, 0);
    const client = g.procs.find((p) => p !== l.p)!;
    return await committedWrites(client, { backend: 'raft', members: n });
  } finally {
    await g.stop();
  }
}

/** The same load from one node process on the etcd backend against `members` etcd members. */
async function etcdThroughput(members: number): Promise<number> {
  const etcd = await startEtcd(members);
  const client = new NodeProc('ec', [
    '--cluster',
    `bench-etcd-${members}-${process.pid}`,
    '--preset',
    'local',
  ]);
  try {
    await client.waitFor((e) => e.event === 'started', 20_000, 'start');
    await ok(client, { cmd: 'cstart', backend: 'etcd', endpoints: etcd.endpoints });
    return await committedWrites(client, { backend: 'etcd', etcd: etcd.version, members });
  } finally {
    await client.kill('SIGKILL');
    await etcd.stop();
  }
}

runMain(BENCH, async () => {
  emitSetup(BENCH, { tick_ms: TICK_MS, election_ticks: 10 });
  simulated();
  await realElections();
  await plannedStops();
  const raft3 = await throughput(3);
  const raft5 = await throughput(5);
  if (!etcdInstalled()) {
    emit({ bench: BENCH, case: 'etcd', skipped: 'etcd-server is not installed' });
    return;
  }
  const etcd1 = await etcdThroughput(1);
  const etcd3 = await etcdThroughput(3);
  emit({
    bench: BENCH,
    case: 'committed-writes-ratio',
    raft3_vs_etcd1: round(raft3 / etcd1, 3),
    raft3_vs_etcd3: round(raft3 / etcd3, 3),
    raft5_vs_etcd3: round(raft5 / etcd3, 3),
  });
});
