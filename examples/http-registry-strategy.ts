// A custom discovery strategy in ~30 lines: polls an HTTP endpoint that returns the cluster's
// addresses as JSON (["10.0.0.5:4370", ...]) — e.g. a service registry — and lets the shared
// Reconciler join the ones that are not members yet. Use it with
//   Foundation.start({ discovery: new HttpRegistryStrategy('http://registry:8080/peers') })
import {
  type Address,
  type DiscoveryContext,
  type DiscoveryStrategy,
  poll,
  Reconciler,
} from 'foundation-cluster';

export class HttpRegistryStrategy implements DiscoveryStrategy {
  readonly name = 'http-registry';
  private loop: { stop(): void } | undefined;

  constructor(
    private readonly url: string,
    private readonly intervalMs = 2000,
  ) {}

  start(ctx: DiscoveryContext): void {
    const reconciler = new Reconciler(ctx, this.name, /* disconnectRemoved */ true);
    this.loop = poll(ctx, this.intervalMs, async () => {
      const res = await fetch(this.url, { signal: ctx.signal });
      if (!res.ok) throw new Error(`${this.url} answered ${res.status}`);
      const list = (await res.json()) as unknown;
      const addresses: Address[] = (Array.isArray(list) ? list : [])
        .filter((s): s is string => typeof s === 'string' && /^[^:]+:\d+$/.test(s))
        .map((s) => ({ host: s.split(':')[0]!, port: Number(s.split(':')[1]) }));
      await reconciler.reconcile(addresses);
    });
  }

  stop(): void {
    this.loop?.stop();
  }
}
