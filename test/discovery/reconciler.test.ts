import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DiscoveryContext, type Member, Reconciler } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { type Address, formatAddress } from '../../src/transport/types.js';
import { createLogger } from '../../src/util/log.js';

/** A discovery context that records what the reconciler asks the node to do. */
function recordingContext(members: Member[]) {
  const calls: string[] = [];
  const ctx: DiscoveryContext = {
    cluster: 'c',
    self: { name: 'me', address: { host: '127.0.0.1', port: 1000 }, incarnation: 1 },
    async connect(a: Address) {
      calls.push(`connect ${formatAddress(a)}`);
      if (a.port === 6666) throw new Error('refused');
      return `node-${a.port}`;
    },
    disconnect(a: Address) {
      calls.push(`disconnect ${formatAddress(a)}`);
    },
    knownNodes: () => members,
    clock: new ManualClock(),
    log: createLogger('silent'),
    signal: new AbortController().signal,
  };
  return { ctx, calls };
}

const a = (port: number): Address => ({ host: '127.0.0.1', port });

describe('Reconciler (shared by every strategy)', () => {
  it('joins listed addresses that are not live members, never itself, and survives failures', async () => {
    const members: Member[] = [
      { name: 'x', address: '127.0.0.1:2000', status: 'alive', incarnation: 1 },
      { name: 'y', address: '127.0.0.1:3000', status: 'down', incarnation: 1 },
    ];
    const { ctx, calls } = recordingContext(members);
    await new Reconciler(ctx, 'test').reconcile([a(1000), a(2000), a(3000), a(4000), a(6666)]);
    // 2000 is alive already; 3000 is down, so it is joined again (a node that came back).
    assert.deepEqual(calls.sort(), [
      'connect 127.0.0.1:3000',
      'connect 127.0.0.1:4000',
      'connect 127.0.0.1:6666',
    ]);
  });

  it('with disconnectRemoved, reports addresses that dropped out of the list, once', async () => {
    const { ctx, calls } = recordingContext([]);
    const r = new Reconciler(ctx, 'test', true);
    await r.reconcile([a(2000), a(3000)]);
    calls.length = 0;
    await r.reconcile([a(3000)]);
    assert.deepEqual(calls, ['disconnect 127.0.0.1:2000', 'connect 127.0.0.1:3000']);
    calls.length = 0;
    await r.reconcile([a(3000)]);
    assert.deepEqual(calls, ['connect 127.0.0.1:3000']);
  });

  it('without disconnectRemoved, never disconnects', async () => {
    const { ctx, calls } = recordingContext([]);
    const r = new Reconciler(ctx, 'test');
    await r.reconcile([a(2000)]);
    await r.reconcile([]);
    assert.deepEqual(calls, ['connect 127.0.0.1:2000']);
  });
});
