// The opt-in HTTP endpoints on real loopback sockets: /health, /ready (and its reasons), /metrics,
// /cluster, 404/405; the bind rule (non-loopback refused without a secret), a busy port, bad
// options, and nothing left listening after stop.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { FoundationNode } from '../../src/index.js';
import { Foundation } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { nullDiscovery, startMeshedCluster } from '../helpers/nodes.js';

const url = (n: FoundationNode, path: string) => `http://127.0.0.1:${n.http!.port}${path}`;

describe('http endpoints', () => {
  it('serve /health, /ready, /metrics and /cluster on loopback; 404 and 405 otherwise', async () => {
    const c = await startMeshedCluster(['a', 'b'], {
      http: { port: 0 },
      telemetry: { runtimeMetrics: false },
    });
    try {
      const [a] = c.nodes as [FoundationNode, FoundationNode];
      assert.ok(a.http!.port > 0);
      assert.notEqual(a.http!.port, c.nodes[1]!.http!.port);
      const health = await fetch(url(a, '/health'));
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok', node: 'a' });
      const ready = await fetch(url(a, '/ready'));
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { node: 'a', ready: true, reasons: [] });
      const metrics = await fetch(url(a, '/metrics'));
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get('content-type') ?? '', /text\/plain/);
      assert.match(await metrics.text(), /foundation_members\{[^}]*status="alive"[^}]*\} 2/);
      const cluster = await fetch(url(a, '/cluster'));
      const body = (await cluster.json()) as {
        node: string;
        clusters: Array<{
          name: string;
          members: Array<{ name: string; status: string; incarnation: number }>;
        }>;
        services: Record<string, unknown>;
        registrySize: number;
      };
      assert.equal(body.node, 'a');
      assert.deepEqual(
        body.clusters[0]!.members.map((m) => [m.name, m.status, typeof m.incarnation]),
        [
          ['a', 'alive', 'number'],
          ['b', 'alive', 'number'],
        ],
      );
      assert.equal(body.registrySize, 0);
      assert.equal(typeof body.services, 'object');
      assert.equal((await fetch(url(a, '/nope'))).status, 404);
      assert.equal((await fetch(url(a, '/health'), { method: 'POST' })).status, 405);
      const head = await fetch(url(a, '/health'), { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      const port = a.http!.port;
      await a.stop();
      assert.equal(a.http, undefined);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
    } finally {
      await c.stop();
    }
  });

  it('a client that sends nothing is cut off after the 10 s request timeout (408)', async () => {
    const c = await startMeshedCluster(['a'], {
      http: { port: 0 },
      telemetry: { runtimeMetrics: false },
    });
    try {
      const [a] = c.nodes as [FoundationNode];
      const sock = net.connect(a.http!.port, '127.0.0.1');
      sock.write('GET /health HTTP/1.1\r\nHost: x\r\n'); // headers never finished
      let got = '';
      sock.on('data', (d) => {
        got += d.toString();
      });
      const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
      // Node's default check runs every 30 s: a socket still open at 25 s was not cut off at 10.
      const limit = new Promise<'open'>((resolve) =>
        setTimeout(() => resolve('open'), 25_000).unref(),
      );
      assert.equal(await Promise.race([closed.then(() => 'closed' as const), limit]), 'closed');
      assert.match(got, /^HTTP\/1\.1 408/);
      sock.destroy();
    } finally {
      await c.stop();
    }
  });

  it('/ready is 503 with its reasons while the cluster has fewer members than readyMinMembers', async () => {
    const c = await startMeshedCluster(['a'], { http: { port: 0, readyMinMembers: 2 } });
    try {
      const r = await fetch(url(c.nodes[0]!, '/ready'));
      assert.equal(r.status, 503);
      assert.deepEqual(await r.json(), {
        node: 'a',
        ready: false,
        reasons: ['cluster default: 1 alive members'],
      });
    } finally {
      await c.stop();
    }
  });

  it('refuses a non-loopback host without a secret, a busy port and bad options; nothing is left running', async () => {
    const clock = new ManualClock();
    const mem = new InMemoryNetwork(clock, 1);
    const base = {
      name: 'x',
      logLevel: 'silent' as const,
      discovery: nullDiscovery(),
      transport: mem.transport(),
      clock,
    };
    // No secret given: the node runs on this user's loopback secret, so public HTTP is refused.
    const e1 = await rejectsWithCode(
      Foundation.start({ ...base, http: { port: 0, host: '0.0.0.0' } }),
      'FND_ERR_INSECURE_BIND',
    );
    assert.equal(e1.data?.field, 'http.host');
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as net.AddressInfo).port;
      const e2 = await rejectsWithCode(
        Foundation.start({ ...base, transport: mem.transport(), http: { port } }),
        'FND_ERR_LISTEN',
      );
      assert.equal(e2.data?.port, port);
    } finally {
      busy.close();
    }
    const e3 = await rejectsWithCode(
      Foundation.start({ ...base, http: { port: -1 } }),
      'FND_ERR_INVALID_OPTION',
    );
    assert.equal(e3.data?.field, 'http.port');
    const e4 = await rejectsWithCode(
      Foundation.start({ ...base, http: { port: 0, extra: 1 } as never }),
      'FND_ERR_INVALID_OPTION',
    );
    assert.equal(e4.data?.field, 'http.extra');
  });
});
