// Context propagation on the in-memory network: withContext values and one trace id cross three
// hops of service calls; baggage and traceparent round-trip; with an OpenTelemetry tracer provider
// registered (the SDK's in-memory exporter), each hop makes a client span on the caller and a
// server span on the callee whose parent is that client span — one trace across the nodes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { currentContext, type FoundationNode, withContext } from '../../src/index.js';
import { decodeBaggage, encodeBaggage } from '../../src/services/context.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';
import { done, ready } from './util.js';

describe('context propagation', () => {
  it('encodes and decodes W3C baggage', () => {
    const v = { requestId: 'r-1', user: 'a b,c;d=é' };
    assert.deepEqual({ ...decodeBaggage(encodeBaggage(v)) }, v);
    assert.deepEqual(
      { ...decodeBaggage('k=v;prop=1, bad, =x,__proto__=1,k2=%E0%A4%A') },
      { k: 'v' },
    );
    assert.throws(() => withContext({ 'bad key': 'x' }, () => 1), {
      code: 'FND_ERR_INVALID_OPTION',
    });
  });

  it('carries values and one trace across 3 hops of calls', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      cc.service('three', { see: () => currentContext() });
      b.service('two', { fwd: () => b.services.call('three.see') });
      await ready(c, a, 'two');
      await ready(c, b, 'three');
      let traceId: string | undefined;
      const seen = await withContext({ requestId: 'req-42', tenant: 'acme' }, () => {
        traceId = currentContext()?.traceId;
        return done(
          c,
          a.services.call('two.fwd') as Promise<{
            values: Record<string, string>;
            traceId: string;
          }>,
        );
      });
      assert.deepEqual(seen.values, { requestId: 'req-42', tenant: 'acme' });
      assert.equal(seen.traceId, traceId);
      assert.match(traceId!, /^[0-9a-f]{32}$/);
      // Outside any context nothing extra is carried.
      const bare = await done(
        c,
        a.services.call('two.fwd') as Promise<{ values: object; traceId?: string }>,
      );
      assert.deepEqual(bare.values, {});
      assert.equal(bare.traceId, undefined);
    } finally {
      await c.stop();
    }
  });

  it('carries the publisher context to pub/sub handlers on other nodes (and nothing outside one)', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const seen: Array<[unknown, Record<string, string> | undefined, string | undefined]> = [];
      b.pubsub.subscribe('jobs.*', (msg) => {
        const ctx = currentContext();
        seen.push([msg, ctx?.values, ctx?.traceId]);
      });
      const actorSeen: Array<[unknown, Record<string, string> | undefined]> = [];
      const sub = b.spawn((msg: unknown) => {
        actorSeen.push([msg, currentContext()?.values]);
      });
      b.pubsub.subscribe('jobs.*', sub);
      await tickUntil(
        c.clock,
        c.net,
        () => a.pubsub.interestedNodes('jobs.x').length === 1,
        'interest',
      );
      let traceId: string | undefined;
      withContext({ requestId: 'pub-1' }, () => {
        traceId = currentContext()?.traceId;
        a.pubsub.publish('jobs.x', 1);
      });
      a.pubsub.publish('jobs.y', 2);
      await tickUntil(c.clock, c.net, () => seen.length === 2, 'both delivered');
      assert.deepEqual(seen[0], [1, { requestId: 'pub-1' }, traceId]);
      assert.deepEqual(seen[1], [2, undefined, undefined]);
      // An actor subscriber's handler runs in the publisher's context too.
      await tickUntil(c.clock, c.net, () => actorSeen.length === 2, 'both delivered to the actor');
      assert.deepEqual(actorSeen, [
        [1, { requestId: 'pub-1' }],
        [2, undefined],
      ]);
    } finally {
      await c.stop();
    }
  });

  it('carries the sender context with actor messages, local and remote (send, cast, call), and nothing outside one', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      type Seen = [string, unknown, Record<string, string> | undefined, string | undefined];
      const seen: Seen[] = [];
      const record = (where: string, msg: unknown) => {
        const x = currentContext();
        seen.push([where, msg, x?.values ? { ...x.values } : undefined, x?.traceId]);
      };
      const onC = cc.spawn((msg: unknown) => {
        record('c', msg);
        return msg;
      });
      // b's actor forwards what it gets to c's, by call or by send, from inside its handler.
      const onB = b.spawn(async (msg: unknown) => {
        record('b', msg);
        if (msg === 'call') return b.call(onC, 'via-call');
        b.send(onC, 'via-send');
        return 'sent';
      });
      const onA = a.spawn((msg: unknown) => {
        record('a', msg);
        return msg;
      });
      b.service('two', { fwd: (how: string) => b.call(onB, how) });
      await ready(c, a, 'two');
      const run = async (how: string) => {
        let traceId: string | undefined;
        const r = await withContext({ requestId: `act-${how}` }, () => {
          traceId = currentContext()?.traceId;
          return done(c, a.services.call('two.fwd', [how]));
        });
        return { r, traceId };
      };
      // service call → actor on b (call) → actor on c (call)
      const viaCall = await run('call');
      assert.equal(viaCall.r, 'via-call');
      assert.deepEqual(seen.splice(0), [
        ['b', 'call', { requestId: 'act-call' }, viaCall.traceId],
        ['c', 'via-call', { requestId: 'act-call' }, viaCall.traceId],
      ]);
      // service call → actor on b (call) → actor on c (send)
      const viaSend = await run('send');
      await tickUntil(c.clock, c.net, () => seen.length === 2, 'send delivered');
      assert.deepEqual(seen.splice(0), [
        ['b', 'send', { requestId: 'act-send' }, viaSend.traceId],
        ['c', 'via-send', { requestId: 'act-send' }, viaSend.traceId],
      ]);
      // Local send, cast and call inside a context; a remote cast.
      let local: string | undefined;
      await withContext({ requestId: 'local' }, async () => {
        local = currentContext()?.traceId;
        a.send(onA, 'send');
        a.cast(onA, 'cast');
        a.cast(onC, 'cast');
        await done(c, a.call(onA, 'call'));
      });
      await tickUntil(c.clock, c.net, () => seen.length === 4, 'local and remote delivered');
      assert.deepEqual(
        seen.splice(0).sort(),
        [
          ['a', 'call', { requestId: 'local' }, local],
          ['a', 'cast', { requestId: 'local' }, local],
          ['a', 'send', { requestId: 'local' }, local],
          ['c', 'cast', { requestId: 'local' }, local],
        ].sort(),
      );
      // Outside any context: nothing is carried, and the handlers see none, even when the
      // message is handled in the same run as one sent inside a context.
      withContext({ requestId: 'first' }, () => a.send(onA, 'in'));
      a.send(onA, 'out');
      a.send(onC, 'out');
      await tickUntil(c.clock, c.net, () => seen.length === 3, 'bare delivered');
      assert.deepEqual(
        seen.map(([w, m, v, t]) => [w, m, v, t === undefined]),
        [
          ['a', 'in', { requestId: 'first' }, false],
          ['a', 'out', undefined, true],
          ['c', 'out', undefined, true],
        ],
      );
    } finally {
      await c.stop();
    }
  });

  describe('with OpenTelemetry', () => {
    const exporter = new InMemorySpanExporter();
    before(() => {
      const provider = new BasicTracerProvider({
        spanProcessors: [new SimpleSpanProcessor(exporter)],
      });
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      trace.setGlobalTracerProvider(provider);
    });
    after(() => {
      trace.disable();
      context.disable();
    });

    it('creates client and server spans linked across nodes, one trace for 3 hops', async () => {
      const c = await startMeshedCluster(['a', 'b', 'c']);
      try {
        const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
        cc.service('three', { see: () => 'ok' });
        b.service('two', { fwd: () => b.services.call('three.see') });
        await ready(c, a, 'two');
        await ready(c, b, 'three');
        exporter.reset();
        const root = trace.getTracer('test').startSpan('root');
        await context.with(trace.setSpan(context.active(), root), () =>
          done(c, a.services.call('two.fwd')),
        );
        root.end();
        const spans = exporter.getFinishedSpans();
        const by = (name: string, kind: SpanKind) => {
          const s = spans.find((x) => x.name === name && x.kind === kind);
          assert.ok(
            s,
            `span ${name} ${SpanKind[kind]} in ${spans.map((x) => `${x.name}/${SpanKind[x.kind]}`)}`,
          );
          return s;
        };
        const c1 = by('two.fwd', SpanKind.CLIENT);
        const s1 = by('two.fwd', SpanKind.SERVER);
        const c2 = by('three.see', SpanKind.CLIENT);
        const s2 = by('three.see', SpanKind.SERVER);
        const rootSpan = by('root', SpanKind.INTERNAL);
        const traceId = rootSpan.spanContext().traceId;
        for (const s of [c1, s1, c2, s2]) assert.equal(s.spanContext().traceId, traceId);
        const parent = (s: (typeof spans)[number]) => s.parentSpanContext?.spanId;
        assert.equal(parent(c1), rootSpan.spanContext().spanId);
        assert.equal(parent(s1), c1.spanContext().spanId);
        assert.equal(parent(c2), s1.spanContext().spanId);
        assert.equal(parent(s2), c2.spanContext().spanId);
        assert.equal(s2.attributes['rpc.service'], 'three');
      } finally {
        await c.stop();
      }
    });

    it("runs an actor's handler on another node in a consumer span, child of the sender's span", async () => {
      const c = await startMeshedCluster(['a', 'b', 'c']);
      try {
        const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
        let active: string | undefined;
        const sink = cc.spawn(
          () => {
            active = trace.getActiveSpan()?.spanContext().spanId;
            return 'ok';
          },
          { name: 'sink' },
        );
        b.service('two', { fwd: () => b.call(sink, 'x') });
        await ready(c, a, 'two');
        exporter.reset();
        const root = trace.getTracer('test').startSpan('root');
        assert.equal(
          await context.with(trace.setSpan(context.active(), root), () =>
            done(c, a.services.call('two.fwd')),
          ),
          'ok',
        );
        root.end();
        const spans = exporter.getFinishedSpans();
        const server = spans.find((x) => x.name === 'two.fwd' && x.kind === SpanKind.SERVER);
        const actor = spans.find((x) => x.name === 'actor message' && x.kind === SpanKind.CONSUMER);
        assert.ok(server && actor, `spans: ${spans.map((x) => `${x.name}/${SpanKind[x.kind]}`)}`);
        assert.equal(actor.spanContext().traceId, root.spanContext().traceId);
        assert.equal(actor.parentSpanContext?.spanId, server.spanContext().spanId);
        assert.equal(actor.attributes['foundation.actor'], 'sink');
        // The handler ran with the consumer span active (its own calls would be its children).
        assert.equal(active, actor.spanContext().spanId);
      } finally {
        await c.stop();
      }
    });
  });
});
