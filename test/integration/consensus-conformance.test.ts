// One conformance suite for both backends of node.consensus: the same tests run against the
// built-in Raft group (3 real nodes in this process, real TCP on loopback) and against etcd
// (Debian's etcd-server started here on loopback, 3 real nodes as its clients). KV semantics
// (revisions, cas, delete, watch order), lock exclusivity, fencing tokens, ttl expiry when the
// holder dies, leader election with onDeposed when the leader's node stops, barriers, and
// config.setWithConsensus on top.
// Deadlines are liveness limits, never performance assertions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import type { KvEvent } from '../../src/coord/machine.js';
import {
  type ConsensusOptions,
  Foundation,
  type FoundationNode,
  type FoundationOptions,
  isFoundationError,
} from '../../src/index.js';
import { type EtcdCluster, startEtcd } from '../helpers/etcd.js';
import { until } from '../helpers/proc.js';

const LIVE_MS = 20_000;

interface Harness {
  nodes: FoundationNode[];
  /** Stops one node as a crash would look to the others (no lock released by hand). */
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

interface Backend {
  name: 'raft' | 'etcd';
  options(names: string[]): ConsensusOptions;
}

let etcd: EtcdCluster | undefined;
let run = 0;

const backends: Backend[] = [
  { name: 'raft', options: (names) => ({ members: names }) },
  {
    name: 'etcd',
    options: () => ({
      backend: 'etcd',
      endpoints: etcd!.endpoints,
      // A fresh key space per harness: tests never see each other's keys.
      prefix: `fnd-test-${process.pid}-${run}/`,
    }),
  },
];

async function harness(b: Backend, extra: FoundationOptions = {}): Promise<Harness> {
  run++;
  const cluster = `conf-${b.name}-${process.pid}-${run}`;
  const names = ['na', 'nb', 'nc'];
  const nowhere = { name: 'none', start() {}, stop() {} };
  const nodes: FoundationNode[] = [];
  const stopped = new Set<number>();
  const stop = async () => {
    await Promise.all(nodes.map((n, i) => (stopped.has(i) ? undefined : n.stop())));
  };
  try {
    for (const name of names)
      nodes.push(
        await Foundation.start({ name, cluster, logLevel: 'silent', discovery: nowhere, ...extra }),
      );
    for (const n of nodes.slice(1)) await n.join(nodes[0]!.address);
    await until(
      () => nodes.every((n) => n.members().filter((m) => m.status === 'alive').length === 3),
      LIVE_MS,
      'three nodes see each other',
    );
    const opts = b.options(names);
    await Promise.all(nodes.map((n) => n.consensus.start(opts)));
    if (b.name === 'raft')
      await until(
        () => nodes.some((n) => n.consensus.status().role === 'leader'),
        LIVE_MS,
        'a Raft leader',
      );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes,
    kill: async (i) => {
      stopped.add(i);
      await nodes[i]!.stop();
    },
    stop,
  };
}

before(async () => {
  etcd = await startEtcd(1);
});

after(async () => {
  await etcd?.stop();
});

for (const b of backends) {
  describe(`consensus conformance: ${b.name}`, () => {
    it('KV: revisions increase, cas succeeds only at the current revision, delete, get', async () => {
      const h = await harness(b);
      try {
        const [x, y] = h.nodes as [FoundationNode, FoundationNode];
        const r1 = await x.consensus.kv.put('k', 'one');
        assert.ok(r1 > 0);
        assert.deepEqual(await y.consensus.kv.get('k'), { value: 'one', revision: r1 });
        const r2 = await y.consensus.kv.put('k', { n: 2 });
        assert.ok(r2 > r1, 'a later write has a larger revision');
        assert.deepEqual(await x.consensus.kv.get('k'), { value: { n: 2 }, revision: r2 });
        assert.deepEqual(await x.consensus.kv.cas('k', r1, 'stale'), { ok: false, revision: r2 });
        const c = await x.consensus.kv.cas('k', r2, 'three');
        assert.equal(c.ok, true);
        assert.ok(c.revision > r2);
        assert.deepEqual(await y.consensus.kv.get('k'), { value: 'three', revision: c.revision });
        const n1 = await y.consensus.kv.cas('fresh', 0, 'created');
        assert.equal(n1.ok, true, 'revision 0: only if absent');
        assert.deepEqual(await x.consensus.kv.cas('fresh', 0, 'again'), {
          ok: false,
          revision: n1.revision,
        });
        assert.equal(await x.consensus.kv.delete('k'), true);
        assert.equal(await y.consensus.kv.get('k'), undefined);
        assert.equal(await y.consensus.kv.delete('k'), false, 'deleting an absent key');
        assert.deepEqual(await x.consensus.kv.cas('k', 0, 'back'), {
          ok: true,
          revision: (await x.consensus.kv.get('k'))!.revision,
        });
        assert.equal(await x.consensus.kv.get('never'), undefined);
      } finally {
        await h.stop();
      }
    });

    it('watch(prefix) delivers every change under the prefix, in order, with its revision', async () => {
      const h = await harness(b);
      try {
        const [x, y, z] = h.nodes as [FoundationNode, FoundationNode, FoundationNode];
        const seen: KvEvent[] = [];
        const off = x.consensus.kv.watch('w/', (e) => seen.push(e));
        const revs = [
          await y.consensus.kv.put('w/a', 1),
          await z.consensus.kv.put('other/a', 'not watched'),
          await y.consensus.kv.put('w/b', 2),
          (await z.consensus.kv.cas('w/a', 0, 'x')).revision, // fails: not an event
        ];
        const r3 = await z.consensus.kv.put('w/a', 3);
        await z.consensus.kv.delete('w/b');
        await until(() => seen.length >= 4, LIVE_MS, 'four watch events');
        assert.deepEqual(
          seen.map((e) => [e.key, e.value]),
          [
            ['w/a', 1],
            ['w/b', 2],
            ['w/a', 3],
            ['w/b', undefined],
          ],
        );
        assert.equal(seen[0]!.revision, revs[0]);
        assert.equal(seen[1]!.revision, revs[2]);
        assert.equal(seen[2]!.revision, r3);
        for (let i = 1; i < seen.length; i++)
          assert.ok(seen[i]!.revision > seen[i - 1]!.revision, 'revisions increase');
        off();
        await y.consensus.kv.put('w/c', 'after off');
        const last = await y.consensus.kv.put('w/marker', 'm');
        // A second watcher sees the marker: by then the first would have seen w/c too.
        const later: KvEvent[] = [];
        const off2 = x.consensus.kv.watch('w/', (e) => later.push(e));
        await y.consensus.kv.put('w/marker', 'm2');
        await until(() => later.some((e) => e.value === 'm2'), LIVE_MS, 'second watcher');
        off2();
        assert.ok(last > r3);
        assert.equal(seen.length, 4, 'no events after unsubscribing');
      } finally {
        await h.stop();
      }
    });

    it('locks: one holder at a time; fencing tokens strictly increase across grants', async () => {
      const h = await harness(b);
      try {
        const [x, y] = h.nodes as [FoundationNode, FoundationNode];
        const l1 = await x.consensus.lock('res', { ttl: 10_000 });
        await assert.rejects(y.consensus.lock('res', { ttl: 10_000, timeout: 500 }), (e) =>
          isFoundationError(e, 'FND_ERR_CONSENSUS_TIMEOUT'),
        );
        const waiting = y.consensus.lock('res', { ttl: 10_000, timeout: LIVE_MS });
        assert.equal(await l1.release(), true);
        const l2 = await waiting;
        assert.ok(l2.token > l1.token, 'the next grant has a larger token');
        assert.equal(await l1.release(), false, 'a released lock cannot be released again');
        assert.equal(await l2.release(), true);
        // Contention from every node: never two holders; tokens increase in grant order.
        let holders = 0;
        let most = 0;
        const tokens: number[] = [];
        await Promise.all(
          h.nodes.map(async (n) => {
            for (let i = 0; i < 3; i++) {
              const l = await n.consensus.lock('hot', { ttl: 10_000, timeout: LIVE_MS });
              holders++;
              most = Math.max(most, holders);
              tokens.push(l.token);
              await new Promise((r) => setImmediate(r));
              holders--;
              assert.equal(await l.release(), true);
            }
          }),
        );
        assert.equal(most, 1, 'exclusive');
        assert.equal(tokens.length, 9);
        for (let i = 1; i < tokens.length; i++)
          assert.ok(tokens[i]! > tokens[i - 1]!, `token ${tokens[i]} after ${tokens[i - 1]}`);
      } finally {
        await h.stop();
      }
    });

    it('a lock whose holder dies is free once its ttl has run out, with a larger token', async () => {
      const h = await harness(b);
      try {
        const [x, y] = h.nodes as [FoundationNode, FoundationNode];
        const held = await x.consensus.lock('job', { ttl: 2000 });
        await h.kill(0);
        const next = await y.consensus.lock('job', { ttl: 2000, timeout: LIVE_MS });
        assert.ok(next.token > held.token);
      } finally {
        await h.stop();
      }
    });

    it('leader(group): one leader; when its node stops it is deposed and another node leads', async () => {
      const h = await harness(b);
      try {
        // A lease long enough that a leader whose process is starved for a moment keeps it (else
        // it is deposed twice); a stopping node gives it back, so the next leader need not wait.
        const handles = h.nodes.map((n) => n.consensus.leader('jobs', { ttl: 5000 }));
        const elected: Array<[number, number]> = [];
        const deposed: number[] = [];
        handles.forEach((hd, i) => {
          hd.onElected((t) => elected.push([i, t]));
          hd.onDeposed(() => deposed.push(i));
        });
        await until(() => handles.some((hd) => hd.isLeader()), LIVE_MS, 'a leader');
        assert.equal(handles.filter((hd) => hd.isLeader()).length, 1, 'exactly one leader');
        const first = handles.findIndex((hd) => hd.isLeader());
        const firstToken = elected.find(([i]) => i === first)![1];
        await h.kill(first);
        assert.deepEqual(deposed, [first], 'the stopped leader was deposed');
        assert.equal(handles[first]!.isLeader(), false);
        await until(
          () => handles.some((hd, i) => i !== first && hd.isLeader()),
          LIVE_MS,
          'another leader',
        );
        assert.equal(handles.filter((hd) => hd.isLeader()).length, 1);
        const [, nextToken] = elected[elected.length - 1]!;
        assert.ok(nextToken > firstToken, 'the next leader has a larger token');
      } finally {
        await h.stop();
      }
    });

    it('config.setWithConsensus: every node converges on the agreed value', async () => {
      const h = await harness(b, {
        config: {
          defaults: { app: { port: 80 } },
          schema: z.object({ app: z.object({ port: z.number().int().min(1) }) }),
          updatable: ['app.*'],
        },
      });
      try {
        const [x] = h.nodes as [FoundationNode];
        await x.config.setWithConsensus('app.port', 443);
        await until(
          () => h.nodes.every((n) => n.config.get('app.port') === 443),
          LIVE_MS,
          'every node has the agreed port',
        );
        await h.nodes[2]!.config.setWithConsensus('app.port', 8443);
        await until(
          () => h.nodes.every((n) => n.config.get('app.port') === 8443),
          LIVE_MS,
          'every node has the second value',
        );
      } finally {
        await h.stop();
      }
    });

    it('barrier(name, n): released once n distinct nodes arrived; fewer time out', async () => {
      const h = await harness(b);
      try {
        const [x, y] = h.nodes as [FoundationNode, FoundationNode];
        await assert.rejects(
          Promise.all([
            x.consensus.barrier('short', 3, { timeout: 1000 }),
            y.consensus.barrier('short', 3, { timeout: 1000 }),
          ]),
          (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_TIMEOUT'),
        );
        // The same node arriving twice counts once.
        await assert.rejects(
          Promise.all([
            x.consensus.barrier('once', 2, { timeout: 1000 }),
            x.consensus.barrier('once', 2, { timeout: 1000 }),
          ]),
          (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_TIMEOUT'),
        );
        await Promise.all(h.nodes.map((n) => n.consensus.barrier('go', 3, { timeout: LIVE_MS })));
        // Complete stays complete: a late caller passes at once.
        await x.consensus.barrier('go', 3, { timeout: LIVE_MS });
      } finally {
        await h.stop();
      }
    });
  });
}

describe('consensus options', () => {
  it('invalid options name the field; an unreachable etcd fails start; Raft-only operations fail clearly on etcd', async () => {
    const h = await harness(backends[1]!);
    const nowhere = { name: 'none', start() {}, stop() {} };
    const n = await Foundation.start({
      name: 'opts',
      cluster: `conf-opts-${process.pid}`,
      logLevel: 'silent',
      discovery: nowhere,
    });
    try {
      const field = async (opts: unknown, f: string) =>
        assert.rejects(n.consensus.start(opts as ConsensusOptions), (e) => {
          assert.ok(isFoundationError(e, 'FND_ERR_INVALID_OPTION'), String(e));
          assert.equal(e.data?.field, f);
          return true;
        });
      await field({ backend: 'zookeeper' }, 'consensus.backend');
      await field({ backend: 'etcd' }, 'consensus.endpoints');
      await field({ backend: 'etcd', endpoints: [] }, 'consensus.endpoints');
      await field({ backend: 'etcd', endpoints: ['127.0.0.1:2379'] }, 'consensus.endpoints.0');
      await field(
        { backend: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: 'x' },
        'consensus.prefix',
      );
      await field(
        { backend: 'etcd', endpoints: ['http://127.0.0.1:2379'], members: ['a'] },
        'consensus.members',
      );
      await field({ tickMs: -1 }, 'consensus.tickMs');
      await field({ members: ['a', 'a'] }, 'consensus.members');
      await field({ size: 4 }, 'consensus.size');
      // Nothing listens on port 1: start fails clearly, and a later start can still succeed.
      await assert.rejects(
        n.consensus.start({ backend: 'etcd', endpoints: ['http://127.0.0.1:1'], timeoutMs: 1000 }),
        (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_UNAVAILABLE'),
      );
      await n.consensus.start({ backend: 'etcd', endpoints: etcd!.endpoints, prefix: 'opts/' });
      assert.ok((await n.consensus.kv.put('k', 1)) > 0);
      const x = h.nodes[0]!;
      for (const op of [
        () => x.consensus.addMember('z'),
        () => x.consensus.removeMember('z'),
        () => x.consensus.transferLeadership(),
      ])
        await assert.rejects(op(), (e) => isFoundationError(e, 'FND_ERR_CONSENSUS_UNSUPPORTED'));
      assert.equal(x.consensus.status().backend, 'etcd');
    } finally {
      await n.stop();
      await h.stop();
    }
  });
});
