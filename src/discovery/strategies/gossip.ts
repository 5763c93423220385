// `gossip`: UDP multicast (or broadcast) heartbeats on the local segment, libcluster's
// Cluster.Strategy.Gossip. Every node beats its name and TCP address; receivers authenticate each
// packet (HMAC-SHA256, or AES-256-GCM with `encrypt`), drop and count anything unauthenticated,
// stale, replayed, malformed or oversized, and join the senders through the shared Reconciler.
//
// Wire format, version 1 (every packet ≤ MAX_GOSSIP_PACKET bytes):
//   header  magic 'Fg' (2) | version (1) | flags (1, bit 0 = encrypted) | cluster tag (4)
//   HMAC:   header | body | HMAC-SHA256(kMac, header | body) (32)
//   GCM:    header | iv (12) | AES-256-GCM(kEnc, body, aad = header) | tag (16)
//   body    ts float64 (wall ms) | nonce (8) | incarnation float64 | port u16 |
//           cluster, name, host: u8 length + UTF-8 each
// The cluster tag is the first 4 bytes of SHA-256(cluster name): packets of other clusters are
// dropped before any crypto runs. Nothing past the header is read before authentication succeeds.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import dgram from 'node:dgram';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import { type Address, formatAddress } from '../../transport/types.js';
import type { TimerHandle } from '../../util/clock.js';
import { type DiscoveryContext, type DiscoveryStrategy, Reconciler } from '../strategy.js';

/** Largest gossip packet sent or accepted, in bytes; larger ones are dropped unread. */
export const MAX_GOSSIP_PACKET = 512;
export const GOSSIP_VERSION = 1;
const MAGIC0 = 0x46; // 'F'
const MAGIC1 = 0x67; // 'g'
const FLAG_ENCRYPTED = 0x01;
const HEADER = 8;
const MAC = 32;
const IV = 12;
const TAG = 16;
/** ts + nonce + incarnation + port + three empty strings. */
const MIN_BODY = 8 + 8 + 8 + 2 + 3;
const NONCE = 8;
/** Nonces remembered at most (each 16 hex chars); older ones fall out, the ts window covers them. */
const MAX_NONCES = 8192;
/**
 * Peers listed at most. A beat names one peer, so one datagram adds at most one address; this caps
 * what a member with the secret can make this node list by beating under many names.
 */
export const MAX_GOSSIP_PEERS = 1024;

export interface GossipOptions {
  /**
   * UDP port every node of the segment sends to and listens on. Default 45892 (libcluster's).
   * All nodes of one cluster must agree on it; several clusters may share it (packets of another
   * cluster are told apart by a 4-byte tag and dropped before any crypto runs).
   */
  port?: number;
  /**
   * IPv4 address of the local interface to join the multicast group on and send from. Default
   * '0.0.0.0': the kernel picks the interface the multicast route points to. Set it on multi-homed
   * hosts so beats go out, and are heard, on the right network only. Not used with
   * `broadcastOnly` (the route to 255.255.255.255 picks the interface).
   */
  ifAddr?: string;
  /**
   * Multicast group, IPv4. Default '233.252.1.32' (libcluster's; from the GLOP block reserved for
   * documentation/examples). Change it to separate groups of clusters at the network level.
   */
  multicastAddr?: string;
  /**
   * IP TTL of multicast packets. Default 1: beats never leave the local segment. Raise it only when
   * multicast routing should carry beats across routers.
   */
  multicastTtl?: number;
  /**
   * Send to a broadcast address (`broadcastAddr`) instead of a multicast group. Default false. For
   * networks that block multicast (some Wi-Fi, some clouds); broadcast reaches every host of the
   * segment and never crosses a router.
   */
  broadcastOnly?: boolean;
  /**
   * Where beats go with `broadcastOnly`: the limited broadcast 255.255.255.255 (default; the route
   * to it picks the interface) or a subnet's directed broadcast, e.g. '10.0.0.255', which goes out
   * of the interface on that subnet. libcluster's `multicast_addr` under `broadcast_only: true`.
   */
  broadcastAddr?: string;
  /**
   * Key material (≥ 16 characters) for authenticating (and, with `encrypt`, encrypting) beats.
   * Default: the node's cluster `secret`. The strategy cannot read the node's secret itself: the
   * options wiring passes it as the constructor's second argument; a strategy built by hand takes
   * it here. Starting without any secret fails with FND_ERR_INVALID_OPTION: unauthenticated beats
   * would let anyone on the segment steer who this node dials.
   */
  secret?: string;
  /**
   * Encrypt beats with AES-256-GCM instead of signing them with HMAC-SHA256. Default false.
   * Encryption also hides node names and addresses from others on the segment (the 4-byte cluster
   * tag stays visible); costs 28 more bytes per packet. All nodes of a cluster must agree.
   */
  encrypt?: boolean;
  /**
   * Heartbeat period in ms. Default 1000. The first beats after start go out faster (0, 150 and
   * 500 ms) and a node that hears a new peer answers with one extra beat (at most one a second),
   * so a cluster forms in well under a second either way. Lower: faster rediscovery after a split,
   * more packets (one per node per period on the segment).
   */
  intervalMs?: number;
  /**
   * A peer not heard from for this long (ms) is no longer listed, and the node is told to
   * disconnect it (membership probes it and only forgets it once it is down). Default 5 × intervalMs.
   * Lower: quicker cleanup, more churn on a lossy network.
   */
  peerTimeoutMs?: number;
  /**
   * A beat whose timestamp differs from this node's wall clock by more than this (ms) is dropped
   * as stale; within the window a replayed nonce is dropped. Default 30000. It bounds how far the
   * clocks of the nodes may drift apart; lower: a shorter replay window, stricter clock sync.
   */
  replayWindowMs?: number;
}

const ms = z.number().int().positive();
const gossipFields = {
  port: z.number().int().min(1).max(65535).optional(),
  ifAddr: z.ipv4().optional(),
  multicastAddr: z
    .ipv4()
    .refine((a) => {
      const first = Number(a.split('.')[0]);
      return first >= 224 && first <= 239;
    }, 'must be an IPv4 multicast address (224.0.0.0/4)')
    .optional(),
  multicastTtl: z.number().int().min(0).max(255).optional(),
  broadcastOnly: z.boolean().optional(),
  broadcastAddr: z.ipv4().optional(),
  secret: z.string().min(16, 'must be at least 16 characters').optional(),
  encrypt: z.boolean().optional(),
  intervalMs: ms.min(10).optional(),
  peerTimeoutMs: ms.optional(),
  replayWindowMs: ms.optional(),
};

/** Validation of `discovery: { strategy: 'gossip', ... }`. */
export const gossipSchema = z.strictObject({ strategy: z.literal('gossip'), ...gossipFields });
// The constructor also takes the whole `discovery` object, `strategy: 'gossip'` included.
const optionsSchema = z.strictObject({ strategy: z.literal('gossip').optional(), ...gossipFields });

/** Counters of what arrived; every packet lands in `received` and in at most one other. */
export interface GossipStats {
  /** Every datagram handed to the receiver. */
  received: number;
  /** Authentic, fresh beats of this cluster from another node. */
  accepted: number;
  /** MAC or GCM tag wrong (other secret, tampering) or the wrong mode (signed vs encrypted). */
  droppedAuth: number;
  /** Timestamp outside the replay window, or a nonce seen recently (a replay). */
  droppedStale: number;
  /** Not a Foundation gossip packet, unknown version, or an authentic body that does not parse. */
  droppedMalformed: number;
  /** Larger than MAX_GOSSIP_PACKET; dropped unread. */
  droppedOversize: number;
  /** Beats of another cluster. */
  droppedOtherCluster: number;
  /** Authentic beats of a new peer while MAX_GOSSIP_PEERS are listed. */
  droppedOverLimit: number;
  /** This node's own beats, looped back. */
  own: number;
  /** Beats sent, and send failures. */
  sent: number;
  sendErrors: number;
}

export interface GossipPeer {
  name: string;
  address: Address;
  incarnation: number;
  /** ctx.clock.now() when its last beat arrived. */
  lastSeen: number;
}

export interface GossipBeat {
  ts: number;
  nonce: Buffer;
  incarnation: number;
  port: number;
  cluster: string;
  name: string;
  host: string;
}

const PRINTABLE = /^[^\s\p{Cc}]+$/u;

function clusterTag(cluster: string): Buffer {
  return createHash('sha256').update(cluster).digest().subarray(0, 4);
}

function deriveKey(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'foundation/gossip/v1', purpose, 32));
}

function encodeBody(b: GossipBeat): Buffer {
  const parts = [b.cluster, b.name, b.host].map((s) => Buffer.from(s, 'utf8'));
  for (const p of parts) {
    if (p.length > 255) throw new Error('a cluster name, node name or host exceeds 255 bytes');
  }
  const out = Buffer.alloc(26 + parts.reduce((n, p) => n + 1 + p.length, 0));
  out.writeDoubleBE(b.ts, 0);
  b.nonce.copy(out, 8, 0, NONCE);
  out.writeDoubleBE(b.incarnation, 16);
  out.writeUInt16BE(b.port, 24);
  let o = 26;
  for (const p of parts) {
    out[o++] = p.length;
    p.copy(out, o);
    o += p.length;
  }
  return out;
}

/** Parses an authenticated body; undefined when it is not exactly one well-formed record. */
function decodeBody(buf: Buffer): GossipBeat | undefined {
  if (buf.length < MIN_BODY) return undefined;
  const ts = buf.readDoubleBE(0);
  const nonce = buf.subarray(8, 16);
  const incarnation = buf.readDoubleBE(16);
  const port = buf.readUInt16BE(24);
  const strs: string[] = [];
  let o = 26;
  for (let i = 0; i < 3; i++) {
    if (o >= buf.length) return undefined;
    const len = buf[o++]!;
    if (o + len > buf.length) return undefined;
    const s = buf.toString('utf8', o, o + len);
    if (Buffer.byteLength(s) !== len) return undefined; // invalid UTF-8 was replaced
    strs.push(s);
    o += len;
  }
  if (o !== buf.length) return undefined;
  const [cluster, name, host] = strs as [string, string, string];
  if (!Number.isFinite(ts) || !Number.isFinite(incarnation) || port < 1) return undefined;
  if (!PRINTABLE.test(cluster) || !PRINTABLE.test(name) || !PRINTABLE.test(host)) return undefined;
  return { ts, nonce, incarnation, port, cluster, name, host };
}

/**
 * Seals and opens gossip packets for one cluster and secret. Pure: no sockets, no clock; the
 * strategy adds freshness and replay checks on top.
 */
export class GossipCodec {
  readonly tag: Buffer;
  private readonly macKey: Buffer;
  private readonly encKey: Buffer;

  constructor(
    readonly cluster: string,
    secret: string,
    readonly encrypt: boolean,
  ) {
    this.tag = clusterTag(cluster);
    this.macKey = deriveKey(secret, 'hmac-sha256');
    this.encKey = deriveKey(secret, 'aes-256-gcm');
  }

  private header(): Buffer {
    const h = Buffer.alloc(HEADER);
    h[0] = MAGIC0;
    h[1] = MAGIC1;
    h[2] = GOSSIP_VERSION;
    h[3] = this.encrypt ? FLAG_ENCRYPTED : 0;
    this.tag.copy(h, 4);
    return h;
  }

  seal(beat: GossipBeat): Buffer {
    const header = this.header();
    const body = encodeBody(beat);
    if (this.encrypt) {
      const iv = randomBytes(IV);
      const c = createCipheriv('aes-256-gcm', this.encKey, iv);
      c.setAAD(header);
      const ct = Buffer.concat([c.update(body), c.final()]);
      return Buffer.concat([header, iv, ct, c.getAuthTag()]);
    }
    const mac = createHmac('sha256', this.macKey).update(header).update(body).digest();
    return Buffer.concat([header, body, mac]);
  }

  /**
   * Checks a packet; never throws. Reads the fixed header, then authenticates, and only then
   * parses the body.
   */
  open(
    buf: Buffer,
  ):
    | { ok: true; beat: GossipBeat }
    | { ok: false; reason: 'oversize' | 'malformed' | 'otherCluster' | 'auth' } {
    if (buf.length > MAX_GOSSIP_PACKET) return { ok: false, reason: 'oversize' };
    if (buf.length < HEADER || buf[0] !== MAGIC0 || buf[1] !== MAGIC1) {
      return { ok: false, reason: 'malformed' };
    }
    if (buf[2] !== GOSSIP_VERSION || (buf[3]! & ~FLAG_ENCRYPTED) !== 0) {
      return { ok: false, reason: 'malformed' };
    }
    if (!buf.subarray(4, 8).equals(this.tag)) return { ok: false, reason: 'otherCluster' };
    const encrypted = (buf[3]! & FLAG_ENCRYPTED) !== 0;
    if (encrypted !== this.encrypt) return { ok: false, reason: 'auth' };
    const header = buf.subarray(0, HEADER);
    let body: Buffer;
    if (encrypted) {
      if (buf.length < HEADER + IV + MIN_BODY + TAG) return { ok: false, reason: 'malformed' };
      const iv = buf.subarray(HEADER, HEADER + IV);
      const tag = buf.subarray(buf.length - TAG);
      try {
        const d = createDecipheriv('aes-256-gcm', this.encKey, iv);
        d.setAAD(header);
        d.setAuthTag(tag);
        body = Buffer.concat([d.update(buf.subarray(HEADER + IV, buf.length - TAG)), d.final()]);
      } catch {
        return { ok: false, reason: 'auth' };
      }
    } else {
      if (buf.length < HEADER + MIN_BODY + MAC) return { ok: false, reason: 'malformed' };
      const signed = buf.subarray(0, buf.length - MAC);
      const mac = createHmac('sha256', this.macKey).update(signed).digest();
      if (!timingSafeEqual(mac, buf.subarray(buf.length - MAC))) {
        return { ok: false, reason: 'auth' };
      }
      body = buf.subarray(HEADER, buf.length - MAC);
    }
    const beat = decodeBody(body);
    if (!beat) return { ok: false, reason: 'malformed' };
    // The tag is 4 bytes: a collision between two cluster names is possible, the full name is not.
    if (beat.cluster !== this.cluster) return { ok: false, reason: 'otherCluster' };
    return { ok: true, beat };
  }
}

function invalid(field: string, message: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${message}`, { field });
}

export class GossipStrategy implements DiscoveryStrategy {
  readonly name = 'gossip';
  readonly stats: GossipStats = {
    received: 0,
    accepted: 0,
    droppedAuth: 0,
    droppedStale: 0,
    droppedMalformed: 0,
    droppedOversize: 0,
    droppedOtherCluster: 0,
    droppedOverLimit: 0,
    own: 0,
    sent: 0,
    sendErrors: 0,
  };

  private readonly port: number;
  private readonly ifAddr: string;
  private readonly multicastAddr: string;
  private readonly multicastTtl: number;
  private readonly broadcastOnly: boolean;
  private readonly broadcastAddr: string;
  private readonly encrypt: boolean;
  private readonly intervalMs: number;
  private readonly peerTimeoutMs: number;
  private readonly replayWindowMs: number;
  private readonly secret: string | undefined;

  private ctx: DiscoveryContext | undefined;
  private codec: GossipCodec | undefined;
  private reconciler: Reconciler | undefined;
  private socket: dgram.Socket | undefined;
  private readonly timers: TimerHandle[] = [];
  private loopTimer: TimerHandle | undefined;
  private readonly peers = new Map<string, GossipPeer>();
  private readonly nonces = new Map<string, number>();
  private lastReplyBeat = -Infinity;
  private lastAuthWarning = -Infinity;
  private stopped = false;

  /**
   * @param opts gossip options (validated here; FND_ERR_INVALID_OPTION names a bad field).
   * @param nodeSecret the node's cluster secret, used when `opts.secret` is not given.
   */
  constructor(opts: GossipOptions & { strategy?: 'gossip' } = {}, nodeSecret?: string) {
    const parsed = optionsSchema.safeParse(opts);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
      const field = ['discovery', ...issue.path.map(String), ...keys.slice(0, 1)].join('.');
      throw invalid(field, issue.message);
    }
    this.port = opts.port ?? 45892;
    this.ifAddr = opts.ifAddr ?? '0.0.0.0';
    this.multicastAddr = opts.multicastAddr ?? '233.252.1.32';
    this.multicastTtl = opts.multicastTtl ?? 1;
    this.broadcastOnly = opts.broadcastOnly ?? false;
    this.broadcastAddr = opts.broadcastAddr ?? '255.255.255.255';
    this.encrypt = opts.encrypt ?? false;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.peerTimeoutMs = opts.peerTimeoutMs ?? 5 * this.intervalMs;
    this.replayWindowMs = opts.replayWindowMs ?? 30_000;
    this.secret = opts.secret ?? nodeSecret;
    if (this.secret !== undefined && this.secret.length < 16) {
      throw invalid('discovery.secret', 'must be at least 16 characters');
    }
  }

  /** Peers currently listed (heard from within peerTimeoutMs), by node name. */
  list(): GossipPeer[] {
    return [...this.peers.values()].map((p) => ({ ...p, address: { ...p.address } }));
  }

  /**
   * Prepares to receive without opening a socket: what `start` does before it binds. Exposed so
   * that the packet handler can be driven directly (fuzzing, unit tests).
   */
  attach(ctx: DiscoveryContext): void {
    if (!this.secret) {
      throw invalid(
        'discovery.secret',
        'gossip needs a secret (≥ 16 characters) to authenticate beats; set the node `secret` or discovery.secret',
      );
    }
    this.ctx = ctx;
    this.codec = new GossipCodec(ctx.cluster, this.secret, this.encrypt);
    this.reconciler = new Reconciler(ctx, this.name);
    let size: number;
    try {
      size = this.beat().length;
    } catch (err) {
      throw invalid('name', `cannot be carried in a gossip beat: ${(err as Error).message}`);
    }
    if (size > MAX_GOSSIP_PACKET) {
      throw invalid(
        'name',
        `gossip beats must fit in ${MAX_GOSSIP_PACKET} bytes; this node's would take ${size} (shorten the node or cluster name)`,
      );
    }
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    this.attach(ctx);
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    socket.on('message', (buf, rinfo) => this.handlePacket(buf, rinfo));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // 0.0.0.0: a socket bound to a unicast address does not receive multicast on Linux.
      socket.bind({ port: this.port, address: '0.0.0.0', exclusive: false }, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((err: Error) => {
      socket.close();
      throw new FoundationError(
        'FND_ERR_DISCOVERY',
        `gossip could not bind UDP port ${this.port}: ${err.message}`,
        { strategy: this.name, port: this.port },
        { cause: err },
      );
    });
    socket.on('error', (err) => ctx.log.warn({ err: err.message }, 'gossip socket error'));
    try {
      if (this.broadcastOnly) {
        socket.setBroadcast(true);
      } else {
        socket.setMulticastTTL(this.multicastTtl);
        socket.setMulticastLoopback(true);
        if (this.ifAddr !== '0.0.0.0') {
          socket.setMulticastInterface(this.ifAddr);
          socket.addMembership(this.multicastAddr, this.ifAddr);
        } else {
          socket.addMembership(this.multicastAddr);
        }
      }
    } catch (err) {
      socket.close();
      throw new FoundationError(
        'FND_ERR_DISCOVERY',
        `gossip could not join ${this.broadcastOnly ? 'broadcast' : `multicast group ${this.multicastAddr}`} on ${this.ifAddr}: ${(err as Error).message}`,
        { strategy: this.name },
        { cause: err },
      );
    }
    ctx.log.debug(
      {
        port: this.port,
        group: this.broadcastOnly ? this.broadcastAddr : this.multicastAddr,
        encrypt: this.encrypt,
      },
      'gossip started',
    );
    // Fast start, then the steady period (with ±10% jitter so nodes started together spread out).
    this.send();
    for (const at of [150, 500]) this.timers.push(ctx.clock.setTimeout(() => this.send(), at));
    const loop = () => {
      if (this.stopped || ctx.signal.aborted) return;
      this.send();
      this.sweep();
      this.connectMissing();
      const jitter = this.intervalMs * 0.1 * (Math.random() * 2 - 1);
      this.loopTimer = ctx.clock.setTimeout(loop, this.intervalMs + jitter);
    };
    this.loopTimer = ctx.clock.setTimeout(loop, this.intervalMs);
    ctx.signal.addEventListener('abort', () => this.cancelTimers(), { once: true });
  }

  private cancelTimers(): void {
    for (const t of this.timers.splice(0)) t.cancel();
    this.loopTimer?.cancel();
  }

  private beat(): Buffer {
    const ctx = this.ctx!;
    return this.codec!.seal({
      ts: ctx.clock.wallNow(),
      nonce: randomBytes(NONCE),
      incarnation: ctx.self.incarnation,
      port: ctx.self.address.port,
      cluster: ctx.cluster,
      name: ctx.self.name,
      host: ctx.self.address.host,
    });
  }

  private send(): void {
    const socket = this.socket;
    if (!socket || this.stopped) return;
    const to = this.broadcastOnly ? this.broadcastAddr : this.multicastAddr;
    const done = (err: Error | null) => {
      if (err) {
        this.stats.sendErrors++;
        this.ctx?.log.debug({ err: err.message, to }, 'gossip beat not sent');
      } else {
        this.stats.sent++;
      }
    };
    try {
      socket.send(this.beat(), this.port, to, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /**
   * Handles one datagram. Never throws; every packet is counted. Concurrency: called from the
   * socket's 'message' event (or directly by tests), one at a time, after `attach`/`start`.
   */
  handlePacket(buf: Buffer | Uint8Array, _rinfo?: { address: string; port: number }): void {
    this.stats.received++;
    try {
      this.receive(
        Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length),
      );
    } catch (err) {
      // Unreachable by design; a bug here must still not take the node down.
      this.stats.droppedMalformed++;
      this.ctx?.log.warn({ err: (err as Error).message }, 'gossip packet handler failed');
    }
  }

  private receive(buf: Buffer): void {
    const ctx = this.ctx;
    if (!ctx || !this.codec || this.stopped) return; // not attached, or stopped: ignore
    const r = this.codec.open(buf);
    if (!r.ok) {
      switch (r.reason) {
        case 'oversize':
          this.stats.droppedOversize++;
          return;
        case 'malformed':
          this.stats.droppedMalformed++;
          return;
        case 'otherCluster':
          this.stats.droppedOtherCluster++;
          return;
        case 'auth': {
          this.stats.droppedAuth++;
          const now = ctx.clock.now();
          if (now - this.lastAuthWarning > 60_000) {
            this.lastAuthWarning = now;
            ctx.log.warn(
              { droppedAuth: this.stats.droppedAuth },
              'gossip beats of this cluster failed authentication: a node with another secret (or encrypt setting) is on the segment',
            );
          }
          return;
        }
      }
    }
    const beat = r.beat;
    const wall = ctx.clock.wallNow();
    if (Math.abs(wall - beat.ts) > this.replayWindowMs) {
      this.stats.droppedStale++;
      return;
    }
    const nonce = beat.nonce.toString('hex');
    if (this.nonces.has(nonce)) {
      this.stats.droppedStale++;
      return;
    }
    this.remember(nonce, wall);
    if (beat.name === ctx.self.name) {
      this.stats.own++;
      return;
    }
    const prev = this.peers.get(beat.name);
    if (!prev && this.peers.size >= MAX_GOSSIP_PEERS) {
      this.stats.droppedOverLimit++;
      return;
    }
    this.stats.accepted++;
    const address = { host: beat.host, port: beat.port };
    const changed =
      !prev ||
      prev.incarnation !== beat.incarnation ||
      formatAddress(prev.address) !== formatAddress(address);
    this.peers.set(beat.name, {
      name: beat.name,
      address,
      incarnation: beat.incarnation,
      lastSeen: ctx.clock.now(),
    });
    if (prev && changed) this.disconnectIfUnlisted(prev.address);
    if (changed) {
      // A new peer (or a restarted one) may have missed our beats: answer once, at most once a second.
      const now = ctx.clock.now();
      if (now - this.lastReplyBeat >= 1000) {
        this.lastReplyBeat = now;
        this.send();
      }
    }
    this.connectMissing();
  }

  private remember(nonce: string, wall: number): void {
    const expiry = wall + this.replayWindowMs;
    if (this.nonces.size >= MAX_NONCES) {
      for (const [k, exp] of this.nonces) {
        if (exp < wall || this.nonces.size >= MAX_NONCES) this.nonces.delete(k);
        else break;
      }
    }
    this.nonces.set(nonce, expiry);
  }

  /** Joins every listed peer that is not a live member (the Reconciler skips live ones). */
  private connectMissing(): void {
    const ctx = this.ctx;
    const r = this.reconciler;
    if (!ctx || !r || this.stopped || ctx.signal.aborted) return;
    void r.joinMissing([...this.peers.values()].map((p) => p.address)).catch(() => {});
  }

  /** Drops peers silent for peerTimeoutMs and tells the node they are no longer listed. */
  private sweep(): void {
    const ctx = this.ctx!;
    const now = ctx.clock.now();
    for (const [name, p] of this.peers) {
      if (now - p.lastSeen <= this.peerTimeoutMs) continue;
      this.peers.delete(name);
      this.disconnectIfUnlisted(p.address);
    }
    const wall = ctx.clock.wallNow();
    for (const [k, exp] of this.nonces) {
      if (exp >= wall) break;
      this.nonces.delete(k);
    }
  }

  private disconnectIfUnlisted(address: Address): void {
    const key = formatAddress(address);
    for (const p of this.peers.values()) if (formatAddress(p.address) === key) return;
    this.reconciler?.dropped(address);
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimers();
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
