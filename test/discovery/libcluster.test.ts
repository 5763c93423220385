// libcluster's own example configs (test/fixtures/libcluster-examples.ts, copied from its README
// and module docs) through the topology mapping, and clusters formed on loopback from those that
// can form there. Gossip's examples form clusters inside network namespaces (gossip.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { erlangHost, mapTopologies } from '../../src/discovery/libcluster.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { resolveAll } from '../../src/options.js';
import { LIBCLUSTER_EXAMPLES } from '../fixtures/libcluster-examples.js';
import { assertCoded } from '../helpers/assert.js';
import { captureLogger, sharedPort } from '../helpers/loopback.js';
import { fullyMeshed, waitUntil } from '../helpers/nodes.js';

const example = (source: string) => {
  const e = LIBCLUSTER_EXAMPLES.find((x) => x.source === source);
  assert.ok(e, `fixture has "${source}"`);
  return e;
};

/** What resolveAll makes of an example: the discovery of each topology, or the coded error. */
function resolve(topologies: object, env: NodeJS.ProcessEnv = {}) {
  try {
    return {
      ok: resolveAll({ topologies }, env).map((o) => ({
        cluster: o.cluster,
        discovery: o.discovery,
        notes: (o.notes ?? []).map((n) => `${n.level} ${n.key}`),
      })),
    };
  } catch (err) {
    assertCoded(err, 'FND_ERR_INVALID_OPTION');
    // The registry appends the code and its explanation; the option's own sentence comes first.
    const message = err.message.split(' [FND_ERR_')[0];
    return { error: { field: (err.data as { field: string }).field, message } };
  }
}

describe('libcluster example configs, as written in its README and module docs', () => {
  it('the fixture carries every key of each Elixir example', () => {
    assert.equal(LIBCLUSTER_EXAMPLES.length, 12);
    for (const e of LIBCLUSTER_EXAMPLES) {
      const code = e.elixir
        .split('\n')
        .filter((l) => !l.trim().startsWith('#'))
        .join('\n');
      const keys = [...code.matchAll(/(?<![\w:])([a-z_][a-z0-9_]*):\s/g)].map((m) => m[1]!);
      const [name, topo] = Object.entries(e.topologies)[0]!;
      const have = new Set([
        'topologies',
        name,
        ...Object.keys(topo),
        ...Object.keys(topo.config ?? {}),
      ]);
      for (const k of keys) assert.ok(have.has(k), `${e.source}: key "${k}" transcribed`);
      const mod = /strategy: (Cluster\.Strategy\.[\w.]+)/.exec(code)?.[1];
      if (mod) assert.equal(topo.strategy, mod);
    }
  });

  it('maps each example onto a Foundation strategy, or refuses it naming the key and the fix', () => {
    const expected: Record<string, unknown> = {
      'README.md, Usage': {
        ok: [
          {
            cluster: 'example',
            discovery: { strategy: 'static', hosts: ['127.0.0.1', '127.0.0.1'] },
            notes: [],
          },
        ],
      },
      'README.md, Example Configuration': {
        ok: [
          {
            cluster: 'epmd_example',
            discovery: { strategy: 'static', hosts: ['127.0.0.1', '127.0.0.1'] },
            notes: ['warn connect', 'warn disconnect', 'warn list_nodes'],
          },
        ],
      },
      'lib/strategy/epmd.ex, @moduledoc': {
        ok: [
          {
            cluster: 'epmd_example',
            discovery: {
              strategy: 'static',
              pollingIntervalMs: 30000,
              hosts: ['127.0.0.1', '127.0.0.1'],
            },
            notes: [],
          },
        ],
      },
      'lib/strategy/local_epmd.ex, @moduledoc': {
        ok: [{ cluster: 'local_epmd_example', discovery: { strategy: 'local' }, notes: [] }],
      },
      'lib/strategy/erlang_hosts.ex, @moduledoc': {
        ok: [
          {
            cluster: 'erlang_hosts_example',
            discovery: { strategy: 'hosts-file', pollingIntervalMs: 30000 },
            notes: [],
          },
        ],
      },
      // "somepassword" is 12 characters: refused under the key as written, saying what it needs.
      'lib/strategy/gossip.ex, @moduledoc (multicast)': {
        error: {
          field: 'topologies.gossip_example.config.secret',
          message:
            'option "topologies.gossip_example.config.secret": must be at least 16 characters (Foundation\'s discovery.secret)',
        },
      },
      'lib/strategy/gossip.ex, @moduledoc (broadcast only)': {
        ok: [
          {
            cluster: 'gossip_example',
            discovery: {
              strategy: 'gossip',
              port: 45892,
              broadcastOnly: true,
              broadcastAddr: '255.255.255.255',
            },
            notes: [],
          },
        ],
      },
      'lib/strategy/kubernetes.ex, @moduledoc': {
        ok: [
          {
            cluster: 'erlang_nodes_in_k8s',
            discovery: {
              strategy: 'kubernetes',
              selector: 'app=myapp',
              namespace: 'my_namespace',
              pollingIntervalMs: 10000,
            },
            notes: ['info config.mode', 'info config.kubernetes_node_basename'],
          },
        ],
      },
      'lib/strategy/kubernetes_dns.ex, @moduledoc': {
        ok: [
          {
            cluster: 'erlang_nodes_in_k8s',
            discovery: { strategy: 'dns', query: 'myapp-headless', pollingIntervalMs: 10000 },
            notes: ['info config.application_name'],
          },
        ],
      },
      'lib/strategy/kubernetes_dns_srv.ex, @moduledoc': {
        ok: [
          {
            cluster: 'erlang_nodes_in_k8s',
            discovery: {
              strategy: 'dns-srv',
              query: 'myapp-headless.default.svc.cluster.local.',
              pollingIntervalMs: 10000,
            },
            notes: ['info config.application_name'],
          },
        ],
      },
      'lib/strategy/rancher.ex, @moduledoc': {
        error: {
          field: 'topologies.rancher_example.strategy',
          message:
            'option "topologies.rancher_example.strategy": Rancher 1.x\'s metadata service (http://rancher-metadata) has no Foundation strategy; on Rancher 2 (Kubernetes) use Cluster.Strategy.Kubernetes or Kubernetes.DNS',
        },
      },
      'lib/strategy/dns_poll.ex, @moduledoc': {
        ok: [
          {
            cluster: 'dns_poll_example',
            discovery: { strategy: 'dns', pollingIntervalMs: 5000, query: 'my-app.example.com' },
            notes: ['info config.node_basename'],
          },
        ],
      },
    };
    for (const e of LIBCLUSTER_EXAMPLES) {
      assert.deepEqual(resolve(e.topologies), expected[e.source], e.source);
    }
  });

  it('the documented fixes work: a 16-character gossip secret; CLUSTER_DOMAIN for DNSSRV', () => {
    const gossip = structuredClone(
      example('lib/strategy/gossip.ex, @moduledoc (multicast)').topologies,
    );
    gossip.gossip_example!.config!.secret = 'somepassword-somepassword';
    assert.deepEqual(resolve(gossip), {
      ok: [
        {
          cluster: 'gossip_example',
          discovery: {
            strategy: 'gossip',
            port: 45892,
            ifAddr: '192.168.1.1',
            multicastAddr: '233.252.1.32',
            multicastTtl: 1,
            secret: 'somepassword-somepassword',
          },
          notes: [],
        },
      ],
    });
    const srv = example('lib/strategy/kubernetes_dns_srv.ex, @moduledoc').topologies;
    const r = resolve(srv, { CLUSTER_DOMAIN: 'corp.internal' });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(
      (r.ok[0]!.discovery as { query: string }).query,
      'myapp-headless.default.svc.corp.internal',
    );
  });

  it('maps every option libcluster documents for each strategy', () => {
    const all = mapTopologies(
      {
        epmd: {
          strategy: 'Elixir.Cluster.Strategy.Epmd',
          config: {
            hosts: ['app@10.0.0.5', ':"app@10.0.0.6"', "'b@host-b'", 'c@h:4000'],
            timeout: ':infinity',
            port: 4370,
          },
        },
        hosts: { strategy: 'Cluster.Strategy.ErlangHosts', config: { timeout: 5000 } },
        gossip: {
          strategy: 'Cluster.Strategy.Gossip',
          config: {
            port: 45893,
            if_addr: '10.0.0.5',
            multicast_addr: '233.252.1.33',
            multicast_ttl: 2,
            broadcast_only: false,
            secret: 's'.repeat(16),
          },
        },
        k8s: {
          strategy: 'Cluster.Strategy.Kubernetes',
          config: {
            mode: ':hostname',
            kubernetes_node_basename: 'myapp',
            kubernetes_selector: 'app=myapp',
            kubernetes_namespace: 'shop',
            kubernetes_service_name: 'myapp-headless',
            kubernetes_ip_lookup_mode: ':pods',
            kubernetes_use_cached_resources: true,
            kubernetes_master: 'k8s.example:6443',
            kubernetes_cluster_name: 'cluster',
            kubernetes_service_account_path: '/sa',
            polling_interval: 3000,
          },
        },
        dns: {
          strategy: 'Cluster.Strategy.Kubernetes.DNS',
          config: { service: 's', application_name: 'a', resolver: 'fn', polling_interval: 1 },
        },
        srv: {
          strategy: 'Cluster.Strategy.Kubernetes.DNSSRV',
          config: {
            service: 's',
            namespace: 'n',
            application_name: 'a',
            resolver: 'fn',
            port: 4000,
          },
        },
        poll: {
          strategy: 'Cluster.Strategy.DNSPoll',
          config: { query: 'q.example', node_basename: 'a', poll_interval: 7, resolver: 'fn' },
        },
      },
      {},
    );
    const d = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.discovery]));
    assert.deepEqual(d, {
      epmd: {
        strategy: 'static',
        hosts: ['10.0.0.5', '10.0.0.6', 'host-b', 'h:4000'],
        port: 4370,
      },
      hosts: { strategy: 'hosts-file', pollingIntervalMs: 5000 },
      gossip: {
        strategy: 'gossip',
        port: 45893,
        ifAddr: '10.0.0.5',
        multicastAddr: '233.252.1.33',
        multicastTtl: 2,
        broadcastOnly: false,
        secret: 's'.repeat(16),
      },
      k8s: {
        strategy: 'kubernetes',
        selector: 'app=myapp',
        namespace: 'shop',
        serviceName: 'myapp-headless',
        ipLookupMode: 'pods',
        useCachedResources: true,
        master: 'k8s.example:6443',
        pollingIntervalMs: 3000,
        tokenPath: '/sa/token',
        caPath: '/sa/ca.crt',
        namespacePath: '/sa/namespace',
      },
      dns: { strategy: 'dns', query: 's', pollingIntervalMs: 1 },
      srv: { strategy: 'dns-srv', query: 's.n.svc.cluster.local.', port: 4000 },
      poll: { strategy: 'dns', query: 'q.example', pollingIntervalMs: 7 },
    });
    assert.deepEqual(
      all.gossip!.notes.map((n) => n.key),
      ['config.if_addr'],
      'if_addr used as the interface is stated',
    );
    assert.deepEqual(
      all.k8s!.notes.map((n) => n.key),
      ['config.mode', 'config.kubernetes_node_basename', 'config.kubernetes_cluster_name'],
    );
    // The mapped options pass the strategies' validation.
    const { k8s, gossip, epmd } = all;
    const valid = resolve({
      k8s: { strategy: 'kubernetes', config: k8s!.discovery },
      gossip: { strategy: 'gossip', config: gossip!.discovery },
      epmd: { strategy: 'static', config: epmd!.discovery },
    });
    assert.ok(valid.ok, JSON.stringify(valid));
  });

  it('reads Erlang node names as hosts', () => {
    assert.equal(erlangHost(':"a@127.0.0.1"'), '127.0.0.1');
    assert.equal(erlangHost('app@host.example'), 'host.example');
    assert.equal(erlangHost(':app@host'), 'host');
    assert.equal(erlangHost("'app@10.0.0.5'"), '10.0.0.5');
    assert.equal(erlangHost('"app@10.0.0.5"'), '10.0.0.5');
    assert.equal(erlangHost('10.0.0.5:4000'), '10.0.0.5:4000');
    assert.equal(erlangHost(':"10.0.0.5"'), '10.0.0.5');
  });
});

describe('libcluster examples form clusters on loopback', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it("README's Epmd topology (node names, connect/disconnect/list_nodes) forms a cluster, each hook's treatment logged once", async () => {
    // The README's hosts are two nodes on 127.0.0.1, told apart by epmd. Foundation has no epmd:
    // the same shape on two loopback addresses, one shared port.
    const port = await sharedPort(['127.0.0.2', '127.0.0.3']);
    const topologies = structuredClone(example('README.md, Example Configuration').topologies);
    topologies.epmd_example!.config!.hosts = [':"a@127.0.0.2"', ':"b@127.0.0.3"'];
    const logs = [captureLogger(), captureLogger()];
    for (const [i, host] of ['127.0.0.2', '127.0.0.3'].entries()) {
      nodes.push(
        await Foundation.start({ name: `n${i}`, host, port, topologies, logger: logs[i]!.logger }),
      );
    }
    await waitUntil(() => fullyMeshed(nodes), 'the two nodes to join each other');
    for (const { lines } of logs) {
      const hooks = lines.filter((l) => typeof l.libcluster === 'string');
      assert.deepEqual(
        hooks.map((l) => [l.libcluster, l.level]),
        [
          ['connect', 40],
          ['disconnect', 40],
          ['list_nodes', 40],
        ],
      );
      assert.match(String(hooks[0]!.msg), /Foundation joins through its own membership/);
    }
  });

  it('ErlangHosts finds .hosts.erlang in the working directory and forms a cluster', async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3']);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'foundation-erlhosts-'));
    writeFileSync(path.join(dir, '.hosts.erlang'), "%% the cluster\n'127.0.0.2'.\n'127.0.0.3'.\n");
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const { topologies } = example('lib/strategy/erlang_hosts.ex, @moduledoc');
      for (const [i, host] of ['127.0.0.2', '127.0.0.3'].entries()) {
        nodes.push(
          await Foundation.start({ name: `h${i}`, host, port, topologies, logLevel: 'silent' }),
        );
      }
      await waitUntil(() => fullyMeshed(nodes), 'the nodes listed in .hosts.erlang to join');
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('LocalEpmd forms a cluster of the nodes on this host', async () => {
    const { topologies } = example('lib/strategy/local_epmd.ex, @moduledoc');
    // The cluster is named after the topology, so only this test's nodes are found.
    for (const i of [0, 1, 2]) {
      nodes.push(await Foundation.start({ name: `l${i}`, topologies, logLevel: 'silent' }));
    }
    await waitUntil(() => fullyMeshed(nodes), 'three local nodes to find each other');
    assert.deepEqual(
      nodes.map((n) => n.clusters()),
      [['local_epmd_example'], ['local_epmd_example'], ['local_epmd_example']],
    );
  });
});
