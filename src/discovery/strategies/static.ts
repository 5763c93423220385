// `static`: a fixed list of seed addresses (libcluster's Epmd strategy). Joining any one seed
// is enough; the rest of the cluster is learned through membership. Seeds are retried every
// `pollingIntervalMs`, so seeds that start later, or come back after a crash, are joined.

import net from 'node:net';
import { FoundationError } from '../../errors.js';
import { type Address, parseAddress } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import { validHost } from './polling.js';

export interface StaticOptions {
  /**
   * Seeds as `host:port`, `[v6]:port`, or a bare `host` / IP (then `port` applies). libcluster's
   * Erlang node names (`app@10.0.0.5`) are turned into bare hosts by the topology mapping.
   */
  hosts: string[];
  /**
   * Port of seeds written without one. Default: this node's own port (every node on one fixed
   * port, as with epmd's well-known port).
   */
  port?: number;
  /** How often to retry seeds that are not members, in ms. Default 1000. */
  pollingIntervalMs?: number;
}

/** A seed as written: with its port, or a bare host whose port is decided at start. */
type Seed = { host: string; port: number | undefined };

export class StaticStrategy implements DiscoveryStrategy {
  readonly name = 'static';
  private readonly seeds: Seed[];
  private loop: { stop(): void } | undefined;

  /** Throws FND_ERR_INVALID_OPTION naming the entry when a seed is neither host nor host:port. */
  constructor(private readonly opts: StaticOptions) {
    this.seeds = opts.hosts.map((h, i) => {
      const a = parseAddress(h);
      if (a) return a;
      const bare = h.replace(/^\[(.*)\]$/, '$1');
      if (net.isIP(bare) || validHost(bare)) return { host: bare, port: undefined };
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `discovery.hosts[${i}] is "${h}", expected host:port, [v6]:port or a host name / IP`,
        { field: `discovery.hosts[${i}]` },
      );
    });
  }

  start(ctx: DiscoveryContext): void {
    const port = this.opts.port ?? ctx.self.address.port;
    const seeds: Address[] = this.seeds.map((s) => ({ host: s.host, port: s.port ?? port }));
    const r = new Reconciler(ctx, this.name);
    this.loop = poll(ctx, this.opts.pollingIntervalMs ?? 1000, () => r.reconcile(seeds));
  }

  stop(): void {
    this.loop?.stop();
  }
}
