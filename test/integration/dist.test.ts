// The cluster-wide layer across 5 real processes on loopback: pub/sub reaches subscribers on all 5
// nodes and puts nothing on the wire for nodes without a matching subscriber (counted per node);
// SIGKILL the node hosting distributed-supervisor children → every child restarted once on the
// survivors; the singleton moves and stays addressable as { global }.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Event, NodeProc, until } from '../helpers/proc.js';

// Deadlines are liveness limits, not performance assertions.
const FORM_MS = 20_000;
const STEP_MS = 10_000;
const DETECT_MS = 15_000;

// biome-ignore lint/suspicious/noExplicitAny: values are free-form JSON from the child
async function ok(p: NodeProc, c: Event, ms = STEP_MS): Promise<any> {
  const id = p.command(c);
  const r = await p.waitFor((e) => e.event === 'result' && e.id === id, ms, `result of ${c.cmd}`);
  assert.equal(r.ok, true, `${p.name} ${c.cmd}: ${r.code} ${r.message}`);
  return r.value;
}

interface Which {
  children: Array<{ id: string; node: string | null }>;
  singleton: string | null;
  global: string | null;
  running: Record<string, number>;
}

const CHILDREN = 8;

describe('cluster-wide layer across 5 real processes', () => {
  const cluster = `itd-${process.pid}-${Date.now()}`;
  const names = ['da', 'db', 'dc', 'dd', 'de'];
  let procs: NodeProc[] = [];

  before(async () => {
    procs = names.map((n) => new NodeProc(n, ['--cluster', cluster]));
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', FORM_MS, 'start')));
    for (const p of procs) {
      await until(
        async () => (await p.members()).filter((m) => m.status === 'alive').length === 5,
        FORM_MS,
        `${p.name} to see 5 alive`,
      );
    }
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('pub/sub reaches subscribers on all 5 nodes and sends nothing to nodes without one', async () => {
    const [da, db, dc, dd, de] = procs as [NodeProc, NodeProc, NodeProc, NodeProc, NodeProc];
    for (const p of procs) await ok(p, { cmd: 'subscribe', topic: 'all.*' });
    for (const p of [da, db, dc]) await ok(p, { cmd: 'subscribe', topic: 'some.>' });
    // Interest is replicated: wait until the publisher knows who subscribed.
    await until(
      async () =>
        (await ok(dd, { cmd: 'interest', topic: 'all.x' })).length === 5 &&
        (await ok(dd, { cmd: 'interest', topic: 'some.x' })).join() === 'da,db,dc',
      FORM_MS,
      'dd to know every subscription',
    );
    const N = 50;
    await ok(dd, { cmd: 'publish', topic: 'all.x', count: N });
    await ok(dd, { cmd: 'publish', topic: 'some.x', count: N });
    const receipts = async (p: NodeProc) => ok(p, { cmd: 'receipts' });
    await until(
      async () => {
        for (const p of procs) {
          const r = await receipts(p);
          if (r.byPattern['all.*'] !== N) return false;
          if ([da, db, dc].includes(p) && r.byPattern['some.>'] !== N) return false;
        }
        return true;
      },
      STEP_MS,
      'every subscriber to get every message',
    );
    // On the wire: one message per publish per interested node; none to de for 'some.x', none
    // to the publisher itself (it delivers locally).
    for (const p of [da, db, dc]) assert.equal((await receipts(p)).stats.received, 2 * N, p.name);
    assert.equal((await receipts(de)).stats.received, N, 'de got only the topic it subscribed to');
    assert.equal((await receipts(de)).byPattern['some.>'], undefined);
    assert.equal((await receipts(dd)).stats.received, 0);
    assert.equal((await receipts(dd)).stats.sent, 4 * N + 3 * N);
  });

  it('SIGKILL the node hosting distributed children: all restarted once on survivors; the singleton moves', async () => {
    for (const p of procs) await ok(p, { cmd: 'dist-setup', children: CHILDREN });
    const which = (p: NodeProc): Promise<Which> => ok(p, { cmd: 'which' });
    /** Every live proc agrees on where each child and the singleton run, and that is the truth. */
    const converged = async (live: NodeProc[]) => {
      const views = await Promise.all(live.map(which));
      const first = JSON.stringify({ c: views[0]!.children, s: views[0]!.singleton });
      if (!views.every((v) => JSON.stringify({ c: v.children, s: v.singleton }) === first))
        return false;
      if (views.some((v) => v.global !== views[0]!.singleton)) return false;
      const ids = [...Array.from({ length: CHILDREN }, (_, i) => `w${i}`), 'solo'];
      for (const id of ids) {
        const total = views.reduce((n, v) => n + (v.running[id] ?? 0), 0);
        if (total !== 1) return false;
      }
      const names = new Set(live.map((p) => p.name));
      return (
        views[0]!.children.every((x) => x.node !== null && names.has(x.node)) &&
        views[0]!.singleton !== null &&
        names.has(views[0]!.singleton)
      );
    };
    await until(() => converged(procs), FORM_MS, 'children placed, one instance each');
    const before = await which(procs[0]!);
    const perNode = new Map<string, number>();
    for (const x of before.children) perNode.set(x.node!, (perNode.get(x.node!) ?? 0) + 1);
    const victimName = [...perNode].sort((a, b) => b[1] - a[1])[0]![0];
    const victim = procs.find((p) => p.name === victimName)!;
    await victim.kill('SIGKILL');
    let live = procs.filter((p) => p !== victim);
    await until(() => converged(live), DETECT_MS, 'children restarted on survivors');
    const afterKill = await which(live[0]!);
    for (const x of before.children)
      if (x.node === victimName)
        assert.notEqual(afterKill.children.find((y) => y.id === x.id)!.node, victimName);
    // The singleton: if it did not run on the first victim, kill its node too.
    if (before.singleton === victimName) {
      assert.notEqual(afterKill.singleton, victimName, 'singleton moved');
    } else {
      const host = live.find((p) => p.name === afterKill.singleton)!;
      await host.kill('SIGKILL');
      live = live.filter((p) => p !== host);
      await until(() => converged(live), DETECT_MS, 'singleton moved');
      assert.notEqual((await which(live[0]!)).singleton, host.name, 'singleton moved');
    }
    // { global: 'solo' } reaches it from every survivor.
    const where = (await which(live[0]!)).singleton;
    for (const p of live) {
      assert.equal(await ok(p, { cmd: 'call', to: { global: 'solo' }, msg: 'where' }), where);
    }
  });
});
