// The in-memory network that deterministic tests stand on: in-order delivery, partitions that cut
// both directions and block new connections until healed, crashes that close the other ends,
// seeded (repeatable) loss, and delays on the injected clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { type Address, formatAddress, type RawConnection } from '../../src/transport/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { track } from '../helpers/assert.js';
import { memListen, record } from '../helpers/raw.js';

/** Two listening endpoints (so both have addresses) and a connection from a to b. */
async function pair(network: InMemoryNetwork) {
  const a = await memListen(network);
  const b = await memListen(network);
  const conn = await a.transport.connect(b.address, 1000);
  const atB = b.accepted[0]!;
  return { a, b, conn, atB, aAddr: formatAddress(a.address), bAddr: formatAddress(b.address) };
}

const bytes = (n: number) => Buffer.from([n & 0xff, (n >> 8) & 0xff]);
const numbers = (buf: Buffer) => {
  const out: number[] = [];
  for (let i = 0; i + 1 < buf.length; i += 2) out.push(buf[i]! | (buf[i + 1]! << 8));
  return out;
};

async function connectError(
  from: { transport: { connect(a: Address, t: number): Promise<RawConnection> } },
  to: Address,
) {
  try {
    await from.transport.connect(to, 1000);
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  assert.fail('connect should have failed');
}

describe('InMemoryNetwork', () => {
  it('delivers chunks in order, asynchronously, in both directions', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { conn, atB } = await pair(network);
    const atBRec = record(atB);
    const atARec = record(conn);
    for (let i = 0; i < 1000; i++) conn.write(bytes(i));
    atB.write(bytes(7));
    assert.equal(atBRec.bytes.length, 0, 'nothing is delivered synchronously');
    await network.settle();
    assert.deepEqual(
      numbers(atBRec.received),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.deepEqual(numbers(atARec.received), [7]);
    assert.equal(network.dropped, 0);
  });

  it('copies written data, so a reused buffer does not change what was sent', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { conn, atB } = await pair(network);
    const rec = record(atB);
    const buf = Buffer.from('first');
    conn.write(buf);
    buf.write('xxxxx');
    await network.settle();
    assert.equal(rec.received.toString(), 'first');
  });

  it('refuses a connection to an address nobody listens on', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const a = await memListen(network);
    const err = await connectError(a, { host: '127.0.0.1', port: 1 });
    assert.equal(err.code, 'ECONNREFUSED');
  });

  it('partition holds data both ways (as TCP retransmits it) and blocks new connections; heal delivers and restores both', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { a, b, conn, atB, aAddr, bAddr } = await pair(network);
    const atBRec = record(atB);
    const atARec = record(conn);
    network.partition([aAddr], [bAddr]);
    conn.write(Buffer.from('held-ab,'));
    atB.write(Buffer.from('held-ba,'));
    await network.settle();
    assert.equal(atBRec.bytes.length, 0, 'a → b held');
    assert.equal(atARec.bytes.length, 0, 'b → a held');
    assert.equal(network.dropped, 0);
    assert.equal(atBRec.closed || atARec.closed, false, 'a partition does not close connections');
    const e1 = await connectError(a, b.address);
    const e2 = await connectError(b, a.address);
    assert.equal(e1.code, 'ETIMEDOUT');
    assert.equal(e2.code, 'ETIMEDOUT');

    // A third endpoint outside the partition is unaffected.
    const c = await memListen(network);
    const cb = await c.transport.connect(b.address, 1000);
    const atBFromC = record(b.accepted.at(-1)!);
    cb.write(Buffer.from('via-c'));
    await network.settle();
    assert.equal(atBFromC.received.toString(), 'via-c');

    network.heal();
    conn.write(Buffer.from('after-heal'));
    atB.write(Buffer.from('back'));
    await network.settle();
    assert.equal(atBRec.received.toString(), 'held-ab,after-heal', 'held bytes first, in order');
    assert.equal(atARec.received.toString(), 'held-ba,back');
    const again = await a.transport.connect(b.address, 1000);
    const atB2 = record(b.accepted.at(-1)!);
    again.write(Buffer.from('new'));
    await network.settle();
    assert.equal(atB2.received.toString(), 'new');
  });

  it('crash closes every connection of the crashed endpoint, including the other ends', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { a, b, conn, atB, bAddr } = await pair(network);
    const c = await memListen(network);
    const fromC = await c.transport.connect(b.address, 1000);
    const atA = record(conn);
    const atC = record(fromC);
    const atBRec = record(atB);
    network.crash(bAddr);
    assert.ok(atBRec.closed, 'the crashed side closes at once');
    await network.settle();
    assert.ok(atA.closed, "a's connection to b closed");
    assert.ok(atC.closed, "c's connection to b closed");
    assert.equal(conn.write(Buffer.from('x')), false, 'writes to a closed connection fail');
    const err = await connectError(a, b.address);
    assert.equal(err.code, 'ECONNREFUSED', 'the crashed listener is gone');
  });

  it('end() flushes what was written before closing the other end', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { conn, atB } = await pair(network);
    const rec = record(atB);
    conn.write(Buffer.from('last words'));
    conn.end();
    await network.settle();
    assert.equal(rec.received.toString(), 'last words');
    assert.ok(rec.closed);
  });

  it('drop with a probability is seeded: the same seed drops the same chunks', async () => {
    async function run(seed: number) {
      const network = new InMemoryNetwork(new ManualClock(), seed);
      const { conn, atB, aAddr, bAddr } = await pair(network);
      const rec = record(atB);
      network.drop(aAddr, bAddr, 0.3);
      for (let i = 0; i < 1000; i++) conn.write(bytes(i));
      await network.settle();
      return { dropped: network.dropped, got: numbers(rec.received) };
    }
    const r1 = await run(42);
    const r2 = await run(42);
    assert.equal(r1.dropped, r2.dropped);
    assert.deepEqual(r1.got, r2.got, 'the very same chunks got through');
    assert.equal(r1.got.length + r1.dropped, 1000);
    assert.ok(r1.dropped > 200 && r1.dropped < 400, `~30% dropped, got ${r1.dropped}`);
    // What gets through is still in order.
    assert.deepEqual(
      r1.got,
      [...r1.got].sort((x, y) => x - y),
    );
    const r3 = await run(7);
    assert.notDeepEqual(r3.got, r1.got, 'another seed drops other chunks');
  });

  it('delay holds chunks until the clock reaches it, and keeps them in order', async () => {
    const clock = new ManualClock();
    const network = new InMemoryNetwork(clock);
    const { conn, atB, aAddr, bAddr } = await pair(network);
    const rec = record(atB);
    network.delay(aAddr, bAddr, 50);
    conn.write(bytes(1));
    conn.write(bytes(2));
    await network.settle();
    assert.equal(rec.bytes.length, 0, 'not before the delay');
    clock.tick(49);
    assert.equal(rec.bytes.length, 0);
    clock.tick(1);
    assert.deepEqual(numbers(rec.received), [1, 2]);
  });

  it('closing a transport stops its listener and closes its connections', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const { a, b, conn } = await pair(network);
    const atA = record(conn);
    await b.transport.close();
    await network.settle();
    assert.ok(atA.closed);
    const connect = track(a.transport.connect(b.address, 1000));
    await network.settle();
    assert.equal(connect.result.state, 'rejected');
  });

  it('a closed transport cannot dial', async () => {
    const network = new InMemoryNetwork(new ManualClock());
    const a = await memListen(network);
    const b = await memListen(network);
    await a.transport.close();
    await assert.rejects(a.transport.connect(b.address, 1000), /closed/);
  });
});
