import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Foundation, FoundationError, type FoundationNode } from '../../src/index.js';
import { until } from '../helpers/proc.js';

async function pair(): Promise<[FoundationNode, FoundationNode]> {
  const cluster = `merr-${process.pid}-${Math.floor(performance.now())}`;
  const nowhere = { name: 'none', start() {}, stop() {} };
  const a = await Foundation.start({ name: 'a', cluster, logLevel: 'silent', discovery: nowhere });
  const b = await Foundation.start({ name: 'b', cluster, logLevel: 'silent', discovery: nowhere });
  await b.join(a.address);
  await until(() => a.members().length === 2 && b.members().length === 2, 20_000, 'pair');
  return [a, b];
}

describe('messenger error paths (real TCP)', () => {
  it('a reply that cannot be encoded reaches the caller as FND_ERR_ENCODE, not a timeout', async () => {
    const [a, b] = await pair();
    try {
      b.messenger.handle('bad', () => {
        const o: Record<string, unknown> = {};
        o.self = o; // circular
        return o;
      });
      const started = performance.now();
      await assert.rejects(a.messenger.request('b', 'bad', null, { timeout: 60_000 }), {
        code: 'FND_ERR_ENCODE',
      });
      assert.ok(performance.now() - started < 60_000);
      // Sending something unencodable fails at the sender, with the same code.
      const circular: Record<string, unknown> = {};
      circular.me = circular;
      assert.throws(() => a.messenger.send('b', 'x', circular), { code: 'FND_ERR_ENCODE' });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('a coded error thrown by a remote handler keeps its code and says it is remote', async () => {
    const [a, b] = await pair();
    try {
      b.messenger.handle('coded', () => {
        throw new FoundationError('FND_ERR_UNKNOWN_NODE', 'not here', { node: 'spoofed' });
      });
      b.messenger.handle('plain', () => {
        throw new TypeError('boom');
      });
      await assert.rejects(a.messenger.request('b', 'coded', null), (e: FoundationError) => {
        assert.equal(e.code, 'FND_ERR_UNKNOWN_NODE');
        assert.equal(e.data?.remote, true);
        assert.equal(e.data?.node, 'b', 'the remote data cannot override which node answered');
        return true;
      });
      await assert.rejects(a.messenger.request('b', 'plain', null), (e: FoundationError) => {
        assert.equal(e.code, 'FND_ERR_REMOTE');
        assert.match(String(e.data?.message), /boom/);
        return true;
      });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('joining an address where nothing listens rejects with FND_ERR_CONNECT', async () => {
    const a = await Foundation.start({
      logLevel: 'silent',
      discovery: { name: 'none', start() {}, stop() {} },
    });
    try {
      await assert.rejects(a.join('127.0.0.1:1'), (e: FoundationError) => {
        assert.equal(e.code, 'FND_ERR_CONNECT');
        assert.equal(e.data?.address, '127.0.0.1:1');
        assert.equal(e.data?.cause, 'ECONNREFUSED');
        return true;
      });
    } finally {
      await a.stop();
    }
  });
});
