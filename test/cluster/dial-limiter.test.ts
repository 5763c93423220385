// The dial limiter (src/transport/dial-limiter.ts) on a manual clock, and its one hook:
// PeerManager.dialLink refuses a limited dial with FND_ERR_DIAL_RATE_LIMITED before any socket
// is opened, and backs off an address whose dials fail.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemoryNetwork, ManualClock } from '../../src/testing.js';
import { DialLimiter } from '../../src/transport/dial-limiter.js';
import type { Transport } from '../../src/transport/types.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { testPeerManager } from '../helpers/peers.js';

const limits = { ratePerSec: 10, burst: 5, backoffBaseMs: 100, backoffMaxMs: 1000 };

describe('DialLimiter', () => {
  it('allows a burst, then the sustained rate', () => {
    const clock = new ManualClock();
    const l = new DialLimiter(limits, clock);
    for (let i = 0; i < 5; i++) assert.equal(l.acquire(`h:${i}`), undefined, `dial ${i}`);
    const refused = l.acquire('h:5');
    assert.equal(refused?.reason, 'rate');
    assert.ok(refused!.retryInMs > 0 && refused!.retryInMs <= 100);
    clock.tick(100); // 10/s: one token per 100 ms
    assert.equal(l.acquire('h:6'), undefined);
    assert.equal(l.acquire('h:7')?.reason, 'rate');
    clock.tick(10_000); // refills up to the burst, not beyond
    let n = 0;
    while (l.acquire(`x:${n}`) === undefined) n++;
    assert.equal(n, 5);
    assert.equal(l.refused, 3);
  });

  it('backs off a failing address exponentially up to the ceiling; success forgets it', () => {
    const clock = new ManualClock();
    const l = new DialLimiter({ ...limits, burst: 1000, ratePerSec: 1000 }, clock);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      assert.equal(l.acquire('a:1'), undefined);
      l.failed('a:1');
      const r = l.acquire('a:1');
      assert.equal(r?.reason, 'backoff');
      waits.push(r!.retryInMs);
      assert.equal(l.acquire('b:1'), undefined, 'other addresses are not affected');
      clock.tick(r!.retryInMs);
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 1000, 1000]);
    l.succeeded('a:1');
    assert.equal(l.failures('a:1'), 0);
    l.failed('a:1');
    assert.equal(l.acquire('a:1')?.retryInMs, 100, 'starts over after a success');
  });
});

describe('PeerManager.dialLink asks the limiter', () => {
  it('a refused dial rejects with FND_ERR_DIAL_RATE_LIMITED and opens no connection', async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock);
    const inner = net.transport();
    let connects = 0;
    const transport: Transport = {
      listen: (a, on) => inner.listen(a, on),
      connect: (a, t) => {
        connects++;
        return inner.connect(a, t);
      },
      close: () => inner.close(),
    };
    const pm = testPeerManager(
      transport,
      { cluster: 'c', name: 'a', incarnation: 1, address: { host: '127.0.0.1', port: 1 } },
      {
        clock,
        handshakeTimeoutMs: 1000,
        connectTimeoutMs: 1000,
        backoff: { baseMs: 100, maxMs: 1000 },
        dialLimits: limits,
      },
    );
    try {
      const nowhere = { host: '127.0.0.9', port: 9 };
      await rejectsWithCode(pm.dialLink(nowhere, 'control'), 'FND_ERR_CONNECT');
      assert.equal(connects, 1);
      // Backed off: refused without a connect attempt, with a coded error that says when.
      const err = await rejectsWithCode(
        pm.dialLink(nowhere, 'control'),
        'FND_ERR_DIAL_RATE_LIMITED',
      );
      assert.equal(err.data?.reason, 'backoff');
      assert.equal(err.data?.address, '127.0.0.9:9');
      assert.equal(connects, 1);
      // Other addresses: the burst of 5, then the rate.
      for (let i = 0; i < 4; i++)
        await rejectsWithCode(
          pm.dialLink({ host: '127.0.0.9', port: 100 + i }, 'control'),
          'FND_ERR_CONNECT',
        );
      const rate = await rejectsWithCode(
        pm.dialLink({ host: '127.0.0.9', port: 200 }, 'control'),
        'FND_ERR_DIAL_RATE_LIMITED',
      );
      assert.equal(rate.data?.reason, 'rate');
      assert.equal(connects, 5);
    } finally {
      await pm.stop();
    }
  });
});
