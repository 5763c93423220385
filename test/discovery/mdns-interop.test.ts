// mDNS against real third-party software, in network namespaces this test creates (a private
// bridge; nothing is sent on the machine's interfaces): python-zeroconf browses and resolves a
// node and its advertised services, avahi-daemon/avahi-browse/avahi-resolve see them, dig gets
// legacy unicast answers, services published by zeroconf are not taken for peers, and nodes
// sharing their namespace with avahi-daemon still form a cluster. Missing Debian packages are
// installed with apt (as root), see test/helpers/mdns-tools.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Answer } from 'dns-packet';
import { DEFAULT_SERVICE_TYPE, instanceLabel } from '../../src/discovery/strategies/mdns.js';
import {
  Avahi,
  ensureMdnsTools,
  legacyAnswer,
  legacyQuery,
  MDNS_PEER,
  NsProcess,
  nsRun,
  PYTHON,
} from '../helpers/mdns-tools.js';
import {
  allSeeAlive,
  createSegment,
  eventually,
  NsNode,
  ownNamespaces,
  type Segment,
} from '../helpers/netns.js';
import type { Event } from '../helpers/proc.js';

const START_MS = 20_000;
const WAIT_MS = 20_000;
const SECRET = 'mdns-interop-secret-0001';
const CLUSTER = 'interop';
const dataOf = (a: Answer) => (a as { data?: unknown }).data;

describe('mdns interoperability with avahi, python-zeroconf and dig (network namespaces)', () => {
  let seg: Segment;
  const nodes: NsNode[] = [];
  const others: Array<{ stop(): Promise<void> }> = [];
  // h1: node m1 (hostname option) + avahi started after it; h2: avahi + node m2 started after it;
  // h3: the clients (zeroconf, dig, avahi-browse via its own avahi); h4: a zeroconf publisher.
  let m1: NsNode;
  let m2: NsNode;
  let avahi1: Avahi;
  let avahi2: Avahi;
  let avahi3: Avahi;
  let m1Port = 0;

  const spawnNode = (name: string, host: number, discovery: object) => {
    const n = new NsNode(name, seg.hosts[host]!, [
      '--cluster',
      CLUSTER,
      '--secret',
      SECRET,
      '--preset',
      'local',
      '--discovery-json',
      JSON.stringify({ strategy: 'mdns', ...discovery }),
    ]);
    nodes.push(n);
    return n;
  };
  const avahi = async (host: number, hostName: string) => {
    const a = new Avahi(seg.hosts[host]!, hostName);
    others.push(a);
    await a.start();
    return a;
  };
  const zeroconf = (host: number, args: string[]) => {
    const p = new NsProcess(seg.hosts[host]!, [
      PYTHON,
      MDNS_PEER,
      args[0]!,
      seg.hosts[host]!.ip,
      ...args.slice(1),
    ]);
    others.push(p);
    return p;
  };

  before(async () => {
    ensureMdnsTools();
    seg = createSegment(4);
    avahi2 = await avahi(1, 'avahi-h2');
    m1 = spawnNode('m1', 0, { hostname: 'edge-m1' });
    m2 = spawnNode('m2', 1, {});
    m1Port = Number(String((await m1.started(START_MS)).address).split(':')[1]);
    await m2.started(START_MS);
    avahi1 = await avahi(0, 'avahi-h1'); // bound after m1: it gets unicast sent to h1:5353
    avahi3 = await avahi(2, 'avahi-h3');
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
    for (const o of others.reverse()) await o.stop().catch(() => {});
    seg?.destroy();
    assert.deepEqual(ownNamespaces(), [], 'every namespace of this run is removed');
  });

  it('two nodes, each sharing its namespace with an avahi-daemon (started before one, after the other), form a cluster, and both daemons list both nodes', async () => {
    await allSeeAlive([m1, m2], ['m1', 'm2'], WAIT_MS);
    for (const [n, other] of [
      [m1, 'm2'],
      [m2, 'm1'],
    ] as const) {
      await eventually(
        async () => (await n.ask('stats')).list.some((p: Event) => p.node === other),
        WAIT_MS,
        `${n.name} to list ${other}`,
      );
    }
    // Each avahi-daemon also sees the node in its own namespace and the one next door.
    for (const a of [avahi1, avahi2]) {
      await eventually(
        async () => {
          const names = (await a.browse('_foundation._tcp')).map((s) => s.name);
          return names.includes(instanceLabel('m1')) && names.includes(instanceLabel('m2'));
        },
        WAIT_MS,
        `avahi in ${a.host.ns} to list m1 and m2`,
      );
    }
  });

  it('python-zeroconf browses _foundation._tcp and resolves each node: SRV port and target, TXT, A', async () => {
    const browser = zeroconf(2, ['browse', `${DEFAULT_SERVICE_TYPE}.`]);
    const found = await browser.waitJson(
      (o) => o.event === 'added' && String(o.name).startsWith(instanceLabel('m1')),
      WAIT_MS,
      'zeroconf to resolve m1',
    );
    assert.equal(found.name, `${instanceLabel('m1')}.${DEFAULT_SERVICE_TYPE}.`);
    assert.equal(found.port, m1Port);
    assert.equal(found.server, 'edge-m1.local.');
    assert.deepEqual(found.addresses, [seg.hosts[0]!.ip]);
    assert.deepEqual(found.txt, { cluster: CLUSTER, node: 'm1', proto: '1' });
    await browser.waitJson(
      (o) => o.event === 'added' && String(o.name).startsWith(instanceLabel('m2')),
      WAIT_MS,
      'zeroconf to resolve m2 (whose namespace runs avahi too)',
    );
    await browser.stop();
  });

  it('service-type enumeration: zeroconf ZeroconfServiceTypes and avahi-browse -a list _foundation._tcp', async () => {
    const types = zeroconf(2, ['types', '3']);
    const r = await types.waitJson((o) => o.event === 'types', WAIT_MS, 'zeroconf types');
    assert.ok(
      (r.types as string[]).includes(`${DEFAULT_SERVICE_TYPE}.`),
      `types: ${JSON.stringify(r.types)}`,
    );
    await eventually(
      async () =>
        (await avahi3.browse('all')).some(
          (s) => s.type === '_foundation._tcp' && s.name === instanceLabel('m1'),
        ),
      WAIT_MS,
      'avahi-browse -a to list m1 under _foundation._tcp',
    );
  });

  it('an _http._tcp service added with node.mdns.advertise is seen by zeroconf and avahi-browse, and disappears after remove()', async () => {
    const browser = zeroconf(2, ['browse', '_http._tcp.local.']);
    await browser.waitJson((o) => o.event === 'browsing', WAIT_MS, 'zeroconf browsing');
    const added = await m1.ask('advertise', 5000, {
      service: { type: '_http._tcp', port: 8080, txt: { path: '/status' }, name: 'm1-web' },
    });
    assert.equal(added.error, undefined, added.message);
    assert.equal(added.instance, 'm1-web._http._tcp.local');
    const seen = await browser.waitJson(
      (o) => o.event === 'added' && o.name === 'm1-web._http._tcp.local.',
      WAIT_MS,
      'zeroconf to resolve the advertised _http._tcp service',
    );
    assert.equal(seen.port, 8080);
    assert.deepEqual(seen.txt, { path: '/status' });
    assert.deepEqual(seen.addresses, [seg.hosts[0]!.ip]);
    await eventually(
      async () =>
        (await avahi3.browse('_http._tcp')).some((s) => s.name === 'm1-web' && s.port === '8080'),
      WAIT_MS,
      'avahi-browse to resolve m1-web',
    );
    // The type shows up in service-type enumeration too.
    const types = zeroconf(2, ['types', '3']);
    const r = await types.waitJson((o) => o.event === 'types', WAIT_MS, 'zeroconf types');
    assert.ok((r.types as string[]).includes('_http._tcp.local.'), JSON.stringify(r.types));

    const removed = await m1.ask('unadvertise', 5000, { instance: 'm1-web._http._tcp.local' });
    assert.equal(removed.removed, true);
    await browser.waitJson(
      (o) => o.event === 'removed' && o.name === 'm1-web._http._tcp.local.',
      WAIT_MS,
      "zeroconf to drop the service on the node's goodbye",
    );
    await eventually(
      async () => !(await avahi3.browse('_http._tcp')).some((s) => s.name === 'm1-web'),
      WAIT_MS,
      'avahi to drop m1-web',
    );
    await browser.stop();
  });

  it('dig -p 5353 (legacy unicast) gets an answer with its ID and question, TTL ≤ 10 s, for the service type and the hostname', async () => {
    const client = seg.hosts[3]!;
    // m2's namespace: avahi bound 5353 before m2, so unicast to h2:5353 reaches m2.
    const ptr = await nsRun(client, [
      'dig',
      '+time=3',
      '+tries=2',
      '-p',
      '5353',
      `@${seg.hosts[1]!.ip}`,
      '_foundation._tcp.local',
      'PTR',
    ]);
    assert.match(ptr, /status: NOERROR/);
    assert.match(ptr, /QUESTION SECTION:\n;_foundation\._tcp\.local\.\s+IN\s+PTR/);
    const line = ptr
      .split('\n')
      .find((l) => /^_foundation\._tcp\.local\.\s+\d+\s+IN\s+PTR/.test(l));
    assert.ok(line, ptr);
    assert.ok(line.includes(`${instanceLabel('m2')}._foundation._tcp.local.`), line);
    assert.ok(Number(line.split(/\s+/)[1]) <= 10, `TTL capped at 10 s: ${line}`);
    assert.match(ptr, new RegExp(`IN\\s+A\\s+${seg.hosts[1]!.ip.replace(/\./g, '\\.')}`));

    // The hostname option (m1): answered over legacy unicast sent to the multicast group, and
    // resolved by avahi in another namespace.
    const answer = await legacyAnswer(
      client,
      '224.0.0.251',
      [{ name: 'edge-m1.local', type: 'A' }],
      7001,
      `${seg.hosts[0]!.ip}:5353`,
    );
    assert.ok(answer, 'm1 answered');
    assert.equal(answer.id, 7001);
    assert.deepEqual(
      answer.answers?.map((a) => [a.name, a.type, dataOf(a)]),
      [['edge-m1.local', 'A', seg.hosts[0]!.ip]],
    );
    await eventually(
      async () => (await avahi3.resolveHost('edge-m1.local')) === seg.hosts[0]!.ip,
      WAIT_MS,
      'avahi-resolve to resolve edge-m1.local',
    );
  });

  it('with avahi bound to 5353 after the node, unicast to that host reaches avahi only (documented); the legacy query sent to 224.0.0.251 is answered by the node', async () => {
    const client = seg.hosts[3]!;
    const q = [{ name: DEFAULT_SERVICE_TYPE, type: 'PTR' }];
    const unicast = await legacyQuery(client, seg.hosts[0]!.ip, q, 7002);
    assert.ok(
      !unicast.some((r) =>
        r.answers?.some((a) => dataOf(a) === `${instanceLabel('m1')}.${DEFAULT_SERVICE_TYPE}`),
      ),
      `unicast to h1:5353 is delivered to avahi (the last socket bound), which does not hold m1's records: ${JSON.stringify(unicast)}`,
    );
    const fromM1 = await legacyAnswer(client, '224.0.0.251', q, 7003, `${seg.hosts[0]!.ip}:5353`);
    assert.ok(fromM1, 'm1 answers the legacy query sent to the group');
    assert.equal(fromM1.id, 7003);
    assert.deepEqual(
      fromM1.answers?.map((a) => dataOf(a)),
      [`${instanceLabel('m1')}.${DEFAULT_SERVICE_TYPE}`],
    );
  });

  it('services published by python-zeroconf (_foundation._tcp without cluster TXT, and _http._tcp) are not taken for peers', async () => {
    const before = (await m2.ask('stats')).stats;
    const fake = zeroconf(3, ['publish', `${DEFAULT_SERVICE_TYPE}.`, 'printer', '9100', 'path=/']);
    const web = zeroconf(3, ['publish', '_http._tcp.local.', 'zc-web', '80', 'path=/']);
    await fake.waitJson((o) => o.event === 'published', WAIT_MS, 'zeroconf to publish');
    await web.waitJson((o) => o.event === 'published', WAIT_MS, 'zeroconf to publish');
    await eventually(
      async () => (await m2.ask('stats')).stats.ignoredIncompatible > before.ignoredIncompatible,
      WAIT_MS,
      "m2 to see (and ignore) zeroconf's _foundation._tcp instance",
    );
    const { list } = await m2.ask('stats');
    assert.deepEqual(
      list.map((p: Event) => p.node),
      ['m1'],
      'only the real node is listed',
    );
    assert.ok(
      !m2.events.some(
        (e) =>
          e.event === 'discoveryConnect' &&
          String(e.metadata.address).startsWith(`${seg.hosts[3]!.ip}:`),
      ),
      'never dialled the zeroconf host',
    );
    assert.deepEqual(await m2.alive(), ['m1', 'm2']);
    // avahi sees all three _foundation._tcp instances: mDNS-level browsing is unaffected.
    await eventually(
      async () =>
        (await avahi3.browse('_foundation._tcp'))
          .map((s) => s.name)
          .filter((n, i, a) => a.indexOf(n) === i)
          .sort()
          .join() === [instanceLabel('m1'), instanceLabel('m2'), 'printer'].sort().join(),
      WAIT_MS,
      'avahi to list m1, m2 and the zeroconf instance',
    );
    fake.child.stdin!.end();
    web.child.stdin!.end();
    await fake.waitJson((o) => o.event === 'unpublished', WAIT_MS, 'zeroconf to unpublish');
    await web.waitJson((o) => o.event === 'unpublished', WAIT_MS, 'zeroconf to unpublish');
  });
});
