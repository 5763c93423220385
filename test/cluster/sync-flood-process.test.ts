// The SYNC-flood dial amplification with a real node process and real sockets on 127.0.0.1 only:
// a member with the secret sends one SYNC listing 5,000 invented members whose addresses are 100
// loopback listeners of this test, which count every connection they receive. Before the fix that
// one message caused tens of thousands of connects within seconds; now at most learnPerMessage
// (16) verifying dials, and none of the invented members is listed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { MSG } from '../../src/transport/protocol.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { parseAddress } from '../../src/transport/types.js';
import { systemClock } from '../../src/util/clock.js';
import { NodeProc, until } from '../helpers/proc.js';
import { mallory } from './mallory.js';

const SECRET = 'sync-flood-secret-0123456789';
const LISTENERS = 100;
const GHOSTS = 5000;
/** How long the victim is watched after the SYNC (a window, not a performance assertion). */
const WATCH_MS = 3000;

describe('SYNC flood against a real node process (loopback)', () => {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  let victim: NodeProc | undefined;

  after(async () => {
    await victim?.kill('SIGKILL');
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('one SYNC listing 5,000 invented members causes at most 16 real connects', async () => {
    let connects = 0;
    const ports: number[] = [];
    for (let i = 0; i < LISTENERS; i++) {
      // Not Foundation nodes: accept, count, hang up (the dial's handshake then fails).
      const s = net.createServer((sock) => {
        connects++;
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => {});
        sock.destroy();
      });
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      ports.push((s.address() as net.AddressInfo).port);
    }
    const cluster = `flood-${process.pid}-${randomBytes(3).toString('hex')}`;
    victim = new NodeProc('victim', ['--cluster', cluster, '--secret', SECRET]);
    const started = await victim.waitFor((e) => e.event === 'started', 20_000, 'start');
    const victimAddress = String(started.address);
    assert.ok(parseAddress(victimAddress)?.host === '127.0.0.1', victimAddress);

    let replies = 0;
    const m = await mallory({
      transport: new TcpTransport(),
      clock: systemClock,
      cluster,
      secret: SECRET,
      onMessage: (_from, msg) => {
        if (msg[0] === MSG.SYNC_REPLY) replies++;
      },
    });
    try {
      const entries = Array.from({ length: GHOSTS }, (_, i) => [
        `ghost-${i}`,
        Math.floor(Date.now()),
        0,
        '127.0.0.1',
        ports[i % LISTENERS]!,
      ]);
      m.say({ name: 'victim', address: victimAddress }, [MSG.SYNC, entries]);
      // The victim answers a SYNC after merging it: from then on, watch what it dials.
      await until(() => replies > 0, 20_000, 'the victim processed the SYNC');
      await new Promise((r) => setTimeout(r, WATCH_MS));
      assert.ok(connects <= 16, `${connects} connects to invented members in ${WATCH_MS} ms`);
      assert.ok(connects > 0, 'hearsay is still verified by (a bounded number of) dials');
      const listed = (await victim.members()).filter((x) => String(x.name).startsWith('ghost-'));
      assert.equal(listed.length, 0, 'no invented member is listed');
    } finally {
      await m.stop();
    }
  });
});
