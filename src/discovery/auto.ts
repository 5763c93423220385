// Turns `discovery` options into a strategy. `auto` decides from the environment, in this order:
// FOUNDATION_PEERS set → static on those seeds; otherwise → local (same host). Later issues add
// Kubernetes DNS and mDNS to this list; the choice and its reason are logged at start.
import type { DiscoveryOptions } from '../options.js';
import { LocalStrategy } from './strategies/local.js';
import { StaticStrategy } from './strategies/static.js';
import type { DiscoveryStrategy } from './strategy.js';

export interface Choice {
  strategy: DiscoveryStrategy;
  reason: string;
}

export function chooseStrategy(
  opt: DiscoveryOptions | DiscoveryStrategy,
  env: NodeJS.ProcessEnv = process.env,
  loopback = true,
): Choice {
  if (!('strategy' in opt) || typeof (opt as { start?: unknown }).start === 'function') {
    const s = opt as DiscoveryStrategy;
    return { strategy: s, reason: `custom strategy "${s.name}"` };
  }
  switch (opt.strategy) {
    case 'static':
      return { strategy: new StaticStrategy(opt), reason: 'configured: static seeds' };
    case 'local':
      return { strategy: new LocalStrategy(opt), reason: 'configured: local (same host)' };
    case 'auto': {
      const peers = env.FOUNDATION_PEERS?.split(/[\s,]+/).filter(Boolean);
      if (peers?.length)
        return {
          strategy: new StaticStrategy({ hosts: peers }),
          reason: 'auto: FOUNDATION_PEERS is set',
        };
      return {
        strategy: new LocalStrategy(),
        reason: loopback
          ? 'auto: bound to loopback, so same-host discovery'
          : 'auto: no other strategy applies yet; same-host discovery',
      };
    }
  }
}
