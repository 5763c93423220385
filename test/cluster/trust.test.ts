// Trust boundaries between members (issue 7, section 2), deterministic on the in-memory network
// with a manual clock: a member with the secret ("mallory", built from the library's own
// PeerManager) sends crafted membership messages. Only a member raises its own incarnation; claims
// about it above what it announced are ignored; LEAVE counts only from the leaver; hearsay never
// adds a member by itself and makes this node dial only a bounded number of addresses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STATUS_CODES } from '../../src/cluster/wire.js';
import type { FoundationNode, Member, Transport } from '../../src/index.js';
import { MSG } from '../../src/transport/protocol.js';
import { type MemCluster, memCluster, statusOf } from '../helpers/mem-cluster.js';
import { mallory } from './mallory.js';

const MAX = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const code = (s: Member['status']) => STATUS_CODES.indexOf(s);

function hostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

function member(node: FoundationNode, name: string): Member | undefined {
  return node.members().find((m) => m.name === name);
}

/** Ticks the cluster's clock until `cond()` holds, at most `maxMs` of simulated time. */
async function tickUntil(c: MemCluster, cond: () => boolean, maxMs: number): Promise<boolean> {
  for (let t = 0; t < maxMs && !cond(); t += 50) await c.tick(50);
  return cond();
}

/** A transport that counts connection attempts (real attempts on the in-memory network). */
function counting(inner: Transport): { transport: Transport; to: Map<string, number> } {
  const to = new Map<string, number>();
  return {
    to,
    transport: {
      listen: (a, on) => inner.listen(a, on),
      connect: (a, t) => {
        const key = `${a.host}:${a.port}`;
        to.set(key, (to.get(key) ?? 0) + 1);
        return inner.connect(a, t);
      },
      close: () => inner.close(),
    },
  };
}

/** Invented members live on this loopback host, where nothing listens on the in-memory network. */
const GHOST_HOST = '127.0.0.9';
const ghostDials = (m: Map<string, number>) =>
  [...m].filter(([k]) => k.startsWith(`${GHOST_HOST}:`)).reduce((n, [, v]) => n + v, 0);

describe('membership trust: only a member raises its own incarnation', () => {
  it('a DOWN about a live member at 2^53−1 from another member is ignored, and sync does not spread it', async () => {
    const c = await memCluster(3);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    try {
      await c.tick(300);
      const [n0, n1, n2] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const inc = n2.incarnation;
      m.say(n0, [MSG.DOWN, 'n2', MAX, 'mallory']);
      m.say(n0, [MSG.SYNC, [['n2', MAX, code('down'), ...hostPort(n2.address)]]]);
      m.say(n1, [MSG.SUSPECT, 'n2', MAX, 'mallory']);
      m.say(n1, [MSG.LEAVE, 'n2', MAX]);
      // Push-pull runs every 2 s under `local`: let several rounds spread whatever n0 believes.
      await c.tick(6000);
      for (const n of [n0, n1]) {
        assert.equal(statusOf(n, 'n2'), 'alive', `${n.name}: ${JSON.stringify(member(n, 'n2'))}`);
        assert.equal(member(n, 'n2')?.incarnation, inc, `${n.name} keeps what n2 announced`);
      }
      assert.equal(n2.incarnation, inc, 'nothing reached n2 that it had to refute');
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });

  it('a claim about a node itself far above its incarnation is not refuted into the unsafe range; later suspicions are still refuted', async () => {
    const c = await memCluster(3);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    try {
      await c.tick(300);
      const [n0, , n2] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const inc = n2.incarnation;
      m.say(n2, [MSG.DOWN, 'n2', MAX, 'mallory']);
      m.say(n2, [MSG.SYNC, [['n2', MAX - 1, code('left'), ...hostPort(n2.address)]]]);
      await c.tick(500);
      assert.equal(n2.incarnation, inc, 'n2 did not jump to 2^53');
      // A suspicion at n2's real incarnation (the kind any member may voice) is refuted as usual.
      m.say(n0, [MSG.SUSPECT, 'n2', inc, 'mallory']);
      await c.net.settle();
      assert.ok(
        await tickUntil(c, () => statusOf(n0, 'n2') === 'alive' && n2.incarnation > inc, 2000),
        `n0 sees ${JSON.stringify(member(n0, 'n2'))}, n2 at ${n2.incarnation}`,
      );
      assert.equal(member(n0, 'n2')?.incarnation, n2.incarnation);
      assert.ok(Number.isSafeInteger(n2.incarnation + 1));
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });

  it('a LEAVE about another member is ignored: only the leaving node says it leaves', async () => {
    const c = await memCluster(3);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    try {
      await c.tick(300);
      const [n0, n1, n2] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const changes: string[] = [];
      for (const n of [n0, n1])
        for (const e of ['memberSuspect', 'memberDown', 'memberLeft'] as const)
          n.on(e, (x) => {
            // (mallory answers no probes, so it is rightly declared down itself)
            if (x.name === 'n2') changes.push(`${n.name}: ${e} ${x.name}`);
          });
      m.say(n0, [MSG.LEAVE, 'n2', n2.incarnation]);
      m.say(n1, [MSG.LEAVE, 'n2', n2.incarnation]);
      await c.tick(3000);
      for (const n of [n0, n1]) assert.equal(statusOf(n, 'n2'), 'alive', n.name);
      assert.deepEqual(changes, [], 'n2 never flapped');
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });

  it('a member marked left through sync at its own incarnation hears of it and refutes', async () => {
    const c = await memCluster(3);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    try {
      await c.tick(300);
      const [n0, n1, n2] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const inc = n2.incarnation;
      // At n2's own incarnation a `left` entry is accepted (a node that missed a LEAVE needs it)...
      m.say(n0, [MSG.SYNC, [['n2', inc, code('left'), ...hostPort(n2.address)]]]);
      await c.net.settle();
      assert.equal(statusOf(n0, 'n2'), 'left');
      // ...but it is not for good: n2's next sync reaches n0, whose reply tells n2, which refutes.
      assert.ok(
        await tickUntil(
          c,
          () => [n0, n1].every((n) => statusOf(n, 'n2') === 'alive') && n2.incarnation > inc,
          20_000,
        ),
        `n0: ${JSON.stringify(member(n0, 'n2'))}, n1: ${JSON.stringify(member(n1, 'n2'))}`,
      );
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });
});

describe('membership trust: hearsay does not add members or dial without bound', () => {
  it('one SYNC listing 5,000 invented members: none is listed and at most learnPerMessage dials follow', async () => {
    const c = await memCluster(2);
    const counted = counting(c.net.transport());
    const victim = await c.start('victim', { transport: counted.transport });
    await victim.join(c.nodes[0]!.address);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    const ups: string[] = [];
    victim.on('memberUp', (x) => ups.push(x.name));
    try {
      await c.tick(300);
      const entries = Array.from({ length: 5000 }, (_, i) => [
        `ghost-${i}`,
        1,
        0,
        GHOST_HOST,
        1000 + i,
      ]);
      m.say(victim, [MSG.SYNC, entries]);
      await c.tick(5000);
      const dials = ghostDials(counted.to);
      assert.ok(dials <= 16, `${dials} connection attempts to invented members (cap 16)`);
      assert.ok(dials > 0, 'hearsay is still verified (a bounded number of dials)');
      assert.equal(victim.members().filter((x) => x.name.startsWith('ghost-')).length, 0);
      assert.deepEqual(
        ups.filter((x) => x.startsWith('ghost-')),
        [],
        'no memberUp for a node that never answered',
      );
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });

  it('a flood of SYNCs is held to the pending cap and the global dial rate', async () => {
    const c = await memCluster(1);
    const counted = counting(c.net.transport());
    const victim = await c.start('victim', {
      transport: counted.transport,
      dialLimits: { ratePerSec: 50, burst: 100 },
      membershipLimits: { learnPerMessage: 16, pendingMembers: 64 },
    });
    await victim.join(c.nodes[0]!.address);
    const m = await mallory({ transport: c.net.transport(), clock: c.clock, cluster: 'test' });
    try {
      await c.tick(300);
      // 200 SYNCs × 16 new members each, every 10 ms over 2 s of simulated time.
      for (let k = 0; k < 200; k++) {
        const entries = Array.from({ length: 16 }, (_, i) => [
          `ghost-${k}-${i}`,
          1,
          0,
          GHOST_HOST,
          1000 + k * 16 + i,
        ]);
        m.say(victim, [MSG.SYNC, entries]);
        await c.tick(10);
      }
      const dials = ghostDials(counted.to);
      // Burst 100 + 50/s × 2 s (+ the in-flight joins when time stopped).
      assert.ok(dials <= 100 + 50 * 2 + 1, `${dials} dials in 2 s`);
      assert.ok(dials >= 100, `the burst is used (${dials})`);
      assert.equal(victim.members().filter((x) => x.name.startsWith('ghost-')).length, 0);
    } finally {
      await m.stop();
      await c.stopAll();
    }
  });

  it('discovery handing 960 addresses at once: at most pendingMembers dials are in flight', async () => {
    const c = await memCluster(1);
    const counted = counting(c.net.transport());
    let connect: ((a: { host: string; port: number }) => Promise<string | undefined>) | undefined;
    const victim = await c.start('victim', {
      transport: counted.transport,
      discovery: {
        name: 'forged',
        start(ctx) {
          connect = ctx.connect;
        },
        stop() {},
      },
    });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 960 }, (_, i) => connect!({ host: GHOST_HOST, port: 1000 + i })),
      );
      const dials = ghostDials(counted.to);
      assert.ok(dials <= 64, `${dials} dials for 960 forged records (pending cap 64)`);
      const limited = results.filter(
        (r) =>
          r.status === 'rejected' &&
          (r.reason as { code?: string }).code === 'FND_ERR_DIAL_RATE_LIMITED',
      );
      assert.ok(limited.length >= 960 - 64, `${limited.length} refused with a coded error`);
      assert.equal(victim.members().length, 1);
    } finally {
      await c.stopAll();
    }
  });

  it('a member heard of through sync is listed only once it has answered a dial itself', async () => {
    const c = await memCluster(3);
    try {
      await c.tick(300);
      // Cut n2 off from a newcomer: n0 tells the newcomer about n2, but n2 cannot be reached.
      const late = await c.start('late');
      c.net.partition([late.address], [c.nodes[2]!.address]);
      await late.join(c.nodes[0]!.address);
      await c.tick(1000);
      assert.equal(statusOf(late, 'n1'), 'alive', 'n1 answered: it is a member');
      assert.equal(statusOf(late, 'n2'), undefined, 'n2 was only heard of');
      c.net.heal();
      assert.ok(await tickUntil(c, () => statusOf(late, 'n2') === 'alive', 5000));
    } finally {
      await c.stopAll();
    }
  });
});
