// The gossip and mDNS receivers fed random and hostile packets in-process (no sockets, no
// network): they must never throw, never propose a peer, and count what they dropped. A valid
// packet (the positive control) does propose its sender, so these assertions can fail.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import fc from 'fast-check';
import {
  type GossipBeat,
  GossipCodec,
  GossipStrategy,
  MAX_GOSSIP_PACKET,
} from '../../src/discovery/strategies/gossip.js';
import { DEFAULT_SERVICE_TYPE, MdnsStrategy } from '../../src/discovery/strategies/mdns.js';

import { recordingContext } from '../helpers/discovery-context.js';

const CLUSTER = 'fuzz';
const SECRET = 'fuzz-secret-0123456789';
const RUNS = 300;
const RINFO = { address: '10.0.0.9', port: 45892 };

const harness = () => recordingContext(CLUSTER);

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('gossip receiver under random and hostile packets', () => {
  for (const encrypt of [false, true]) {
    const mode = encrypt ? 'AES-256-GCM' : 'HMAC-SHA256';
    const setup = () => {
      const h = harness();
      const strategy = new GossipStrategy({ encrypt }, SECRET);
      strategy.attach(h.ctx);
      const codec = new GossipCodec(CLUSTER, SECRET, encrypt);
      const beat = (over: Partial<GossipBeat> = {}): GossipBeat => ({
        ts: h.clock.wallNow(),
        nonce: randomBytes(8),
        incarnation: 7,
        port: 4001,
        cluster: CLUSTER,
        name: 'peer',
        host: '10.0.0.2',
        ...over,
      });
      const dropped = () => {
        const s = strategy.stats;
        return (
          s.droppedAuth +
          s.droppedStale +
          s.droppedMalformed +
          s.droppedOversize +
          s.droppedOtherCluster
        );
      };
      /** Feeds one packet; asserts it was counted, dropped, and did not throw. */
      const feedHostile = (buf: Uint8Array) => {
        const before = { ...strategy.stats, dropped: dropped() };
        strategy.handlePacket(buf, RINFO);
        assert.equal(strategy.stats.received, before.received + 1);
        assert.equal(strategy.stats.accepted, before.accepted, 'a hostile packet was accepted');
        assert.equal(dropped(), before.dropped + 1, 'the packet was counted as dropped');
      };
      return { ...h, strategy, codec, beat, feedHostile };
    };

    it(`${mode}: random bytes, with and without a valid header, are dropped and counted`, async () => {
      const t = setup();
      const header = t.codec.seal(t.beat()).subarray(0, 8);
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 2 * MAX_GOSSIP_PACKET, size: 'max' }),
          fc.boolean(),
          (bytes, withHeader) => {
            t.feedHostile(withHeader ? Buffer.concat([header, bytes]) : bytes);
          },
        ),
        { numRuns: RUNS },
      );
      await flush();
      assert.deepEqual(t.connects, []);
      assert.ok(t.strategy.stats.droppedMalformed > 0);
      assert.ok(t.strategy.stats.droppedAuth > 0, 'headed random bytes reach (and fail) auth');
    });

    it(`${mode}: truncated, bit-flipped and padded valid packets are dropped`, async () => {
      const t = setup();
      fc.assert(
        fc.property(
          fc.nat(),
          fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 8 }),
          fc.uint8Array({ minLength: 1, maxLength: 64 }),
          (cut, bits, pad) => {
            const valid = t.codec.seal(t.beat());
            t.feedHostile(valid.subarray(0, cut % valid.length));
            const flipped = Buffer.from(t.codec.seal(t.beat()));
            for (const b of new Set(bits.map((x) => x % (flipped.length * 8)))) {
              flipped[b >> 3]! ^= 1 << (b & 7);
            }
            t.feedHostile(flipped);
            t.feedHostile(Buffer.concat([t.codec.seal(t.beat()), pad]));
          },
        ),
        { numRuns: RUNS },
      );
      await flush();
      assert.deepEqual(t.connects, []);
    });

    it(`${mode}: oversized packets are dropped unread`, async () => {
      const t = setup();
      fc.assert(
        fc.property(fc.uint8Array({ minLength: MAX_GOSSIP_PACKET + 1, maxLength: 9000 }), (b) => {
          const before = t.strategy.stats.droppedOversize;
          t.feedHostile(b);
          assert.equal(t.strategy.stats.droppedOversize, before + 1);
        }),
        { numRuns: 100 },
      );
      // A beat with a huge host is authentic but too large: still dropped as oversize.
      const big = t.codec.seal(t.beat({ host: 'h'.repeat(250), name: 'n'.repeat(250) }));
      assert.ok(big.length > MAX_GOSSIP_PACKET);
      t.feedHostile(big);
      await flush();
      assert.deepEqual(t.connects, []);
    });

    it(`${mode}: other clusters, other secrets and the other mode are dropped`, async () => {
      const t = setup();
      fc.assert(
        fc.property(
          fc
            .string({ minLength: 1, maxLength: 40 })
            .filter((c) => c !== CLUSTER && /^\S+$/.test(c)),
          fc.string({ minLength: 16, maxLength: 40 }).filter((s) => s !== SECRET),
          (cluster, secret) => {
            const before = { ...t.strategy.stats };
            t.feedHostile(new GossipCodec(cluster, SECRET, encrypt).seal(t.beat({ cluster })));
            assert.equal(t.strategy.stats.droppedOtherCluster, before.droppedOtherCluster + 1);
            t.feedHostile(new GossipCodec(CLUSTER, secret, encrypt).seal(t.beat()));
            t.feedHostile(new GossipCodec(CLUSTER, SECRET, !encrypt).seal(t.beat()));
            assert.equal(t.strategy.stats.droppedAuth, before.droppedAuth + 2);
          },
        ),
        { numRuns: 100 },
      );
      await flush();
      assert.deepEqual(t.connects, []);
    });

    it(`${mode}: a valid beat proposes its sender once; replays and stale beats are dropped`, async () => {
      const t = setup();
      const valid = t.codec.seal(t.beat());
      t.strategy.handlePacket(valid, RINFO);
      await flush();
      // Positive control: the authentic beat was accepted and its sender proposed.
      assert.equal(t.strategy.stats.accepted, 1);
      assert.deepEqual(t.connects, [{ host: '10.0.0.2', port: 4001 }]);
      assert.deepEqual(
        t.strategy.list().map((p) => p.name),
        ['peer'],
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 20_000 }),
          fc.integer({ min: 1, max: 10 ** 9 }),
          fc.boolean(),
          (advance, beyond, future) => {
            t.clock.stall(advance % 1000);
            const before = t.strategy.stats.droppedStale;
            t.feedHostile(valid); // replay of the very same packet
            const skew = 30_000 + beyond;
            t.feedHostile(
              t.codec.seal(
                t.beat({ ts: t.clock.wallNow() + (future ? skew : -skew), name: 'late' }),
              ),
            );
            assert.equal(t.strategy.stats.droppedStale, before + 2);
          },
        ),
        { numRuns: RUNS },
      );
      await flush();
      assert.equal(t.connects.length, 1, 'no replay or stale beat proposed a peer');
    });
  }
});

describe('mdns receiver under random and hostile packets', () => {
  const setup = () => {
    const h = harness();
    const strategy = new MdnsStrategy();
    strategy.attach(h.ctx);
    /** Feeds one raw datagram; it must be counted and must not throw. */
    const feed = (buf: Uint8Array) => {
      const before = strategy.stats.received;
      strategy.handleMessage(buf, RINFO);
      assert.equal(strategy.stats.received, before + 1);
    };
    return { ...h, strategy, feed };
  };

  const label = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);
  const name = fc.oneof(
    fc.constant(DEFAULT_SERVICE_TYPE),
    label.map((l) => `${l}.${DEFAULT_SERVICE_TYPE}`),
    fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => `${ls.join('.')}.local`),
  );
  const ttl = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 - 1 }));
  // TXT entries: never cluster=fuzz (that would be a legitimate peer, not a hostile one).
  const txtEntry = fc.oneof(
    fc.string({ maxLength: 60 }).filter((s) => !s.toLowerCase().startsWith('cluster=')),
    fc
      .string({ maxLength: 30 })
      .filter((c) => c !== CLUSTER)
      .map((c) => `cluster=${c}`),
    fc.constantFrom('proto=1', 'proto=2', 'node=peer', 'node=me', 'cluster=', '=x'),
  );
  const record: fc.Arbitrary<Answer> = fc.oneof(
    fc.record({ name, type: fc.constant('PTR' as const), ttl, data: name }),
    fc.record({
      name,
      type: fc.constant('SRV' as const),
      ttl,
      data: fc.record({ port: fc.integer({ min: 0, max: 65535 }), target: name }),
    }),
    fc.record({
      name,
      type: fc.constant('TXT' as const),
      ttl,
      data: fc.array(txtEntry, { maxLength: 6 }),
    }),
    fc.record({ name, type: fc.constant('A' as const), ttl, data: fc.ipV4() }),
    fc.record({ name, type: fc.constant('AAAA' as const), ttl, data: fc.ipV6() }),
  );
  // A complete, well-formed announcement of an instance of another cluster (or another proto).
  const foreign: fc.Arbitrary<Answer[]> = fc
    .tuple(label, txtEntry, fc.constantFrom('proto=1', 'proto=0'), ttl, fc.ipV4())
    .map(([l, cluster, proto, t, ip]) => {
      const inst = `${l}.${DEFAULT_SERVICE_TYPE}`;
      const c = cluster.startsWith('cluster=') ? cluster : `cluster=x${cluster}`;
      return [
        { name: DEFAULT_SERVICE_TYPE, type: 'PTR', ttl: t, data: inst },
        { name: inst, type: 'SRV', ttl: t, data: { port: 4002, target: `${l}.local` } },
        { name: inst, type: 'TXT', ttl: t, data: [c, 'node=other', proto] },
        { name: `${l}.local`, type: 'A', ttl: t, data: ip },
      ];
    });
  // 'ANY' (255) is missing from dns-packet's RecordType, hence the cast.
  const packet = fc
    .record({
      type: fc.constantFrom('query' as const, 'response' as const),
      id: fc.integer({ min: 0, max: 65535 }),
      questions: fc.array(
        fc.record({ name, type: fc.constantFrom('PTR', 'SRV', 'TXT', 'A', 'ANY') }),
        { maxLength: 4 },
      ),
      answers: fc.oneof(fc.array(record, { maxLength: 8 }), foreign),
      additionals: fc.array(record, { maxLength: 8 }),
    })
    .map((p) => p as Packet);

  it('random bytes, and DNS headers followed by random bytes, never throw nor propose a peer', async () => {
    const t = setup();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.boolean(), (bytes, headed) => {
        const head = Buffer.from([0, 0, 0x84, 0, 0, 1, 0, 4, 0, 0, 0, 2]); // response, 1 q, 4 an, 2 ar
        t.feed(headed ? Buffer.concat([head, bytes]) : bytes);
      }),
      { numRuns: RUNS },
    );
    await flush();
    assert.deepEqual(t.connects, []);
    assert.ok(t.strategy.stats.malformed > 0, 'undecodable packets are counted');
  });

  it('random DNS packets built with dns-packet (encoded, truncated, and as objects) never throw nor propose a peer', async () => {
    const t = setup();
    fc.assert(
      fc.property(packet, fc.nat(), (p, cut) => {
        let wire: Buffer | undefined;
        try {
          wire = dnsPacket.encode(p);
        } catch {
          wire = undefined; // dns-packet refused it (e.g. a label too long): the object still goes in
        }
        if (wire) {
          t.feed(wire);
          t.feed(wire.subarray(0, cut % wire.length));
        }
        t.strategy.handleResponse(p, RINFO);
        t.strategy.handleQuery(p, RINFO);
      }),
      { numRuns: RUNS },
    );
    await flush();
    assert.deepEqual(t.connects, []);
    assert.ok(t.strategy.stats.ignoredOtherCluster > 0, 'other clusters were seen and ignored');
  });

  it('hostile objects in place of decoded packets never throw nor propose a peer', async () => {
    const t = setup();
    const hostileRecord = fc.record({
      name: fc.oneof(name, fc.anything()),
      type: fc.oneof(fc.constantFrom('PTR', 'SRV', 'TXT', 'A', 'AAAA'), fc.anything()),
      ttl: fc.oneof(ttl, fc.anything()),
      data: fc.anything(),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.record({
            type: fc.constantFrom('query', 'response'),
            questions: fc.oneof(fc.array(fc.anything()), fc.anything()),
            answers: fc.oneof(fc.array(hostileRecord), fc.anything()),
            additionals: fc.oneof(fc.array(hostileRecord), fc.anything()),
          }),
        ),
        (p) => {
          t.strategy.handleResponse(p as Packet, RINFO);
          t.strategy.handleQuery(p as Packet, RINFO);
        },
      ),
      { numRuns: RUNS },
    );
    await flush();
    assert.deepEqual(t.connects, []);
  });

  it('a valid announcement of this cluster proposes the peer (positive control); its goodbye takes it off', async () => {
    const t = setup();
    const inst = `peer-1.${DEFAULT_SERVICE_TYPE}`;
    const records = (ttlS: number): Answer[] => [
      { name: DEFAULT_SERVICE_TYPE, type: 'PTR', ttl: ttlS, data: inst },
      { name: inst, type: 'SRV', ttl: ttlS, data: { port: 4001, target: 'peer-1.local' } },
      { name: inst, type: 'TXT', ttl: ttlS, data: [`cluster=${CLUSTER}`, 'node=peer', 'proto=1'] },
      { name: 'peer-1.local', type: 'A', ttl: ttlS, data: '10.0.0.2' },
    ];
    t.feed(dnsPacket.encode({ type: 'response', answers: records(120) }));
    await flush();
    assert.deepEqual(t.connects, [{ host: '10.0.0.2', port: 4001 }]);
    assert.deepEqual(
      t.strategy.list().map((p) => p.node),
      ['peer'],
    );
    t.feed(dnsPacket.encode({ type: 'response', answers: records(0) }));
    assert.equal(t.strategy.stats.goodbyes, 1);
    assert.deepEqual(t.strategy.list(), []);
    assert.deepEqual(t.disconnects, [{ host: '10.0.0.2', port: 4001 }]);
  });
});
