// Ordered lanes: within a lane, messages are delivered in send order whatever connection each took;
// a late predecessor releases the messages that waited for it; a predecessor lost with its
// connection is given up after the gap timeout; other lanes never wait.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LaneReceiver, LaneSender } from '../../src/cluster/lanes.js';
import { ManualClock } from '../../src/util/clock.js';

const LIMITS = { maxHeld: 8, gapTimeoutMs: 1000, windowMs: 60_000 };

function setup() {
  const clock = new ManualClock();
  const got: string[] = [];
  const rx = new LaneReceiver<string>(clock, (from, item) => got.push(`${from}:${item}`), LIMITS);
  const tx = new LaneSender(clock, LIMITS);
  return { clock, got, rx, tx };
}

describe('ordered lanes', () => {
  it('property: whatever the arrival order, each lane is delivered in send order, nothing lost or doubled', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 }),
        fc.infiniteStream(fc.nat()),
        (lanes, keys) => {
          const { got, rx, tx } = setup();
          const sent = lanes.map((lane, i) => {
            const [seq, dep] = tx.next('b', lane);
            return { lane, seq, dep, item: `${lane}/${i}`, key: 0 };
          });
          // Shuffle, but keep messages on the same "connection" in order: a message keeps its
          // predecessor's connection or takes the other one, at random.
          const conn: number[][] = [[], []];
          const it = keys[Symbol.iterator]();
          for (let i = 0; i < sent.length; i++) conn[it.next().value % 2]!.push(i);
          const order: number[] = [];
          while (conn[0]!.length || conn[1]!.length) {
            const c = conn[0]!.length && (!conn[1]!.length || it.next().value % 2) ? 0 : 1;
            order.push(conn[c]!.shift()!);
          }
          for (const i of order) {
            const m = sent[i]!;
            rx.receive('b', m.lane, m.seq, m.dep, m.item);
          }
          for (const lane of [0, 1, 2, 3]) {
            const expect = sent.filter((m) => m.lane === lane).map((m) => `b:${m.item}`);
            assert.deepEqual(
              got.filter((g) => g.startsWith(`b:${lane}/`)),
              expect,
            );
          }
          assert.equal(got.length, sent.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a small message that overtook a large one waits for it; another lane does not wait', () => {
    const { got, rx, tx } = setup();
    const [s1, d1] = tx.next('b', 7); // large, on bulk
    const [s2, d2] = tx.next('b', 7); // small, on default
    const [s3, d3] = tx.next('b', 9); // another sender
    rx.receive('b', 7, s2, d2, 'small');
    rx.receive('b', 9, s3, d3, 'other');
    assert.deepEqual(got, ['b:other'], 'the small one waits; the other lane does not');
    rx.receive('b', 7, s1, d1, 'large');
    assert.deepEqual(got, ['b:other', 'b:large', 'b:small']);
  });

  it('a predecessor lost with its connection is given up after the gap timeout; if it still comes, it is stale', () => {
    const { clock, got, rx, tx } = setup();
    const lost = tx.next('b', 1);
    const next = tx.next('b', 1);
    rx.receive('b', 1, next[0], next[1], 'after');
    clock.tick(5000);
    assert.deepEqual(got, [], 'no connection closed: it waits');
    rx.connectionLost('b');
    clock.tick(999);
    assert.deepEqual(got, []);
    clock.tick(1);
    assert.deepEqual(got, ['b:after']);
    rx.receive('b', 1, lost[0], lost[1], 'lost');
    assert.deepEqual(got, ['b:after'], 'delivering it now would break the order');
    assert.equal(rx.stats.stale, 1);
    assert.equal(rx.stats.skipped, 1);
  });

  it('a lane holds at most maxHeld messages, then gives up waiting', () => {
    const { got, rx, tx } = setup();
    tx.next('b', 1); // never arrives
    for (let i = 0; i < LIMITS.maxHeld + 1; i++) {
      const [seq, dep] = tx.next('b', 1);
      rx.receive('b', 1, seq, dep, String(i));
    }
    assert.equal(got.length, LIMITS.maxHeld + 1);
    assert.deepEqual(got.slice(0, 3), ['b:0', 'b:1', 'b:2']);
  });

  it('a refused send gives its number back; a closed lane starts afresh', () => {
    const { tx } = setup();
    assert.deepEqual(tx.next('b', 1), [1, 0]);
    assert.deepEqual(tx.next('b', 1), [2, 1]);
    tx.undo('b', 1);
    assert.deepEqual(tx.next('b', 1), [2, 1]);
    tx.close(1);
    assert.deepEqual(tx.next('b', 1), [1, 0]);
  });

  it('a node that went away starts afresh on both sides', () => {
    const { got, rx, tx } = setup();
    const [s, d] = tx.next('b', 1);
    rx.receive('b', 1, s, d, 'x');
    tx.forget('b');
    rx.forget('b');
    const [s2, d2] = tx.next('b', 1);
    rx.receive('b', 1, s2, d2, 'y');
    assert.deepEqual(got, ['b:x', 'b:y']);
  });
});
