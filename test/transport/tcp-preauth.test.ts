// No lock-out before authentication, on real sockets over loopback: a second source address
// (127.0.0.2; Linux routes all of 127.0.0.0/8 to lo) opens 1,000 idle connections to a node, in
// plain TCP and in mutual-TLS mode, while a new node joins from 127.0.0.1 and an existing member
// opens new connections. Also: a socket that sends nothing is dropped at the first-byte deadline.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import type { FoundationError } from '../../src/errors.js';
import { Foundation, type FoundationNode, type FoundationOptions } from '../../src/index.js';
import { DEFAULT_MAX_PENDING_PER_SOURCE } from '../../src/transport/admission.js';
import type { Identity } from '../../src/transport/handshake.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { createPki, type TestCa, type TestPki } from '../helpers/certs.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';

const ATTACKER = '127.0.0.2';

/** The open-file limit this process runs under (children inherit it; `sh` reports it). */
function fdLimit(): number {
  const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
}

/**
 * 1,000 idle sockets, or fewer when the fd limit is tight: each costs this process one fd (plus
 * one on the node's side while it is held), and the nodes need a few hundred more.
 */
function floodSize(): number {
  const n = Math.min(1000, Math.floor(fdLimit() - 400));
  // Fewer than the old total cap (256) would not reproduce the lock-out at all.
  assert.ok(n > 300, `ulimit -n is ${fdLimit()}: too low to hold a meaningful flood`);
  return n;
}

/** Opens `count` sockets from 127.0.0.2 that never send a byte; tracks which the node closed. */
function flood(port: number, count: number) {
  const sockets: net.Socket[] = [];
  let closed = 0;
  for (let i = 0; i < count; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: ATTACKER });
    s.on('error', () => {}); // refused sockets are reset by the node
    s.on('close', () => closed++);
    sockets.push(s);
  }
  return {
    get closed() {
      return closed;
    },
    get open() {
      return sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await waitUntil(() => closed === count, 'every attacker socket closed');
    },
  };
}

describe('no lock-out before authentication (real sockets, 127.0.0.2 floods 127.0.0.1)', () => {
  let pki: TestPki;
  let ca: TestCa;
  const nodes: FoundationNode[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  before(() => {
    pki = createPki();
    ca = pki.ca('preauth-ca');
  });
  after(() => pki.cleanup());
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function start(name: string, tls: boolean, extra: FoundationOptions = {}) {
    const node = await Foundation.start({
      name,
      secret: TEST_SECRET,
      logLevel: 'silent',
      discovery: nullDiscovery(),
      host: '127.0.0.1',
      ...(tls ? { tls: { ...ca.issue(name), ca: ca.cert } } : {}),
      ...extra,
    });
    nodes.push(node);
    return node;
  }

  for (const mode of ['plain TCP', 'mutual TLS'] as const) {
    it(`${mode}: 1,000 idle sockets from one source refuse neither a join nor an existing member's new connections`, async () => {
      const tls = mode === 'mutual TLS';
      // Deadlines far beyond the test, so only the per-source cap can let anyone else in (and on
      // the old code, the flood keeps the slots it took for the whole test).
      const patient = { firstByteTimeoutMs: 120_000, handshakeTimeoutMs: 120_000 };
      const a = await start('pa', tls, patient);
      const b = await start('pb', tls);
      const errors: FoundationError[] = [];
      a.on('error', (e) => errors.push(e));
      a.messenger.handle('echo', (p) => p);
      await b.join(a.address);
      await waitUntil(() => fullyMeshed([a, b]), 'a and b meshed');

      const count = floodSize();
      const port = Number(a.address.split(':').at(-1));
      const attack = flood(port, count);
      cleanups.push(attack.stop);
      // The node keeps at most its per-source share and closes the rest at once.
      await waitUntil(
        () => attack.closed >= count - DEFAULT_MAX_PENDING_PER_SOURCE,
        `the node closes all but ${DEFAULT_MAX_PENDING_PER_SOURCE} of ${count} idle sockets from ${ATTACKER}`,
        60_000,
      );

      // A new node joins from 127.0.0.1 ...
      const c = await start('pc', tls);
      assert.equal(await c.join(a.address), 'pa');
      await waitUntil(() => fullyMeshed([a, b, c]), 'a, b and c meshed', 30_000);
      // ... and an existing member opens new connections (default and bulk channels).
      assert.equal(await b.messenger.request('pa', 'echo', 'small'), 'small');
      const big = Buffer.alloc(256 * 1024, 7);
      assert.deepEqual(await b.messenger.request('pa', 'echo', big), big);

      // All the while the flood held its share: it was not simply timed out.
      assert.equal(attack.closed, count - DEFAULT_MAX_PENDING_PER_SOURCE);
      assert.equal(attack.open, DEFAULT_MAX_PENDING_PER_SOURCE);
      // Silent sockets are not refusals worth an error event. (Only the attacker's count: test
      // files run two at a time, and a node of another file that re-dials a port this node was
      // given after its first owner stopped is refused here, with an error event of its own.)
      assert.deepEqual(
        errors
          .filter((e) => String(e.data?.remote).startsWith(`${ATTACKER}:`))
          .map((e) => `${e.code} ${String(e.data?.remote)}`),
        [],
      );
    });
  }

  it('a socket that sends nothing is dropped at the first-byte deadline; one that spoke is not', async () => {
    const identity: Identity = {
      cluster: 'fb',
      name: 'srv',
      incarnation: 1,
      address: { host: '127.0.0.1', port: 1 },
    };
    const errors: string[] = [];
    const mgr = testPeerManager(
      new TcpTransport({ firstByteTimeoutMs: 1000 }),
      identity,
      { handshakeTimeoutMs: 120_000 },
      { handshakeError: (e) => errors.push(e.code) },
    );
    cleanups.push(() => mgr.stop());
    const { port } = await mgr.listen({ host: '127.0.0.1', port: 0 });
    const open = (speak: boolean) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: ATTACKER });
      s.on('error', () => {});
      let closed = false;
      s.on('close', () => {
        closed = true;
      });
      // One byte of a frame header: the handshake has started, but is far from done.
      if (speak) s.once('connect', () => s.write(Buffer.from([0])));
      cleanups.push(async () => void s.destroy());
      return { socket: s, closed: () => closed };
    };
    const silent = open(false);
    const spoke = open(true);
    await waitUntil(() => mgr.admission.pending === 2, 'both sockets admitted');
    await waitUntil(silent.closed, 'the silent socket is dropped');
    assert.equal(spoke.closed(), false, 'the socket that spoke waits for its handshake deadline');
    await waitUntil(() => mgr.admission.pending === 1, 'the dropped socket released its slot');
    assert.deepEqual(errors, [], 'a silent socket is dropped quietly, not reported as an error');
  });

  it("the node's own stop, during a peer's handshake, is not reported as the peer's error", async () => {
    const identity: Identity = {
      cluster: 'fb',
      name: 'srv',
      incarnation: 1,
      address: { host: '127.0.0.1', port: 1 },
    };
    const errors: string[] = [];
    const mgr = testPeerManager(
      new TcpTransport(),
      identity,
      {},
      { handshakeError: (e) => errors.push(e.code) },
    );
    const { port } = await mgr.listen({ host: '127.0.0.1', port: 0 });
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    cleanups.push(async () => void s.destroy());
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0, 0, 0, 40, 0x9c])); // the start of a HELLO frame; the rest never comes
    await waitUntil(() => mgr.admission.pending === 1, 'the socket admitted');
    await new Promise((r) => setTimeout(r, 200)); // its bytes read: the handshake is under way
    await mgr.stop();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(errors, []);
  });
});
