// The Raft core's rules one at a time, on the simulated network (test/coord/sim.ts) or with
// messages delivered by hand: election, read-index safety, pre-vote, check-quorum, the
// current-term commit rule, single-server membership changes, snapshots and restarts, leadership
// transfer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Message, Raft } from '../../src/coord/raft/raft.js';
import { rng, Sim, type SimNode } from './sim.js';

function until(sim: Sim, cond: () => boolean, what: string, max = 2000): void {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    sim.step();
  }
  assert.fail(`not reached in ${max} ticks: ${what}`);
}

const leaderOf = (sim: Sim): SimNode => {
  until(sim, () => sim.leader() !== undefined, 'a leader');
  return sim.leader()!;
};

function put(sim: Sim, key: string, value: string): void {
  let done = false;
  until(
    sim,
    () => {
      const l = sim.leader();
      if (!done && l && sim.acked.every((a) => a.value !== value))
        sim.write(l, { op: 'put', key, value });
      done = sim.acked.some((a) => a.value === value);
      return done;
    },
    `put ${value}`,
  );
}

describe('raft core', () => {
  it('elects one leader and replicates writes to every node', () => {
    const sim = new Sim({ nodes: 3, seed: 1 });
    const l = leaderOf(sim);
    put(sim, 'a', '1');
    put(sim, 'b', '2');
    until(sim, () => sim.live().every((n) => n.kv.b === '2'), 'replicated');
    assert.deepEqual(sim.violations, []);
    assert.equal(sim.live().filter((n) => n.raft.role === 'leader').length, 1);
    assert.equal(sim.leader()!.id, l.id);
  });

  it('a leader cut off from the majority serves no read; the read fails when it steps down (check-quorum)', () => {
    const sim = new Sim({ nodes: 5, seed: 2 });
    const l = leaderOf(sim);
    put(sim, 'a', '1');
    sim.partition([[l.id], sim.ids.filter((id) => id !== l.id)]);
    let result: string | null | undefined | 'pending' = 'pending';
    assert.ok(sim.read(l, 'a', (v) => (result = v)));
    sim.run(3);
    assert.equal(result, 'pending', 'no quorum confirmed the leadership: the read waits');
    until(sim, () => l.raft.role !== 'leader', 'isolated leader steps down', 100);
    assert.equal(result, undefined, 'the read failed (the client retries elsewhere)');
    // Meanwhile the majority elected a leader of a later term and goes on.
    until(sim, () => sim.leader() !== undefined && sim.leader()!.id !== l.id, 'new leader');
    put(sim, 'a', '2');
    assert.deepEqual(sim.violations, []);
  });

  it('pre-vote and the leader lease: a node isolated for long rejoins without raising the term', () => {
    const sim = new Sim({ nodes: 3, seed: 3 });
    const l = leaderOf(sim);
    put(sim, 'a', '1');
    const term = l.raft.term;
    const f = sim.live().find((n) => n.id !== l.id)!;
    sim.partition([[f.id], sim.ids.filter((id) => id !== f.id)]);
    sim.run(300);
    assert.equal(f.raft.term, term, 'pre-votes failed, so the isolated node never bumped its term');
    sim.heal();
    sim.run(100);
    assert.equal(sim.leader()!.id, l.id);
    assert.equal(l.raft.term, term, 'the rejoining node did not depose the leader');
  });

  it('a leader counts replicas only for entries of its own term (Raft §5.4.2, figure 8)', () => {
    // n0 restarts with an entry of term 2 that n1 lacks; it wins term 4 and replicates that entry
    // to n1 one entry per message. A majority (n0, n1) then holds index 2, but it must stay
    // uncommitted until the leader's own no-op (index 3, term 4) reaches a majority.
    const mk = (id: string, entries: Array<{ index: number; term: number }>, term: number) =>
      new Raft({
        id,
        voters: ['n0', 'n1', 'n2'],
        random: rng(id.charCodeAt(1)),
        maxEntriesPerMessage: 1,
        restore: {
          hardState: { term, vote: null, commit: 1 },
          entries: entries.map((e) => ({ ...e, type: 'normal' as const, data: e.index })),
        },
      });
    const n0 = mk(
      'n0',
      [
        { index: 1, term: 1 },
        { index: 2, term: 2 },
      ],
      3,
    );
    const n1 = mk('n1', [{ index: 1, term: 1 }], 3);
    const nodes = new Map([
      ['n0', n0],
      ['n1', n1],
    ]);
    for (let i = 0; i < 30 && n0.role !== 'precandidate'; i++) n0.tick();
    const queue: Message[] = [];
    let checked = false;
    for (let i = 0; i < 200; i++) {
      for (const n of nodes.values()) if (n.hasReady()) queue.push(...n.ready().messages);
      const m = queue.shift();
      if (!m) break;
      nodes.get(m.to)?.step(m);
      if (n1.lastIndex() === 2 && n0.role === 'leader') {
        assert.equal(
          n0.commit,
          1,
          'index 2 (term 2) is on a majority but not committed by counting',
        );
        checked = true;
      }
    }
    assert.ok(checked, 'the scenario reached the state it checks');
    assert.equal(n0.role, 'leader');
    assert.equal(n0.commit, 3, 'committed once the no-op of term 4 is on a majority');
  });

  it('single-server membership changes: add a blank node, remove the leader; the group goes on', () => {
    const sim = new Sim({ nodes: 3, seed: 4 });
    let l = leaderOf(sim);
    put(sim, 'a', '1');
    assert.equal(
      l.raft.proposeConf(['n0', 'n1', 'n2', 'n3', 'n4']),
      undefined,
      'two changes at once refused',
    );
    sim.addBlank('n3');
    assert.ok(l.raft.proposeConf([...l.raft.voters, 'n3']));
    assert.equal(l.raft.proposeConf(['n0', 'n1']), undefined, 'one uncommitted change at a time');
    sim.process(l);
    until(sim, () => sim.nodes.get('n3')!.kv.a === '1', 'n3 caught up');
    until(
      sim,
      () => sim.live().every((n) => n.raft.voters.length === 4),
      'every node has 4 voters',
    );
    l = sim.leader()!;
    const old = l.id;
    until(
      sim,
      () => l.raft.proposeConf(l.raft.voters.filter((v) => v !== old)) !== undefined,
      'propose removal',
    );
    sim.process(l);
    until(
      sim,
      () => sim.leader() !== undefined && sim.leader()!.id !== old,
      'a remaining voter leads',
    );
    put(sim, 'b', '2');
    assert.ok(!sim.leader()!.raft.voters.includes(old));
    assert.deepEqual(sim.violations, []);
  });

  it('a node back from a long crash catches up from a snapshot; a full restart keeps every acknowledged write', () => {
    const sim = new Sim({ nodes: 3, seed: 5, compactEvery: 5 });
    const l = leaderOf(sim);
    const f = sim.live().find((n) => n.id !== l.id)!;
    sim.crash(f.id);
    for (let i = 0; i < 30; i++) put(sim, `k${i % 3}`, `v${i}`);
    assert.ok(sim.leader()!.raft.snapshotIndex > 10, 'the leader compacted its log');
    sim.restart(f.id);
    const back = sim.nodes.get(f.id)!;
    until(sim, () => back.kv.k2 === 'v29', 'restarted node caught up');
    assert.ok(sim.storage.get(f.id)!.snapshot!.index > 10, 'it was sent a snapshot');
    for (const id of sim.ids) sim.crash(id);
    for (const id of sim.ids) sim.restart(id);
    leaderOf(sim);
    let read: string | null | undefined;
    let asked = false;
    until(
      sim,
      () => {
        const ld = sim.leader();
        if (ld && !asked)
          asked = sim.read(ld, 'k2', (v) => {
            read = v;
            asked = v !== undefined;
          });
        return read !== undefined;
      },
      'read after full restart',
    );
    assert.equal(read, 'v29');
    assert.deepEqual(sim.violations, []);
  });
});

describe('raft core: leadership transfer', () => {
  it('hands leadership to a lagging follower after bringing it up to date; no write is lost', () => {
    const sim = new Sim({ nodes: 5, seed: 21 });
    const l = leaderOf(sim);
    const target = sim.live().find((n) => n.id !== l.id)!;
    // The target misses writes, then comes back: the leader must catch it up first.
    sim.partition([[target.id], sim.ids.filter((id) => id !== target.id)]);
    for (let i = 0; i < 10; i++) put(sim, 'k', `v${i}`);
    sim.heal();
    const term = l.raft.term;
    assert.equal(l.raft.transferLeadership(target.id), target.id);
    assert.equal(
      l.raft.propose({ op: 'put', key: 'x', value: 'refused' }),
      undefined,
      'proposals wait',
    );
    // The leader heartbeats every tick, so no follower's election timer runs out: only the
    // transfer (within its abort window of one election timeout, 10 ticks) can change the leader.
    until(sim, () => target.raft.role === 'leader', 'the target leads', 12);
    assert.equal(target.raft.term, term + 1, 'one campaign, no pre-vote round, no extra terms');
    until(
      sim,
      () => l.raft.role === 'follower' && l.raft.leader === target.id,
      'old leader follows',
    );
    put(sim, 'k', 'after');
    until(sim, () => sim.live().every((n) => n.kv.k === 'after'), 'replicated');
    assert.deepEqual(sim.violations, []);
  });

  it('without a target: the most up-to-date follower; a transfer to an unreachable node aborts after an election timeout', () => {
    const sim = new Sim({ nodes: 3, seed: 22 });
    const l = leaderOf(sim);
    put(sim, 'a', '1');
    const [f1, f2] = sim.live().filter((n) => n.id !== l.id) as [SimNode, SimNode];
    sim.crash(f2.id);
    put(sim, 'a', '2');
    assert.equal(l.raft.transferLeadership(), f1.id, 'the follower that has every entry');
    until(sim, () => f1.raft.role === 'leader', 'f1 leads', 12);
    sim.restart(f2.id);
    const l2 = f1;
    put(sim, 'a', '3');
    const down = sim.live().find((n) => n.id !== l2.id && n.raft.role === 'follower')!;
    sim.crash(down.id);
    const term = l2.raft.term;
    assert.equal(l2.raft.transferLeadership(down.id), down.id);
    assert.equal(l2.raft.transferTarget, down.id);
    sim.run(25);
    assert.equal(l2.raft.transferTarget, undefined, 'aborted');
    assert.equal(l2.raft.role, 'leader', 'still leading');
    assert.equal(l2.raft.term, term);
    put(sim, 'a', '4');
    assert.deepEqual(sim.violations, []);
  });

  it('a follower campaigns on TimeoutNow only from its current leader', () => {
    const sim = new Sim({ nodes: 3, seed: 23 });
    const l = leaderOf(sim);
    const [f1, f2] = sim.live().filter((n) => n.id !== l.id) as [SimNode, SimNode];
    until(sim, () => f1.raft.leader === l.id, 'f1 follows the leader');
    const term = f1.raft.term;
    // f2 (not the leader) asks f1 to campaign: ignored.
    f1.raft.step({ t: 'timeoutNow', term, from: f2.id, to: f1.id });
    assert.equal(f1.raft.role, 'follower');
    assert.equal(f1.raft.term, term);
    f1.raft.step({ t: 'timeoutNow', term, from: l.id, to: f1.id });
    assert.equal(f1.raft.role, 'candidate', 'straight to candidate, skipping pre-vote');
    assert.equal(f1.raft.term, term + 1);
  });
});
