// TLS refusals are coded errors on both sides (real TLS sockets on 127.0.0.1): unknown CA (either
// side's certificate), missing client certificate, identity mismatch. Each side reports through the
// handshake-error path: node.on('error'), the `foundation:transport:handshake-error` diagnostics
// channel and a warn-level log line naming the peer address; the dialler's join rejects with it.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { ErrorCode, FoundationError } from '../../src/errors.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import type { Identity } from '../../src/transport/handshake.js';
import { TcpTransport, type TlsOptions } from '../../src/transport/tcp.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import { assertCoded, rejectsWithCode } from '../helpers/assert.js';
import { createPki, type TestCa, type TestPki } from '../helpers/certs.js';
import { captureLogger } from '../helpers/loopback.js';
import { nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';

interface Published {
  remote: string;
  code: ErrorCode;
  direction: 'in' | 'out';
}

/** A node on 127.0.0.1 with mutual TLS, its errors and its log lines. */
interface Observed {
  node: FoundationNode;
  errors: FoundationError[];
  lines: Array<Record<string, unknown>>;
}

const REMOTE = /^127\.0\.0\.1:\d+$/;

describe('TLS refusals are coded and reported on both sides', () => {
  let pki: TestPki;
  let clusterCa: TestCa;
  let rogueCa: TestCa;
  const nodes: FoundationNode[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const published: Published[] = [];
  const onPublish = (m: unknown) => published.push(m as Published);

  before(() => {
    pki = createPki();
    clusterCa = pki.ca('cluster-ca');
    rogueCa = pki.ca('rogue-ca');
    diagnostics.subscribe(CHANNELS.transportHandshakeError, onPublish);
  });
  after(() => {
    diagnostics.unsubscribe(CHANNELS.transportHandshakeError, onPublish);
    pki.cleanup();
  });
  beforeEach(() => {
    published.length = 0;
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function tlsNode(
    name: string,
    ca: TestCa,
    opts: { trust?: TestCa[]; ips?: string[]; checkServerIdentity?: boolean } = {},
  ): Promise<Observed> {
    const { logger, lines } = captureLogger();
    const node = await Foundation.start({
      name,
      secret: TEST_SECRET,
      logger,
      discovery: nullDiscovery(),
      host: '127.0.0.1',
      tls: {
        ...ca.issue(name, { ips: opts.ips }),
        ca: (opts.trust ?? [ca]).map((c) => c.cert),
        checkServerIdentity: opts.checkServerIdentity ?? false,
      },
    });
    nodes.push(node);
    const errors: FoundationError[] = [];
    node.on('error', (e) => errors.push(e));
    return { node, errors, lines };
  }

  /**
   * Asserts `side` reported exactly one refusal with `code`, refused `by` whom, on all three
   * paths, naming `remote` (or a 127.0.0.1 address when accepting: the dialler's port is random).
   */
  async function reported(
    side: Observed,
    code: ErrorCode,
    direction: 'in' | 'out',
    by: 'local' | 'peer',
    remote?: string,
  ): Promise<FoundationError> {
    await waitUntil(() => side.errors.length > 0, `${side.node.name} reports ${code}`);
    assert.equal(side.errors.length, 1, side.errors.map((e) => e.message).join('\n'));
    const err = side.errors[0]!;
    assertCoded(err, code);
    assert.equal(err.data?.by, by, err.message);
    const where = String(err.data?.remote);
    if (remote) assert.equal(where, remote);
    else assert.match(where, REMOTE);
    const warn = side.lines.find((l) => l.level === 40 && l.code === code);
    assert.ok(warn, `${side.node.name} logs a warning with ${code}`);
    assert.equal(warn.remote, where, 'the log line names the peer address');
    assert.ok(
      published.some((p) => p.code === code && p.direction === direction && p.remote === where),
      `${code} (${direction}) published on ${CHANNELS.transportHandshakeError}`,
    );
    return err;
  }

  it("unknown CA, the dialler's certificate: the acceptor refuses it, the dialler learns why", async () => {
    const a = await tlsNode('ca-a', clusterCa);
    // The intruder trusts the cluster CA; only its own certificate is foreign.
    const intruder = await tlsNode('intruder', rogueCa, { trust: [clusterCa, rogueCa] });
    const err = await rejectsWithCode(intruder.node.join(a.node.address), 'FND_ERR_TLS_UNKNOWN_CA');
    assert.equal(err.data?.inferred, true, 'the acceptor sent no alert: the dialler deduced it');
    await reported(intruder, 'FND_ERR_TLS_UNKNOWN_CA', 'out', 'peer', a.node.address);
    const seen = await reported(a, 'FND_ERR_TLS_UNKNOWN_CA', 'in', 'local');
    assert.match(String(seen.data?.reason), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|ISSUER|SELF_SIGNED/);
  });

  it("unknown CA, the acceptor's certificate: the dialler refuses it, the acceptor learns why", async () => {
    const a = await tlsNode('ca-a', clusterCa);
    const intruder = await tlsNode('intruder', rogueCa, { trust: [clusterCa, rogueCa] });
    const err = await rejectsWithCode(a.node.join(intruder.node.address), 'FND_ERR_TLS_UNKNOWN_CA');
    assert.equal(err.data?.by, 'local');
    await reported(a, 'FND_ERR_TLS_UNKNOWN_CA', 'out', 'local', intruder.node.address);
    const seen = await reported(intruder, 'FND_ERR_TLS_UNKNOWN_CA', 'in', 'peer');
    assert.equal(seen.data?.inferred, true);
  });

  it('missing client certificate: the acceptor refuses the dialler, which is told by the alert', async () => {
    const a = await tlsNode('nc-a', clusterCa);
    // Foundation's options require key and cert; any other TLS client can omit them, and a
    // transport given none behaves like one.
    const { logger, lines } = captureLogger();
    const failures: Array<{ code: ErrorCode; remote: string; direction: string }> = [];
    const self: Identity = {
      cluster: 'default',
      name: 'certless',
      incarnation: 1,
      address: { host: '127.0.0.1', port: 1 },
    };
    const mgr = testPeerManager(
      new TcpTransport({ tls: { ca: clusterCa.cert } as unknown as TlsOptions }),
      self,
      { log: logger },
      {
        handshakeError: (e, remote, direction) =>
          failures.push({ code: e.code, remote, direction }),
      },
    );
    cleanups.push(() => mgr.stop());
    const [host, port] = a.node.address.split(':');
    const err = await rejectsWithCode(
      mgr.join({ host: host!, port: Number(port) }),
      'FND_ERR_TLS_NO_CERT',
    );
    assert.equal(err.data?.by, 'peer');
    assert.deepEqual(failures, [
      { code: 'FND_ERR_TLS_NO_CERT', remote: a.node.address, direction: 'out' },
    ]);
    assert.ok(
      lines.some(
        (l) => l.level === 40 && l.code === 'FND_ERR_TLS_NO_CERT' && l.remote === a.node.address,
      ),
      'the dialler logs a warning naming the node it dialled',
    );
    assert.ok(published.some((p) => p.code === 'FND_ERR_TLS_NO_CERT' && p.direction === 'out'));
    await reported(a, 'FND_ERR_TLS_NO_CERT', 'in', 'local');
  });

  it('identity mismatch: the dialler refuses a certificate that does not name 127.0.0.1; the acceptor learns why', async () => {
    // a's certificate is from the cluster CA but names only 127.0.0.9, not the address it is dialled at.
    const a = await tlsNode('id-a', clusterCa, { ips: ['127.0.0.9'], checkServerIdentity: true });
    const b = await tlsNode('id-b', clusterCa, { checkServerIdentity: true });
    const err = await rejectsWithCode(b.node.join(a.node.address), 'FND_ERR_TLS_IDENTITY');
    assert.equal(err.data?.reason, 'ERR_TLS_CERT_ALTNAME_INVALID');
    await reported(b, 'FND_ERR_TLS_IDENTITY', 'out', 'local', a.node.address);
    const seen = await reported(a, 'FND_ERR_TLS_IDENTITY', 'in', 'peer');
    assert.equal(seen.data?.inferred, true);
    assert.match(seen.message, /does not name 127\.0\.0\.1/);
  });

  it('a plain node dialling a TLS node: the acceptor reports FND_ERR_TLS_HANDSHAKE with the TLS reason', async () => {
    const a = await tlsNode('pl-a', clusterCa);
    const plain = await Foundation.start({
      name: 'plain',
      secret: TEST_SECRET,
      logLevel: 'silent',
      discovery: nullDiscovery(),
      host: '127.0.0.1',
    });
    nodes.push(plain);
    plain.on('error', () => {});
    await assert.rejects(plain.join(a.node.address));
    const seen = await reported(a, 'FND_ERR_TLS_HANDSHAKE', 'in', 'local');
    assert.match(String(seen.data?.reason), /^ERR_SSL_/);
  });
});
