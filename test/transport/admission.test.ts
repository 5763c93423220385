// Admission of unauthenticated connections: the total and per-source caps, idempotent release,
// the source key (IPv4-mapped addresses fold into IPv4, IPv6 counts per /64), and the cap applied
// by PeerManager on a transport that takes no ticket itself (the in-memory network).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { resolveOptions } from '../../src/options.js';
import {
  Admission,
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_MAX_PENDING_CONNECTIONS,
  DEFAULT_MAX_PENDING_PER_SOURCE,
  type Refusal,
  sourceKey,
} from '../../src/transport/admission.js';
import type { Identity } from '../../src/transport/handshake.js';
import { Link } from '../../src/transport/link.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import type { RawConnection } from '../../src/transport/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { assertCoded } from '../helpers/assert.js';
import { captureLogger } from '../helpers/loopback.js';
import { TEST_SECRET } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';

describe('Admission', () => {
  it('caps pending connections per source, leaving room for other sources', () => {
    const refusals: Refusal[] = [];
    const adm = new Admission({ maxPending: 10, maxPendingPerSource: 3 }, (r) => refusals.push(r));
    const held = [1, 2, 3].map(() => adm.admit('10.0.0.2'));
    assert.ok(held.every((t) => t !== undefined));
    assert.equal(adm.admit('10.0.0.2'), undefined, 'a fourth from the same source is refused');
    assert.deepEqual(refusals, [
      { source: '10.0.0.2', limit: 'source', pending: 3, pendingFromSource: 3 },
    ]);
    assert.ok(adm.admit('10.0.0.3'), 'another source still gets in');
    assert.equal(adm.pending, 4);
    assert.equal(adm.pendingFrom('10.0.0.2'), 3);
    held[0]!.release();
    held[0]!.release(); // idempotent: a second release frees nothing more
    assert.equal(adm.pendingFrom('10.0.0.2'), 2);
    assert.equal(adm.pending, 3);
    assert.ok(adm.admit('10.0.0.2'), 'a freed slot can be taken again');
    assert.equal(adm.refused, 1);
  });

  it('caps the total across sources', () => {
    const adm = new Admission({ maxPending: 4, maxPendingPerSource: 4 });
    const tickets = ['a', 'b', 'c', 'd'].map((s) => adm.admit(`10.0.0.${s.charCodeAt(0)}`));
    assert.ok(tickets.every(Boolean));
    assert.equal(adm.admit('10.9.9.9'), undefined);
    for (const t of tickets) t!.release();
    assert.equal(adm.pending, 0);
    assert.equal(adm.pendingFrom('10.0.0.97'), 0);
    assert.ok(adm.admit('10.9.9.9'));
  });

  it('counts an IPv4-mapped address as its IPv4 source and IPv6 sources per /64', () => {
    assert.equal(sourceKey('::ffff:127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('fe80::1'), 'fe80:0:0:0::/64');
    assert.equal(sourceKey('127.0.0.1:40001'), '127.0.0.1:40001', 'in-memory addresses as given');
    const adm = new Admission({ maxPending: 10, maxPendingPerSource: 2 });
    assert.ok(adm.admit('2001:db8::1'));
    assert.ok(adm.admit('2001:db8::2'));
    assert.equal(adm.admit('2001:db8::3'), undefined, 'same /64: one source');
    assert.ok(adm.admit('2001:db8:0:1::3'), 'another /64: another source');
  });
});

describe('admission options', () => {
  it('default to the named constants and are validated naming the field', () => {
    const o = resolveOptions();
    assert.equal(o.maxPendingConnections, DEFAULT_MAX_PENDING_CONNECTIONS);
    assert.equal(o.maxPendingPerSource, DEFAULT_MAX_PENDING_PER_SOURCE);
    assert.equal(o.firstByteTimeoutMs, DEFAULT_FIRST_BYTE_TIMEOUT_MS);
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ maxPendingConnections: 0 }, 'maxPendingConnections'],
      [{ maxPendingPerSource: 1.5 }, 'maxPendingPerSource'],
      [{ firstByteTimeoutMs: -1 }, 'firstByteTimeoutMs'],
      [{ maxPendingConnections: 10, maxPendingPerSource: 11 }, 'maxPendingPerSource'],
    ];
    for (const [input, field] of bad) {
      let thrown: unknown;
      try {
        resolveOptions(input);
      } catch (err) {
        thrown = err;
      }
      assertCoded(thrown, 'FND_ERR_INVALID_OPTION');
      assert.equal(thrown.data?.field, field, thrown.message);
    }
  });
});

describe('PeerManager admission on the in-memory network', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  function identity(name: string): Identity {
    return { cluster: 'adm', name, incarnation: 1, address: { host: '127.0.0.1', port: 1 } };
  }

  it('one silent dialler holds at most maxPendingPerSource slots; another completes its handshake', async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock);
    const accepted: string[] = [];
    const mgr = testPeerManager(
      net.transport(),
      identity('server'),
      {
        clock,
        handshakeTimeoutMs: 60_000,
        connectTimeoutMs: 1000,
        maxPendingConnections: 8,
        maxPendingPerSource: 3,
      },
      {
        accept: (hello) => {
          accepted.push(hello.name);
          return undefined;
        },
      },
    );
    stops.push(() => mgr.stop());
    const address = await mgr.listen({ host: '127.0.0.1', port: 0 });

    // The attacker: one transport (one source) opening 10 connections that never speak.
    const attacker = net.transport();
    await attacker.listen({ host: '127.0.0.2', port: 0 }, () => {});
    stops.push(() => attacker.close());
    const silent: RawConnection[] = [];
    for (let i = 0; i < 10; i++) silent.push(await attacker.connect(address, 1000));
    const closed = new Set<number>();
    for (const [i, c] of silent.entries()) {
      c.setHandlers({ data: () => {}, drain: () => {}, close: () => closed.add(i) });
    }
    await net.settle();
    assert.equal(mgr.admission.pending, 3, 'three held');
    assert.equal(closed.size, 7, 'the other seven were closed at once');
    assert.equal(mgr.admission.refused, 7);

    // A legitimate dialler from another source completes its handshake meanwhile.
    const good = net.transport();
    await good.listen({ host: '127.0.0.3', port: 0 }, () => {});
    stops.push(() => good.close());
    const conn = await good.connect(address, 1000);
    const link = Link.client(conn, 'control', {
      self: identity('good'),
      secret: TEST_SECRET,
      maxFrameSize: () => 1 << 20,
      encrypt: false,
      handshakeTimeoutMs: 60_000,
      clock,
    });
    await net.settle();
    assert.equal((await link).peer.name, 'server');
    assert.deepEqual(accepted, ['good']);
    assert.equal(mgr.admission.pending, 3, 'the finished handshake released its slot');
  });

  it('refusals are logged at most once per interval, with their count: the first at once, the rest of a burst when the interval ends', async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock);
    const { logger, lines } = captureLogger();
    const mgr = testPeerManager(net.transport(), identity('server'), {
      clock,
      log: logger,
      handshakeTimeoutMs: 60_000,
      maxPendingPerSource: 1,
    });
    stops.push(() => mgr.stop());
    const address = await mgr.listen({ host: '127.0.0.1', port: 0 });
    const attacker = net.transport();
    await attacker.listen({ host: '127.0.0.2', port: 0 }, () => {});
    stops.push(() => attacker.close());
    for (let i = 0; i < 50; i++) await attacker.connect(address, 1000);
    await net.settle();
    assert.equal(mgr.admission.refused, 49);
    const refusals = () =>
      lines.filter((l) => String(l.msg).includes('connections refused')).map((l) => l.refused);
    assert.deepEqual(refusals(), [1], 'the first at once');
    await clock.tickAsync(10_000);
    assert.deepEqual(refusals(), [1, 48], 'the rest of the burst once the interval is over');
    await clock.tickAsync(60_000);
    assert.deepEqual(refusals(), [1, 48], 'nothing more to say');
  });
});
