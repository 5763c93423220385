import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Foundation, NODE_SERVICE } from '../../src/index.js';
import { until } from '../helpers/proc.js';

describe('node services under the root supervisor', () => {
  it('every node runs foundation.node under node.root; other nodes can call it; stop shuts the tree down', async () => {
    const cluster = `svc-${process.pid}`;
    const nowhere = { name: 'none', start() {}, stop() {} };
    const a = await Foundation.start({
      name: 'a',
      cluster,
      logLevel: 'silent',
      discovery: nowhere,
    });
    const b = await Foundation.start({
      name: 'b',
      cluster,
      logLevel: 'silent',
      discovery: nowhere,
    });
    try {
      await b.join(a.address);
      // Both views: b calls a next, and b may learn that a is alive a moment after a saw b.
      const sees = (x: typeof a, name: string) =>
        x.members().some((m) => m.name === name && m.status === 'alive');
      await until(() => sees(a, 'b') && sees(b, 'a'), 20_000, 'pair');
      assert.deepEqual(
        a.root.whichChildren().map((c) => c.id),
        ['node-info'],
      );
      const info = await b.call<{ name: string; clusters: Array<{ members: unknown[] }> }>(
        { name: NODE_SERVICE, node: 'a' },
        'info',
      );
      assert.equal(info.name, 'a');
      assert.equal(info.clusters[0]!.members.length, 2);
      // The service is supervised: killed, it comes back under the same name.
      const first = a.whereis(NODE_SERVICE)!;
      a.exit(first, 'kill');
      await until(
        () => {
          const p = a.whereis(NODE_SERVICE);
          return p !== undefined && p.id !== first.id;
        },
        5000,
        'restart',
      );
      assert.equal(a.root.countChildren().active, 1);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    assert.equal(a.root.alive, false);
    assert.equal(a.actors.size, 0);
  });
});
