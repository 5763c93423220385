// mDNS (DNS-SD) discovery over real multicast between node processes in separate network
// namespaces joined by a private bridge (test/helpers/netns.ts). Nothing is sent on the machine's
// interfaces.
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import {
  allSeeAlive,
  createSegment,
  eventually,
  formationMs,
  NsNode,
  ownNamespaces,
  type Segment,
} from '../helpers/netns.js';
import type { Event } from '../helpers/proc.js';

// Liveness limits, not performance assertions: formation is printed, never asserted.
const START_MS = 20_000;
const FORM_MS = 15_000;
const SECRET = 'mdns-netns-secret-00001';

describe('mdns discovery in network namespaces', () => {
  let seg: Segment | undefined;
  const procs: NsNode[] = [];
  const spawn = (name: string, host: number, cluster = 'mdns-it') => {
    const p = new NsNode(name, segment().hosts[host]!, [
      '--cluster',
      cluster,
      '--secret',
      SECRET,
      '--preset',
      'local',
      '--discovery-json',
      JSON.stringify({ strategy: 'mdns' }),
    ]);
    procs.push(p);
    return p;
  };
  const stopAll = async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  };

  // Built by the first test that needs it; without root or `ip` every test fails saying why.
  const segment = () => {
    seg ??= createSegment(4);
    return seg;
  };
  afterEach(stopAll);
  after(async () => {
    await stopAll();
    seg?.destroy();
    assert.deepEqual(ownNamespaces(), [], 'every namespace of this run is removed');
  });

  it('three nodes find each other; a node of another cluster on the segment is not joined; a graceful stop says goodbye and the others stop listing it', async () => {
    const nodes = ['m1', 'm2', 'm3'].map((n, i) => spawn(n, i));
    await Promise.all(nodes.map((n) => n.started(START_MS)));
    await allSeeAlive(nodes, ['m1', 'm2', 'm3'], FORM_MS);
    console.log(`# mdns: 3 nodes formed ${formationMs(nodes)} ms after the last start`);
    for (const n of nodes) {
      const others = JSON.stringify(['m1', 'm2', 'm3'].filter((x) => x !== n.name));
      await eventually(
        async () =>
          JSON.stringify((await n.ask('stats')).list.map((p: Event) => p.node).sort()) === others,
        FORM_MS,
        `${n.name} to list the other two instances`,
      );
    }

    // Another cluster advertising the same service type on the same segment.
    const stranger = spawn('x1', 3, 'other-cluster');
    const strangerStarted = await stranger.started(START_MS);
    for (const n of nodes) {
      await eventually(
        async () => (await n.ask('stats')).stats.ignoredOtherCluster > 0,
        FORM_MS,
        `${n.name} to hear (and ignore) the other cluster's announcement`,
      );
    }
    await eventually(
      async () => (await stranger.ask('stats')).stats.ignoredOtherCluster >= 3,
      FORM_MS,
      'the stranger to hear (and ignore) the three nodes',
    );
    for (const n of nodes) {
      assert.deepEqual(await n.alive(), ['m1', 'm2', 'm3']);
      const { list } = await n.ask('stats');
      assert.ok(!list.some((p: Event) => p.node === 'x1'), `${n.name} does not list x1`);
      const dialled = n.events.filter(
        (e) => e.event === 'discoveryConnect' && e.metadata.address === strangerStarted.address,
      );
      assert.deepEqual(dialled, [], `${n.name} never dialled the other cluster's node`);
    }
    assert.deepEqual(await stranger.alive(), ['x1']);
    assert.deepEqual((await stranger.ask('stats')).list, []);

    // Graceful stop: goodbye records (TTL 0) take m3 off the others' lists long before its
    // 120 s TTL could have run out.
    const leaving = nodes[2]!;
    const leavingAddress = (await leaving.started()).address;
    const before = await Promise.all(nodes.slice(0, 2).map((n) => n.ask('stats')));
    await leaving.ask('stop');
    await leaving.exited;
    for (const [i, n] of nodes.slice(0, 2).entries()) {
      await eventually(
        async () => {
          const { stats, list } = await n.ask('stats');
          return (
            stats.goodbyes > before[i]!.stats.goodbyes && list.every((p: Event) => p.node !== 'm3')
          );
        },
        FORM_MS,
        `${n.name} to take m3 off its list on its goodbye`,
      );
      const { stats } = await n.ask('stats');
      assert.equal(stats.expired, 0, 'nothing expired: m3 left by goodbye, not by TTL');
      await n.waitFor(
        (e) => e.event === 'discoveryDisconnect' && e.metadata.address === leavingAddress,
        FORM_MS,
        'discovery disconnect telemetry for m3',
      );
      assert.deepEqual(await n.alive(), ['m1', 'm2']);
    }
  });
});
