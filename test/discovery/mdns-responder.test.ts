// The mDNS responder and cache rules, driven in-process on a ManualClock with a `send` hook that
// collects what the strategy would put on the wire (no sockets: the namespace tests in
// mdns-interop.test.ts run the same code against avahi, python-zeroconf and dig). Covers RFC 6762
// §6.7 legacy unicast, RFC 6763 §9 service-type enumeration, §5.2 refresh queries, §7.1
// known-answer suppression, the §6 shared-record delay and node.mdns.advertise.
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet';
import {
  DEFAULT_SERVICE_TYPE,
  instanceLabel,
  LEGACY_UNICAST_TTL_S,
  MAX_LEGACY_ANSWERS_PER_S,
  MdnsStrategy,
  onLocalLink,
  type Rinfo,
  SERVICE_TYPE_ENUMERATION,
} from '../../src/discovery/strategies/mdns.js';
import { isFoundationError } from '../../src/errors.js';
import { Foundation } from '../../src/index.js';

import { recordingContext } from '../helpers/discovery-context.js';

const CLUSTER = 'resp';
const SELF_IP = '10.0.0.1';
const ME = `${instanceLabel('me')}.${DEFAULT_SERVICE_TYPE}`;
const PEER = `peer-1.${DEFAULT_SERVICE_TYPE}`;

interface Sent {
  packet: Packet;
  to: Rinfo | undefined;
}

function setup(
  opts: ConstructorParameters<typeof MdnsStrategy>[0] = {},
  random = () => 0.5,
  // The test's sources (10.0.0.x) are not on this machine's links; one test uses the real check.
  onLink: ((address: string) => boolean) | null = () => true, // null: the real check
  selfHost = SELF_IP,
) {
  const { clock, ctx, connects, disconnects } = recordingContext(CLUSTER, selfHost);
  const sent: Sent[] = [];
  const strategy = new MdnsStrategy(opts);
  strategy.attach(ctx, {
    random,
    onLink: onLink ?? undefined,
    send: (packet, to) => {
      // Everything sent must encode: a record dns-packet cannot write would never reach the wire.
      const wire = dnsPacket.encode(packet);
      sent.push({ packet: dnsPacket.decode(wire), to });
    },
  });
  const query = (questions: Question[], from: Rinfo, extra: Partial<Packet> = {}) =>
    strategy.handleMessage(dnsPacket.encode({ type: 'query', id: 0, questions, ...extra }), from);
  const responses = () => sent.filter((s) => s.packet.type === 'response');
  const queries = () => sent.filter((s) => s.packet.type === 'query');
  return { clock, ctx, strategy, sent, connects, disconnects, query, responses, queries };
}

const MCAST: Rinfo = { address: '10.0.0.9', port: 5353 };
const LEGACY: Rinfo = { address: '10.0.0.9', port: 40123 };

function peerRecords(ttl: number, port = 4001): Answer[] {
  return [
    { name: DEFAULT_SERVICE_TYPE, type: 'PTR', ttl, data: PEER },
    { name: PEER, type: 'SRV', ttl, data: { port, target: 'peer-1.local' } },
    { name: PEER, type: 'TXT', ttl, data: [`cluster=${CLUSTER}`, 'node=peer', 'proto=1'] },
    { name: 'peer-1.local', type: 'A', ttl, data: '10.0.0.2' },
  ];
}

const dataOf = (a: Answer) => (a as { data?: unknown }).data;
const names = (as: Answer[] | undefined) =>
  (as ?? []).map((a) => `${a.type} ${a.name}${a.type === 'PTR' ? ` → ${a.data}` : ''}`).sort();
const asksAbout = (s: Sent, name: string) =>
  (s.packet.questions ?? []).some((q) => q.name.toLowerCase() === name);

describe('mdns responder: legacy unicast (RFC 6762 §6.7)', () => {
  it('a query from a port other than 5353 gets a unicast answer to that address and port, with its ID, its question repeated, TTLs capped at 10 s and no cache-flush bits', () => {
    const t = setup({ ttlSeconds: 120 });
    const q: Question = { name: DEFAULT_SERVICE_TYPE, type: 'PTR' };
    t.query([q], LEGACY, { id: 4242 });
    const [r, ...rest] = t.responses();
    assert.equal(rest.length, 0, 'exactly one answer');
    assert.ok(r, 'answered at once (no delay for legacy unicast)');
    assert.deepEqual(r.to, LEGACY);
    assert.equal(r.packet.id, 4242);
    assert.deepEqual(
      r.packet.questions?.map((x) => [x.name, x.type]),
      [[DEFAULT_SERVICE_TYPE, 'PTR']],
    );
    assert.deepEqual(names(r.packet.answers), [`PTR ${DEFAULT_SERVICE_TYPE} → ${ME}`]);
    assert.deepEqual(names(r.packet.additionals), [
      `A ${instanceLabel('me')}.local`,
      `SRV ${ME}`,
      `TXT ${ME}`,
    ]);
    for (const a of [...(r.packet.answers ?? []), ...(r.packet.additionals ?? [])]) {
      const rec = a as Answer & { ttl: number; flush?: boolean };
      assert.ok(rec.ttl > 0 && rec.ttl <= LEGACY_UNICAST_TTL_S, `${a.name} ttl ${rec.ttl}`);
      assert.equal(rec.flush, false, `${a.name} has no cache-flush bit`);
    }
    assert.equal(t.strategy.stats.legacyAnswered, 1);
  });

  it('the same query from port 5353 is answered by multicast (no unicast destination), the TTL uncapped', () => {
    const t = setup({ ttlSeconds: 120 });
    t.query([{ name: ME, type: 'SRV' }], MCAST);
    const [r] = t.responses();
    assert.ok(r);
    assert.equal(r.to, undefined);
    assert.equal((r.packet.answers![0] as { ttl: number }).ttl, 120);
    assert.equal(t.strategy.stats.legacyAnswered, 0);
  });

  it("legacy queries from addresses off this host's links get no answer (RFC 6762 §11); the on-link check knows loopback and interface subnets", () => {
    assert.equal(onLocalLink('127.3.2.1'), true);
    assert.equal(onLocalLink('::1'), true);
    assert.equal(onLocalLink('fe80::1234'), true);
    assert.equal(onLocalLink('203.0.113.77'), false, 'TEST-NET-3 is on no link of this machine');
    const t = setup({}, () => 0.5, null);
    t.query([{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }], {
      address: '203.0.113.77',
      port: 40000,
    });
    assert.deepEqual(t.responses(), []);
    assert.equal(t.strategy.stats.legacyDropped, 1);
    t.query([{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }], { address: '127.0.0.1', port: 40000 });
    assert.equal(t.responses().length, 1, 'positive control: a loopback source is answered');
  });

  it(`at most ${MAX_LEGACY_ANSWERS_PER_S} legacy answers leave per second (no reflection floods)`, () => {
    const t = setup();
    for (let i = 0; i < MAX_LEGACY_ANSWERS_PER_S + 30; i++) {
      t.query([{ name: ME, type: 'TXT' }], { address: '10.0.0.9', port: 40000 + i });
    }
    assert.equal(t.responses().length, MAX_LEGACY_ANSWERS_PER_S);
    assert.equal(t.strategy.stats.legacyDropped, 30);
    t.clock.tick(1000);
    t.query([{ name: ME, type: 'TXT' }], LEGACY);
    assert.equal(
      t.responses().length,
      MAX_LEGACY_ANSWERS_PER_S + 1,
      'answered again a second later',
    );
  });

  it('a legacy query for a name this node does not own gets no answer', () => {
    const t = setup();
    t.query([{ name: '_other._tcp.local', type: 'PTR' }], LEGACY);
    t.query([{ name: 'someone.local', type: 'A' }], LEGACY);
    assert.deepEqual(t.responses(), []);
  });
});

describe('mdns responder: service-type enumeration (RFC 6763 §9)', () => {
  it('_services._dns-sd._udp.local PTR lists _foundation._tcp.local and every advertised type, each once', () => {
    const t = setup();
    const ask = () => {
      t.sent.length = 0;
      t.query([{ name: SERVICE_TYPE_ENUMERATION, type: 'PTR' }], LEGACY);
      return (t.responses()[0]?.packet.answers ?? []).map((a) => String(dataOf(a))).sort();
    };
    assert.deepEqual(ask(), [DEFAULT_SERVICE_TYPE]);
    const web = t.strategy.advertise({ type: '_http._tcp', port: 8080 });
    t.strategy.advertise({ type: '_http._tcp', port: 8081, name: 'second' });
    t.strategy.advertise({ type: '_ipp._tcp.local', port: 631 });
    assert.deepEqual(ask(), ['_foundation._tcp.local', '_http._tcp.local', '_ipp._tcp.local']);
    return web.remove().then(() => {
      assert.deepEqual(ask(), ['_foundation._tcp.local', '_http._tcp.local', '_ipp._tcp.local']);
    });
  });
});

describe('mdns cache: refresh queries at 80-95 % of the TTL (RFC 6762 §5.2)', () => {
  const refreshTimes = (t: ReturnType<typeof setup>, times: number[]) =>
    t
      .queries()
      .filter((s) => asksAbout(s, PEER))
      .map((s) => times[t.sent.indexOf(s)]!);

  it('a peer learned with a 10 s TTL is asked for at 80-82, 85-87, 90-92 and 95-97 % of it, then dropped when it expires', async () => {
    for (const r of [0, 0.999]) {
      const t = setup({ queryIntervalMs: 60_000 }, () => r);
      const at: number[] = [];
      const send = t.sent.push.bind(t.sent);
      t.sent.push = (...s: Sent[]) => {
        for (const _ of s) at.push(t.clock.now());
        return send(...s);
      };
      t.strategy.begin(); // the sweep that drops expired peers runs from here
      t.strategy.handleResponse({ type: 'response', answers: peerRecords(10) } as Packet);
      await Promise.resolve();
      assert.deepEqual(t.connects, [{ host: '10.0.0.2', port: 4001 }]);
      for (let ms = 0; ms < 12_000; ms += 10) t.clock.tick(10);
      const got = refreshTimes(t, at);
      assert.equal(got.length, 4, `four refresh queries (random ${r}): ${got}`);
      for (const [i, frac] of [0.8, 0.85, 0.9, 0.95].entries()) {
        assert.ok(
          got[i]! >= 10_000 * frac && got[i]! <= 10_000 * (frac + 0.02) + 10,
          `query ${i} at ${got[i]} ms`,
        );
      }
      const q = t.queries().find((s) => asksAbout(s, PEER))!;
      assert.deepEqual(q.packet.questions?.map((x) => x.type).sort(), ['SRV', 'TXT']);
      assert.equal(t.strategy.stats.refreshQueries, 4);
      assert.deepEqual(t.strategy.list(), [], 'no answer: the peer is dropped at its TTL');
      assert.equal(t.strategy.stats.expired, 1);
      assert.deepEqual(t.disconnects, [{ host: '10.0.0.2', port: 4001 }]);
    }
  });

  it('a short-TTL peer that answers the refresh queries stays listed for 30 TTLs without flapping', async () => {
    const t = setup({ queryIntervalMs: 60_000 });
    t.strategy.begin();
    t.strategy.handleResponse({ type: 'response', answers: peerRecords(2) } as Packet);
    let answered = 0;
    for (let ms = 0; ms < 60_000; ms += 10) {
      t.clock.tick(10);
      // The peer answers each refresh query (only its first, as a real responder's packet might
      // be the only one of four to get through).
      const pending = t.queries().filter((s) => asksAbout(s, PEER));
      if (pending.length) {
        t.sent.length = 0;
        if (answered++ % 2 === 0) {
          t.strategy.handleResponse({ type: 'response', answers: peerRecords(2) } as Packet);
        }
      }
      assert.equal(t.strategy.list().length, 1, `listed at ${t.clock.now()} ms`);
    }
    await Promise.resolve();
    assert.ok(answered >= 30, `${answered} refresh queries`);
    assert.equal(t.strategy.stats.expired, 0);
    assert.deepEqual(t.disconnects, []);
  });

  it('a goodbye cancels the refresh queries', () => {
    const t = setup({ queryIntervalMs: 60_000 });
    t.strategy.handleResponse({ type: 'response', answers: peerRecords(10) } as Packet);
    t.strategy.handleResponse({ type: 'response', answers: peerRecords(0) } as Packet);
    for (let ms = 0; ms < 12_000; ms += 100) t.clock.tick(100);
    assert.equal(t.strategy.stats.refreshQueries, 0);
    assert.equal(t.strategy.stats.goodbyes, 1);
  });
});

describe('mdns known-answer suppression (RFC 6762 §7.1) and the shared-record delay (§6)', () => {
  it('browse queries list known peers with more than half their TTL left, and only those', async () => {
    const t = setup({ queryIntervalMs: 1000 });
    const browse = () =>
      t.queries().filter((s) => asksAbout(s, DEFAULT_SERVICE_TYPE) && !asksAbout(s, PEER));
    t.strategy.handleResponse({ type: 'response', answers: peerRecords(4) } as Packet);
    t.strategy.begin(); // the first browse query leaves at once
    const first = browse().at(-1);
    assert.ok(first, 'browsed');
    assert.deepEqual(
      (first.packet.answers ?? []).map((a) => [a.name, a.type, dataOf(a)]),
      [[DEFAULT_SERVICE_TYPE, 'PTR', PEER]],
      'a fresh peer is a known answer',
    );
    t.sent.length = 0;
    t.clock.tick(3000); // browses at 250, 750, 1750, 2750 ms; by the last, under half of 4 s left
    const late = browse().at(-1);
    assert.ok(late, 'browsed again');
    assert.deepEqual(late.packet.answers ?? [], [], 'a peer past half its TTL is not listed');
  });

  it('a query listing our PTR with at least half its TTL gets no answer; with less, it does', () => {
    const t = setup({ ttlSeconds: 120 });
    const known = (ttl: number): Answer[] => [
      { name: DEFAULT_SERVICE_TYPE, type: 'PTR', ttl, data: ME },
    ];
    t.query([{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }], MCAST, { answers: known(60) });
    t.clock.tick(1000);
    assert.deepEqual(t.responses(), []);
    assert.equal(t.strategy.stats.suppressed, 1);
    t.query([{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }], MCAST, { answers: known(59) });
    t.clock.tick(1000);
    assert.equal(t.responses().length, 1);
    assert.deepEqual(names(t.responses()[0]!.packet.answers), [
      `PTR ${DEFAULT_SERVICE_TYPE} → ${ME}`,
    ]);
  });

  it('PTR answers wait 20-120 ms (random); SRV/TXT/A answers leave at once', () => {
    for (const [r, delay] of [
      [0, 20],
      [0.5, 70],
      [0.999, 120],
    ] as const) {
      const t = setup({}, () => r);
      t.query([{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }], MCAST);
      assert.deepEqual(t.responses(), [], 'not sent synchronously');
      t.clock.tick(Math.floor(delay) - 1);
      assert.deepEqual(t.responses(), [], `not before ${delay} ms (random ${r})`);
      t.clock.tick(2);
      assert.equal(t.responses().length, 1, `sent by ${delay} ms (random ${r})`);
    }
    const t = setup();
    t.query([{ name: ME, type: 'TXT' }], MCAST);
    assert.equal(t.responses().length, 1, 'a unique record is answered without delay');
  });
});

describe('node.mdns.advertise (mdns_lite services)', () => {
  it('announces PTR/SRV/TXT at once, answers queries for the type, and remove() sends TTL 0 goodbyes and stops answering', async () => {
    const t = setup();
    const h = t.strategy.advertise({
      type: '_http._tcp',
      port: 8080,
      txt: { path: '/api', secure: true, off: false, n: 2 },
      name: 'Web UI',
    });
    assert.equal(h.instance, 'Web UI._http._tcp.local');
    assert.deepEqual(h.txt, ['path=/api', 'secure', 'n=2']);
    const [announce] = t.responses();
    assert.ok(announce);
    assert.deepEqual(names(announce.packet.answers), [
      'PTR _http._tcp.local → Web UI._http._tcp.local',
      'SRV Web UI._http._tcp.local',
      'TXT Web UI._http._tcp.local',
    ]);
    const srv = announce.packet.answers!.find((a) => a.type === 'SRV') as {
      data: { port: number; target: string };
    };
    assert.deepEqual([srv.data.port, srv.data.target], [8080, `${instanceLabel('me')}.local`]);
    t.clock.tick(1000);
    assert.equal(t.responses().length, 2, 'announced again 1 s later');

    t.sent.length = 0;
    t.query([{ name: '_http._tcp.local', type: 'PTR' }], LEGACY);
    assert.deepEqual(names(t.responses()[0]?.packet.answers), [
      'PTR _http._tcp.local → Web UI._http._tcp.local',
    ]);
    assert.deepEqual(
      t.strategy.advertised().map((a) => a.instance),
      [h.instance],
    );

    t.sent.length = 0;
    await h.remove();
    const [bye] = t.responses();
    assert.ok(bye, 'a goodbye was sent');
    assert.deepEqual(names(bye.packet.answers), [
      'PTR _http._tcp.local → Web UI._http._tcp.local',
      'PTR _services._dns-sd._udp.local → _http._tcp.local',
      'SRV Web UI._http._tcp.local',
      'TXT Web UI._http._tcp.local',
    ]);
    assert.ok(bye.packet.answers!.every((a) => (a as { ttl: number }).ttl === 0));
    t.sent.length = 0;
    t.query([{ name: '_http._tcp.local', type: 'PTR' }], LEGACY);
    assert.deepEqual(t.responses(), [], 'no longer answered');
    assert.deepEqual(t.strategy.advertised(), []);
    assert.equal(await t.strategy.unadvertise(h.instance), false, 'removing twice is a no-op');
    await h.remove();
  });

  it('bad options name the field; a duplicate instance, the cluster type and a stopped strategy are refused with codes', async () => {
    const t = setup();
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return isFoundationError(err) ? `${err.code} ${String(err.data?.field ?? '')}` : 'other';
      }
      return 'no error';
    };
    assert.equal(
      code(() => t.strategy.advertise({ type: 'http', port: 80 })),
      'FND_ERR_INVALID_OPTION mdns.advertise.type',
    );
    assert.equal(
      code(() => t.strategy.advertise({ type: '_http._tcp', port: 0 })),
      'FND_ERR_INVALID_OPTION mdns.advertise.port',
    );
    assert.equal(
      code(() => t.strategy.advertise({ type: '_http._tcp', port: 80, name: 'a.b' })),
      'FND_ERR_INVALID_OPTION mdns.advertise.name',
    );
    assert.equal(
      code(() => t.strategy.advertise({ type: '_http._tcp', port: 80, txt: ['x'.repeat(256)] })),
      'FND_ERR_INVALID_OPTION mdns.advertise.txt',
    );
    assert.equal(
      code(() => t.strategy.advertise({ type: '_foundation._tcp', port: 80 })),
      'FND_ERR_INVALID_OPTION mdns.advertise.type',
    );
    t.strategy.advertise({ type: '_http._tcp', port: 80, name: 'x' });
    assert.equal(
      code(() => t.strategy.advertise({ type: '_HTTP._tcp', port: 81, name: 'X' })),
      'FND_ERR_INVALID_OPTION mdns.advertise.name',
    );
    t.sent.length = 0;
    await t.strategy.stop();
    const bye = t.responses()[0]?.packet.answers ?? [];
    assert.ok(
      bye.some((a) => a.name === 'x._http._tcp.local') && bye.some((a) => a.name === ME),
      'stop says goodbye for the node and its advertised services',
    );
    assert.ok(bye.every((a) => (a as { ttl: number }).ttl === 0));
    assert.deepEqual(t.strategy.advertised(), [], 'nothing is advertised after stop');
    assert.equal(
      code(() => t.strategy.advertise({ type: '_ssh._tcp', port: 22 })),
      'FND_ERR_MDNS_INACTIVE ',
    );
  });

  it('node.mdns on a node whose discovery is not mdns (auto on loopback): active is false and advertise throws FND_ERR_MDNS_INACTIVE', async () => {
    const node = await Foundation.start({
      name: 'no-mdns',
      cluster: 'resp',
      host: '127.0.0.1',
      port: 0,
      logLevel: 'silent',
    });
    try {
      assert.notEqual(node.discovery.name, 'mdns', 'auto on loopback does not choose mdns');
      assert.equal(node.mdns.active, false);
      assert.deepEqual(node.mdns.advertised(), []);
      assert.throws(
        () => node.mdns.advertise({ type: '_http._tcp', port: 8080 }),
        (err: unknown) => isFoundationError(err, 'FND_ERR_MDNS_INACTIVE'),
      );
    } finally {
      await node.stop();
    }
  });
});

describe('mdns hostname option (mdns_lite host name)', () => {
  it('hostname: "edge-7" answers edge-7.local A with the advertised address and points SRV records at it', () => {
    const t = setup({ hostname: 'edge-7' });
    t.query([{ name: 'EDGE-7.local', type: 'A' }], LEGACY);
    const [r] = t.responses();
    assert.ok(r);
    assert.deepEqual(
      r.packet.answers?.map((a) => [a.name, a.type, dataOf(a)]),
      [['edge-7.local', 'A', SELF_IP]],
    );
    t.sent.length = 0;
    t.query([{ name: ME, type: 'SRV' }], LEGACY);
    const srv = t.responses()[0]?.packet.answers?.[0] as { data: { target: string } };
    assert.equal(srv.data.target, 'edge-7.local');
  });

  it("hostname: true answers the machine's host name (first label); a node advertising 0.0.0.0 answers with this host's non-internal addresses", () => {
    const label = os.hostname().split('.')[0]!.toLowerCase();
    const t = setup({ hostname: true });
    t.query([{ name: `${label}.local`, type: 'A' }], LEGACY);
    assert.deepEqual(
      t.responses()[0]?.packet.answers?.map((a) => dataOf(a)),
      [SELF_IP],
    );
    const wild = setup(
      { hostname: 'any' },
      () => 0.5,
      () => true,
      '0.0.0.0',
    );
    // 'ANY' (255) is missing from dns-packet's RecordType.
    wild.query([{ name: 'any.local', type: 'ANY' as Question['type'] }], LEGACY);
    const want = Object.values(os.networkInterfaces())
      .flatMap((l) => l ?? [])
      .filter((i) => !i.internal && !i.address.startsWith('fe80:'))
      .map((i) => i.address)
      .sort();
    assert.ok(want.length > 0, 'this machine has a non-internal address');
    assert.deepEqual(
      (wild.responses()[0]?.packet.answers ?? []).map((a) => String(dataOf(a))).sort(),
      want,
    );
  });

  it('without the option the node name label is answered, not the machine host name; a bad hostname names the field', () => {
    const t = setup();
    t.query([{ name: `${instanceLabel('me')}.local`, type: 'A' }], LEGACY);
    assert.equal(t.responses().length, 1);
    assert.throws(
      () => new MdnsStrategy({ hostname: 'a.local' }),
      (err: unknown) =>
        isFoundationError(err, 'FND_ERR_INVALID_OPTION') &&
        err.data?.field === 'discovery.hostname',
    );
  });
});
