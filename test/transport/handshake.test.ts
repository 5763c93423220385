// The handshake: both sides learn who the other is when everything matches, and every mismatch
// (secret, cluster, protocol version, duplicate name) makes BOTH sides reject with the same coded
// error. Garbage, truncated or silent peers end in a coded rejection, never in a throw outside
// the promise. Runs on the in-memory network (manual clock) and, for some cases, on real TCP.
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ErrorCode, FoundationError } from '../../src/errors.js';
import type { FoundationNode } from '../../src/node.js';
import { decodeMessage, encode } from '../../src/transport/codec.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame.js';
import {
  helloMessage,
  type Identity,
  negotiateVersion,
  nonce,
  type VersionRange,
} from '../../src/transport/handshake.js';
import { Link, type LinkOptions, type PeerHello } from '../../src/transport/link.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { type ChannelName, MSG, PROTOCOL_MAX } from '../../src/transport/protocol.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import type { RawConnection } from '../../src/transport/types.js';
import type { Clock } from '../../src/util/clock.js';
import { ManualClock, systemClock } from '../../src/util/clock.js';
import { assertCoded, fulfilled, rejectedWith, rejectsWithCode, track } from '../helpers/assert.js';
import { seesAlive, startMemNode, TEST_SECRET, tickUntil, waitUntil } from '../helpers/nodes.js';
import { memListen, record, socketConnection } from '../helpers/raw.js';

const OTHER_SECRET = 'a-different-secret-9876';
const HANDSHAKE_TIMEOUT = 1000;

interface Side {
  name: string;
  cluster?: string;
  secret?: string;
  versions?: VersionRange;
  port?: number;
  encrypt?: boolean;
}

function identity(s: Side): Identity {
  return {
    cluster: s.cluster ?? 'c1',
    name: s.name,
    incarnation: 1_000 + s.name.length,
    address: { host: '127.0.0.1', port: s.port ?? 7000 + s.name.length },
  };
}

function linkOptions(s: Side, clock: Clock): LinkOptions {
  const o: LinkOptions = {
    self: identity(s),
    secret: s.secret ?? TEST_SECRET,
    maxFrameSize: () => 1 << 20,
    encrypt: s.encrypt ?? false,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT,
    clock,
  };
  if (s.versions) o.versions = s.versions;
  return o;
}

type Accept = (hello: PeerHello) => { code: ErrorCode; message: string } | undefined;
const acceptAll: Accept = () => undefined;

/** Runs one handshake on a fresh in-memory network and lets all I/O happen. */
async function memHandshake(
  client: Side,
  server: Side,
  accept: Accept = acceptAll,
  channel: ChannelName = 'default',
) {
  const clock = new ManualClock();
  const network = new InMemoryNetwork(clock);
  let serverLink: ReturnType<typeof track<Link>> | undefined;
  const l = await memListen(network, (conn) => {
    serverLink = track(Link.server(conn, linkOptions(server, clock), accept));
  });
  const conn = await network.transport().connect(l.address, 1000);
  const clientLink = track(Link.client(conn, channel, linkOptions(client, clock)));
  await network.settle();
  assert.ok(serverLink, 'the server accepted a connection');
  return { client: clientLink, server: serverLink, network, clock };
}

async function settle<T>(p: Promise<T>): Promise<PromiseSettledResult<T>> {
  const [r] = await Promise.allSettled([p]);
  return r!;
}

/** Collects decoded messages arriving on a link. */
function inbox(link: Link): unknown[][] {
  const got: unknown[][] = [];
  link.setHandlers({ message: (m) => got.push(m), close: () => {}, drain: () => {} });
  return got;
}

describe('handshake on the in-memory network', () => {
  it('succeeds with the same secret; each side learns the other name, incarnation, address, channel', async () => {
    const { client, server, network } = await memHandshake(
      { name: 'alice', port: 7101 },
      { name: 'bob', port: 7202 },
      acceptAll,
      'bulk',
    );
    const c = fulfilled(client, 'client');
    const s = fulfilled(server, 'server');
    assert.deepEqual(c.peer, {
      name: 'bob',
      incarnation: identity({ name: 'bob' }).incarnation,
      address: { host: '127.0.0.1', port: 7202 },
      channel: 'bulk',
      version: PROTOCOL_MAX,
      encrypted: false,
    });
    assert.deepEqual(s.peer, {
      name: 'alice',
      incarnation: identity({ name: 'alice' }).incarnation,
      address: { host: '127.0.0.1', port: 7101 },
      channel: 'bulk',
      version: PROTOCOL_MAX,
      encrypted: false,
    });
    // The authenticated links carry framed messages both ways.
    const atServer = inbox(s);
    const atClient = inbox(c);
    assert.ok(c.write(encodeFrame(encode([MSG.SEND, 'hi', 1]))));
    assert.ok(s.write(encodeFrame(encode([MSG.SEND, 'back', 2]))));
    await network.settle();
    assert.deepEqual(atServer, [[MSG.SEND, 'hi', 1]]);
    assert.deepEqual(atClient, [[MSG.SEND, 'back', 2]]);
  });

  it('delivers messages sent in the same chunk as the end of the handshake', async () => {
    // The client writes its first message right after resolving; the server resolves on AUTH and
    // must not lose a frame that trails in the same delivery.
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const got: unknown[][] = [];
    const l = await memListen(network, (conn) => {
      Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll).then((link) =>
        link.setHandlers({ message: (m) => got.push(m), close: () => {}, drain: () => {} }),
      );
    });
    const conn = await network.transport().connect(l.address, 1000);
    const link = await Link.client(conn, 'default', linkOptions({ name: 'cli' }, clock));
    for (let i = 0; i < 5; i++) link.write(encodeFrame(encode([MSG.SEND, 'n', i])));
    await network.settle();
    assert.deepEqual(
      got.map((m) => m[2]),
      [0, 1, 2, 3, 4],
    );
  });

  it('wrong secret: both sides reject with FND_ERR_HANDSHAKE_SECRET', async () => {
    const { client, server } = await memHandshake(
      { name: 'alice', secret: TEST_SECRET },
      { name: 'bob', secret: OTHER_SECRET },
    );
    const c = rejectedWith(client, 'FND_ERR_HANDSHAKE_SECRET', 'client');
    const s = rejectedWith(server, 'FND_ERR_HANDSHAKE_SECRET', 'server');
    // The same words on both sides, right from either (the server's says its peer refused).
    assert.match(c.message, /^nodes alice and bob do not share the same cluster secret/);
    assert.match(s.message, /^peer refused: nodes alice and bob do not share the same cluster/);
  });

  it('a client that skips its own checks and answers with a made-up proof is refused by the server: FND_ERR_HANDSHAKE_SECRET', async () => {
    // The server must check AUTH itself: a client without the secret need not check anything.
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    let server: ReturnType<typeof track<Link>> | undefined;
    const l = await memListen(network, (conn) => {
      server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
    });
    const conn = await network.transport().connect(l.address, 1000);
    const got = record(conn);
    conn.write(
      encodeFrame(encode(helloMessage(identity({ name: 'intruder' }), 'control', nonce(), false))),
    );
    await network.settle();
    const [challenge] = new FrameDecoder(4096).push(got.received).map((b) => decodeMessage(b));
    assert.equal(challenge?.[0], MSG.CHALLENGE, 'the server answered HELLO with a CHALLENGE');
    conn.write(encodeFrame(encode([MSG.AUTH, Buffer.alloc(32, 1)])));
    await network.settle();
    rejectedWith(server!, 'FND_ERR_HANDSHAKE_SECRET', 'server');
    const replies = new FrameDecoder(4096).push(got.received).map((b) => decodeMessage(b));
    assert.ok(!replies.some((m) => m[0] === MSG.WELCOME), 'no WELCOME for a made-up proof');
    assert.ok(got.closed, 'the server closed the connection');
  });

  it('the refusal of a wrong cluster does not reveal the cluster the server is in', async () => {
    const { client, server } = await memHandshake(
      { name: 'alice', cluster: 'guess' },
      { name: 'bob', cluster: 'the-real-cluster-name' },
    );
    for (const [side, t] of [
      ['client', client],
      ['server', server],
    ] as const) {
      rejectedWith(t, 'FND_ERR_HANDSHAKE_CLUSTER', side);
      const msg = (t.result as { error: Error }).error.message;
      assert.ok(!msg.includes('the-real-cluster-name'), `${side}: ${msg}`);
    }
  });

  it('property: the handshake succeeds if and only if the secrets are equal', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.boolean(),
        async (s1, s2, same) => {
          const other = same ? s1 : s2;
          const { client, server } = await memHandshake(
            { name: 'a', secret: s1 },
            { name: 'b', secret: other },
          );
          if (s1 === other) {
            fulfilled(client, 'client');
            fulfilled(server, 'server');
          } else {
            rejectedWith(client, 'FND_ERR_HANDSHAKE_SECRET', 'client');
            rejectedWith(server, 'FND_ERR_HANDSHAKE_SECRET', 'server');
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('wrong cluster: both sides reject with FND_ERR_HANDSHAKE_CLUSTER', async () => {
    const { client, server } = await memHandshake(
      { name: 'alice', cluster: 'red' },
      { name: 'bob', cluster: 'blue' },
    );
    rejectedWith(client, 'FND_ERR_HANDSHAKE_CLUSTER', 'client');
    const err = rejectedWith(server, 'FND_ERR_HANDSHAKE_CLUSTER', 'server');
    assert.match(err.message, /red/);
  });

  it('no common protocol version: both sides reject with FND_ERR_HANDSHAKE_VERSION', async () => {
    const { client, server } = await memHandshake(
      { name: 'alice', versions: [2, 3] },
      { name: 'bob', versions: [1, 1] },
    );
    rejectedWith(client, 'FND_ERR_HANDSHAKE_VERSION', 'client');
    rejectedWith(server, 'FND_ERR_HANDSHAKE_VERSION', 'server');
  });

  it('overlapping version ranges agree on the highest common version', async () => {
    const { client, server } = await memHandshake(
      { name: 'alice', versions: [1, 3] },
      { name: 'bob', versions: [2, 5] },
    );
    assert.equal(fulfilled(client).peer.version, 3);
    assert.equal(fulfilled(server).peer.version, 3);
  });

  it('property: versions negotiate iff the ranges overlap, to the highest shared one', () => {
    const range = fc
      .tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }))
      .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as VersionRange);
    fc.assert(
      fc.property(range, range, (ours, theirs) => {
        const v = negotiateVersion(theirs, ours);
        const shared: number[] = [];
        for (let x = ours[0]; x <= ours[1]; x++)
          if (x >= theirs[0] && x <= theirs[1]) shared.push(x);
        assert.equal(v, shared.length ? Math.max(...shared) : undefined);
      }),
    );
  });

  it("duplicate name (the client uses the server's own name): both reject with FND_ERR_HANDSHAKE_DUPLICATE_NAME", async () => {
    const { client, server } = await memHandshake({ name: 'twin' }, { name: 'twin' });
    rejectedWith(client, 'FND_ERR_HANDSHAKE_DUPLICATE_NAME', 'client');
    rejectedWith(server, 'FND_ERR_HANDSHAKE_DUPLICATE_NAME', 'server');
  });

  it('duplicate name refused by the accept callback: both reject with its code', async () => {
    const seen: PeerHello[] = [];
    const { client, server } = await memHandshake(
      { name: 'alice', port: 7333 },
      { name: 'bob' },
      (hello) => {
        seen.push(hello);
        return { code: 'FND_ERR_HANDSHAKE_DUPLICATE_NAME', message: 'alice is already a member' };
      },
    );
    rejectedWith(client, 'FND_ERR_HANDSHAKE_DUPLICATE_NAME', 'client');
    rejectedWith(server, 'FND_ERR_HANDSHAKE_DUPLICATE_NAME', 'server');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.name, 'alice');
    assert.deepEqual(seen[0]!.address, { host: '127.0.0.1', port: 7333 });
  });

  it('a silent client: the server rejects with FND_ERR_HANDSHAKE_TIMEOUT when the clock reaches the deadline', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    let server: ReturnType<typeof track<Link>> | undefined;
    const l = await memListen(network, (conn) => {
      server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
    });
    const raw = record(await network.transport().connect(l.address, 1000));
    await network.settle();
    clock.tick(HANDSHAKE_TIMEOUT - 1);
    await network.settle();
    assert.equal(server!.result.state, 'pending', 'not before the deadline');
    clock.tick(1);
    await network.settle();
    rejectedWith(server!, 'FND_ERR_HANDSHAKE_TIMEOUT', 'server');
    assert.ok(raw.closed, 'the silent connection was closed');
  });

  it('a silent server: the client rejects with FND_ERR_HANDSHAKE_TIMEOUT', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const l = await memListen(network);
    const conn = await network.transport().connect(l.address, 1000);
    const client = track(Link.client(conn, 'control', linkOptions({ name: 'cli' }, clock)));
    const srv = record(l.accepted[0]!);
    await network.settle();
    assert.ok(srv.received.length > 0, 'the client sent its HELLO');
    assert.equal(client.result.state, 'pending');
    clock.tick(HANDSHAKE_TIMEOUT);
    await network.settle();
    rejectedWith(client, 'FND_ERR_HANDSHAKE_TIMEOUT', 'client');
    assert.ok(srv.closed);
  });

  it('a well-framed message that is not a HELLO: FND_ERR_HANDSHAKE_PROTOCOL, and the peer is told why', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    let server: ReturnType<typeof track<Link>> | undefined;
    const l = await memListen(network, (conn) => {
      server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
    });
    const conn = await network.transport().connect(l.address, 1000);
    const raw = record(conn);
    conn.write(encodeFrame(encode([MSG.PING, 1, 'srv'])));
    await network.settle();
    rejectedWith(server!, 'FND_ERR_HANDSHAKE_PROTOCOL', 'server');
    assert.ok(raw.closed);
    const [body] = new FrameDecoder(4096).push(raw.received);
    const msg = decodeMessage(body!);
    assert.equal(msg[0], MSG.HS_ERROR);
    assert.equal(msg[1], 'FND_ERR_HANDSHAKE_PROTOCOL');
  });

  it('an HTTP request sent to a node port is refused with a coded error', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    let server: ReturnType<typeof track<Link>> | undefined;
    const l = await memListen(network, (conn) => {
      server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
    });
    const conn = await network.transport().connect(l.address, 1000);
    const raw = record(conn);
    conn.write(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await network.settle();
    // "GET " read as a length is ~1.2 GB: refused from the header, before buffering anything.
    rejectedWith(server!, 'FND_ERR_FRAME_TOO_LARGE', 'server');
    assert.ok(raw.closed);
  });

  it('property: random bytes from a raw connection end in a coded rejection and a closed connection', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (chunks, hangUp) => {
          const clock = new ManualClock();
          const network = new InMemoryNetwork(clock);
          let server: ReturnType<typeof track<Link>> | undefined;
          const l = await memListen(network, (conn) => {
            server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
          });
          const conn = await network.transport().connect(l.address, 1000);
          const raw = record(conn);
          for (const c of chunks) conn.write(c);
          if (hangUp) conn.end();
          await network.settle();
          // Input that is a valid prefix keeps the server waiting: the deadline settles it.
          if (server!.result.state === 'pending') {
            clock.tick(HANDSHAKE_TIMEOUT);
            await network.settle();
          }
          assert.equal(server!.result.state, 'rejected');
          assertCoded((server!.result as { error: unknown }).error);
          assert.ok(raw.closed, 'the connection was closed');
        },
      ),
      { numRuns: 150 },
    );
  });

  it('property: a HELLO cut short and then hung up is refused with FND_ERR_HANDSHAKE_PROTOCOL (nothing sent: FND_ERR_HANDSHAKE_CLOSED)', async () => {
    const hello = encodeFrame(
      encode(helloMessage(identity({ name: 'cli' }), 'default', nonce(), false)),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: hello.length - 1 }), async (cut) => {
        const clock = new ManualClock();
        const network = new InMemoryNetwork(clock);
        let server: ReturnType<typeof track<Link>> | undefined;
        const l = await memListen(network, (conn) => {
          server = track(Link.server(conn, linkOptions({ name: 'srv' }, clock), acceptAll));
        });
        const conn = await network.transport().connect(l.address, 1000);
        if (cut > 0) conn.write(hello.subarray(0, cut));
        conn.end();
        await network.settle();
        rejectedWith(
          server!,
          cut === 0 ? 'FND_ERR_HANDSHAKE_CLOSED' : 'FND_ERR_HANDSHAKE_PROTOCOL',
          'server',
        );
      }),
      { numRuns: 60 },
    );
  });

  it('property: random bytes answering a client end in a coded rejection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 500 }), async (bytes) => {
        const clock = new ManualClock();
        const network = new InMemoryNetwork(clock);
        const l = await memListen(network, (conn) => {
          record(conn);
          conn.write(bytes);
        });
        const conn = await network.transport().connect(l.address, 1000);
        const client = track(Link.client(conn, 'default', linkOptions({ name: 'cli' }, clock)));
        await network.settle();
        if (client.result.state === 'pending') {
          clock.tick(HANDSHAKE_TIMEOUT);
          await network.settle();
        }
        assert.equal(client.result.state, 'rejected');
        assertCoded((client.result as { error: unknown }).error);
      }),
      { numRuns: 150 },
    );
  });
});

describe('handshake on real TCP (127.0.0.1)', () => {
  const transports: TcpTransport[] = [];
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });

  async function tcpHandshake(client: Side, server: Side) {
    const st = new TcpTransport();
    const ct = new TcpTransport();
    transports.push(st, ct);
    // Settled results are captured at once, so no rejection is ever unhandled while we wait.
    let serverResult: Promise<PromiseSettledResult<Link>> | undefined;
    const address = await st.listen({ host: '127.0.0.1', port: 0 }, (conn) => {
      serverResult = settle(Link.server(conn, linkOptions(server, systemClock), acceptAll));
    });
    const conn = await ct.connect(address, 2000);
    const clientResult = settle(Link.client(conn, 'default', linkOptions(client, systemClock)));
    await waitUntil(() => serverResult !== undefined, 'the server accepted the connection');
    return { client: await clientResult, server: await serverResult! };
  }

  it('succeeds and each side learns the other', async () => {
    const { client, server } = await tcpHandshake(
      { name: 'alice', port: 1111 },
      { name: 'bob', port: 2222 },
    );
    assert.equal(client.status, 'fulfilled');
    assert.equal(server.status, 'fulfilled');
    const c = (client as PromiseFulfilledResult<Link>).value;
    const s = (server as PromiseFulfilledResult<Link>).value;
    assert.equal(c.peer.name, 'bob');
    assert.deepEqual(c.peer.address, { host: '127.0.0.1', port: 2222 });
    assert.equal(s.peer.name, 'alice');
    assert.equal(s.peer.incarnation, identity({ name: 'alice' }).incarnation);
    const got = new Promise<unknown[]>((resolve) =>
      s.setHandlers({ message: resolve, close: () => {}, drain: () => {} }),
    );
    c.write(encodeFrame(encode([MSG.SEND, 'over-tcp', 42])));
    assert.deepEqual(await got, [MSG.SEND, 'over-tcp', 42]);
  });

  it('wrong secret: both sides reject with FND_ERR_HANDSHAKE_SECRET', async () => {
    const { client, server } = await tcpHandshake(
      { name: 'alice', secret: TEST_SECRET },
      { name: 'bob', secret: OTHER_SECRET },
    );
    assert.equal(client.status, 'rejected');
    assert.equal(server.status, 'rejected');
    assertCoded((client as PromiseRejectedResult).reason, 'FND_ERR_HANDSHAKE_SECRET');
    assertCoded((server as PromiseRejectedResult).reason, 'FND_ERR_HANDSHAKE_SECRET');
  });

  it('wrong cluster: both sides reject with FND_ERR_HANDSHAKE_CLUSTER', async () => {
    const { client, server } = await tcpHandshake(
      { name: 'alice', cluster: 'one' },
      { name: 'bob', cluster: 'two' },
    );
    assertCoded((client as PromiseRejectedResult).reason, 'FND_ERR_HANDSHAKE_CLUSTER');
    assertCoded((server as PromiseRejectedResult).reason, 'FND_ERR_HANDSHAKE_CLUSTER');
  });

  it('random bytes from a raw socket: coded rejection, socket closed by the server', async () => {
    const st = new TcpTransport();
    transports.push(st);
    let serverLink: ReturnType<typeof track<Link>> | undefined;
    const address = await st.listen({ host: '127.0.0.1', port: 0 }, (conn) => {
      serverLink = track(Link.server(conn, linkOptions({ name: 'srv' }, systemClock), acceptAll));
    });
    const socket = net.connect(address.port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    // A length prefix far above the 4 KiB handshake limit, then noise.
    const noise = Buffer.alloc(64 * 1024);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) & 0xff;
    noise.writeUInt32BE(0x7fff_ffff, 0);
    socket.write(noise);
    await closed;
    await waitUntil(() => serverLink?.result.state === 'rejected', 'the server rejected');
    rejectedWith(serverLink!, 'FND_ERR_FRAME_TOO_LARGE', 'server');
  });

  it('a raw socket adapter (used by other tests) completes a handshake too', async () => {
    // The adapter in test/helpers/raw.ts is what the backpressure test puts under Link.server.
    const server = net.createServer();
    const serverLink = new Promise<Link>((resolve, reject) =>
      server.on('connection', (s) =>
        Link.server(socketConnection(s), linkOptions({ name: 'srv' }, systemClock), acceptAll).then(
          resolve,
          reject,
        ),
      ),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const ct = new TcpTransport();
    transports.push(ct);
    const { port } = server.address() as net.AddressInfo;
    const conn: RawConnection = await ct.connect({ host: '127.0.0.1', port }, 2000);
    const c = await Link.client(conn, 'default', linkOptions({ name: 'cli' }, systemClock));
    const s = await serverLink;
    assert.equal(c.peer.name, 'srv');
    assert.equal(s.peer.name, 'cli');
    s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('handshake refusals at node level (Foundation.start on the in-memory network)', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  function errors(node: FoundationNode): FoundationError[] {
    const list: FoundationError[] = [];
    node.on('error', (e) => list.push(e));
    return list;
  }

  it('nodes with different secrets never become members and both report FND_ERR_HANDSHAKE_SECRET', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const a = await startMemNode(network, clock, { name: 'a', secret: TEST_SECRET });
    const b = await startMemNode(network, clock, { name: 'b', secret: OTHER_SECRET });
    nodes.push(a, b);
    const ea = errors(a);
    const eb = errors(b);
    await rejectsWithCode(a.join(b.address), 'FND_ERR_HANDSHAKE_SECRET');
    await network.settle();
    await rejectsWithCode(b.join(a.address), 'FND_ERR_HANDSHAKE_SECRET');
    await network.settle();
    await clock.tickAsync(3_000);
    assert.ok(ea.length >= 2 && eb.length >= 2, `errors: a ${ea.length}, b ${eb.length}`);
    for (const e of [...ea, ...eb]) assertCoded(e, 'FND_ERR_HANDSHAKE_SECRET');
    assert.deepEqual(
      a.members().map((m) => m.name),
      ['a'],
    );
    assert.deepEqual(
      b.members().map((m) => m.name),
      ['b'],
    );
  });

  it('static discovery towards a node with another secret keeps failing with FND_ERR_HANDSHAKE_SECRET', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const a = await startMemNode(network, clock, { name: 'a', secret: TEST_SECRET });
    nodes.push(a);
    const ea = errors(a);
    const c = await startMemNode(network, clock, {
      name: 'c',
      secret: OTHER_SECRET,
      discovery: { strategy: 'static', hosts: [a.address], pollingIntervalMs: 500 },
    });
    nodes.push(c);
    const ec = errors(c);
    await tickUntil(clock, network, () => ec.length >= 3 && ea.length >= 3, 'three refused polls');
    for (const e of [...ea, ...ec]) assertCoded(e, 'FND_ERR_HANDSHAKE_SECRET');
    assert.equal(a.members().length, 1);
    assert.equal(c.members().length, 1);
  });

  it('nodes of different clusters report FND_ERR_HANDSHAKE_CLUSTER on both sides', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const a = await startMemNode(network, clock, { name: 'a', cluster: 'red' });
    const b = await startMemNode(network, clock, { name: 'b', cluster: 'blue' });
    nodes.push(a, b);
    const ea = errors(a);
    const eb = errors(b);
    await rejectsWithCode(a.join(b.address), 'FND_ERR_HANDSHAKE_CLUSTER');
    await network.settle();
    assert.deepEqual(
      ea.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_CLUSTER'],
    );
    assert.deepEqual(
      eb.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_CLUSTER'],
    );
    assert.equal(a.members().length, 1);
    assert.equal(b.members().length, 1);
  });

  it('a node joining a node of its own name: FND_ERR_HANDSHAKE_DUPLICATE_NAME on both', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const a = await startMemNode(network, clock, { name: 'same' });
    const b = await startMemNode(network, clock, { name: 'same' });
    nodes.push(a, b);
    const ea = errors(a);
    const eb = errors(b);
    await rejectsWithCode(a.join(b.address), 'FND_ERR_HANDSHAKE_DUPLICATE_NAME');
    await network.settle();
    assert.deepEqual(
      ea.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_DUPLICATE_NAME'],
    );
    assert.deepEqual(
      eb.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_DUPLICATE_NAME'],
    );
  });

  it('a second process using a live member name is refused with FND_ERR_HANDSHAKE_DUPLICATE_NAME', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const a = await startMemNode(network, clock, { name: 'a' });
    const b = await startMemNode(network, clock, { name: 'b' });
    nodes.push(a, b);
    await b.join(a.address);
    await tickUntil(
      clock,
      network,
      () => seesAlive(a, ['b']) && seesAlive(b, ['a']),
      'a and b meshed',
    );
    // Another "b", started later (so with a later incarnation), at another address.
    await clock.tickAsync(5);
    const impostor = await startMemNode(network, clock, { name: 'b' });
    nodes.push(impostor);
    const ea = errors(a);
    const ei = errors(impostor);
    await rejectsWithCode(impostor.join(a.address), 'FND_ERR_HANDSHAKE_DUPLICATE_NAME');
    await network.settle();
    assert.deepEqual(
      ea.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_DUPLICATE_NAME'],
    );
    assert.deepEqual(
      ei.map((e) => e.code),
      ['FND_ERR_HANDSHAKE_DUPLICATE_NAME'],
    );
    const bAtA = a.members().find((m) => m.name === 'b');
    assert.equal(bAtA?.address, b.address, 'a still knows the original b');
    assert.equal(bAtA?.status, 'alive');
  });
});
