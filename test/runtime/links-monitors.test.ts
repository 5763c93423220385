// Links, monitors and exit signals on one node: one DOWN per monitor (with the exit reason, or
// 'noproc' for a pid that never existed), demonitor, bidirectional link propagation of abnormal
// exits, 'normal' exits that do not propagate, trapExits turning signals into EXIT messages, and
// the untrappable 'kill' (seen by linked actors as 'killed'); node.exit on a real node.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundationNode } from '../../src/node.js';
import type { DownMessage, ExitMessage, ExitReason } from '../../src/runtime/behaviour.js';
import { Pid, type PidLike } from '../../src/runtime/pid.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { flushIO, ManualClock, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { startMemNode, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const log = createLogger('silent');
const system = () => new ActorSystem({ nodeName: 'n', clock: systemClock, log });

async function until(cond: () => boolean, what: string, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

/** An actor that records every message it gets and crashes on {crash: reason}. */
function recorder(sys: ActorSystem, opts: { trapExits?: boolean; link?: PidLike } = {}) {
  const got: unknown[] = [];
  const pid = sys.spawn((m, ctx) => {
    got.push(m);
    const crash = (m as { crash?: unknown })?.crash;
    if (crash !== undefined) {
      if (typeof crash === 'string') ctx.stop(crash);
      else throw crash;
    }
    const link = (m as { link?: PidLike })?.link;
    if (link) ctx.link(link);
    const unlink = (m as { unlink?: PidLike })?.unlink;
    if (unlink) ctx.unlink(unlink);
  }, opts);
  return { pid, got };
}

function downsOf(sys: ActorSystem, pid: PidLike): DownMessage[] {
  const downs: DownMessage[] = [];
  sys.monitor(pid, (d) => downs.push(d));
  return downs;
}

const reasonOf = (downs: DownMessage[]): ExitReason | undefined => downs[0]?.reason;

describe('monitors', () => {
  it('deliver exactly one DOWN with the ref, the pid and the exit reason', async () => {
    const sys = system();
    const target = recorder(sys);
    const calls: DownMessage[] = [];
    const ref = sys.monitor(target.pid, (d) => calls.push(d));
    const other: DownMessage[] = [];
    const ref2 = sys.monitor(target.pid, (d) => other.push(d));
    assert.notEqual(ref, ref2, 'each monitor has its own ref');
    const boom = new Error('boom');
    sys.send(target.pid, { crash: boom });
    await until(() => calls.length === 1 && other.length === 1, 'DOWNs');
    assert.deepEqual(calls[0], { type: 'DOWN', ref, pid: target.pid, reason: boom });
    assert.equal(calls[0]!.reason, boom, 'the reason is the very error');
    assert.ok(calls[0]!.pid instanceof Pid);
    assert.equal(other[0]!.ref, ref2);
    await flushIO(8);
    assert.equal(calls.length, 1, 'one DOWN only');
    assert.equal(other.length, 1, 'one DOWN only');
  });

  it('an actor monitoring through ctx.monitor receives a DOWN message', async () => {
    const sys = system();
    const target = recorder(sys);
    const refs: string[] = [];
    const downs: DownMessage[] = [];
    const watcher = sys.spawn((m, ctx) => {
      if (m === 'watch') refs.push(ctx.monitor(target.pid));
      else if ((m as DownMessage).type === 'DOWN') downs.push(m as DownMessage);
    });
    sys.send(watcher, 'watch');
    await until(() => refs.length === 1, 'monitoring');
    sys.send(target.pid, { crash: 'shutdown' });
    await until(() => downs.length === 1, 'DOWN message');
    assert.deepEqual(downs[0], {
      type: 'DOWN',
      ref: refs[0],
      pid: target.pid,
      reason: 'shutdown',
    });
    assert.ok(sys.isAlive(watcher), 'a DOWN is information, it does not kill the watcher');
    await flushIO(8);
    assert.equal(downs.length, 1);
  });

  it('a normal exit gives a DOWN with reason normal', async () => {
    const sys = system();
    const t = recorder(sys);
    const downs = downsOf(sys, t.pid);
    sys.send(t.pid, { crash: 'normal' });
    await until(() => downs.length === 1, 'DOWN');
    assert.equal(reasonOf(downs), 'normal');
  });

  it("a pid that never existed, or is already dead, gives DOWN 'noproc'", async () => {
    const sys = system();
    const never = downsOf(sys, { node: 'n', id: 4242 });
    const t = recorder(sys);
    sys.exit(t.pid, 'kill');
    const dead = downsOf(sys, t.pid);
    assert.equal(never.length, 0, 'the DOWN is delivered asynchronously, never during monitor()');
    await until(() => never.length === 1 && dead.length === 1, 'two DOWNs');
    assert.equal(reasonOf(never), 'noproc');
    assert.equal(reasonOf(dead), 'noproc');
    assert.deepEqual(never[0]!.pid, new Pid('n', 4242));
  });

  it('demonitor: no DOWN after the target exits', async () => {
    const sys = system();
    const t = recorder(sys);
    const kept: DownMessage[] = [];
    const dropped: DownMessage[] = [];
    sys.monitor(t.pid, (d) => kept.push(d));
    const ref = sys.monitor(t.pid, (d) => dropped.push(d));
    sys.demonitor(ref);
    sys.demonitor(ref); // idempotent
    sys.demonitor('n#unknown');
    sys.send(t.pid, { crash: new Error('x') });
    await until(() => kept.length === 1, 'the kept monitor fired');
    await flushIO(8);
    assert.equal(dropped.length, 0);
  });

  it('ctx.demonitor from inside an actor', async () => {
    const sys = system();
    const t = recorder(sys);
    const got: unknown[] = [];
    const w = sys.spawn((m, ctx) => {
      got.push(m);
      if (m === 'go') ctx.demonitor(ctx.monitor(t.pid));
    });
    sys.send(w, 'go');
    await until(() => got.length === 1, 'monitored and demonitored');
    sys.exit(t.pid, 'kill');
    await until(() => !sys.isAlive(t.pid), 'target dead');
    await flushIO(8);
    assert.deepEqual(got, ['go']);
  });

  it('monitoring with a dead watcher actor is refused with FND_ERR_NOPROC', () => {
    const sys = system();
    const t = recorder(sys);
    assert.throws(
      () => sys.monitor(t.pid, { node: 'n', id: 777 }),
      (e) => (e as { code?: string }).code === 'FND_ERR_NOPROC',
    );
  });
});

describe('links', () => {
  for (const side of ['first', 'second'] as const) {
    it(`propagate an abnormal exit both ways (the ${side} one crashes)`, async () => {
      const sys = system();
      const a = recorder(sys);
      const b = recorder(sys);
      const bystander = recorder(sys);
      sys.link(a.pid, b.pid);
      const [dying, other] = side === 'first' ? [a, b] : [b, a];
      const dd = downsOf(sys, dying.pid);
      const od = downsOf(sys, other.pid);
      const boom = new Error(`crash of the ${side}`);
      sys.send(dying.pid, { crash: boom });
      await until(() => dd.length === 1 && od.length === 1, 'both dead');
      assert.equal(reasonOf(dd), boom);
      assert.equal(reasonOf(od), boom, 'the linked actor exits with the same reason');
      assert.ok(sys.isAlive(bystander.pid), 'an unlinked actor is not affected');
    });
  }

  it('propagate along a chain (a—b—c) and through spawn({ link }) and ctx.link', async () => {
    const sys = system();
    const a = recorder(sys);
    const b = recorder(sys, { link: a.pid });
    const c = recorder(sys);
    sys.send(c.pid, { link: b.pid });
    await until(() => c.got.length === 1, 'c linked');
    const downs = [a, b, c].map((x) => downsOf(sys, x.pid));
    sys.send(c.pid, { crash: new Error('end of chain') });
    await until(() => downs.every((d) => d.length === 1), 'all three dead');
    for (const d of downs) assert.equal((reasonOf(d) as Error).message, 'end of chain');
  });

  it('an actor its own handler or init made exit stays dead, and its caller is answered', async () => {
    const sys = system();
    const dead = sys.spawn(() => {});
    sys.exit(dead, 'kill');
    const exits: string[] = [];
    sys.onExit((pid, reason) => exits.push(`${String(pid)} ${String(reason)}`));
    let terminates = 0;
    const a = sys.spawn({
      async handleCall(_m: unknown, ctx) {
        ctx.link(dead); // 'noproc' back at once: this non-trapping actor exits mid-handler
        await new Promise((r) => setImmediate(r));
        return 'reply from a dead actor';
      },
      terminate() {
        terminates++;
      },
    });
    await assert.rejects(sys.call(a, 'go'), { code: 'FND_ERR_ACTOR_EXITED' });
    await flushIO(8);
    assert.equal(sys.isAlive(a), false);
    assert.equal(terminates, 1);
    // The same from a synchronous init: the actor does not come back to life after it.
    const b = sys.spawn({
      init(ctx) {
        ctx.link(dead);
      },
      handleInfo() {},
    });
    await flushIO(8);
    assert.equal(sys.isAlive(b), false);
    sys.exit(b, 'kill');
    await flushIO(8);
    assert.deepEqual(exits, [`${String(a)} noproc`, `${String(b)} noproc`], 'one exit each');
  });

  it('an exit runs down a chain of 5000 links without overflowing the stack', async () => {
    const sys = system();
    const first = sys.spawn(() => {});
    let prev = first;
    for (let i = 1; i < 5000; i++) prev = sys.spawn(() => {}, { link: prev });
    const last = prev;
    const downs = downsOf(sys, last);
    sys.exit(first, 'boom');
    await until(() => downs.length === 1, 'the last actor exited');
    assert.equal(reasonOf(downs), 'boom');
    assert.equal(sys.size, 0);
  });

  it("a 'normal' exit does not kill linked actors", async () => {
    const sys = system();
    const a = recorder(sys);
    const b = recorder(sys, { link: a.pid });
    const ad = downsOf(sys, a.pid);
    sys.send(a.pid, { crash: 'normal' });
    await until(() => ad.length === 1, 'a stopped');
    await flushIO(8);
    assert.ok(sys.isAlive(b.pid));
    // b's link to a is gone with a: a later crash of b has nobody to take down.
    sys.send(b.pid, 'still here');
    await until(() => b.got.length === 1, 'b handles messages');
  });

  it("'shutdown' is abnormal for links: the linked actor exits with it", async () => {
    const sys = system();
    const a = recorder(sys);
    const b = recorder(sys, { link: a.pid });
    const bd = downsOf(sys, b.pid);
    sys.exit(a.pid, 'shutdown');
    await until(() => bd.length === 1, 'b exited');
    assert.equal(reasonOf(bd), 'shutdown');
  });

  it('unlink stops propagation (from either side)', async () => {
    const sys = system();
    const a = recorder(sys);
    const b = recorder(sys, { link: a.pid });
    const c = recorder(sys, { link: a.pid });
    sys.unlink(a.pid, b.pid);
    sys.send(c.pid, { unlink: a.pid });
    await until(() => c.got.length === 1, 'c unlinked');
    const ad = downsOf(sys, a.pid);
    sys.send(a.pid, { crash: new Error('alone') });
    await until(() => ad.length === 1, 'a dead');
    await flushIO(8);
    assert.ok(sys.isAlive(b.pid));
    assert.ok(sys.isAlive(c.pid));
  });

  it("linking to a dead pid sends 'noproc' back (and kills a non-trapping caller)", async () => {
    const sys = system();
    const trapper = recorder(sys, { trapExits: true });
    const plain = recorder(sys);
    const pd = downsOf(sys, plain.pid);
    const ghost = new Pid('n', 5000);
    sys.send(trapper.pid, { link: ghost });
    sys.send(plain.pid, { link: ghost });
    await until(() => trapper.got.length === 2 && pd.length === 1, 'noproc delivered');
    assert.deepEqual(trapper.got[1], { type: 'EXIT', from: ghost, reason: 'noproc' });
    assert.equal(reasonOf(pd), 'noproc');
  });
});

describe('trapExits', () => {
  it('turns exit signals from links into EXIT messages; the trapping actor lives on', async () => {
    const sys = system();
    const trapper = recorder(sys, { trapExits: true });
    const a = recorder(sys, { link: trapper.pid });
    const b = recorder(sys, { link: trapper.pid });
    const boom = new Error('linked crash');
    sys.send(a.pid, { crash: boom });
    sys.send(b.pid, { crash: 'normal' });
    await until(() => trapper.got.length === 2, 'two EXIT messages');
    const exits = trapper.got as ExitMessage[];
    assert.deepEqual(
      exits.find((e) => (e.from as Pid).equals(a.pid)),
      { type: 'EXIT', from: a.pid, reason: boom },
    );
    assert.deepEqual(
      exits.find((e) => (e.from as Pid).equals(b.pid)),
      { type: 'EXIT', from: b.pid, reason: 'normal' },
      'a trapping actor also hears about normal exits',
    );
    assert.ok(sys.isAlive(trapper.pid));
  });

  it('turns exit(pid, reason) into an EXIT message from the sender', async () => {
    const sys = system();
    const trapper = recorder(sys, { trapExits: true });
    sys.exit(trapper.pid, 'please');
    const sender = sys.spawn((_m, ctx) => ctx.exit(trapper.pid, new Error('from an actor')));
    sys.send(sender, 'go');
    await until(() => trapper.got.length === 2, 'two EXIT messages');
    assert.deepEqual(trapper.got[0], { type: 'EXIT', from: sys.nodePid, reason: 'please' });
    assert.equal(String(sys.nodePid), '<n.0>');
    const second = trapper.got[1] as ExitMessage;
    assert.ok((second.from as Pid).equals(sender));
    assert.equal((second.reason as Error).message, 'from an actor');
    assert.ok(sys.isAlive(trapper.pid));
  });

  it('an explicit exit signal from a linked actor leaves the link: its later crash still arrives', async () => {
    const sys = system();
    const trapper = recorder(sys, { trapExits: true });
    const a = sys.spawn(
      (m, ctx) => {
        if (m === 'poke') ctx.exit(trapper.pid, 'hello');
        if (m === 'crash') throw new Error('boom');
      },
      { link: trapper.pid },
    );
    sys.send(a, 'poke');
    await until(() => trapper.got.length === 1, 'the explicit EXIT');
    sys.send(a, 'crash');
    await until(() => trapper.got.length === 2, 'the EXIT of the crash, over the link');
    assert.equal(((trapper.got[1] as ExitMessage).reason as Error).message, 'boom');
    // Not trapping: exit(b, 'normal') from a linked actor is ignored, and its crash kills b.
    const b = recorder(sys);
    const c = sys.spawn(
      (m, ctx) => {
        if (m === 'poke') ctx.exit(b.pid, 'normal');
        if (m === 'crash') throw new Error('boom2');
      },
      { link: b.pid },
    );
    sys.send(c, 'poke');
    await flushIO(8);
    assert.ok(sys.isAlive(b.pid));
    sys.send(c, 'crash');
    await until(() => !sys.isAlive(b.pid), 'b exits with its linked actor');
  });

  it('can be switched on and off at run time through ctx.trapExits', async () => {
    const sys = system();
    const got: unknown[] = [];
    const pid = sys.spawn((m, ctx) => {
      got.push(m);
      if (m === 'trap') ctx.trapExits = true;
      if (m === 'untrap') ctx.trapExits = false;
    });
    const downs = downsOf(sys, pid);
    sys.send(pid, 'trap');
    await until(() => got.length === 1, 'trapping');
    sys.exit(pid, 'first');
    await until(() => got.length === 2, 'EXIT message');
    assert.deepEqual(got[1], { type: 'EXIT', from: sys.nodePid, reason: 'first' });
    sys.send(pid, 'untrap');
    await until(() => got.length === 3, 'not trapping');
    sys.exit(pid, 'second');
    await until(() => downs.length === 1, 'killed by the signal');
    assert.equal(reasonOf(downs), 'second');
  });

  it("exit(pid, 'normal') from another actor is ignored by a non-trapping actor", async () => {
    const sys = system();
    const t = recorder(sys);
    sys.exit(t.pid, 'normal');
    await flushIO(8);
    assert.ok(sys.isAlive(t.pid));
  });
});

describe("exit(pid, 'kill')", () => {
  it("cannot be trapped; linked actors see 'killed'", async () => {
    const sys = system();
    const victim = recorder(sys, { trapExits: true });
    const trapper = recorder(sys, { trapExits: true, link: victim.pid });
    const plain = recorder(sys, { link: victim.pid });
    const vd = downsOf(sys, victim.pid);
    const pd = downsOf(sys, plain.pid);
    sys.exit(victim.pid, 'kill');
    await until(() => vd.length === 1 && pd.length === 1 && trapper.got.length === 1, 'signals');
    assert.equal(reasonOf(vd), 'killed');
    assert.deepEqual(victim.got, [], 'the victim got no EXIT message: kill is not trappable');
    assert.deepEqual(trapper.got[0], { type: 'EXIT', from: victim.pid, reason: 'killed' });
    assert.equal(reasonOf(pd), 'killed', "a non-trapping linked actor dies with 'killed'");
    assert.ok(sys.isAlive(trapper.pid));
  });

  it("a linked actor exiting with reason 'kill' does not kill a trapping peer (only direct kill is untrappable)", async () => {
    const sys = system();
    const a = recorder(sys);
    const trapper = recorder(sys, { trapExits: true, link: a.pid });
    sys.send(a.pid, { crash: 'kill' });
    await until(() => trapper.got.length === 1, 'EXIT');
    assert.deepEqual(trapper.got[0], { type: 'EXIT', from: a.pid, reason: 'kill' });
    assert.ok(sys.isAlive(trapper.pid));
  });
});

describe('node.exit on a running node', () => {
  it('ends a non-trapping actor, and reaches a trapping one as an EXIT from the node pid', async () => {
    const net = new InMemoryNetwork();
    const clock = new ManualClock();
    const node = await startMemNode(net, clock, { name: 'solo' });
    try {
      const got: unknown[] = [];
      // The node's own services (root supervisor, foundation.node) are actors too.
      const baseline = node.runtime.stats().actors;
      const trapper = node.spawn((m) => void got.push(m), { trapExits: true });
      const plain = node.spawn(() => {});
      assert.equal(String(plain), `<solo.${plain.id}>`);
      const downs: DownMessage[] = [];
      node.monitor(plain, (d) => downs.push(d));
      node.exit(plain, 'shutdown');
      node.exit(trapper, 'shutdown');
      await until(() => downs.length === 1 && got.length === 1, 'exit delivered');
      assert.equal(downs[0]!.reason, 'shutdown');
      assert.deepEqual(got[0], { type: 'EXIT', from: new Pid('solo', 0), reason: 'shutdown' });
      assert.ok(node.actors.isAlive(trapper));
      // node.link / node.unlink act like the system's.
      const a = node.spawn(() => {
        throw new Error('linked');
      });
      node.link(a, trapper);
      node.send(a, 'crash now');
      await until(() => got.length === 2, 'EXIT from the linked actor');
      assert.equal(((got[1] as ExitMessage).reason as Error).message, 'linked');
      node.exit(trapper, 'kill');
      await until(() => !node.actors.isAlive(trapper), 'killed');
      assert.equal(node.runtime.stats().actors, baseline);
    } finally {
      await node.stop();
    }
  });
});

describe('across nodes (in-memory network, manual clock)', () => {
  /**
   * Two meshed nodes x and y; on y an actor `remote`; on x a trapping actor linked to it and a
   * monitor of it. Then y crashes and x declares it down.
   */
  async function crashedPeer() {
    const cluster = await startMeshedCluster(['x', 'y']);
    const { net, clock } = cluster;
    const [x, y] = cluster.nodes as [FoundationNode, FoundationNode];
    const remote = y.spawn(() => 'pong', { name: 'svc' });
    assert.equal(await x.call(remote, 'ping'), 'pong');
    assert.equal(await x.call({ name: 'svc', node: 'y' }, 'ping'), 'pong');
    const downs: DownMessage[] = [];
    x.monitor(remote, (d) => downs.push(d));
    const got: unknown[] = [];
    const trapper = x.spawn(
      (m, ctx) => {
        const link = (m as { link?: PidLike }).link;
        if (link) ctx.link(link);
        else got.push(m);
      },
      { trapExits: true },
    );
    x.link(trapper, remote);
    await net.settle();
    net.crash(y.address);
    await tickUntil(clock, net, () => downs.length === 1, 'DOWN noconnection', { maxMs: 20_000 });
    return { cluster, x, remote, downs, got, trapper };
  }

  it("a crashed node: monitors fire 'noconnection', links deliver it, a later monitor too", async () => {
    const { cluster, x, remote, downs, got } = await crashedPeer();
    try {
      assert.equal(downs[0]!.reason, 'noconnection');
      assert.deepEqual(downs[0]!.pid, remote);
      await until(() => got.length === 1, 'EXIT');
      assert.deepEqual(got[0], { type: 'EXIT', from: remote, reason: 'noconnection' });
      const late: DownMessage[] = [];
      x.monitor(remote, (d) => late.push(d));
      await until(() => late.length === 1, 'late DOWN');
      assert.equal(late[0]!.reason, 'noconnection');
      await flushIO(8);
      assert.equal(downs.length, 1, 'one DOWN only');
    } finally {
      await cluster.stop();
    }
  });

  it('a call to a node that is down returns a rejected promise (it does not throw)', async () => {
    const { cluster, x, remote } = await crashedPeer();
    try {
      let call: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        call = x.call(remote, 'ping');
      }, 'call to a down node must return a rejected promise, not throw');
      await assert.rejects(call!, (e: { code?: string }) =>
        ['FND_ERR_NODE_DOWN', 'FND_ERR_UNKNOWN_NODE'].includes(e.code ?? ''),
      );
    } finally {
      await cluster.stop();
    }
  });

  it("a link made after the node went down gets an EXIT 'noconnection' back", async () => {
    const { cluster, x, remote, got, trapper } = await crashedPeer();
    try {
      await until(() => got.length === 1, 'first EXIT');
      x.send(trapper, { link: remote });
      await until(() => got.length === 2, "EXIT 'noconnection' for the late link", 2000);
      assert.deepEqual(got[1], { type: 'EXIT', from: remote, reason: 'noconnection' });
    } finally {
      await cluster.stop();
    }
  });
});
