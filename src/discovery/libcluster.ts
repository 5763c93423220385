// libcluster-shaped configuration, mapped onto Foundation's strategies so Elixir teams can carry
// their `topologies` over. Each libcluster config key maps to one of our options, or is known to
// libcluster but has no meaning here (Erlang node naming, epmd) and is accepted and ignored, or is
// unknown and refused with a coded error naming it. docs/migrating-from-libcluster.md has the table.
import { FoundationError } from '../errors.js';

interface Mapping {
  /** Our strategy name. */
  strategy: string;
  /** libcluster key → our option name (with an optional value conversion). */
  keys: Record<string, string | [string, (v: unknown) => unknown]>; // polling_interval is ms in both
  /** libcluster keys with no meaning in Foundation (accepted, ignored). */
  ignored: string[];
  /** Combines keys after mapping (e.g. DNSSRV's service + namespace into one query name). */
  finish?: (mapped: Record<string, unknown>, config: Record<string, unknown>) => void;
}

/** Elixir atoms arrive as ':pods' or 'pods'. */
const atom = (v: unknown) => (typeof v === 'string' ? v.replace(/^:/, '') : v);
const hostsList = (v: unknown) =>
  Array.isArray(v) ? v.map((h) => (typeof h === 'string' ? h.replace(/^:/, '') : h)) : v;

const MAPPINGS: Record<string, Mapping> = {
  'Cluster.Strategy.Epmd': {
    strategy: 'static',
    keys: { hosts: ['hosts', hostsList] },
    ignored: ['timeout'],
  },
  'Cluster.Strategy.LocalEpmd': { strategy: 'local', keys: {}, ignored: [] },
  'Cluster.Strategy.ErlangHosts': {
    strategy: 'hosts-file',
    // libcluster's `timeout` is how often it retries the hosts in the file: our polling interval.
    keys: { timeout: 'pollingIntervalMs', path: 'path' },
    ignored: [],
  },
  'Cluster.Strategy.Gossip': {
    strategy: 'gossip',
    keys: {
      port: 'port',
      if_addr: 'ifAddr',
      multicast_addr: 'multicastAddr',
      multicast_ttl: 'multicastTtl',
      broadcast_only: 'broadcastOnly',
      secret: 'secret',
    },
    ignored: ['multicast_if', 'delivery_mode'],
  },
  'Cluster.Strategy.Kubernetes': {
    strategy: 'kubernetes',
    keys: {
      kubernetes_selector: 'selector',
      kubernetes_namespace: 'namespace',
      kubernetes_ip_lookup_mode: ['ipLookupMode', atom],
      kubernetes_master: 'master',
      polling_interval: 'pollingIntervalMs',
      kubernetes_service_account_path: 'serviceAccountPath',
    },
    ignored: [
      'mode',
      'kubernetes_node_basename',
      'kubernetes_service_name',
      'kubernetes_cluster_name',
    ],
  },
  'Cluster.Strategy.Kubernetes.DNS': {
    strategy: 'dns',
    keys: { service: 'query', polling_interval: 'pollingIntervalMs' },
    ignored: ['application_name', 'resolver'],
  },
  'Cluster.Strategy.Kubernetes.DNSSRV': {
    strategy: 'dns-srv',
    keys: { service: 'query', polling_interval: 'pollingIntervalMs' },
    ignored: ['application_name', 'namespace', 'resolver'],
    // libcluster queries `<service>.<namespace>.svc.cluster.local.`
    finish: (mapped, config) => {
      if (typeof config.service === 'string' && typeof config.namespace === 'string') {
        mapped.query = `${config.service}.${config.namespace}.svc.cluster.local`;
      }
    },
  },
  'Cluster.Strategy.DNSPoll': {
    strategy: 'dns',
    keys: { query: 'query', polling_interval: 'pollingIntervalMs' },
    ignored: ['node_basename', 'resolver'],
  },
};

/** libcluster's module names, for docs and error messages. */
export const LIBCLUSTER_STRATEGIES = Object.keys(MAPPINGS);

/** Keys libcluster accepts at the topology level that have no meaning here. */
const TOPOLOGY_IGNORED = ['connect', 'disconnect', 'list_nodes', 'child_spec'];

function invalid(field: string, message: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${message}`, {
    field,
    issue: message,
  });
}

/**
 * Maps `topologies` to per-cluster `{ discovery }` options. Values are validated afterwards by the
 * discovery schema; this only translates names. Strategy names of our own ('gossip', ...) pass
 * through with their config as-is.
 */
export function mapTopologies(
  topologies: Record<string, { strategy: string; config?: Record<string, unknown> }>,
): Record<string, { discovery: Record<string, unknown> & { strategy: string } }> {
  const out: Record<string, { discovery: Record<string, unknown> & { strategy: string } }> = {};
  for (const [name, topo] of Object.entries(topologies)) {
    const path = `topologies.${name}`;
    const strategy = topo.strategy.replace(/^Elixir\./, '');
    const config = topo.config ?? {};
    const m = MAPPINGS[strategy];
    if (!m) {
      if (/^[a-z][a-z-]*$/.test(strategy)) {
        out[name] = { discovery: { ...config, strategy } };
        continue;
      }
      throw invalid(
        `${path}.strategy`,
        `unknown strategy "${topo.strategy}"; known: ${LIBCLUSTER_STRATEGIES.join(', ')}`,
      );
    }
    const discovery: Record<string, unknown> & { strategy: string } = { strategy: m.strategy };
    for (const [key, value] of Object.entries(config)) {
      const target = m.keys[key];
      if (target === undefined) {
        if (m.ignored.includes(key) || TOPOLOGY_IGNORED.includes(key)) continue;
        const known = [...Object.keys(m.keys), ...m.ignored];
        throw invalid(
          `${path}.config.${key}`,
          `not a config key of ${strategy}${known.length ? `; known: ${known.join(', ')}` : ''}`,
        );
      }
      if (typeof target === 'string') discovery[target] = value;
      else discovery[target[0]] = target[1](value);
    }
    m.finish?.(discovery, config);
    const sa = discovery.serviceAccountPath;
    if (typeof sa === 'string') {
      // libcluster's service-account folder holds our three file options.
      delete discovery.serviceAccountPath;
      discovery.tokenPath = `${sa}/token`;
      discovery.caPath = `${sa}/ca.crt`;
      discovery.namespacePath = `${sa}/namespace`;
    }
    out[name] = { discovery };
  }
  return out;
}
