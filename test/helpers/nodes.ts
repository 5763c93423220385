// Helpers to run Foundation nodes inside one test process: on the in-memory network with a manual
// clock (deterministic: time moves only when the test ticks it), or on real TCP over loopback
// (waiting on real time, with generous deadlines and no assertions about how long things took).

import type { DiscoveryStrategy } from '../../src/discovery/strategy.js';
import type { Subscription } from '../../src/dist/pubsub.js';
import { Foundation, type FoundationNode, type FoundationOptions } from '../../src/index.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { ManualClock } from '../../src/util/clock.js';

/** A cluster secret that passes validation (≥ 16 characters). */
export const TEST_SECRET = 'foundation-test-secret-0001';

/** A discovery strategy that finds nothing: tests join nodes explicitly with `node.join`. */
export function nullDiscovery(): DiscoveryStrategy {
  return { name: 'none', start() {}, stop() {} };
}

/** Starts a node on `net` driven by `clock`, quiet, with no discovery; `opts` override. */
export function startMemNode(
  net: InMemoryNetwork,
  clock: ManualClock,
  opts: FoundationOptions = {},
): Promise<FoundationNode> {
  return Foundation.start({
    secret: TEST_SECRET,
    logLevel: 'silent',
    discovery: nullDiscovery(),
    transport: net.transport(),
    clock,
    ...opts,
  });
}

/** Whether `node` lists every one of `names` (other than itself) as alive. */
export function seesAlive(node: FoundationNode, names: string[]): boolean {
  const members = node.members();
  return names
    .filter((n) => n !== node.name)
    .every((n) => members.some((m) => m.name === n && m.status === 'alive'));
}

/** Whether every node sees every other node alive. */
export function fullyMeshed(nodes: FoundationNode[]): boolean {
  const names = nodes.map((n) => n.name);
  return nodes.every((n) => seesAlive(n, names));
}

/**
 * Lets in-memory I/O run and advances the manual clock `stepMs` at a time until `cond()` holds;
 * fails once `maxMs` of simulated time has passed. Never sleeps.
 */
export async function tickUntil(
  clock: ManualClock,
  net: InMemoryNetwork,
  cond: () => boolean,
  what: string,
  { stepMs = 10, maxMs = 30_000 }: { stepMs?: number; maxMs?: number } = {},
): Promise<void> {
  const start = clock.now();
  for (;;) {
    await net.settle();
    if (cond()) return;
    if (clock.now() - start >= maxMs) {
      throw new Error(`timed out (simulated ${maxMs} ms) waiting for: ${what}`);
    }
    await clock.tickAsync(stepMs);
  }
}

/** Real-time polling for tests on real sockets; fails after `timeoutMs`. */
export async function waitUntil(
  cond: () => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface MeshedCluster {
  net: InMemoryNetwork;
  clock: ManualClock;
  nodes: FoundationNode[];
  /** Stops every node still running (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts one node per name on a fresh in-memory network with a fresh manual clock, joins them all
 * through the first, and waits (in simulated time) until every node sees every other alive.
 */
export async function startMeshedCluster(
  names: string[],
  opts: FoundationOptions = {},
  seed = 1,
): Promise<MeshedCluster> {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock, seed);
  const nodes: FoundationNode[] = [];
  // A stopping node may wait on its clock (a consensus leader hands its leadership over, bounded
  // by an election timeout): simulated time runs while the nodes stop.
  const stop = async () => {
    let done = false;
    const all = Promise.all(nodes.map((n) => n.stop())).finally(() => {
      done = true;
    });
    while (!done) {
      await net.settle();
      if (!done) await clock.tickAsync(10);
    }
    await all;
  };
  try {
    for (const name of names) nodes.push(await startMemNode(net, clock, { name, ...opts }));
    for (const n of nodes.slice(1)) await n.join(nodes[0]!.address);
    await tickUntil(clock, net, () => fullyMeshed(nodes), `${names.join(', ')} fully meshed`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { net, clock, nodes, stop };
}

/**
 * Subscribes `node` to topics `fill.0`, `fill.1`, … until pub/sub refuses one with
 * FND_ERR_DIST_LIMIT (maxEntriesPerNode); returns the subscriptions (`fill.i` is the i-th).
 */
export function fillPubSub(node: FoundationNode): Subscription[] {
  const subs: Subscription[] = [];
  for (let i = 0; ; i++) {
    try {
      subs.push(node.pubsub.subscribe(`fill.${i}`, () => {}));
    } catch (err) {
      if ((err as { code?: string }).code !== 'FND_ERR_DIST_LIMIT') throw err;
      return subs;
    }
  }
}
