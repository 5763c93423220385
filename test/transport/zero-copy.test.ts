// Large binary payloads are sent without being copied: `encodeParts` splits a message whose last
// field is a large binary into a small encoded head and the payload itself, and the outbound queue
// hands that very buffer to the socket. What goes on the wire must stay byte for byte what msgpackr
// encodes, in order per channel, with the payload's bytes counted against the queue bound.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { Foundation, type FoundationNode } from '../../src/index.js';
import {
  decodeMessage,
  encode,
  encodeParts,
  encodeSimple,
  encodeTransient,
  LARGE_BINARY,
  type SplitBody,
  widenTransient,
} from '../../src/transport/codec.js';
import { FrameDecoder } from '../../src/transport/frame.js';
import type { Identity } from '../../src/transport/handshake.js';
import { Link, type LinkOptions } from '../../src/transport/link.js';
import type { PeerManager } from '../../src/transport/peers.js';
import { type ChannelName, MSG } from '../../src/transport/protocol.js';
import { RECORD_HEADER, RECORD_TAG } from '../../src/transport/record.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import type { Transport } from '../../src/transport/types.js';
import { systemClock } from '../../src/util/clock.js';
import { assertCoded } from '../helpers/assert.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';
import { socketConnection } from '../helpers/raw.js';

// msgpackr with the codec's options: the reference encoding.
const reference = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
});
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/**
 * The frame stream a client sent after its handshake (HELLO and AUTH frames), with the records
 * opened. Records are authenticated, not encrypted, by default, so their payloads are readable.
 */
function frameStream(raw: Buffer): Buffer {
  let frames = 0;
  let off = new FrameDecoder(4096).each(raw, () => ++frames < 2);
  const parts: Buffer[] = [];
  while (off + RECORD_HEADER <= raw.length) {
    const len = raw.readUInt32BE(off);
    parts.push(raw.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len));
    off += RECORD_HEADER + len + RECORD_TAG;
  }
  return Buffer.concat(parts);
}
/** A message with its binaries (fields, and elements of its last field) replaced by their hashes. */
const hashBinaries = (m: unknown[]): unknown[] =>
  m.map((v) =>
    v instanceof Uint8Array
      ? sha(v)
      : Array.isArray(v)
        ? v.map((x) => (x instanceof Uint8Array ? sha(x) : x))
        : v,
  );
/** How many bytes of the written pieces are views of `big`'s own memory. */
function viewedBytes(written: Uint8Array[], big: Uint8Array): number {
  let n = 0;
  for (const w of written)
    if (
      w.buffer === big.buffer &&
      w.byteOffset >= big.byteOffset &&
      w.byteOffset + w.length <= big.byteOffset + big.length
    )
      n += w.length;
  return n;
}
const joined = (b: Uint8Array | SplitBody) =>
  b instanceof Uint8Array
    ? Buffer.from(b)
    : Buffer.concat([b.head, b.tail, b.after ?? Buffer.alloc(0)]);

/** A Uint8Array (not a Buffer) viewing the middle of a larger ArrayBuffer. */
function offsetView(n: number): Uint8Array {
  const backing = randomBytes(n + 100);
  return new Uint8Array(backing.buffer, backing.byteOffset + 37, n);
}

describe('encodeParts', () => {
  it('splits a large trailing binary off without copying it; head + tail are msgpackr bytes', () => {
    const messages: unknown[][] = [
      [MSG.REQUEST, 7, 'blob', randomBytes(LARGE_BINARY)],
      [MSG.SEND, 'kind', randomBytes(1 << 20)],
      [MSG.RESPONSE, 2 ** 40, true, offsetView(300_000)],
      [MSG.SEND, { nested: ['x', 1.5, null] }, 'é', -3, Buffer.alloc(70_000, 1)],
    ];
    for (const msg of messages) {
      const payload = msg.at(-1) as Uint8Array;
      const body = encodeParts(msg);
      assert.ok(!(body instanceof Uint8Array), 'a large trailing binary gives a SplitBody');
      assert.equal(body.tail, payload, 'the tail is the caller buffer itself, not a copy');
      assert.ok(body.head.length < 64, `the head is small (${body.head.length} bytes)`);
      const expected = reference.pack(msg);
      assert.equal(body.byteLength, expected.length);
      assert.ok(joined(body).equals(expected), 'head + tail equal msgpackr encoding');
      assert.ok(encode(msg).equals(expected), 'encode() joins them into the same bytes');
      assert.deepEqual(
        decodeMessage(joined(body)),
        msg.slice(0, -1).concat([Buffer.from(payload)]),
      );
    }
  });

  it('returns one buffer, equal to msgpackr, for everything else', () => {
    const messages: unknown[] = [
      [MSG.SEND, 'k', randomBytes(LARGE_BINARY - 1)], // just below the threshold
      [MSG.SEND, randomBytes(LARGE_BINARY), 'k'], // large, but not the last field
      [MSG.SEND, 'k', { data: randomBytes(LARGE_BINARY) }], // nested, not a field of the message
      [randomBytes(LARGE_BINARY)], // nothing before it: not a message with a tail
      [MSG.SEND, 'k', 'small'],
    ];
    for (const msg of messages) {
      const body = encodeParts(msg);
      assert.ok(body instanceof Uint8Array);
      assert.ok(Buffer.from(body).equals(reference.pack(msg)));
    }
  });

  it('encodeTransient: scratch bytes the next encode reuses; a large body gets bytes of its own', () => {
    const small = [MSG.SEND, 'k', { text: 'x'.repeat(100) }];
    // Copied: msgpackr's buffer is shared by every Packr, the reference one included.
    const expected = Buffer.from(reference.pack(small));
    const first = encodeTransient(small);
    assert.ok(first instanceof Uint8Array);
    assert.ok(Buffer.from(first).equals(expected));
    const second = encodeTransient([MSG.SEND, 'other', 'x'.repeat(200)]);
    assert.ok(second instanceof Uint8Array);
    assert.equal(first.buffer, second.buffer, 'both are views of the same scratch buffer');
    assert.equal(first.byteOffset, second.byteOffset, 'written at the same place');

    const large = [MSG.SEND, 'k', { data: randomBytes(LARGE_BINARY) }];
    const own = encodeTransient(large);
    assert.ok(own instanceof Uint8Array);
    encodeTransient(small);
    encodeParts(large);
    assert.ok(Buffer.from(own).equals(reference.pack(large)), 'a large body is not overwritten');
  });

  it('a trailing binary (last field, or last element of a last array field) of any size is split off by encodeTransient, of 64 KiB or more by encodeParts: msgpackr bytes', () => {
    for (const n of [0, 1, 255, 256, 65_535, LARGE_BINARY, LARGE_BINARY + 3]) {
      const bin = n === 255 ? offsetView(n) : randomBytes(n);
      for (const msg of [
        [MSG.RESPONSE, 7, true, bin],
        [MSG.REQUEST, 8, 'svc', ['echo.echo', 5000, bin]],
        [MSG.REQUEST, 9, 'svc', [bin]],
        [MSG.REQUEST, 10, 'svc', [...Array.from({ length: 20 }, (_, i) => i * 1000), bin]],
      ]) {
        const expected = Buffer.from(reference.pack(msg));
        const t = encodeTransient(msg);
        assert.ok(!(t instanceof Uint8Array), `transient, ${n} B: split`);
        assert.equal(t.tail, bin, 'the tail is the caller buffer itself');
        assert.equal(t.byteLength, expected.length);
        assert.ok(joined(t).equals(expected), `transient, ${n} B: msgpackr bytes`);
        const parts = encodeParts(msg);
        assert.equal(parts instanceof Uint8Array, n < LARGE_BINARY, `encodeParts, ${n} B`);
        assert.ok(joined(parts).equals(expected), `encodeParts, ${n} B: msgpackr bytes`);
      }
    }
    // The caller's arrays are not changed on the way.
    const args = ['echo.echo', 5000, randomBytes(10)];
    const msg = [MSG.REQUEST, 1, 'svc', args];
    encodeTransient(msg);
    assert.ok(args[2] instanceof Uint8Array && msg[3] === args);
    // Deeper, or followed by more than two fields, is not a trailing binary.
    for (const m of [
      [MSG.SEND, 'k', [[randomBytes(10)]]],
      [MSG.SEND, 'k', [randomBytes(10), 1, 2, 3]],
    ])
      assert.ok(encodeTransient(m) instanceof Uint8Array);
  });

  it("a binary followed by up to two simple fields in the last field (an actor call's [to, msg, caller]) is split off with them as `after`; simple fields before it are written without msgpackr: msgpackr bytes", () => {
    const simple: unknown[] = [
      null,
      true,
      false,
      0,
      0x7f,
      0x80,
      0xff,
      0x100,
      0xffff,
      0x10000,
      0xffffffff,
      -1,
      -0x20,
      -0x21,
      -0x80,
      -0x81,
      -0x8000,
      -0x8001,
      -0x80000000,
      // Every other number is a float64 for msgpackr, integers beyond 32 bits too.
      1.5,
      -0.25,
      2 ** 32,
      2 ** 40,
      Number.MAX_SAFE_INTEGER,
      -(2 ** 31) - 1,
      Number.POSITIVE_INFINITY,
      Number.NaN,
      '',
      'n1@127.0.0.1',
      'x'.repeat(31),
      'x'.repeat(32),
      'y'.repeat(255),
      'z'.repeat(256),
      'é✓ 𝄞',
      'é'.repeat(20), // 20 characters, 40 bytes: the header follows the byte length
      ['node-b@127.0.0.1', 5],
      ['node-b@127.0.0.1', 0xffffffff],
      [],
      [[1, 'a'], null],
    ];
    for (const n of [0, 100, 255, 256, LARGE_BINARY]) {
      const bin = n === 255 ? offsetView(n) : randomBytes(n);
      const msgs: unknown[][] = [];
      for (const v of simple) {
        msgs.push([MSG.REQUEST_LANE, 'actor:call', 3, 11, 0, 42, [12, bin, v]]);
        // Simple fields before the binary are written by hand too (handHead): the same bytes.
        msgs.push([MSG.REQUEST_LANE, v, 3, 11, 0, 42, [v, bin, null]]);
      }
      msgs.push([MSG.SEND, 'actor:call', ['svc', bin, ['n', 1], 'ctx']]);
      for (const msg of msgs) {
        const expected = Buffer.from(reference.pack(msg));
        const t = encodeTransient(msg);
        const what = `${n} B, ${JSON.stringify(msg.at(-1), (_k, v) => (v?.type === 'Buffer' ? 'bin' : v))}`;
        assert.ok(!(t instanceof Uint8Array), `transient, ${what}: split`);
        assert.equal(t.tail, bin, 'the tail is the caller buffer itself');
        assert.ok(t.after !== undefined && t.after.length > 0, 'the fields after it');
        assert.equal(t.byteLength, expected.length);
        assert.ok(joined(t).equals(expected), `transient, ${what}: msgpackr bytes`);
        const parts = encodeParts(msg);
        assert.equal(parts instanceof Uint8Array, n < LARGE_BINARY, `encodeParts, ${what}`);
        assert.ok(joined(parts).equals(expected), `encodeParts, ${what}: msgpackr bytes`);
        assert.ok(encode(msg).equals(expected), `encode, ${what}: msgpackr bytes`);
      }
    }
    // Anything else after the binary (a map, a long or deep value, a second binary) leaves the
    // message to msgpackr, whole: still msgpackr's bytes.
    const bin = randomBytes(LARGE_BINARY);
    for (const v of [
      { traceparent: 'x' },
      'w'.repeat(2000),
      [[['deep']]],
      Array.from({ length: 16 }, () => 1),
      undefined,
    ]) {
      const msg = [MSG.REQUEST_LANE, 'actor:call', 3, 11, 0, 42, [12, bin, v]];
      const expected = Buffer.from(reference.pack(msg));
      for (const body of [encodeTransient(msg), encodeParts(msg)]) {
        assert.ok(body instanceof Uint8Array, `not split: ${JSON.stringify(v)}`);
        assert.ok(Buffer.from(body).equals(expected));
      }
    }
    // The last binary is the one split off; one after it is part of `after` only if simple (it is not).
    const two = [MSG.SEND, 'k', [randomBytes(10), randomBytes(20)]];
    const t = encodeTransient(two);
    assert.ok(!(t instanceof Uint8Array) && t.tail === (two[2] as Uint8Array[])[1]);
    assert.ok(joined(t).equals(reference.pack(two)));
  });

  it('widenTransient: a message widened by fields before its payload reuses the encoded payload; msgpackr bytes', () => {
    const bin = randomBytes(100);
    const payloads: unknown[] = [
      { text: 'x'.repeat(100), n: [1, 2.5] }, // one buffer
      { data: randomBytes(LARGE_BINARY) }, // one large buffer of its own
      bin, // split
      randomBytes(LARGE_BINARY), // split, large
      [5, bin, ['n1@127.0.0.1', 3]], // an actor call: split, with fields after the binary
    ];
    for (const payload of payloads) {
      for (const [msg, wider] of [
        [
          [MSG.SEND, 'actor:send', payload],
          [MSG.SEND_LANE, 'actor:send', 7, 2 ** 40 + 3, 2 ** 40 + 1, payload],
        ],
        [
          [MSG.REQUEST, 12, 'actor:call', payload],
          [MSG.REQUEST_LANE, 12, 'actor:call', 0, 5, 0, payload],
        ],
        // A field that is not simple: encoded again, whole, still the right bytes.
        [
          [MSG.REQUEST, 12, 'k', payload],
          [MSG.REQUEST_LANE, 12, 'k', { not: 'simple' }, 5, 0, payload],
        ],
      ] as unknown[][][]) {
        const plain = encodeTransient(msg!);
        const body = widenTransient(plain, msg!, wider!);
        assert.ok(joined(body).equals(reference.pack(wider)), 'msgpackr bytes');
        assert.equal(body.byteLength, joined(body).length);
      }
    }
    // One large buffer: the payload's bytes are not copied again.
    const msg = [MSG.SEND, 'k', { data: randomBytes(LARGE_BINARY) }];
    const plain = encodeTransient(msg) as Uint8Array;
    const body = widenTransient(plain, msg, [MSG.SEND_LANE, 'k', 1, 2, 1, msg[2]]);
    assert.ok(!(body instanceof Uint8Array) && body.tail.buffer === plain.buffer);
  });

  it('encodeSimple: a message of simple fields in a buffer of its own, leaving scratch bytes as they are; undefined for anything else', () => {
    const marker = [MSG.SEND_LANE, 'lane:marker', 4, 1_764_000_000_000_000, 0, null];
    // Copied first: msgpackr's buffer is shared by every Packr, the reference one included.
    const expected = Buffer.from(reference.pack(marker));
    const body = encodeTransient([MSG.REQUEST, 3, 'k', { a: 1 }]) as Uint8Array;
    const before = Buffer.from(body);
    const own = encodeSimple(marker);
    assert.ok(own?.equals(expected));
    assert.ok(Buffer.from(body).equals(before), 'the transient encoding is untouched');
    assert.equal(encodeSimple([MSG.SEND, 'k', { a: 1 }]), undefined);
  });

  it('an unencodable leading field is FND_ERR_ENCODE, as with encode()', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(
      () => encodeParts([MSG.SEND, circular, randomBytes(LARGE_BINARY)]),
      (e) => (e as { code?: string }).code === 'FND_ERR_ENCODE',
    );
  });

  it("leaves the caller's arrays as they were, frozen ones included, and after a failed encode", () => {
    const bin = randomBytes(100);
    const ctx = ['trace', 7];
    const cases: unknown[][] = [
      [MSG.REQUEST_LANE, 'actor:call', 3, 11, 0, 42, [12, bin, ['n', 1], ctx]],
      [MSG.REQUEST, 9, 'echo', bin],
      Object.freeze([MSG.REQUEST, 9, 'echo', bin]) as unknown[],
      [MSG.SEND, 'k', Object.freeze([12, bin, null])],
      Object.freeze([MSG.SEND, 'k', Object.freeze([12, bin, null])]) as unknown[],
    ];
    for (const msg of cases) {
      const before = JSON.stringify(msg);
      const last = msg.at(-1);
      const expected = Buffer.from(reference.pack(msg));
      for (const f of [encodeTransient, encodeParts, encode]) {
        assert.ok(joined(f(msg)).equals(expected), `${f.name}: msgpackr bytes`);
        assert.equal(JSON.stringify(msg), before, `${f.name}: the message is unchanged`);
        assert.equal(msg.at(-1), last, `${f.name}: the same last field`);
      }
    }
    // An encode that throws half-way (a field before the binary cannot be encoded) still puts
    // the binary and the fields after it back.
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const inner = [circular, bin, null];
    assert.throws(() => encodeTransient([MSG.SEND, 'k', inner]), /FND_ERR_ENCODE|cannot encode/);
    assert.equal(inner[1], bin);
    assert.equal(inner.length, 3);
  });
});

describe('zero-copy sends over TCP (PeerManager)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const identity = (name: string, port = 1): Identity => ({
    cluster: 'zc',
    name,
    incarnation: 1,
    address: { host: '127.0.0.1', port },
  });

  /** TcpTransport whose connections report every buffer handed to `write`. */
  function recordingTransport(written: Uint8Array[]): Transport {
    const tcp = new TcpTransport();
    return {
      listen: (a, on) => tcp.listen(a, on),
      close: () => tcp.close(),
      async connect(address, timeoutMs) {
        const conn = await tcp.connect(address, timeoutMs);
        const write = conn.write.bind(conn);
        conn.write = (data) => {
          written.push(data);
          return write(data);
        };
        return conn;
      },
    };
  }

  function sender(transport: Transport, maxQueueBytes = 64 << 20): PeerManager {
    const mgr = testPeerManager(transport, identity('sender'), {
      maxFrameSize: 8 << 20,
      maxQueueBytes,
    });
    cleanups.push(() => mgr.stop());
    return mgr;
  }

  /**
   * A peer that completes the real handshake and keeps, per accepted connection (= channel),
   * the raw bytes it received and the messages it decoded.
   */
  async function recordingPeer() {
    const linkOpts: LinkOptions = {
      self: identity('reader'),
      secret: TEST_SECRET,
      maxFrameSize: () => 8 << 20,
      encrypt: false,
      handshakeTimeoutMs: 5000,
      clock: systemClock,
    };
    const conns = new Map<ChannelName, { raw: Buffer[]; messages: unknown[][] }>();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      const raw: Buffer[] = [];
      s.on('data', (c: Buffer) => raw.push(c));
      Link.server(socketConnection(s), linkOpts, () => undefined).then(
        (link) => {
          const messages: unknown[][] = [];
          conns.set(link.peer.channel, { raw, messages });
          link.setHandlers({
            message: (m) => messages.push(m),
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
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const { port } = server.address() as net.AddressInfo;
    return {
      address: { host: '127.0.0.1', port },
      messages: (ch: ChannelName) => conns.get(ch)?.messages ?? [],
      /** The data frame bodies received on `ch`, as raw bytes, handshake frames left out. */
      dataBodies(ch: ChannelName): Buffer[] {
        const decoder = new FrameDecoder(1 << 30);
        const bodies = decoder.push(frameStream(Buffer.concat(conns.get(ch)?.raw ?? [])));
        return bodies.filter((b) => (decodeMessage(b)[0] as number) >= MSG.SEND);
      },
    };
  }

  it('large and small messages arrive in order per channel, as msgpackr bytes; the payload buffer itself is written', async () => {
    const peer = await recordingPeer();
    const written: Uint8Array[] = [];
    const mgr = sender(recordingTransport(written));
    mgr.learn('reader', peer.address, 1);

    const big1 = randomBytes(3 << 20);
    const big2 = offsetView(200_000);
    const big3 = randomBytes(LARGE_BINARY);
    const sent: Record<'default' | 'bulk', unknown[][]> = { default: [], bulk: [] };
    const send = (ch: 'default' | 'bulk', msg: unknown[]) => {
      mgr.send('reader', ch, encodeParts(msg));
      sent[ch].push(msg);
    };
    // One tick: small and large interleaved on both channels (batched into the same flush).
    send('bulk', [MSG.SEND, 's', 0]);
    send('bulk', [MSG.REQUEST, 1, 'blob', big1]);
    send('default', [MSG.SEND, 's', 1]);
    send('bulk', [MSG.SEND, 's', 2]);
    send('bulk', [MSG.SEND, 'blob', big2]);
    send('bulk', [MSG.SEND, 'blob', big3]);
    send('default', [MSG.REQUEST, 2, 'blob', big3]);
    // A large binary followed by a caller: its `after` bytes open the next batch.
    send('default', [MSG.REQUEST, 3, 'actor:call', [7, big1, ['sender', 9]]]);
    send('default', [MSG.SEND, 's', 3]);
    send('bulk', [MSG.SEND, 's', 4]);
    // A later tick, once the connections are up.
    await waitUntil(() => peer.messages('bulk').length === 6, 'first bulk messages arrive');
    send('bulk', [MSG.SEND, 'blob', big2]);
    send('bulk', [MSG.SEND, 's', 5]);
    send('default', [MSG.SEND, 's', 6]);

    for (const ch of ['default', 'bulk'] as const) {
      await waitUntil(
        () => peer.messages(ch).length === sent[ch].length,
        `every ${ch} message arrives`,
      );
      const bodies = peer.dataBodies(ch);
      assert.equal(bodies.length, sent[ch].length);
      sent[ch].forEach((msg, i) => {
        assert.ok(bodies[i]!.equals(reference.pack(msg)), `${ch} frame ${i} is msgpackr's bytes`);
      });
      assert.deepEqual(peer.messages(ch).map(hashBinaries), sent[ch].map(hashBinaries));
    }
    for (const big of [big1, big2, big3])
      assert.ok(
        viewedBytes(written, big) >= big.length,
        'the caller buffer was handed to the socket as it is (in record-sized views), not copied',
      );
  });

  it('transient bodies are copied as they are queued: many sizes, several slabs, large bodies between them, in order', async () => {
    const peer = await recordingPeer();
    const mgr = sender(new TcpTransport());
    mgr.learn('reader', peer.address, 1);
    const sent: unknown[][] = [];
    const send = (msg: unknown[]) => {
      // Each body is a view of msgpackr's scratch bytes, overwritten by the next encode.
      mgr.send('reader', 'default', encodeTransient(msg));
      sent.push(msg);
    };
    const burst = (from: number) => {
      for (let i = 0; i < 300; i++) {
        const n = from + i;
        // 0 B to ~40 KiB: batches cross 32 KiB slabs, and some frames need a slab of their own.
        const size = n % 50 === 7 ? 40_000 : (n * 97) % 3000;
        // Trailing binaries (split off, head and tail copied), and bodies without one.
        send(
          n % 3 === 0
            ? [MSG.SEND, 'k', { n, text: 'x'.repeat(size) }]
            : [MSG.SEND, 'k', n, randomBytes(size)],
        );
        if (n % 100 === 42) send([MSG.SEND, 'k', n, randomBytes(LARGE_BINARY + n)]);
        if (n % 100 === 77) send([MSG.SEND, 'k', n, { nested: randomBytes(LARGE_BINARY) }]);
        // A binary with a caller after it (an actor call): head, tail and `after` copied, or
        // a large tail written as it is, with `after` opening the next batch.
        if (n % 10 === 5)
          send([MSG.SEND, 'k', [n, randomBytes(n % 20 === 5 ? LARGE_BINARY : size), ['me', n]]]);
      }
    };
    burst(0); // queued while the connection is dialled
    await waitUntil(
      () => peer.messages('default').length === sent.length,
      'the first burst arrives',
    );
    burst(300); // queued on a live connection, flushed at the end of the tick
    await waitUntil(() => peer.messages('default').length === sent.length, 'every message arrives');
    const bodies = peer.dataBodies('default');
    assert.equal(bodies.length, sent.length);
    sent.forEach((msg, i) => {
      assert.ok(bodies[i]!.equals(reference.pack(msg)), `frame ${i} is msgpackr's bytes`);
    });
  });

  it("backpressure counts a split body's payload bytes, and maxFrameSize its whole length", async () => {
    // A port that was just closed: dials fail, so everything stays queued.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((r) => probe.close(() => r()));

    const mgr = sender(new TcpTransport(), 1 << 20);
    mgr.learn('gone', { host: '127.0.0.1', port }, 1);
    const body = encodeParts([MSG.SEND, 'blob', randomBytes(600_000)]);
    assert.ok(!(body instanceof Uint8Array));
    mgr.send('gone', 'bulk', body);
    assert.equal(mgr.queuedBytes('gone'), 4 + body.byteLength);
    const err = (() => {
      try {
        mgr.send('gone', 'bulk', encodeParts([MSG.SEND, 'blob', randomBytes(600_000)]));
      } catch (e) {
        return e;
      }
    })();
    assertCoded(err, 'FND_ERR_BACKPRESSURE');
    assert.equal(mgr.queuedBytes('gone'), 4 + body.byteLength);

    const tooBig = encodeParts([MSG.SEND, 'blob', Buffer.alloc((8 << 20) - 8)]);
    assert.ok(!(tooBig instanceof Uint8Array) && tooBig.head.length < 16);
    assert.throws(
      () => mgr.send('gone', 'default', tooBig),
      (e) => (e as { code?: string }).code === 'FND_ERR_FRAME_TOO_LARGE',
    );
  });
});

describe('zero-copy through the messenger (two nodes over TCP)', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('one-way sends mixing large and small payloads on one channel arrive intact and in order', async () => {
    const start = (name: string) =>
      Foundation.start({
        name,
        cluster: 'zc-messenger',
        secret: TEST_SECRET,
        logLevel: 'silent',
        discovery: nullDiscovery(),
        host: '127.0.0.1',
      });
    const a = await start('zc-a');
    nodes.push(a);
    const b = await start('zc-b');
    nodes.push(b);
    await b.join(a.address);
    await waitUntil(() => fullyMeshed([a, b]), 'a and b see each other alive');

    const got: unknown[] = [];
    a.messenger.on('item', (p) => got.push(p instanceof Uint8Array ? sha(p) : p));
    a.messenger.handle('hash', (p) => sha(p as Uint8Array));
    const expected: unknown[] = [];
    for (let i = 0; i < 12; i++) {
      const payload = i % 3 === 1 ? randomBytes(LARGE_BINARY + i * 50_000) : i;
      b.messenger.send('zc-a', 'item', payload, { channel: 'bulk' });
      expected.push(payload instanceof Uint8Array ? sha(payload) : payload);
    }
    const big = randomBytes(2 << 20);
    assert.equal(await b.messenger.request('zc-a', 'hash', big), sha(big));
    await waitUntil(() => got.length === expected.length, 'every one-way message arrives');
    assert.deepEqual(got, expected);
  });
});
