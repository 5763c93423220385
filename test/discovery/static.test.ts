import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { sharedPort } from '../helpers/loopback.js';
import { until } from '../helpers/proc.js';

const alive = (n: FoundationNode) => n.members().filter((m) => m.status === 'alive').length;

/**
 * A port on 127.0.0.1 held until `release()`, so that no other socket takes it meanwhile, by a
 * listener that closes every connection at once (to a dialler, nobody is there).
 */
async function reservePort(): Promise<{ port: number; release(): Promise<void> }> {
  const s = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  return { port, release: () => new Promise<void>((r) => s.close(() => r())) };
}

async function freePort(): Promise<number> {
  const reserved = await reservePort();
  await reserved.release();
  return reserved.port;
}

describe('static discovery (real TCP on loopback)', () => {
  it('nodes seeded with one address form a full cluster', async () => {
    const cluster = `static-${process.pid}`;
    const seed = await Foundation.start({
      name: 's0',
      cluster,
      logLevel: 'silent',
      discovery: { strategy: 'static', hosts: ['127.0.0.1:1'] },
    });
    const others = await Promise.all(
      ['s1', 's2'].map((name) =>
        Foundation.start({
          name,
          cluster,
          logLevel: 'silent',
          discovery: { strategy: 'static', hosts: [seed.address] },
        }),
      ),
    );
    const all = [seed, ...others];
    try {
      await until(() => all.every((n) => alive(n) === 3), 20_000, 'three alive everywhere');
      assert.equal(seed.discovery.name, 'static');
    } finally {
      await Promise.all(all.map((n) => n.stop()));
    }
  });

  it('a seed that starts later is joined by polling', async () => {
    const cluster = `static-late-${process.pid}`;
    // Held until the late seed starts: nothing else on the machine may take it meanwhile.
    const reserved = await reservePort();
    const port = reserved.port;
    const early = await Foundation.start({
      name: 'early',
      cluster,
      logLevel: 'silent',
      discovery: { strategy: 'static', hosts: [`127.0.0.1:${port}`], pollingIntervalMs: 100 },
    });
    let late: FoundationNode | undefined;
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(alive(early), 1, 'nobody to join yet');
      await reserved.release();
      late = await Foundation.start({
        name: 'late',
        cluster,
        port,
        logLevel: 'silent',
        discovery: { strategy: 'static', hosts: ['127.0.0.1:1'] },
      });
      await until(
        () => alive(early) === 2 && alive(late!) === 2,
        20_000,
        'early to join the late seed',
      );
    } finally {
      await Promise.all([early.stop(), late?.stop()]);
    }
  });

  it('a seed without a port (a bare host or IP) is dialled on the port option, else on the own port', async () => {
    const cluster = `static-bare-${process.pid}`;
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const other = await freePort();
    const start = (name: string, host: string, discovery: object, p = port) =>
      Foundation.start({
        name,
        cluster,
        host,
        port: p,
        logLevel: 'silent',
        discovery: discovery as never,
      });
    const b = await start('b', '127.0.0.3', { strategy: 'static', hosts: ['127.0.0.3'] });
    const c = await start('c', '127.0.0.4', { strategy: 'static', hosts: ['127.0.0.4'] }, other);
    // a lists b as a bare IP (own port) and c as a bare IP with `port` naming c's port... which
    // differs from a's: one static list has one `port`, so c is listed as host:port instead.
    const a = await start('a', '127.0.0.2', {
      strategy: 'static',
      hosts: ['127.0.0.3', `127.0.0.4:${other}`],
      pollingIntervalMs: 100,
    });
    const d = await start(
      'd',
      '127.0.0.2',
      { strategy: 'static', hosts: ['127.0.0.4'], port: other, pollingIntervalMs: 100 },
      0,
    );
    try {
      await until(
        () => [a, b, c, d].every((n) => alive(n) === 4),
        20_000,
        'a to join b (own port) and c (host:port), d to join c (port option)',
      );
    } finally {
      await Promise.all([a, b, c, d].map((n) => n.stop()));
    }
  });

  it('a malformed seed is refused at start with a coded error naming it', async () => {
    await assert.rejects(
      Foundation.start({
        logLevel: 'silent',
        discovery: { strategy: 'static', hosts: ['127.0.0.1:1', 'not a host!'] },
      }),
      (err: { code?: string; message: string }) => {
        assert.equal(err.code, 'FND_ERR_INVALID_OPTION');
        assert.match(err.message, /discovery\.hosts\[1\]/);
        return true;
      },
    );
  });
});
