// The cluster-wide registry on the in-memory network with a manual clock: registration seen on
// every node, removal on actor exit and node down, sync registrations, `{ global }` addressing,
// deterministic conflict resolution after a partition heals (seeded, many runs, with Jepsen-style
// set-full and unique-ids oracles), and messages from a malicious member that must not do harm.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIST_KINDS, DIST_LIMITS } from '../../src/dist/wire.js';
import type { FoundationNode, Pid } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { fulfilled, rejectedWith, rejectsWithCode, track } from '../helpers/assert.js';
import {
  fullyMeshed,
  type MeshedCluster,
  startMemNode,
  startMeshedCluster,
  tickUntil,
} from '../helpers/nodes.js';

const idle = () => ({ handleInfo() {}, handleCall: (m: unknown) => m });

/** Every node's view: name → "node.id", sorted. */
function view(n: FoundationNode): string {
  return JSON.stringify(n.registry.select('').map((r) => [r.name, `${r.pid.node}.${r.pid.id}`]));
}

const settle = (c: MeshedCluster, ms = 100) =>
  tickUntil(c.clock, c.net, () => false, '', { maxMs: ms }).catch(() => {});

describe('registry', () => {
  it('a name registered on one node resolves on every node, with meta, select and events', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const seen: string[] = [];
      cc.registry.on('registered', (name, pid) => seen.push(`+${name}@${pid.node}`));
      cc.registry.on('unregistered', (name, pid) => seen.push(`-${name}@${pid.node}`));
      const pid = a.spawn(idle());
      await a.registry.register('svc.orders', pid, { meta: { v: 1 } });
      await a.registry.register('svc.users', a.spawn(idle()));
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.registry.size === 2),
        'all see 2',
      );
      for (const n of c.nodes) {
        assert.deepEqual(n.registry.whereis('svc.orders')?.toJSON(), pid.toJSON());
        assert.deepEqual(n.registry.meta('svc.orders'), { v: 1 });
      }
      assert.deepEqual(
        b.registry.select('svc.o').map((r) => r.name),
        ['svc.orders'],
      );
      assert.deepEqual(
        b.registry.select((name) => name.endsWith('users')).map((r) => r.name),
        ['svc.users'],
      );
      // { global: name } addressing from another node.
      assert.equal(await b.call({ global: 'svc.orders' }, 'ping'), 'ping');
      await rejectsWithCode(b.call({ global: 'nope' }, 'ping'), 'FND_ERR_NOPROC');
      assert.equal(a.registry.unregister('svc.orders'), true);
      assert.equal(a.registry.unregister('svc.orders'), false);
      await tickUntil(
        c.clock,
        c.net,
        () => cc.registry.whereis('svc.orders') === undefined,
        'gone on c',
      );
      assert.deepEqual(seen, ['+svc.orders@a', '+svc.users@a', '-svc.orders@a']);
    } finally {
      await c.stop();
    }
  });

  it('refuses a taken name, a dead or remote pid, a bad name and oversized meta with coded errors', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      await a.registry.register('x', a.spawn(idle()));
      await tickUntil(c.clock, c.net, () => b.registry.whereis('x') !== undefined, 'b sees x');
      await rejectsWithCode(b.registry.register('x', b.spawn(idle())), 'FND_ERR_NAME_TAKEN');
      await rejectsWithCode(b.registry.register('y', a.spawn(idle())), 'FND_ERR_NOPROC');
      const dead = b.spawn(idle());
      b.exit(dead, 'kill');
      await rejectsWithCode(b.registry.register('y', dead), 'FND_ERR_NOPROC');
      await rejectsWithCode(b.registry.register('', b.spawn(idle())), 'FND_ERR_INVALID_OPTION');
      // A lone surrogate: other members would get U+FFFD in its place, another name.
      await rejectsWithCode(
        b.registry.register('lone\ud800', b.spawn(idle())),
        'FND_ERR_INVALID_OPTION',
      );
      await rejectsWithCode(
        b.registry.register('z'.repeat(DIST_LIMITS.maxNameLength + 1), b.spawn(idle())),
        'FND_ERR_INVALID_OPTION',
      );
      await rejectsWithCode(
        b.registry.register('y', b.spawn(idle()), { meta: 'm'.repeat(DIST_LIMITS.maxMetaBytes) }),
        'FND_ERR_INVALID_OPTION',
      );
      // The same bytes in a Map or a Set (the wire sends them as an object and an array).
      const big = 'm'.repeat(DIST_LIMITS.maxMetaBytes);
      for (const meta of [new Map([['k', big]]), new Set([big])])
        await rejectsWithCode(
          b.registry.register('y', b.spawn(idle()), { meta }),
          'FND_ERR_INVALID_OPTION',
        );
    } finally {
      await c.stop();
    }
  });

  it("removes an exited actor's names at once and a down node's names on every survivor", async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const pa = a.spawn(idle());
      await a.registry.register('one', pa);
      await a.registry.register('two', pa);
      await b.registry.register('on-b', b.spawn(idle()));
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.registry.size === 3),
        'all see 3',
      );
      a.exit(pa, 'kill');
      assert.equal(a.registry.whereis('one'), undefined, 'gone locally at once');
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.registry.size === 1),
        'exit propagated',
      );
      c.net.crash(b.address);
      await tickUntil(
        c.clock,
        c.net,
        () => [a, cc].every((n) => n.registry.size === 0),
        'b down: names gone',
      );
    } finally {
      await c.stop();
    }
  });

  it('sync registration resolves after every member acknowledged; of two concurrent ones exactly one wins', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const r = track(a.registry.register('s', a.spawn(idle()), { sync: true }));
      await tickUntil(c.clock, c.net, () => r.result.state !== 'pending', 'sync settles');
      fulfilled(r);
      // Acknowledged means applied: every member resolves the name right away.
      for (const n of [b, cc]) assert.equal(n.registry.whereis('s')?.node, 'a');
      // Two nodes register one name in the same instant.
      const pa = a.spawn(idle());
      const pb = b.spawn(idle());
      const ra = track(a.registry.register('race', pa, { sync: true }));
      const rb = track(b.registry.register('race', pb, { sync: true }));
      await tickUntil(
        c.clock,
        c.net,
        () => ra.result.state !== 'pending' && rb.result.state !== 'pending',
        'both settle',
      );
      const won = [ra, rb].filter((t) => t.result.state === 'fulfilled');
      assert.equal(won.length, 1, 'exactly one of two concurrent sync registrations resolves');
      rejectedWith(ra.result.state === 'fulfilled' ? rb : ra, 'FND_ERR_NAME_TAKEN');
      await settle(c, 300);
      const owner = a.registry.whereis('race');
      for (const n of c.nodes)
        assert.deepEqual(n.registry.whereis('race')?.toJSON(), owner?.toJSON());
      // The loser of a sync race is told by the rejection, not killed.
      assert.ok(a.actors.isAlive(pa) && b.actors.isAlive(pb));
    } finally {
      await c.stop();
    }
  });

  it('a sync registration a member refused rejects with FND_ERR_NAME_REFUSED and holds nowhere', async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock, 1);
    // a's wall clock runs 61 s ahead: b refuses a's registrations (further than 60 s ahead).
    const skewed = {
      now: () => clock.now(),
      wallNow: () => clock.wallNow() + 61_000,
      setTimeout: (f: () => void, ms: number) => clock.setTimeout(f, ms),
      setInterval: (f: () => void, ms: number) => clock.setInterval(f, ms),
    };
    const a = await startMemNode(net, clock, { name: 'a', clock: skewed as never });
    const b = await startMemNode(net, clock, { name: 'b' });
    try {
      await b.join(a.address);
      await tickUntil(clock, net, () => fullyMeshed([a, b]), 'meshed');
      const r = track(a.registry.register('leader', a.spawn(idle()), { sync: true }));
      await tickUntil(clock, net, () => r.result.state !== 'pending', 'sync settles');
      assert.equal(rejectedWith(r, 'FND_ERR_NAME_REFUSED').data?.member, 'b');
      assert.equal(a.registry.whereis('leader'), undefined);
      assert.equal(b.registry.whereis('leader'), undefined);
      // b may take the name: nobody was told a holds it.
      const rb = track(b.registry.register('leader', b.spawn(idle()), { sync: true }));
      await tickUntil(clock, net, () => rb.result.state !== 'pending', 'b registers');
      assert.equal(rb.result.state, 'fulfilled');
    } finally {
      const all = Promise.all([a.stop(), b.stop()]);
      let done = false;
      void all.finally(() => {
        done = true;
      });
      while (!done) {
        await net.settle();
        await clock.tickAsync(10);
      }
      await all;
    }
  });

  it('after a partition heals each name has one owner, the earliest registration; the loser exits name_conflict', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as FoundationNode[] as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      c.net.partition([a.address, b.address], [cc.address, d.address]);
      await tickUntil(
        c.clock,
        c.net,
        () => a.members().filter((m) => m.status === 'down').length === 2,
        'split seen',
      );
      await tickUntil(
        c.clock,
        c.net,
        () => cc.members().filter((m) => m.status === 'down').length === 2,
        'split seen',
      );
      const exits: Array<[Pid, unknown]> = [];
      for (const n of c.nodes) n.actors.onExit((pid, reason) => exits.push([pid, reason]));
      const first = a.spawn(idle());
      await a.registry.register('leader', first, { sync: true });
      c.clock.tick(5); // d's registration is later in time
      const second = d.spawn(idle());
      await d.registry.register('leader', second, { sync: true });
      assert.equal(a.registry.whereis('leader')?.node, 'a');
      assert.equal(
        cc.registry.whereis('leader')?.node,
        'd',
        'each side has its own owner during the split',
      );
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.members().every((m) => m.status === 'alive')),
        'healed',
        { maxMs: 60_000 },
      );
      await tickUntil(
        c.clock,
        c.net,
        () => new Set(c.nodes.map(view)).size === 1 && a.registry.claimCount() === 1,
        'views converge',
      );
      for (const n of c.nodes)
        assert.deepEqual(n.registry.whereis('leader')?.toJSON(), first.toJSON());
      assert.equal(d.actors.isAlive(second), false);
      assert.deepEqual(
        exits.find(([p]) => p.node === 'd' && p.id === second.id)?.[1],
        'name_conflict',
      );
    } finally {
      await c.stop();
    }
  });

  it('a malicious member cannot register for another node, push the clock forward, or exceed the limits', async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const epoch = 2 ** 52; // newer than m's real run, so a takes these as m's
      const send = (p: unknown) => m.messenger.send('a', DIST_KINDS.registry, p);
      const now = Math.floor(c.clock.wallNow());
      send({ t: 'snap', epoch, seq: 0, first: true, last: true, entries: [] });
      // An entry only ever names an actor of its sender: there is no field to claim another node's.
      send({
        t: 'delta',
        epoch,
        seq: 1,
        ops: [{ k: 'stolen', v: { id: 1, ts: { wall: now, counter: 0 }, node: 'a' } }],
      });
      // A timestamp an hour ahead is refused and does not move a's clock.
      send({
        t: 'delta',
        epoch,
        seq: 2,
        ops: [{ k: 'future', v: { id: 2, ts: { wall: now + 3_600_000, counter: 0 } } }],
      });
      // Too many ops, an over-long name, garbage: refused whole, before any state changes.
      const many = Array.from({ length: DIST_LIMITS.maxOpsPerMessage + 1 }, (_, i) => ({
        k: `n${i}`,
        v: { id: 3, ts: { wall: now, counter: 0 } },
      }));
      send({ t: 'delta', epoch, seq: 3, ops: many });
      send({
        t: 'delta',
        epoch,
        seq: 3,
        ops: [{ k: 'x'.repeat(10_000), v: { id: 3, ts: { wall: now, counter: 0 } } }],
      });
      send(['delta', 1, 2, 3]);
      send({
        t: 'delta',
        epoch,
        seq: 3,
        ops: [{ k: 'ok', v: { id: 4, ts: { wall: now, counter: 0 } } }],
      });
      await tickUntil(
        c.clock,
        c.net,
        () => a.registry.whereis('ok') !== undefined,
        'the valid delta applies',
      );
      send({
        t: 'delta',
        epoch,
        seq: 4,
        ops: [{ k: 'big', v: { id: 3, ts: { wall: now, counter: 0 }, meta: 'x'.repeat(100_000) } }],
      });
      await settle(c, 50);
      assert.equal(a.registry.whereis('stolen')?.node, 'm');
      assert.equal(a.registry.whereis('future'), undefined);
      assert.equal(a.registry.whereis('big'), undefined);
      assert.equal(a.registry.whereis('n0'), undefined);
      assert.ok(a.registry.size <= 2);
      // Announcing more than maxEntriesPerNode names: a keeps at most that many.
      const per = DIST_LIMITS.maxOpsPerMessage;
      let seq = 4;
      for (let sent = 0; sent < DIST_LIMITS.maxEntriesPerNode + per; sent += per) {
        const ops = Array.from({ length: per }, (_, i) => ({
          k: `flood${sent + i}`,
          v: { id: 5, ts: { wall: now, counter: 0 } },
        }));
        send({ t: 'delta', epoch, seq: ++seq, ops });
      }
      await settle(c, 200);
      assert.ok(a.registry.size <= DIST_LIMITS.maxEntriesPerNode, `a holds ${a.registry.size}`);
      assert.ok(a.registry.size >= DIST_LIMITS.maxEntriesPerNode - 10);
    } finally {
      await c.stop();
    }
  });
});

/** A small seeded PRNG (mulberry32) so every run of a seed does the same thing. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('registry under partitions (seeded, Jepsen-style oracles)', () => {
  const SEEDS = Number(process.env.REGISTRY_SEEDS ?? 12);
  let conflicts = 0;
  let splitAcks = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`seed ${seed}: after heal + quiet period all views are identical, one owner per name, no acknowledged registration lost`, async () => {
      const rand = rng(seed);
      const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
      const c = await startMeshedCluster(names, {}, seed);
      try {
        const nodes = c.nodes;
        const exits = new Map<string, unknown>();
        for (const n of nodes)
          n.actors.onExit((pid, reason) => exits.set(`${pid.node}.${pid.id}`, reason));
        /** Acknowledged registrations: name, pid key, sync or not, made while connected or split. */
        const acked: Array<{ name: string; pid: string; sync: boolean; split: boolean }> = [];
        const pool = Array.from({ length: 12 }, (_, i) => `name${i}`);
        const round = async (split: boolean) => {
          for (let i = 0; i < 10; i++) {
            const n = nodes[Math.floor(rand() * nodes.length)]!;
            const name = pool[Math.floor(rand() * pool.length)]!;
            const sync = rand() < 0.5;
            const pid = n.spawn(idle());
            const t = track(n.registry.register(name, pid, { sync }));
            await tickUntil(
              c.clock,
              c.net,
              () => t.result.state !== 'pending',
              'register settles',
              { maxMs: 20_000 },
            );
            if (t.result.state === 'fulfilled')
              acked.push({ name, pid: `${pid.node}.${pid.id}`, sync, split });
            if (rand() < 0.1) n.exit(pid, 'kill');
            await c.clock.tickAsync(Math.floor(rand() * 20));
          }
        };
        await round(false);
        // Split into two random non-empty sides, register on both, heal.
        const shuffled = [...nodes].sort(() => rand() - 0.5);
        const k = 1 + Math.floor(rand() * (nodes.length - 1));
        const left = shuffled.slice(0, k);
        const right = shuffled.slice(k);
        c.net.partition(
          left.map((n) => n.address),
          right.map((n) => n.address),
        );
        await tickUntil(
          c.clock,
          c.net,
          () => left[0]!.members().filter((m) => m.status === 'down').length === right.length,
          'split detected',
          { maxMs: 60_000 },
        );
        await round(true);
        c.net.heal();
        await tickUntil(
          c.clock,
          c.net,
          () => nodes.every((n) => n.members().every((m) => m.status === 'alive')),
          'healed',
          { maxMs: 120_000 },
        );
        // Quiet period: anti-entropy and conflict resolution settle.
        await tickUntil(
          c.clock,
          c.net,
          () =>
            new Set(nodes.map(view)).size === 1 &&
            nodes.every((n) => n.registry.claimCount() === n.registry.size),
          'views identical, no conflicting claims left',
          { maxMs: 60_000 },
        );
        await c.clock.tickAsync(3000);
        await c.net.settle();
        const final = new Map(
          nodes[0]!.registry.select('').map((r) => [r.name, `${r.pid.node}.${r.pid.id}`]),
        );
        // unique-ids: every node agrees, one owner per name (identical views above), owners alive.
        assert.equal(new Set(nodes.map(view)).size, 1);
        for (const [name, pid] of final)
          assert.ok(!exits.has(pid), `${name} owned by exited ${pid}`);
        // set-full: an acknowledged registration is present unless its actor exited — only ever
        // because it was killed by the test or lost a conflict to an earlier registration made on
        // the other side of the split. A registration acknowledged while connected never loses.
        conflicts += [...exits.values()].filter((r) => r === 'name_conflict').length;
        splitAcks += acked.filter((a) => a.split && a.sync).length;
        for (const a of acked) {
          if (final.get(a.name) === a.pid) continue;
          const why = exits.get(a.pid);
          assert.ok(
            why !== undefined,
            `acknowledged ${a.name} → ${a.pid} lost while its actor lives`,
          );
          if (why === 'name_conflict' && a.sync)
            assert.ok(
              a.split,
              `${a.name} → ${a.pid}, sync-acknowledged while connected, lost a conflict`,
            );
        }
      } finally {
        await c.stop();
      }
    });
  }
  it('the seeds exercised what the oracles check (conflicts after heal, sync acks during splits)', () => {
    assert.ok(conflicts > 0, 'no name conflict happened in any seed');
    assert.ok(splitAcks > 0, 'no sync registration was acknowledged during a split');
  });
});
