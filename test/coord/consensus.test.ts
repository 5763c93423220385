// node.consensus on the in-memory network under the manual clock: a 3-member Raft group serving
// a node outside it too; KV with revisions, CAS and watch; locks whose fencing tokens only grow;
// leader election; barriers; a leader crash; leadership transfer; and messages from a member that lies about itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COORD_KINDS } from '../../src/coord/wire.js';
import { type FoundationNode, isFoundationError } from '../../src/index.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

/** Runs simulated time until `p` settles; returns its value (or throws its error). */
async function settle<T>(c: MeshedCluster, p: Promise<T>, what = 'operation'): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      error = e;
    },
  );
  await tickUntil(c.clock, c.net, () => done, what, { stepMs: 10, maxMs: 60_000 });
  if (error) throw error;
  return value as T;
}

async function group(names: string[], members: string[]): Promise<MeshedCluster> {
  const c = await startMeshedCluster(names);
  for (const n of c.nodes) await n.consensus.start({ members });
  await tickUntil(
    c.clock,
    c.net,
    () => c.nodes.some((n) => n.consensus.status().role === 'leader'),
    'a consensus leader',
  );
  return c;
}

const leaderNode = (c: MeshedCluster) =>
  c.nodes.find((n) => n.consensus.status().role === 'leader')!;

describe('node.consensus', () => {
  it('KV: put/get/cas/delete with revisions from a non-member; watch on a member', async () => {
    const c = await group(['a', 'b', 'c', 'x'], ['a', 'b', 'c']);
    try {
      const [a, , , x] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      const seen: string[] = [];
      a.consensus.kv.watch('cfg/', (e) => seen.push(`${e.key}=${String(e.value)}@${e.revision}`));
      const r1 = await settle(c, x.consensus.kv.put('cfg/a', 'one'));
      const got = await settle(c, x.consensus.kv.get('cfg/a'));
      assert.deepEqual(got, { value: 'one', revision: r1 });
      const bad = await settle(c, x.consensus.kv.cas('cfg/a', r1 - 1, 'two'));
      assert.deepEqual(bad, { ok: false, revision: r1 });
      const good = await settle(c, x.consensus.kv.cas('cfg/a', r1, 'two'));
      assert.equal(good.ok, true);
      assert.ok(good.revision > r1);
      assert.equal(
        (await settle(c, x.consensus.kv.cas('cfg/new', 0, 'n'))).ok,
        true,
        'rev 0: only if absent',
      );
      assert.equal(await settle(c, x.consensus.kv.delete('cfg/a')), true);
      assert.equal(await settle(c, x.consensus.kv.get('cfg/a')), undefined);
      await tickUntil(c.clock, c.net, () => seen.length === 4, 'watch events');
      assert.deepEqual(
        seen.map((s) => s.split('@')[0]),
        ['cfg/a=one', 'cfg/a=two', 'cfg/new=n', 'cfg/a=undefined'],
      );
      assert.throws(
        () => x.consensus.kv.watch('cfg/', () => {}),
        (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_NOT_MEMBER'),
      );
    } finally {
      await c.stop();
    }
  });

  it('locks: one holder at a time, fencing tokens strictly increase, expiry frees the lock', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const l1 = await settle(c, a.consensus.lock('res', { ttl: 10_000 }));
      await assert.rejects(settle(c, b.consensus.lock('res', { ttl: 10_000, timeout: 500 })), (e) =>
        isFoundationError(e, 'FND_ERR_CONSENSUS_TIMEOUT'),
      );
      const waiting = b.consensus.lock('res', { ttl: 1000, timeout: 20_000 });
      assert.equal(await settle(c, l1.release()), true);
      const l2 = await settle(c, waiting);
      assert.ok(l2.token > l1.token, 'token grows');
      // l2 is never released: after its ttl, a can take the lock with a larger token again.
      const l3 = await settle(c, a.consensus.lock('res', { ttl: 1000, timeout: 20_000 }));
      assert.ok(l3.token > l2.token);
      assert.equal(
        await settle(c, l2.release()),
        false,
        'an expired, superseded holder cannot release',
      );
    } finally {
      await c.stop();
    }
  });

  it('leader election and barriers', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const handles = c.nodes.map((n) => n.consensus.leader('jobs', { ttl: 1000 }));
      const events: string[] = [];
      handles.forEach((h, i) => {
        h.onElected((t) => events.push(`+${i}:${t}`));
        h.onDeposed(() => events.push(`-${i}`));
      });
      await tickUntil(c.clock, c.net, () => handles.some((h) => h.isLeader()), 'a group leader');
      await c.clock.tickAsync(3000);
      assert.equal(handles.filter((h) => h.isLeader()).length, 1, 'exactly one leader, renewed');
      const first = handles.findIndex((h) => h.isLeader());
      await settle(c, handles[first]!.stop());
      await tickUntil(
        c.clock,
        c.net,
        () => handles.some((h, i) => i !== first && h.isLeader()),
        'another leader',
      );
      const tokens = events.filter((e) => e.startsWith('+')).map((e) => Number(e.split(':')[1]));
      assert.ok(
        tokens.length >= 2 && tokens[1]! > tokens[0]!,
        'the next leader has a larger token',
      );
      for (const h of handles) await settle(c, h.stop());

      const arrivals = c.nodes.map((n) => n.consensus.barrier('start', 3, { timeout: 30_000 }));
      await settle(c, Promise.all(arrivals), 'barrier of 3');
      await assert.rejects(
        settle(c, c.nodes[0]!.consensus.barrier('other', 2, { timeout: 1000 })),
        (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_TIMEOUT'),
      );
    } finally {
      await c.stop();
    }
  });

  it('leader(group): a stopping node gives its lease back, so the next leader need not wait out the ttl', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      // Candidates try again every ttl/3 (20 s): the next one leads within that once the lease is
      // back, and only 40 s or more after the last renewal if it has to run out.
      const ttl = 60_000;
      const handles = c.nodes.map((n) => n.consensus.leader('jobs', { ttl }));
      const deposed: number[] = [];
      for (const [i, h] of handles.entries()) h.onDeposed(() => deposed.push(i));
      await tickUntil(c.clock, c.net, () => handles.some((h) => h.isLeader()), 'a group leader');
      await c.clock.tickAsync(ttl / 2);
      const first = handles.findIndex((h) => h.isLeader());
      const stoppedAt = c.clock.now();
      await settle(c, c.nodes[first]!.stop());
      assert.deepEqual(deposed, [first]);
      await tickUntil(
        c.clock,
        c.net,
        () => handles.some((h, i) => i !== first && h.isLeader()),
        'another leader',
        { stepMs: 100, maxMs: 2 * ttl },
      );
      const waited = c.clock.now() - stoppedAt;
      assert.ok(waited <= ttl / 3 + 1000, `the next leader took over ${waited} ms after the stop`);
    } finally {
      await c.stop();
    }
  });

  it('leader(group): a lease granted while its node is stopping is given back too', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const ttl = 60_000;
      const x = c.nodes.find((n) => n.consensus.status().role !== 'leader')!;
      const y = c.nodes.find((n) => n !== x)!;
      // x's first lock request is on its way when its node stops: the grant that answers it
      // arrives during the stop.
      x.consensus.leader('jobs', { ttl });
      await settle(c, x.stop());
      const stoppedAt = c.clock.now();
      const next = y.consensus.leader('jobs', { ttl });
      await tickUntil(c.clock, c.net, () => next.isLeader(), 'y leads', {
        stepMs: 100,
        maxMs: 2 * ttl,
      });
      const waited = c.clock.now() - stoppedAt;
      assert.ok(waited < ttl / 2, `y led ${waited} ms after x stopped`);
    } finally {
      await c.stop();
    }
  });

  it('leader(group): a holder cut off from the group is deposed before another node can be elected', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      // ttl well below the operation timeout (5 s): a renewal that cannot reach the group must
      // give up when the lease may have run out, not when the operation times out.
      const ttl = 1000;
      const x = c.nodes.find((n) => n.consensus.status().role !== 'leader')!;
      const y = c.nodes.find((n) => n !== x && n.consensus.status().role !== 'leader')!;
      const hx = x.consensus.leader('jobs', { ttl });
      await tickUntil(c.clock, c.net, () => hx.isLeader(), 'x leads');
      await c.clock.tickAsync(ttl);
      c.net.partition(
        [x.address],
        c.nodes.filter((n) => n !== x).map((n) => n.address),
      );
      const hy = y.consensus.leader('jobs', { ttl });
      let xLeadsToo: boolean | undefined;
      hy.onElected(() => {
        xLeadsToo = hx.isLeader();
      });
      await tickUntil(c.clock, c.net, () => hy.isLeader(), 'y leads', { maxMs: 20_000 });
      assert.equal(xLeadsToo, false, 'x no longer said it led when y was elected');
    } finally {
      c.net.heal();
      await c.stop();
    }
  });

  it('an operation still looking for a leader when its node stops fails at once', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const x = c.nodes.find((n) => n.consensus.status().role !== 'leader')!;
      const others = c.nodes.filter((n) => n !== x).map((n) => n.address);
      c.net.partition([x.address], others);
      const put = x.consensus.kv.put('k', 1);
      let failed: unknown;
      let failedAt = 0;
      put.catch((e) => {
        failed = e;
        failedAt = c.clock.now();
      });
      await c.clock.tickAsync(500);
      assert.equal(failed, undefined, 'still retrying');
      const stoppedAt = c.clock.now();
      const stopping = x.stop();
      await tickUntil(c.clock, c.net, () => failed !== undefined, 'the put to fail', {
        maxMs: 10_000,
      });
      assert.ok(isFoundationError(failed, 'FND_ERR_CONSENSUS_NOT_STARTED'), String(failed));
      assert.ok(failedAt - stoppedAt < 1000, 'not after the operation timeout (5 s)');
      await settle(c, stopping);
    } finally {
      c.net.heal();
      await c.stop();
    }
  });

  it('a leader crash: a new leader is elected and every acknowledged write is readable', async () => {
    const c = await group(['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'c', 'd', 'e']);
    try {
      const old = leaderNode(c);
      const client = c.nodes.find((n) => n !== old)!;
      const acked: Array<[string, number]> = [];
      for (let i = 0; i < 20; i++)
        acked.push([`k${i}`, await settle(c, client.consensus.kv.put(`k${i}`, i))]);
      c.net.crash(old.address);
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.some((n) => n !== old && n.consensus.status().role === 'leader'),
        'new leader',
      );
      for (const [k, rev] of acked) {
        const v = await settle(c, client.consensus.kv.get(k));
        assert.equal(v?.revision, rev, `${k} kept`);
      }
    } finally {
      await c.stop();
    }
  });

  it('transferLeadership hands the group over; a leader whose node stops does it by itself', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const l = leaderNode(c);
      const term = l.consensus.status().term!;
      const target = c.nodes.find((n) => n !== l)!;
      const rev = await settle(c, target.consensus.kv.put('before', 1));
      assert.equal(await settle(c, l.consensus.transferLeadership(target.name)), target.name);
      assert.equal(target.consensus.status().role, 'leader');
      assert.equal(target.consensus.status().term, term + 1, 'one campaign, no pre-vote round');
      await assert.rejects(settle(c, l.consensus.transferLeadership()), (e) =>
        isFoundationError(e, 'FND_ERR_CONSENSUS_NOT_LEADER'),
      );
      await assert.rejects(settle(c, target.consensus.transferLeadership('nobody')), (e) =>
        isFoundationError(e, 'FND_ERR_INVALID_OPTION'),
      );
      assert.equal((await settle(c, l.consensus.kv.get('before')))?.revision, rev);
      // The leader's node stops: by the time stop() resolves another member leads, one term on
      // (without the transfer the others would still be waiting out their election timeouts).
      await settle(c, target.stop());
      const next = c.nodes.find((n) => n !== target && n.consensus.status().role === 'leader');
      assert.ok(next, 'a new leader as soon as the old one has stopped');
      assert.equal(next.consensus.status().term, term + 2);
      await settle(c, next.consensus.kv.put('after', 2));
    } finally {
      await c.stop();
    }
  });

  it('a member that lies about who sends, or sends garbage, changes nothing', async () => {
    const c = await group(['a', 'b', 'c'], ['a', 'b', 'c']);
    try {
      const l = leaderNode(c);
      const m = c.nodes.find((n) => n !== l)!;
      const other = c.nodes.find((n) => n !== l && n !== m)!;
      const term = l.consensus.status().term!;
      // A vote "from" another member, and a higher-term append "from" a third: refused whole.
      m.messenger.send(l.name, COORD_KINDS.raft, {
        t: 'app',
        term: term + 5,
        from: other.name,
        to: l.name,
        prevIndex: 0,
        prevTerm: 0,
        entries: [],
        commit: 0,
      });
      m.messenger.send(l.name, COORD_KINDS.raft, {
        t: 'app',
        term: term + 5,
        from: m.name,
        to: l.name,
      });
      m.messenger.send(l.name, COORD_KINDS.raft, 'garbage');
      await c.clock.tickAsync(50);
      await c.net.settle();
      assert.equal(l.consensus.status().role, 'leader');
      assert.equal(l.consensus.status().term, term);
      await assert.rejects(
        settle(
          c,
          m.messenger.request(l.name, COORD_KINDS.request, {
            id: 'x',
            t: 'cmd',
            cmd: { op: 'rm -rf' },
          }),
        ),
        (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_MESSAGE'),
      );
    } finally {
      await c.stop();
    }
  });
});

describe('node.consensus membership', () => {
  it('adds a joining node, then removes the leader, one change at a time; data and service survive', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      for (const n of [a, b, cc]) await n.consensus.start({ members: ['a', 'b', 'c'] });
      await d.consensus.start({ members: ['a', 'b', 'c'], join: true });
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.some((n) => n.consensus.status().role === 'leader'),
        'leader',
      );
      const rev = await settle(c, b.consensus.kv.put('before', 1));
      assert.deepEqual(await settle(c, b.consensus.addMember('d')), ['a', 'b', 'c', 'd']);
      await tickUntil(c.clock, c.net, () => d.consensus.status().commit! >= rev, 'd caught up');
      const old = leaderNode(c);
      const voters = await settle(c, d.consensus.removeMember(old.name));
      assert.equal(voters.length, 3);
      assert.ok(!voters.includes(old.name));
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.some((n) => n !== old && n.consensus.status().role === 'leader'),
        'a remaining member leads',
      );
      assert.equal((await settle(c, d.consensus.kv.get('before')))?.revision, rev);
      await settle(c, d.consensus.kv.put('after', 2));
    } finally {
      await c.stop();
    }
  });
});
