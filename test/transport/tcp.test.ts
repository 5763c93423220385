// The TCP transport on 127.0.0.1: mutual TLS (a cluster forms and serves requests only between
// nodes holding certificates of the cluster CA), garbage from a raw socket closes only that
// connection, and a peer that stops reading makes sends fail with FND_ERR_BACKPRESSURE once the
// bounded outbound queue is full, instead of growing memory.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import type { FoundationError } from '../../src/errors.js';
import { Foundation, type FoundationNode, type FoundationOptions } from '../../src/index.js';
import { decodeMessage, encode } from '../../src/transport/codec.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame.js';
import { helloMessage, type Identity, nonce } from '../../src/transport/handshake.js';
import { Link, type LinkOptions } from '../../src/transport/link.js';
import type { PeerManager } from '../../src/transport/peers.js';
import { MSG } from '../../src/transport/protocol.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { systemClock } from '../../src/util/clock.js';
import { assertCoded } from '../helpers/assert.js';
import { createPki, type TestCa, type TestPki } from '../helpers/certs.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';
import { socketConnection } from '../helpers/raw.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A PeerManager over real TCP on 127.0.0.1, authenticating only, with short backoffs. */
function tcpPeers(
  self: Identity,
  maxQueueBytes: number,
  message: (msg: unknown[]) => void = () => {},
): PeerManager {
  return testPeerManager(
    new TcpTransport(),
    self,
    { maxQueueBytes },
    { message: (_from, _channel, msg) => message(msg) },
  );
}
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startTcpNode(opts: FoundationOptions): Promise<FoundationNode> {
  return Foundation.start({
    secret: TEST_SECRET,
    logLevel: 'silent',
    discovery: nullDiscovery(),
    host: '127.0.0.1',
    ...opts,
  });
}

const names = (n: FoundationNode) => n.members().map((m) => m.name);

describe('mutual TLS between nodes', () => {
  let pki: TestPki;
  let clusterCa: TestCa;
  let rogueCa: TestCa;
  const nodes: FoundationNode[] = [];

  before(() => {
    pki = createPki();
    clusterCa = pki.ca('cluster-ca');
    rogueCa = pki.ca('rogue-ca');
  });
  after(() => pki.cleanup());
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function tlsNode(name: string, ca: TestCa, trust: TestCa[] = [ca]) {
    const node = await startTcpNode({
      name,
      tls: { ...ca.issue(name), ca: trust.map((c) => c.cert) },
    });
    nodes.push(node);
    return node;
  }

  it('two nodes with certificates of the cluster CA form a cluster and serve requests', async () => {
    const a = await tlsNode('tls-a', clusterCa);
    const b = await tlsNode('tls-b', clusterCa);
    a.messenger.handle('hello', (p, from) => `hello ${String(p)} from ${from}`);
    a.messenger.handle('hash', (p) => sha(p as Uint8Array));
    assert.equal(await b.join(a.address), 'tls-a');
    await waitUntil(() => fullyMeshed([a, b]), 'a and b see each other alive');
    assert.equal(await b.messenger.request('tls-a', 'hello', 'b'), 'hello b from tls-b');
    // A payload large enough for the bulk channel crosses TLS intact.
    const big = randomBytes(300_000);
    assert.equal(await b.messenger.request('tls-a', 'hash', big), sha(big));
  });

  it('the port speaks TLS only: a plain-TCP Foundation HELLO gets no answer and is closed', async () => {
    const a = await tlsNode('tls-a', clusterCa);
    const port = Number(a.address.split(':').at(-1));
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    const id: Identity = {
      cluster: 'default',
      name: 'plain',
      incarnation: 1,
      address: { host: '127.0.0.1', port: 1 },
    };
    socket.write(encodeFrame(encode(helloMessage(id, 'control', nonce(), false))));
    await closed;
    // Whatever came back (a TLS alert, if anything) is not a Foundation CHALLENGE frame.
    const back = Buffer.concat(received);
    let challenge = false;
    try {
      for (const body of new FrameDecoder(4096).push(back))
        if (decodeMessage(body)[0] === MSG.CHALLENGE) challenge = true;
    } catch {
      // not framed at all: certainly no CHALLENGE
    }
    assert.equal(challenge, false);
    assert.deepEqual(names(a), ['tls-a']);
  });

  it('a node whose certificate comes from another CA cannot join, in either direction', async () => {
    const a = await tlsNode('tls-a', clusterCa);
    // The intruder even trusts the cluster CA; only its own certificate is foreign.
    const intruder = await tlsNode('intruder', rogueCa, [clusterCa, rogueCa]);
    await assert.rejects(intruder.join(a.address));
    await assert.rejects(a.join(intruder.address));
    // Nothing arrives later either (no reconnect loop can make it a member).
    await delay(300);
    assert.deepEqual(names(a), ['tls-a']);
    assert.deepEqual(names(intruder), ['intruder']);
    // The cluster still works for legitimate nodes.
    const b = await tlsNode('tls-b', clusterCa);
    await b.join(a.address);
    await waitUntil(() => fullyMeshed([a, b]), 'a and b meshed');
    assert.ok(!names(a).includes('intruder'));
  });
});

describe('garbage on a node port (TCP)', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('1 MB of random bytes from a raw socket closes that socket only; the node keeps serving', async () => {
    const a = await startTcpNode({ name: 'ga' });
    const b = await startTcpNode({ name: 'gb' });
    nodes.push(a, b);
    const errors: FoundationError[] = [];
    a.on('error', (e) => errors.push(e));
    a.messenger.handle('ping', () => 'pong');
    await b.join(a.address);
    await waitUntil(() => fullyMeshed([a, b]), 'a and b meshed');

    const port = Number(a.address.split(':').at(-1));
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.write(randomBytes(1024 * 1024));
    await closed;
    await waitUntil(() => errors.length > 0, 'the node reports the refused connection');
    for (const e of errors) assertCoded(e);

    assert.equal(await b.messenger.request('ga', 'ping', null), 'pong');
    assert.ok(fullyMeshed([a, b]), 'membership is unaffected');
  });
});

describe('backpressure (PeerManager over TCP)', () => {
  const MAX_QUEUE = 1024 * 1024;
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function identity(name: string, port = 1): Identity {
    return { cluster: 'bp', name, incarnation: 1, address: { host: '127.0.0.1', port } };
  }

  function sender(): PeerManager {
    const mgr = tcpPeers(identity('sender'), MAX_QUEUE);
    cleanups.push(() => mgr.stop());
    return mgr;
  }

  /**
   * A peer that completes the real handshake, then stops reading its socket: the kernel buffers
   * on both ends fill, the sender's socket.write() starts returning false, and from then on
   * nothing leaves the sender's queue until the peer reads again.
   */
  async function stalledPeer() {
    const linkOpts: LinkOptions = {
      self: identity('reader'),
      secret: TEST_SECRET,
      maxFrameSize: () => 1 << 20,
      encrypt: false,
      handshakeTimeoutMs: 5000,
      clock: systemClock,
    };
    const received: number[] = [];
    let socket: net.Socket | undefined;
    const server = net.createServer((s) => {
      Link.server(socketConnection(s), linkOpts, () => undefined).then(
        (link) => {
          s.pause();
          socket = s;
          link.setHandlers({
            message: (m) => {
              if (m[1] === 'k') received.push(m[2] as number);
            },
            close: () => {},
            drain: () => {},
          });
        },
        () => s.destroy(),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          socket?.destroy();
          server.close(() => r());
        }),
    );
    const { port } = server.address() as net.AddressInfo;
    return {
      address: { host: '127.0.0.1', port },
      received,
      connected: () => socket !== undefined,
      resume: () => socket!.resume(),
    };
  }

  it('a peer that never reads: sends fail with FND_ERR_BACKPRESSURE and the queue stays bounded', async () => {
    const peer = await stalledPeer();
    const mgr = sender();
    mgr.learn('reader', peer.address, 1);
    // Connect first (a small message), so what follows measures the socket, not the dial.
    mgr.send('reader', 'default', encode([MSG.SEND, 'warm-up', 0]));
    await waitUntil(
      () => peer.connected() && mgr.queuedBytes('reader') === 0,
      'link up and flushed',
    );

    const payload = Buffer.alloc(64 * 1024, 0xab);
    const messageBytes = encode([MSG.SEND, 'k', 0, payload]).length + 4;
    let accepted = 0;
    let refusal: unknown;
    let maxQueued = 0;
    // 4096 × 64 KiB = 256 MiB: far more than loopback socket buffers can hold.
    for (let i = 0; i < 4096 && refusal === undefined; i++) {
      try {
        mgr.send('reader', 'default', encode([MSG.SEND, 'k', i, payload]));
        accepted++;
      } catch (err) {
        refusal = err;
      }
      maxQueued = Math.max(maxQueued, mgr.queuedBytes('reader'));
      // Let the once-per-tick flush hand the queue to the socket now and then.
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    assertCoded(refusal, 'FND_ERR_BACKPRESSURE');
    assert.equal(refusal.data?.peer, 'reader');
    assert.ok(maxQueued <= MAX_QUEUE, `queue peaked at ${maxQueued} bytes`);
    assert.ok(
      accepted * messageBytes > MAX_QUEUE,
      'the socket took data until the peer stopped reading, then the queue filled',
    );

    // Still refused while the peer does not read: memory does not grow.
    const queued = mgr.queuedBytes('reader');
    for (let i = 0; i < 20; i++) {
      assert.throws(
        () => mgr.send('reader', 'default', encode([MSG.SEND, 'k', -1, payload])),
        (e) => (e as FoundationError).code === 'FND_ERR_BACKPRESSURE',
      );
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(mgr.queuedBytes('reader'), queued);

    // The peer reads again: everything accepted arrives, in order, and sends are accepted again.
    peer.resume();
    await waitUntil(() => peer.received.length >= accepted, 'the accepted messages arrive');
    assert.deepEqual(
      peer.received,
      Array.from({ length: accepted }, (_, i) => i),
    );
    await waitUntil(() => mgr.queuedBytes('reader') === 0, 'the queue drains');
    mgr.send('reader', 'default', encode([MSG.SEND, 'k', accepted, payload]));
    await waitUntil(() => peer.received.length === accepted + 1, 'a new send goes through');
  });

  it('a peer that cannot be reached: the queue fills to the bound and sends are refused', async () => {
    // A port that was just closed: every dial is refused, so nothing ever leaves the queue.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((r) => probe.close(() => r()));
    const mgr = sender();
    mgr.learn('gone', { host: '127.0.0.1', port }, 1);
    const body = encode([MSG.SEND, 'k', 0, Buffer.alloc(100 * 1024)]);
    let accepted = 0;
    let refusal: unknown;
    for (let i = 0; i < 100 && refusal === undefined; i++) {
      try {
        mgr.send('gone', 'default', body);
        accepted++;
      } catch (err) {
        refusal = err;
      }
    }
    assertCoded(refusal, 'FND_ERR_BACKPRESSURE');
    assert.equal(accepted, Math.floor(MAX_QUEUE / (body.length + 4)));
    assert.ok(mgr.queuedBytes('gone') <= MAX_QUEUE);
  });
});

describe('disconnect (PeerManager over TCP)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function manager(name: string, received: unknown[][]): PeerManager {
    const self = { cluster: 'dc', name, incarnation: 1, address: { host: '127.0.0.1', port: 1 } };
    const mgr = tcpPeers(self, 1 << 20, (msg) => received.push(msg));
    cleanups.push(() => mgr.stop());
    return mgr;
  }

  it("closes the peer's own connections to this node too: what it wrote on them after that is never delivered", async () => {
    const atA: unknown[][] = [];
    const a = manager('a', atA);
    const b = manager('b', []);
    const address = await a.listen({ host: '127.0.0.1', port: 0 });
    b.learn('a', address, 1);
    b.send('a', 'default', encode([30, 'k', 1]));
    await waitUntil(() => atA.length === 1, 'the first message to arrive');
    // a declares b down (membership calls disconnect); b has not heard yet and writes again on
    // the connection it dialled, as a cut-off node's kernel retransmits what it wrote before.
    a.disconnect('b');
    b.send('a', 'default', encode([30, 'k', 2]));
    await delay(300);
    assert.deepEqual(
      atA.map((m) => m[2]),
      [1],
      'nothing written on the old connection after the disconnect is delivered',
    );
  });
});

describe('TcpTransport: ending a connection', () => {
  it('leaves no timer behind once the socket closed', async () => {
    const t = new TcpTransport();
    const pending = new Set<unknown>();
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    try {
      const addr = await t.listen({ host: '127.0.0.1', port: 0 }, (conn) => {
        conn.setHandlers({ data: () => {}, drain: () => {}, close: () => {} });
        conn.end(); // the other side ends too: the socket closes at once
      });
      const conn = await t.connect(addr, 5000);
      const closed = new Promise<void>((resolve) =>
        conn.setHandlers({ data: () => {}, drain: () => {}, close: () => resolve() }),
      );
      // Counts the timers started meanwhile and not cleared (the transport's end() starts one).
      globalThis.setTimeout = ((fn: () => void, ms?: number) => {
        const h = realSet(() => {
          pending.delete(h);
          fn();
        }, ms);
        pending.add(h);
        return h;
      }) as typeof setTimeout;
      globalThis.clearTimeout = ((h: NodeJS.Timeout) => {
        pending.delete(h);
        realClear(h);
      }) as typeof clearTimeout;
      conn.end();
      assert.equal(pending.size, 1, 'end() armed its destroy-if-stuck timer');
      await closed;
      assert.equal(pending.size, 0, 'cleared when the socket closed');
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
      await t.close();
    }
  });
});
