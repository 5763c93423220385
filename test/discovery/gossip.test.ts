// Gossip discovery over real UDP multicast between node processes in separate network namespaces
// joined by a private bridge (test/helpers/netns.ts). Nothing is sent on the machine's interfaces.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, afterEach, describe, it } from 'node:test';
import { mapTopologies } from '../../src/discovery/libcluster.js';
import { LIBCLUSTER_EXAMPLES } from '../fixtures/libcluster-examples.js';
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
const DETECT_MS = 20_000;
const SECRET = 'gossip-netns-secret-0001';

describe('gossip discovery in network namespaces', () => {
  let seg: Segment | undefined;
  const procs: NsNode[] = [];
  const spawn = (name: string, host: number, discovery: object, extra: string[] = []) => {
    // `strategy` may come with the options (a mapped libcluster topology): it is gossip anyway.
    const p = new NsNode(name, segment().hosts[host]!, [
      '--cluster',
      'gossip-it',
      '--secret',
      SECRET,
      '--preset',
      'local',
      '--discovery-json',
      JSON.stringify({ strategy: 'gossip', ...discovery }),
      ...extra,
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

  // Each test leaves nothing running, pass or fail: leftovers would join the next test's nodes.
  afterEach(stopAll);

  after(async () => {
    await stopAll();
    seg?.destroy();
    assert.deepEqual(ownNamespaces(), [], 'every namespace of this run is removed');
  });

  it('three nodes signed with HMAC find each other; a node with another gossip secret is never added; a killed node is seen down and rejoins after a restart', async () => {
    const nodes = ['g1', 'g2', 'g3'].map((n, i) => spawn(n, i, {}));
    await Promise.all(nodes.map((n) => n.started(START_MS)));
    await allSeeAlive(nodes, ['g1', 'g2', 'g3'], FORM_MS);
    console.log(`# gossip (HMAC): 3 nodes formed ${formationMs(nodes)} ms after the last start`);
    for (const n of nodes) {
      await eventually(
        async () => (await n.ask('stats')).stats.accepted > 0,
        FORM_MS,
        `${n.name} to accept a beat`,
      );
      assert.equal((await n.ask('stats')).stats.droppedAuth, 0);
    }

    // Same cluster and cluster secret, another gossip secret: its beats must fail authentication.
    const intruder = spawn('g-wrong', 3, { secret: 'another-gossip-secret-99' });
    const started = await intruder.started(START_MS);
    for (const n of nodes) {
      await eventually(
        async () => (await n.ask('stats')).stats.droppedAuth >= 3,
        FORM_MS,
        `${n.name} to drop the intruder's beats`,
      );
    }
    // The cluster's beats reach the intruder on the members' own schedule: wait for one.
    await eventually(
      async () => (await intruder.ask('stats')).stats.droppedAuth > 0,
      FORM_MS,
      'the intruder to drop the cluster beats too',
    );
    assert.equal((await intruder.ask('stats')).stats.accepted, 0);
    for (const n of nodes) {
      // Eventually: a node starved for a moment may be suspected and back (this is about
      // who is a member, not about failure detection).
      await eventually(
        async () => JSON.stringify(await n.alive()) === JSON.stringify(['g1', 'g2', 'g3']),
        FORM_MS,
        `${n.name} to see ['g1', 'g2', 'g3'] alive`,
      );
      const dialled = n.events.filter(
        (e: Event) => e.event === 'discoveryConnect' && e.metadata.address === started.address,
      );
      assert.deepEqual(dialled, [], `${n.name} never dialled the intruder`);
      assert.ok(!(await n.ask('stats')).list.some((p: Event) => p.name === 'g-wrong'));
    }
    assert.deepEqual(await intruder.alive(), ['g-wrong']);
    await intruder.kill();

    // Kill g3: the others declare it down; restarted, it is discovered again.
    const victim = nodes[2]!;
    const oldInc = (await victim.started()).incarnation as number;
    await victim.kill('SIGKILL');
    for (const n of nodes.slice(0, 2)) {
      const down = await n.waitFor(
        (e) => e.event === 'memberDown' && e.member.name === 'g3',
        DETECT_MS,
        'g3 down',
      );
      assert.equal(down.member.status, 'down');
    }
    const again = spawn('g3', 2, {});
    const restarted = await again.started(START_MS);
    assert.ok(restarted.incarnation > oldInc);
    await allSeeAlive([nodes[0]!, nodes[1]!, again], ['g1', 'g2', 'g3'], FORM_MS);
    for (const n of nodes.slice(0, 2)) {
      const up = n.events.find(
        (e) =>
          e.event === 'memberUp' &&
          e.member.name === 'g3' &&
          e.member.incarnation === restarted.incarnation,
      );
      assert.ok(up, `${n.name} saw the restarted g3 come up`);
    }
  });

  it('three nodes with encrypt: true (AES-256-GCM) find each other', async () => {
    const nodes = ['e1', 'e2', 'e3'].map((n, i) =>
      spawn(n, i, { encrypt: true, ifAddr: segment().hosts[i]!.ip }),
    );
    await Promise.all(nodes.map((n) => n.started(START_MS)));
    await allSeeAlive(nodes, ['e1', 'e2', 'e3'], FORM_MS);
    console.log(`# gossip (AES-GCM): 3 nodes formed ${formationMs(nodes)} ms after the last start`);
    for (const n of nodes) {
      const others = ['e1', 'e2', 'e3'].filter((x) => x !== n.name);
      await eventually(
        async () =>
          JSON.stringify((await n.ask('stats')).list.map((p: Event) => p.name).sort()) ===
          JSON.stringify(others),
        FORM_MS,
        `${n.name} to list ${others.join(', ')}`,
      );
      const { stats } = await n.ask('stats');
      assert.ok(stats.accepted > 0);
      assert.equal(stats.droppedAuth, 0);
    }
  });

  it('three nodes with broadcastOnly find each other through 255.255.255.255', async () => {
    const nodes = ['b1', 'b2', 'b3'].map((n, i) => spawn(n, i, { broadcastOnly: true }));
    await Promise.all(nodes.map((n) => n.started(START_MS)));
    await allSeeAlive(nodes, ['b1', 'b2', 'b3'], FORM_MS);
    console.log(
      `# gossip (broadcast): 3 nodes formed ${formationMs(nodes)} ms after the last start`,
    );
  });

  /** The gossip options Foundation makes of one of libcluster's Gossip examples. */
  const libclusterGossip = (
    source: string,
    edit: (c: Record<string, unknown>) => void = () => {},
  ) => {
    const e = LIBCLUSTER_EXAMPLES.find(
      (x) => x.source === `lib/strategy/gossip.ex, @moduledoc (${source})`,
    )!;
    const topologies = structuredClone(e.topologies);
    edit(topologies.gossip_example!.config!);
    const { strategy: _gossip, ...opts } = mapTopologies(topologies, {}).gossip_example!.discovery;
    return opts;
  };

  it("libcluster's broadcast-only example (multicast_addr 255.255.255.255) forms a cluster; so does a subnet's directed broadcast", async () => {
    const limited = libclusterGossip('broadcast only');
    assert.deepEqual(limited, {
      port: 45892,
      broadcastOnly: true,
      broadcastAddr: '255.255.255.255',
    });
    const pair = ['lb1', 'lb2'].map((n, i) => spawn(n, i, limited));
    await Promise.all(pair.map((n) => n.started(START_MS)));
    await allSeeAlive(pair, ['lb1', 'lb2'], FORM_MS);
    await stopAll();

    // The docs: "Use multicast_addr as the broadcast address": here the segment's own.
    const subnetBroadcast = segment().subnet.replace(/0\/24$/, '255');
    const directed = libclusterGossip('broadcast only', (c) => {
      c.multicast_addr = subnetBroadcast;
      c.port = 45893;
    });
    assert.equal(directed.broadcastAddr, subnetBroadcast);
    const nodes = ['db1', 'db2', 'db3'].map((n, i) => spawn(n, i, directed));
    await Promise.all(nodes.map((n) => n.started(START_MS)));
    await allSeeAlive(nodes, ['db1', 'db2', 'db3'], FORM_MS);
  });

  it('multicast_if decides the interface beats leave by and the group is joined on, whatever the multicast route says', async () => {
    // In two hosts, a decoy link takes the multicast route: without multicast_if beats go
    // out of the decoy and nobody hears them.
    const hosts = segment().hosts.slice(0, 2);
    const ip = (ns: string, args: string[]) =>
      execFileSync('ip', ['-n', ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      for (const [i, h] of hosts.entries()) {
        // A veth pair with both ends in the host: a link that leads nowhere else.
        ip(h.ns, ['link', 'add', 'decoy0', 'type', 'veth', 'peer', 'name', 'decoy1']);
        ip(h.ns, ['addr', 'add', `10.232.${i + 1}.1/24`, 'dev', 'decoy0']);
        ip(h.ns, ['link', 'set', 'decoy1', 'up']);
        ip(h.ns, ['link', 'set', 'decoy0', 'up']);
        ip(h.ns, ['route', 'replace', '224.0.0.0/4', 'dev', 'decoy0']);
      }
      const example = (extra: Record<string, unknown> = {}) =>
        libclusterGossip('multicast', (c) => {
          // The docs' "somepassword" is refused (12 characters); the migration guide's fix:
          c.secret = 'somepassword-somepassword';
          c.multicast_if = undefined;
          Object.assign(c, extra);
        });
      const lost = hosts.map((_h, i) => spawn(`lost${i}`, i, example()));
      await Promise.all(lost.map((n) => n.started(START_MS)));
      for (const n of lost) {
        await eventually(
          async () => (await n.ask('stats')).stats.sent >= 4,
          FORM_MS,
          `${n.name} to send a few beats`,
        );
      }
      for (const n of lost) {
        assert.equal(
          (await n.ask('stats')).stats.accepted,
          0,
          `${n.name} heard nobody via the decoy`,
        );
      }
      await stopAll();

      const found = hosts.map((h, i) => spawn(`if${i}`, i, example({ multicast_if: h.ip })));
      await Promise.all(found.map((n) => n.started(START_MS)));
      await allSeeAlive(found, ['if0', 'if1'], FORM_MS);
    } finally {
      for (const h of hosts) {
        try {
          ip(h.ns, ['route', 'replace', '224.0.0.0/4', 'dev', 'eth0']);
          ip(h.ns, ['link', 'del', 'decoy0']);
        } catch {
          // the segment is torn down at the end anyway
        }
      }
    }
  });
});
