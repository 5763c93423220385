// Load balancers: which endpoint of a service takes a call. Each gets the endpoints that can take
// calls now (the caller already removed those whose node is suspect or down, that report
// unhealthy, or whose circuit breaker is open) and returns one. Stateless ones are shared; a
// round-robin keeps a counter per service.
import type { EndpointValue } from './wire.js';

/** One node's offer of one service, as the balancers and `services.list()` see it. */
export interface Endpoint {
  node: string;
  service: string;
  /** This node. */
  local: boolean;
  info: EndpointValue;
}

export interface PickContext {
  /** The call's sharding key (consistent-hash). */
  key: string | undefined;
  /** EWMA of observed latency to `node`, ms; undefined before the first reply. */
  latency(node: string): number | undefined;
}

/**
 * Chooses one of `endpoints` (never empty, sorted by node name). Must not throw; called once per
 * call attempt, never concurrently.
 */
export interface Balancer {
  readonly name: string;
  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint;
}

export type BalancerName =
  | 'round-robin'
  | 'random'
  | 'least-latency'
  | 'consistent-hash'
  | 'prefer-local';

/** Each in turn; the counter is per balancer (one per service, or per call when given per call). */
export function roundRobin(): Balancer {
  let n = 0;
  return {
    name: 'round-robin',
    pick: (eps) => eps[n++ % eps.length]!,
  };
}

/** Uniformly at random (`rng` returns [0, 1); injectable for tests). */
export function random(rng: () => number = Math.random): Balancer {
  return {
    name: 'random',
    pick: (eps) => eps[Math.floor(rng() * eps.length) % eps.length]!,
  };
}

/**
 * Least latency by the power of two choices: two endpoints at random, the one with the lower EWMA
 * latency wins; an endpoint never measured wins (so new endpoints get traffic, and one that was
 * slow once is still tried now and then instead of being starved forever).
 */
export function leastLatency(rng: () => number = Math.random): Balancer {
  return {
    name: 'least-latency',
    pick(eps, ctx) {
      if (eps.length === 1) return eps[0]!;
      const i = Math.floor(rng() * eps.length) % eps.length;
      let j = Math.floor(rng() * (eps.length - 1)) % (eps.length - 1);
      if (j >= i) j++;
      const a = eps[i]!;
      const b = eps[j]!;
      const la = ctx.latency(a.node);
      const lb = ctx.latency(b.node);
      if (la === undefined) return a;
      if (lb === undefined) return b;
      return lb < la ? b : a;
    },
  };
}

/** 32-bit FNV-1a with a murmur3 finaliser (good spread for short, similar strings). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Consistent hashing on the call's `key` (rendezvous / highest-random-weight): every caller picks
 * the same endpoint for a key, and when an endpoint goes away only its keys move. Calls without a
 * key are refused by the caller (FND_ERR_INVALID_OPTION) before this runs.
 */
export function consistentHash(): Balancer {
  return {
    name: 'consistent-hash',
    pick(eps, ctx) {
      const key = ctx.key ?? '';
      let best = eps[0]!;
      let bestScore = -1;
      for (const e of eps) {
        const score = hash32(`${key}\u0000${e.node}`);
        if (score > bestScore || (score === bestScore && e.node < best.node)) {
          best = e;
          bestScore = score;
        }
      }
      return best;
    },
  };
}

/** This node's endpoint when it has one that can take the call, else `inner`'s choice. */
export function preferLocal(inner: Balancer = roundRobin()): Balancer {
  return {
    name: 'prefer-local',
    pick(eps, ctx) {
      for (const e of eps) if (e.local) return e;
      return inner.pick(eps, ctx);
    },
  };
}

export function balancerFor(name: BalancerName | Balancer): Balancer {
  if (typeof name !== 'string') return name;
  switch (name) {
    case 'round-robin':
      return roundRobin();
    case 'random':
      return random();
    case 'least-latency':
      return leastLatency();
    case 'consistent-hash':
      return consistentHash();
    case 'prefer-local':
      return preferLocal();
  }
}

export const BALANCER_NAMES: ReadonlySet<string> = new Set([
  'round-robin',
  'random',
  'least-latency',
  'consistent-hash',
  'prefer-local',
]);

/** EWMA of observed latency per node (α = 0.2: about the last 10 calls weigh most). */
export class LatencyStats {
  private readonly ewma = new Map<string, number>();
  constructor(private readonly alpha = 0.2) {}

  observe(node: string, ms: number): void {
    const prev = this.ewma.get(node);
    this.ewma.set(node, prev === undefined ? ms : prev + this.alpha * (ms - prev));
  }

  get(node: string): number | undefined {
    return this.ewma.get(node);
  }

  forget(node: string): void {
    this.ewma.delete(node);
  }
}
