// The membership wire decoder (src/cluster/wire.ts): every valid message round-trips, every bound
// is enforced, and random garbage (fast-check) never throws and, fed to a running Membership,
// changes nothing: no member, no event, no message sent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Member, Membership, type MembershipIO } from '../../src/cluster/membership.js';
import { PRESETS } from '../../src/cluster/presets.js';
import {
  decodeMembership,
  encodeMembership,
  MAX_NAME_LENGTH,
  MAX_SYNC_ENTRIES,
  type MembershipMessage,
  STATUS_CODES,
} from '../../src/cluster/wire.js';
import type { PeerHello } from '../../src/transport/link.js';
import { MSG } from '../../src/transport/protocol.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

const RUNS = 500;

const name = fc.string({ minLength: 1, maxLength: MAX_NAME_LENGTH });
const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const address = fc.record({
  host: fc.string({ minLength: 1, maxLength: 255 }),
  port: fc.integer({ min: 1, max: 65535 }),
});
const entry = fc.record({
  name,
  incarnation: count,
  status: fc.constantFrom(...STATUS_CODES),
  address,
});
const valid: fc.Arbitrary<MembershipMessage> = fc.oneof(
  fc.record({
    type: fc.constantFrom('ping' as const, 'ping-req' as const),
    seq: count,
    target: name,
  }),
  fc.record({ type: fc.constantFrom('ack' as const, 'nack' as const), seq: count }),
  fc.record({ type: fc.constant('alive' as const), name, incarnation: count, address }),
  fc.record({
    type: fc.constantFrom('suspect' as const, 'down' as const),
    name,
    incarnation: count,
    by: fc.option(name, { nil: undefined }),
  }),
  fc.record({ type: fc.constant('leave' as const), name, incarnation: count }),
  fc.record({
    type: fc.constantFrom('sync' as const, 'sync-reply' as const),
    entries: fc.array(entry, { maxLength: 20 }),
  }),
);

/** Membership message types with random fields: mostly malformed, sometimes valid. */
const garbage: fc.Arbitrary<unknown[]> = fc.oneof(
  fc.tuple(fc.integer({ min: MSG.PING, max: MSG.SYNC_REPLY }), fc.anything(), fc.anything()),
  fc.array(fc.anything(), { maxLength: 6 }).map((rest) => [MSG.PING + (rest.length % 10), ...rest]),
  fc
    .array(fc.array(fc.anything(), { maxLength: 6 }), { maxLength: 5 })
    .map((entries) => [MSG.SYNC, entries]),
  fc.tuple(
    fc.constantFrom(MSG.ALIVE, MSG.SUSPECT, MSG.DOWN, MSG.LEAVE),
    fc.oneof(name, fc.anything()),
    fc.oneof(
      fc.constantFrom(-1, 1.5, Number.NaN, Infinity, 2 ** 53, -0, '7'),
      fc.double(),
      fc.bigInt(),
    ),
    fc.anything(),
    fc.integer(),
  ),
);

describe('membership wire decoder', () => {
  it('every valid message decodes back to itself', () => {
    fc.assert(
      fc.property(valid, (m) => {
        const d = decodeMembership(encodeMembership(m));
        assert.ok(d.ok, JSON.stringify(d));
        assert.deepEqual(d.msg, structuredClone(m));
      }),
      { numRuns: RUNS },
    );
  });

  it('a type field that cannot be turned into a string is refused, not thrown (found by fuzzing)', () => {
    const r = decodeMembership([[{ toString: 0 }]] as unknown as unknown[]);
    assert.equal(r.ok, false);
  });

  it('enforces the bounds: names, incarnations, ports, statuses, entry counts', () => {
    const long = 'x'.repeat(MAX_NAME_LENGTH + 1);
    const refused: unknown[][] = [
      [MSG.PING, 1, long],
      [MSG.PING, -1, 'a'],
      [MSG.ACK, 1.5],
      [MSG.ALIVE, 'a', 2 ** 53, 'h', 1],
      [MSG.ALIVE, 'a', 1, 'h', 0],
      [MSG.ALIVE, 'a', 1, 'h', 65536],
      [MSG.ALIVE, 'a', 1, '', 1],
      [MSG.ALIVE, '', 1, 'h', 1],
      [MSG.SUSPECT, 'a', Number.NaN],
      [MSG.DOWN, 'a', Infinity],
      [MSG.DOWN, 'a', 1, 42],
      [MSG.LEAVE, 'a', '1'],
      [MSG.SYNC, 'not a list'],
      [MSG.SYNC, [['a', 1, 4, 'h', 1]]],
      [
        MSG.SYNC,
        [
          ['a', 1, 0, 'h', 1],
          ['b', 1, 0, 'h'],
        ],
      ],
      [MSG.SYNC, Array.from({ length: MAX_SYNC_ENTRIES + 1 }, (_, i) => [`n${i}`, 1, 0, 'h', 1])],
    ];
    for (const m of refused) {
      const d = decodeMembership(m);
      assert.equal(d.ok, false, `should refuse ${JSON.stringify(m).slice(0, 80)}`);
      assert.equal((d as { unknown?: true }).unknown, undefined);
    }
    // At the bounds: accepted; extra trailing fields are allowed (newer peers may append).
    assert.ok(decodeMembership([MSG.ALIVE, 'x'.repeat(255), 2 ** 53 - 1, 'h', 65535, 'extra']).ok);
    assert.ok(
      decodeMembership([
        MSG.SYNC,
        Array.from({ length: MAX_SYNC_ENTRIES }, (_, i) => [`n${i}`, 1, 0, 'h', 1]),
      ]).ok,
    );
    const unknown = decodeMembership([29, 'future']);
    assert.equal(unknown.ok, false);
    assert.equal((unknown as { unknown?: true }).unknown, true);
  });

  it('never throws on garbage; what it accepts is within bounds', () => {
    fc.assert(
      fc.property(fc.oneof(garbage, fc.array(fc.anything())), (m) => {
        const d = decodeMembership(m);
        if (!d.ok) return;
        // Anything accepted re-encodes to a message the decoder accepts identically.
        assert.deepEqual(decodeMembership(encodeMembership(d.msg)), d);
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it('garbage fed to a running Membership never throws and changes nothing', () => {
    const clock = new ManualClock();
    const sent: unknown[][] = [];
    const calls: string[] = [];
    const io: MembershipIO = {
      send: (_to, msg) => void sent.push(msg),
      join: () => Promise.reject(new Error('no network here')),
      learn: (n) => void calls.push(`learn ${n}`),
      keepAlive: (n) => void calls.push(`keepAlive ${n}`),
      disconnect: (n) => void calls.push(`disconnect ${n}`),
      remove: (n) => void calls.push(`remove ${n}`),
    };
    const events: Member[] = [];
    const self = {
      cluster: 'c',
      name: 'me',
      incarnation: Math.floor(clock.wallNow()),
      address: { host: '127.0.0.1', port: 4000 },
    };
    const ms = new Membership(self, PRESETS.local, io, clock, createLogger('silent'), (m) =>
      events.push(m),
    );
    ms.start();
    const peerInc = Math.floor(clock.wallNow()) - 5;
    assert.equal(ms.acceptPeer('peer', { host: '127.0.0.1', port: 4001 }, peerInc), undefined);
    assert.equal(ms.status('peer'), 'alive', 'positive control: first-hand contact adds a member');
    const from: PeerHello = {
      name: 'peer',
      incarnation: peerInc,
      address: { host: '127.0.0.1', port: 4001 },
      channel: 'control',
      encrypted: false,
      version: 1,
    };
    const before = JSON.stringify(ms.list());
    sent.length = 0;
    calls.length = 0;
    events.length = 0;
    let refusedSeen = 0;
    fc.assert(
      fc.property(garbage, (m) => {
        if (decodeMembership(m).ok) return; // valid messages may change state legitimately
        refusedSeen++;
        ms.handle(from, m);
        assert.equal(JSON.stringify(ms.list()), before);
        assert.deepEqual(sent, []);
        assert.deepEqual(calls, []);
        assert.deepEqual(events, []);
      }),
      { numRuns: RUNS * 4 },
    );
    assert.ok(refusedSeen > RUNS, `${refusedSeen} malformed messages tried`);
    ms.stop();
  });
});
