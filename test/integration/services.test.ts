// The service layer across real processes on loopback: this test process is a node ('t') and
// three node processes (test/fixtures/svc-node.ts) offer services. Typed calls through a shared
// contract; bad arguments refused on the serving node and on the caller; context (values + one
// trace id) across 3 hops; a 1 GiB stream into another process keeps that process's RSS growth
// under a loose bound; a consumer that stops reading stops the producer; and failover when the
// serving node is SIGKILLed mid-call (idempotent → another node; not idempotent → NODE_UNREACHABLE
// or NODE_DOWN).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { currentContext, Foundation, type FoundationNode, withContext } from '../../src/index.js';
import { hash32 } from '../../src/services/balancers.js';
import { greeter } from '../fixtures/svc-contract.js';
import { rejectsWithCode, track } from '../helpers/assert.js';
import { waitUntil } from '../helpers/nodes.js';
import { eachLine } from '../helpers/proc.js';

const FIXTURE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'svc-node.js',
);
// Liveness limits, not performance assertions.
const FORM_MS = 30_000;
/** RSS growth allowed in the receiving process while 1 GiB streams through (docs/services.md). */
const RSS_BOUND = 256 * 1024 * 1024;

interface Proc {
  name: string;
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
}

function start(name: string, cluster: string): Proc {
  const child = spawn(
    process.execPath,
    ['--expose-gc', FIXTURE, '--name', name, '--cluster', cluster],
    {
      // stdin: a pipe that closes when this test process ends, however it ends (svc-node stops).
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const p: Proc = { name, child, events: [] };
  eachLine(child.stdout!, (_line, json) => {
    if (json !== undefined) p.events.push(json);
  });
  return p;
}

describe('services across real processes', () => {
  const cluster = `svc-${process.pid}-${Date.now()}`;
  let t: FoundationNode;
  let procs: Proc[] = [];

  before(async () => {
    procs = ['s1', 's2', 's3'].map((n) => start(n, cluster));
    t = await Foundation.start({ name: 't', cluster, logLevel: 'warn' });
    await waitUntil(
      () =>
        t.services.list({ name: 'greeter' }).length === 3 &&
        ['s1', 's2', 's3'].every((n) => t.services.list({ name: `ctx-${n}` }).length === 1),
      'catalogue from 3 processes',
      FORM_MS,
    );
  });

  after(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await t?.stop();
  });

  it('typed calls and bad arguments (refused on the server, then on the caller)', async () => {
    // Without the contract on this side, the serving node validates.
    const e1 = await rejectsWithCode(
      t.services.call('greeter.user', [{ name: 1, age: 2 }]),
      'FND_ERR_VALIDATION',
    );
    assert.equal(e1.data?.field, '0.name');
    assert.equal(e1.data?.side, 'server');
    const g = t.services.get(greeter);
    assert.match(await g.hello('bob'), /^hello bob from s[123]$/);
    assert.equal(await g.user({ name: 'ann', age: 30 }), 'ann is 30');
    const e2 = await rejectsWithCode(g.user({ name: 'ann', age: -1 }), 'FND_ERR_VALIDATION');
    assert.equal(e2.data?.field, '0.age');
    assert.equal(e2.data?.side, 'caller');
    await rejectsWithCode(t.services.call('greeter.nope'), 'FND_ERR_SERVICE_NOT_FOUND');
  });

  it('carries the context across 3 hops (t → s1 → s2 → s3)', async () => {
    const chain = await withContext({ requestId: 'req-7', user: 'ann' }, async () => {
      const mine = currentContext();
      const r = (await t.services.call('ctx-s1.see', ['s2', 's3'])) as Array<{
        node: string;
        values: Record<string, string>;
        traceId: string;
        deadline: number;
      }>;
      return { r, traceId: mine?.traceId };
    });
    assert.deepEqual(
      chain.r.map((x) => x.node),
      ['s1', 's2', 's3'],
    );
    for (const hop of chain.r) {
      assert.deepEqual(hop.values, { requestId: 'req-7', user: 'ann' });
      assert.equal(hop.traceId, chain.traceId);
      assert.ok(typeof hop.deadline === 'number');
    }
  });

  it('carries the context from a service call through actors on two more nodes (t → s1 → actor on s2 → actor on s3)', async () => {
    const chain = await withContext({ requestId: 'req-actors' }, async () => {
      const mine = currentContext();
      const r = (await t.services.call('ctx-s1.actor', ['s2', 's3'])) as Array<{
        node: string;
        values: Record<string, string>;
        traceId: string;
      }>;
      return { r, traceId: mine?.traceId };
    });
    assert.deepEqual(
      chain.r.map((x) => x.node),
      ['s1', 's2', 's3'],
    );
    assert.match(chain.traceId!, /^[0-9a-f]{32}$/);
    for (const hop of chain.r) {
      assert.deepEqual(hop.values, { requestId: 'req-actors' }, hop.node);
      assert.equal(hop.traceId, chain.traceId, hop.node);
    }
    // The one-way send from s2's actor to s3's carried it too.
    const s3 = procs.find((p) => p.name === 's3')!;
    await waitUntil(
      () => s3.events.some((e) => e.event === 'actor-ctx' && e.tag === 'from-s2'),
      'actor-ctx line from s3',
      FORM_MS,
    );
    const sent = s3.events.filter((e) => e.event === 'actor-ctx' && e.tag === 'from-s2');
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0]!.values, { requestId: 'req-actors' });
    assert.equal(sent[0]!.traceId, chain.traceId);
    // Outside any context, the same path carries nothing.
    const bare = (await t.services.call('ctx-s1.actor', ['s2', 's3'])) as Array<{
      values?: object;
      traceId?: string;
    }>;
    assert.equal(bare.length, 3);
    for (const hop of bare.slice(1)) {
      assert.equal(hop.values, undefined);
      assert.equal(hop.traceId, undefined);
    }
  });

  it('streams 1 GiB into another process within the memory bound; a consumer that stops stops the producer', async () => {
    const CHUNK = 1024 * 1024;
    const N = 1024;
    const block = Buffer.alloc(CHUNK, 7);
    let sent = 0;
    async function* source() {
      for (let i = 0; i < N; i++) {
        sent++;
        yield block;
      }
    }
    const r = (await t.services.call('sink.consume', [source()], {
      node: 's3',
      timeout: 300_000,
    })) as {
      bytes: number;
      chunks: number;
      baseRss: number;
      maxRss: number;
    };
    assert.equal(r.bytes, N * CHUNK);
    assert.equal(sent, N);
    const growth = r.maxRss - r.baseRss;
    process.stdout.write(
      `# 1 GiB stream: receiver RSS grew ${(growth / 1048576).toFixed(1)} MiB\n`,
    );
    assert.ok(growth < RSS_BOUND, `receiver RSS grew ${growth} bytes`);
    // The consumer breaks after 5 chunks: the producer here stops (its finally runs).
    let finished = false;
    let produced = 0;
    async function* endless() {
      try {
        for (;;) {
          produced++;
          yield block;
        }
      } finally {
        finished = true;
      }
    }
    const s = (await t.services.call('sink.consume', [endless(), 5], { node: 's3' })) as {
      chunks: number;
    };
    assert.equal(s.chunks, 5);
    await waitUntil(() => finished, "producer's finally after the consumer stopped");
    assert.ok(produced < 5 + 2 * 8 + 2, `produced ${produced}`);
  });

  it('fails over when the serving node is SIGKILLed mid-call (idempotent), else NODE_DOWN', async () => {
    const victim = procs[0]!;
    const callsBefore = victim.events.filter((e) => e.event === 'call').length;
    const slow = track(
      t.services.call('greeter.slow', [3000], { balancer: 'consistent-hash', key: pickKey('s1') }),
    );
    const put = track(
      t.services.call('greeter.put', [3000], { balancer: 'consistent-hash', key: pickKey('s1') }),
    );
    await waitUntil(
      () => victim.events.filter((e) => e.event === 'call').length === callsBefore + 2,
      'both calls running on s1',
    );
    victim.child.kill('SIGKILL');
    const other = await slow.promise;
    assert.ok(other === 's2' || other === 's3', `failed over to ${other}`);
    // Rejected at once when its connections close (UNREACHABLE), or on failure detection (DOWN).
    const err = await put.promise.then(
      () => assert.fail('put resolved'),
      (e: { code?: string }) => e,
    );
    assert.ok(
      err.code === 'FND_ERR_NODE_UNREACHABLE' || err.code === 'FND_ERR_NODE_DOWN',
      String(err.code),
    );
  });
});

/** A key whose consistent-hash owner among s1..s3 is `owner`. */
function pickKey(owner: string): string {
  for (let i = 0; ; i++) {
    const key = `k${i}`;
    let best = '';
    let score = -1;
    for (const n of ['s1', 's2', 's3']) {
      const h = hash32(`${key}\u0000${n}`);
      if (h > score) {
        best = n;
        score = h;
      }
    }
    if (best === owner) return key;
  }
}
