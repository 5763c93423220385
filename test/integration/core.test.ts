// The core services across 3 real processes on loopback: a cluster-wide config value set on one
// node reaches all three; a cluster-wide event query with one node SIGKILLed reports that node
// missing and returns what the others hold.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Event, NodeProc, until } from '../helpers/proc.js';

// Deadlines are liveness limits, not performance assertions.
const FORM_MS = 20_000;
/** Longer than the cluster queries' `timeoutMs` (8000), so that they answer within it. */
const STEP_MS = 10_000;

// biome-ignore lint/suspicious/noExplicitAny: values are free-form JSON from the child
async function ok(p: NodeProc, c: Event, ms = STEP_MS): Promise<any> {
  const id = p.command(c);
  const r = await p.waitFor((e) => e.event === 'result' && e.id === id, ms, `result of ${c.cmd}`);
  assert.equal(r.ok, true, `${p.name} ${c.cmd}: ${r.code} ${r.message}`);
  return r.value;
}

describe('core services across 3 real processes', () => {
  const cluster = `itc-${process.pid}-${Date.now()}`;
  const names = ['ca', 'cb', 'cc'];
  let procs: NodeProc[] = [];

  before(async () => {
    procs = names.map((n) => new NodeProc(n, ['--cluster', cluster]));
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', FORM_MS, 'start')));
    for (const p of procs) {
      await until(
        async () => (await p.members()).filter((m) => m.status === 'alive').length === 3,
        FORM_MS,
        `${p.name} to see 3 alive`,
      );
    }
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('setClusterWide on one node: all three converge', async () => {
    const [ca] = procs as [NodeProc, NodeProc, NodeProc];
    for (const p of procs)
      assert.equal(await ok(p, { cmd: 'cfg-get', path: 'app.mode' }), 'initial');
    await ok(ca, { cmd: 'cfg-set', path: 'app.mode', value: 'maintenance' });
    for (const p of procs) {
      await until(
        async () => (await ok(p, { cmd: 'cfg-get', path: 'app.mode' })) === 'maintenance',
        STEP_MS,
        `${p.name} to apply app.mode`,
      );
    }
  });

  it('queryCluster with one node killed reports it missing', async () => {
    const [ca, cb, cc] = procs as [NodeProc, NodeProc, NodeProc];
    for (const p of procs)
      await ok(p, { cmd: 'ev-store', type: `step.${p.name}`, correlationId: 'trace-1' });
    const all = await ok(ca, { cmd: 'ev-query-cluster', correlationId: 'trace-1' });
    assert.deepEqual(all.events.map((e: { type: string }) => e.type).sort(), [
      'step.ca',
      'step.cb',
      'step.cc',
    ]);
    assert.deepEqual(all.missing, []);
    await cc.kill('SIGKILL');
    const partial = await ok(ca, {
      cmd: 'ev-query-cluster',
      correlationId: 'trace-1',
      timeoutMs: 8000,
    });
    assert.deepEqual(partial.events.map((e: { type: string }) => e.type).sort(), [
      'step.ca',
      'step.cb',
    ]);
    assert.deepEqual(partial.missing, ['cc']);
    assert.deepEqual(partial.nodes.sort(), ['ca', 'cb']);
    // cb agrees.
    const fromB = await ok(cb, {
      cmd: 'ev-query-cluster',
      correlationId: 'trace-1',
      timeoutMs: 8000,
    });
    assert.deepEqual(fromB.missing, ['cc']);
  });
});
