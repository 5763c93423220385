// `static`: a fixed list of seed addresses (libcluster's Epmd strategy). Joining any one seed
// is enough; the rest of the cluster is learned through membership. Seeds are retried every
// `pollingIntervalMs`, so seeds that start later, or come back after a crash, are joined.

import { FoundationError } from '../../errors.js';
import { type Address, parseAddress } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';

export interface StaticOptions {
  /** Seeds as `host:port` (or `[v6]:port`). */
  hosts: string[];
  /** How often to retry seeds that are not members, in ms. Default 1000. */
  pollingIntervalMs?: number;
}

export class StaticStrategy implements DiscoveryStrategy {
  readonly name = 'static';
  private readonly seeds: Address[];
  private loop: { stop(): void } | undefined;

  constructor(private readonly opts: StaticOptions) {
    this.seeds = opts.hosts.map((h, i) => {
      const a = parseAddress(h);
      if (!a) {
        throw new FoundationError(
          'FND_ERR_INVALID_OPTION',
          `discovery.hosts[${i}] is "${h}", expected host:port`,
          {
            field: `discovery.hosts[${i}]`,
          },
        );
      }
      return a;
    });
  }

  start(ctx: DiscoveryContext): void {
    const r = new Reconciler(ctx, this.name);
    this.loop = poll(ctx, this.opts.pollingIntervalMs ?? 1000, () => r.reconcile(this.seeds));
  }

  stop(): void {
    this.loop?.stop();
  }
}
