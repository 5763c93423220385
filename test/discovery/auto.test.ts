import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseStrategy } from '../../src/discovery/auto.js';
import { FallbackStrategy } from '../../src/discovery/fallback.js';
import type { DiscoveryContext, DiscoveryStrategy } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { createLogger } from '../../src/util/log.js';

const SECRET = 'auto-secret-0123456789';
const pick = (env: NodeJS.ProcessEnv, loopback = true) =>
  chooseStrategy({ strategy: 'auto' }, { env, loopback, secret: SECRET });

describe('auto discovery: the documented decision order', () => {
  it('1. FOUNDATION_PEERS wins over everything', () => {
    const c = pick({
      FOUNDATION_PEERS: '127.0.0.1:4000, 127.0.0.1:4001',
      KUBERNETES_SERVICE_HOST: '10.0.0.1',
    });
    assert.equal(c.strategy.name, 'static');
    assert.match(c.reason, /FOUNDATION_PEERS/);
  });

  it('2. inside Kubernetes: the API with FOUNDATION_SELECTOR, else DNS of FOUNDATION_SERVICE', () => {
    const k8s = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const api = pick(
      { ...k8s, FOUNDATION_SELECTOR: 'app=shop', FOUNDATION_SERVICE: 'shop-headless' },
      false,
    );
    assert.equal(api.strategy.name, 'kubernetes');
    const dns = pick({ ...k8s, FOUNDATION_SERVICE: 'shop-headless' }, false);
    assert.equal(dns.strategy.name, 'dns');
    assert.match(dns.reason, /shop-headless/);
    // Neither set: the rules below apply, and the reason says what was missing.
    const neither = pick(k8s, false);
    assert.match(neither.reason, /FOUNDATION_SERVICE/);
  });

  it('3. on loopback: local', () => {
    const c = pick({});
    assert.equal(c.strategy.name, 'local');
    assert.match(c.reason, /loopback/);
  });

  it('4. otherwise: mDNS, with gossip as the fallback', () => {
    const c = pick({}, false);
    assert.ok(c.strategy instanceof FallbackStrategy);
    assert.equal(c.strategy.name, 'mdns|gossip');
    assert.match(c.reason, /mDNS/);
  });

  it('explicit strategies and custom objects are used as given', () => {
    const custom = { name: 'mine', start() {}, stop() {} };
    assert.equal(chooseStrategy(custom).strategy, custom);
    assert.equal(chooseStrategy({ strategy: 'hosts-file' }).strategy.name, 'hosts-file');
  });
});

describe('FallbackStrategy', () => {
  const ctx = {
    log: createLogger('silent'),
    clock: new ManualClock(),
    signal: new AbortController().signal,
  } as unknown as DiscoveryContext;
  const strategy = (name: string, fails: boolean, log: string[]): DiscoveryStrategy => ({
    name,
    start() {
      log.push(`start ${name}`);
      if (fails) throw new Error(`${name} cannot run here`);
    },
    stop() {
      log.push(`stop ${name}`);
    },
  });

  it('keeps the first strategy that starts, stopping the ones that failed, and says why', async () => {
    const log: string[] = [];
    const f = new FallbackStrategy([strategy('mdns', true, log), strategy('gossip', false, log)]);
    await f.start(ctx);
    assert.equal(f.name, 'gossip');
    assert.match(f.note, /mdns: mdns cannot run here/);
    await f.stop();
    assert.deepEqual(log, ['start mdns', 'stop mdns', 'start gossip', 'stop gossip']);
  });

  it('fails with every reason when none can start', async () => {
    const log: string[] = [];
    const f = new FallbackStrategy([strategy('a', true, log), strategy('b', true, log)]);
    await assert.rejects(f.start(ctx), /a: a cannot run here; b: b cannot run here/);
  });
});
