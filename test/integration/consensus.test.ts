// node.consensus across 5 real processes on loopback, each with its Raft log in a file: SIGKILL
// the leader → the others elect a new one, and every write acknowledged before the kill is
// readable after it with the same revision.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Event, NodeProc, until } from '../helpers/proc.js';

// Deadlines are liveness limits, not performance assertions.
const FORM_MS = 20_000;
const STEP_MS = 15_000;

// biome-ignore lint/suspicious/noExplicitAny: values are free-form JSON from the child
async function ok(p: NodeProc, c: Event, ms = STEP_MS): Promise<any> {
  const id = p.command(c);
  const r = await p.waitFor((e) => e.event === 'result' && e.id === id, ms, `result of ${c.cmd}`);
  assert.equal(r.ok, true, `${p.name} ${c.cmd}: ${r.code} ${r.message}`);
  return r.value;
}

describe('consensus across 5 real processes', () => {
  const cluster = `itc-${process.pid}-${Date.now()}`;
  const names = ['ca', 'cb', 'cc', 'cd', 'ce'];
  const dir = mkdtempSync(join(tmpdir(), 'fnd-consensus-'));
  let procs: NodeProc[] = [];

  before(async () => {
    procs = names.map((n) => new NodeProc(n, ['--cluster', cluster]));
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', FORM_MS, 'start')));
    for (const p of procs)
      await until(
        async () => (await p.members()).filter((m) => m.status === 'alive').length === 5,
        FORM_MS,
        `${p.name} to see 5 alive`,
      );
    await Promise.all(procs.map((p) => ok(p, { cmd: 'cstart', members: names, dir })));
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The leader among `among` with the highest term above `minTerm` (polled until there is one):
   * leadership may have moved meanwhile, and a deposed leader that has not heard of it yet still
   * says 'leader'.
   */
  async function leaderOf(among: NodeProc[], what: string, minTerm = 0) {
    let found: { proc: NodeProc; term: number } | undefined;
    await until(
      async () => {
        for (const p of among) {
          const s = await ok(p, { cmd: 'cstatus' });
          if (s.role === 'leader' && s.term > minTerm && (!found || s.term > found.term))
            found = { proc: p, term: s.term as number };
        }
        return found !== undefined;
      },
      FORM_MS,
      what,
    );
    return found!;
  }

  it('SIGKILL the leader: a new leader is elected; acknowledged writes are readable after', async () => {
    const first = await leaderOf(procs, 'a leader');
    const client = procs.find((p) => p !== first.proc)!;
    const acked: Array<[string, number]> = [];
    for (let i = 0; i < 30; i++)
      acked.push([`k${i}`, await ok(client, { cmd: 'cput', key: `k${i}`, value: i })]);
    // Asked again right before the kill: the one to kill is whoever leads now.
    const old = await leaderOf(procs, 'the leader before the kill');
    await old.proc.kill('SIGKILL');
    const rest = procs.filter((p) => p !== old.proc);
    // Any leader of the rest at a later term than the killed one's is a new one.
    await leaderOf(rest, 'a new leader', old.term);
    for (const p of rest) {
      for (const [k, rev] of acked) {
        const v = await ok(p, { cmd: 'cget', key: k });
        assert.equal(v?.revision, rev, `${p.name} reads ${k} at its acknowledged revision`);
      }
    }
  });
});
