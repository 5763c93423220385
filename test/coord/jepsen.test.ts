// Jepsen-style runs of the Raft core on the simulated network: per seed, random partitions,
// crashes with restarts from persisted state, message loss and delay, membership changes and log
// compaction, leadership transfers (to any voter, reachable or not), under a client load of puts, deletes, compare-and-sets and read-index reads.
// Locks run on the real consensus state machine (src/coord/machine.ts).
// Oracles: at most one leader per term, one term per applied index (state machine safety), every
// acknowledged write still in the log after the faults, replicas identical at the end, and each
// key's history linearizable (Wing–Gong/Porcupine checker), fencing tokens increasing in log order
// on every node and in real-time order of acknowledgment. RAFT_SEEDS=5000 for a long run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLinearizable, kvModel } from './linearizability.js';
import { type Cmd, rng, Sim } from './sim.js';

const SEEDS = Number(process.env.RAFT_SEEDS ?? 200);
const FIRST = Number(process.env.RAFT_SEED_FROM ?? 1);

interface Stats {
  grants: number;
  ops: number;
  acked: number;
  leaders: number;
  snapshotsInstalled: boolean;
  confChanges: number;
  transfers: number;
  transferred: number;
}

function runSeed(seed: number): Stats {
  const r = rng(seed * 7919);
  const nodes = seed % 2 === 0 ? 3 : 5;
  const sim = new Sim({
    nodes,
    seed,
    drop: r() * 0.1,
    maxDelay: Math.floor(r() * 3),
    compactEvery: 5 + Math.floor(r() * 20),
    maxEntries: 1 + Math.floor(r() * 4),
  });
  const restartAt = new Map<string, number>();
  let value = 0;
  let ops = 0;
  let confChanges = 0;
  let transfers = 0;
  let transferred = 0;
  let pending: { to: string; term: number; until: number } | undefined;
  const keys = ['a', 'b', 'c'];
  const grants: Array<{ call: number; ret: number; token: number }> = [];
  const tokens: number[] = [];
  const members = () => sim.leader()?.raft.voters ?? [];
  for (let t = 0; t < 600; t++) {
    const x = r();
    if (x < 0.015) {
      const ids = [...sim.ids].sort(() => r() - 0.5);
      const cut = 1 + Math.floor(r() * (ids.length - 1));
      sim.partition([ids.slice(0, cut), ids.slice(cut)]);
    } else if (x < 0.03) sim.heal();
    else if (x < 0.04) {
      const live = sim.live();
      if (live.length > 1) {
        const victim = live[Math.floor(r() * live.length)]!.id;
        sim.crash(victim);
        restartAt.set(victim, t + 5 + Math.floor(r() * 40));
      }
    } else if (x < 0.055 && seed % 3 === 0) {
      // Single-server membership change: remove a voter (keeping 3) or add back a non-voter.
      const l = sim.leader();
      if (l) {
        const voters = l.raft.voters;
        const out = sim.ids.filter((id) => !voters.includes(id));
        const next =
          out.length > 0 && (voters.length <= 3 || r() < 0.5)
            ? [...voters, out[0]!]
            : voters.filter((v) => v !== voters[Math.floor(r() * voters.length)]);
        if (l.raft.proposeConf(next)) confChanges++;
        sim.process(l);
      }
    } else if (x >= 0.055 && x < 0.065) {
      // Leadership transfer to a random voter (it may be cut off or down: then it aborts).
      const l = sim.leader();
      const to = l?.raft.voters.filter((v) => v !== l.id);
      if (l && to && to.length > 0) {
        const target = l.raft.transferLeadership(to[Math.floor(r() * to.length)]);
        if (target) {
          transfers++;
          pending = { to: target, term: l.raft.term, until: t + 30 };
        }
        sim.process(l);
      }
    }
    if (pending) {
      const l = sim.leader();
      if (l?.id === pending.to && l.raft.term > pending.term) {
        transferred++;
        pending = undefined;
      } else if (t >= pending.until) pending = undefined;
    }
    for (const [id, at] of restartAt) {
      if (at <= t) {
        sim.restart(id);
        restartAt.delete(id);
      }
    }
    if (r() < 0.25) {
      const l = sim.anyLeader();
      if (l) {
        const key = keys[Math.floor(r() * keys.length)]!;
        const y = r();
        let cmd: Cmd | undefined;
        if (y < 0.45) cmd = { op: 'put', key, value: `v${++value}` };
        else if (y < 0.55) cmd = { op: 'del', key };
        else if (y < 0.6)
          cmd = { op: 'cas', key, expected: r() < 0.5 ? null : `v${value}`, value: `v${++value}` };
        if (y >= 0.6 && y < 0.75) {
          // Locks on the real state machine: record each acknowledged grant's token.
          const grant = { call: sim.now(), ret: Number.POSITIVE_INFINITY, token: 0 };
          const owner = `c${Math.floor(r() * 3)}`;
          const sent =
            y < 0.7 || tokens.length === 0
              ? sim.lease(
                  l,
                  { op: 'lock', name: 'L', owner, ttlMs: 100 + Math.floor(r() * 900) },
                  (res) => {
                    const g = res as { ok?: boolean; token?: number } | undefined;
                    if (g?.ok && g.token !== undefined) {
                      grant.ret = sim.now();
                      grant.token = g.token;
                      grants.push(grant);
                      tokens.push(g.token);
                    }
                  },
                )
              : sim.lease(
                  l,
                  { op: 'unlock', name: 'L', token: tokens[Math.floor(r() * tokens.length)]! },
                  () => {},
                );
          if (sent) ops++;
        } else if (cmd ? sim.write(l, cmd) : sim.read(l, key)) ops++;
      }
    }
    sim.step();
  }
  // Heal everything, restart every crashed node, stop losing messages; then read every key.
  sim.heal();
  sim.drop = 0;
  for (const id of restartAt.keys()) sim.restart(id);
  const finals = new Map<string, string | null>();
  for (let t = 0; t < 2000 && finals.size < keys.length; t++) {
    const l = sim.leader();
    if (l && t % 20 === 0)
      for (const k of keys)
        if (!finals.has(k)) sim.read(l, k, (v) => v !== undefined && finals.set(k, v));
    sim.step();
  }
  assert.equal(finals.size, keys.length, `seed ${seed}: final reads completed after healing`);
  // Quiesce, then every member of the configuration has the same state.
  sim.run(100);
  const l = sim.leader()!;
  assert.deepEqual(sim.violations, [], `seed ${seed}`);
  for (const id of members()) {
    const n = sim.nodes.get(id)!;
    assert.equal(n.raft.applied, l.raft.applied, `seed ${seed}: ${id} caught up`);
    assert.deepEqual(n.kv, l.kv, `seed ${seed}: ${id} has the leader's state`);
  }
  for (const w of sim.acked) {
    assert.ok(w.index <= l.raft.commit, `seed ${seed}: acknowledged write ${w.value} committed`);
    assert.equal(
      sim.termAtIndex.get(w.index),
      w.term,
      `seed ${seed}: acknowledged write ${w.value} kept`,
    );
  }
  // Fencing: a grant acknowledged before another was asked for has the smaller token.
  for (const a of grants)
    for (const b of grants)
      if (a.ret < b.call)
        assert.ok(
          a.token < b.token,
          `seed ${seed}: token ${a.token} acked before ${b.token} was asked for`,
        );
  for (const [key, h] of sim.history)
    assert.ok(isLinearizable(kvModel, h), `seed ${seed}: history of key ${key} is linearizable`);
  return {
    grants: grants.length,
    ops,
    acked: sim.acked.length,
    leaders: sim.leaderOfTerm.size,
    snapshotsInstalled: [...sim.storage.values()].some((s) => s.snapshot !== undefined),
    confChanges,
    transfers,
    transferred,
  };
}

describe('raft under faults (seeded, Jepsen-style)', () => {
  it(`${SEEDS} seeded runs: one leader per term, no acknowledged write lost, linearizable KV, fencing tokens increase, under leadership transfers`, () => {
    let acked = 0;
    let leaders = 0;
    let conf = 0;
    let snaps = 0;
    let grants = 0;
    let transfers = 0;
    let transferred = 0;
    for (let s = FIRST; s < FIRST + SEEDS; s++) {
      const st = runSeed(s);
      acked += st.acked;
      grants += st.grants;
      leaders += st.leaders;
      conf += st.confChanges;
      transfers += st.transfers;
      transferred += st.transferred;
      if (st.snapshotsInstalled) snaps++;
    }
    // The runs exercised what the oracles check: many writes, elections, conf changes, snapshots.
    assert.ok(acked > SEEDS * 10, `acknowledged writes: ${acked}`);
    assert.ok(leaders > SEEDS * 2, `leaders elected: ${leaders}`);
    assert.ok(conf > 0, 'membership changes proposed');
    assert.ok(grants > SEEDS, `lock grants: ${grants}`);
    assert.ok(snaps > SEEDS / 2, 'snapshots taken');
    assert.ok(transfers > SEEDS, `leadership transfers started: ${transfers}`);
    assert.ok(transferred > 0, `leadership transfers that completed: ${transferred}`);
  });
});
