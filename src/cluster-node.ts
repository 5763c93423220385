// The composition root of one cluster membership: builds transport, peers, membership, messaging
// and discovery from resolved options and wires their events together. Nothing below this file
// knows about the others. A FoundationNode (node.ts) holds one ClusterNode per cluster it joins.
import { EventEmitter } from 'node:events';
import { type ChangeInfo, type Member, Membership } from './cluster/membership.js';
import { Messenger } from './cluster/messenger.js';
import { chooseStrategy } from './discovery/auto.js';
import { FallbackStrategy } from './discovery/fallback.js';
import { type MdnsControl, MdnsStrategy, mdnsControl } from './discovery/strategies/mdns.js';
import type { DiscoveryContext, DiscoveryStrategy } from './discovery/strategy.js';
import { FoundationError } from './errors.js';
import { isLoopback, presetWarning, type ResolvedOptions } from './options.js';
import { encode } from './transport/codec.js';
import type { Identity } from './transport/handshake.js';
import { PeerManager } from './transport/peers.js';
import { MSG } from './transport/protocol.js';
import { TcpTransport } from './transport/tcp.js';
import { formatAddress } from './transport/types.js';
import { type Clock, systemClock } from './util/clock.js';
import { publish } from './util/diagnostics.js';
import { createLogger, type Logger } from './util/log.js';

export type MemberEventName = 'memberUp' | 'memberDown' | 'memberSuspect' | 'memberLeft';

export interface FoundationNodeEvents {
  /**
   * Every connection to and from a member closed and it did not answer a re-dial (its process is
   * probably gone): pending requests to it were rejected with FND_ERR_NODE_UNREACHABLE. Comes
   * before membership's verdict (`memberDown`), which still follows if it does not come back.
   */
  memberUnreachable: [member: Member, info: { reason: string; cluster?: string }];
  /** A member reported unreachable is connected again. */
  memberReachable: [member: Member, info: { cluster?: string }];
  memberUp: [member: Member, info: ChangeInfo];
  memberDown: [member: Member, info: ChangeInfo];
  memberSuspect: [member: Member, info: ChangeInfo];
  memberLeft: [member: Member, info: ChangeInfo];
  /** Handshake refusals and other per-connection problems; the node keeps running. */
  error: [err: FoundationError];
}

const EVENT: Record<Member['status'], MemberEventName> = {
  alive: 'memberUp',
  suspect: 'memberSuspect',
  down: 'memberDown',
  left: 'memberLeft',
};

/** This node's membership in one cluster: its own port, secret, discovery, members and messenger. */
export class ClusterNode extends EventEmitter<FoundationNodeEvents> {
  /** This node's name in the cluster. */
  readonly name: string;
  /** The cluster's name. */
  readonly clusterName: string;
  /** `host:port` peers dial to reach this node. */
  address = '';
  /** Node-level messaging (one-way and request/response); the base for actors, RPC and pub/sub. */
  readonly messenger: Messenger;
  /** The discovery strategy in use and why it was chosen. */
  discovery: { name: string; reason: string } = { name: '', reason: '' };
  /**
   * Application services advertised over this cluster's mDNS responder (mdns_lite's `services`).
   * Always present; `advertise` throws FND_ERR_MDNS_INACTIVE unless discovery runs `mdns`.
   */
  readonly mdns: MdnsControl = mdnsControl(
    () => {
      const s = this.strategy instanceof FallbackStrategy ? this.strategy.current : this.strategy;
      return s instanceof MdnsStrategy ? s : undefined;
    },
    () => this.discovery.name,
  );

  /** This cluster's logger (child of the node's). */
  readonly log: Logger;
  /** The clock this cluster's timers run on. */
  readonly clock: Clock;
  /** Default timeout of requests, ms (the `requestTimeoutMs` option). */
  readonly requestTimeoutMs: number;
  private readonly identity: Identity;
  private readonly peers: PeerManager;
  private readonly membership: Membership;
  private strategy: DiscoveryStrategy | undefined;
  private readonly abort = new AbortController();

  private constructor(private readonly opts: ResolvedOptions) {
    super();
    // Every cluster-wide subsystem (registry, groups, pub/sub, placement, state, consensus, core
    // services, services) listens for member events: more than Node's default warning level of 10.
    this.setMaxListeners(64);
    this.name = opts.name;
    this.clusterName = opts.cluster;
    this.clock = opts.clock ?? systemClock;
    this.requestTimeoutMs = opts.requestTimeoutMs;
    this.log = (opts.logger ?? createLogger(opts.logLevel)).child({
      node: opts.name,
      cluster: opts.cluster,
    });
    this.identity = {
      cluster: opts.cluster,
      name: opts.name,
      incarnation: Math.floor(this.clock.wallNow()),
      address: { host: opts.advertiseHost, port: opts.port },
    };
    const transport =
      opts.transport ??
      new TcpTransport({
        tls: opts.tls,
        tlsHandshakeTimeoutMs: opts.handshakeTimeoutMs,
        firstByteTimeoutMs: opts.firstByteTimeoutMs,
      });
    this.peers = new PeerManager(
      {
        transport,
        self: this.identity,
        secret: requireSecret(opts.secret),
        clock: this.clock,
        log: this.log,
        maxFrameSize: opts.maxFrameSize,
        encrypt: opts.encrypt,
        maxInboundBufferBytes: opts.maxInboundBufferBytes,
        maxQueueBytes: opts.maxQueueBytes,
        // Only sockets wake a sleeping process (the in-memory transport has nothing to save).
        busyPollMs: transport.kernelSockets ? opts.busyPollUs / 1000 : 0,
        handshakeTimeoutMs: opts.handshakeTimeoutMs,
        connectTimeoutMs: opts.connectTimeoutMs,
        backoff: {
          baseMs: Math.min(100, opts.timing.probeIntervalMs / 2),
          maxMs: Math.max(1000, opts.timing.reconnectIntervalMs),
        },
        singleConnection: opts.singleConnection,
        // Long enough for one re-dial to be answered on this network (two probe timeouts), short
        // enough that callers learn of a killed peer well before the suspicion timeout.
        unreachableAfterMs: Math.max(100, 2 * opts.timing.probeTimeoutMs),
        // Per-address dial backoff on the same scale as re-dialling (so a healed partition is
        // re-dialled within the preset's reconnect interval), global rate from the options.
        dialLimits: {
          ratePerSec: opts.dialLimits.ratePerSec,
          burst: opts.dialLimits.burst,
          backoffBaseMs:
            opts.dialLimits.backoffBaseMs ?? Math.min(100, opts.timing.probeIntervalMs / 2),
          // Half the reconnect interval: the once-per-tick re-dial of a down member is never
          // refused by its own backoff, so after a partition every tick sends a fresh SYN.
          backoffMaxMs:
            opts.dialLimits.backoffMaxMs ?? Math.max(500, opts.timing.reconnectIntervalMs / 2),
        },
        maxPendingConnections: opts.maxPendingConnections,
        maxPendingPerSource: opts.maxPendingPerSource,
      },
      {
        message: (from, channel, msg) => {
          if ((msg[0] as number) < MSG.SEND) this.membership.handle(from, msg);
          else this.messenger.dispatch(from.name, channel, msg);
        },
        accept: (peer) => this.membership.acceptPeer(peer.name, peer.address, peer.incarnation),
        dialled: (peer) => this.membership.dialled(peer),
        linkDown: (name, _channel, direction) => {
          // What was in flight on a lost inbound connection is gone: ordered lanes stop waiting.
          if (direction === 'in') this.messenger.connectionLost(name);
          this.membership.hint(name);
        },
        handshakeError: (err) => this.report(err),
        unreachable: (name, reason) => this.reachability(name, reason),
        reachable: (name) => this.reachability(name, undefined),
      },
    );
    this.membership = new Membership(
      this.identity,
      opts.timing,
      {
        send: (name, msg) => {
          try {
            this.peers.send(name, 'control', encode(msg));
          } catch (err) {
            this.log.debug({ to: name, err: (err as Error).message }, 'control message not sent');
          }
        },
        join: (address) => this.peers.join(address),
        learn: (name, address, inc) => this.peers.learn(name, address, inc),
        keepAlive: (name, on) => this.peers.keepAlive(name, on),
        disconnect: (name) => this.peers.disconnect(name),
        remove: (name) => this.peers.remove(name),
      },
      this.clock,
      this.log,
      (m, info) => this.changed(m, info),
      Math.random,
      opts.membershipLimits,
    );
    this.messenger = new Messenger({
      selfName: opts.name,
      send: (to, channel, body) => this.peers.send(to, channel, body),
      reachable: (name) => {
        const s = this.membership.status(name);
        return s === 'alive' || s === 'suspect';
      },
      unreachable: (name) => this.peers.isUnreachable(name),
      clock: this.clock,
      log: this.log,
      requestTimeoutMs: opts.requestTimeoutMs,
      bulkThreshold: opts.bulkThreshold,
    });
  }

  /** Listens, starts membership and discovery. Resolves once listening. */
  static async start(options: ResolvedOptions): Promise<ClusterNode> {
    const node = new ClusterNode(options);
    await node.run();
    return node;
  }

  private async run(): Promise<void> {
    // Before listening: a strategy with bad options must not leave a listener behind.
    const choice = chooseStrategy(this.opts.discovery, {
      env: process.env,
      loopback: isLoopback(this.opts.host),
      // Gossip must never sign beats with the public `insecure` key.
      secret: this.opts.secretSource === 'insecure' ? undefined : this.opts.secret,
    });
    // libcluster keys accepted but treated differently (docs/migrating-from-libcluster.md): once.
    for (const n of this.opts.notes ?? []) this.log[n.level]({ libcluster: n.key }, n.text);
    const presetProblem = presetWarning(this.opts);
    if (presetProblem)
      this.log.warn({ preset: this.opts.preset, host: this.opts.host }, presetProblem);
    const bound = await this.peers.listen({ host: this.opts.host, port: this.opts.port });
    this.identity.address = { host: this.opts.advertiseHost, port: bound.port };
    this.address = formatAddress(this.identity.address);
    this.membership.start();
    this.strategy = choice.strategy;
    const ctx: DiscoveryContext = {
      cluster: this.clusterName,
      self: {
        name: this.name,
        address: this.identity.address,
        incarnation: this.identity.incarnation,
      },
      connect: (address) => this.membership.join(address),
      disconnect: (address) => this.membership.forget(address),
      knownNodes: () => this.membership.list(),
      clock: this.clock,
      log: this.log.child({ discovery: choice.strategy.name }),
      signal: this.abort.signal,
    };
    try {
      await choice.strategy.start(ctx);
      // Logged after start: a fallback strategy only knows then which candidate runs.
      const note = choice.strategy instanceof FallbackStrategy ? choice.strategy.note : '';
      const reason = note ? `${choice.reason}; passed over ${note}` : choice.reason;
      this.discovery = { name: choice.strategy.name, reason };
      this.log.info(
        { address: this.address, discovery: choice.strategy.name, reason },
        'node started',
      );
    } catch (err) {
      await this.stop();
      if (err instanceof FoundationError) throw err;
      throw new FoundationError(
        'FND_ERR_DISCOVERY',
        `discovery "${choice.strategy.name}" failed to start: ${(err as Error).message}`,
        {
          strategy: choice.strategy.name,
        },
        { cause: err },
      );
    }
  }

  /** A member's status in this cluster, or undefined when it is unknown. */
  memberStatus(name: string): Member['status'] | undefined {
    return this.membership.status(name);
  }

  /** Every member this node knows of, itself included (with `self: true`), sorted by name. */
  members(): Member[] {
    return this.membership.list();
  }

  /** Lifeguard local-health score: 0 when this node trusts its own timing. */
  /** Messages sent and received per channel since start (telemetry). */
  get transportCounts(): PeerManager['counts'] {
    return this.peers.counts;
  }

  get health(): number {
    return this.membership.health;
  }

  /** This node's current incarnation (grows when it refutes a suspicion). */
  get incarnation(): number {
    return this.membership.selfIncarnation;
  }

  /** Joins through a node at `host:port` (discovery does this for you). Resolves with that node's name. */
  async join(address: string): Promise<string | undefined> {
    const i = address.lastIndexOf(':');
    const a = {
      host: address.slice(0, i).replace(/^\[|\]$/g, ''),
      port: Number(address.slice(i + 1)),
    };
    if (!a.host || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `join address "${address}": expected host:port`,
        { field: 'address' },
      );
    }
    return this.membership.join(a);
  }

  private changed(m: Member, change: ChangeInfo): void {
    const info: ChangeInfo = { ...change, cluster: this.clusterName };
    this.log.info(
      {
        member: m.name,
        status: m.status,
        previous: info.previous,
        reason: info.reason,
        by: info.by,
      },
      `member ${m.status}`,
    );
    publish('membershipChange', () => ({
      node: this.name,
      cluster: this.clusterName,
      member: m.name,
      status: m.status,
      previous: info.previous,
      reason: info.reason,
      by: info.by,
    }));
    if (m.status === 'down' || m.status === 'left') this.messenger.nodeDown(m.name, m.status);
    try {
      this.emit(EVENT[m.status], m, info);
    } catch (err) {
      // A listener's bug must not break membership (this runs inside socket and timer callbacks).
      this.log.error(
        { event: EVENT[m.status], err: (err as Error).message },
        'membership event listener threw',
      );
    }
  }

  /** A member lost (reason) or regained (undefined) every connection: tell callers and listeners. */
  private reachability(name: string, reason: string | undefined): void {
    const member = this.members().find((m) => m.name === name);
    if (!member) return;
    if (reason !== undefined) this.messenger.nodeUnreachable(name);
    this.log.info({ member: name, reason }, reason ? 'member unreachable' : 'member reachable');
    try {
      if (reason !== undefined)
        this.emit('memberUnreachable', member, { reason, cluster: this.clusterName });
      else this.emit('memberReachable', member, { cluster: this.clusterName });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reachability event listener threw');
    }
  }

  private report(err: FoundationError): void {
    // An unhandled 'error' event would crash the process; per-connection problems must not.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * Graceful leave: peers see `memberLeft` at once, then connections close. Idempotent: a second
   * call resolves when the first one has finished.
   */
  stop(): Promise<void> {
    this.leaving ??= this.leave();
    return this.leaving;
  }
  private leaving: Promise<void> | undefined;

  private async leave(): Promise<void> {
    this.membership.leave();
    this.abort.abort();
    await Promise.resolve(this.strategy?.stop()).catch((err: Error) =>
      this.log.warn({ err: err.message }, 'discovery stop failed'),
    );
    this.messenger.stop();
    await this.peers.stop();
  }
}

/** Foundation.start resolves a secret for every cluster (withDefaultSecrets); never run without. */
function requireSecret(secret: string | undefined): string {
  if (secret === undefined)
    throw new FoundationError('FND_ERR_INVALID_OPTION', 'no cluster secret was resolved', {
      field: 'secret',
    });
  return secret;
}
