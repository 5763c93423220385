// libcluster-shaped configuration, mapped onto Foundation's strategies so Elixir teams can carry
// their `topologies` over as libcluster's README and module docs write them. Each libcluster key
// maps to one of our options, or is known to libcluster but has no meaning here (Erlang node
// naming, epmd, MFA hooks) and is accepted with a note saying so (logged once when the cluster
// starts), or is unknown and refused with a coded error naming it. docs/migrating-from-libcluster.md
// has the table.
import { FoundationError } from '../errors.js';

/**
 * A libcluster key accepted but treated differently. `warn` when a behaviour the user configured
 * is not carried out (a connect hook); `info` when the key only named Erlang things.
 */
export interface LibclusterNote {
  level: 'warn' | 'info';
  key: string;
  text: string;
}

/** What `mapTopologies` makes of one topology. */
export interface MappedTopology {
  discovery: Record<string, unknown> & { strategy: string };
  /**
   * One sentence per libcluster key that Foundation accepts but treats differently (ignored, or
   * replaced by something of its own); the cluster logs each once when it starts.
   */
  notes: LibclusterNote[];
  /** Our option name → the libcluster key it came from, so errors can name the key as written. */
  origin: Record<string, string>;
}

interface Mapping {
  /** Our strategy name. */
  strategy: string;
  /** libcluster key → our option name (with an optional value conversion). */
  keys: Record<string, string | [string, (v: unknown) => unknown]>; // polling_interval is ms in both
  /** libcluster keys with no meaning in Foundation (accepted, noted), and why. */
  ignored: Record<string, string>;
  /** Combines keys after mapping (e.g. DNSSRV's service + namespace into one query name). */
  finish?: (
    mapped: Record<string, unknown>,
    config: Record<string, unknown>,
    env: NodeJS.ProcessEnv,
    notes: LibclusterNote[],
  ) => void;
}

/** Elixir atoms arrive as ':pods' or 'pods'. */
const atom = (v: unknown) => (typeof v === 'string' ? v.replace(/^:/, '') : v);

/**
 * An Erlang node name (`:"a@127.0.0.1"`, `:a@host`, `"a@host"`, `'a@host'`) or a plain host
 * (`host`, `host:port`) → the host part, with a port when one was written. Foundation dials
 * `host:port` and has no epmd to ask for ports: a host without one gets the strategy's `port`
 * option, else this node's own port.
 */
export function erlangHost(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  let s = v.trim().replace(/^:/, '');
  const quoted = /^"(.*)"$/.exec(s) ?? /^'(.*)'$/.exec(s);
  if (quoted) s = quoted[1]!;
  const at = s.lastIndexOf('@');
  return at >= 0 ? s.slice(at + 1) : s;
}
const hostsList = (v: unknown) => (Array.isArray(v) ? v.map(erlangHost) : v);

/** libcluster's `timeout` / `polling_interval` in ms; `:infinity` means "once" (dropped: we retry). */
const interval = (v: unknown) => (atom(v) === 'infinity' ? undefined : v);

const NAMING = 'Erlang node naming: Foundation nodes are dialled by host:port, names are free-form';
const RESOLVER_FN =
  "an Elixir function; Foundation's own resolver option (`resolver`) takes DNS server addresses";

const MAPPINGS: Record<string, Mapping> = {
  'Cluster.Strategy.Epmd': {
    strategy: 'static',
    keys: {
      hosts: ['hosts', hostsList],
      timeout: ['pollingIntervalMs', interval],
      port: 'port', // Foundation's: the port of hosts written without one
    },
    ignored: {},
  },
  'Cluster.Strategy.LocalEpmd': { strategy: 'local', keys: {}, ignored: {} },
  'Cluster.Strategy.ErlangHosts': {
    strategy: 'hosts-file',
    // libcluster's `timeout` is how often it retries the hosts in the file: our polling interval.
    keys: { timeout: ['pollingIntervalMs', interval], path: 'path', port: 'port' },
    ignored: {},
  },
  'Cluster.Strategy.Gossip': {
    strategy: 'gossip',
    keys: {
      port: 'port',
      multicast_if: 'ifAddr',
      multicast_addr: 'multicastAddr',
      multicast_ttl: 'multicastTtl',
      broadcast_only: 'broadcastOnly',
      secret: 'secret',
    },
    ignored: {
      if_addr: '',
      delivery_mode: 'not used by libcluster 3.x either',
    },
    finish: (mapped, config, _env, notes) => {
      // libcluster binds its socket to if_addr; Linux delivers no multicast to a socket bound to a
      // unicast address, so Foundation binds 0.0.0.0 and uses if_addr as the interface to send
      // and join on when multicast_if does not name one.
      const ifAddr = config.if_addr;
      if (typeof ifAddr === 'string' && ifAddr !== '0.0.0.0') {
        if (mapped.ifAddr === undefined) {
          mapped.ifAddr = ifAddr;
          notes.push({
            level: 'info',
            key: 'config.if_addr',
            text: `if_addr "${ifAddr}": used as the interface to send beats and join the group on (Foundation always binds 0.0.0.0)`,
          });
        } else {
          notes.push({
            level: 'info',
            key: 'config.if_addr',
            text: `if_addr "${ifAddr}": ignored, multicast_if names the interface (Foundation always binds 0.0.0.0)`,
          });
        }
      }
      // "Use multicast_addr as the broadcast address" (libcluster's Gossip docs).
      if (mapped.broadcastOnly === true && mapped.multicastAddr !== undefined) {
        mapped.broadcastAddr = mapped.multicastAddr;
        delete mapped.multicastAddr;
      }
    },
  },
  'Cluster.Strategy.Kubernetes': {
    strategy: 'kubernetes',
    keys: {
      kubernetes_selector: 'selector',
      kubernetes_namespace: 'namespace',
      kubernetes_ip_lookup_mode: ['ipLookupMode', atom],
      kubernetes_master: 'master',
      kubernetes_service_name: 'serviceName',
      kubernetes_use_cached_resources: 'useCachedResources',
      polling_interval: 'pollingIntervalMs',
      kubernetes_service_account_path: 'serviceAccountPath',
      port: 'port',
    },
    ignored: {
      mode: `${NAMING}; Foundation dials the pod IP in every mode`,
      kubernetes_node_basename: NAMING,
      kubernetes_cluster_name:
        'only builds :hostname-mode node names and the API server name; set `master` or `apiServer` to reach another API server',
    },
  },
  'Cluster.Strategy.Kubernetes.DNS': {
    strategy: 'dns',
    keys: { service: 'query', polling_interval: 'pollingIntervalMs', port: 'port' },
    ignored: { application_name: NAMING, resolver: RESOLVER_FN },
  },
  'Cluster.Strategy.Kubernetes.DNSSRV': {
    strategy: 'dns-srv',
    keys: { polling_interval: 'pollingIntervalMs', port: 'port' },
    ignored: { application_name: NAMING, resolver: RESOLVER_FN, service: '', namespace: '' },
    // libcluster queries `<service>.<namespace>.svc.<CLUSTER_DOMAIN>`, CLUSTER_DOMAIN defaulting
    // to the absolute `cluster.local.`.
    finish: (mapped, config, env) => {
      if (typeof config.service === 'string' && typeof config.namespace === 'string') {
        const domain = env.CLUSTER_DOMAIN || 'cluster.local.';
        mapped.query = `${config.service}.${config.namespace}.svc.${domain}`;
      }
    },
  },
  'Cluster.Strategy.DNSPoll': {
    strategy: 'dns',
    // The module doc lists `poll_interval`, its code reads `polling_interval`: both are accepted.
    keys: {
      query: 'query',
      polling_interval: 'pollingIntervalMs',
      poll_interval: 'pollingIntervalMs',
      port: 'port',
    },
    ignored: { node_basename: NAMING, resolver: RESOLVER_FN },
  },
};

/** libcluster strategies Foundation knows and refuses, with what to use instead. */
const UNSUPPORTED: Record<string, string> = {
  'Cluster.Strategy.Rancher':
    "Rancher 1.x's metadata service (http://rancher-metadata) has no Foundation strategy; on Rancher 2 (Kubernetes) use Cluster.Strategy.Kubernetes or Kubernetes.DNS",
};

/** libcluster's module names, for docs and error messages. */
export const LIBCLUSTER_STRATEGIES = Object.keys(MAPPINGS);

/**
 * Keys of a topology itself (next to `strategy` and `config`) in libcluster. `connect`,
 * `disconnect` and `list_nodes` are `{module, function, args}` hooks into Erlang distribution;
 * Foundation's membership does that work, so they are accepted and noted.
 */
export const TOPOLOGY_KEYS: Record<string, string> = {
  connect:
    'an Erlang {module, function, args} hook libcluster calls to connect a node; Foundation joins through its own membership (SWIM over TCP, authenticated by the cluster secret), not through this function',
  disconnect:
    "an Erlang MFA hook libcluster calls to disconnect a node; in Foundation discovery only proposes, and membership forgets a node once it is down (see the strategy's disconnectRemoved)",
  list_nodes:
    'an Erlang MFA hook libcluster calls to list connected nodes; Foundation uses its membership list (node.members())',
  child_spec: 'an OTP child spec; Foundation starts the strategy itself',
};

function invalid(field: string, message: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${message}`, {
    field,
    issue: message,
  });
}

/**
 * Maps `topologies` to per-cluster `{ discovery, notes }`. Values are validated afterwards by the
 * discovery schema; this only translates names. Strategy names of our own ('gossip', ...) pass
 * through with their config as-is. `env` supplies CLUSTER_DOMAIN (DNSSRV).
 */
export function mapTopologies(
  topologies: Record<string, { strategy: string; config?: Record<string, unknown> }>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, MappedTopology> {
  const out: Record<string, MappedTopology> = {};
  for (const [name, topo] of Object.entries(topologies)) {
    const path = `topologies.${name}`;
    const strategy = topo.strategy.replace(/^:?"?Elixir\./, '').replace(/"$/, '');
    const config = topo.config ?? {};
    const notes: LibclusterNote[] = [];
    for (const key of Object.keys(TOPOLOGY_KEYS)) {
      if ((topo as Record<string, unknown>)[key] !== undefined)
        notes.push({ level: 'warn', key, text: `${key}: ${TOPOLOGY_KEYS[key]}` });
    }
    const m = MAPPINGS[strategy];
    if (!m) {
      if (/^[a-z][a-z-]*$/.test(strategy)) {
        out[name] = { discovery: { ...config, strategy }, notes, origin: {} };
        continue;
      }
      const why = UNSUPPORTED[strategy];
      throw invalid(
        `${path}.strategy`,
        why ?? `unknown strategy "${topo.strategy}"; known: ${LIBCLUSTER_STRATEGIES.join(', ')}`,
      );
    }
    const discovery: Record<string, unknown> & { strategy: string } = { strategy: m.strategy };
    const origin: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
      const target = m.keys[key];
      if (target === undefined) {
        const why = m.ignored[key];
        if (why !== undefined) {
          if (why)
            notes.push({
              level: 'info',
              key: `config.${key}`,
              text: `config.${key}: ignored (${why})`,
            });
          continue;
        }
        const known = [...Object.keys(m.keys), ...Object.keys(m.ignored)];
        throw invalid(
          `${path}.config.${key}`,
          `not a config key of ${strategy}${known.length ? `; known: ${known.join(', ')}` : ''}`,
        );
      }
      const mapped = typeof target === 'string' ? value : target[1](value);
      const ours = typeof target === 'string' ? target : target[0];
      if (mapped !== undefined) discovery[ours] = mapped;
      origin[ours] = key;
    }
    m.finish?.(discovery, config, env, notes);
    if (discovery.broadcastAddr !== undefined) origin.broadcastAddr = 'multicast_addr';
    if (discovery.ifAddr !== undefined && origin.ifAddr === undefined) origin.ifAddr = 'if_addr';
    if (strategy === 'Cluster.Strategy.Kubernetes.DNSSRV') origin.query = 'service';
    const sa = discovery.serviceAccountPath;
    if (typeof sa === 'string') {
      // libcluster's service-account folder holds our three file options.
      delete discovery.serviceAccountPath;
      discovery.tokenPath = `${sa}/token`;
      discovery.caPath = `${sa}/ca.crt`;
      discovery.namespacePath = `${sa}/namespace`;
    }
    for (const k of ['tokenPath', 'caPath', 'namespacePath'])
      if (discovery[k] !== undefined) origin[k] = 'kubernetes_service_account_path';
    out[name] = { discovery, notes, origin };
  }
  return out;
}
