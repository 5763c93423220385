// `mdns`: DNS-SD over multicast DNS (RFC 6762/6763), the mdns_lite role, on the `multicast-dns`
// package. Each node advertises one service instance `<label>._foundation._tcp.local` (PTR, SRV
// with its TCP port, TXT `cluster= node= proto=1`, A/AAAA of its advertised address) plus any
// application services added with `advertise` (node.mdns), answers multicast and legacy unicast
// queries for them and for service-type enumeration, re-announces before the TTL runs out and says
// goodbye (TTL 0) on removal and stop. It browses with PTR queries (fast at start, then backing off,
// carrying known answers), refreshes learned records at 80-95 % of their TTL, and joins instances
// of its own cluster through the shared Reconciler; goodbyes and expired records take peers off.
//
// mDNS is unauthenticated: anyone on the segment can advertise or say goodbye for any name. That
// only steers whom this node dials, within bounds: one packet adds at most MAX_NEW_PER_PACKET
// instances, and the shared Reconciler caps and backs off the dials; the cluster handshake
// (HMAC over the secret) decides who joins.
import { createHash } from 'node:crypto';
import dgram, { type RemoteInfo } from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import type { Answer, Packet, Question } from 'dns-packet';
import { decode as decodeDns } from 'dns-packet';
import makeMdns from 'multicast-dns';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import { type Address, formatAddress } from '../../transport/types.js';
import type { TimerHandle } from '../../util/clock.js';
import { type DiscoveryContext, type DiscoveryStrategy, Reconciler } from '../strategy.js';

/** Protocol version advertised in TXT `proto=`; peers with another value are not joined. */
export const MDNS_PROTO = '1';
export const DEFAULT_SERVICE_TYPE = '_foundation._tcp.local';
/** Instances remembered at most; beyond that new ones are ignored (a flood cannot grow memory). */
const MAX_PEERS = 1024;
const MAX_HOSTS = 256;
/**
 * New instances one response may add, and follow-up queries it may cause. A node announces one
 * instance per packet; a forged packet listing hundreds must not turn into hundreds of dials.
 */
export const MAX_NEW_PER_PACKET = 16;
/** Longest TTL believed, in s (RFC 6762 suggests 120 s / 75 min; hostile values are clamped). */
const MAX_TTL_S = 24 * 3600;
/** Answers to queries are coalesced: at most one multicast response per this many ms. */
const MIN_RESPONSE_GAP_MS = 250;
/** RFC 6763 §9: PTR records under this name list the service types a host advertises. */
export const SERVICE_TYPE_ENUMERATION = '_services._dns-sd._udp.local';
/** RFC 6762 §6.7: TTL cap of records in legacy unicast answers, s. */
export const LEGACY_UNICAST_TTL_S = 10;
/**
 * Legacy unicast answers sent per second at most. Each goes to whatever source address the query
 * claims, so a budget keeps a node from being used to reflect a flood (answers are ~8× the query).
 */
export const MAX_LEGACY_ANSWERS_PER_S = 50;
/** RFC 6762 §5.2: refresh queries at these fractions of a learned TTL, each plus up to 2 % jitter. */
export const REFRESH_AT = [0.8, 0.85, 0.9, 0.95] as const;
/** RFC 6762 §6: random delay before a multicast answer holding shared records (PTR), ms. */
export const SHARED_RESPONSE_DELAY_MS = [20, 120] as const;
/** Known answers carried in one browse query at most (the rest are simply answered again). */
const MAX_KNOWN_ANSWERS = 64;
/** Application services one node may advertise at most (each adds records to every response). */
export const MAX_ADVERTISED = 64;

export interface MdnsOptions {
  /**
   * DNS-SD service type, `_name._tcp.local`. Default '_foundation._tcp.local'. Nodes only see
   * nodes advertising the same type; TXT `cluster=` separates clusters within one type, so change
   * it only to hide Foundation from generic service browsers or to partition at the mDNS level.
   */
  serviceType?: string;
  /**
   * IPv4 addresses of the local interfaces to join 224.0.0.251 on and send from. Default: the
   * node's advertised address when it is a specific non-loopback IPv4 address (peers that can dial
   * it are on that network), otherwise every interface. More interfaces: reachable from more
   * networks, more multicast traffic.
   */
  interfaces?: string[];
  /**
   * TTL of the advertised records, in seconds. Default 120 (RFC 6762's for SRV/TXT/A). Records are
   * re-announced at 80% of it; a node that vanishes without a goodbye stays listed this long
   * (membership still declares it down in seconds). Lower: quicker cleanup, more announcements.
   */
  ttlSeconds?: number;
  /**
   * Longest gap between two browse queries, in ms. Default 30000. Queries start at once and back
   * off (250 ms, 500 ms, 1 s, ... doubling) up to this. Lower: quicker rediscovery of records lost
   * to packet loss, more queries (each one answered by every node).
   */
  queryIntervalMs?: number;
  /**
   * UDP port. Default 5353, the mDNS port every responder listens on. Change it only for isolated
   * tests; nodes on other ports neither see nor are seen by standard mDNS tools.
   */
  port?: number;
  /**
   * Answer for a host name, as mdns_lite does: `true` answers `<os.hostname()>.local` (first label),
   * a string answers `<string>.local`. Default false: only `<label>.local`, a name derived from the
   * node name, is answered. Either way the A/AAAA record carries the node's advertised address (or
   * this host's non-internal addresses when it advertises a wildcard) and SRV records point at that
   * name. Turn it on when clients should reach the node by a readable name; leave it off where
   * another responder (avahi) already answers for the machine's host name.
   */
  hostname?: boolean | string;
}

const mdnsFields = {
  serviceType: z
    .string()
    .regex(
      /^_[A-Za-z0-9-]{1,15}\._(tcp|udp)\.local$/,
      "must look like '_name._tcp.local' (name: 1-15 letters, digits or '-')",
    )
    .optional(),
  interfaces: z.array(z.ipv4()).min(1).optional(),
  ttlSeconds: z.number().int().min(1).max(MAX_TTL_S).optional(),
  queryIntervalMs: z.number().int().min(250).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  hostname: z
    .union([
      z.boolean(),
      z
        .string()
        .regex(
          /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/,
          'must be one DNS label (no ".local")',
        ),
    ])
    .optional(),
};

/** Validation of `discovery: { strategy: 'mdns', ... }`. */
export const mdnsSchema = z.strictObject({ strategy: z.literal('mdns'), ...mdnsFields });
// The constructor also takes the whole `discovery` object, `strategy: 'mdns'` included.
const optionsSchema = z.strictObject({ strategy: z.literal('mdns').optional(), ...mdnsFields });

export interface MdnsStats {
  /** DNS packets received (queries + responses) and ones that would not decode. */
  received: number;
  malformed: number;
  queries: number;
  responses: number;
  /** Queries this node answered, and multicast sends (announcements, answers, queries, goodbyes). */
  answered: number;
  sent: number;
  /** Instances of this service type seen with another TXT cluster, or another proto. */
  ignoredOtherCluster: number;
  ignoredIncompatible: number;
  /** Instances not listed because one packet brought more than MAX_NEW_PER_PACKET new ones (or 1024 are listed). */
  ignoredOverLimit: number;
  /** Goodbyes (TTL 0) that took a listed peer off, and peers whose records expired. */
  goodbyes: number;
  expired: number;
  /** Socket and decode warnings from multicast-dns. */
  warnings: number;
  /** Legacy unicast queries (source port not the mDNS port) answered by unicast to their sender. */
  legacyAnswered: number;
  /**
   * Legacy queries not answered: from an address off this host's links (RFC 6762 §11), or over
   * MAX_LEGACY_ANSWERS_PER_S.
   */
  legacyDropped: number;
  /** Answers left out because the query listed them as known answers with ≥ half their TTL left. */
  suppressed: number;
  /** Refresh queries sent for learned peers at 80-95 % of their TTL. */
  refreshQueries: number;
}

/**
 * An application service to advertise next to the node's own (mdns_lite's `services`), e.g.
 * `{ type: '_http._tcp', port: 8080, txt: { path: '/' } }`.
 */
export interface MdnsServiceOptions {
  /** DNS-SD service type, `_name._tcp` or `_name._udp` (`.local` optional). Not the cluster's own type. */
  type: string;
  /** Port the service listens on (SRV record), 1-65535. */
  port: number;
  /**
   * TXT entries: `{ key: value }` (`true` → bare `key`, `false` → left out) or `'key=value'`
   * strings. Each entry at most 255 bytes. Default: none.
   */
  txt?: Record<string, string | number | boolean> | string[];
  /**
   * Instance name, one DNS-SD label (any UTF-8 but '.', at most 63 bytes). Default: the node's
   * instance label (node name + hash), so two nodes advertising the same type do not collide.
   */
  name?: string;
}

/** A service advertised with `node.mdns.advertise`; `remove()` withdraws it (goodbye, TTL 0). */
export interface MdnsAdvertisement {
  /** Full instance name, e.g. `web._http._tcp.local`. */
  readonly instance: string;
  /** Service type, e.g. `_http._tcp.local`. */
  readonly type: string;
  readonly port: number;
  readonly txt: string[];
  /** Sends goodbye records and stops answering for the service. Idempotent. */
  remove(): Promise<void>;
}

/**
 * `node.mdns`: application services advertised over this node's mDNS responder. Present on every
 * node; `advertise` throws FND_ERR_MDNS_INACTIVE unless the cluster's discovery runs the `mdns`
 * strategy (configured, or chosen by `auto`), so check `active` where mDNS is optional.
 */
export interface MdnsControl {
  /** True while the mdns strategy runs for this cluster. */
  readonly active: boolean;
  /**
   * Starts advertising `service` at once (announced twice, 1 s apart, then answered like the
   * node's own records). Throws FND_ERR_INVALID_OPTION naming the bad field (or an instance name
   * already in use), FND_ERR_MDNS_INACTIVE when mDNS is not running.
   */
  advertise(service: MdnsServiceOptions): MdnsAdvertisement;
  /** Withdraws an advertised instance by full name; false when it was not advertised. */
  unadvertise(instance: string): Promise<boolean>;
  /** Services advertised with `advertise` and not removed. */
  advertised(): MdnsAdvertisement[];
}

/** Hooks for driving the strategy without sockets (unit tests): what it sends, and its randomness. */
export interface MdnsAttachHooks {
  /** Receives every packet the strategy would send; `to` is set for unicast replies. */
  send?: (packet: Packet, to?: Rinfo) => void;
  /** Uniform [0, 1) source for jitter and response delays. Default Math.random. */
  random?: () => number;
  /** Whether a source address is on one of this host's links. Default: `onLocalLink`. */
  onLink?: (address: string) => boolean;
}

interface Service {
  instance: string; // full name, as given (DNS names compare case-insensitively)
  key: string; // instance, lower case
  type: string; // lower case, `.local` included
  port: number;
  txt: string[];
}

export interface MdnsPeer {
  /** DNS-SD instance name (lower case). */
  instance: string;
  node: string;
  address: Address;
  /** ctx.clock.now() after which the records are stale. */
  expiresAt: number;
}

export type Rinfo = Pick<RemoteInfo, 'address' | 'port'>;
type MdnsSocket = ReturnType<typeof makeMdns>;

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 8);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** A DNS label derived from the node name: readable prefix + hash, ≤ 63 bytes, no dots. */
export function instanceLabel(nodeName: string): string {
  const base = nodeName
    .replace(/[^A-Za-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return `${base || 'node'}-${hash(nodeName)}`.toLowerCase();
}

function parseTxt(data: unknown): Map<string, string> | undefined {
  const items = Array.isArray(data) ? data : [data];
  const out = new Map<string, string>();
  for (const item of items) {
    let s: string;
    if (typeof item === 'string') s = item;
    else if (Buffer.isBuffer(item)) s = item.toString('utf8');
    else return undefined;
    const i = s.indexOf('=');
    if (i <= 0) continue;
    const k = s.slice(0, i).toLowerCase();
    if (!out.has(k)) out.set(k, s.slice(i + 1)); // RFC 6763 §6.4: the first occurrence wins
  }
  return out;
}

function ttlOf(rec: Record<string, unknown>): number | undefined {
  const t = rec.ttl;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) return undefined;
  return Math.min(t, MAX_TTL_S);
}

function invalid(field: string, message: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${message}`, { field });
}

const serviceSchema = z.strictObject({
  type: z
    .string()
    .regex(
      /^_[A-Za-z0-9-]{1,15}\._(tcp|udp)(\.local)?$/,
      "must look like '_name._tcp' or '_name._udp' (name: 1-15 letters, digits or '-')",
    ),
  port: z.number().int().min(1).max(65535),
  txt: z
    .union([
      z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
      z.array(z.string()),
    ])
    .optional(),
  name: z
    .string()
    .min(1)
    .refine(
      (n) => !n.includes('.') && Buffer.byteLength(n) <= 63,
      'one label: no ".", at most 63 bytes',
    )
    .optional(),
});

function txtEntries(txt: MdnsServiceOptions['txt']): string[] {
  if (!txt) return [];
  if (Array.isArray(txt)) return [...txt];
  const out: string[] = [];
  for (const [k, v] of Object.entries(txt)) {
    if (v === false) continue;
    out.push(v === true ? k : `${k}=${v}`);
  }
  return out;
}

const recordKey = (a: Answer) => {
  const data = (a as { data?: unknown }).data;
  return `${a.name.toLowerCase()}|${a.type}|${typeof data === 'string' ? data.toLowerCase() : JSON.stringify(data)}`;
};

/** An IPv6 address as 32 hex digits (no embedded IPv4 form). */
function expandV6(a: string): string {
  const [l = '', r] = a.toLowerCase().split('::');
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const fill = r === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((h) => h.padStart(4, '0')).join('');
}

const ipv4Int = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/**
 * RFC 6762 §11 source address check: true when `address` lies in the subnet of one of this host's
 * IPv4 interfaces (loopback included), or is an IPv6 link-local or on-link address.
 */
export function onLocalLink(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.family === 'IPv4' && net.isIPv4(v4)) {
        const mask = ipv4Int(i.netmask);
        if ((ipv4Int(i.address) & mask) >>> 0 === (ipv4Int(v4) & mask) >>> 0) return true;
      } else if (i.family === 'IPv6' && net.isIPv6(address)) {
        if (address.toLowerCase().startsWith('fe80:')) return true;
        const n = Math.floor(Number(i.cidr?.split('/')[1] ?? 128) / 4);
        if (expandV6(i.address).slice(0, n) === expandV6(address).slice(0, n)) return true;
      }
    }
  }
  return false;
}

/** Non-internal addresses of this host, for a node that advertises a wildcard address. */
function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? [])
      if (!i.internal && !i.address.startsWith('fe80:')) out.push(i.address);
  }
  return out;
}

export class MdnsStrategy implements DiscoveryStrategy {
  readonly name = 'mdns';
  readonly stats: MdnsStats = {
    received: 0,
    malformed: 0,
    queries: 0,
    responses: 0,
    answered: 0,
    sent: 0,
    ignoredOtherCluster: 0,
    ignoredIncompatible: 0,
    ignoredOverLimit: 0,
    goodbyes: 0,
    expired: 0,
    warnings: 0,
    legacyAnswered: 0,
    legacyDropped: 0,
    suppressed: 0,
    refreshQueries: 0,
  };

  private readonly serviceType: string;
  private readonly ttl: number;
  private readonly queryIntervalMs: number;
  private readonly port: number;
  private readonly interfaces: string[] | undefined;
  private readonly hostnameOpt: boolean | string;

  private ctx: DiscoveryContext | undefined;
  private reconciler: Reconciler | undefined;
  private instance = '';
  private host = '';
  private sockets: MdnsSocket[] = [];
  private readonly timers: TimerHandle[] = [];
  private browseTimer: TimerHandle | undefined;
  private readonly peers = new Map<string, MdnsPeer>();
  private readonly hosts = new Map<string, { ip: string; expiresAt: number }>();
  private lastResponse = -Infinity;
  private pendingResponse: TimerHandle | undefined;
  private readonly pendingAnswers = new Map<string, Answer>();
  private readonly pendingAdditionals = new Map<string, Answer>();
  /** Every service answered for, own first; keyed by lower-case instance name. */
  private readonly services = new Map<string, Service>();
  private readonly refreshTimers = new Map<string, TimerHandle>();
  private readonly peerTtl = new Map<string, number>(); // instance → learned TTL, s
  private hooks: MdnsAttachHooks = {};
  private random: () => number = Math.random;
  private onLink: (address: string) => boolean = onLocalLink;
  private legacyWindow = { start: -Infinity, count: 0 };
  private readonly followUps = new Map<string, number>();
  private lastWarning = -Infinity;
  private stopped = false;

  constructor(opts: MdnsOptions & { strategy?: 'mdns' } = {}) {
    const parsed = optionsSchema.safeParse(opts);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
      throw invalid(
        ['discovery', ...issue.path.map(String), ...keys.slice(0, 1)].join('.'),
        issue.message,
      );
    }
    this.serviceType = (opts.serviceType ?? DEFAULT_SERVICE_TYPE).toLowerCase();
    this.ttl = opts.ttlSeconds ?? 120;
    this.queryIntervalMs = opts.queryIntervalMs ?? 30_000;
    this.port = opts.port ?? 5353;
    this.interfaces = opts.interfaces;
    this.hostnameOpt = opts.hostname ?? false;
  }

  /** True between a successful start and stop (or after `attach` with a `send` hook). */
  get running(): boolean {
    if (!this.ctx || this.stopped || this.ctx.signal.aborted) return false;
    return this.sockets.length > 0 || this.hooks.send !== undefined;
  }

  /** Peers of this cluster currently listed (announced, not expired, no goodbye). */
  list(): MdnsPeer[] {
    return [...this.peers.values()].map((p) => ({ ...p, address: { ...p.address } }));
  }

  /** This node's instance name, e.g. `node-1-1a2b3c4d._foundation._tcp.local`. */
  get instanceName(): string {
    return this.instance;
  }

  /**
   * Prepares to receive without opening a socket: what `start` does before it binds. Exposed so
   * the handlers can be driven directly (fuzzing, unit tests). Throws FND_ERR_INVALID_OPTION when
   * the cluster or node name cannot be carried in a TXT record.
   */
  attach(ctx: DiscoveryContext, hooks: MdnsAttachHooks = {}): void {
    for (const [k, v] of [
      ['cluster', ctx.cluster],
      ['node', ctx.self.name],
    ] as const) {
      if (Buffer.byteLength(`${k}=${v}`) > 255) {
        throw invalid(
          k === 'node' ? 'name' : 'cluster',
          `too long for an mDNS TXT entry (max 250 bytes)`,
        );
      }
    }
    this.ctx = ctx;
    this.hooks = hooks;
    this.random = hooks.random ?? Math.random;
    this.onLink = hooks.onLink ?? onLocalLink;
    this.reconciler = new Reconciler(ctx, this.name);
    const label = instanceLabel(ctx.self.name);
    this.instance = `${label}.${this.serviceType}`;
    const hostLabel =
      this.hostnameOpt === true
        ? (os.hostname().split('.')[0] ?? '').replace(/[^A-Za-z0-9-]+/g, '-').slice(0, 63) || label
        : typeof this.hostnameOpt === 'string'
          ? this.hostnameOpt
          : label;
    this.host = `${hostLabel}.local`.toLowerCase();
    this.services.clear();
    this.services.set(this.instance, {
      instance: this.instance,
      key: this.instance,
      type: this.serviceType,
      port: ctx.self.address.port,
      txt: [`cluster=${ctx.cluster}`, `node=${ctx.self.name}`, `proto=${MDNS_PROTO}`],
    });
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    this.attach(ctx);
    const self = ctx.self.address.host;
    const ifaces =
      this.interfaces ??
      (net.isIPv4(self) && self !== '0.0.0.0' && !self.startsWith('127.') ? [self] : [undefined]);
    try {
      for (const iface of ifaces) this.sockets.push(await this.open(iface));
    } catch (err) {
      for (const s of this.sockets.splice(0)) s.destroy();
      throw new FoundationError(
        'FND_ERR_DISCOVERY',
        `mdns could not open UDP port ${this.port}: ${(err as Error).message}`,
        { strategy: this.name, port: this.port },
        { cause: err },
      );
    }
    ctx.log.debug(
      { instance: this.instance, interfaces: ifaces.map((i) => i ?? 'all') },
      'mdns started',
    );
    this.begin();
  }

  /**
   * Starts announcing, browsing and sweeping; `start` calls it once the sockets are open. Exposed
   * for driving the strategy after `attach` with a `send` hook (unit tests); call it once.
   */
  begin(): void {
    const ctx = this.ctx!;
    // Announce twice, 1 s apart (RFC 6762 §8.3), then re-announce at 80% of the TTL.
    this.announce();
    this.timers.push(ctx.clock.setTimeout(() => this.announce(), 1000));
    this.timers.push(ctx.clock.setInterval(() => this.announce(), this.ttl * 800));
    // Browse: at once, then back off to queryIntervalMs.
    let gap = 250;
    const browse = () => {
      if (this.stopped || ctx.signal.aborted) return;
      this.query([{ name: this.serviceType, type: 'PTR' }], this.knownAnswers());
      this.connectMissing();
      this.browseTimer = ctx.clock.setTimeout(browse, gap);
      gap = Math.min(gap * 2, this.queryIntervalMs);
    };
    browse();
    this.timers.push(ctx.clock.setInterval(() => this.sweep(), 1000));
    ctx.signal.addEventListener('abort', () => this.cancelTimers(), { once: true });
  }

  private open(iface: string | undefined): Promise<MdnsSocket> {
    const ctx = this.ctx!;
    // Our own socket, so every datagram goes through handleMessage (the path the fuzz tests drive);
    // multicast-dns keeps group membership and encodes what we send.
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (buf, rinfo) => this.handleMessage(buf, rinfo, m));
    // Bind the wildcard: on Linux a socket bound to a unicast address receives no multicast.
    const m = makeMdns({
      port: this.port,
      interface: iface,
      bind: '0.0.0.0',
      socket,
      ttl: 255, // RFC 6762 §11: mDNS packets carry IP TTL 255 and are link-local by address.
      loopback: true,
    });
    m.on('warning', (err: Error) => {
      // Undecodable packets (counted as malformed by handleMessage) and membership/socket trouble.
      this.stats.warnings++;
      const now = ctx.clock.now();
      if (now - this.lastWarning > 60_000) {
        this.lastWarning = now;
        ctx.log.debug({ err: err.message }, 'mdns warning');
      }
    });
    return new Promise((resolve, reject) => {
      // `on`, not `once`: multicast-dns emits 'error' twice when the bind fails (from the socket's
      // error event and from the bind callback); an 'error' with no listener would throw.
      let settled = false;
      const onError = (err: Error) => {
        if (settled) return;
        settled = true;
        m.destroy();
        reject(err);
      };
      m.on('error', onError);
      m.once('ready', () => {
        if (settled) return;
        settled = true;
        m.off('error', onError);
        m.on('error', (err: Error) => ctx.log.warn({ err: err.message }, 'mdns socket error'));
        resolve(m);
      });
    });
  }

  private cancelTimers(): void {
    for (const t of this.timers.splice(0)) t.cancel();
    this.browseTimer?.cancel();
    this.pendingResponse?.cancel();
    this.pendingResponse = undefined;
    for (const t of this.refreshTimers.values()) t.cancel();
    this.refreshTimers.clear();
  }

  /** The SRV target: the answered host name, or the advertised host name when that is not an IP. */
  private target(): string {
    const ip = this.ctx!.self.address.host;
    return net.isIP(ip) ? this.host : ip;
  }

  /** A/AAAA records of the answered host name. */
  private addressRecords(ttl: number): Answer[] {
    const ip = this.ctx!.self.address.host;
    if (!net.isIP(ip)) return [];
    const ips = ip === '0.0.0.0' || ip === '::' ? hostAddresses() : [ip];
    return ips.map((a) =>
      net.isIPv4(a)
        ? { name: this.host, type: 'A', ttl, flush: true, data: a }
        : { name: this.host, type: 'AAAA', ttl, flush: true, data: a },
    );
  }

  private ptr(s: Service, ttl: number): Answer {
    return { name: s.type, type: 'PTR', ttl, data: s.instance };
  }

  private srv(s: Service, ttl: number): Answer {
    return {
      name: s.instance,
      type: 'SRV',
      ttl,
      flush: true,
      data: { port: s.port, target: this.target(), priority: 0, weight: 0 },
    };
  }

  private txt(s: Service, ttl: number): Answer {
    // A copy: dns-packet's encoder replaces the strings of the array it is given with Buffers.
    return { name: s.instance, type: 'TXT', ttl, flush: true, data: [...s.txt] };
  }

  private typeRecords(ttl: number, only?: Iterable<string>): Answer[] {
    const types = new Set(only ?? [...this.services.values()].map((s) => s.type));
    return [...types].map((t) => ({ name: SERVICE_TYPE_ENUMERATION, type: 'PTR', ttl, data: t }));
  }

  /** Everything this node announces: every service's PTR/SRV/TXT and the host's addresses. */
  private records(ttl: number): Answer[] {
    const recs: Answer[] = [];
    for (const s of this.services.values())
      recs.push(this.ptr(s, ttl), this.srv(s, ttl), this.txt(s, ttl));
    recs.push(...this.addressRecords(ttl));
    return recs;
  }

  /**
   * Answers to `questions` from this node's records (RFC 6762 §6, RFC 6763 §12 additionals).
   * `shared` is true when a PTR (a shared record, many responders may hold one) is among them.
   */
  private answer(
    questions: unknown[],
    known: ReadonlySet<string> = new Set(),
  ): { answers: Answer[]; additionals: Answer[]; shared: boolean; suppressed: number } {
    const ttl = this.ttl;
    const answers = new Map<string, Answer>();
    const additionals = new Map<string, Answer>();
    const add = (m: Map<string, Answer>, a: Answer) => m.set(recordKey(a), a);
    let shared = false;
    let suppressed = 0;
    for (const q of questions) {
      if (!isObj(q) || typeof q.name !== 'string') continue;
      const name = q.name.toLowerCase();
      const type: unknown = q.type; // dns-packet decodes 255 as 'ANY' (not in its types)
      const any = type === 'ANY';
      if (name === SERVICE_TYPE_ENUMERATION && (type === 'PTR' || any)) {
        for (const a of this.typeRecords(ttl)) add(answers, a);
        shared = true;
      }
      for (const s of this.services.values()) {
        if (name === s.type && (type === 'PTR' || any)) {
          const ptr = this.ptr(s, ttl);
          if (known.has(recordKey(ptr))) {
            suppressed++;
            continue;
          }
          add(answers, ptr);
          add(additionals, this.srv(s, ttl));
          add(additionals, this.txt(s, ttl));
          for (const a of this.addressRecords(ttl)) add(additionals, a);
          shared = true;
        }
        if (name === s.key) {
          if (type === 'SRV' || any) {
            add(answers, this.srv(s, ttl));
            for (const a of this.addressRecords(ttl)) add(additionals, a);
          }
          if (type === 'TXT' || any) add(answers, this.txt(s, ttl));
        }
      }
      if (name === this.host) {
        for (const a of this.addressRecords(ttl)) {
          if (type === a.type || any) add(answers, a);
        }
      }
    }
    for (const k of answers.keys()) additionals.delete(k);
    return {
      answers: [...answers.values()],
      additionals: [...additionals.values()],
      shared,
      suppressed,
    };
  }

  private transmit(
    kind: 'respond' | 'query',
    packet: Packet,
    to?: Rinfo,
    via?: MdnsSocket,
  ): Promise<void> {
    if (this.hooks.send) {
      this.stats.sent++;
      this.hooks.send(
        kind === 'respond'
          ? { ...packet, type: 'response', flags: (packet.flags ?? 0) | 0x400 }
          : { ...packet, type: 'query' },
        to,
      );
      return Promise.resolve();
    }
    const sockets = via ? [via] : this.sockets;
    return Promise.all(
      sockets.map(
        (m) =>
          new Promise<void>((resolve) => {
            const done = (err: Error | null) => {
              if (err) this.ctx?.log.debug({ err: err.message }, `mdns ${kind} not sent`);
              else this.stats.sent++;
              resolve();
            };
            try {
              const dest = to ? { address: to.address, port: to.port } : null;
              if (kind === 'respond')
                m.respond(packet as { answers: Answer[] }, dest as never, done);
              else m.query(packet as { questions: Question[] }, dest as never, done);
            } catch (err) {
              done(err as Error);
            }
          }),
      ),
    ).then(() => {});
  }

  private announce(): void {
    if (this.stopped || this.ctx?.signal.aborted) return;
    this.lastResponse = this.ctx!.clock.now();
    void this.transmit('respond', { answers: this.records(this.ttl) });
  }

  private query(questions: Question[], answers: Answer[] = []): void {
    if (this.stopped) return;
    void this.transmit('query', answers.length ? { questions, answers } : { questions });
  }

  /**
   * Known-answer list for a browse query (RFC 6762 §7.1): PTRs of listed peers with more than half
   * their TTL left, so they need not answer again.
   */
  private knownAnswers(): Answer[] {
    const now = this.ctx!.clock.now();
    const out: Answer[] = [];
    for (const p of this.peers.values()) {
      const ttl = this.peerTtl.get(p.instance);
      const left = (p.expiresAt - now) / 1000;
      if (ttl === undefined || left <= ttl / 2) continue;
      out.push({ name: this.serviceType, type: 'PTR', ttl: Math.floor(left), data: p.instance });
      if (out.length >= MAX_KNOWN_ANSWERS) break;
    }
    return out;
  }

  /** Decodes one raw datagram and hands it to the query or response handler. Never throws. */
  handleMessage(
    buf: Buffer | Uint8Array,
    rinfo: Rinfo = { address: '', port: 0 },
    via?: MdnsSocket,
  ): void {
    let packet: ReturnType<typeof decodeDns>;
    try {
      packet = decodeDns(Buffer.isBuffer(buf) ? buf : Buffer.from(buf));
    } catch {
      this.stats.received++;
      this.stats.malformed++;
      return;
    }
    if (packet.type === 'query') this.handleQuery(packet, rinfo, via);
    else if (packet.type === 'response') this.handleResponse(packet, rinfo);
    else {
      this.stats.received++;
      this.stats.malformed++;
    }
  }

  /**
   * Answers questions about this node's records: by unicast to the sender for a legacy query
   * (source port not the mDNS port, RFC 6762 §6.7), else by multicast, PTRs after a 20-120 ms
   * delay. Never throws. Concurrency: called from the socket (or directly by tests) one packet at
   * a time, after `attach`/`start`; `via` is the socket it arrived on.
   */
  handleQuery(packet: Packet, rinfo?: Rinfo, via?: MdnsSocket): void {
    this.stats.received++;
    this.stats.queries++;
    try {
      const ctx = this.ctx;
      if (!ctx || this.stopped || ctx.signal.aborted) return;
      if (!isObj(packet)) {
        this.stats.malformed++;
        return;
      }
      const questions: unknown[] = Array.isArray(packet.questions) ? packet.questions : [];
      const legacy = rinfo !== undefined && rinfo.port > 0 && rinfo.port !== this.port;
      if (legacy) {
        const { answers, additionals } = this.answer(questions);
        if (answers.length === 0) return;
        const now = ctx.clock.now();
        if (now - this.legacyWindow.start >= 1000) this.legacyWindow = { start: now, count: 0 };
        if (this.legacyWindow.count >= MAX_LEGACY_ANSWERS_PER_S || !this.onLink(rinfo.address)) {
          this.stats.legacyDropped++;
          return;
        }
        this.legacyWindow.count++;
        this.answerLegacy(packet, questions, answers, additionals, rinfo, via);
        return;
      }
      // Known-answer suppression (RFC 6762 §7.1): leave out PTRs the asker holds with ≥ half the TTL.
      const known = new Set<string>();
      for (const a of Array.isArray(packet.answers) ? packet.answers : []) {
        if (
          !isObj(a) ||
          a.type !== 'PTR' ||
          typeof a.name !== 'string' ||
          typeof a.data !== 'string'
        )
          continue;
        if ((ttlOf(a) ?? 0) >= this.ttl / 2)
          known.add(`${a.name.toLowerCase()}|PTR|${a.data.toLowerCase()}`);
      }
      const { answers, additionals, shared, suppressed } = this.answer(questions, known);
      this.stats.suppressed += suppressed;
      if (answers.length === 0) return;
      this.stats.answered++;
      this.respondSoon(answers, additionals, shared);
    } catch (err) {
      this.stats.malformed++;
      this.ctx?.log.debug({ err: (err as Error).message }, 'mdns query handler failed');
    }
  }

  /**
   * RFC 6762 §6.7: a one-shot resolver (e.g. `dig -p 5353`) gets a conventional DNS answer by
   * unicast: its query ID, its questions repeated, TTLs capped at 10 s, no cache-flush bits.
   */
  private answerLegacy(
    packet: Packet,
    questions: unknown[],
    answers: Answer[],
    additionals: Answer[],
    rinfo: Rinfo,
    via: MdnsSocket | undefined,
  ): void {
    const legacy = (a: Answer): Answer =>
      ({
        ...a,
        ttl: Math.min((a as { ttl?: number }).ttl ?? 0, LEGACY_UNICAST_TTL_S),
        flush: false,
      }) as Answer;
    const repeat = questions.filter(
      (q): q is Question => isObj(q) && typeof q.name === 'string' && typeof q.type === 'string',
    );
    this.stats.answered++;
    this.stats.legacyAnswered++;
    void this.transmit(
      'respond',
      {
        type: 'response',
        id: typeof packet.id === 'number' ? packet.id : 0,
        questions: repeat.map((q) => ({ name: q.name, type: q.type, class: 'IN' }) as Question),
        answers: answers.map(legacy),
        additionals: additionals.map(legacy),
      },
      { address: rinfo.address, port: rinfo.port },
      via,
    );
  }

  /**
   * Sends answers by multicast: unique records (SRV/TXT/A) at once, shared ones (PTR) after a
   * random 20-120 ms (RFC 6762 §6) so responders do not collide; answers due within the same
   * window go out in one packet, and at most one response leaves per MIN_RESPONSE_GAP_MS.
   */
  private respondSoon(answers: Answer[], additionals: Answer[], shared: boolean): void {
    const ctx = this.ctx!;
    for (const a of answers) this.pendingAnswers.set(recordKey(a), a);
    for (const a of additionals) this.pendingAdditionals.set(recordKey(a), a);
    if (this.pendingResponse) return;
    const [lo, hi] = SHARED_RESPONSE_DELAY_MS;
    const delay = shared ? lo + this.random() * (hi - lo) : 0;
    const wait = Math.max(delay, this.lastResponse + MIN_RESPONSE_GAP_MS - ctx.clock.now());
    if (wait <= 0) {
      this.flushResponse();
      return;
    }
    this.pendingResponse = ctx.clock.setTimeout(() => {
      this.pendingResponse = undefined;
      this.flushResponse();
    }, wait);
  }

  private flushResponse(): void {
    if (this.stopped || this.ctx?.signal.aborted) return;
    const answers = [...this.pendingAnswers.values()];
    const additionals = [...this.pendingAdditionals]
      .filter(([k]) => !this.pendingAnswers.has(k))
      .map(([, a]) => a);
    this.pendingAnswers.clear();
    this.pendingAdditionals.clear();
    if (answers.length === 0) return;
    this.lastResponse = this.ctx!.clock.now();
    void this.transmit('respond', { answers, additionals });
  }

  /**
   * Learns peers from a response (answers and additionals). Never throws. Concurrency: as
   * handleQuery.
   */
  handleResponse(packet: Packet, _rinfo?: Rinfo): void {
    this.stats.received++;
    this.stats.responses++;
    try {
      this.learn(packet);
    } catch (err) {
      this.stats.malformed++;
      this.ctx?.log.debug({ err: (err as Error).message }, 'mdns response handler failed');
    }
  }

  private learn(packet: Packet): void {
    const ctx = this.ctx;
    if (!ctx || this.stopped || ctx.signal.aborted) return;
    if (!isObj(packet)) {
      this.stats.malformed++;
      return;
    }
    const recs: Record<string, unknown>[] = [];
    for (const list of [packet.answers, packet.additionals]) {
      if (Array.isArray(list)) for (const r of list) if (isObj(r)) recs.push(r);
    }
    const now = ctx.clock.now();
    const suffix = `.${this.serviceType}`;
    const ptrs = new Map<string, number>(); // instance → ttl
    const srvs = new Map<string, { port: number; target: string; ttl: number }>();
    const txts = new Map<string, { kv: Map<string, string>; ttl: number }>();
    const addrs = new Map<string, { ip: string; ttl: number }>();
    for (const r of recs) {
      if (typeof r.name !== 'string') continue;
      const name = r.name.toLowerCase();
      const ttl = ttlOf(r);
      if (ttl === undefined) continue;
      switch (r.type) {
        case 'PTR':
          if (name === this.serviceType && typeof r.data === 'string') {
            const inst = r.data.toLowerCase();
            if (inst.endsWith(suffix)) ptrs.set(inst, ttl);
          }
          break;
        case 'SRV':
          if (name.endsWith(suffix) && isObj(r.data)) {
            const { port, target } = r.data;
            if (
              typeof port === 'number' &&
              Number.isInteger(port) &&
              port > 0 &&
              port < 65536 &&
              typeof target === 'string' &&
              target.length > 0
            ) {
              srvs.set(name, { port, target: target.toLowerCase(), ttl });
            }
          }
          break;
        case 'TXT':
          if (name.endsWith(suffix)) {
            const kv = parseTxt(r.data);
            if (kv) txts.set(name, { kv, ttl });
          }
          break;
        case 'A':
        case 'AAAA':
          if (typeof r.data === 'string' && net.isIP(r.data)) addrs.set(name, { ip: r.data, ttl });
          break;
      }
    }
    for (const [name, a] of addrs) {
      if (a.ttl === 0) {
        this.hosts.delete(name);
        continue;
      }
      if (!this.hosts.has(name) && this.hosts.size >= MAX_HOSTS) {
        const oldest = this.hosts.keys().next().value;
        if (oldest !== undefined) this.hosts.delete(oldest);
      }
      this.hosts.set(name, { ip: a.ip, expiresAt: now + a.ttl * 1000 });
    }

    let changed = false;
    let added = 0;
    let followUps = 0;
    const instances = new Set([...ptrs.keys(), ...srvs.keys(), ...txts.keys()]);
    for (const inst of instances) {
      if (inst === this.instance) continue;
      // Budget per packet: known instances (refreshes, goodbyes) always count; new ones up to a cap.
      if (!this.peers.has(inst) && added + followUps >= MAX_NEW_PER_PACKET) {
        this.stats.ignoredOverLimit++;
        continue;
      }
      const srv = srvs.get(inst);
      const txt = txts.get(inst);
      if (ptrs.get(inst) === 0 || srv?.ttl === 0 || txt?.ttl === 0) {
        changed = this.goodbye(inst) || changed;
        continue;
      }
      if (!srv || !txt) {
        followUps++;
        this.followUp(inst);
        continue;
      }
      if (txt.kv.get('proto') !== MDNS_PROTO) {
        this.stats.ignoredIncompatible++;
        continue;
      }
      if (txt.kv.get('cluster') !== ctx.cluster) {
        this.stats.ignoredOtherCluster++;
        continue;
      }
      const node = txt.kv.get('node');
      if (!node || node === ctx.self.name) continue;
      let host: string | undefined = addrs.get(srv.target)?.ip;
      const cached = this.hosts.get(srv.target);
      if (!host && cached && cached.expiresAt > now) host = cached.ip;
      if (!host && !srv.target.endsWith('.local')) host = srv.target.replace(/\.$/, '');
      if (!host) {
        followUps++;
        this.followUp(inst, srv.target);
        continue;
      }
      const address = { host, port: srv.port };
      const prev = this.peers.get(inst);
      if (!prev && this.peers.size >= MAX_PEERS) {
        this.stats.ignoredOverLimit++;
        continue;
      }
      if (!prev) added++;
      const ttlS = Math.min(srv.ttl, txt.ttl);
      const expiresAt = now + ttlS * 1000;
      this.peers.set(inst, { instance: inst, node, address, expiresAt });
      this.peerTtl.set(inst, ttlS);
      this.scheduleRefresh(inst, ttlS * 1000, now, 0);
      this.followUps.delete(inst);
      if (!prev || formatAddress(prev.address) !== formatAddress(address)) {
        changed = true;
        if (prev) this.disconnectIfUnlisted(prev.address);
      }
    }
    if (changed || instances.size > 0) this.connectMissing();
  }

  /** Asks for the records of an instance we only saw part of; at most once a second each. */
  private followUp(inst: string, target?: string): void {
    const now = this.ctx!.clock.now();
    const last = this.followUps.get(inst);
    if (last !== undefined && now - last < 1000) return;
    if (last === undefined && this.followUps.size >= MAX_PEERS) return;
    this.followUps.set(inst, now);
    const questions: Question[] = [
      { name: inst, type: 'SRV' },
      { name: inst, type: 'TXT' },
    ];
    if (target) questions.push({ name: target, type: 'A' });
    this.query(questions);
  }

  /**
   * RFC 6762 §5.2: asks for a peer's SRV/TXT at 80, 85, 90 and 95 % of the TTL it was learned with
   * (each plus up to 2 % jitter), so a peer whose announcement was lost is refreshed rather than
   * dropped. Any answer reschedules from there; after the last query the sweep drops it at 100 %.
   */
  private scheduleRefresh(inst: string, ttlMs: number, from: number, step: number): void {
    const ctx = this.ctx!;
    this.refreshTimers.get(inst)?.cancel();
    this.refreshTimers.delete(inst);
    const at = REFRESH_AT[step];
    if (at === undefined || this.stopped) return;
    const due = from + ttlMs * (at + this.random() * 0.02);
    const timer = ctx.clock.setTimeout(
      () => {
        if (this.refreshTimers.get(inst) !== timer || !this.peers.has(inst)) return;
        this.stats.refreshQueries++;
        this.query([
          { name: inst, type: 'SRV' },
          { name: inst, type: 'TXT' },
        ]);
        this.scheduleRefresh(inst, ttlMs, from, step + 1);
      },
      Math.max(0, due - ctx.clock.now()),
    );
    this.refreshTimers.set(inst, timer);
  }

  private forget(inst: string): void {
    this.peers.delete(inst);
    this.peerTtl.delete(inst);
    this.refreshTimers.get(inst)?.cancel();
    this.refreshTimers.delete(inst);
  }

  private goodbye(inst: string): boolean {
    const p = this.peers.get(inst);
    if (!p) return false;
    this.forget(inst);
    this.stats.goodbyes++;
    this.ctx!.log.debug({ instance: inst, node: p.node }, 'mdns goodbye');
    this.disconnectIfUnlisted(p.address);
    return true;
  }

  private sweep(): void {
    const ctx = this.ctx!;
    const now = ctx.clock.now();
    for (const [inst, p] of this.peers) {
      if (p.expiresAt > now) continue;
      this.forget(inst);
      this.stats.expired++;
      this.disconnectIfUnlisted(p.address);
    }
    for (const [name, h] of this.hosts) if (h.expiresAt <= now) this.hosts.delete(name);
    for (const [inst, at] of this.followUps) if (now - at > 10_000) this.followUps.delete(inst);
  }

  private disconnectIfUnlisted(address: Address): void {
    const key = formatAddress(address);
    for (const p of this.peers.values()) if (formatAddress(p.address) === key) return;
    this.reconciler?.dropped(address);
  }

  /** Joins every listed peer that is not a live member (the Reconciler skips live ones). */
  private connectMissing(): void {
    const ctx = this.ctx;
    const r = this.reconciler;
    if (!ctx || !r || this.stopped || ctx.signal.aborted) return;
    void r.joinMissing([...this.peers.values()].map((p) => p.address)).catch(() => {});
  }

  /**
   * Advertises an application service next to the node's own (mdns_lite's `services`). Announced
   * at once and 1 s later; answered to PTR, SRV, TXT and service-type queries from then on.
   * Throws FND_ERR_MDNS_INACTIVE unless started and not stopped, FND_ERR_INVALID_OPTION (field
   * `mdns.advertise.<field>`) for bad options, an instance name already advertised, the cluster's
   * own service type, or more than MAX_ADVERTISED services.
   */
  advertise(service: MdnsServiceOptions): MdnsAdvertisement {
    const ctx = this.ctx;
    if (!ctx || !this.running) {
      throw new FoundationError(
        'FND_ERR_MDNS_INACTIVE',
        this.stopped ? 'mdns has stopped' : 'mdns is not running',
        { strategy: this.name },
      );
    }
    const parsed = serviceSchema.safeParse(service);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
      throw invalid(
        ['mdns.advertise', ...issue.path.map(String), ...keys.slice(0, 1)].join('.'),
        issue.message,
      );
    }
    const o = parsed.data;
    const type = (o.type.endsWith('.local') ? o.type : `${o.type}.local`).toLowerCase();
    if (type === this.serviceType) {
      throw invalid('mdns.advertise.type', `${type} is the cluster's own service type`);
    }
    const txt = txtEntries(o.txt);
    for (const e of txt) {
      if (Buffer.byteLength(e) > 255) {
        throw invalid('mdns.advertise.txt', `entry "${e.slice(0, 20)}…" is over 255 bytes`);
      }
    }
    const instance = `${o.name ?? instanceLabel(ctx.self.name)}.${type}`;
    const key = instance.toLowerCase();
    if (this.services.has(key)) {
      throw invalid('mdns.advertise.name', `${instance} is already advertised by this node`);
    }
    if (this.services.size > MAX_ADVERTISED) {
      throw invalid('mdns.advertise', `at most ${MAX_ADVERTISED} services per node`);
    }
    const svc: Service = { instance, key, type, port: o.port, txt };
    this.services.set(key, svc);
    const announce = () => {
      if (this.services.get(key) !== svc || !this.running) return;
      void this.transmit('respond', {
        answers: [this.ptr(svc, this.ttl), this.srv(svc, this.ttl), this.txt(svc, this.ttl)],
        additionals: [...this.addressRecords(this.ttl), ...this.typeRecords(this.ttl, [type])],
      });
    };
    announce();
    this.timers.push(ctx.clock.setTimeout(announce, 1000));
    ctx.log.debug({ instance, port: o.port }, 'mdns advertise');
    return this.handle(svc);
  }

  private handle(svc: Service): MdnsAdvertisement {
    return {
      instance: svc.instance,
      type: svc.type,
      port: svc.port,
      txt: [...svc.txt],
      remove: async () => {
        await this.unadvertise(svc.instance);
      },
    };
  }

  /** Services added with `advertise` and not removed. */
  advertised(): MdnsAdvertisement[] {
    return [...this.services.values()]
      .filter((s) => s.key !== this.instance)
      .map((s) => this.handle(s));
  }

  /**
   * Withdraws a service added with `advertise`: goodbye records (TTL 0) for its PTR, SRV and TXT
   * (and its type's enumeration PTR when no other service has that type). False when unknown.
   */
  async unadvertise(instance: string): Promise<boolean> {
    const key = instance.toLowerCase();
    const svc = this.services.get(key);
    if (!svc || key === this.instance) return false;
    this.services.delete(key);
    for (const k of [...this.pendingAnswers.keys(), ...this.pendingAdditionals.keys()]) {
      if (k.includes(key)) {
        this.pendingAnswers.delete(k);
        this.pendingAdditionals.delete(k);
      }
    }
    this.ctx?.log.debug({ instance }, 'mdns unadvertise');
    if (!this.running) return true;
    const typeGone = ![...this.services.values()].some((s) => s.type === svc.type);
    await this.transmit('respond', {
      answers: [
        this.ptr(svc, 0),
        this.srv(svc, 0),
        this.txt(svc, 0),
        ...(typeGone ? this.typeRecords(0, [svc.type]) : []),
      ],
    });
    return true;
  }

  /** Sends goodbye records (TTL 0), then closes the sockets. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.cancelTimers();
    const sockets = this.sockets.splice(0);
    if (this.ctx && (sockets.length || this.hooks.send)) {
      this.sockets = sockets;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.transmit('respond', { answers: this.records(0) }),
        new Promise<void>((r) => {
          timer = setTimeout(r, 1000);
        }),
      ]);
      clearTimeout(timer);
      this.sockets = [];
    }
    this.stopped = true;
    for (const k of [...this.services.keys()]) if (k !== this.instance) this.services.delete(k);
    await Promise.all(sockets.map((m) => new Promise<void>((r) => m.destroy(() => r()))));
  }
}

/**
 * The `node.mdns` of a cluster: forwards to the running MdnsStrategy that `find` returns (the
 * configured one, or the candidate a fallback started), else throws FND_ERR_MDNS_INACTIVE.
 */
export function mdnsControl(
  find: () => MdnsStrategy | undefined,
  strategyName: () => string,
): MdnsControl {
  const running = () => {
    const m = find();
    return m?.running ? m : undefined;
  };
  return {
    get active() {
      return running() !== undefined;
    },
    advertise(service) {
      const m = running();
      if (!m) {
        throw new FoundationError(
          'FND_ERR_MDNS_INACTIVE',
          `mdns is not this cluster's discovery (it runs "${strategyName() || 'none'}")`,
          { strategy: strategyName() },
        );
      }
      return m.advertise(service);
    },
    async unadvertise(instance) {
      return (await find()?.unadvertise(instance)) ?? false;
    },
    advertised() {
      return find()?.advertised() ?? [];
    },
  };
}
