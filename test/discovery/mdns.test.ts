// mDNS (DNS-SD) discovery over real multicast between node processes in separate network
// namespaces joined by a private bridge (test/helpers/netns.ts). Nothing is sent on the machine's
// interfaces.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAX_NEW_PER_PACKET } from '../../src/discovery/strategies/mdns.js';
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
import { FORGED_FIRST_PORT, forgedMdnsResponse } from './forged-mdns.js';

// Liveness limits, not performance assertions: formation is printed, never asserted.
const START_MS = 20_000;
const FORM_MS = 15_000;
const SECRET = 'mdns-netns-secret-00001';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Sends one raw datagram to the mDNS group from inside namespace `ns` (bound to `ip`, so it leaves
 * through that namespace's veth onto the private segment, never a real interface).
 */
function sendFromNamespace(ns: string, ip: string, packet: Buffer): void {
  const code = `
    const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });
    s.bind(0, process.argv[1], () => {
      s.setMulticastInterface(process.argv[1]);
      s.setMulticastTTL(255);
      s.send(Buffer.from(process.argv[2], 'base64'), 5353, '224.0.0.251', (err) => {
        if (err) { console.error(err.message); process.exit(1); }
        s.close();
      });
    });`;
  execFileSync(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', code, ip, packet.toString('base64')],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
}

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
      // Eventually: a node starved for a moment may be suspected and back (this is about
      // who is a member, not about failure detection).
      await eventually(
        async () => JSON.stringify(await n.alive()) === JSON.stringify(['m1', 'm2', 'm3']),
        FORM_MS,
        `${n.name} to see ['m1', 'm2', 'm3'] alive`,
      );
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
      // Eventually: a node starved for a moment may be suspected and back (this is about
      // who is a member, not about failure detection).
      await eventually(
        async () => JSON.stringify(await n.alive()) === JSON.stringify(['m1', 'm2']),
        FORM_MS,
        `${n.name} to see ['m1', 'm2'] alive`,
      );
    }
  });

  it(`one forged mDNS packet listing 100 instances makes a node dial at most ${MAX_NEW_PER_PACKET} addresses; a real node still joins`, async () => {
    const victim = segment().hosts[1]!;
    const m1 = spawn('m1', 0);
    await m1.started(START_MS);
    // 100 instances of m1's cluster, all aimed at closed ports of the forger's own namespace.
    const packet = forgedMdnsResponse(100, victim.ip, 'mdns-it');
    const forged = (e: Event) =>
      e.event === 'discoveryConnect' &&
      e.metadata.address.startsWith(`${victim.ip}:`) &&
      Number(e.metadata.address.split(':')[1]) >= FORGED_FIRST_PORT;
    const dialled = () => new Set(m1.events.filter(forged).map((e) => e.metadata.address));
    const before = (await m1.ask('stats')).stats;
    sendFromNamespace(victim.ns, victim.ip, packet);
    await eventually(
      async () =>
        (await m1.ask('stats')).stats.ignoredOverLimit >=
        before.ignoredOverLimit + 100 - MAX_NEW_PER_PACKET,
      FORM_MS,
      'm1 to receive the forged packet',
    );
    const { list } = await m1.ask('stats');
    assert.equal(
      list.length,
      MAX_NEW_PER_PACKET,
      'one packet lists at most MAX_NEW_PER_PACKET instances',
    );
    // Wait until some forged address has been retried (its backoff ran out and m1 browsed again):
    // by then every dial this packet could cause has had its chance.
    await eventually(
      () => m1.events.filter(forged).length > dialled().size,
      FORM_MS,
      'a retry of a forged address',
    );
    const targets = dialled();
    console.log(
      `# mdns: one forged 100-instance packet → ${targets.size} addresses dialled, ${m1.events.filter(forged).length} attempts`,
    );
    assert.ok(targets.size >= 1, 'the forged records were acted on (positive control)');
    assert.ok(targets.size <= MAX_NEW_PER_PACKET, `${targets.size} addresses dialled`);
    assert.ok(m1.events.filter(forged).every((e) => e.metadata.ok === false));

    // A real node on the segment still forms a cluster with m1.
    const m2 = spawn('m2', 2);
    await m2.started(START_MS);
    await allSeeAlive([m1, m2], ['m1', 'm2'], FORM_MS);
  });

  it('auto discovery off loopback, with the mDNS port held by another socket: the node falls back to gossip instead of crashing', () => {
    const host = segment().hosts[3]!;
    // A socket on 5353 without SO_REUSEADDR makes mDNS's bind fail (EADDRINUSE): multicast-dns
    // then emits 'error' twice, which used to throw from the second emit and end the process.
    const code = `
      import dgram from 'node:dgram';
      import { Foundation } from ${JSON.stringify(path.join(REPO, 'dist', 'src', 'index.js'))};
      const blocker = dgram.createSocket({ type: 'udp4', reuseAddr: false });
      await new Promise((r) => blocker.bind(5353, '0.0.0.0', r));
      const node = await Foundation.start({
        name: 'held', host: process.argv[1], secret: ${JSON.stringify(SECRET)}, logLevel: 'silent',
      });
      console.log(JSON.stringify(node.discovery));
      await node.stop();
      blocker.close();`;
    const out = execFileSync(
      'ip',
      ['netns', 'exec', host.ns, process.execPath, '--input-type=module', '-e', code, host.ip],
      { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: START_MS },
    );
    const discovery = JSON.parse(out.trim().split('\n').at(-1)!);
    assert.equal(discovery.name, 'gossip');
    assert.match(discovery.reason, /EADDRINUSE/);
  });
});
