// Process groups (:pg semantics) on the in-memory network: cluster-wide membership, local members,
// scopes, join/leave events, and members removed when they exit or their node goes down.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIST_KINDS } from '../../src/dist/wire.js';
import type { FoundationNode } from '../../src/index.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const idle = () => ({ handleInfo() {} });
const keys = (pids: Array<{ node: string; id: number }>) =>
  pids.map((p) => `${p.node}.${p.id}`).sort();

describe('process groups', () => {
  it('members span the cluster; localMembers, scopes, events; leave and exit remove them', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const events: string[] = [];
      cc.groups.on('join', (g, pids) => events.push(`+${g}:${keys(pids)}`));
      cc.groups.on('leave', (g, pids) => events.push(`-${g}:${keys(pids)}`));
      const pa = a.spawn(idle());
      const pb = b.spawn(idle());
      a.groups.join('workers', pa);
      b.groups.join('workers', pb);
      b.groups.scope('other').join('workers', pb);
      await tickUntil(
        c.clock,
        c.net,
        () => cc.groups.members('workers').length === 2,
        'c sees 2 workers',
      );
      assert.deepEqual(keys(a.groups.members('workers')), keys([pa, pb]));
      assert.deepEqual(keys(b.groups.localMembers('workers')), keys([pb]));
      assert.deepEqual(cc.groups.whichGroups(), ['workers']);
      // Scopes are separate: 'other' has only pb, and only nodes that created the scope see it.
      cc.groups.scope('other');
      await tickUntil(
        c.clock,
        c.net,
        () => cc.groups.scope('other').members('workers').length === 1,
        'scope synced',
      );
      assert.deepEqual(keys(cc.groups.scope('other').members('workers')), keys([pb]));
      // Joining twice needs leaving twice (:pg).
      a.groups.join('workers', pa);
      assert.equal(a.groups.leave('workers', pa), true);
      await c.clock.tickAsync(50);
      assert.equal(cc.groups.members('workers').length, 2);
      assert.equal(a.groups.leave('workers', pa), true);
      assert.equal(a.groups.leave('workers', pa), false);
      await tickUntil(c.clock, c.net, () => cc.groups.members('workers').length === 1, 'pa left');
      // Exit removes at once locally and soon everywhere.
      b.exit(pb, 'kill');
      assert.equal(b.groups.members('workers').length, 0);
      await tickUntil(
        c.clock,
        c.net,
        () => cc.groups.members('workers').length === 0,
        'pb exit seen',
      );
      assert.deepEqual(events.slice(2), [`-workers:${keys([pa])}`, `-workers:${keys([pb])}`]);
      assert.deepEqual(
        events.slice(0, 2).sort(),
        [`+workers:${keys([pa])}`, `+workers:${keys([pb])}`].sort(),
      );
      assert.throws(() => a.groups.join('', a.spawn(idle())), { code: 'FND_ERR_INVALID_OPTION' });
      assert.throws(() => a.groups.join('g', pb), { code: 'FND_ERR_NOPROC' });
    } finally {
      await c.stop();
    }
  });

  it("a down node's members are removed on every survivor", async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      for (const n of c.nodes) n.groups.join('all', n.spawn(idle()));
      await tickUntil(
        c.clock,
        c.net,
        () => c.nodes.every((n) => n.groups.members('all').length === 3),
        'all see 3',
      );
      c.net.crash(cc.address);
      await tickUntil(
        c.clock,
        c.net,
        () => [a, b].every((n) => n.groups.members('all').length === 2),
        'c gone',
      );
      assert.ok([a, b].every((n) => n.groups.members('all').every((p) => p.node !== 'c')));
    } finally {
      await c.stop();
    }
  });

  it("a peer's member keys count in their canonical form only: one pid, one entry", async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const events: string[] = [];
      a.groups.on('join', (g, p) => events.push(`join ${g} ${String(p)}`));
      a.groups.on('leave', (g, p) => events.push(`leave ${g} ${String(p)}`));
      const kind = `${DIST_KINDS.groupsPrefix}default`;
      const epoch = 2 ** 52;
      // " 1" and "0x1" would be pid m.1 again under Number(): ignored.
      m.messenger.send('a', kind, {
        t: 'snap',
        epoch,
        seq: 0,
        first: true,
        last: true,
        entries: [
          { k: 'g\u00001', v: 1 },
          { k: 'g\u0000 1', v: 1 },
          { k: 'g\u00000x1', v: 1 },
        ],
      });
      await c.clock.tickAsync(50);
      await c.net.settle();
      m.messenger.send('a', kind, { t: 'delta', epoch, seq: 1, ops: [{ k: 'g\u0000 1', d: 1 }] });
      await c.clock.tickAsync(50);
      await c.net.settle();
      assert.deepEqual(keys(a.groups.members('g')), ['m.1']);
      assert.deepEqual(events, ['join g <m.1>']);
    } finally {
      await c.stop();
    }
  });
});
