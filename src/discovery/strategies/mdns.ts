// `mdns`: DNS-SD over multicast DNS (RFC 6762/6763), the mdns_lite role, on the `multicast-dns`
// package. Each node advertises one service instance `<label>._foundation._tcp.local` (PTR, SRV
// with its TCP port, TXT `cluster= node= proto=1`, A/AAAA of its advertised address), answers
// queries for it, re-announces before the TTL runs out and says goodbye (TTL 0) on stop. It browses
// with PTR queries (fast at start, then backing off) and joins instances of its own cluster
// through the shared Reconciler; goodbyes and expired records take peers off the list.
//
// mDNS is unauthenticated: anyone on the segment can advertise or say goodbye for any name. That
// only steers whom this node dials, within bounds: one packet adds at most MAX_NEW_PER_PACKET
// instances, and the shared Reconciler caps and backs off the dials; the cluster handshake
// (HMAC over the secret) decides who joins.
import { createHash } from 'node:crypto';
import dgram, { type RemoteInfo } from 'node:dgram';
import net from 'node:net';
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
}

export interface MdnsPeer {
  /** DNS-SD instance name (lower case). */
  instance: string;
  node: string;
  address: Address;
  /** ctx.clock.now() after which the records are stale. */
  expiresAt: number;
}

type Rinfo = Pick<RemoteInfo, 'address' | 'port'>;
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
  };

  private readonly serviceType: string;
  private readonly ttl: number;
  private readonly queryIntervalMs: number;
  private readonly port: number;
  private readonly interfaces: string[] | undefined;

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
  attach(ctx: DiscoveryContext): void {
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
    this.reconciler = new Reconciler(ctx, this.name);
    const label = instanceLabel(ctx.self.name);
    this.instance = `${label}.${this.serviceType}`;
    this.host = `${label}.local`;
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
    // Announce twice, 1 s apart (RFC 6762 §8.3), then re-announce at 80% of the TTL.
    this.announce();
    this.timers.push(ctx.clock.setTimeout(() => this.announce(), 1000));
    this.timers.push(ctx.clock.setInterval(() => this.announce(), this.ttl * 800));
    // Browse: at once, then back off to queryIntervalMs.
    let gap = 250;
    const browse = () => {
      if (this.stopped || ctx.signal.aborted) return;
      this.query([{ name: this.serviceType, type: 'PTR' }]);
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
    socket.on('message', (buf, rinfo) => this.handleMessage(buf, rinfo));
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
      const onError = (err: Error) => {
        m.destroy();
        reject(err);
      };
      m.once('error', onError);
      m.once('ready', () => {
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
  }

  private records(ttl: number): Answer[] {
    const ctx = this.ctx!;
    const ip = ctx.self.address.host;
    const target = net.isIP(ip) ? this.host : ip;
    const recs: Answer[] = [
      { name: this.serviceType, type: 'PTR', ttl, data: this.instance },
      {
        name: this.instance,
        type: 'SRV',
        ttl,
        flush: true,
        data: { port: ctx.self.address.port, target, priority: 0, weight: 0 },
      },
      {
        name: this.instance,
        type: 'TXT',
        ttl,
        flush: true,
        data: [`cluster=${ctx.cluster}`, `node=${ctx.self.name}`, `proto=${MDNS_PROTO}`],
      },
    ];
    if (net.isIPv4(ip)) recs.push({ name: this.host, type: 'A', ttl, flush: true, data: ip });
    else if (net.isIPv6(ip))
      recs.push({ name: this.host, type: 'AAAA', ttl, flush: true, data: ip });
    return recs;
  }

  private transmit(kind: 'respond' | 'query', packet: Packet): Promise<void> {
    return Promise.all(
      this.sockets.map(
        (m) =>
          new Promise<void>((resolve) => {
            const done = (err: Error | null) => {
              if (err) this.ctx?.log.debug({ err: err.message }, `mdns ${kind} not sent`);
              else this.stats.sent++;
              resolve();
            };
            try {
              if (kind === 'respond') m.respond(packet as { answers: Answer[] }, done);
              else m.query(packet as { questions: Question[] }, done);
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

  private query(questions: Question[]): void {
    if (this.stopped) return;
    void this.transmit('query', { questions });
  }

  /** Decodes one raw datagram and hands it to the query or response handler. Never throws. */
  handleMessage(buf: Buffer | Uint8Array, rinfo: Rinfo = { address: '', port: 0 }): void {
    let packet: ReturnType<typeof decodeDns>;
    try {
      packet = decodeDns(Buffer.isBuffer(buf) ? buf : Buffer.from(buf));
    } catch {
      this.stats.received++;
      this.stats.malformed++;
      return;
    }
    if (packet.type === 'query') this.handleQuery(packet, rinfo);
    else if (packet.type === 'response') this.handleResponse(packet, rinfo);
    else {
      this.stats.received++;
      this.stats.malformed++;
    }
  }

  /**
   * Answers questions about this node's records. Never throws. Concurrency: called from the
   * socket (or directly by tests) one packet at a time, after `attach`/`start`.
   */
  handleQuery(packet: Packet, _rinfo?: Rinfo): void {
    this.stats.received++;
    this.stats.queries++;
    try {
      const ctx = this.ctx;
      if (!ctx || this.stopped || ctx.signal.aborted) return;
      if (!isObj(packet)) {
        this.stats.malformed++;
        return;
      }
      const questions = Array.isArray(packet.questions) ? packet.questions : [];
      let relevant = false;
      for (const q of questions) {
        if (!isObj(q) || typeof q.name !== 'string') continue;
        const name = q.name.toLowerCase();
        const type: unknown = q.type; // dns-packet decodes 255 as 'ANY' (not in its types)
        if (name === this.serviceType && (type === 'PTR' || type === 'ANY')) relevant = true;
        if (name === this.instance && (type === 'SRV' || type === 'TXT' || type === 'ANY'))
          relevant = true;
        if (name === this.host && (type === 'A' || type === 'AAAA' || type === 'ANY'))
          relevant = true;
      }
      if (!relevant) return;
      // Known-answer suppression (RFC 6762 §7.1): the asker already holds our PTR with enough TTL.
      const known = Array.isArray(packet.answers) ? packet.answers : [];
      const suppressed = known.some(
        (a) =>
          isObj(a) &&
          a.type === 'PTR' &&
          typeof a.name === 'string' &&
          a.name.toLowerCase() === this.serviceType &&
          typeof a.data === 'string' &&
          a.data.toLowerCase() === this.instance &&
          (ttlOf(a) ?? 0) > this.ttl / 2,
      );
      if (suppressed) return;
      this.stats.answered++;
      this.respondSoon();
    } catch (err) {
      this.stats.malformed++;
      this.ctx?.log.debug({ err: (err as Error).message }, 'mdns query handler failed');
    }
  }

  /** Coalesces answers: at most one multicast response per MIN_RESPONSE_GAP_MS. */
  private respondSoon(): void {
    const ctx = this.ctx!;
    if (this.pendingResponse) return;
    const wait = this.lastResponse + MIN_RESPONSE_GAP_MS - ctx.clock.now();
    if (wait <= 0) {
      this.announce();
      return;
    }
    this.pendingResponse = ctx.clock.setTimeout(() => {
      this.pendingResponse = undefined;
      this.announce();
    }, wait);
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
      const expiresAt = now + Math.min(srv.ttl, txt.ttl) * 1000;
      this.peers.set(inst, { instance: inst, node, address, expiresAt });
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

  private goodbye(inst: string): boolean {
    const p = this.peers.get(inst);
    if (!p) return false;
    this.peers.delete(inst);
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
      this.peers.delete(inst);
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

  /** Sends goodbye records (TTL 0), then closes the sockets. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.cancelTimers();
    const sockets = this.sockets.splice(0);
    if (this.ctx && sockets.length) {
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
    await Promise.all(sockets.map((m) => new Promise<void>((r) => m.destroy(() => r()))));
  }
}
