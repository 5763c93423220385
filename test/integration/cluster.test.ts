// Real processes on 127.0.0.1 talking real TCP, found by `local` discovery with no configuration.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NodeProc, until } from '../helpers/proc.js';

// Deadlines here are liveness limits, not performance assertions (bench/failure-detection measures those).
const FORM_MS = 20_000;
const DETECT_MS = 15_000;

describe('a five-process cluster on loopback', () => {
  const cluster = `it-${process.pid}-${Date.now()}`;
  const procs: NodeProc[] = [];
  const names = ['p1', 'p2', 'p3', 'p4', 'p5'];

  const aliveSeenBy = async (p: NodeProc) =>
    (await p.members())
      .filter((m) => m.status === 'alive')
      .map((m) => m.name)
      .sort();

  before(async () => {
    for (const name of names) procs.push(new NodeProc(name, ['--cluster', cluster]));
    await Promise.all(procs.map((p) => p.waitFor((e) => e.event === 'started', FORM_MS, 'start')));
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('forms with local discovery: every node sees five alive members', async () => {
    for (const p of procs) {
      const started = p.events.find((e) => e.event === 'started')!;
      assert.equal(started.discovery.name, 'local');
      assert.match(started.address, /^127\.0\.0\.1:\d+$/);
    }
    for (const p of procs) {
      await until(
        async () => (await aliveSeenBy(p)).length === 5,
        FORM_MS,
        `${p.name} to see 5 alive`,
      );
      assert.deepEqual(await aliveSeenBy(p), names);
    }
  });

  it('a SIGKILLed node is declared down by every other node, and rejoins alive after a restart', async () => {
    const victim = procs[4]!;
    const oldInc = victim.events.find((e) => e.event === 'started')!.incarnation as number;
    const killedAt = performance.timeOrigin + performance.now();
    await victim.kill('SIGKILL');
    const downs = await Promise.all(
      procs
        .slice(0, 4)
        .map((p) =>
          p.waitFor(
            (e) => e.event === 'memberDown' && e.member.name === 'p5',
            DETECT_MS,
            'p5 down',
          ),
        ),
    );
    const ms = downs.map((d) => Math.round(d.t - killedAt));
    console.log(`# SIGKILL → down seen by 4 observers after ${ms.join(', ')} ms`);
    for (const d of downs) assert.equal(d.member.status, 'down');

    const again = new NodeProc('p5', ['--cluster', cluster]);
    procs[4] = again;
    const started = await again.waitFor((e) => e.event === 'started', FORM_MS, 'restart');
    assert.ok(started.incarnation > oldInc, 'restarted node has a higher incarnation');
    for (const p of procs.slice(0, 4)) {
      const up = await p.waitFor(
        (e) =>
          e.event === 'memberUp' &&
          e.member.name === 'p5' &&
          e.member.incarnation === started.incarnation,
        FORM_MS,
        'p5 up again',
      );
      assert.equal(up.info.previous, 'down');
    }
    await until(
      async () => (await aliveSeenBy(again)).length === 5,
      FORM_MS,
      'restarted p5 to see 5 alive',
    );
    // A killed peer is a peer that went away, never "probably not a Foundation node".
    for (const p of procs.slice(0, 4)) {
      const misreported = p.events.filter(
        (e) => e.event === 'error' && e.code === 'FND_ERR_HANDSHAKE_PROTOCOL',
      );
      assert.deepEqual(misreported, [], `${p.name} reported the killed peer as a protocol error`);
    }
  });

  it('1 MB of random bytes from a raw TCP client closes that connection only; the node keeps serving peers', async () => {
    const target = procs[1]!;
    const address = target.events.find((e) => e.event === 'started')!.address as string;
    const [host, port] = [
      address.slice(0, address.lastIndexOf(':')),
      Number(address.slice(address.lastIndexOf(':') + 1)),
    ];
    const closed = await new Promise<{ bytesWritten: number; error?: string }>((resolve) => {
      const sock = net.connect({ host, port }, () => {
        sock.write(randomBytes(1024 * 1024));
      });
      sock.on('error', (err) => resolve({ bytesWritten: sock.bytesWritten, error: err.message }));
      sock.on('close', () => resolve({ bytesWritten: sock.bytesWritten }));
      sock.resume();
    });
    assert.ok(closed.bytesWritten >= 0, 'the garbage connection was closed by the node');
    // The line for this connection (earlier lines may be about the SIGKILLed node's connections).
    const rejected =
      /"code":"FND_ERR_(FRAME_TOO_LARGE|HANDSHAKE_PROTOCOL)"[^\n]*"msg":"inbound handshake failed"/;
    await until(
      () => rejected.test(target.stderr),
      20_000,
      'the node to log the rejected connection with a coded error',
    );

    // The node still answers its peers, and membership is intact.
    const reply = await procs[0]!.request('p2', { hello: 'after garbage' });
    assert.equal(reply.ok, true);
    assert.deepEqual(reply.value, { hello: 'after garbage' });
    const back = await target.request('p1', 42);
    assert.equal(back.ok, true);
    assert.equal(back.value, 42);
    assert.equal((await aliveSeenBy(target)).length, 5);
    assert.equal(
      target.events.filter((e) => e.event === 'memberDown').length,
      1,
      'only the SIGKILLed node was ever down',
    );
  });
});
