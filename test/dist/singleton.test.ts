// Cluster singletons on the in-memory network with a manual clock: one instance in a connected
// cluster, addressable as { global: name }, restarted on a survivor when its node goes down, and
// split-brain behaviour with and without `quorum: 'keep-majority'` (docs/split-brain.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DUPLICATE_CHILD, QUORUM_LOST, type Singleton } from '../../src/dist/dsupervisor.js';
import type { FoundationNode, Pid } from '../../src/index.js';
import { fulfilled, track } from '../helpers/assert.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

interface Instance {
  node: FoundationNode;
  pid: Pid;
}

/** Defines kind 'leader' (answers a call with its node's name) on every node; records instances. */
function defineLeader(nodes: FoundationNode[], out: Instance[]): void {
  for (const n of nodes) {
    n.define('leader', () => ({
      init(ctx) {
        out.push({ node: n, pid: ctx.self });
      },
      handleCall: () => n.name,
    }));
  }
}

const alive = (out: Instance[], among: FoundationNode[]) =>
  out.filter((i) => among.includes(i.node) && i.node.actors.isAlive(i.pid));

const splitSeen = (n: FoundationNode, downs: number) =>
  n.members().filter((m) => m.status === 'down').length === downs;

async function call(c: MeshedCluster, from: FoundationNode, name: string): Promise<unknown> {
  const t = track(from.call({ global: name }, 'who'));
  await tickUntil(c.clock, c.net, () => t.result.state !== 'pending', 'call answered');
  return fulfilled(t);
}

/** Every node's registry and singleton view name the one live instance. */
function agreed(nodes: FoundationNode[], s: Singleton[], out: Instance[]): boolean {
  const live = alive(out, nodes);
  if (live.length !== 1) return false;
  const key = String(live[0]!.pid);
  return nodes.every(
    (n, i) => String(n.registry.whereis('leader')) === key && String(s[i]!.whereis()) === key,
  );
}

describe('singleton', () => {
  it('runs once in the cluster, addressable as { global }, and moves to a survivor when its node goes down', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const out: Instance[] = [];
      defineLeader(c.nodes, out);
      const s = c.nodes.map((n) => n.singleton('leader', 'leader'));
      await tickUntil(c.clock, c.net, () => agreed(c.nodes, s, out), 'one instance, one view');
      const host = alive(out, c.nodes)[0]!.node;
      for (const n of c.nodes) assert.equal(await call(c, n, 'leader'), host.name);
      c.net.crash(host.address);
      const rest = c.nodes.filter((n) => n !== host);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          agreed(
            rest,
            s.filter((_, i) => c.nodes[i] !== host),
            out,
          ),
        'moved to a survivor',
      );
      const now = alive(out, rest)[0]!.node;
      assert.notEqual(now, host);
      for (const n of rest) assert.equal(await call(c, n, 'leader'), now.name);
    } finally {
      await c.stop();
    }
  });

  it('keep-majority: the minority side stops it, the majority side runs it; after the heal exactly one', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd', 'e']);
    try {
      const out: Instance[] = [];
      defineLeader(c.nodes, out);
      const exits = new Map<string, unknown>();
      for (const n of c.nodes) n.actors.onExit((p, r) => exits.set(String(p), r));
      const s = c.nodes.map((n) =>
        n.singleton('leader', 'leader', null, { quorum: 'keep-majority' }),
      );
      await tickUntil(c.clock, c.net, () => agreed(c.nodes, s, out), 'one instance');
      const first = alive(out, c.nodes)[0]!;
      // The host and one other node end up on the minority side.
      const minority = [first.node, c.nodes.find((n) => n !== first.node)!];
      const majority = c.nodes.filter((n) => !minority.includes(n));
      c.net.partition(
        minority.map((n) => n.address),
        majority.map((n) => n.address),
      );
      await tickUntil(
        c.clock,
        c.net,
        () =>
          minority.every((n) => splitSeen(n, 3)) &&
          majority.every((n) => splitSeen(n, 2)) &&
          alive(out, minority).length === 0 &&
          alive(out, majority).length === 1,
        'minority stopped it, majority runs it',
        { maxMs: 60_000 },
      );
      assert.equal(exits.get(String(first.pid)), QUORUM_LOST);
      const moved = alive(out, majority)[0]!;
      // Nothing on the minority side answers to the name; the majority side's instance does.
      for (const n of minority) assert.equal(n.registry.whereis('leader'), undefined);
      assert.equal(await call(c, majority[0]!, 'leader'), moved.node.name);
      // A minority side stays without it however long the split lasts.
      await c.clock.tickAsync(5000);
      await c.net.settle();
      assert.equal(alive(out, minority).length, 0);
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every((n) => n.members().every((m) => m.status === 'alive')) &&
          agreed(c.nodes, s, out),
        'healed: exactly one, every node agrees',
        { maxMs: 60_000 },
      );
    } finally {
      await c.stop();
    }
  });

  it('keep-majority on an even split: only the side with the smallest node name runs it', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const out: Instance[] = [];
      defineLeader(c.nodes, out);
      const s = c.nodes.map((n) =>
        n.singleton('leader', 'leader', null, { quorum: 'keep-majority' }),
      );
      await tickUntil(c.clock, c.net, () => agreed(c.nodes, s, out), 'one instance');
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      c.net.partition([a.address, cc.address], [b.address, d.address]);
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every((n) => splitSeen(n, 2)) &&
          alive(out, [a, cc]).length === 1 &&
          alive(out, [b, d]).length === 0,
        'the side with a runs it, the other does not',
        { maxMs: 60_000 },
      );
    } finally {
      await c.stop();
    }
  });

  it('without a quorum each side of a split runs one; after the heal the earliest stays and the other exits', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const out: Instance[] = [];
      defineLeader(c.nodes, out);
      const exits = new Map<string, unknown>();
      for (const n of c.nodes) n.actors.onExit((p, r) => exits.set(String(p), r));
      const s = c.nodes.map((n) => n.singleton('leader', 'leader'));
      await tickUntil(c.clock, c.net, () => agreed(c.nodes, s, out), 'one instance');
      const first = alive(out, c.nodes)[0]!;
      const mine = [first.node, c.nodes.find((n) => n !== first.node)!];
      const other = c.nodes.filter((n) => !mine.includes(n));
      c.net.partition(
        mine.map((n) => n.address),
        other.map((n) => n.address),
      );
      await tickUntil(
        c.clock,
        c.net,
        () => alive(out, mine).length === 1 && alive(out, other).length === 1,
        'each side runs one',
        { maxMs: 60_000 },
      );
      const second = alive(out, other)[0]!;
      assert.equal(String(other[0]!.registry.whereis('leader')), String(second.pid));
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every((n) => n.members().every((m) => m.status === 'alive')) &&
          agreed(c.nodes, s, out),
        'healed: exactly one',
        { maxMs: 60_000 },
      );
      assert.equal(String(alive(out, c.nodes)[0]!.pid), String(first.pid), 'the earliest stays');
      assert.ok(
        [DUPLICATE_CHILD, 'name_conflict'].includes(exits.get(String(second.pid)) as string),
        `the other exited ${String(exits.get(String(second.pid)))}`,
      );
    } finally {
      await c.stop();
    }
  });

  it('refuses bad options with coded errors', async () => {
    const c = await startMeshedCluster(['a']);
    try {
      const [a] = c.nodes as [FoundationNode];
      defineLeader([a], []);
      const code = (e: Error & { code?: string }) => e.code;
      assert.throws(
        () => a.singleton('x', 'nope'),
        (e: Error) => code(e) === 'FND_ERR_UNKNOWN_KIND',
      );
      assert.throws(
        () => a.singleton('x', 'leader', null, { quorum: 'most' as never }),
        (e: Error) => code(e) === 'FND_ERR_INVALID_OPTION',
      );
      assert.throws(
        () => a.singleton('', 'leader'),
        (e: Error) => code(e) === 'FND_ERR_INVALID_OPTION',
      );
      a.singleton('x', 'leader');
      assert.throws(
        () => a.singleton('x', 'leader'),
        (e: Error) => code(e) === 'FND_ERR_INVALID_OPTION',
      );
    } finally {
      await c.stop();
    }
  });
});
