// Helpers shared by the service-layer tests on the in-memory network.
import type { FoundationNode } from '../../src/index.js';
import { track } from '../helpers/assert.js';
import { type MeshedCluster, tickUntil } from '../helpers/nodes.js';

/** Runs `p` to completion on the simulated network (ticking the manual clock as needed). */
export async function done<T>(c: MeshedCluster, p: Promise<T>, maxMs = 30_000): Promise<T> {
  const t = track(p);
  t.promise.catch(() => {});
  await tickUntil(c.clock, c.net, () => t.result.state !== 'pending', 'call settled', {
    stepMs: 5,
    maxMs,
  });
  return p;
}

/** Waits until `node`'s catalogue lists at least `n` endpoints of `service`. */
export async function ready(
  c: MeshedCluster,
  node: FoundationNode,
  service: string,
  n = 1,
): Promise<void> {
  await tickUntil(
    c.clock,
    c.net,
    () => node.services.list({ name: service }).length >= n,
    `${service} listed`,
  );
}
