// Builds clusters of real FoundationNodes on the in-memory network under a manual clock, for
// deterministic membership tests: time moves only when the test says so.
import type { DiscoveryStrategy } from '../../src/discovery/strategy.js';
import { FoundationNode, type FoundationOptions, type Member } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { TEST_SECRET } from './nodes.js';

/** A strategy that finds nobody: tests join nodes explicitly. */
export const noDiscovery: DiscoveryStrategy = { name: 'none', start() {}, stop() {} };

export interface MemCluster {
  clock: ManualClock;
  net: InMemoryNetwork;
  nodes: FoundationNode[];
  start(name: string, extra?: FoundationOptions): Promise<FoundationNode>;
  /** Advances the clock in steps, letting deliveries run between them. */
  tick(ms: number, step?: number): Promise<void>;
  stopAll(): Promise<void>;
}

export async function memCluster(n: number, extra: FoundationOptions = {}): Promise<MemCluster> {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock, 7);
  const nodes: FoundationNode[] = [];
  const c: MemCluster = {
    clock,
    net,
    nodes,
    async start(name, more = {}) {
      const node = await FoundationNode.start({
        name,
        cluster: 'test',
        secret: TEST_SECRET,
        transport: net.transport(),
        clock,
        logLevel: 'silent',
        discovery: noDiscovery,
        ...extra,
        ...more,
      });
      nodes.push(node);
      return node;
    },
    async tick(ms, step = 10) {
      for (let t = 0; t < ms; t += step) {
        await clock.tickAsync(Math.min(step, ms - t));
        await net.settle();
      }
    },
    async stopAll() {
      await Promise.all(nodes.map((x) => x.stop()));
    },
  };
  for (let i = 0; i < n; i++) await c.start(`n${i}`);
  for (const node of nodes.slice(1)) await node.join(nodes[0]!.address);
  await net.settle();
  await c.tick(50);
  return c;
}

export function statusOf(node: FoundationNode, name: string): Member['status'] | undefined {
  return node.members().find((m) => m.name === name)?.status;
}

export function aliveCount(node: FoundationNode): number {
  return node.members().filter((m) => m.status === 'alive').length;
}
