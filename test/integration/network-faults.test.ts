// Membership on real (virtual) links, the short version of bench/network-faults (issue 14): five
// node processes with the `lan` preset, each in its own network namespace on a private bridge,
// every connection through the userspace latency switch; faults are silent kernel drops (nft).
// Asserts behaviour only — each side detects a partition, nobody declares a member it can reach
// down, everything heals — never how fast (bench/network-faults measures that). Needs root to
// build namespaces; skipped, saying so, only when not root. Nothing leaves the namespaces.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FaultCluster, falseVerdicts, notRoot, now } from '../helpers/net-faults.js';
import { ownNamespaces } from '../helpers/netns.js';

// Liveness limits (a busy machine may be slow), not performance targets.
const FORM_MS = 40_000;
const DETECT_MS = 40_000;
const HEAL_MS = 30_000;
/** After a heal, how long any late verdict would still have to show up. */
const SETTLE_MS = 2_000;

const whyNot = notRoot();

describe('membership on real links: partition, blackhole, loss, latency (lan)', {
  skip: whyNot ? `skipped: ${whyNot}` : false,
}, () => {
  let c: FaultCluster | undefined;
  const cluster = () => {
    assert.ok(c, 'the cluster did not start (see the first failure)');
    return c;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Heals every fault and asserts everyone is alive again and nobody was declared down since. */
  const healAndCheck = async (what: string) => {
    const c = cluster();
    // Who holds whom down when the fault ends, asked of the nodes themselves: their memberDown
    // events are stamped by their own clocks, which can be a millisecond or two off this one,
    // so one of those may carry a time just after t1. It is a late verdict only if the observer
    // had seen the member come back first.
    const downAtHeal = new Set<string>();
    for (const [o, v] of await c.views())
      for (const [m, status] of v) if (status === 'down') downAtHeal.add(`${o}→${m}`);
    const t1 = now();
    c.clear();
    await c.allAlive(HEAL_MS, `every node to see every node alive after the ${what} healed`);
    console.log(`# ${what}: all alive ${Math.round(now() - t1)} ms after the heal (not asserted)`);
    await sleep(SETTLE_MS);
    const events = c.events(t1);
    const cameBack = (o: string, m: string, before: number) =>
      events.some(
        (e) => e.observer === o && e.member === m && e.event === 'memberUp' && e.t < before,
      );
    const late = falseVerdicts(
      events.filter(
        (e) =>
          e.event !== 'memberDown' ||
          !downAtHeal.has(`${e.observer}→${e.member}`) ||
          cameBack(e.observer, e.member, e.t),
      ),
      t1,
      now(),
      () => true,
    );
    assert.deepEqual(
      late.downList,
      [],
      `no memberDown between nodes that can all talk again after the ${what}`,
    );
    await c.allAlive(HEAL_MS, `every node still alive ${SETTLE_MS} ms after the ${what} healed`);
  };

  before(async () => {
    const t = now();
    c = await FaultCluster.start({ n: 5, preset: 'lan', viaSwitch: true }, FORM_MS);
    console.log(`# formed in ${Math.round(now() - t)} ms (not asserted)`);
  });

  after(async () => {
    await c?.stop();
    assert.deepEqual(ownNamespaces(), [], 'every namespace of this run is removed');
  });

  it('partition {n1,n2} | {n3,n4,n5}: each side declares the other down and nobody on its own side; the heal brings everyone back with no memberDown', async () => {
    const c = cluster();
    const minority = ['n1', 'n2'];
    const t0 = now();
    c.partition([0, 1], [2, 3, 4]);
    await c.allDown([0, 1], [2, 3, 4], DETECT_MS, 'the minority to declare the majority down');
    await c.allDown([2, 3, 4], [0, 1], DETECT_MS, 'the majority to declare the minority down');
    console.log(`# partition: both sides down after ${Math.round(now() - t0)} ms (not asserted)`);
    const side = (n: string) => minority.includes(n);
    const during = falseVerdicts(c.events(t0), t0, now(), (o, m) => side(o) === side(m));
    assert.deepEqual(during.downList, [], 'no memberDown between nodes on the same side');
    await healAndCheck('partition');
  });

  it('blackhole of n5 (no RST, no ICMP): n5 is declared down by all and rejoins, though it still suspects everyone', async () => {
    const c = cluster();
    const t0 = now();
    c.blackhole(4);
    await c.allDown([0, 1, 2, 3], [4], DETECT_MS, 'n1–n4 to declare the blackholed n5 down');
    // n5 itself suspects everyone, but nobody can confirm its suspicions: it would wait
    // suspicionMaxMs (24 s) to declare them down (Lifeguard: a lone suspecter may be the problem).
    // Healed before that, its suspicions must end in refutations, not downs.
    console.log(`# blackhole: detected after ${Math.round(now() - t0)} ms (not asserted)`);
    const during = falseVerdicts(c.events(t0), t0, now(), (o, m) => o !== 'n5' && m !== 'n5');
    assert.deepEqual(
      during.downList,
      [],
      'no memberDown among n1–n4, which still reach each other',
    );
    await healAndCheck('blackhole');
  });

  it('20 % packet loss for 8 s and then 100 ± 20 ms round trips for 6 s: nobody is declared down', async () => {
    const c = cluster();
    const t0 = now();
    c.loss(20);
    await sleep(8_000);
    const lossy = falseVerdicts(c.events(t0), t0, now(), () => true);
    assert.deepEqual(lossy.downList, [], 'no memberDown at 20 % loss');
    c.clear();
    const t1 = now();
    c.latency(50, 10);
    await sleep(6_000);
    const slow = falseVerdicts(c.events(t1), t1, now(), () => true);
    assert.deepEqual(slow.downList, [], 'no memberDown at 100 ± 20 ms round trips');
    await healAndCheck('loss and latency');
  });
});
