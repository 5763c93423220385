// node.telemetry: own metrics with bad input refused, measure, Prometheus text, diagnostics
// channels and node figures as metrics, metrics of every node combined with the members that did
// not answer reported, and EWMA + z-score anomaly flags on a deterministic series.
import assert from 'node:assert/strict';
import perfHooks from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { EwmaDetector } from '../../src/core/telemetry.js';
import { CORE_KINDS } from '../../src/core/wire.js';
import type { FoundationNode } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { busyPoller } from '../../src/transport/busy-poll.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMemNode, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

async function solo(runtimeMetrics = true) {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock, 1);
  const node = await startMemNode(net, clock, { name: 'solo', telemetry: { runtimeMetrics } });
  return { node, clock, net };
}

/** Canonical form of `name{a="1",b="2"}`: labels sorted (prom-client's order varies by type). */
function canonical(series: string): string {
  const m = /^([^{]+)(?:\{(.*)\})?$/.exec(series);
  if (!m) return series;
  const labels = (m[2] ?? '')
    .split(/,(?=[a-zA-Z_]+=)/)
    .filter(Boolean)
    .sort();
  return `${m[1]}{${labels.join(',')}}`;
}

/** The value of one series in Prometheus text, or undefined. */
function seriesValue(text: string, series: string): number | undefined {
  const want = canonical(series);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i > 0 && canonical(line.slice(0, i)) === want) return Number(line.slice(i + 1));
  }
  return undefined;
}

describe('telemetry', () => {
  it('counters, gauges and histograms appear in the Prometheus text with the node label', async () => {
    const { node } = await solo();
    try {
      const t = node.telemetry;
      t.counter('orders_total', { shop: 'a' }).inc();
      t.counter('orders_total', { shop: 'a' }).inc(2);
      t.counter('orders_total', { shop: 'b' }).inc();
      t.gauge('queue_depth').set(7);
      t.gauge('queue_depth').dec(2);
      t.histogram('latency_seconds', {}, { buckets: [0.1, 1] }).observe(0.5);
      const text = await t.getMetrics();
      assert.equal(seriesValue(text, 'orders_total{shop="a",node="solo"}'), 3);
      assert.equal(seriesValue(text, 'orders_total{shop="b",node="solo"}'), 1);
      assert.equal(seriesValue(text, 'queue_depth{node="solo"}'), 5);
      assert.equal(seriesValue(text, 'latency_seconds_bucket{le="0.1",node="solo"}'), 0);
      assert.equal(seriesValue(text, 'latency_seconds_bucket{le="1",node="solo"}'), 1);
      assert.match(t.contentType, /text\/plain/);
      // Node figures and runtime metrics.
      assert.equal(seriesValue(text, 'foundation_members{status="alive",node="solo"}'), 1);
      assert.ok(seriesValue(text, 'foundation_actors{node="solo"}')! >= 1, 'the node service runs');
      assert.ok(seriesValue(text, 'nodejs_heap_size_used_bytes{node="solo"}')! > 0);
      assert.match(text, /nodejs_eventloop_lag_p99_seconds\{node="solo"\}/);
      assert.match(text, /nodejs_gc_duration_seconds/);
    } finally {
      await node.stop();
    }
  });

  it('runtime metrics are collected once per process: nodes that stop leave no collector behind', async () => {
    // prom-client makes one event-loop delay histogram per collection it starts, and never
    // disables it: count them while nodes start and stop.
    const made = { n: 0 };
    const original = perfHooks.monitorEventLoopDelay;
    perfHooks.monitorEventLoopDelay = (...args) => {
      made.n++;
      return original(...args);
    };
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock, 1);
    try {
      for (let i = 0; i < 3; i++) await (await startMemNode(net, clock, { name: `n${i}` })).stop();
      const a = await startMemNode(net, clock, { name: 'a' });
      const b = await startMemNode(net, clock, { name: 'b' });
      assert.ok(made.n <= 1, `${made.n} event-loop delay histograms for 5 nodes`);
      // Each node's scrape carries its own node label; stopping one leaves the other's intact.
      assert.match(await a.telemetry.getMetrics(), /nodejs_eventloop_lag_p99_seconds\{node="a"\}/);
      await a.stop();
      const text = await b.telemetry.getMetrics();
      assert.match(text, /nodejs_eventloop_lag_p99_seconds\{node="b"\}/);
      assert.ok(seriesValue(text, 'nodejs_heap_size_used_bytes{node="b"}')! > 0);
      await b.stop();
    } finally {
      perfHooks.monitorEventLoopDelay = original;
    }
  });

  it('refuses bad names, labels and values with FND_ERR_INVALID_ARGUMENT', async () => {
    const { node } = await solo(false);
    try {
      const t = node.telemetry;
      const bad = (fn: () => unknown) => assert.throws(fn, { code: 'FND_ERR_INVALID_ARGUMENT' });
      bad(() => t.counter('bad name'));
      bad(() => t.counter('ok_total', { 'bad-label': 1 }));
      bad(() => t.counter('ok_total', { x: {} as never }));
      t.counter('ok_total', { a: 1 });
      bad(() => t.counter('ok_total', { b: 1 })); // other label names
      bad(() => t.gauge('ok_total', { a: 1 })); // other kind
      bad(() => t.counter('foundation_actors')); // built-in
      bad(() => t.counter('c_total').inc(-1));
      bad(() => t.gauge('g').set(Number.NaN));
      bad(() => t.histogram('h').observe(Number.POSITIVE_INFINITY));
      bad(() => t.watch('no_such_metric'));
      bad(() => t.watch('c_total', { alpha: 0 }));
      await rejectsWithCode(t.measure('m', {}, 42 as never), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(
        t.measure('m', { outcome: 'x' }, () => 1),
        'FND_ERR_INVALID_ARGUMENT',
      );
      await rejectsWithCode(
        t.getClusterMetrics({ aggregation: 'median' as never }),
        'FND_ERR_INVALID_ARGUMENT',
      );
      // Without runtime metrics there are no nodejs_/process_ series.
      assert.doesNotMatch(await t.getMetrics(), /nodejs_heap/);
    } finally {
      await node.stop();
    }
  });

  it('measure records durations by outcome and returns or rethrows', async () => {
    const { node } = await solo(false);
    try {
      const t = node.telemetry;
      assert.equal(await t.measure('job_seconds', { job: 'x' }, async () => 'done'), 'done');
      await assert.rejects(
        t.measure('job_seconds', { job: 'x' }, () => {
          throw new Error('failed');
        }),
        /failed/,
      );
      const text = await t.getMetrics();
      assert.equal(seriesValue(text, 'job_seconds_count{job="x",outcome="ok",node="solo"}'), 1);
      assert.equal(seriesValue(text, 'job_seconds_count{job="x",outcome="error",node="solo"}'), 1);
    } finally {
      await node.stop();
    }
  });

  it('diagnostics channels become metrics: membership changes, protection refusals and circuit state', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c'], { telemetry: { runtimeMetrics: false } });
    try {
      const a = c.nodes[0]!;
      a.protection.configure('dep', { circuitBreaker: { threshold: 1, halfOpenAfter: 60_000 } });
      await assert.rejects(
        a.protection.execute('dep', () => {
          throw new Error('x');
        }),
      );
      await rejectsWithCode(
        a.protection.execute('dep', () => 1),
        'FND_ERR_CIRCUIT_OPEN',
      );
      const text = await a.telemetry.getMetrics();
      assert.ok(
        seriesValue(text, 'foundation_membership_changes_total{status="alive",node="a"}')! >= 2,
        text,
      );
      assert.equal(seriesValue(text, 'foundation_protection_circuit_open{key="dep",node="a"}'), 1);
      assert.equal(
        seriesValue(
          text,
          'foundation_protection_rejected_total{key="dep",reason="circuit-open",node="a"}',
        ),
        1,
      );
      assert.equal(seriesValue(text, 'foundation_members{status="alive",node="a"}'), 3);
    } finally {
      await c.stop();
    }
  });

  it("the process's busy poller is in the node figures: windows started, and its two averages", async () => {
    const { node } = await solo(false);
    try {
      const text = await node.telemetry.getMetrics();
      const windows = seriesValue(text, 'foundation_busy_poll_windows_total{node="solo"}');
      assert.equal(windows, busyPoller.windows, 'read at scrape time from the poller');
      for (const after of ['sent', 'received'] as const) {
        const v = seriesValue(text, `foundation_busy_poll_score{after="${after}",node="solo"}`);
        assert.equal(v, busyPoller.score[after], after);
      }
    } finally {
      await node.stop();
    }
  });

  it('messages per channel and direction are counters (rate() gives messages/s)', async () => {
    const c = await startMeshedCluster(['a', 'b'], { telemetry: { runtimeMetrics: false } });
    try {
      const [a, b] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
      const series = async (node: typeof a, direction: string, channel: string) =>
        seriesValue(
          await node.telemetry.getMetrics(),
          `foundation_transport_messages_total{direction="${direction}",channel="${channel}",node="${node.name}"}`,
        ) ?? 0;
      const before = await series(a, 'sent', 'default');
      b.messenger.on('n', () => {});
      for (let i = 0; i < 25; i++) a.messenger.send('b', 'n', i);
      a.messenger.send('b', 'n', Buffer.alloc(100_000));
      assert.equal((await series(a, 'sent', 'default')) - before, 25);
      assert.ok((await series(a, 'sent', 'bulk')) >= 1);
      assert.ok((await series(a, 'sent', 'control')) > 0, 'membership traffic');
      await c.net.settle();
      c.clock.tick(10);
      await c.net.settle();
      assert.ok((await series(b, 'received', 'default')) >= 25, 'b counted what it received');
    } finally {
      await c.stop();
    }
  });

  it('getClusterMetrics combines every node by aggregation and lists members that did not answer', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd'], {
      telemetry: { runtimeMetrics: false },
    });
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      a.telemetry.counter('work_total', { kind: 'x' }).inc(1);
      b.telemetry.counter('work_total', { kind: 'x' }).inc(2);
      cc.telemetry.counter('work_total', { kind: 'x' }).inc(3);
      d.telemetry.counter('work_total', { kind: 'x' }).inc(100);
      // d answers with garbage (a misbehaving member): listed as missing, not summed.
      d.messenger.handle(CORE_KINDS.metrics, () => [{ name: 'x', type: 'gauge', values: 'nope' }]);
      const get = async (aggregation: 'sum' | 'avg' | 'min' | 'max') => {
        let out: Awaited<ReturnType<FoundationNode['telemetry']['getClusterMetrics']>> | undefined;
        const p = a.telemetry.getClusterMetrics({ aggregation }).then((r) => {
          out = r;
        });
        await tickUntil(c.clock, c.net, () => out !== undefined, 'cluster metrics');
        await p;
        return out!;
      };
      const sum = await get('sum');
      const work = (r: typeof sum) => r.metrics.find((m) => m.name === 'work_total');
      assert.deepEqual(work(sum), {
        name: 'work_total',
        labels: { kind: 'x' },
        value: 6,
        nodes: 3,
      });
      assert.deepEqual(sum.nodes.sort(), ['a', 'b', 'c']);
      assert.deepEqual(sum.missing, ['d']);
      assert.equal(work(await get('max'))?.value, 3);
      assert.equal(work(await get('avg'))?.value, 2);
      assert.equal(
        (await get('sum')).metrics.find(
          (m) => m.name === 'foundation_members' && m.labels.status === 'alive',
        )?.value,
        12,
        '3 nodes each see 4 alive',
      );
      // A member that does not answer (paused) is missing after the timeout.
      c.net.pause(cc.address);
      let slow: Awaited<ReturnType<FoundationNode['telemetry']['getClusterMetrics']>> | undefined;
      void a.telemetry.getClusterMetrics({ timeoutMs: 200 }).then((r) => {
        slow = r;
      });
      await tickUntil(c.clock, c.net, () => slow !== undefined, 'timed out', { maxMs: 2000 });
      assert.deepEqual(slow!.missing.sort(), ['c', 'd']);
      c.net.resume(cc.address);
      // A member whose core services stopped (it is stopping) is missing, not an empty answer.
      await (b as unknown as { core: { stop(): Promise<void> } }).core.stop();
      assert.deepEqual((await get('sum')).missing.sort(), ['b', 'd']);
    } finally {
      await c.stop();
    }
  });

  it('EwmaDetector flags a sample far from the recent ones, only after warm-up', () => {
    const det = new EwmaDetector({ alpha: 0.2, threshold: 3, warmup: 10 });
    const flags: boolean[] = [];
    for (let i = 0; i < 30; i++) flags.push(det.observe(i % 2 === 0 ? 9 : 11).anomalous);
    assert.equal(flags.some(Boolean), false, 'a steady series is never flagged');
    const spike = det.observe(40);
    assert.equal(spike.anomalous, true);
    assert.ok(spike.z > 3);
    const early = new EwmaDetector({ warmup: 10 });
    early.observe(1);
    assert.equal(early.observe(1000).anomalous, false, 'not during warm-up');
    assert.throws(() => new EwmaDetector({ threshold: 0 }), { code: 'FND_ERR_INVALID_ARGUMENT' });
    assert.throws(() => new EwmaDetector({ warmup: 1 }), { code: 'FND_ERR_INVALID_ARGUMENT' });
  });

  it('watch samples a metric on the clock and emits anomaly for a spike', async () => {
    const { node, clock, net } = await solo(false);
    try {
      const g = node.telemetry.gauge('inflight');
      const seen: number[] = [];
      node.telemetry.on('anomaly', (a) => seen.push(a.value));
      const stop = node.telemetry.watch('inflight', { intervalMs: 100, warmup: 5 });
      for (let i = 0; i < 20; i++) {
        g.set(i % 2 === 0 ? 10 : 12);
        await tickUntil(clock, net, () => false, '', { maxMs: 100, stepMs: 100 }).catch(() => {});
      }
      assert.deepEqual(seen, []);
      g.set(500);
      await tickUntil(clock, net, () => seen.length === 1, 'anomaly', { maxMs: 500, stepMs: 100 });
      assert.deepEqual(seen, [500]);
      stop();
    } finally {
      await node.stop();
    }
  });
});
