// The attack from the security review, over real TCP: something without the secret gets a member
// to dial it (a forged discovery record is enough), relays the handshake byte for byte to another
// member, and then tampers with what follows: injects its own frames, drops, reorders or replays
// records. Each attempt must close that one connection with FND_ERR_RECORD_AUTH, and nothing of
// the tampered stream may reach membership or the messenger.
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { Foundation } from '../../src/index.js';
import { encode } from '../../src/transport/codec.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame.js';
import { MSG } from '../../src/transport/protocol.js';
import { RECORD_HEADER, RECORD_TAG } from '../../src/transport/record.js';
import { captureLogger } from '../helpers/loopback.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';

type Tamper = 'inject-record' | 'inject-plain-frame' | 'drop' | 'reorder' | 'replay';

/**
 * A man in the middle on 127.0.0.1: forwards everything from B back to A untouched, and the
 * dialler's (A's) stream to B untouched up to and including its two handshake frames (HELLO, AUTH)
 * and the first `after` records; then tampers once, as `tamper` says.
 */
async function relay(target: string, tamper: Tamper, after = 3) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.split(':').at(-1))];
  const sockets = new Set<net.Socket>();
  let tampered = false;
  const server = net.createServer((fromA) => {
    const toB = net.connect(port, host);
    sockets.add(fromA).add(toB);
    fromA.on('error', () => {});
    toB.on('error', () => {});
    toB.on('data', (c) => fromA.write(c));
    toB.on('close', () => fromA.destroy());
    fromA.on('close', () => toB.destroy());
    // Cut A's stream into handshake frames, then records, and forward each unit whole.
    let buf = Buffer.alloc(0);
    let frames = 0;
    let records = 0;
    let held: Buffer | undefined;
    fromA.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        if (frames < 2) {
          if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
          const n = 4 + buf.readUInt32BE(0);
          toB.write(buf.subarray(0, n));
          buf = buf.subarray(n);
          frames++;
          continue;
        }
        if (buf.length < RECORD_HEADER) return;
        const n = RECORD_HEADER + buf.readUInt32BE(0) + RECORD_TAG;
        if (buf.length < n) return;
        const rec = buf.subarray(0, n);
        buf = buf.subarray(n);
        records++;
        if (tampered || records <= after) {
          toB.write(rec);
          continue;
        }
        if (held) {
          // reorder: the later record first, then the held one.
          toB.write(rec);
          toB.write(held);
          tampered = true;
          continue;
        }
        switch (tamper) {
          case 'inject-record': {
            // A well-formed record holding frames the attacker wants delivered; it cannot know the
            // key, so the tag is made up.
            const frames = Buffer.concat([
              encodeFrame(encode([MSG.SEND, 'probe', 'injected'])),
              encodeFrame(encode([MSG.DOWN, 'relay-a', Number.MAX_SAFE_INTEGER, 'relay-b'])),
            ]);
            const h = Buffer.alloc(RECORD_HEADER);
            h.writeUInt32BE(frames.length, 0);
            toB.write(Buffer.concat([h, frames, Buffer.alloc(RECORD_TAG, 7)]));
            toB.write(rec);
            break;
          }
          case 'inject-plain-frame':
            // What worked against protocol 1: a bare frame after the handshake.
            toB.write(encodeFrame(encode([MSG.SEND, 'probe', 'injected'])));
            toB.write(rec);
            break;
          case 'drop':
            break;
          case 'replay':
            toB.write(rec);
            toB.write(rec);
            break;
          case 'reorder':
            held = rec;
            continue;
        }
        tampered = true;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    get tampered() {
      return tampered;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('a relay that passed the handshake through cannot tamper with what follows (real TCP)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const tamper of [
    'inject-record',
    'inject-plain-frame',
    'drop',
    'reorder',
    'replay',
  ] as Tamper[]) {
    it(`${tamper}: the connection is closed with FND_ERR_RECORD_AUTH; nothing tampered is delivered`, async () => {
      const capture = captureLogger();
      const start = (name: string, logger?: typeof capture.logger) =>
        Foundation.start({
          name,
          cluster: 'relay',
          secret: TEST_SECRET,
          discovery: nullDiscovery(),
          host: '127.0.0.1',
          ...(logger ? { logger } : { logLevel: 'silent' as const }),
        });
      const b = await start('relay-b', capture.logger);
      cleanups.push(() => b.stop());
      const a = await start('relay-a');
      cleanups.push(() => a.stop());
      const downs: string[] = [];
      b.on('memberDown', (m) => downs.push(m.name));
      const got: unknown[] = [];
      b.messenger.on('probe', (p) => got.push(p));

      const mitm = await relay(b.address, tamper);
      cleanups.push(() => mitm.close());
      // A dials the relay believing it is some node; the handshake it completes is B's.
      assert.equal(await a.join(mitm.address), 'relay-b');
      await waitUntil(() => fullyMeshed([a, b]), 'a and b see each other');

      // Numbered messages on the relayed control connection, one record each.
      let sent = 0;
      const closedByB = () =>
        capture.lines.some((l) => l.code === 'FND_ERR_RECORD_AUTH' && l.peer === 'relay-a');
      while (!closedByB() && sent < 400) {
        a.messenger.send('relay-b', 'probe', sent++, { channel: 'control' });
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(mitm.tampered, 'the relay tampered');
      assert.ok(closedByB(), 'B closed the relayed connection with FND_ERR_RECORD_AUTH');

      // A re-dials B directly; later messages arrive again, so delivery resumed after the close.
      const resumeFrom = sent;
      await waitUntil(() => {
        a.messenger.send('relay-b', 'probe', sent++, { channel: 'control' });
        return got.some((p) => typeof p === 'number' && p >= resumeFrom);
      }, 'messages flow again over a direct connection');

      assert.ok(!got.includes('injected'), 'the injected frame never reached the messenger');
      const numbers = got.filter((p): p is number => typeof p === 'number');
      assert.deepEqual(
        numbers,
        [...numbers].sort((x, y) => x - y),
        'nothing was delivered out of order',
      );
      assert.equal(new Set(numbers).size, numbers.length, 'nothing was delivered twice');
      assert.deepEqual(downs, [], 'membership never took a DOWN from the relay');
      assert.ok(
        b.members().some((m) => m.name === 'relay-a' && m.status === 'alive'),
        'B still sees A alive',
      );
    });
  }
});

describe('handshake frames cannot be altered in flight', () => {
  it('a relay that changes a byte of HELLO breaks both proofs: FND_ERR_HANDSHAKE_SECRET', async () => {
    const start = (name: string) =>
      Foundation.start({
        name,
        cluster: 'relay',
        secret: TEST_SECRET,
        discovery: nullDiscovery(),
        host: '127.0.0.1',
        logLevel: 'silent',
      });
    const b = await start('hs-b');
    const a = await start('hs-a');
    const codes: string[] = [];
    a.on('error', (e) => codes.push(e.code));
    const port = Number(b.address.split(':').at(-1));
    const server = net.createServer((fromA) => {
      const toB = net.connect(port, '127.0.0.1');
      fromA.on('error', () => {});
      toB.on('error', () => {});
      let first = true;
      fromA.on('data', (c: Buffer) => {
        if (first) {
          first = false;
          const body = new FrameDecoder(4096).push(c)[0]!;
          const copy = Buffer.from(c);
          // Flip a bit of the client nonce (bin8 of 16 bytes: 0xc4 0x10): HELLO still parses.
          const at = body.indexOf(Buffer.from([0xc4, 0x10]));
          assert.ok(at > 0);
          copy[4 + at + 2 + 5]! ^= 0x01;
          toB.write(copy);
        } else toB.write(c);
      });
      toB.on('data', (c) => fromA.write(c));
      toB.on('close', () => fromA.destroy());
      fromA.on('close', () => toB.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      await assert.rejects(a.join(addr));
      assert.ok(
        codes.includes('FND_ERR_HANDSHAKE_SECRET'),
        `A refused the altered handshake (${codes.join(', ')})`,
      );
      assert.ok(!b.members().some((m) => m.name === 'hs-a'), 'B never admitted A');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await a.stop();
      await b.stop();
    }
  });
});
