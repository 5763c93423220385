// A DiscoveryContext for driving one strategy by hand: a ManualClock, and every connect and
// disconnect it asks for recorded.
import type { DiscoveryContext } from '../../src/discovery/strategy.js';
import type { Address } from '../../src/transport/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

export function recordingContext(cluster: string, selfHost = '10.0.0.1') {
  const clock = new ManualClock();
  const connects: Address[] = [];
  const disconnects: Address[] = [];
  const ctx: DiscoveryContext = {
    cluster,
    self: { name: 'me', address: { host: selfHost, port: 4000 }, incarnation: 1 },
    connect: async (a) => {
      connects.push(a);
      return undefined;
    },
    disconnect: (a) => {
      disconnects.push(a);
    },
    knownNodes: () => [],
    clock,
    log: createLogger('silent'),
    signal: new AbortController().signal,
  };
  return { clock, ctx, connects, disconnects };
}
