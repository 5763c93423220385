// Options for one node: the typed interface users see, the frozen defaults with the reason for
// each, and validation at start (zod) that names the bad field and what is allowed.
import os from 'node:os';
import { z } from 'zod';
import { loadUserSecret } from './cluster/local-secret.js';
import { DEFAULT_MEMBERSHIP_LIMITS, type MembershipLimits } from './cluster/membership.js';
import { type MembershipTiming, PRESETS, type PresetName } from './cluster/presets.js';
import type { ConsensusOptions } from './coord/consensus.js';
import type { CoreOptions } from './core/options.js';
import { type LibclusterNote, mapTopologies } from './discovery/libcluster.js';
import { type DnsOptions, dnsSchema } from './discovery/strategies/dns.js';
import { type DnsSrvOptions, dnsSrvSchema } from './discovery/strategies/dns-srv.js';
import { type GossipOptions, gossipSchema } from './discovery/strategies/gossip.js';
import { type HostsFileOptions, hostsFileSchema } from './discovery/strategies/hosts-file.js';
import { type KubernetesOptions, kubernetesSchema } from './discovery/strategies/kubernetes.js';
import { type MdnsOptions, mdnsSchema } from './discovery/strategies/mdns.js';
import type { DiscoveryStrategy } from './discovery/strategy.js';
import { FoundationError } from './errors.js';
import {
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_MAX_PENDING_CONNECTIONS,
  DEFAULT_MAX_PENDING_PER_SOURCE,
} from './transport/admission.js';
import { DEFAULT_DIAL_BURST, DEFAULT_DIAL_RATE_PER_SEC } from './transport/dial-limiter.js';
import {
  DEFAULT_CHANNEL_MAX_FRAME,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_INBOUND_BUFFER,
} from './transport/protocol.js';
import type { TlsOptions } from './transport/tcp.js';
import type { Transport } from './transport/types.js';
import type { Clock } from './util/clock.js';
import type { Logger, LogLevel } from './util/log.js';

export type DiscoveryOptions =
  /** Picks a strategy from the environment; see docs/discovery.md. */
  | { strategy: 'auto' }
  /** Fixed seeds. */
  | { strategy: 'static'; hosts: string[]; port?: number; pollingIntervalMs?: number }
  /** Same-host, zero-config, file-based. */
  | { strategy: 'local'; directory?: string; pollingIntervalMs?: number }
  /** A/AAAA records of a name, e.g. a Kubernetes headless service. */
  | ({ strategy: 'dns' } & DnsOptions)
  /** SRV records of a name. */
  | ({ strategy: 'dns-srv' } & DnsSrvOptions)
  /** Pods or endpoints by label selector through the Kubernetes API. */
  | ({ strategy: 'kubernetes' } & KubernetesOptions)
  /** A file of host[:port] lines, re-read when it changes. */
  | ({ strategy: 'hosts-file' } & HostsFileOptions)
  /** UDP multicast heartbeats, authenticated (libcluster's Gossip). */
  | ({ strategy: 'gossip' } & GossipOptions)
  /** DNS-SD over mDNS: advertise and browse `_foundation._tcp.local`. */
  | ({ strategy: 'mdns' } & MdnsOptions);

/** Every built-in strategy name, for messages and docs. */
export const DISCOVERY_STRATEGIES = [
  'auto',
  'static',
  'local',
  'dns',
  'dns-srv',
  'kubernetes',
  'hosts-file',
  'gossip',
  'mdns',
] as const;

export interface FoundationOptions extends CoreOptions {
  // Fields that usually come from the environment (`process.env.X`) also take `undefined`, which
  // means "not given", so they type-check under exactOptionalPropertyTypes.
  /** Unique node name within the cluster. Default: `<hostname>-<pid>`. */
  name?: string | undefined;
  /** Cluster name; nodes of different clusters refuse each other. Default 'default'. */
  cluster?: string | undefined;
  /**
   * Shared secret (≥ 16 characters) for the HMAC handshake; never sent. Default: the
   * FOUNDATION_SECRET environment variable; else, on loopback, this user's secret (generated on
   * first use in `<tmpdir>/foundation-<uid>/secret`), so only this user's processes can join. Off
   * loopback one is required (or `insecure: true`).
   */
  secret?: string | undefined;
  /** Address to listen on. Default '127.0.0.1' (loopback: safe, same-host cluster). */
  host?: string | undefined;
  /** TCP port. Default 0 (the OS picks a free one; discovery publishes it). */
  port?: number | undefined;
  /** Address other nodes dial, when it differs from `host` (e.g. host '0.0.0.0'). */
  advertiseHost?: string | undefined;
  /** How to find other nodes. Default { strategy: 'auto' }. A DiscoveryStrategy object plugs in a custom one. */
  discovery?: DiscoveryOptions | DiscoveryStrategy;
  /**
   * Failure-detector timing. Default 'auto': 'local' on loopback, else 'lan'. 'local' on a
   * non-loopback host logs a warning at start: its 100 ms probe timeout flaps on real links.
   */
  preset?: PresetName | 'auto';
  /** Overrides of single timing fields of the preset. */
  membership?: Partial<MembershipTiming>;
  /** Allow a non-loopback listener without a secret. Default false: refuse to start. */
  insecure?: boolean;
  /** Wrap every connection in TLS with mutual certificate authentication. Default off. */
  tls?: TlsOptions;
  /** Largest frame accepted or sent, in bytes. Default 128 MiB. Larger: bigger single messages, more memory per connection. */
  maxFrameSize?: number;
  /**
   * Encrypt every record (AES-256-GCM) instead of authenticating it only (AES-256-GMAC over the
   * clear bytes). Default false: authentication keeps strangers out and costs little; encryption
   * also hides message contents from the network, at the cost of a copy of every byte sent
   * (see docs/benchmarks.md). A connection is encrypted if either of its two nodes asks.
   */
  encrypt?: boolean;
  /**
   * Bytes all inbound connections together may hold in partly received frames of 1 MiB or more.
   * Default 512 MiB. A frame that does not fit closes its connection (FND_ERR_INBOUND_MEMORY).
   */
  maxInboundBufferBytes?: number;
  /** Outbound queue bound per peer and channel, in bytes, before sends fail with FND_ERR_BACKPRESSURE. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Messages of at least this many encoded bytes go on the `bulk` channel. Default 64 KiB, at most 8 MiB (the `default` channel's frame limit). */
  bulkThreshold?: number;
  /**
   * Busy polling, in microseconds: after sending or receiving, keep the event loop polling the
   * sockets this long instead of sleeping, so a reply that comes back within it is read without a
   * wake-up (docs/benchmarks.md, "Busy polling"). Adaptive: after a send only while recent sends
   * were answered within the window, after a receive only while the next message usually followed
   * within it, so a node whose traffic comes further apart never polls. Cuts one-at-a-time round
   * trips, most on virtual machines, at the cost of up to this much CPU after a send or receive
   * where it polls. TCP transport only. Default 200; 0 turns it off; at most 10 000.
   */
  busyPollUs?: number;
  /** Default request timeout in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Handshake deadline in ms. Default 5000. */
  handshakeTimeoutMs?: number;
  /**
   * TCP connect deadline in ms. Default from the preset: max(500, probeIntervalMs / 2), at most
   * 3000 (`local` and `lan` 500, `wan` 2500). Short, so a dial whose SYN a dead link swallowed
   * gives way to the next re-dial soon after the link is back (a lost SYN is retransmitted only
   * after 1 s anyway).
   */
  connectTimeoutMs?: number;
  /**
   * Most inbound connections accepted but not yet authenticated, in total. Default 256. Higher:
   * more peers may handshake at once; each pending one holds a socket (file descriptor).
   */
  maxPendingConnections?: number;
  /**
   * Most of those from one source address (IPv6: one /64). Default 32. Lower: one source holds
   * fewer slots; too low refuses bursts of dials from many nodes behind one address (they retry).
   */
  maxPendingPerSource?: number;
  /**
   * An accepted socket that sends nothing for this long, in ms, is dropped. Default 2000. Every
   * real peer speaks at once (HELLO or TLS ClientHello); raise it only for very slow links.
   */
  firstByteTimeoutMs?: number;
  /** Send all channels over one connection. Only for measuring head-of-line blocking. Default false. */
  singleConnection?: boolean;
  /**
   * Caps on what one member's messages can make this node learn and dial (docs/membership.md,
   * "Trust"). Defaults: `learnPerMessage` 16 unknown members dialled per message,
   * `pendingMembers` 64 dials to non-members in flight. Higher: faster discovery of very large
   * clusters; lower: less a hostile member can make this node dial.
   */
  membershipLimits?: Partial<MembershipLimits>;
  /**
   * Outbound dial limits (docs/membership.md, "Dial limits"). Defaults: `ratePerSec` 50 dials/s,
   * `burst` 100, per-address backoff after a failed dial from `backoffBaseMs` (default
   * min(100, probeIntervalMs / 2) ms) doubling up to `backoffMaxMs` (default
   * max(500, reconnectIntervalMs / 2) ms). Higher rates: faster formation of very large clusters;
   * lower: fewer connections anyone can make this node open.
   */
  dialLimits?: Partial<DialLimitOptions>;
  /** Log level of the built-in pino logger. Default 'warn'. */
  logLevel?: LogLevel;
  /** Your own logger (a pino instance works). Overrides logLevel. */
  logger?: Logger;
  /** Transport seam: default TCP; tests pass an in-memory one. */
  transport?: Transport;
  /** Clock seam: default the system clock; tests pass a ManualClock. */
  clock?: Clock;
  /**
   * Join several isolated clusters: cluster name → that cluster's options (its own port, secret,
   * discovery, preset, ...). Top-level options are the defaults for every cluster.
   */
  clusters?: Record<string, ClusterOptions>;
  /**
   * libcluster-shaped configuration: `{ name: { strategy: 'Cluster.Strategy.Gossip', config: {...} } }`.
   * Each topology becomes a cluster of that name; see docs/migrating-from-libcluster.md.
   */
  topologies?: Record<string, LibclusterTopology>;
}

/** Options of one cluster inside `clusters`: everything but the cluster name (the key) and nesting. */
export type ClusterOptions = Omit<
  FoundationOptions,
  'cluster' | 'clusters' | 'topologies' | keyof CoreOptions
>;

export interface DialLimitOptions {
  /** Sustained dials per second, all addresses together. Default 50. */
  ratePerSec: number;
  /** Dials allowed at once above the sustained rate. Default 100. */
  burst: number;
  /** Wait in ms before re-dialling an address whose dial failed; doubles per failure. */
  backoffBaseMs: number;
  /** Longest such wait in ms. */
  backoffMaxMs: number;
}

export interface LibclusterTopology {
  /** A libcluster strategy module name, e.g. 'Cluster.Strategy.Gossip', or one of ours, e.g. 'gossip'. */
  strategy: string;
  /** The strategy's libcluster config keys (snake_case), e.g. { multicast_ttl: 1 }. */
  config?: Record<string, unknown>;
  /**
   * libcluster's `{module, function, args}` hooks into Erlang distribution, e.g.
   * `['net_kernel', 'connect_node', []]`. Accepted so a config carries over as written; Foundation's
   * membership connects, disconnects and lists nodes itself, and says so once in the log.
   */
  connect?: unknown;
  disconnect?: unknown;
  list_nodes?: unknown;
  child_spec?: unknown;
}

/** Defaults, each chosen for the zero-config same-host case and safe everywhere else. */
export const DEFAULTS = Object.freeze({
  cluster: 'default',
  // Loopback by default: nothing is exposed until the user asks, and no secret option is needed
  // (the per-user secret authenticates; see withDefaultSecrets).
  host: '127.0.0.1',
  port: 0,
  // 128 MiB: room for a 64 MiB payload, while a hostile length prefix can never make us allocate gigabytes.
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  encrypt: false,
  // 512 MiB: four maximum-size frames arriving at once; beyond that memory would grow with the
  // number of peers sending large frames.
  maxInboundBufferBytes: DEFAULT_MAX_INBOUND_BUFFER,
  // 64 MiB per (peer, channel): absorbs bursts, bounded so a slow peer cannot exhaust memory.
  maxQueueBytes: 64 * 1024 * 1024,
  // 64 KiB: above this, serialising a message takes long enough that it should not share a connection with heartbeats.
  bulkThreshold: 64 * 1024,
  // 200 µs, adaptive: polls only while traffic comes back within the window (a conversation), so
  // a node whose traffic comes further apart never spins; covers a loopback or same-rack round trip.
  busyPollUs: 200,
  requestTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  connectTimeoutMs: 3_000,
  // Pre-authentication limits: see src/transport/admission.ts and docs/security.md.
  maxPendingConnections: DEFAULT_MAX_PENDING_CONNECTIONS,
  maxPendingPerSource: DEFAULT_MAX_PENDING_PER_SOURCE,
  firstByteTimeoutMs: DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  logLevel: 'warn' as LogLevel,
});

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const pem = z.union([z.string().min(1), z.instanceof(Buffer)]);
const ms = z.number().int().positive();

/** Built-in strategies, told apart by `strategy` (so errors name the bad field inside). */
const builtinDiscovery = z.discriminatedUnion('strategy', [
  z.strictObject({ strategy: z.literal('auto') }),
  z.strictObject({
    strategy: z.literal('static'),
    hosts: z.array(z.string().min(1)).min(1),
    port: z.number().int().min(1).max(65535).optional(),
    pollingIntervalMs: ms.optional(),
  }),
  z.strictObject({
    strategy: z.literal('local'),
    directory: z.string().min(1).optional(),
    pollingIntervalMs: ms.optional(),
  }),
  dnsSchema,
  dnsSrvSchema,
  kubernetesSchema,
  hostsFileSchema,
  gossipSchema,
  mdnsSchema,
]);

const isStrategyObject = (v: unknown): v is DiscoveryStrategy =>
  isObj(v) &&
  typeof v.name === 'string' &&
  typeof v.start === 'function' &&
  typeof v.stop === 'function';

const discoverySchema = z.unknown().transform((v, ctx): DiscoveryOptions | DiscoveryStrategy => {
  if (isStrategyObject(v)) return v;
  const parsed = builtinDiscovery.safeParse(v);
  if (parsed.success) return parsed.data as DiscoveryOptions;
  const known =
    isObj(v) && DISCOVERY_STRATEGIES.includes(v.strategy as (typeof DISCOVERY_STRATEGIES)[number]);
  for (const issue of parsed.error.issues) {
    ctx.issues.push({
      code: 'custom',
      input: v,
      path: !known
        ? []
        : issue.code === 'unrecognized_keys'
          ? [...issue.path, issue.keys[0]!]
          : issue.path,
      message: known ? issue.message : DISCOVERY_HINT,
    });
  }
  return z.NEVER;
});

const DISCOVERY_HINT = `expected { strategy: ${DISCOVERY_STRATEGIES.map((s) => `'${s}'`).join(' | ')}, ... } or a strategy object with name, start() and stop()`;

const timingSchema = z.strictObject({
  probeIntervalMs: ms.optional(),
  probeTimeoutMs: ms.optional(),
  indirectChecks: z.number().int().min(0).max(16).optional(),
  suspicionMinMs: ms.optional(),
  suspicionMaxMs: ms.optional(),
  suspicionConfirmations: z.number().int().min(0).max(16).optional(),
  syncIntervalMs: ms.optional(),
  reconnectIntervalMs: ms.optional(),
  downRetentionMs: ms.optional(),
  awarenessMax: z.number().int().min(0).max(32).optional(),
  lagToleranceMs: ms.optional(),
});

const clusterSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\s\p{Cc}]+$/u, 'must not contain whitespace or control characters')
    .optional(),
  cluster: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\s\p{Cc}]+$/u, 'must not contain whitespace or control characters')
    .optional(),
  secret: z.string().min(16, 'must be at least 16 characters').optional(),
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65535).optional(),
  advertiseHost: z.string().min(1).optional(),
  discovery: discoverySchema.optional(),
  preset: z.enum(['auto', 'local', 'lan', 'wan']).optional(),
  membership: timingSchema.optional(),
  insecure: z.boolean().optional(),
  tls: z
    .strictObject({
      key: pem,
      cert: pem,
      ca: z.union([pem, z.array(pem)]),
      checkServerIdentity: z.boolean().optional(),
    })
    .optional(),
  maxFrameSize: z
    .number()
    .int()
    .min(1024)
    .max(2 ** 31)
    .optional(),
  encrypt: z.boolean().optional(),
  maxInboundBufferBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .optional(),
  maxQueueBytes: z.number().int().min(1024).optional(),
  // At most the default channel's frame limit: smaller messages stay on `default`.
  bulkThreshold: z.number().int().min(1).max(DEFAULT_CHANNEL_MAX_FRAME).optional(),
  busyPollUs: z.number().int().min(0).max(10_000).optional(),
  requestTimeoutMs: ms.optional(),
  handshakeTimeoutMs: ms.optional(),
  connectTimeoutMs: ms.optional(),
  maxPendingConnections: z.number().int().min(1).max(65_536).optional(),
  maxPendingPerSource: z.number().int().min(1).max(65_536).optional(),
  firstByteTimeoutMs: ms.optional(),
  singleConnection: z.boolean().optional(),
  membershipLimits: z
    .strictObject({
      learnPerMessage: z.number().int().min(1).max(10_000).optional(),
      pendingMembers: z.number().int().min(1).max(10_000).optional(),
    })
    .optional(),
  dialLimits: z
    .strictObject({
      ratePerSec: z.number().positive().max(100_000).optional(),
      burst: z.number().int().min(1).max(100_000).optional(),
      backoffBaseMs: ms.optional(),
      backoffMaxMs: ms.optional(),
    })
    .optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  logger: z
    .custom<Logger>(
      (v) => isObj(v) && typeof v.warn === 'function' && typeof v.child === 'function',
      {
        message: 'expected a pino-compatible logger',
      },
    )
    .optional(),
  transport: z
    .custom<Transport>(
      (v) =>
        isObj(v) &&
        typeof v.listen === 'function' &&
        typeof v.connect === 'function' &&
        typeof v.close === 'function',
      {
        message: 'expected a Transport (listen, connect, close)',
      },
    )
    .optional(),
  clock: z
    .custom<Clock>(
      (v) => isObj(v) && typeof v.now === 'function' && typeof v.setTimeout === 'function',
      {
        message: 'expected a Clock (now, wallNow, setTimeout, setInterval)',
      },
    )
    .optional(),
});
const clusterKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\s\p{Cc}]+$/u, 'must not contain whitespace or control characters');

const schema = clusterSchema.extend({
  clusters: z.record(clusterKey, clusterSchema.omit({ cluster: true })).optional(),
  topologies: z
    .record(
      clusterKey,
      z.strictObject({
        strategy: z.string().min(1),
        config: z.record(z.string(), z.unknown()).optional(),
        // libcluster's Erlang hooks: accepted, and their treatment logged (see TOPOLOGY_KEYS).
        connect: z.unknown().optional(),
        disconnect: z.unknown().optional(),
        list_nodes: z.unknown().optional(),
        child_spec: z.unknown().optional(),
      }),
    )
    .optional(),
});

function invalid(field: string, message: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${message}`, {
    field,
    issue: message,
  });
}

function parseWith<T>(zschema: z.ZodType<T>, input: unknown, prefix = ''): T {
  const parsed = zschema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const unknownKeys =
    issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : undefined;
  const path = unknownKeys ? [...issue.path, unknownKeys[0]] : issue.path;
  throw invalid(prefix + (path.length ? path.join('.') : '(options)'), issue.message);
}

// `node.consensus.start(options)`: the built-in Raft group (default) or an etcd v3 cluster.
const consensusName = z.string().min(1).max(256);
const raftConsensusSchema = z.strictObject({
  backend: z.literal('raft').optional(),
  members: z
    .array(consensusName)
    .min(1)
    .max(7)
    .refine((m) => new Set(m).size === m.length, 'names must be distinct')
    .optional(),
  size: z.union([z.literal(3), z.literal(5)]).optional(),
  join: z.boolean().optional(),
  dir: z.string().min(1).optional(),
  tickMs: ms.optional(),
  electionTicks: z.number().int().min(2).max(1000).optional(),
  timeoutMs: ms.optional(),
  snapshotEvery: z.number().int().min(1).optional(),
});
const etcdConsensusSchema = z.strictObject({
  backend: z.literal('etcd'),
  endpoints: z
    .array(
      z
        .string()
        .regex(
          /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[^\s/:[\]]+):\d{1,5}\/?$/,
          'must be http://host:port or https://host:port',
        ),
    )
    .min(1),
  prefix: z.string().min(1).max(256).regex(/\/$/, 'must end with "/"').optional(),
  timeoutMs: ms.optional(),
  auth: z.strictObject({ username: z.string().min(1), password: z.string() }).optional(),
  ca: pem.optional(),
});
/**
 * Validates `node.consensus.start()` options; throws FND_ERR_INVALID_OPTION naming the field
 * (`consensus.endpoints.0`, `consensus.tickMs`, ...).
 */
export function parseConsensusOptions(input: unknown): ConsensusOptions {
  const backend = isObj(input) ? input.backend : undefined;
  if (backend === 'etcd') return parseWith(etcdConsensusSchema, input, 'consensus.');
  if (backend !== undefined && backend !== 'raft')
    throw invalid('consensus.backend', 'must be "raft" or "etcd"');
  return parseWith(raftConsensusSchema, input, 'consensus.');
}

/**
 * Why the preset does not suit the host, or undefined. `local` (100 ms probe timeout, 0.8–1.4 s
 * suspicions) is tuned for one host; on real links it flaps: measured at 20 % loss, 26–48 false
 * downs a minute, and at 100 ms latency every probe fails (docs/membership.md, "Real networks").
 */
export function presetWarning(o: { preset: PresetName; host: string }): string | undefined {
  if (o.preset !== 'local' || isLoopback(o.host)) return undefined;
  return `preset "local" on the non-loopback host "${o.host}": its 100 ms probe timeout and ~1 s suspicions are for one machine; on a real network it reports healthy members down under a little loss or latency. Use preset "lan" (the default off loopback) or "wan".`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function firstExternalIPv4(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return undefined;
}

export interface ResolvedOptions {
  name: string;
  cluster: string;
  /** The handshake secret; always set once `withDefaultSecrets` has run. */
  secret: string | undefined;
  /**
   * Where `secret` came from: the option, FOUNDATION_SECRET, this user's secret file (loopback
   * default), or the public `insecure` key (non-loopback with `insecure: true`: no protection).
   */
  secretSource: 'option' | 'env' | 'user' | 'insecure' | undefined;
  host: string;
  port: number;
  advertiseHost: string;
  discovery: DiscoveryOptions | DiscoveryStrategy;
  /**
   * How libcluster keys that Foundation accepts but treats differently were handled (one sentence
   * each); logged once when the cluster starts. Only set for clusters made from `topologies`.
   */
  notes?: LibclusterNote[];
  preset: PresetName;
  timing: MembershipTiming;
  tls: TlsOptions | undefined;
  maxFrameSize: number;
  encrypt: boolean;
  maxInboundBufferBytes: number;
  maxQueueBytes: number;
  bulkThreshold: number;
  busyPollUs: number;
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  maxPendingConnections: number;
  maxPendingPerSource: number;
  firstByteTimeoutMs: number;
  singleConnection: boolean;
  membershipLimits: MembershipLimits;
  /** Backoff fields left undefined are derived from the timing preset by the cluster node. */
  dialLimits: { ratePerSec: number; burst: number; backoffBaseMs?: number; backoffMaxMs?: number };
  logLevel: LogLevel;
  logger: Logger | undefined;
  transport: Transport | undefined;
  clock: Clock | undefined;
}

/**
 * Validates and fills in defaults for a node in one or more clusters: one ResolvedOptions per
 * cluster. Throws FND_ERR_INVALID_OPTION (naming the field, e.g. `clusters.web.port`) or
 * FND_ERR_INSECURE_BIND.
 */
export function resolveAll(input: unknown = {}, env = process.env): ResolvedOptions[] {
  const { clusters, topologies, ...base } = parseWith(schema, input);
  if (!clusters && !topologies) return [resolveParsed(base, '', env)];
  if (base.cluster !== undefined) {
    throw invalid('cluster', 'give either `cluster` or `clusters`/`topologies`, not both');
  }
  const fromTopologies = topologies ? mapTopologies(topologies, env) : {};
  const names = [...new Set([...Object.keys(clusters ?? {}), ...Object.keys(fromTopologies)])];
  if (names.length === 0) throw invalid('clusters', 'name at least one cluster');
  if (base.transport && names.length > 1) {
    throw invalid(
      'transport',
      'a transport listens once: give each cluster its own (clusters.<name>.transport)',
    );
  }
  // One actor system serves all clusters, and pids carry one node name: it must be the same everywhere.
  const first = clusters?.[names[0]!]?.name ?? base.name;
  for (const name of names) {
    if ((clusters?.[name]?.name ?? base.name) !== first) {
      throw invalid(
        `clusters.${name}.name`,
        'a node has one name in every cluster; set `name` at the top level',
      );
    }
  }
  const ports = new Map<number, string>();
  for (const name of names) {
    const port = clusters?.[name]?.port ?? base.port;
    if (port === undefined || port === 0) continue;
    const other = ports.get(port);
    if (other !== undefined) {
      throw invalid(
        `clusters.${name}.port`,
        `port ${port} is also used by cluster "${other}"; each cluster needs its own`,
      );
    }
    ports.set(port, name);
  }
  return names.map((name) => {
    const own = clusters?.[name] ?? {};
    const mapped = fromTopologies[name];
    if (mapped && own.discovery) {
      throw invalid(`clusters.${name}.discovery`, `topology "${name}" already sets discovery`);
    }
    const prefix = mapped ? `topologies.${name}.` : `clusters.${name}.`;
    let merged: z.infer<typeof clusterSchema>;
    try {
      merged = parseWith(
        clusterSchema,
        { ...base, ...own, ...(mapped ? { discovery: mapped.discovery } : {}), cluster: name },
        prefix,
      );
    } catch (err) {
      // A bad value of a libcluster key is reported under the key as the user wrote it.
      const field = (err as FoundationError).data?.field;
      const ours =
        mapped && typeof field === 'string' && field.startsWith(`${prefix}discovery.`)
          ? field.slice(`${prefix}discovery.`.length).split('.')[0]!
          : undefined;
      const key = ours === undefined ? undefined : mapped?.origin[ours];
      if (key === undefined) throw err;
      const issue = String((err as FoundationError).data?.issue ?? '');
      throw invalid(`${prefix}config.${key}`, `${issue} (Foundation's discovery.${ours})`);
    }
    const resolved = resolveParsed(merged, `clusters.${name}.`, env);
    if (mapped?.notes.length) resolved.notes = mapped.notes;
    return resolved;
  });
}

/** Validates and fills in defaults for a single-cluster node. */
export function resolveOptions(input: unknown = {}, env = process.env): ResolvedOptions {
  return resolveParsed(parseWith(clusterSchema, input), '', env);
}

function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(
    Object.entries(o ?? {}).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/** FOUNDATION_SECRET, validated like the option (the variable is named in the error). */
function envSecret(env: NodeJS.ProcessEnv): string | undefined {
  const s = env.FOUNDATION_SECRET;
  if (!s) return undefined;
  if (s.length < 16) throw invalid('FOUNDATION_SECRET', 'must be at least 16 characters');
  return s;
}

/**
 * Fills in the secret of every cluster that has none, once per node start: on loopback this
 * user's secret (read or generated by cluster/local-secret.ts); off loopback (only reachable with
 * `insecure: true`) the public key `foundation-insecure:<cluster>`, which authenticates nothing.
 * After this every ResolvedOptions has a `secret` and the transport never invents one.
 */
export async function withDefaultSecrets(list: ResolvedOptions[]): Promise<ResolvedOptions[]> {
  let user: Promise<string> | undefined;
  const out: ResolvedOptions[] = [];
  for (const o of list) {
    if (o.secret !== undefined) out.push(o);
    else if (isLoopback(o.host)) {
      user ??= loadUserSecret();
      out.push({ ...o, secret: await user, secretSource: 'user' });
    } else out.push({ ...o, secret: `foundation-insecure:${o.cluster}`, secretSource: 'insecure' });
  }
  return out;
}

function resolveParsed(
  o: z.infer<typeof clusterSchema>,
  prefix: string,
  env: NodeJS.ProcessEnv,
): ResolvedOptions {
  const host = o.host ?? DEFAULTS.host;
  const loopback = isLoopback(host);
  const fromEnv = o.secret === undefined ? envSecret(env) : undefined;
  const secret = o.secret ?? fromEnv;
  if (!loopback && !secret && !o.insecure) {
    throw new FoundationError(
      'FND_ERR_INSECURE_BIND',
      `host "${host}" is not loopback and no secret was given`,
      {
        field: `${prefix}secret`,
        host,
      },
    );
  }
  const wildcard = host === '0.0.0.0' || host === '::';
  const advertiseHost = o.advertiseHost ?? (wildcard ? firstExternalIPv4() : host);
  if (!advertiseHost) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "${prefix}advertiseHost": required when host is "${host}" and no external IPv4 address exists`,
      {
        field: `${prefix}advertiseHost`,
      },
    );
  }
  const preset =
    o.preset === undefined || o.preset === 'auto' ? (loopback ? 'local' : 'lan') : o.preset;
  const timing: MembershipTiming = { ...PRESETS[preset] };
  for (const [k, v] of Object.entries(o.membership ?? {}))
    if (v !== undefined) (timing as unknown as Record<string, number>)[k] = v;
  if (timing.probeTimeoutMs >= timing.probeIntervalMs) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "${prefix}membership.probeTimeoutMs": must be less than probeIntervalMs`,
      {
        field: `${prefix}membership.probeTimeoutMs`,
      },
    );
  }
  const maxPendingConnections = o.maxPendingConnections ?? DEFAULTS.maxPendingConnections;
  const maxPendingPerSource = o.maxPendingPerSource ?? DEFAULTS.maxPendingPerSource;
  if (maxPendingPerSource > maxPendingConnections) {
    throw invalid(`${prefix}maxPendingPerSource`, 'must not exceed maxPendingConnections');
  }
  if (timing.suspicionMinMs > timing.suspicionMaxMs) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "${prefix}membership.suspicionMinMs": must not exceed suspicionMaxMs`,
      {
        field: `${prefix}membership.suspicionMinMs`,
      },
    );
  }
  return {
    name: o.name ?? `${os.hostname()}-${process.pid}`,
    cluster: o.cluster ?? DEFAULTS.cluster,
    secret,
    secretSource: o.secret !== undefined ? 'option' : fromEnv !== undefined ? 'env' : undefined,
    host,
    port: o.port ?? DEFAULTS.port,
    advertiseHost,
    discovery: o.discovery ?? { strategy: 'auto' },
    preset,
    timing,
    tls: o.tls,
    maxFrameSize: o.maxFrameSize ?? DEFAULTS.maxFrameSize,
    encrypt: o.encrypt ?? DEFAULTS.encrypt,
    maxInboundBufferBytes: o.maxInboundBufferBytes ?? DEFAULTS.maxInboundBufferBytes,
    maxQueueBytes: o.maxQueueBytes ?? DEFAULTS.maxQueueBytes,
    bulkThreshold: o.bulkThreshold ?? DEFAULTS.bulkThreshold,
    busyPollUs: o.busyPollUs ?? DEFAULTS.busyPollUs,
    requestTimeoutMs: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    connectTimeoutMs:
      o.connectTimeoutMs ??
      Math.min(DEFAULTS.connectTimeoutMs, Math.max(500, timing.probeIntervalMs / 2)),
    maxPendingConnections,
    maxPendingPerSource,
    firstByteTimeoutMs: o.firstByteTimeoutMs ?? DEFAULTS.firstByteTimeoutMs,
    singleConnection: o.singleConnection ?? false,
    membershipLimits: { ...DEFAULT_MEMBERSHIP_LIMITS, ...stripUndefined(o.membershipLimits) },
    dialLimits: {
      ratePerSec: o.dialLimits?.ratePerSec ?? DEFAULT_DIAL_RATE_PER_SEC,
      burst: o.dialLimits?.burst ?? DEFAULT_DIAL_BURST,
      backoffBaseMs: o.dialLimits?.backoffBaseMs,
      backoffMaxMs: o.dialLimits?.backoffMaxMs,
    },
    logLevel: o.logLevel ?? DEFAULTS.logLevel,
    logger: o.logger,
    transport: o.transport,
    clock: o.clock,
  };
}
