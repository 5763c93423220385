// Preset choice (issue 14): `auto` is `local` on loopback and `lan` elsewhere; `local` on a
// non-loopback host is allowed but warned about at start (it flaps on real links); the connect
// timeout and the confirmations a suspicion needs follow the preset.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PRESETS } from '../src/cluster/presets.js';
import { FoundationError } from '../src/errors.js';
import { FoundationNode } from '../src/index.js';
import { presetWarning, resolveOptions } from '../src/options.js';
import { InMemoryNetwork, ManualClock } from '../src/testing.js';
import type { Logger } from '../src/util/log.js';
import { noDiscovery } from './helpers/mem-cluster.js';
import { TEST_SECRET } from './helpers/nodes.js';

/** A logger that keeps every warning. */
function capture(): { logger: Logger; warnings: Array<{ obj: unknown; msg: string }> } {
  const warnings: Array<{ obj: unknown; msg: string }> = [];
  const noop = () => {};
  const logger: Logger = {
    fatal: noop,
    error: noop,
    info: noop,
    debug: noop,
    trace: noop,
    warn: ((obj: unknown, msg?: string) => {
      warnings.push(typeof obj === 'string' ? { obj: {}, msg: obj } : { obj, msg: msg ?? '' });
    }) as Logger['warn'],
    child: () => logger,
  };
  return { logger, warnings };
}

describe('presets', () => {
  it("'auto' (and no preset) is local on loopback, lan on any other host", () => {
    assert.equal(resolveOptions({ preset: 'auto' }).preset, 'local');
    assert.equal(resolveOptions({}).preset, 'local');
    const off = { host: '10.9.8.7', secret: TEST_SECRET };
    assert.equal(resolveOptions({ ...off, preset: 'auto' }).preset, 'lan');
    assert.deepEqual(resolveOptions({ ...off, preset: 'auto' }).timing, PRESETS.lan);
    assert.equal(resolveOptions(off).preset, 'lan');
    assert.equal(
      resolveOptions({ ...off, preset: 'local' }).preset,
      'local',
      'an explicit choice is kept',
    );
  });

  it("presetWarning names 'local' off loopback only", () => {
    const w = presetWarning({ preset: 'local', host: '10.9.8.7' });
    assert.match(w ?? '', /preset "local".*10\.9\.8\.7.*"lan"/);
    assert.equal(presetWarning({ preset: 'local', host: '0.0.0.0' }) !== undefined, true);
    assert.equal(presetWarning({ preset: 'local', host: '127.0.0.1' }), undefined);
    assert.equal(presetWarning({ preset: 'local', host: '::1' }), undefined);
    assert.equal(presetWarning({ preset: 'lan', host: '10.9.8.7' }), undefined);
    assert.equal(presetWarning({ preset: 'wan', host: '10.9.8.7' }), undefined);
  });

  it("a node started with 'local' on a non-loopback host logs a warning; on loopback it does not", async () => {
    const clock = new ManualClock();
    const net = new InMemoryNetwork(clock, 1);
    const start = async (host: string) => {
      const { logger, warnings } = capture();
      const node = await FoundationNode.start({
        name: `p-${host}`,
        cluster: 'presets',
        host,
        secret: TEST_SECRET,
        preset: 'local',
        transport: net.transport(),
        clock,
        logger,
        discovery: noDiscovery,
      });
      await node.stop();
      return warnings;
    };
    const off = await start('10.9.8.7');
    const w = off.find((x) => /preset "local"/.test(x.msg));
    assert.ok(w, `expected a warning about the local preset, got ${JSON.stringify(off)}`);
    assert.deepEqual(w.obj, { preset: 'local', host: '10.9.8.7' });
    const on = await start('127.0.0.1');
    assert.equal(on.filter((x) => /preset "local"/.test(x.msg)).length, 0);
  });

  it('the connect timeout follows the preset unless set', () => {
    assert.equal(resolveOptions({ preset: 'local' }).connectTimeoutMs, 500);
    assert.equal(resolveOptions({ preset: 'lan' }).connectTimeoutMs, 500);
    assert.equal(resolveOptions({ preset: 'wan' }).connectTimeoutMs, 2500);
    assert.equal(resolveOptions({ preset: 'lan', connectTimeoutMs: 4000 }).connectTimeoutMs, 4000);
  });

  it('suspicionConfirmations is memberlist-style k per preset and can be overridden within 0–16', () => {
    assert.equal(PRESETS.local.suspicionConfirmations, 2);
    assert.equal(PRESETS.lan.suspicionConfirmations, 1);
    assert.equal(PRESETS.wan.suspicionConfirmations, 4);
    assert.equal(
      resolveOptions({ membership: { suspicionConfirmations: 0 } }).timing.suspicionConfirmations,
      0,
    );
    assert.throws(
      () => resolveOptions({ membership: { suspicionConfirmations: 17 } }),
      (err: unknown) =>
        err instanceof FoundationError && /suspicionConfirmations/.test(err.message),
    );
  });
});
