import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { HttpRegistryStrategy } from '../../examples/http-registry-strategy.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { until } from '../helpers/proc.js';

describe('examples/http-registry-strategy (a custom strategy)', () => {
  it('three nodes form a cluster from a registry served on loopback', async () => {
    let peers: string[] = [];
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(peers));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/peers`;
    const nodes: FoundationNode[] = [];
    try {
      const cluster = `http-${process.pid}`;
      for (const name of ['r1', 'r2', 'r3']) {
        const node = await Foundation.start({
          name,
          cluster,
          logLevel: 'silent',
          discovery: new HttpRegistryStrategy(url, 100),
        });
        nodes.push(node);
        peers = nodes.map((n) => n.address);
      }
      assert.equal(nodes[0]!.discovery.name, 'http-registry');
      const alive = (n: FoundationNode) => n.members().filter((m) => m.status === 'alive').length;
      await until(() => nodes.every((n) => alive(n) === 3), 10_000, 'three alive everywhere');
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
      server.close();
    }
  });
});
