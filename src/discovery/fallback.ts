// Tries strategies in order and keeps the first whose start() succeeds (auto mode: mDNS, then
// gossip when mDNS cannot run here, e.g. port 5353 is taken or multicast is unavailable).
import type { DiscoveryContext, DiscoveryStrategy } from './strategy.js';

export class FallbackStrategy implements DiscoveryStrategy {
  private active: DiscoveryStrategy | undefined;
  /** Why an earlier candidate was passed over (empty when the first one started). */
  note = '';

  constructor(private readonly candidates: DiscoveryStrategy[]) {}

  /** The candidate that started, once one has. */
  get current(): DiscoveryStrategy | undefined {
    return this.active;
  }

  get name(): string {
    return this.active?.name ?? this.candidates.map((c) => c.name).join('|');
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    const failures: string[] = [];
    for (const c of this.candidates) {
      try {
        await c.start(ctx);
        this.active = c;
        this.note = failures.join('; ');
        if (failures.length)
          ctx.log.warn({ strategy: c.name, passedOver: this.note }, 'discovery fell back');
        return;
      } catch (err) {
        failures.push(`${c.name}: ${(err as Error).message}`);
        await Promise.resolve(c.stop()).catch(() => {});
      }
    }
    throw new Error(`no discovery strategy could start (${failures.join('; ')})`);
  }

  async stop(): Promise<void> {
    await this.active?.stop();
  }
}
