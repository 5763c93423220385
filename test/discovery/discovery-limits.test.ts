// Discovery can never make a node open connections without bound: one forged mDNS packet, or a
// member with the gossip secret beating under thousands of names, lists a bounded number of peers,
// and the shared Reconciler's dial budget bounds the connection attempts (in-process, manual
// clock, no sockets; the multicast version of the mDNS attack is in mdns.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  GossipCodec,
  GossipStrategy,
  MAX_GOSSIP_PEERS,
} from '../../src/discovery/strategies/gossip.js';
import { MAX_NEW_PER_PACKET, MdnsStrategy } from '../../src/discovery/strategies/mdns.js';
import { type DiscoveryContext, RECONCILER_LIMITS } from '../../src/discovery/strategy.js';
import type { Address } from '../../src/transport/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { forgedMdnsResponse } from './forged-mdns.js';

const CLUSTER = 'limits';
const L = RECONCILER_LIMITS;

/** A context whose every connect is refused (forged addresses), recording each attempt. */
function refusingContext() {
  const clock = new ManualClock();
  const dials: Address[] = [];
  const ctx: DiscoveryContext = {
    cluster: CLUSTER,
    self: { name: 'me', address: { host: '10.0.0.1', port: 4000 }, incarnation: 1 },
    connect: async (a) => {
      dials.push(a);
      throw new Error('ECONNREFUSED');
    },
    disconnect: () => {},
    knownNodes: () => [],
    clock,
    log: createLogger('silent'),
    signal: new AbortController().signal,
  };
  return { clock, ctx, dials };
}

const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
};

describe('discovery limits', () => {
  it(`one forged mDNS packet listing 500 instances adds at most ${MAX_NEW_PER_PACKET} and dials at most that many addresses`, async () => {
    const { ctx, dials } = refusingContext();
    const mdns = new MdnsStrategy();
    mdns.attach(ctx);
    mdns.handleMessage(forgedMdnsResponse(500, '10.9.9.9', CLUSTER));
    await settle();
    assert.equal(mdns.list().length, MAX_NEW_PER_PACKET);
    assert.equal(mdns.stats.ignoredOverLimit, 500 - MAX_NEW_PER_PACKET);
    assert.equal(dials.length, MAX_NEW_PER_PACKET, 'before the limits: 500 dials');
  });

  it('the same packet every 100 ms for 60 s: dials stay within the dial budget, listed instances within MAX_PEERS', async () => {
    const { ctx, clock, dials } = refusingContext();
    const mdns = new MdnsStrategy();
    mdns.attach(ctx);
    const packet = forgedMdnsResponse(500, '10.9.9.9', CLUSTER);
    const seconds = 60;
    for (let t = 0; t < seconds * 1000; t += 100) {
      mdns.handleMessage(packet);
      await settle();
      clock.tick(100);
    }
    const bound = L.dialBurst + L.dialsPerSecond * seconds;
    console.log(`# forged mdns flood: ${dials.length} dials in ${seconds} s (budget ${bound})`);
    assert.equal(mdns.list().length, 500, 'every instance listed after enough packets');
    assert.ok(dials.length <= bound, `${dials.length} dials > ${bound}`);
  });

  it(`a member with the gossip secret beating under 2000 names lists at most ${MAX_GOSSIP_PEERS}, one per datagram, and dials within the budget`, async () => {
    const { ctx, clock, dials } = refusingContext();
    const secret = 'limits-secret-0123456789';
    const gossip = new GossipStrategy({}, secret);
    gossip.attach(ctx);
    const codec = new GossipCodec(CLUSTER, secret, false);
    for (let i = 0; i < 2000; i++) {
      const before = gossip.list().length;
      gossip.handlePacket(
        codec.seal({
          ts: clock.wallNow(),
          nonce: randomBytes(8),
          incarnation: 1,
          port: 20_000 + (i % 40_000),
          cluster: CLUSTER,
          name: `g${i}`,
          host: '10.9.9.9',
        }),
      );
      assert.ok(gossip.list().length <= before + 1, 'one datagram adds at most one peer');
      if (i % 10 === 0) {
        await settle();
        clock.tick(100);
      }
    }
    await settle();
    assert.equal(gossip.list().length, MAX_GOSSIP_PEERS);
    assert.equal(gossip.stats.droppedOverLimit, 2000 - MAX_GOSSIP_PEERS);
    const bound = L.dialBurst + (L.dialsPerSecond * clock.now()) / 1000;
    assert.ok(dials.length <= bound, `${dials.length} dials > ${bound}`);
  });
});
