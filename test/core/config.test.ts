// node.config: sources in order (defaults → file → environment → runtime), updates only on
// declared paths with schema errors naming the path, subscribers and the async iterator, reset;
// cluster-wide values converging by last-writer-wins on the in-memory network under a manual clock
// (also after a partition heals, and after their writer is gone); a malicious member's entries.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { ConfigChange } from '../../src/core/config.js';
import { CORE_KINDS, CORE_LIMITS } from '../../src/core/wire.js';
import type { FoundationNode } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMemNode, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const schema = z.object({
  app: z.object({ port: z.number().int().min(1), mode: z.enum(['a', 'b']) }),
  db: z.object({ host: z.string() }),
  flags: z.record(z.string(), z.boolean()).optional(),
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

async function oneNode(config: object) {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock, 1);
  const node = await startMemNode(net, clock, { name: 'solo', config });
  return node;
}

describe('config: sources and local updates', () => {
  it('merges defaults, file and environment in that order; get(path) and get()', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fnd-cfg-'));
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ app: { port: 81 }, db: { host: 'file' } }));
    process.env.FND_TEST_DB_HOST = 'env-host';
    process.env.FND_TEST_PORT = '82';
    const node = await oneNode({
      defaults: { app: { port: 80, mode: 'a' }, db: { host: 'default' } },
      schema,
      file,
      env: { 'db.host': 'FND_TEST_DB_HOST', 'app.port': 'FND_TEST_PORT' },
    });
    try {
      assert.equal(node.config.get('app.port'), 82); // env (JSON-parsed) over file over defaults
      assert.equal(node.config.get('app.mode'), 'a'); // defaults where nothing overrides
      assert.equal(node.config.get('db.host'), 'env-host');
      assert.deepEqual(node.config.get(), {
        app: { port: 82, mode: 'a' },
        db: { host: 'env-host' },
      });
      assert.ok(Object.isFrozen(node.config.get('app')));
      assert.equal(
        codeOf(() => node.config.get('app.nope')),
        'FND_ERR_CONFIG_PATH',
      );
      assert.equal(
        codeOf(() => node.config.get('app..port')),
        'FND_ERR_CONFIG_PATH',
      );
      assert.equal(
        codeOf(() => node.config.get('__proto__.x')),
        'FND_ERR_CONFIG_PATH',
      );
      assert.deepEqual(node.config.updatablePaths(), []);
      assert.equal(
        codeOf(() => node.config.update('app.port', 90)),
        'FND_ERR_CONFIG_NOT_UPDATABLE',
      );
    } finally {
      delete process.env.FND_TEST_DB_HOST;
      delete process.env.FND_TEST_PORT;
      await node.stop();
    }
  });

  it('refuses to start on a config that fails the schema, a bad file, or bad options', async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock, 1);
    const err = await rejectsWithCode(
      startMemNode(net, clock, {
        config: { defaults: { app: { port: 0, mode: 'a' }, db: { host: 'h' } }, schema },
      }),
      'FND_ERR_CONFIG_INVALID',
    );
    assert.equal(err.data?.path, 'app.port');
    const missing = path.join(tmpdir(), 'fnd-no-such-dir', 'c.json');
    const err2 = await rejectsWithCode(
      startMemNode(net, clock, { config: { file: missing } }),
      'FND_ERR_CONFIG_SOURCE',
    );
    assert.equal(err2.data?.source, missing);
    const dir = mkdtempSync(path.join(tmpdir(), 'fnd-cfg-'));
    writeFileSync(path.join(dir, 'bad.json'), '{ not json');
    await rejectsWithCode(
      startMemNode(net, clock, { config: { file: path.join(dir, 'bad.json') } }),
      'FND_ERR_CONFIG_SOURCE',
    );
    const err3 = await rejectsWithCode(
      startMemNode(net, clock, { config: { updatable: 'app.*' } as never }),
      'FND_ERR_INVALID_OPTION',
    );
    assert.equal(err3.data?.field, 'config.updatable');
    const err4 = await rejectsWithCode(
      startMemNode(net, clock, { config: { schema: { not: 'zod' } } as never }),
      'FND_ERR_INVALID_OPTION',
    );
    assert.equal(err4.data?.field, 'config.schema');
  });

  it('update changes only declared paths, validates against the schema, tells subscribers and iterators; reset drops it', async () => {
    const node = await oneNode({
      defaults: { app: { port: 80, mode: 'a' }, db: { host: 'h' } },
      schema,
      updatable: ['app.*', 'flags.*'],
    });
    try {
      const seen: ConfigChange[] = [];
      const off = node.config.subscribe((c) => seen.push(c));
      const appOnly: string[] = [];
      node.config.subscribe((c) => appOnly.push(c.path), 'app');
      const it = node.config.changes('app.port');
      node.config.update('app.port', 8080);
      assert.equal(node.config.get('app.port'), 8080);
      assert.deepEqual(seen, [{ path: 'app.port', oldValue: 80, newValue: 8080, source: 'local' }]);
      const first = await it.next();
      assert.deepEqual(first.value, seen[0]);

      // Invalid value: coded error naming the path, nothing changed, nobody told.
      const e = (() => {
        try {
          node.config.update('app.mode', 'c');
        } catch (err) {
          return err as { code: string; data: { path: string } };
        }
        return undefined;
      })();
      assert.equal(e?.code, 'FND_ERR_CONFIG_INVALID');
      assert.equal(e?.data.path, 'app.mode');
      assert.equal(node.config.get('app.mode'), 'a');
      assert.equal(
        codeOf(() => node.config.update('db.host', 'x')),
        'FND_ERR_CONFIG_NOT_UPDATABLE',
      );
      assert.equal(
        codeOf(() => node.config.update('app', { port: 1 })),
        'FND_ERR_CONFIG_NOT_UPDATABLE',
      );
      assert.equal(
        codeOf(() => node.config.update('app.port', undefined)),
        'FND_ERR_CONFIG_INVALID',
      );
      assert.equal(
        codeOf(() => node.config.update('app.port', () => 1)),
        'FND_ERR_CONFIG_INVALID',
      );
      assert.equal(
        codeOf(() => node.config.update('flags.__proto__', true)),
        'FND_ERR_CONFIG_PATH',
      );

      // A new path under an updatable prefix (the schema allows a record there).
      node.config.update('flags.beta', true);
      assert.equal(node.config.get('flags.beta'), true);
      assert.equal(seen.length, 2);
      off();
      node.config.update('app.port', 9090);
      assert.equal(seen.length, 2, 'unsubscribed');
      assert.deepEqual(appOnly, ['app.port', 'app.port']);
      assert.equal((await it.next()).value?.newValue, 9090);

      // reset: local runtime values are gone; the iterator sees it.
      const changed: string[] = [];
      node.config.subscribe((c) => changed.push(`${c.path}:${String(c.newValue)}`));
      await node.config.reset();
      assert.equal(node.config.get('app.port'), 80);
      assert.equal(node.config.has('flags.beta'), false);
      assert.deepEqual(changed.sort(), ['app.port:80', 'flags.beta:undefined']);
      assert.equal((await it.next()).value?.newValue, 80);
      await it.return?.();
      assert.equal((await it.next()).done, true);

      // Consensus was not started on this node (test/core/config-consensus.test.ts covers the rest).
      await rejectsWithCode(
        node.config.setWithConsensus('app.port', 1),
        'FND_ERR_CONSENSUS_NOT_STARTED',
      );
    } finally {
      await node.stop();
    }
  });
});

const CFG = {
  defaults: { app: { port: 80, mode: 'a' }, db: { host: 'h' } },
  schema,
  updatable: ['app.*'],
};

const ports = (nodes: FoundationNode[]) => nodes.map((n) => n.config.get('app.port'));

describe('config: changes() and the node stopping', () => {
  it('a changes() loop ends when the node stops, after the changes it had not read', async () => {
    const node = await oneNode({ defaults: { app: { port: 80 } }, updatable: ['app.*'] });
    const seen: unknown[] = [];
    let ended = false;
    const loop = (async () => {
      for await (const c of node.config.changes()) seen.push(c.newValue);
      ended = true;
    })();
    node.config.update('app.port', 81);
    await node.stop();
    // A liveness bound (real time), so that a loop that never ends fails here instead of hanging.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([loop, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    assert.equal(ended, true, 'the loop ended');
    assert.deepEqual(seen, [81]);
    // Asked for after the stop: already over.
    assert.equal((await node.config.changes().next()).done, true);
  });
});

describe('config: cluster-wide (in-memory network, manual clock)', () => {
  it('setClusterWide on one node reaches every node; a later write wins everywhere', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c'], { config: CFG });
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const seen: ConfigChange[] = [];
      c.nodes[2]!.config.subscribe((ch) => seen.push(ch));
      await a.config.setClusterWide('app.port', 1000);
      assert.equal(a.config.get('app.port'), 1000);
      await tickUntil(c.clock, c.net, () => ports(c.nodes).every((p) => p === 1000), 'all 1000');
      assert.deepEqual(seen, [
        { path: 'app.port', oldValue: 80, newValue: 1000, source: 'cluster' },
      ]);
      await c.clock.tickAsync(5);
      await b.config.setClusterWide('app.port', 2000);
      await tickUntil(c.clock, c.net, () => ports(c.nodes).every((p) => p === 2000), 'all 2000');
      // Bad input is refused on the writer, before anything is sent.
      await rejectsWithCode(b.config.setClusterWide('app.port', -1), 'FND_ERR_CONFIG_INVALID');
      await rejectsWithCode(
        b.config.setClusterWide('db.host', 'x'),
        'FND_ERR_CONFIG_NOT_UPDATABLE',
      );
      await rejectsWithCode(b.config.setClusterWide('app..x', 1), 'FND_ERR_CONFIG_PATH');
    } finally {
      await c.stop();
    }
  });

  it('a cluster-wide value replication refuses (over the per-node limit) is not kept on the writer either', async () => {
    const c = await startMeshedCluster(['a', 'b'], { config: { updatable: ['*'] } });
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const max = CORE_LIMITS.maxConfigEntriesPerNode;
      for (let i = 0; i < max; i++) await a.config.setClusterWide(`k${i}`, i);
      await rejectsWithCode(a.config.setClusterWide('over', 1), 'FND_ERR_DIST_LIMIT');
      assert.equal(a.config.clusterEntry('over'), undefined);
      // The next change (of a path already held) does not bring it in either.
      await a.config.setClusterWide('k0', -1);
      assert.equal(
        codeOf(() => a.config.get('over')),
        'FND_ERR_CONFIG_PATH',
        'no such value',
      );
      await tickUntil(c.clock, c.net, () => b.config.get('k0') === -1, 'b has the change');
      assert.equal(
        codeOf(() => b.config.get('over')),
        'FND_ERR_CONFIG_PATH',
      );
    } finally {
      await c.stop();
    }
  });

  it('after a partition heals every node converges on the last write (by HLC), from either side', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd'], { config: CFG });
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      await a.config.setClusterWide('app.mode', 'a');
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
        'split seen on the other side',
      );
      // Both sides write; d's writes come later in (simulated) time.
      await a.config.setClusterWide('app.port', 111);
      await b.config.setClusterWide('app.mode', 'b');
      await c.clock.tickAsync(20);
      await d.config.setClusterWide('app.port', 222);
      await tickUntil(c.clock, c.net, () => b.config.get('app.port') === 111, 'side 1 agrees');
      await tickUntil(c.clock, c.net, () => cc.config.get('app.port') === 222, 'side 2 agrees');
      assert.equal(cc.config.get('app.mode'), 'a', 'b’s write has not crossed the partition');
      c.net.heal();
      await tickUntil(
        c.clock,
        c.net,
        () =>
          c.nodes.every(
            (n) => n.config.get('app.port') === 222 && n.config.get('app.mode') === 'b',
          ),
        'converged after heal',
      );
    } finally {
      await c.stop();
    }
  });

  it('a value outlives the node that wrote it, and reaches a node that joins later', async () => {
    const c = await startMeshedCluster(['a', 'b'], { config: CFG });
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      await a.config.setClusterWide('app.port', 4242);
      await tickUntil(c.clock, c.net, () => b.config.get('app.port') === 4242, 'b has it');
      await a.stop();
      const late = await startMemNode(c.net, c.clock, { name: 'late', config: CFG });
      c.nodes.push(late);
      await late.join(b.address);
      await tickUntil(c.clock, c.net, () => late.config.get('app.port') === 4242, 'late has it');
    } finally {
      await c.stop();
    }
  });

  it('a malicious member cannot push a far-future timestamp, a prototype path, a schema-invalid or an oversized value', async () => {
    const c = await startMeshedCluster(['a', 'b', 'm'], { config: { ...CFG, updatable: ['*'] } });
    try {
      const [a, b, m] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const future = c.clock.wallNow() + 24 * 3600_000;
      const entry = (v: unknown, wall: number) => ({ v, ts: { wall, counter: 0 }, o: 'm' });
      m.messenger.send('a', CORE_KINDS.config, {
        t: 'snap',
        epoch: Number.MAX_SAFE_INTEGER,
        seq: 0,
        first: true,
        last: true,
        entries: [
          { k: 'app.port', v: entry(9999, future) },
          { k: '__proto__.polluted', v: entry(true, c.clock.wallNow()) },
          { k: 'app.mode', v: entry('not-in-enum', c.clock.wallNow()) },
          { k: 'app.big', v: entry('x'.repeat(100_000), c.clock.wallNow()) },
        ],
      });
      await tickUntil(c.clock, c.net, () => false, '', { maxMs: 200 }).catch(() => {});
      assert.equal(a.config.get('app.port'), 80, 'future timestamp refused');
      assert.equal(a.config.get('app.mode'), 'a', 'schema-invalid value not applied');
      assert.equal(a.config.has('app.big'), false, 'oversized value refused');
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      // The node still works: a real write from another member goes through. (m's own partition
      // now carries the forged epoch, so its real messages are ignored as from an older run.)
      await b.config.setClusterWide('app.port', 81);
      await tickUntil(c.clock, c.net, () => a.config.get('app.port') === 81, 'real write applied');
    } finally {
      await c.stop();
    }
  });

  it('members with a cross-field schema agree after concurrent writes, whatever order they arrived in', async () => {
    const schema = z
      .object({ a: z.number(), b: z.number() })
      .refine((x) => x.a <= x.b, { message: 'a <= b' });
    const c = await startMeshedCluster(['x', 'y', 'z'], {
      config: { defaults: { a: 1, b: 10 }, schema, updatable: ['*'] },
    });
    try {
      const [x, y] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      c.net.partition([x.address], [c.nodes[1]!.address, c.nodes[2]!.address]);
      await x.config.setClusterWide('a', 5); // valid on x: 5 <= 10
      c.clock.tick(5);
      await y.config.setClusterWide('b', 3); // later, valid on y's side: 1 <= 3
      c.net.heal();
      // In timestamp order a = 5 applies, then b = 3 is refused by the schema: on every member.
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => JSON.stringify(n.config.get()) === '{"a":5,"b":10}'),
        'every member a = 5, b = 10',
      );
    } finally {
      await c.stop();
    }
  });

  it("a member's new runs cannot make a node hold more than its own bound of cluster-wide paths", async () => {
    const c = await startMeshedCluster(['a', 'm'], { config: { defaults: {}, updatable: ['*'] } });
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const leaves = (v: unknown): number =>
        v !== null && typeof v === 'object'
          ? Object.values(v).reduce((n: number, x) => n + leaves(x), 0)
          : 1;
      for (let run = 0; run < 3; run++) {
        const entries = Array.from({ length: 1000 }, (_, i) => ({
          k: `r${run}.p${i}`,
          v: { v: i, ts: { wall: c.clock.wallNow(), counter: 0 }, o: 'm' },
        }));
        // Each "run" (epoch) of m replaces its partition with 1000 new paths.
        m.messenger.send('a', CORE_KINDS.config, {
          t: 'snap',
          epoch: Number.MAX_SAFE_INTEGER - 10 + run,
          seq: 0,
          first: true,
          last: true,
          entries,
        });
        await tickUntil(c.clock, c.net, () => false, '', { maxMs: 100 }).catch(() => {});
      }
      assert.ok(
        leaves(a.config.get()) <= CORE_LIMITS.maxConfigEntriesPerNode,
        `${leaves(a.config.get())} paths held`,
      );
    } finally {
      await c.stop();
    }
  });
});
