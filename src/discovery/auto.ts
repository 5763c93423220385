// Turns `discovery` options into a strategy. `auto` (the default) decides from the environment, in
// this order, and the node logs the choice with its reason:
//   1. FOUNDATION_PEERS is set (host:port list)           → static on those seeds
//   2. inside Kubernetes (KUBERNETES_SERVICE_HOST is set):
//        FOUNDATION_SELECTOR set (label selector)         → kubernetes API
//        FOUNDATION_SERVICE set (headless service name)   → dns (A/AAAA of that name)
//   3. bound to loopback                                 → local (same host, no network traffic)
//   4. otherwise                                         → mdns, falling back to gossip when mDNS
//                                                          cannot start (gossip needs the cluster secret)
import { readFileSync } from 'node:fs';
import type { DiscoveryOptions } from '../options.js';
import { FallbackStrategy } from './fallback.js';
import { DnsStrategy } from './strategies/dns.js';
import { DnsSrvStrategy } from './strategies/dns-srv.js';
import { GossipStrategy } from './strategies/gossip.js';
import { HostsFileStrategy } from './strategies/hosts-file.js';
import { KubernetesStrategy } from './strategies/kubernetes.js';
import { LocalStrategy } from './strategies/local.js';
import { MdnsStrategy } from './strategies/mdns.js';
import { StaticStrategy } from './strategies/static.js';
import type { DiscoveryStrategy } from './strategy.js';

export interface Choice {
  strategy: DiscoveryStrategy;
  reason: string;
}

export interface ChoiceContext {
  env: NodeJS.ProcessEnv;
  /** Whether the node listens on a loopback address. */
  loopback: boolean;
  /** The cluster secret (gossip authenticates its packets with it unless given its own). */
  secret: string | undefined;
}

export function chooseStrategy(
  opt: DiscoveryOptions | DiscoveryStrategy,
  { env, loopback, secret }: ChoiceContext = {
    env: process.env,
    loopback: true,
    secret: undefined,
  },
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
    case 'dns':
      return { strategy: new DnsStrategy(opt), reason: `configured: dns (A/AAAA of ${opt.query})` };
    case 'dns-srv':
      return {
        strategy: new DnsSrvStrategy(opt),
        reason: `configured: dns-srv (SRV of ${opt.query})`,
      };
    case 'kubernetes':
      return {
        strategy: new KubernetesStrategy(opt, env),
        reason: `configured: kubernetes API (${opt.selector ?? `service ${opt.serviceName}`})`,
      };
    case 'hosts-file':
      return { strategy: new HostsFileStrategy(opt), reason: 'configured: hosts file' };
    case 'gossip':
      return {
        strategy: new GossipStrategy(opt, secret),
        reason: 'configured: gossip (UDP multicast)',
      };
    case 'mdns':
      return { strategy: new MdnsStrategy(opt), reason: 'configured: mdns' };
    case 'auto':
      return auto(env, loopback, secret);
  }
}

function auto(env: NodeJS.ProcessEnv, loopback: boolean, secret: string | undefined): Choice {
  const peers = env.FOUNDATION_PEERS?.split(/[\s,]+/).filter(Boolean);
  if (peers?.length) {
    return {
      strategy: new StaticStrategy({ hosts: peers }),
      reason: 'auto: FOUNDATION_PEERS is set',
    };
  }
  let note = '';
  if (env.KUBERNETES_SERVICE_HOST) {
    if (env.FOUNDATION_SELECTOR) {
      return {
        strategy: new KubernetesStrategy({ selector: env.FOUNDATION_SELECTOR }, env),
        reason: 'auto: in Kubernetes and FOUNDATION_SELECTOR is set, so the Kubernetes API',
      };
    }
    if (env.FOUNDATION_SERVICE) {
      const query = serviceName(env.FOUNDATION_SERVICE);
      return {
        strategy: new DnsStrategy({ query }),
        reason: `auto: in Kubernetes, so DNS of the headless service ${query} (FOUNDATION_SERVICE)`,
      };
    }
    note = ' (in Kubernetes, but neither FOUNDATION_SERVICE nor FOUNDATION_SELECTOR is set)';
  }
  if (loopback) {
    return {
      strategy: new LocalStrategy(),
      reason: `auto: bound to loopback, so same-host discovery${note}`,
    };
  }
  return {
    strategy: new FallbackStrategy([new MdnsStrategy(), new GossipStrategy({}, secret)]),
    reason: `auto: not on loopback, so mDNS (gossip if mDNS cannot start)${note}`,
  };
}

/**
 * Node's resolver applies no search domains, so a bare service name (`shop`) would never resolve:
 * qualify it with the pod's namespace, read from the service-account folder, when it has no dot.
 */
function serviceName(
  svc: string,
  nsFile = '/var/run/secrets/kubernetes.io/serviceaccount/namespace',
): string {
  if (svc.includes('.')) return svc;
  try {
    const ns = readFileSync(nsFile, 'utf8').trim();
    return ns ? `${svc}.${ns}.svc.cluster.local` : svc;
  } catch {
    return svc;
  }
}
