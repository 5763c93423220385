// node.events: the event log in memory and in SQLite (durable across restarts, WAL; corrupted,
// foreign and unwritable files refused at start with the file untouched), bad input, and the
// cluster side on the in-memory network: emitDistributed to all or N replicas, cluster-wide
// subscribers, queryCluster reporting the members that could not answer, a member's bad messages.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { uuidv7, uuidv7Time } from '../../src/core/ids.js';
import { CORE_KINDS } from '../../src/core/wire.js';
import type { FoundationNode } from '../../src/index.js';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMemNode, startMeshedCluster, tickUntil } from '../helpers/nodes.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'fnd-events-'));
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function solo(events?: object) {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock, 1);
  const node = await startMemNode(net, clock, { name: 'solo', ...(events ? { events } : {}) });
  return { node, clock, net };
}

async function exerciseStore(node: FoundationNode, clock: ManualClock): Promise<void> {
  const ev = node.events;
  const corr = ev.newCorrelationId();
  const root = ev.newEvent('order.created', { id: 1 }, { correlationId: corr });
  assert.equal(root.node, 'solo');
  assert.equal(root.timestamp, clock.wallNow());
  await ev.store(root);
  await ev.store(root); // the same id again: skipped
  clock.tick(10);
  const child = ev.newEvent(
    'order.paid',
    { amount: 5 },
    { correlationId: corr, parentId: root.id },
  );
  clock.tick(10);
  const other = ev.newEvent('user.login', { u: 'x' });
  assert.equal(await ev.storeBatch([child, other]), 2);
  assert.deepEqual(
    (await ev.getByCorrelation(corr)).map((e) => e.type),
    ['order.created', 'order.paid'],
  );
  assert.deepEqual(await ev.query({ type: 'order.paid' }), [child]);
  assert.deepEqual(
    (await ev.query({ order: 'desc', limit: 2 })).map((e) => e.type),
    ['user.login', 'order.paid'],
  );
  assert.deepEqual(
    (await ev.query({ since: root.timestamp + 1, until: child.timestamp })).map((e) => e.id),
    [child.id],
  );
  const stats = await ev.stats();
  assert.equal(stats.count, 3);
  assert.deepEqual(stats.byType, { 'order.created': 1, 'order.paid': 1, 'user.login': 1 });
  assert.equal(stats.oldest, root.timestamp);
  assert.equal(stats.newest, other.timestamp);
  assert.equal(await ev.prune({ olderThan: child.timestamp }), 1);
  assert.equal(await ev.prune({ keepLast: 1 }), 1);
  assert.deepEqual(
    (await ev.query()).map((e) => e.id),
    [other.id],
  );
}

describe('events: local store', () => {
  it('in memory: store, batch, query, correlation, stats, prune', async () => {
    const { node, clock } = await solo();
    try {
      assert.equal(node.events.storage, 'memory');
      await exerciseStore(node, clock);
    } finally {
      await node.stop();
    }
  });

  it('in memory: at most maxEvents, the oldest dropped', async () => {
    const { node } = await solo({ maxEvents: 3 });
    try {
      for (let i = 0; i < 5; i++) await node.events.store(node.events.newEvent('t', i));
      assert.deepEqual(
        (await node.events.query()).map((e) => e.data),
        [2, 3, 4],
      );
    } finally {
      await node.stop();
    }
  });

  it('in SQLite: the same API, WAL, durable across a restart', async () => {
    const file = path.join(tmp(), 'events.db');
    const { node, clock, net } = await solo({ storage: 'sqlite', path: file });
    try {
      assert.equal(node.events.storage, 'sqlite');
      await exerciseStore(node, clock);
      await node.events.store(
        node.events.newEvent('kept', { deep: { a: [1, 2] } }, { correlationId: 'c1' }),
      );
      assert.ok(existsSync(`${file}-wal`), 'WAL journal');
    } finally {
      await node.stop();
    }
    const again = await startMemNode(net, clock, {
      name: 'solo',
      events: { storage: 'sqlite', path: file },
    });
    try {
      const kept = await again.events.getByCorrelation('c1');
      assert.equal(kept.length, 1);
      assert.deepEqual(kept[0]!.data, { deep: { a: [1, 2] } });
      assert.equal((await again.events.stats()).count, 2);
    } finally {
      await again.stop();
    }
  });

  it('refuses a corrupted, a foreign or an unwritable database at start, leaving the file untouched', async () => {
    const dir = tmp();
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock, 1);
    const start = (p: string) =>
      startMemNode(net, clock, { name: 'x', events: { storage: 'sqlite', path: p } });

    const garbage = path.join(dir, 'garbage.db');
    writeFileSync(garbage, Buffer.alloc(8192, 0x5a));
    const before = sha(garbage);
    const e1 = await rejectsWithCode(start(garbage), 'FND_ERR_EVENT_STORE');
    assert.equal(e1.data?.reason, 'corrupt');
    assert.equal(sha(garbage), before, 'file untouched');
    assert.equal(existsSync(`${garbage}-wal`), false);

    // A real SQLite file whose header was damaged after it was written.
    const damaged = path.join(dir, 'damaged.db');
    const good = await start(damaged);
    await good.events.store(good.events.newEvent('t', 1));
    await good.stop();
    const bytes = readFileSync(damaged);
    bytes.write('not sqlite at all', 0);
    writeFileSync(damaged, bytes);
    const before2 = sha(damaged);
    assert.equal(
      (await rejectsWithCode(start(damaged), 'FND_ERR_EVENT_STORE')).data?.reason,
      'corrupt',
    );
    assert.equal(sha(damaged), before2);

    const foreign = path.join(dir, 'foreign.db');
    const db = new Database(foreign);
    db.exec('CREATE TABLE foundation_events (x INTEGER)');
    db.close();
    const before3 = sha(foreign);
    assert.equal(
      (await rejectsWithCode(start(foreign), 'FND_ERR_EVENT_STORE')).data?.reason,
      'incompatible',
    );
    assert.equal(sha(foreign), before3);

    const underFile = path.join(garbage, 'events.db'); // a "directory" that is a file
    assert.equal(
      (await rejectsWithCode(start(underFile), 'FND_ERR_EVENT_STORE')).data?.reason,
      'unwritable',
    );
    assert.equal(
      (
        await rejectsWithCode(
          startMemNode(net, clock, { events: { storage: 'sqlite' } }),
          'FND_ERR_INVALID_OPTION',
        )
      ).data?.field,
      'events.path',
    );
  });

  it('bad input is refused with FND_ERR_INVALID_ARGUMENT', async () => {
    const { node } = await solo();
    try {
      const ev = node.events;
      assert.throws(() => ev.newEvent(''), { code: 'FND_ERR_INVALID_ARGUMENT' });
      assert.throws(() => ev.newEvent('t', 1, { correlationId: '' }), {
        code: 'FND_ERR_INVALID_ARGUMENT',
      });
      await rejectsWithCode(ev.store(ev.newEvent('t', { n: 10n })), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(
        ev.store(ev.newEvent('t', 'x'.repeat(100_000))),
        'FND_ERR_INVALID_ARGUMENT',
      );
      // What peers would refuse is refused here too: data of 30 000 characters (under 64 KiB as
      // JSON, over it by the wire's estimate), and data nested deeper than 32.
      await rejectsWithCode(
        ev.store(ev.newEvent('t', 'x'.repeat(30_000))),
        'FND_ERR_INVALID_ARGUMENT',
      );
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = [deep];
      await rejectsWithCode(ev.store(ev.newEvent('t', deep)), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.store({ id: 'x' } as never), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.storeBatch('nope' as never), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.query({ limit: 0 }), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.query({ limit: 1e9 }), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.query({ since: -1 }), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.query({ order: 'up' as never }), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.prune({}), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(ev.prune({ keepLast: -1 }), 'FND_ERR_INVALID_ARGUMENT');
      await rejectsWithCode(
        ev.emitDistributed('t', 1, { replicas: 0 }),
        'FND_ERR_INVALID_ARGUMENT',
      );
      assert.throws(() => ev.subscribeClusterWide({}, 'x' as never), {
        code: 'FND_ERR_INVALID_ARGUMENT',
      });
      assert.equal((await ev.stats()).count, 0, 'nothing stored by refused calls');
    } finally {
      await node.stop();
    }
  });

  it('uuidv7 ids are time-ordered and carry their time', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7(1_700_000_000_000));
    assert.deepEqual([...ids].sort(), ids, 'strictly increasing within one millisecond');
    assert.equal(new Set(ids).size, ids.length);
    assert.match(ids[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(uuidv7Time(uuidv7(1_800_000_000_123)), 1_800_000_000_123);
  });
});

describe('events: cluster (in-memory network, manual clock)', () => {
  it('emitDistributed stores on every node (or on N), and cluster-wide subscribers see it', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const seenB: string[] = [];
      const seenC: string[] = [];
      b.events.subscribeClusterWide({ type: 'order.*' }, (e) => seenB.push(`${e.type}@${e.node}`));
      const off = cc.events.subscribeClusterWide({ correlationId: 'k' }, (e) => seenC.push(e.type));
      const r = await a.events.emitDistributed('order.created', { n: 1 }, { correlationId: 'k' });
      assert.deepEqual(r.storedOn, ['a', 'b', 'c']);
      assert.deepEqual(r.unreachable, []);
      await tickUntil(c.clock, c.net, () => seenB.length === 1 && seenC.length === 1, 'delivered');
      for (const n of c.nodes)
        assert.deepEqual(
          (await n.events.getByCorrelation('k')).map((e) => e.id),
          [r.event.id],
        );
      await b.events.emitDistributed('user.login', null);
      off();
      const two = await cc.events.emitDistributed('order.paid', 2, {
        replicas: 2,
        correlationId: 'k',
      });
      assert.deepEqual(two.storedOn, ['c', 'a']);
      await tickUntil(c.clock, c.net, () => seenB.length === 2, 'second delivered');
      assert.deepEqual(seenB, ['order.created@a', 'order.paid@c']);
      assert.deepEqual(seenC, ['order.created'], 'unsubscribed, and filtered');
      assert.equal((await b.events.getByCorrelation('k')).length, 1, 'b was not a replica');
      assert.equal((await a.events.getByCorrelation('k')).length, 2);
      // What a caller gets is a copy: changing it changes nothing stored.
      r.event.type = 'changed';
      (await a.events.getByCorrelation('k'))[0]!.data = { n: 999 };
      const again = await a.events.getByCorrelation('k');
      assert.equal(again[0]!.type, 'order.created');
      assert.deepEqual(again[0]!.data, { n: 1 });
    } finally {
      await c.stop();
    }
  });

  it('queryCluster gathers a correlation from every node and names the ones that could not answer', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c', 'd']);
    try {
      const [a, b, cc, d] = c.nodes as [
        FoundationNode,
        FoundationNode,
        FoundationNode,
        FoundationNode,
      ];
      for (const [i, n] of [b, cc, d].entries()) {
        c.clock.tick(1);
        await n.events.store(n.events.newEvent(`step${i}`, i, { correlationId: 'trace' }));
      }
      await a.events.store(a.events.newEvent('noise', 0));
      const ask = async (q: Parameters<FoundationNode['events']['queryCluster']>[0]) => {
        let out: Awaited<ReturnType<FoundationNode['events']['queryCluster']>> | undefined;
        void a.events.queryCluster(q).then((r) => {
          out = r;
        });
        await tickUntil(c.clock, c.net, () => out !== undefined, 'answered', { maxMs: 5000 });
        return out!;
      };
      const all = await ask({ correlationId: 'trace' });
      assert.deepEqual(
        all.events.map((e) => e.type),
        ['step0', 'step1', 'step2'],
      );
      assert.deepEqual(all.nodes.sort(), ['a', 'b', 'c', 'd']);
      assert.deepEqual(all.missing, []);
      // One member does not answer: its part is missing, and it is named.
      c.net.pause(d.address);
      const partial = await ask({ correlationId: 'trace', timeoutMs: 300 });
      assert.deepEqual(
        partial.events.map((e) => e.type),
        ['step0', 'step1'],
      );
      assert.deepEqual(partial.missing, ['d']);
      // A member that misbehaves (answers with garbage) is missing too, not trusted.
      cc.messenger.handle(CORE_KINDS.eventQuery, () => [{ id: 1 }]);
      const bad = await ask({ correlationId: 'trace', timeoutMs: 300 });
      assert.deepEqual(bad.missing, ['c', 'd']);
      // Down members are reported without being asked.
      await tickUntil(
        c.clock,
        c.net,
        () => a.members().find((m) => m.name === 'd')?.status === 'down',
        'd down',
      );
      const down = await ask({ correlationId: 'trace' });
      assert.deepEqual(down.missing, ['c', 'd']);
      c.net.resume(d.address);
      // A member whose core services stopped (it is stopping) is missing, not an empty answer.
      await (b as unknown as { core: { stop(): Promise<void> } }).core.stop();
      const stopping = await ask({ correlationId: 'trace' });
      assert.deepEqual(stopping.missing, ['b', 'c', 'd']);
    } finally {
      await c.stop();
    }
  });

  it("a member's oversized or malformed events are refused; a bad remote query is answered with a coded error", async () => {
    const c = await startMeshedCluster(['a', 'm']);
    try {
      const [a, m] = c.nodes as [FoundationNode, FoundationNode];
      const seen: unknown[] = [];
      a.events.subscribeClusterWide({}, (e) => seen.push(e.data));
      const event = (data: unknown) => ({ ...m.events.newEvent('x', null), data });
      m.messenger.send('a', CORE_KINDS.event, {
        event: event('x'.repeat(100_000)),
        storeOn: ['a'],
      });
      m.messenger.send('a', CORE_KINDS.event, { event: { id: 5 }, storeOn: ['a'] });
      m.messenger.send('a', CORE_KINDS.event, { event: event(1), storeOn: 'a' });
      m.messenger.send('a', CORE_KINDS.event, { event: event('ok'), storeOn: ['a'] });
      await tickUntil(c.clock, c.net, () => seen.length > 0, 'the valid one');
      assert.deepEqual(seen, ['ok']);
      assert.equal((await a.events.stats()).count, 1);
      let err: unknown;
      void m.messenger.request('a', CORE_KINDS.eventQuery, { limit: -1 }).catch((e) => {
        err = e;
      });
      await tickUntil(c.clock, c.net, () => err !== undefined, 'refused');
      assert.equal((err as { code?: string }).code, 'FND_ERR_DIST_MESSAGE');
    } finally {
      await c.stop();
    }
  });
});
