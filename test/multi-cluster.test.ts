import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Foundation, FoundationError, type FoundationNode } from '../src/index.js';
import { resolveAll } from '../src/options.js';
import { until } from './helpers/proc.js';

const WEB = 'web-secret-0123456789';
const ML = 'ml-secret-9876543210';
const names = (n: { members(): Array<{ name: string; status: string }> }) =>
  n
    .members()
    // Alive or suspect: under CPU starvation a member may be briefly suspected; it is still a member.
    .filter((m) => m.status === 'alive' || m.status === 'suspect')
    .map((m) => m.name)
    .sort();

describe('multi-cluster nodes', () => {
  it('a node in two clusters with different secrets: members, messages and events never cross', async () => {
    const tag = `${process.pid}`;
    const nowhere = { strategy: 'static' as const, hosts: ['127.0.0.1:1'] };
    const hub = await Foundation.start({
      name: 'hub',
      logLevel: 'silent',
      clusters: {
        [`web-${tag}`]: { secret: WEB, discovery: nowhere },
        [`ml-${tag}`]: { secret: ML, discovery: nowhere },
      },
    });
    const web = hub.cluster(`web-${tag}`);
    const ml = hub.cluster(`ml-${tag}`);
    const started: FoundationNode[] = [hub];
    try {
      const w = await Foundation.start({
        name: 'w',
        cluster: `web-${tag}`,
        secret: WEB,
        logLevel: 'silent',
        discovery: { strategy: 'static', hosts: [web.address] },
      });
      started.push(w);
      const m = await Foundation.start({
        name: 'm',
        cluster: `ml-${tag}`,
        secret: ML,
        logLevel: 'silent',
        discovery: { strategy: 'static', hosts: [ml.address] },
      });
      started.push(m);
      const events: string[] = [];
      hub.on('memberUp', (member, info) => events.push(`${info.cluster}:${member.name}`));

      await until(
        () =>
          names(web).length === 2 &&
          names(ml).length === 2 &&
          names(w).length === 2 &&
          names(m).length === 2,
        10_000,
        'both clusters to form',
      );
      assert.deepEqual(names(web), ['hub', 'w']);
      assert.deepEqual(names(ml), ['hub', 'm']);
      assert.deepEqual(names(w), ['hub', 'w']);
      assert.deepEqual(names(m), ['hub', 'm']);
      assert.notEqual(web.address, ml.address, 'each cluster listens on its own port');
      assert.deepEqual(hub.clusters(), [`web-${tag}`, `ml-${tag}`]);

      // A message sent in one cluster never arrives in the other, even under the same kind.
      const got: string[] = [];
      web.messenger.on('note', (p, from) => got.push(`web:${from}:${p}`));
      ml.messenger.on('note', (p, from) => got.push(`ml:${from}:${p}`));
      w.messenger.send('hub', 'note', 'from-web');
      m.messenger.send('hub', 'note', 'from-ml');
      await until(() => got.length === 2, 20_000, 'both notes');
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got.sort(), ['ml:m:from-ml', 'web:w:from-web']);
      // The web member cannot address the ml member at all.
      assert.throws(() => w.messenger.send('m', 'note', 'x'), { code: 'FND_ERR_UNKNOWN_NODE' });

      // Dialling the other cluster's port is refused by the handshake.
      const errors: string[] = [];
      w.on('error', (e) => errors.push(e.code));
      await assert.rejects(w.join(ml.address), (e: unknown) => e instanceof FoundationError);
      assert.ok(
        errors.some((c) => c.startsWith('FND_ERR_HANDSHAKE_')),
        `got ${errors}`,
      );
      assert.deepEqual(names(ml), ['hub', 'm'], 'no member was added to ml');

      // The single-cluster API needs a cluster name when there are several.
      assert.throws(() => hub.members(), { code: 'FND_ERR_AMBIGUOUS_CLUSTER' });
      assert.throws(() => hub.cluster('nope'), { code: 'FND_ERR_UNKNOWN_CLUSTER' });
      // ...and keeps working unchanged with one.
      assert.equal(w.clusterName, `web-${tag}`);
      assert.equal(w.cluster().clusterName, `web-${tag}`);

      assert.ok(events.includes(`web-${tag}:w`) || names(web).includes('w'));
    } finally {
      await Promise.all(started.map((n) => n.stop()));
    }
  });

  it('per-cluster options are validated with the cluster in the field name', () => {
    assert.throws(() => resolveAll({ clusters: { web: { port: 70000 } } }), {
      code: 'FND_ERR_INVALID_OPTION',
      data: { field: 'clusters.web.port', issue: 'Too big: expected number to be <=65535' },
    });
    assert.throws(() => resolveAll({ cluster: 'x', clusters: { web: {} } }), {
      code: 'FND_ERR_INVALID_OPTION',
    });
    assert.throws(() => resolveAll({ clusters: { a: { name: 'x' }, b: {} } }), {
      code: 'FND_ERR_INVALID_OPTION',
      data: {
        field: 'clusters.b.name',
        issue: 'a node has one name in every cluster; set `name` at the top level',
      },
    });
    assert.throws(() => resolveAll({ clusters: { a: { port: 4370 }, b: { port: 4370 } } }), {
      code: 'FND_ERR_INVALID_OPTION',
      data: {
        field: 'clusters.b.port',
        issue: 'port 4370 is also used by cluster "a"; each cluster needs its own',
      },
    });
    assert.throws(() => resolveAll({ clusters: { web: { host: '0.0.0.0' } } }), {
      code: 'FND_ERR_INSECURE_BIND',
    });
    const two = resolveAll({
      name: 'n',
      secret: 's'.repeat(16),
      clusters: { a: {}, b: { secret: 't'.repeat(16) } },
    });
    assert.deepEqual(
      two.map((o) => [o.cluster, o.name, o.secret]),
      [
        ['a', 'n', 's'.repeat(16)],
        ['b', 'n', 't'.repeat(16)],
      ],
    );
  });

  it('libcluster topologies map onto our strategies; unknown strategies and keys are refused by name', () => {
    const [epmd] = resolveAll({
      topologies: {
        app: {
          strategy: 'Cluster.Strategy.Epmd',
          config: { hosts: ['127.0.0.1:4370'], timeout: 5000 },
        },
      },
    });
    assert.equal(epmd!.cluster, 'app');
    assert.deepEqual(epmd!.discovery, {
      strategy: 'static',
      hosts: ['127.0.0.1:4370'],
      pollingIntervalMs: 5000,
    });
    const [local] = resolveAll({
      topologies: { dev: { strategy: 'Elixir.Cluster.Strategy.LocalEpmd' } },
    });
    assert.deepEqual(local!.discovery, { strategy: 'local' });
    assert.throws(
      () => resolveAll({ topologies: { app: { strategy: 'Cluster.Strategy.Carrier' } } }),
      (e: FoundationError) =>
        e.code === 'FND_ERR_INVALID_OPTION' && e.data?.field === 'topologies.app.strategy',
    );
    assert.throws(
      () =>
        resolveAll({
          topologies: { app: { strategy: 'Cluster.Strategy.Epmd', config: { hostz: [] } } },
        }),
      (e: FoundationError) =>
        e.code === 'FND_ERR_INVALID_OPTION' &&
        e.data?.field === 'topologies.app.config.hostz' &&
        /hosts/.test(e.message),
    );
  });
});
