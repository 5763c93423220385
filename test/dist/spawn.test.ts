// Remote spawn by kind on the in-memory network: spawnOn another node (and this one), the unknown
// kind error, spawn_link across nodes, a supervisor child started by kind on another node and
// restarted there, and a malicious spawn request.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIST_KINDS } from '../../src/dist/wire.js';
import { type FoundationNode, Supervisor } from '../../src/index.js';
import { fulfilled, rejectedWith, track } from '../helpers/assert.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const counter = (args: unknown, info: { handoff?: unknown }) => {
  let n = (info.handoff as number | undefined) ?? (args as { start: number }).start;
  return {
    handleCall: (m: unknown) => {
      if (m !== 'get') n += m as number;
      return n;
    },
  };
};

describe('remote spawn', () => {
  it('spawns a defined kind on another node and on this one; unknown kind is a coded error', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.define('counter', counter);
      a.define('counter', counter);
      const t = track(a.spawnOn('b', 'counter', { start: 40 }, { name: 'ctr' }));
      await tickUntil(c.clock, c.net, () => t.result.state !== 'pending', 'spawned');
      const pid = fulfilled(t);
      assert.equal(pid.node, 'b');
      const r = track(a.call({ name: 'ctr', node: 'b' }, 2));
      await tickUntil(c.clock, c.net, () => r.result.state !== 'pending', 'called');
      assert.equal(fulfilled(r), 42);
      const self = track(a.spawnOn('a', 'counter', { start: 1 }));
      await tickUntil(c.clock, c.net, () => self.result.state !== 'pending', 'local');
      assert.equal(fulfilled(self).node, 'a');
      const bad = track(a.spawnOn('b', 'nope', null));
      await tickUntil(c.clock, c.net, () => bad.result.state !== 'pending', 'refused');
      const err = rejectedWith(bad, 'FND_ERR_UNKNOWN_KIND');
      assert.equal(err.data?.kind, 'nope');
    } finally {
      await c.stop();
    }
  });

  it("an actor whose init outlasts the requester's wait is stopped, not left running unknown", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const started: Array<{ node: string; id: number }> = [];
      b.define('slow', () => ({
        async init(ctx: { self: { node: string; id: number } }) {
          await new Promise<void>((r) => c.clock.setTimeout(r, 1500));
          started.push(ctx.self);
        },
        handleCall: () => 'ok',
      }));
      const t = track(a.spawnOn('b', 'slow', null, { timeout: 1000 }));
      await tickUntil(c.clock, c.net, () => t.result.state !== 'pending', 'spawn settles');
      rejectedWith(t, 'FND_ERR_REQUEST_TIMEOUT');
      await tickUntil(c.clock, c.net, () => started.length === 1, 'init done on b');
      await c.clock.tickAsync(100);
      await c.net.settle();
      assert.equal(b.actors.isAlive(started[0]!), false, 'stopped: nobody knows of it');
      // Within the wait, the same kind starts and stays.
      const ok = track(a.spawnOn('b', 'slow', null, { timeout: 5000 }));
      await tickUntil(c.clock, c.net, () => ok.result.state !== 'pending', 'spawned');
      assert.ok(b.actors.isAlive(fulfilled(ok)));
    } finally {
      await c.stop();
    }
  });

  it('a supervisor child named by kind runs on another node and is restarted there', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.define('counter', counter);
      const st = track(
        Supervisor.start(a, {
          children: [a.spawner.childSpec('remote', 'counter', { start: 5 }, { node: 'b' })],
        }),
      );
      await tickUntil(c.clock, c.net, () => st.result.state !== 'pending', 'supervisor started');
      const sup = fulfilled(st);
      const first = sup.whichChildren()[0]!.pid!;
      assert.equal(first.node, 'b');
      b.exit(first, 'kill');
      await tickUntil(
        c.clock,
        c.net,
        () => {
          const p = sup.whichChildren()[0]!.pid;
          return p !== undefined && p.id !== first.id;
        },
        'restarted',
      );
      assert.equal(sup.whichChildren()[0]!.pid!.node, 'b');
    } finally {
      await c.stop();
    }
  });

  it('a malicious spawn request (bad shape, link to a third node) is refused with a coded error', async () => {
    const c = await startMeshedCluster(['a', 'm', 'x']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      a.define('counter', counter);
      const before = a.actors.size;
      const r1 = track(m.messenger.request('a', DIST_KINDS.spawn, ['counter', {}]));
      const r2 = track(
        m.messenger.request('a', DIST_KINDS.spawn, {
          kind: 'counter',
          args: { start: 1 },
          link: { node: 'x', id: 1 },
        }),
      );
      const r3 = track(
        m.messenger.request('a', DIST_KINDS.spawn, {
          kind: 'counter',
          args: { start: 1 },
          mailbox: { max: -1, overflow: 'x' },
        }),
      );
      await tickUntil(
        c.clock,
        c.net,
        () => [r1, r2, r3].every((r) => r.result.state !== 'pending'),
        'answered',
      );
      for (const r of [r1, r2, r3]) rejectedWith(r, 'FND_ERR_DIST_MESSAGE');
      assert.equal(a.actors.size, before, 'nothing spawned');
    } finally {
      await c.stop();
    }
  });
});
