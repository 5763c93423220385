// Node-level messaging between nodes on the in-memory network, with a manual clock wherever time
// matters: request/response, ordered one-way sends, automatic use of the bulk channel, coded
// failures (no handler, remote throw, timeout, unknown node), and immediate rejection of pending
// requests when the target leaves or is declared down.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { afterEach, describe, it } from 'node:test';
import type { ReplySink } from '../../src/cluster/messenger.js';
import { FoundationError } from '../../src/errors.js';
import { encode } from '../../src/transport/codec.js';
import { DEFAULT_CHANNEL_MAX_FRAME, MSG } from '../../src/transport/protocol.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import { assertCoded, fulfilled, rejectedWith, rejectsWithCode, track } from '../helpers/assert.js';
import { type MeshedCluster, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const never = () => new Promise<never>(() => {});

describe('Messenger between nodes', () => {
  const clusters: MeshedCluster[] = [];
  afterEach(async () => {
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
  });
  async function cluster(names: string[], opts = {}): Promise<MeshedCluster> {
    const c = await startMeshedCluster(names, opts);
    clusters.push(c);
    return c;
  }

  it('request/response round trip, with sync and async handlers', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('echo', (payload, from) => ({ payload, from }));
    b.messenger.handle('later', async (payload) => `got ${String(payload)}`);
    assert.deepEqual(await a.messenger.request('b', 'echo', { x: [1, 'two', null] }), {
      payload: { x: [1, 'two', null] },
      from: 'a',
    });
    assert.equal(await a.messenger.request('b', 'later', 5), 'got 5');
    assert.equal(a.messenger.inFlight, 0);
  });

  it('many concurrent requests in both directions each get their own reply', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    a.messenger.handle('double', (p) => (p as number) * 2);
    b.messenger.handle('double', async (p) => {
      // Replies come back out of order.
      if ((p as number) % 3 === 0) await new Promise((r) => setImmediate(r));
      return (p as number) * 2;
    });
    const n = 200;
    const ab = Array.from({ length: n }, (_, i) => a.messenger.request<number>('b', 'double', i));
    const ba = Array.from({ length: n }, (_, i) =>
      b.messenger.request<number>('a', 'double', 1000 + i),
    );
    assert.deepEqual(
      await Promise.all(ab),
      Array.from({ length: n }, (_, i) => i * 2),
    );
    assert.deepEqual(
      await Promise.all(ba),
      Array.from({ length: n }, (_, i) => (1000 + i) * 2),
    );
  });

  it('one-way send: 1000 messages arrive in order, tagged with the sender', async () => {
    const { nodes, net } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const got: Array<[unknown, string]> = [];
    b.messenger.on('seq', (p, from) => got.push([p, from]));
    for (let i = 0; i < 1000; i++) a.messenger.send('b', 'seq', i);
    await net.settle();
    assert.equal(got.length, 1000);
    assert.deepEqual(
      got.map(([p]) => p),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.ok(got.every(([, from]) => from === 'a'));
  });

  it('a payload above bulkThreshold arrives intact, over a separate bulk connection', async () => {
    const connects: Array<{ peer: string; channel: string }> = [];
    const onConnect = (m: unknown) => connects.push(m as { peer: string; channel: string });
    diagnostics.subscribe(CHANNELS.transportConnect, onConnect);
    try {
      const { nodes, net } = await cluster(['a', 'b'], { bulkThreshold: 4096 });
      const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
      b.messenger.handle('hash', (p) => sha(p as Uint8Array));
      const toB = () => connects.filter((c) => c.peer === 'b').map((c) => c.channel);

      assert.equal(
        await a.messenger.request('b', 'hash', Buffer.from('small')),
        sha(Buffer.from('small')),
      );
      assert.ok(!toB().includes('bulk'), 'a small request does not open the bulk channel');

      const big = randomBytes(200_000);
      assert.equal(await a.messenger.request('b', 'hash', big), sha(big));
      assert.deepEqual(
        toB().filter((c) => c === 'bulk'),
        ['bulk'],
        'the big request went over one bulk connection',
      );

      // One-way too, and a second big payload reuses the connection.
      const received: string[] = [];
      b.messenger.on('blob', (p) => received.push(sha(p as Uint8Array)));
      const big2 = randomBytes(100_000);
      a.messenger.send('b', 'blob', big2);
      await net.settle();
      assert.deepEqual(received, [sha(big2)]);
      assert.equal(toB().filter((c) => c === 'bulk').length, 1);
    } finally {
      diagnostics.unsubscribe(CHANNELS.transportConnect, onConnect);
    }
  });

  it("with bulkThreshold at the default channel's frame limit, a lane message just under it still goes (numbered, its lane fields make it longer)", async () => {
    const T = DEFAULT_CHANNEL_MAX_FRAME;
    const { nodes, net } = await cluster(['a', 'b'], { bulkThreshold: T });
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const got: number[] = [];
    b.messenger.on('k', (p) => got.push((p as Uint8Array).length));
    let n = T - 16;
    while (encode([MSG.SEND, 'k', Buffer.alloc(n)]).length < T - 8) n++;
    const near = Buffer.alloc(n); // its plain SEND is 8 bytes under the threshold
    // A large message first: the lane's next messages are numbered, so widened.
    a.messenger.send('b', 'k', Buffer.alloc(T + 10), { lane: 5 });
    a.messenger.send('b', 'k', near, { lane: 5 });
    await net.settle();
    assert.deepEqual(got, [T + 10, n]);
  });

  it('a request for a kind the target does not handle rejects with FND_ERR_NO_HANDLER', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const err = await rejectsWithCode(
      nodes[0]!.messenger.request('b', 'nope', 1),
      'FND_ERR_NO_HANDLER',
    );
    assert.match(err.message, /nope/);
  });

  it('a handler that throws rejects with FND_ERR_REMOTE carrying the remote message', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('boom', () => {
      throw new Error('boom: disk on fire');
    });
    b.messenger.handle('reject', async () => {
      throw new TypeError('async failure');
    });
    const e1 = await rejectsWithCode(a.messenger.request('b', 'boom', null), 'FND_ERR_REMOTE');
    assert.equal(e1.data?.message, 'boom: disk on fire');
    assert.equal(e1.data?.node, 'b');
    const e2 = await rejectsWithCode(a.messenger.request('b', 'reject', null), 'FND_ERR_REMOTE');
    assert.equal(e2.data?.message, 'async failure');
    // The node keeps serving after its handler threw.
    b.messenger.handle('ok', () => 'fine');
    assert.equal(await a.messenger.request('b', 'ok', null), 'fine');
  });

  it('no reply within the timeout rejects with FND_ERR_REQUEST_TIMEOUT, on the manual clock', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('never', never);
    const r = track(a.messenger.request('b', 'never', 1, { timeout: 1000 }));
    await net.settle();
    await clock.tickAsync(999);
    assert.equal(r.result.state, 'pending', 'not before the timeout');
    await clock.tickAsync(1);
    const err = rejectedWith(r, 'FND_ERR_REQUEST_TIMEOUT', 'request');
    assert.equal(err.data?.timeout, 1000);
    assert.equal(a.messenger.inFlight, 0);
  });

  it("a request started from a timed-out request's failure callback (a retry) gets its whole timeout", async () => {
    const { nodes, net, clock } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('never', never);
    const failures: Array<{ sentAt: number; failedAt: number; code: unknown }> = [];
    const start = () => {
      const sentAt = clock.now();
      a.messenger.requestTo(
        'b',
        'never',
        null,
        { timeout: 1000 },
        {
          replied() {},
          failed(err) {
            failures.push({ sentAt, failedAt: clock.now(), code: (err as FoundationError).code });
            if (failures.length < 3) start(); // retried at once, inside the expiry
          },
        },
      );
    };
    start();
    await net.settle();
    await clock.tickAsync(5000);
    assert.deepEqual(
      failures.map((f) => [f.failedAt - f.sentAt, f.code]),
      [
        [1000, 'FND_ERR_REQUEST_TIMEOUT'],
        [1000, 'FND_ERR_REQUEST_TIMEOUT'],
        [1000, 'FND_ERR_REQUEST_TIMEOUT'],
      ],
    );
    assert.equal(a.messenger.inFlight, 0);
  });

  it('timeoutError makes the error a timed-out request rejects with, from its subject (and is not called otherwise)', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('never', never);
    b.messenger.handle('echo', (p) => p);
    let made = 0;
    const timeoutError = (subject: unknown, ms: number) => {
      made++;
      return new FoundationError('FND_ERR_CALL_TIMEOUT', `made by the caller: ${subject}, ${ms}`);
    };
    const opts = { timeout: 1000, timeoutError };
    assert.equal(await a.messenger.request('b', 'echo', 7, { ...opts, subject: 'one' }), 7);
    const r = track(a.messenger.request('b', 'never', 1, { ...opts, subject: 'two' }));
    await net.settle();
    await clock.tickAsync(1000);
    const err = rejectedWith(r, 'FND_ERR_CALL_TIMEOUT', 'request');
    assert.ok(err.message.startsWith('made by the caller: two, 1000'), err.message);
    assert.equal(made, 1, 'made once, for the request that timed out');
  });

  it('a deferred handler answers once through its ReplySink: later answers are dropped, a throw before answering is the error', async () => {
    const { nodes, net } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const held: ReplySink[] = [];
    b.messenger.handleDeferred('later', (payload, from, reply) => {
      if (payload === 'throw') throw new FoundationError('FND_ERR_NOPROC', 'no such thing');
      if (payload === 'answer-then-throw') {
        reply.reply(true, 'first');
        throw new Error('ignored: already answered');
      }
      held.push(reply);
      assert.equal(from, 'a');
    });
    const r1 = track(a.messenger.request('b', 'later', 1));
    const r2 = track(a.messenger.request('b', 'later', 2));
    await net.settle();
    assert.equal(held.length, 2);
    assert.equal(r1.result.state, 'pending', 'no answer until the sink is called');
    held[1]!.reply(true, 'two');
    held[0]!.reply(false, new FoundationError('FND_ERR_MAILBOX_FULL', 'full'));
    held[0]!.reply(true, 'too late');
    held[1]!.reply(true, 'too late');
    await net.settle();
    assert.equal(fulfilled(r2, 'request'), 'two');
    const e1 = rejectedWith(r1, 'FND_ERR_MAILBOX_FULL', 'request');
    assert.equal(e1.data?.node, 'b');
    await rejectsWithCode(a.messenger.request('b', 'later', 'throw'), 'FND_ERR_NOPROC');
    assert.equal(await a.messenger.request('b', 'later', 'answer-then-throw'), 'first');
    assert.equal(a.messenger.inFlight, 0);
  });

  it('the default timeout is requestTimeoutMs', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b'], { requestTimeoutMs: 300 });
    nodes[1]!.messenger.handle('never', never);
    const r = track(nodes[0]!.messenger.request('b', 'never', 1));
    await net.settle();
    await clock.tickAsync(299);
    assert.equal(r.result.state, 'pending');
    await clock.tickAsync(1);
    rejectedWith(r, 'FND_ERR_REQUEST_TIMEOUT');
  });

  it('pending requests reject with FND_ERR_NODE_DOWN as soon as the target leaves (stop)', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b']);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.messenger.handle('never', never);
    const reqs = [1, 2, 3].map((i) =>
      track(a.messenger.request('b', 'never', i, { timeout: 60_000 })),
    );
    await net.settle();
    assert.ok(reqs.every((r) => r.result.state === 'pending'));
    const before = clock.now();
    await b.stop();
    await net.settle();
    assert.equal(clock.now(), before, 'no simulated time passed');
    for (const r of reqs) {
      const err = rejectedWith(r, 'FND_ERR_NODE_DOWN');
      assert.equal(err.data?.node, 'b');
      assert.equal(err.data?.reason, 'left');
    }
    assert.equal(a.members().find((m) => m.name === 'b')?.status, 'left');
    // And now b is no longer a valid target.
    await rejectsWithCode(a.messenger.request('b', 'never', 4), 'FND_ERR_UNKNOWN_NODE');
  });

  it('pending requests reject with FND_ERR_NODE_UNREACHABLE as soon as a crashed target does not answer a re-dial, before the verdict', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b', 'c']);
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    c.messenger.handle('never', never);
    b.messenger.handle('slow-but-fine', never);
    const r = track(a.messenger.request('c', 'never', 1, { timeout: 600_000 }));
    const other = track(a.messenger.request('b', 'slow-but-fine', 1, { timeout: 600_000 }));
    const seen: string[] = [];
    a.on('memberUnreachable', (m) => seen.push(`unreachable ${m.name}`));
    a.on('memberDown', (m) => seen.push(`down ${m.name}`));
    await net.settle();
    const before = clock.now();
    net.crash(c.address);
    await tickUntil(clock, net, () => r.result.state !== 'pending', 'the request to c settles');
    const err = rejectedWith(r, 'FND_ERR_NODE_UNREACHABLE');
    assert.equal(err.data?.node, 'c');
    assert.deepEqual(seen, ['unreachable c'], 'before membership declared c down');
    assert.ok(clock.now() - before < 1000, 'well within the suspicion timeout');
    await rejectsWithCode(a.messenger.request('c', 'never', 2), 'FND_ERR_NODE_UNREACHABLE');
    assert.equal(other.result.state, 'pending', 'requests to other nodes are untouched');
    await tickUntil(clock, net, () => seen.includes('down c'), 'the verdict follows', {
      stepMs: 50,
      maxMs: 20_000,
    });
  });

  it('pending requests reject with FND_ERR_NODE_DOWN when the target is cut off (connections open) and declared down', async () => {
    const { nodes, net, clock } = await cluster(['a', 'b', 'c']);
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    c.messenger.handle('never', never);
    const r = track(a.messenger.request('c', 'never', 1, { timeout: 600_000 }));
    const other = track(a.messenger.request('b', 'slow-but-fine', 1, { timeout: 600_000 }));
    b.messenger.handle('slow-but-fine', never);
    await net.settle();
    // A partition: bytes wait as TCP would retransmit them; nothing closes.
    net.partition([c.address], [a.address, b.address]);
    await net.settle();
    assert.equal(r.result.state, 'pending', 'no connection closed: the detector has to decide');
    await tickUntil(clock, net, () => r.result.state !== 'pending', 'the request to c settles', {
      stepMs: 50,
      maxMs: 20_000,
    });
    const err = rejectedWith(r, 'FND_ERR_NODE_DOWN');
    assert.equal(err.data?.node, 'c');
    assert.equal(err.data?.reason, 'down');
    assert.equal(a.members().find((m) => m.name === 'c')?.status, 'down');
    assert.equal(other.result.state, 'pending', 'requests to other nodes are untouched');
    await tickUntil(
      clock,
      net,
      () => b.members().find((m) => m.name === 'c')?.status === 'down',
      'b sees c down',
    );
  });

  it('a request or send to a node that is not a member fails with FND_ERR_UNKNOWN_NODE', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const a = nodes[0]!;
    await rejectsWithCode(a.messenger.request('nobody', 'x', 1), 'FND_ERR_UNKNOWN_NODE');
    assert.throws(
      () => a.messenger.send('nobody', 'x', 1),
      (e) => {
        assertCoded(e, 'FND_ERR_UNKNOWN_NODE');
        return true;
      },
    );
  });

  it('after stop(), the stopped node refuses new work with FND_ERR_NODE_STOPPED', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const a = nodes[0]!;
    await a.stop();
    await rejectsWithCode(a.messenger.request('b', 'x', 1), 'FND_ERR_NODE_STOPPED');
  });
});
