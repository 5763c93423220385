// node.config.setWithConsensus over node.consensus, on the in-memory network under the manual
// clock: every node (members by watch, a non-member and a late starter by re-reading) converges;
// concurrent writers of different paths both survive; a minority side cannot set and changes
// nothing; bad writes are refused before anything is proposed; consensus values win over
// setClusterWide and update on the same path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { ConfigChange } from '../../src/core/config.js';
import { CONFIG_KEY } from '../../src/core/config-consensus.js';
import type { FoundationNode } from '../../src/index.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const schema = z.object({
  app: z.object({ port: z.number().int().min(1), mode: z.enum(['a', 'b']) }),
  db: z.object({ host: z.string() }),
});
const CFG = {
  defaults: { app: { port: 80, mode: 'a' }, db: { host: 'h' } },
  schema,
  updatable: ['app.*'],
};
const MEMBERS = ['a', 'b', 'c'];

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

/** Nodes `names`; those in `starters` start consensus with MEMBERS; waits for a leader. */
async function cluster(names: string[], starters = names, timeoutMs = 2000) {
  const c = await startMeshedCluster(names, { config: CFG });
  for (const n of c.nodes)
    if (starters.includes(n.name)) await n.consensus.start({ members: MEMBERS, timeoutMs });
  await tickUntil(
    c.clock,
    c.net,
    () => c.nodes.some((n) => n.consensus.status().role === 'leader'),
    'a consensus leader',
  );
  return c;
}

const ports = (nodes: FoundationNode[]) => nodes.map((n) => n.config.get('app.port'));

describe('config.setWithConsensus (in-memory network, manual clock)', () => {
  it('one node sets: members, a non-member and a late starter converge; concurrent writers of different paths both survive', async () => {
    const c = await cluster(['a', 'b', 'c', 'x', 'y'], ['a', 'b', 'c', 'x']);
    try {
      const [a, b, , x, y] = c.nodes as FoundationNode[] as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      const seen: ConfigChange[] = [];
      x.config.subscribe((ch) => seen.push(ch), 'app.port');
      await settle(c, b.config.setWithConsensus('app.port', 443));
      assert.equal(b.config.get('app.port'), 443, 'applied on the writer once it resolves');
      await tickUntil(
        c.clock,
        c.net,
        () => ports(c.nodes.slice(0, 4)).every((p) => p === 443),
        'members and the non-member converge',
      );
      assert.deepEqual(seen, [
        { path: 'app.port', oldValue: 80, newValue: 443, source: 'consensus' },
      ]);
      assert.equal(y.config.get('app.port'), 80, 'y has not started consensus');
      // y starts late: it reads the agreed values through the group.
      await y.consensus.start({ members: MEMBERS });
      await tickUntil(c.clock, c.net, () => y.config.get('app.port') === 443, 'late starter');
      // Two writers at once (a member, a non-member), different paths: compare-and-set keeps both.
      await settle(
        c,
        Promise.all([
          a.config.setWithConsensus('app.mode', 'b'),
          x.config.setWithConsensus('app.port', 8443),
        ]),
      );
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every(
            (n) => n.config.get('app.port') === 8443 && n.config.get('app.mode') === 'b',
          ),
        'both concurrent writes on every node',
      );
      const stored = await settle(c, a.consensus.kv.get(CONFIG_KEY));
      assert.deepEqual(
        new Map(stored?.value as Array<[string, unknown]>),
        new Map<string, unknown>([
          ['app.port', 8443],
          ['app.mode', 'b'],
        ]),
      );
    } finally {
      await c.stop();
    }
  });

  it('a minority side cannot set: FND_ERR_CONSENSUS_UNAVAILABLE and nothing changes, also after heal', async () => {
    const c = await cluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      // Isolate the leader itself: the strongest case (it believed it could write).
      const lone = c.nodes.find((n) => n.consensus.status().role === 'leader')!;
      const rest = c.nodes.filter((n) => n !== lone);
      c.net.partition(
        [lone.address],
        rest.map((n) => n.address),
      );
      await rejectsWithCode(
        settle(c, lone.config.setWithConsensus('app.port', 1111)),
        'FND_ERR_CONSENSUS_UNAVAILABLE',
      );
      assert.deepEqual(ports([a, b, cc]), [80, 80, 80], 'nothing changed anywhere');
      // The majority side still writes.
      await settle(c, rest[0]!.config.setWithConsensus('app.mode', 'b'));
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.config.get('app.mode') === 'b'),
        'the majority’s write reaches the healed node',
      );
      // Let the healed group settle for a while: the refused write never appears.
      await c.clock.tickAsync(5000);
      assert.deepEqual(ports([a, b, cc]), [80, 80, 80], 'the refused write never applied');
      const stored = await settle(c, b.consensus.kv.get(CONFIG_KEY));
      assert.deepEqual(stored?.value, [['app.mode', 'b']]);
    } finally {
      await c.stop();
    }
  });

  it('bad path, non-updatable path, invalid value: coded errors before anything is proposed', async () => {
    const c = await cluster(['a', 'b', 'c']);
    try {
      const a = c.nodes[0]!;
      const commits = () => c.nodes.map((n) => n.consensus.status().commit ?? 0);
      await tickUntil(
        c.clock,
        c.net,
        () => commits().every((x) => x > 0 && x === commits()[0]),
        'the leader’s no-op committed everywhere',
      );
      const before = commits();
      await rejectsWithCode(a.config.setWithConsensus('app..port', 1), 'FND_ERR_CONFIG_PATH');
      await rejectsWithCode(
        a.config.setWithConsensus('db.host', 'x'),
        'FND_ERR_CONFIG_NOT_UPDATABLE',
      );
      await rejectsWithCode(a.config.setWithConsensus('app.port', -1), 'FND_ERR_CONFIG_INVALID');
      await rejectsWithCode(a.config.setWithConsensus('app.mode', 'z'), 'FND_ERR_CONFIG_INVALID');
      await rejectsWithCode(
        a.config.setWithConsensus('app.port', undefined),
        'FND_ERR_CONFIG_INVALID',
      );
      // Nothing was proposed: the key is absent and no entry was committed for it.
      assert.equal(await settle(c, a.consensus.kv.get(CONFIG_KEY)), undefined);
      assert.deepEqual(commits(), before, 'no entry was appended');
      assert.deepEqual(ports(c.nodes), [80, 80, 80]);
    } finally {
      await c.stop();
    }
  });

  it('before node.consensus.start(): FND_ERR_CONSENSUS_NOT_STARTED', async () => {
    const c = await startMeshedCluster(['a'], { config: CFG });
    try {
      await rejectsWithCode(
        c.nodes[0]!.config.setWithConsensus('app.port', 9),
        'FND_ERR_CONSENSUS_NOT_STARTED',
      );
      assert.equal(c.nodes[0]!.config.get('app.port'), 80);
    } finally {
      await c.stop();
    }
  });

  it('precedence: a consensus value wins over setClusterWide and update of the same path on every node', async () => {
    const c = await cluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      await a.config.setClusterWide('app.port', 1);
      await tickUntil(c.clock, c.net, () => ports(c.nodes).every((p) => p === 1), 'LWW value');
      await settle(c, b.config.setWithConsensus('app.port', 2));
      await tickUntil(c.clock, c.net, () => ports(c.nodes).every((p) => p === 2), 'consensus');
      // A later LWW write of the same path reaches every node but does not override.
      await cc.config.setClusterWide('app.port', 3);
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.config.clusterEntry('app.port')?.value === 3),
        'the later LWW value is held everywhere',
      );
      a.config.update('app.port', 4);
      assert.deepEqual(ports(c.nodes), [2, 2, 2], 'the consensus value still wins');
      // Other paths keep their LWW behaviour.
      await cc.config.setClusterWide('app.mode', 'b');
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.config.get('app.mode') === 'b'),
        'LWW on another path',
      );
      // A new consensus write of the path replaces the old one.
      await settle(c, a.config.setWithConsensus('app.port', 5));
      await tickUntil(c.clock, c.net, () => ports(c.nodes).every((p) => p === 5), 'replaced');
    } finally {
      await c.stop();
    }
  });
});
