// A split {n0,n1} | {n2,n3,n4} on the in-memory network under a manual clock: both sides declare
// the other down, and when the split heals the minority's old `down` verdicts, carried by push-pull
// to the majority, must not make the majority take its own healthy members for down (issue 14).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundationNode, Member } from '../../src/index.js';
import { memCluster, statusOf } from '../helpers/mem-cluster.js';

// lan's shape, scaled down 5×, with frequent push-pull so the old verdicts do travel.
const membership = {
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  suspicionMinMs: 800,
  suspicionMaxMs: 4800,
  suspicionConfirmations: 1,
  syncIntervalMs: 300,
  reconnectIntervalMs: 200,
};

interface Seen {
  observer: string;
  event: string;
  member: string;
  reason: string;
  at: number;
}

function record(nodes: FoundationNode[], now: () => number): Seen[] {
  const seen: Seen[] = [];
  for (const n of nodes) {
    for (const event of ['memberUp', 'memberSuspect', 'memberDown', 'memberLeft'] as const) {
      n.on(event, (m: Member, info) =>
        seen.push({ observer: n.name, event, member: m.name, reason: info.reason, at: now() }),
      );
    }
  }
  return seen;
}

describe('partition heal (in-memory network, manual clock)', () => {
  it("after {n0,n1} | {n2,n3,n4} heals, the minority's old down verdicts make no memberDown on the majority", async () => {
    const c = await memCluster(5, { membership });
    try {
      await c.tick(1000);
      const seen = record(c.nodes, () => c.clock.now());
      const minority = c.nodes.slice(0, 2);
      const majority = c.nodes.slice(2);
      c.net.partition(
        minority.map((n) => n.address),
        majority.map((n) => n.address),
      );
      const split = () =>
        minority.every((a) => majority.every((b) => statusOf(a, b.name) === 'down')) &&
        majority.every((a) => minority.every((b) => statusOf(a, b.name) === 'down'));
      for (let t = 0; t < 30_000 && !split(); t += 100) await c.tick(100);
      assert.ok(split(), `both sides should declare the other down: ${JSON.stringify(seen)}`);
      // Nobody took a member on its own side for down.
      const sameSide = (s: Seen) =>
        minority.some((n) => n.name === s.observer) === minority.some((n) => n.name === s.member);
      assert.deepEqual(
        seen.filter((s) => s.event === 'memberDown' && sameSide(s)),
        [],
        'no down between connected nodes during the split',
      );
      const healedAt = c.clock.now();
      c.net.heal();
      const healed = () => c.nodes.every((n) => n.members().every((m) => m.status === 'alive'));
      for (let t = 0; t < 20_000 && !healed(); t += 100) await c.tick(100);
      assert.ok(
        healed(),
        `every node should see every member alive after the heal: ${JSON.stringify(c.nodes.map((n) => n.members()))}`,
      );
      // Let any late verdict arrive, then look at everything that happened after the heal.
      await c.tick(3000);
      const after = seen.filter((s) => s.at >= healedAt);
      assert.deepEqual(
        after.filter((s) => s.event === 'memberDown'),
        [],
        'a heal must not declare anyone down (before issue 14, push-pull carried `down` across)',
      );
      assert.ok(healed(), 'still all alive after the heal settled');
    } finally {
      await c.stopAll();
    }
  });
});
