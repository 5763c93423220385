// Regressions from review: odd exit reasons, monitor bookkeeping, long timeouts, hostile wire values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Membership } from '../../src/cluster/membership.js';
import { PRESETS } from '../../src/cluster/presets.js';
import type { DownMessage } from '../../src/runtime/behaviour.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { MSG } from '../../src/transport/protocol.js';
import { flushIO, ManualClock, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('silent');

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached: ${what}`);
}

describe('runtime robustness', () => {
  it('a handler that throws or rejects with undefined/null ends that actor only', async () => {
    const sys = new ActorSystem({ nodeName: 'n', clock: systemClock, log });
    const downs: DownMessage[] = [];
    const bad = [
      sys.spawn(() => {
        throw undefined;
      }),
      sys.spawn(() => {
        throw null;
      }),
      sys.spawn(() => Promise.reject(undefined)),
    ];
    for (const p of bad) sys.monitor(p, (d) => downs.push(d));
    const ok = sys.spawn((m) => m);
    for (const p of bad) sys.send(p, 'go');
    await until(() => downs.length === 3, 'three DOWNs');
    assert.deepEqual(
      downs.map((d) => d.reason),
      [undefined, null, undefined],
    );
    assert.equal(await sys.call(ok, 'still here'), 'still here');
  });

  it('monitors held by an actor are released when it exits (no leak on either side)', async () => {
    const sys = new ActorSystem({ nodeName: 'n', clock: systemClock, log });
    const server = sys.spawn(() => {});
    for (let i = 0; i < 200; i++) {
      sys.spawn((_m, ctx) => {
        ctx.monitor(server);
        ctx.stop();
      });
    }
    const watchers = sys.size - 1;
    assert.equal(watchers, 200);
    for (let i = 0; i < 200; i++) sys.send({ node: 'n', id: i + 2 }, 'go');
    await until(() => sys.size === 1, 'watchers exited');
    assert.equal(sys.monitorCount, 0);
  });

  it('timeouts beyond 2^31-1 ms (and Infinity) do not fire at once', async () => {
    let fired = 0;
    const a = systemClock.setTimeout(() => fired++, Number.POSITIVE_INFINITY);
    const b = systemClock.setTimeout(() => fired++, 3e9);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(fired, 0);
    a.cancel();
    b.cancel();
    const sys = new ActorSystem({ nodeName: 'n', clock: systemClock, log });
    const slow = sys.spawn(() => new Promise(() => {}));
    let settled = false;
    void sys.call(slow, 'x', { timeout: 3e9 }).then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(settled, false);
    sys.shutdown();
  });
});

describe('membership input from an authenticated peer', () => {
  it('ignores incarnations and ports that could poison comparisons (Infinity, NaN, fractions, bad ports)', async () => {
    const clock = new ManualClock();
    const sent: unknown[][] = [];
    const m = new Membership(
      { cluster: 'c', name: 'me', incarnation: 1, address: { host: '127.0.0.1', port: 1000 } },
      PRESETS.local,
      {
        send: (_n, msg) => sent.push(msg),
        join: async () => ({
          name: 'x',
          incarnation: 1,
          address: { host: '127.0.0.1', port: 1 },
          channel: 'control',
          version: 2,
          encrypted: false,
        }),
        learn() {},
        keepAlive() {},
        disconnect() {},
        remove() {},
      },
      clock,
      log,
      () => {},
    );
    m.start();
    const from = {
      name: 'evil',
      incarnation: 1,
      address: { host: '127.0.0.1', port: 2000 },
      channel: 'control' as const,
      version: 2,
      encrypted: false,
    };
    // A member enters the table first-hand (its own ALIVE), not from what `evil` says about it.
    m.handle({ ...from, name: 'good' }, [MSG.ALIVE, 'good', 5, '127.0.0.1', 3000]);
    assert.equal(m.status('good'), 'alive');
    for (const inc of [Number.POSITIVE_INFINITY, Number.NaN, 5.5, -1]) {
      m.handle(from, [MSG.DOWN, 'good', inc, 'evil']);
      m.handle(from, [MSG.ALIVE, 'new-one', inc, '127.0.0.1', 3001]);
    }
    m.handle(from, [MSG.ALIVE, 'bad-port', 1, '127.0.0.1', 70000]);
    m.handle(from, [MSG.SYNC, [['constructor', 1, 'constructor', '127.0.0.1', 1]]]);
    await flushIO();
    assert.equal(m.status('good'), 'alive');
    assert.equal(m.status('new-one'), undefined);
    assert.equal(m.status('bad-port'), undefined);
    assert.equal(m.status('constructor'), undefined);
    // A well-formed DOWN still works.
    m.handle(from, [MSG.DOWN, 'good', 5, 'evil']);
    assert.equal(m.status('good'), 'down');
    m.stop();
  });
});
