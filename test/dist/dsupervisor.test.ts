// The distributed supervisor on the in-memory network with a manual clock: rendezvous placement,
// restart on survivors after a node is declared down (within failure detection + 1 s of simulated
// time), passive vs active redistribution, handoff on graceful leave, local restart types, and
// partitions: after a heal every child runs exactly once (seeded runs), plus malicious messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIST_SHUTDOWN_MS, DUPLICATE_CHILD, rendezvous } from '../../src/dist/dsupervisor.js';
import { DIST_KINDS, DIST_LIMITS } from '../../src/dist/wire.js';
import type { FoundationNode, Pid } from '../../src/index.js';
import { fulfilled, track } from '../helpers/assert.js';
import {
  type MeshedCluster,
  startMemNode,
  startMeshedCluster,
  tickUntil,
} from '../helpers/nodes.js';

interface Instance {
  node: FoundationNode;
  child: string;
  pid: Pid;
  handoff: unknown;
}

/**
 * Defines kind 'worker' on `nodes`: a counter (`get`, or a number to add; 'quit' stops normally)
 * whose instances are recorded in `out`, with the state each was handed.
 */
function defineWorker(nodes: FoundationNode[], out: Instance[]): void {
  for (const n of nodes) {
    n.define('worker', (args, info) => {
      let count = (info.handoff as number | undefined) ?? 0;
      return {
        init(ctx) {
          out.push({
            node: n,
            child: (args as { id: string }).id,
            pid: ctx.self,
            handoff: info.handoff,
          });
        },
        handleCall(m: unknown, ctx) {
          if (m === 'quit') {
            ctx.stop('normal');
            return 'bye';
          }
          if (m !== 'get') count += m as number;
          return count;
        },
      };
    });
  }
}

const spec = (ids: string[], restart?: 'permanent' | 'transient' | 'temporary') =>
  ids.map((id) => ({ id, kind: 'worker', args: { id }, ...(restart ? { restart } : {}) }));

const ids = (n: number, prefix = 'w') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Live instances of `child` on nodes not in `dead`. */
function live(out: Instance[], child: string, dead: Set<string> = new Set()): Instance[] {
  return out.filter(
    (i) => i.child === child && !dead.has(i.node.name) && i.node.actors.isAlive(i.pid),
  );
}

function exactlyOnce(out: Instance[], children: string[], dead?: Set<string>): boolean {
  return children.every((c) => live(out, c, dead).length === 1);
}

/** A node's view of supervisor `sup`: child → node, as JSON. */
function view(n: FoundationNode, sup: { whichChildren(): Array<{ id: string; node?: string }> }) {
  void n;
  return JSON.stringify(sup.whichChildren().map((c) => [c.id, c.node ?? null]));
}

const handoff = (n: FoundationNode) => (c: { pid: Pid }) => n.call(c.pid, 'get');

async function settled<T>(c: MeshedCluster, p: Promise<T>, what: string): Promise<T> {
  const t = track(p);
  await tickUntil(c.clock, c.net, () => t.result.state !== 'pending', what);
  return fulfilled(t);
}

describe('distributed supervisor', () => {
  it('with active redistribution each child runs once, on its rendezvous owner; every node sees the same placement', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = ids(12);
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('workers', { children: spec(children), redistribution: 'active' }),
      );
      await tickUntil(
        c.clock,
        c.net,
        () =>
          exactlyOnce(out, children) &&
          new Set(c.nodes.map((n, i) => view(n, sups[i]!))).size === 1 &&
          sups[0]!.whichChildren().every((x) => x.node !== undefined),
        'every child runs once, same view everywhere',
      );
      for (const x of sups[0]!.whichChildren()) {
        assert.equal(x.node, rendezvous(`d:workers\u0000${x.id}`, ['a', 'b', 'c']));
        assert.equal(live(out, x.id)[0]!.pid.id, x.pid!.id);
      }
      assert.ok(new Set(sups[0]!.whichChildren().map((x) => x.node)).size > 1, 'spread');
    } finally {
      await c.stop();
    }
  });

  it('a node declared down: its children restart on survivors within failure detection + 1 s', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = ids(12);
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('workers', { children: spec(children) }),
      );
      await tickUntil(c.clock, c.net, () => exactlyOnce(out, children), 'placed');
      const byNode = new Map<string, number>();
      for (const x of sups[0]!.whichChildren()) byNode.set(x.node!, (byNode.get(x.node!) ?? 0) + 1);
      const victim = [...byNode].sort((x, y) => y[1] - x[1])[0]![0];
      assert.ok(byNode.get(victim)! > 0);
      const survivors = c.nodes.filter((n) => n.name !== victim);
      let detectedAt = 0;
      const downs = new Set<string>();
      for (const n of survivors) {
        n.on('memberDown', (m) => {
          if (m.name !== victim) return;
          downs.add(n.name);
          detectedAt = c.clock.now();
        });
      }
      c.net.crash(c.nodes.find((n) => n.name === victim)!.address);
      const dead = new Set([victim]);
      await tickUntil(
        c.clock,
        c.net,
        () => downs.size === survivors.length && exactlyOnce(out, children, dead),
        'declared down everywhere and every child runs once on a survivor',
      );
      // Simulated time: the restart happens as soon as the failure detector declares the node down.
      assert.ok(
        c.clock.now() - detectedAt <= 1000,
        `${c.clock.now() - detectedAt} ms after detection`,
      );
      for (const ch of children) assert.notEqual(live(out, ch, dead)[0]!.node.name, victim);
      const views = survivors.map((n) => view(n, sups[c.nodes.indexOf(n)]!));
      await tickUntil(
        c.clock,
        c.net,
        () => new Set(survivors.map((n) => view(n, sups[c.nodes.indexOf(n)]!))).size === 1,
        `views agree (${views.join(' | ')})`,
      );
    } finally {
      await c.stop();
    }
  });

  it('passive keeps children where they run when a node joins; active moves them with handed-over state', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const act = ids(16, 'act');
      const pas = ids(16, 'pas');
      const make = (n: FoundationNode) => ({
        active: n.distributedSupervisor('act', {
          children: spec(act),
          redistribution: 'active',
          handoff: handoff(n),
        }),
        passive: n.distributedSupervisor('pas', { children: spec(pas), handoff: handoff(n) }),
      });
      const sups = c.nodes.map(make);
      await tickUntil(c.clock, c.net, () => exactlyOnce(out, [...act, ...pas]), 'placed on a, b');
      // Give every active child some state: 10 + its index.
      for (const [i, id] of act.entries()) {
        const inst = live(out, id)[0]!;
        await settled(c, inst.node.call(inst.pid, 10 + i), 'counted');
      }
      const passiveBefore = sups[0]!.passive.whichChildren().map((x) => x.node);
      const passivePids = pas.map((id) => String(live(out, id)[0]!.pid));
      await c.clock.tickAsync(1000); // c starts later (alone, it first runs every child itself)
      const nc = await startMemNode(c.net, c.clock, { name: 'c' });
      c.nodes.push(nc);
      defineWorker([nc], out);
      const third = make(nc);
      await nc.join(c.nodes[0]!.address);
      const want = (id: string) => rendezvous(`d:act\u0000${id}`, ['a', 'b', 'c']);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          exactlyOnce(out, [...act, ...pas]) &&
          act.every((id) => live(out, id)[0]!.node.name === want(id)) &&
          third.active.whichChildren().every((x) => x.node === want(x.id)),
        'active children moved to their rendezvous owner',
      );
      const moved = act.filter((id) => want(id) === 'c');
      assert.ok(moved.length > 0, 'some active child belongs on c');
      for (const id of moved) {
        const inst = live(out, id)[0]!;
        const i = act.indexOf(id);
        assert.equal(inst.handoff, 10 + i, `${id} got its state`);
        assert.equal(await settled(c, nc.call(inst.pid, 'get'), 'get'), 10 + i);
      }
      // Passive: nothing moved to c.
      assert.deepEqual(
        third.passive.whichChildren().map((x) => x.node),
        passiveBefore,
      );
      assert.deepEqual(
        pas.map((id) => String(live(out, id)[0]!.pid)),
        passivePids,
        'the passive children are the instances that ran before c joined',
      );
    } finally {
      await c.stop();
    }
  });

  it('graceful leave hands each child to its next owner with its state', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = ids(12);
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('workers', {
          children: spec(children),
          handoff: handoff(n),
          redistribution: 'active',
        }),
      );
      const want3 = (id: string) => rendezvous(`d:workers\u0000${id}`, ['a', 'b', 'c']);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          exactlyOnce(out, children) &&
          children.every((id) => live(out, id)[0]!.node.name === want3(id)),
        'placed',
      );
      for (const [i, id] of children.entries()) {
        const inst = live(out, id)[0]!;
        await settled(c, inst.node.call(inst.pid, 100 + i), 'counted');
      }
      const b = c.nodes[1]!;
      const onB = sups[1]!
        .whichChildren()
        .filter((x) => x.node === 'b')
        .map((x) => x.id);
      assert.ok(onB.length > 0);
      await settled(c, b.stop(), 'b stopped');
      const gone = new Set(['b']);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          exactlyOnce(out, children, gone) &&
          sups[0]!.whichChildren().every((x) => x.node !== undefined && x.node !== 'b'),
        'b’s children run on a or c',
      );
      for (const id of onB) {
        const inst = live(out, id, gone)[0]!;
        assert.equal(inst.node.name, rendezvous(`d:workers\u0000${id}`, ['a', 'c']));
        assert.equal(inst.handoff, 100 + children.indexOf(id), `${id} got its state`);
      }
    } finally {
      await c.stop();
    }
  });

  it('node.stop() called twice at once: the second call waits, so no child loses its handoff', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = ids(8);
      // A handoff that takes 500 ms of simulated time: a second stop that did not wait for the
      // first would shut the children down in the middle of it.
      const slowHandoff = (n: FoundationNode) => (ch: { pid: Pid }) =>
        new Promise<void>((r) => c.clock.setTimeout(() => r(), 500)).then(() =>
          n.call(ch.pid, 'get'),
        );
      for (const n of c.nodes)
        n.distributedSupervisor('workers', {
          children: spec(children),
          handoff: slowHandoff(n),
          redistribution: 'active',
        });
      const want = (id: string) => rendezvous(`d:workers\u0000${id}`, ['a', 'b']);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          exactlyOnce(out, children) &&
          children.every((id) => live(out, id)[0]!.node.name === want(id)),
        'placed',
      );
      const b = c.nodes[1]!;
      const onB = children.filter((id) => live(out, id)[0]!.node === b);
      assert.ok(onB.length > 0);
      for (const id of onB) {
        const inst = live(out, id)[0]!;
        await settled(c, inst.node.call(inst.pid, 7), 'counted');
      }
      await settled(c, Promise.all([b.stop(), b.stop()]), 'b stopped');
      const gone = new Set(['b']);
      await tickUntil(c.clock, c.net, () => exactlyOnce(out, children, gone), 'all on a');
      for (const id of onB) assert.equal(live(out, id, gone)[0]!.handoff, 7, `${id} got its state`);
    } finally {
      await c.stop();
    }
  });

  it(`a child that traps exits and ignores 'shutdown' is killed ${DIST_SHUTDOWN_MS} ms after a move, and runs on its new node`, async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const started: Array<{ node: string; pid: Pid }> = [];
      for (const n of c.nodes)
        n.define('trapper', () => ({
          init(ctx) {
            ctx.trapExits = true;
            started.push({ node: n.name, pid: ctx.self });
          },
          handleInfo() {}, // the EXIT from its node is ignored
        }));
      const children = ids(6);
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('trappers', {
          children: children.map((id) => ({ id, kind: 'trapper' })),
          redistribution: 'active',
        }),
      );
      const alive = () => started.filter((s) => c.nodes.some((n) => n.actors.isAlive(s.pid)));
      const onB = children.filter((id) => rendezvous(`d:trappers\u0000${id}`, ['a', 'b']) === 'b');
      await tickUntil(
        c.clock,
        c.net,
        () =>
          alive().length === children.length &&
          alive().filter((s) => s.node === 'b').length === onB.length,
        'placed',
      );
      assert.ok(
        alive().some((s) => s.node === 'b'),
        'some children run on b',
      );
      const stopAt = c.clock.now();
      await settled(c, sups[1]!.stop(), 'b stops taking part');
      await tickUntil(
        c.clock,
        c.net,
        () => alive().length === children.length && alive().every((s) => s.node === 'a'),
        'every child on a',
        { maxMs: 3 * DIST_SHUTDOWN_MS },
      );
      assert.ok(c.clock.now() - stopAt >= DIST_SHUTDOWN_MS, 'b waited for them to exit first');
    } finally {
      await c.stop();
    }
  });

  it('restart types: permanent restarts on its node, transient ends after a normal exit, temporary never restarts; too many restarts give up', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = [
        ...spec(['perm']),
        ...spec(['trans'], 'transient'),
        ...spec(['temp'], 'temporary'),
      ];
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('rt', { children, maxRestarts: 2, withinMs: 10_000 }),
      );
      const all = ['perm', 'trans', 'temp'];
      await tickUntil(c.clock, c.net, () => exactlyOnce(out, all), 'placed');
      const first = live(out, 'perm')[0]!;
      first.node.exit(first.pid, 'kill');
      await tickUntil(
        c.clock,
        c.net,
        () => live(out, 'perm').length === 1 && live(out, 'perm')[0]!.pid.id !== first.pid.id,
        'perm restarted',
      );
      assert.equal(live(out, 'perm')[0]!.node, first.node, 'on the same node');
      const t = live(out, 'trans')[0]!;
      assert.equal(await settled(c, t.node.call(t.pid, 'quit'), 'quit'), 'bye');
      const tmp = live(out, 'temp')[0]!;
      const tempStarts = out.filter((x) => x.child === 'temp').length;
      tmp.node.exit(tmp.pid, 'kill');
      await c.clock.tickAsync(2000);
      await c.net.settle();
      assert.equal(live(out, 'trans').length, 0, 'transient not restarted after a normal exit');
      assert.equal(live(out, 'temp').length, 0, 'temporary not restarted');
      assert.equal(out.filter((x) => x.child === 'temp').length, tempStarts);
      for (const s of sups) {
        const w = new Map(s.whichChildren().map((x) => [x.id, x.node]));
        assert.equal(w.get('trans'), undefined);
        assert.equal(w.get('temp'), undefined);
      }
      // Intensity: more than 2 exits within 10 s (the kill above was the first) and the node
      // gives the child up.
      for (let i = 0; i < 2; i++) {
        const p = live(out, 'perm')[0]!;
        p.node.exit(p.pid, 'kill');
        await c.net.settle();
        await c.clock.tickAsync(10);
      }
      await c.clock.tickAsync(1000);
      await c.net.settle();
      assert.equal(live(out, 'perm').length, 0, 'given up after too many restarts');
    } finally {
      await c.stop();
    }
  });

  it('a temporary child is not started again when its node goes down, nor moved when a node joins', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      // A child whose rendezvous owner among all three is not a; a runs it, alone at first.
      let id = 0;
      while (rendezvous(`d:t\u0000t${id}`, ['a', 'b', 'c']) === 'a') id++;
      const child = `t${id}`;
      const opts = { children: spec([child], 'temporary'), redistribution: 'active' as const };
      a.distributedSupervisor('t', opts);
      await tickUntil(c.clock, c.net, () => live(out, child).length === 1, 'started on a');
      b.distributedSupervisor('t', opts);
      cc.distributedSupervisor('t', opts);
      await c.clock.tickAsync(3000);
      await c.net.settle();
      assert.deepEqual(
        live(out, child).map((i) => i.node.name),
        ['a'],
        'not moved to its rendezvous owner',
      );
      c.net.crash(a.address);
      await c.clock.tickAsync(15_000);
      await c.net.settle();
      assert.equal(live(out, child, new Set(['a'])).length, 0, 'not started again');
      assert.equal(out.filter((i) => i.child === child).length, 1);
    } finally {
      await c.stop();
    }
  });

  it('after a partition heals each child runs exactly once, the earliest instance; the other exits duplicate_child', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const out: Instance[] = [];
      defineWorker(c.nodes, out);
      const children = ids(10);
      const sups = c.nodes.map((n) =>
        n.distributedSupervisor('workers', { children: spec(children) }),
      );
      await tickUntil(c.clock, c.net, () => exactlyOnce(out, children), 'placed');
      const before = new Map(sups[0]!.whichChildren().map((x) => [x.id, x.pid!.toJSON()]));
      const exits = new Map<string, unknown>();
      for (const n of c.nodes) n.actors.onExit((p, r) => exits.set(String(p), r));
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      c.net.partition([a.address, b.address], [cc.address, d.address]);
      const side = (ns: FoundationNode[], id: string) =>
        live(out, id).filter((i) => ns.includes(i.node)).length;
      await tickUntil(
        c.clock,
        c.net,
        () => children.every((id) => side([a, b], id) === 1 && side([cc, d], id) === 1),
        'each side runs every child once',
        { maxMs: 60_000 },
      );
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every((n) => n.members().every((m) => m.status === 'alive')) &&
          exactlyOnce(out, children) &&
          new Set(c.nodes.map((n, i) => view(n, sups[i]!))).size === 1,
        'healed: one instance per child, same view everywhere',
        { maxMs: 60_000 },
      );
      // The instances that ran before the split started earliest: they are the ones kept.
      for (const x of sups[0]!.whichChildren()) assert.deepEqual(x.pid!.toJSON(), before.get(x.id));
      const dup = [...exits.values()].filter((r) => r === DUPLICATE_CHILD).length;
      assert.ok(dup >= children.length, 'every split-time duplicate exited duplicate_child');
    } finally {
      await c.stop();
    }
  });

  it('refuses bad options with coded errors', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      defineWorker([a], []);
      assert.throws(
        () => a.distributedSupervisor('x', { children: [{ id: 'k', kind: 'nope' }] }),
        (e: Error & { code?: string }) => e.code === 'FND_ERR_UNKNOWN_KIND',
      );
      for (const bad of [
        { children: 'no' },
        { children: [{ id: '', kind: 'worker' }] },
        { children: [...spec(['same']), ...spec(['same'])] },
        { children: spec(['r']), redistribution: 'sometimes' },
        { children: [{ id: 'r', kind: 'worker', restart: 'always' }] },
      ]) {
        assert.throws(
          () => a.distributedSupervisor('x', bad as never),
          (e: Error & { code?: string }) => e.code === 'FND_ERR_INVALID_OPTION',
          JSON.stringify(bad),
        );
      }
      a.distributedSupervisor('x', { children: spec(['one']) });
      assert.throws(
        () => a.distributedSupervisor('x', { children: spec(['one']) }),
        (e: Error & { code?: string }) => e.code === 'FND_ERR_INVALID_OPTION',
      );
    } finally {
      await c.stop();
    }
  });

  it('a malicious member cannot plant state through bad handoff or placement messages', async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const out: Instance[] = [];
      defineWorker([a], out);
      const sup = a.distributedSupervisor('w', { children: spec(['k']) });
      await tickUntil(c.clock, c.net, () => live(out, 'k').length === 1, 'k runs on a');
      const inst = live(out, 'k')[0]!;
      // Handoff for an unknown supervisor/child, oversized, malformed: refused, nothing kept.
      m.messenger.send('a', DIST_KINDS.handoff, { sup: 'd:nope', child: 'k', state: 1 });
      m.messenger.send('a', DIST_KINDS.handoff, {
        sup: 'd:w',
        child: 'k',
        state: 'x'.repeat(DIST_LIMITS.maxHandoffBytes),
      });
      m.messenger.send('a', DIST_KINDS.handoff, ['d:w', 'k', 1]);
      // A placement entry with a bad value or a timestamp an hour ahead: refused.
      const epoch = 2 ** 52;
      const now = Math.floor(c.clock.wallNow());
      const send = (p: unknown) => m.messenger.send('a', DIST_KINDS.placement, p);
      send({ t: 'snap', epoch, seq: 0, first: true, last: true, entries: [] });
      send({ t: 'delta', epoch, seq: 1, ops: [{ k: 'd:w\u0000k', v: { id: -1, ts: 'x' } }] });
      send({
        t: 'delta',
        epoch,
        seq: 2,
        ops: [{ k: 'd:w\u0000k', v: { id: 7, ts: { wall: now + 3_600_000, counter: 0 } } }],
      });
      await c.clock.tickAsync(500);
      await c.net.settle();
      assert.deepEqual(
        live(out, 'k').map((i) => i.pid.id),
        [inst.pid.id],
        'k untouched',
      );
      assert.equal(sup.whichChildren()[0]!.node, 'a');
      assert.equal(sup.child('k')!.stash, undefined, 'no handoff state kept');
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

describe('distributed supervisor under partitions (seeded)', () => {
  const SEEDS = Number(process.env.DSUP_SEEDS ?? 6);
  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`seed ${seed}: after each heal every child runs exactly once and every node sees where`, async () => {
      const rand = rng(seed);
      const c = await startMeshedCluster(['n0', 'n1', 'n2', 'n3', 'n4'], {}, seed);
      try {
        const out: Instance[] = [];
        defineWorker(c.nodes, out);
        const children = ids(8);
        const mode = seed % 2 === 0 ? 'active' : 'passive';
        const sups = c.nodes.map((n) =>
          n.distributedSupervisor('w', { children: spec(children), redistribution: mode }),
        );
        const converged = () =>
          exactlyOnce(out, children) &&
          c.nodes.every((n) => n.members().every((m) => m.status === 'alive')) &&
          new Set(c.nodes.map((n, i) => view(n, sups[i]!))).size === 1 &&
          sups[0]!.whichChildren().every((x) => String(live(out, x.id)[0]?.pid) === String(x.pid));
        await tickUntil(c.clock, c.net, converged, 'placed');
        for (let round = 0; round < 2; round++) {
          const shuffled = [...c.nodes].sort(() => rand() - 0.5);
          const k = 1 + Math.floor(rand() * (c.nodes.length - 1));
          const left = shuffled.slice(0, k);
          const right = shuffled.slice(k);
          c.net.partition(
            left.map((n) => n.address),
            right.map((n) => n.address),
          );
          // During the split: random crashes of children (restarted where they run).
          for (let t = 0; t < 8; t++) {
            await c.clock.tickAsync(Math.floor(rand() * 800));
            await c.net.settle();
            if (rand() < 0.4) {
              const id = children[Math.floor(rand() * children.length)]!;
              const inst = live(out, id)[0];
              if (inst) inst.node.exit(inst.pid, 'kill');
            }
          }
          await tickUntil(
            c.clock,
            c.net,
            () => left[0]!.members().filter((m) => m.status === 'down').length === right.length,
            'split detected',
            { maxMs: 60_000 },
          );
          // Each side runs every child once.
          await tickUntil(
            c.clock,
            c.net,
            () =>
              children.every(
                (id) =>
                  live(out, id).filter((i) => left.includes(i.node)).length === 1 &&
                  live(out, id).filter((i) => right.includes(i.node)).length === 1,
              ),
            'each side runs every child',
            { maxMs: 60_000 },
          );
          c.net.heal();
          await tickUntil(c.clock, c.net, converged, 'healed: exactly once, one view', {
            maxMs: 120_000,
          });
        }
      } finally {
        await c.stop();
      }
    });
  }
});
