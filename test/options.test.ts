import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Foundation, FoundationError, PRESETS } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

function rejects(input: unknown, code: string, field: string): void {
  assert.throws(
    () => resolveOptions(input),
    (err: unknown) => {
      assert.ok(err instanceof FoundationError, 'a FoundationError');
      assert.equal(err.code, code);
      assert.equal(err.data?.field, field);
      assert.ok(err.message.includes(field), `message names ${field}: ${err.message}`);
      return true;
    },
  );
}

describe('options', () => {
  it('no options: loopback, ephemeral port, local preset, auto discovery, a name from host and pid', () => {
    const o = resolveOptions();
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.port, 0);
    assert.equal(o.preset, 'local');
    assert.deepEqual(o.timing, PRESETS.local);
    assert.deepEqual(o.discovery, { strategy: 'auto' });
    assert.match(o.name, new RegExp(`-${process.pid}$`));
    assert.equal(o.cluster, 'default');
  });

  it('names the bad field and what is allowed', () => {
    rejects({ port: 99999 }, 'FND_ERR_INVALID_OPTION', 'port');
    rejects({ port: '80' }, 'FND_ERR_INVALID_OPTION', 'port');
    rejects({ name: 'has space' }, 'FND_ERR_INVALID_OPTION', 'name');
    rejects({ secret: 'short' }, 'FND_ERR_INVALID_OPTION', 'secret');
    rejects({ preset: 'fast' }, 'FND_ERR_INVALID_OPTION', 'preset');
    rejects({ discovery: { strategy: 'carrier-pigeon' } }, 'FND_ERR_INVALID_OPTION', 'discovery');
    rejects(
      { discovery: { strategy: 'static', hosts: [] } },
      'FND_ERR_INVALID_OPTION',
      'discovery.hosts',
    );
    rejects(
      { membership: { probeIntervalMs: -1 } },
      'FND_ERR_INVALID_OPTION',
      'membership.probeIntervalMs',
    );
    rejects(
      { membership: { probeTimeoutMs: 500, probeIntervalMs: 200 } },
      'FND_ERR_INVALID_OPTION',
      'membership.probeTimeoutMs',
    );
    rejects(
      { membership: { suspicionMinMs: 5000, suspicionMaxMs: 100 } },
      'FND_ERR_INVALID_OPTION',
      'membership.suspicionMinMs',
    );
  });

  it('every built-in discovery strategy validates its own options, naming the field', () => {
    rejects({ discovery: { strategy: 'dns' } }, 'FND_ERR_INVALID_OPTION', 'discovery.query');
    rejects(
      { discovery: { strategy: 'dns', query: 'x', bogus: 1 } },
      'FND_ERR_INVALID_OPTION',
      'discovery.bogus',
    );
    rejects(
      { discovery: { strategy: 'kubernetes', selector: 'app=x', ipLookupMode: 'nodes' } },
      'FND_ERR_INVALID_OPTION',
      'discovery.ipLookupMode',
    );
    rejects(
      { discovery: { strategy: 'gossip', multicastTtl: 300 } },
      'FND_ERR_INVALID_OPTION',
      'discovery.multicastTtl',
    );
    rejects(
      { discovery: { strategy: 'mdns', ttlSeconds: 0 } },
      'FND_ERR_INVALID_OPTION',
      'discovery.ttlSeconds',
    );
    for (const strategy of ['auto', 'local', 'hosts-file', 'gossip', 'mdns']) {
      assert.equal(
        (resolveOptions({ discovery: { strategy } }).discovery as { strategy: string }).strategy,
        strategy,
      );
    }
  });

  it('an unknown option is refused by name (a typo must not be silently ignored)', () => {
    rejects({ prot: 4000 }, 'FND_ERR_INVALID_OPTION', 'prot');
    rejects(
      { membership: { probeIntervall: 5 } },
      'FND_ERR_INVALID_OPTION',
      'membership.probeIntervall',
    );
  });

  it('secure by default: a non-loopback listener without a secret refuses to start', () => {
    rejects({ host: '0.0.0.0' }, 'FND_ERR_INSECURE_BIND', 'secret');
    rejects({ host: '10.1.2.3' }, 'FND_ERR_INSECURE_BIND', 'secret');
    // ...unless a secret is given, or the user opts out explicitly.
    assert.equal(
      resolveOptions({ host: '10.1.2.3', secret: 'x'.repeat(16) }).secret,
      'x'.repeat(16),
    );
    assert.equal(resolveOptions({ host: '10.1.2.3', insecure: true }).host, '10.1.2.3');
    // Loopback needs no secret, and off loopback the preset defaults to 'lan'.
    assert.equal(resolveOptions({ host: '127.0.0.2' }).preset, 'local');
    assert.equal(resolveOptions({ host: '10.1.2.3', insecure: true }).preset, 'lan');
    assert.equal(
      resolveOptions({ host: '10.1.2.3', insecure: true, advertiseHost: '10.1.2.3' }).advertiseHost,
      '10.1.2.3',
    );
  });

  it('Foundation.start rejects bad options with the coded error before listening', async () => {
    await assert.rejects(Foundation.start({ port: -1 }), (err: unknown) => {
      assert.ok(err instanceof FoundationError);
      assert.equal(err.code, 'FND_ERR_INVALID_OPTION');
      return true;
    });
    await assert.rejects(Foundation.start({ host: '0.0.0.0' }), { code: 'FND_ERR_INSECURE_BIND' });
  });

  it('membership overrides replace single fields of the preset', () => {
    const o = resolveOptions({
      preset: 'lan',
      host: '127.0.0.1',
      membership: { probeIntervalMs: 2000 },
    });
    assert.equal(o.timing.probeIntervalMs, 2000);
    assert.equal(o.timing.probeTimeoutMs, PRESETS.lan.probeTimeoutMs);
  });

  it('a port already in use fails with FND_ERR_LISTEN', async () => {
    const a = await Foundation.start({
      logLevel: 'silent',
      discovery: { strategy: 'static', hosts: ['127.0.0.1:1'] },
    });
    try {
      const port = Number(a.address.split(':')[1]);
      await assert.rejects(
        Foundation.start({
          port,
          logLevel: 'silent',
          discovery: { strategy: 'static', hosts: ['127.0.0.1:1'] },
        }),
        { code: 'FND_ERR_LISTEN' },
      );
    } finally {
      await a.stop();
    }
  });
});
