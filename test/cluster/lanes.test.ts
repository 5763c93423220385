// Ordered lanes: within a lane, messages are delivered in send order whatever connection each took;
// messages that stay on `default` go plain (no numbers); a large one is numbered behind a marker,
// and the lane's small ones after it are numbered for the window; a late predecessor releases the
// messages that waited for it; a predecessor lost with its connection is given up after the gap
// timeout; other lanes never wait; numbers never repeat, even after a lane was forgotten.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LaneReceiver, LaneSender } from '../../src/cluster/lanes.js';
import { ManualClock } from '../../src/util/clock.js';

const LIMITS = { maxHeld: 8, gapTimeoutMs: 1000, windowMs: 60_000 };

/** One message as it goes on the wire: on which connection, plain or numbered, and what it is. */
interface Wire {
  conn: 'default' | 'bulk';
  plain: boolean;
  lane: number;
  seq: number;
  dep: number;
  item: string;
}

function setup() {
  const clock = new ManualClock();
  const got: string[] = [];
  // Markers take their place in their lane and are delivered to nothing, as the messenger does.
  const rx = new LaneReceiver<string>(
    clock,
    (from, item) => {
      if (item !== 'marker') got.push(`${from}:${item}`);
    },
    LIMITS,
  );
  const tx = new LaneSender(clock, LIMITS);
  /** What the messenger puts on the wire for one message of `lane` to 'b' on `conn`. */
  const send = (lane: number, conn: 'default' | 'bulk', item: string): Wire[] => {
    if (!tx.next('b', lane, conn, clock.now()))
      return [{ conn, plain: true, lane, seq: 0, dep: 0, item }];
    const out: Wire[] = [];
    if (tx.markerSeq !== 0) {
      out.push({
        conn: 'default',
        plain: false,
        lane,
        seq: tx.markerSeq,
        dep: tx.markerDep,
        item: 'marker',
      });
    }
    out.push({ conn, plain: false, lane, seq: tx.seq, dep: tx.dep, item });
    return out;
  };
  /** What the messenger does with one arriving message: plain ones are delivered at once. */
  const arrive = (m: Wire) => {
    if (m.plain) got.push(`b:${m.item}`);
    else rx.receive('b', m.lane, m.seq, m.dep, m.item);
  };
  return { clock, got, rx, tx, send, arrive };
}

describe('ordered lanes', () => {
  it('property: whatever the two connections interleave, each lane is delivered in send order, nothing lost or doubled', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            lane: fc.integer({ min: 0, max: 3 }),
            large: fc.boolean(),
            // Time between sends, within the window in total: a message is delivered within it.
            wait: fc.integer({ min: 0, max: 1000 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.infiniteStream(fc.nat()),
        (msgs, keys) => {
          const { clock, got, send, arrive } = setup();
          const conn = { default: [] as Wire[], bulk: [] as Wire[] };
          const sent: Wire[] = [];
          msgs.forEach((m, i) => {
            clock.tick(m.wait);
            for (const w of send(m.lane, m.large ? 'bulk' : 'default', `${m.lane}/${i}`)) {
              conn[w.conn].push(w);
              if (w.item !== 'marker') sent.push(w);
            }
          });
          // Each connection keeps its order; which one is read next is random.
          const it = keys[Symbol.iterator]();
          while (conn.default.length || conn.bulk.length) {
            const c =
              conn.default.length && (!conn.bulk.length || it.next().value % 2)
                ? 'default'
                : 'bulk';
            arrive(conn[c].shift()!);
          }
          for (const lane of [0, 1, 2, 3]) {
            assert.deepEqual(
              got.filter((g) => g.startsWith(`b:${lane}/`)),
              sent.filter((m) => m.lane === lane).map((m) => `b:${m.item}`),
            );
          }
          assert.equal(got.length, sent.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('small messages go plain; a large one is numbered behind a marker; small ones after it are numbered for the window, then plain again', () => {
    const { clock, send } = setup();
    const [a] = send(1, 'default', 'a');
    assert.equal(a!.plain, true, 'nothing to order across connections: no numbers');
    const [marker, big] = send(1, 'bulk', 'big');
    assert.equal(marker!.item, 'marker');
    assert.equal(marker!.conn, 'default', 'the marker goes behind the plain messages');
    assert.equal(big!.dep, marker!.seq, 'the large one waits for the marker');
    const [b] = send(1, 'default', 'b');
    assert.equal(b!.plain, false);
    assert.equal(b!.dep, big!.seq, 'a small one after it waits for it');
    const [big2] = send(1, 'bulk', 'big2');
    assert.equal(big2!.item, 'big2', 'no plain message since the last numbered one: no marker');
    assert.equal(big2!.dep, b!.seq);
    clock.tick(LIMITS.windowMs);
    const [c] = send(1, 'default', 'c');
    assert.equal(c!.plain, true, 'the large ones were sent a window ago: plain again');
    const [marker2, big3] = send(1, 'bulk', 'big3');
    assert.equal(marker2!.item, 'marker');
    assert.equal(marker2!.dep, 0, 'its lane predecessor is older than the window');
    assert.equal(big3!.dep, marker2!.seq);
    assert.deepEqual(send(2, 'default', 'other')[0]!.plain, true, 'another lane is not affected');
  });

  it('a small message that overtook a large one waits for it, and so does the next; another lane does not wait', () => {
    const { got, send, arrive } = setup();
    const [marker, large] = send(7, 'bulk', 'large');
    const [small] = send(7, 'default', 'small');
    const [small2] = send(7, 'default', 'small2');
    const [other] = send(9, 'default', 'other');
    for (const m of [marker!, small!, small2!, other!]) arrive(m);
    assert.deepEqual(got, ['b:other'], 'the small ones wait; the other lane does not');
    arrive(large!);
    assert.deepEqual(got, ['b:other', 'b:large', 'b:small', 'b:small2']);
  });

  it('a large message waits for the plain messages sent before it (behind its marker)', () => {
    const { got, send, arrive } = setup();
    const [first] = send(3, 'default', 'first');
    const [marker, large] = send(3, 'bulk', 'large');
    arrive(large!);
    assert.deepEqual(got, [], 'it overtook the marker: it waits');
    arrive(first!);
    arrive(marker!);
    assert.deepEqual(got, ['b:first', 'b:large']);
  });

  it('a predecessor lost with its connection is given up after the gap timeout; if it still comes, it is stale', () => {
    const { clock, got, rx, send, arrive } = setup();
    const [marker, lost] = send(1, 'bulk', 'lost');
    const [after] = send(1, 'default', 'after');
    arrive(marker!);
    arrive(after!);
    clock.tick(5000);
    assert.deepEqual(got, [], 'no connection closed: it waits');
    rx.connectionLost('b');
    clock.tick(999);
    assert.deepEqual(got, []);
    clock.tick(1);
    assert.deepEqual(got, ['b:after']);
    arrive(lost!);
    assert.deepEqual(got, ['b:after'], 'delivering it now would break the order');
    assert.equal(rx.stats.stale, 1);
    assert.equal(rx.stats.skipped, 1);
  });

  it('a lane that began waiting after a connection closed still waits the whole gap timeout from then', () => {
    const { clock, got, rx, send, arrive } = setup();
    // Lane 1 waits for a message lost with the connection that closes at t=0.
    const [m1, lost] = send(1, 'bulk', 'lost');
    const [after1] = send(1, 'default', 'after lost');
    arrive(m1!);
    arrive(after1!);
    rx.connectionLost('b');
    clock.tick(900);
    // Lane 2's large message is still on its way (its connection is up) when a later one arrives.
    const [m2, large] = send(2, 'bulk', 'large');
    const [after2] = send(2, 'default', 'after large');
    arrive(m2!);
    arrive(after2!);
    clock.tick(100);
    assert.deepEqual(got, ['b:after lost'], 'lane 1 gave up at the gap timeout; lane 2 waits on');
    clock.tick(500);
    arrive(large!);
    assert.deepEqual(got, ['b:after lost', 'b:large', 'b:after large'], 'lane 2 kept its order');
    arrive(lost!);
    assert.equal(rx.stats.stale, 1, 'only the lost one, arriving after its lane went on');
    assert.equal(rx.stats.skipped, 1);
  });

  it('with no connection closed, a lane waits at most windowMs for a predecessor that never comes', () => {
    const { clock, got, send, arrive } = setup();
    const [marker] = send(1, 'bulk', 'never arrives');
    arrive(marker!);
    for (const m of send(1, 'default', 'after')) arrive(m);
    clock.tick(LIMITS.windowMs - 1);
    assert.deepEqual(got, []);
    clock.tick(1);
    assert.deepEqual(got, ['b:after']);
  });

  it('all the lanes of one node together hold at most maxHeld messages', () => {
    const { rx, got, send, arrive } = setup();
    // Each lane's first message names a predecessor that never comes (a member holding lanes).
    for (let lane = 1; lane <= LIMITS.maxHeld * 3; lane++) {
      send(lane, 'bulk', 'never sent');
      for (const m of send(lane, 'default', `lane ${lane}`)) arrive(m);
    }
    const held = LIMITS.maxHeld * 3 - got.length;
    assert.ok(held <= LIMITS.maxHeld, `${held} messages held`);
    assert.ok(rx.stats.skipped >= LIMITS.maxHeld * 2, 'the lanes over the limit gave up waiting');
  });

  it('a lane holds at most maxHeld messages, then gives up waiting', () => {
    const { got, send, arrive } = setup();
    const [marker] = send(1, 'bulk', 'never arrives');
    arrive(marker!);
    for (let i = 0; i < LIMITS.maxHeld + 1; i++)
      for (const m of send(1, 'default', String(i))) arrive(m);
    assert.equal(got.length, LIMITS.maxHeld + 1);
    assert.deepEqual(got.slice(0, 3), ['b:0', 'b:1', 'b:2']);
  });

  it('a refused send is taken back: the lane goes on as before it', () => {
    const { tx, send } = setup();
    const [, big] = send(1, 'bulk', 'big');
    assert.equal(tx.next('b', 1, 'default', 0), true);
    tx.undo('b', 1);
    const [next] = send(1, 'default', 'next');
    assert.equal(
      next!.dep,
      big!.seq,
      'it waits for the last message that went, not the refused one',
    );
    // A lane whose first numbered message was refused has no state left: a marker comes again.
    assert.equal(tx.next('b', 5, 'bulk', 0), true);
    tx.undo('b', 5);
    assert.equal(send(5, 'bulk', 'x')[0]!.item, 'marker');
  });

  it('a lane idle for longer than the window, or closed, goes on without a number a receiver would drop as stale', () => {
    const { clock, got, rx, tx, send, arrive } = setup();
    for (const m of send(1, 'bulk', 'x')) arrive(m);
    for (const idle of [90_000, 150_000, 30_000]) {
      clock.tick(idle); // the sender forgets the lane after one window, the receiver after two
      for (const m of send(1, 'bulk', `after ${idle} ms`)) arrive(m);
    }
    tx.close(1);
    for (const m of send(1, 'bulk', 'after close')) arrive(m);
    assert.deepEqual(got, [
      'b:x',
      'b:after 90000 ms',
      'b:after 150000 ms',
      'b:after 30000 ms',
      'b:after close',
    ]);
    assert.equal(rx.stats.stale, 0);
  });

  it('numbers only grow: a sender that restarted (a new process) starts above its predecessor', () => {
    const clock = new ManualClock();
    const first = new LaneSender(clock, LIMITS);
    let last = 0;
    for (let i = 0; i < 500; i++) {
      first.next('b', 1, 'bulk', clock.now());
      last = first.seq;
    }
    clock.tick(1); // the restart takes at least a millisecond
    const second = new LaneSender(clock, LIMITS);
    second.next('b', 1, 'bulk', clock.now());
    assert.ok(second.markerSeq > last, `${second.markerSeq} > ${last}`);
  });

  it('a node that went away starts afresh on both sides', () => {
    const { got, rx, tx, send, arrive } = setup();
    for (const m of send(1, 'bulk', 'x')) arrive(m);
    tx.forget('b');
    rx.forget('b');
    for (const m of send(1, 'bulk', 'y')) arrive(m);
    assert.deepEqual(got, ['b:x', 'b:y']);
  });
});
