import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  DnsStrategy,
  dnsSchema,
  parseResolvConf,
  searchNames,
} from '../../src/discovery/strategies/dns.js';
import { DnsSrvStrategy, dnsSrvSchema } from '../../src/discovery/strategies/dns-srv.js';
import type { DiscoveryContext, DiscoveryStrategy } from '../../src/discovery/strategy.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { type Address, formatAddress } from '../../src/transport/types.js';
import { systemClock } from '../../src/util/clock.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import { createLogger } from '../../src/util/log.js';
import { assertCoded } from '../helpers/assert.js';
import { TestDnsServer } from '../helpers/dns-server.js';
import { captureLogger, sharedPort } from '../helpers/loopback.js';
import { fullyMeshed, nullDiscovery, seesAlive, waitUntil } from '../helpers/nodes.js';

const NAME = 'nodes.foundation.test';
// Short intervals keep the test quick; nothing below depends on how long anything takes. The query
// timeout is long enough that a stalled test process does not turn an answer into a timeout.
const FAST = { pollingIntervalMs: 100, timeoutMs: 1000 };

/** Records what is published on one diagnostics channel until `stop()`. */
function listen(channel: string) {
  const events: Array<{ metadata: Record<string, unknown> }> = [];
  const fn = (m: unknown) => events.push(m as { metadata: Record<string, unknown> });
  diagnostics.subscribe(channel, fn);
  return { events, stop: () => diagnostics.unsubscribe(channel, fn) };
}

describe('dns discovery (A records from a real DNS server on loopback)', () => {
  let dns: TestDnsServer;
  const nodes: FoundationNode[] = [];
  const cluster = `dns-${process.pid}`;
  const start = (name: string, host: string, port: number, discovery: DiscoveryStrategy) =>
    Foundation.start({ name, cluster, host, port, logLevel: 'silent', discovery }).then((n) => {
      nodes.push(n);
      return n;
    });

  beforeEach(async () => {
    dns = await TestDnsServer.start();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await dns.close();
  });

  it('joins listed nodes, a node added later, reports a removed one, and re-joins a restarted one', async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    dns.setA(NAME, ['127.0.0.2', '127.0.0.3']);
    const strategy = (disconnectRemoved: boolean) =>
      new DnsStrategy({ query: NAME, resolver: dns.address, disconnectRemoved, ...FAST });
    const a = await start('a', '127.0.0.2', port, strategy(true));
    const b = await start('b', '127.0.0.3', port, strategy(false));
    await waitUntil(() => fullyMeshed([a, b]), 'a and b to find each other through DNS');

    // c does no discovery of its own: only the DNS polls of a and b can bring it in.
    const c = await start('c', '127.0.0.4', port, nullDiscovery());
    const before = dns.queries.length;
    await waitUntil(() => dns.queries.length >= before + 6, 'a few more polls');
    assert.ok(!seesAlive(a, ['c']), 'c is not listed yet, so nobody joins it');
    dns.setA(NAME, ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    await waitUntil(() => fullyMeshed([a, b, c]), 'c to be joined once its record exists');
    // As above for SRV: a's own poll must have listed c before c's record goes.
    const polled = dns.queries.length;
    await waitUntil(() => dns.queries.length >= polled + 6, 'a few more polls');

    const removed = listen(CHANNELS.discoveryDisconnect);
    try {
      dns.setA(NAME, ['127.0.0.2', '127.0.0.3']);
      const cAddress = formatAddress({ host: '127.0.0.4', port });
      await waitUntil(
        () => removed.events.some((e) => e.metadata.address === cAddress),
        'the removal of c to be reported',
      );
      assert.ok(
        removed.events.every(
          (e) => e.metadata.strategy === 'dns' && e.metadata.address === cAddress,
        ),
        'only c was removed',
      );
      // Discovery only reports; membership stays the judge and c is still alive.
      assert.ok(seesAlive(a, ['c']));
    } finally {
      removed.stop();
    }

    // libcluster #148: b restarts at the same address. The new b does no discovery itself, so
    // it is back only if a's polling joins it again.
    await b.stop();
    nodes.splice(nodes.indexOf(b), 1);
    await waitUntil(
      () => a.members().some((m) => m.name === 'b' && m.status === 'left'),
      'a to see b leave',
    );
    const b2 = await start('b', '127.0.0.3', port, nullDiscovery());
    await waitUntil(() => seesAlive(a, ['b']) && seesAlive(b2, ['a']), 'a to join the restarted b');
  });

  it('survives a silent server and NXDOMAIN, and recovers when the server answers again', async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    dns.setA(NAME, ['127.0.0.2', '127.0.0.3']);
    const a = await start(
      'a',
      '127.0.0.2',
      port,
      new DnsStrategy({ query: NAME, resolver: dns.address, disconnectRemoved: true, ...FAST }),
    );
    const b = await start('b', '127.0.0.3', port, nullDiscovery());
    await waitUntil(() => fullyMeshed([a, b]), 'a to join b');

    const errors = listen(CHANNELS.discoveryPollError);
    const removed = listen(CHANNELS.discoveryDisconnect);
    try {
      // Silent server: every poll times out. That is "unknown", not "empty": nothing is removed.
      dns.down = true;
      await waitUntil(() => errors.events.length >= 2, 'two failed polls');
      assert.equal(errors.events[0]!.metadata.strategy, 'dns');
      assert.equal(errors.events[0]!.metadata.cause, 'ETIMEOUT');
      assert.equal(removed.events.length, 0, 'a DNS outage disconnects nobody');
      assert.ok(seesAlive(a, ['b']));

      // NXDOMAIN is an answer: no peers this round, so the listed b is reported removed.
      dns.down = false;
      dns.remove(NAME);
      await waitUntil(
        () => removed.events.some((e) => e.metadata.address === b.address),
        'b reported removed after NXDOMAIN',
      );
      const failedSoFar = errors.events.length;

      // Records again: a newly listed node is joined, so the poll loop survived all of the above.
      const d = await start('d', '127.0.0.4', port, nullDiscovery());
      dns.setA(NAME, ['127.0.0.2', '127.0.0.4']);
      await waitUntil(() => seesAlive(a, ['d']) && seesAlive(d, ['a']), 'a to join d');
      assert.equal(errors.events.length, failedSoFar, 'NXDOMAIN and answers are not failures');
    } finally {
      errors.stop();
      removed.stop();
    }
  });
});

describe('dns-srv discovery (SRV records, distinct ports)', () => {
  let dns: TestDnsServer;
  const nodes: FoundationNode[] = [];
  const cluster = `dns-srv-${process.pid}`;
  const SRV = '_foundation._tcp.nodes.foundation.test';
  const start = (name: string, discovery: DiscoveryStrategy) =>
    Foundation.start({ name, cluster, logLevel: 'silent', discovery }).then((n) => {
      nodes.push(n);
      return n;
    });
  const target = (n: FoundationNode) => ({
    target: `${n.name}.nodes.foundation.test`,
    port: Number(n.address.split(':')[1]),
  });

  beforeEach(async () => {
    dns = await TestDnsServer.start();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await dns.close();
  });

  it('joins SRV targets on their own ports, reports a removed one, joins an added one', async () => {
    const strategy = (disconnectRemoved: boolean) =>
      new DnsSrvStrategy({ query: SRV, resolver: dns.address, disconnectRemoved, ...FAST });
    // Nodes start before any record exists (NXDOMAIN): they wait without failing.
    const x = await start('x', strategy(true));
    const y = await start('y', strategy(false));
    const z = await start('z', strategy(false));
    for (const n of [x, y, z]) dns.setA(`${n.name}.nodes.foundation.test`, ['127.0.0.1']);
    // A target without address records adds nothing and breaks nothing.
    dns.setSRV(SRV, [
      target(x),
      target(y),
      target(z),
      { target: 'gone.nodes.foundation.test', port: 9 },
    ]);
    await waitUntil(() => fullyMeshed([x, y, z]), 'x, y and z to find each other through SRV');
    // The mesh can form through y's and z's polls before x's own poll has listed z: let every
    // node poll a few more times, so that x has seen z listed before it goes.
    const polled = dns.queries.length;
    await waitUntil(() => dns.queries.length >= polled + 30, 'a few more polls');

    const removed = listen(CHANNELS.discoveryDisconnect);
    try {
      dns.setSRV(SRV, [target(x), target(y)]);
      await waitUntil(
        () => removed.events.some((e) => e.metadata.address === z.address),
        'the removal of z to be reported',
      );
      assert.equal(removed.events[0]!.metadata.strategy, 'dns-srv');
    } finally {
      removed.stop();
    }

    const w = await start('w', nullDiscovery());
    dns.setA('w.nodes.foundation.test', ['127.0.0.1']);
    dns.setSRV(SRV, [target(x), target(y), target(w)]);
    await waitUntil(() => seesAlive(x, ['w']) && seesAlive(w, ['x', 'y']), 'w to be joined');
  });
});

describe('dns strategies: records to addresses, and options', () => {
  /** Runs one strategy against a context that only records what it is asked to connect to. */
  async function firstRound(strategy: DiscoveryStrategy, self: Address): Promise<string[]> {
    const connects: string[] = [];
    const abort = new AbortController();
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const ctx: DiscoveryContext = {
      cluster: 'c',
      self: { name: 'me', address: self, incarnation: 1 },
      async connect(a) {
        connects.push(formatAddress(a));
        done();
        return undefined;
      },
      disconnect() {},
      knownNodes: () => [],
      clock: systemClock,
      log: createLogger('silent'),
      signal: abort.signal,
    };
    await strategy.start(ctx);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        finished,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('nothing was connected within 5 s')), 5000);
        }),
      ]);
      // The round's other connects are issued together with the first one.
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      clearTimeout(timer);
      abort.abort();
      await strategy.stop();
    }
    return connects.sort();
  }

  it('queries A for an IPv4 node by default, A and AAAA with family any, on the given port', async () => {
    const dns = await TestDnsServer.start();
    try {
      dns.setA(NAME, ['127.0.0.9']);
      dns.setAAAA(NAME, ['::1']);
      const self = { host: '127.0.0.1', port: 7000 };
      assert.deepEqual(
        await firstRound(new DnsStrategy({ query: NAME, resolver: dns.address }), self),
        ['127.0.0.9:7000'],
      );
      assert.ok(!dns.queries.includes(`AAAA ${NAME}`), 'auto on an IPv4 node asks for A only');
      assert.deepEqual(
        await firstRound(
          new DnsStrategy({ query: NAME, resolver: dns.address, family: 'any', port: 7100 }),
          self,
        ),
        ['127.0.0.9:7100', '[::1]:7100'],
      );
      // An IPv6 node asks for AAAA only (the port is given, else the record would be itself).
      assert.deepEqual(
        await firstRound(new DnsStrategy({ query: NAME, resolver: dns.address, port: 7200 }), {
          host: '::1',
          port: 7000,
        }),
        ['[::1]:7200'],
      );
    } finally {
      await dns.close();
    }
  });

  it('completes a short name through the resolv.conf search path like inet_res (Kubernetes.DNS service: "myapp-headless")', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'foundation-resolv-'));
    const resolvConf = path.join(dir, 'resolv.conf');
    // What the kubelet writes into a pod in namespace `shop`.
    writeFileSync(
      resolvConf,
      [
        'search shop.svc.cluster.local svc.cluster.local cluster.local',
        'nameserver 10.96.0.10',
        'options ndots:5',
      ].join('\n'),
    );
    const dns = await TestDnsServer.start();
    try {
      dns.setA('myapp-headless.shop.svc.cluster.local', ['127.0.0.7']);
      const self = { host: '127.0.0.1', port: 7000 };
      assert.deepEqual(
        await firstRound(
          new DnsStrategy({ query: 'myapp-headless', resolver: dns.address }, { resolvConf }),
          self,
        ),
        ['127.0.0.7:7000'],
      );
      assert.equal(dns.queries[0], 'A myapp-headless.shop.svc.cluster.local');
      // Without the search path the short name alone is asked, and has no records.
      const bare = dns.queries.length;
      const noSearch = path.join(dir, 'missing.conf');
      const none = new DnsStrategy(
        { query: 'myapp-headless', resolver: dns.address, pollingIntervalMs: 50 },
        { resolvConf: noSearch },
      );
      const { logger } = captureLogger();
      const abort = new AbortController();
      await none.start({
        cluster: 'c',
        self: { name: 'me', address: self, incarnation: 1 },
        connect: async () => undefined,
        disconnect() {},
        knownNodes: () => [],
        clock: systemClock,
        log: logger,
        signal: abort.signal,
      });
      await waitUntil(() => dns.queries.length > bare, 'one query');
      abort.abort();
      await none.stop();
      assert.equal(dns.queries[bare], 'A myapp-headless');
    } finally {
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const conf = parseResolvConf(
      'domain a.example\nsearch b.example. c.example\noptions ndots:2 rotate\n',
    );
    assert.deepEqual(conf, { search: ['b.example', 'c.example'], ndots: 2 });
    assert.deepEqual(searchNames('x', conf), ['x.b.example', 'x.c.example', 'x']);
    assert.deepEqual(searchNames('x.y.z', conf), ['x.y.z', 'x.y.z.b.example', 'x.y.z.c.example']);
    assert.deepEqual(searchNames('x.', conf), ['x'], 'a trailing dot: only as written');
  });

  it('logs a query without records once when it starts and once when records return, not every poll', async () => {
    const dns = await TestDnsServer.start();
    const { logger, lines } = captureLogger();
    const abort = new AbortController();
    const connects: string[] = [];
    const strategy = new DnsStrategy(
      { query: NAME, resolver: dns.address, pollingIntervalMs: 30, timeoutMs: 1000 },
      { resolvConf: '/nonexistent/resolv.conf' },
    );
    try {
      await strategy.start({
        cluster: 'c',
        self: { name: 'me', address: { host: '127.0.0.1', port: 7000 }, incarnation: 1 },
        connect: async (a) => {
          connects.push(formatAddress(a));
          return undefined;
        },
        disconnect() {},
        knownNodes: () => [],
        clock: systemClock,
        log: logger,
        signal: abort.signal,
      });
      await waitUntil(() => dns.queries.length >= 5, 'five polls of a name without records');
      const empty = () => lines.filter((l) => /no records for/.test(String(l.msg)));
      assert.equal(empty().length, 1, 'one warning, not one per poll');
      assert.equal(empty()[0]!.level, 40);
      assert.deepEqual(empty()[0]!.tried, [NAME]);
      dns.setA(NAME, ['127.0.0.8']);
      await waitUntil(() => connects.length > 0, 'the record to be joined');
      await waitUntil(
        () => lines.some((l) => /records for .* again/.test(String(l.msg))),
        'the recovery to be logged',
      );
      dns.remove(NAME);
      const n = dns.queries.length;
      await waitUntil(() => dns.queries.length >= n + 5, 'five more polls');
      assert.equal(empty().length, 2, 'logged again once the records went away again');
    } finally {
      abort.abort();
      await strategy.stop();
      await dns.close();
    }
  });

  it("DNSSRV as libcluster queries it: SRV target hosts, port-0 records on the node's own port, `port` overrides", async () => {
    const dns = await TestDnsServer.start();
    // libcluster's documented answer for `myapp-headless.default.svc.cluster.local`: port 0.
    const SVC = 'myapp-headless.default.svc.cluster.local';
    try {
      dns.setSRV(SVC, [
        { target: `myapp-0.${SVC}`, port: 0 },
        { target: `myapp-1.${SVC}`, port: 0 },
      ]);
      dns.setA(`myapp-0.${SVC}`, ['127.0.0.10']);
      dns.setA(`myapp-1.${SVC}`, ['127.0.0.11']);
      const self = { host: '127.0.0.1', port: 7000 };
      const env = { resolvConf: '/nonexistent/resolv.conf' };
      assert.deepEqual(
        await firstRound(
          new DnsSrvStrategy({ query: `${SVC}.`, resolver: dns.address }, env),
          self,
        ),
        ['127.0.0.10:7000', '127.0.0.11:7000'],
      );
      // The Service's port is HTTP (4000): `port` names the Foundation port instead.
      dns.setSRV(SVC, [
        { target: `myapp-0.${SVC}`, port: 4000 },
        { target: `myapp-1.${SVC}`, port: 4000 },
      ]);
      assert.deepEqual(
        await firstRound(
          new DnsSrvStrategy({ query: SVC, resolver: dns.address, port: 7100 }, env),
          self,
        ),
        ['127.0.0.10:7100', '127.0.0.11:7100'],
      );
      assert.deepEqual(
        await firstRound(new DnsSrvStrategy({ query: SVC, resolver: dns.address }, env), self),
        ['127.0.0.10:4000', '127.0.0.11:4000'],
      );
    } finally {
      await dns.close();
    }
  });

  it('refuses bad options with a coded error naming the field', () => {
    const bad: Array<[() => unknown, string]> = [
      [() => new DnsStrategy({ query: '' }), 'discovery.query'],
      [() => new DnsStrategy({ query: NAME, resolver: 'not an ip' }), 'discovery.resolver'],
      [() => new DnsStrategy({ query: NAME, port: 70000 }), 'discovery.port'],
      [
        () => new DnsSrvStrategy({ query: NAME, extra: 1 } as unknown as { query: string }),
        'discovery.extra',
      ],
    ];
    for (const [make, field] of bad) {
      assert.throws(make, (err: unknown) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal((err.data as { field: string }).field, field);
        return true;
      });
    }
    assert.ok(dnsSchema.safeParse({ strategy: 'dns', query: NAME, port: 4000 }).success);
    assert.ok(!dnsSchema.safeParse({ strategy: 'dns', query: NAME, bogus: true }).success);
    assert.ok(dnsSrvSchema.safeParse({ strategy: 'dns-srv', query: NAME }).success);
    assert.ok(!dnsSrvSchema.safeParse({ strategy: 'dns-srv' }).success);
  });
});
