import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Transport } from '../../src/index.js';
import { memCluster } from '../helpers/mem-cluster.js';

describe('re-dialling a peer that went away', () => {
  it('keeps its jittered backoff while the application keeps sending (no dial per message)', async () => {
    const c = await memCluster(2);
    let connects = 0;
    const inner = c.net.transport();
    const counting: Transport = {
      listen: (a, on) => inner.listen(a, on),
      connect: (a, t) => {
        connects++;
        return inner.connect(a, t);
      },
      close: () => inner.close(),
    };
    const x = await c.start('x', { transport: counting });
    try {
      await x.join(c.nodes[0]!.address);
      await c.tick(300);
      const target = c.nodes[1]!;
      c.net.crash(target.address);
      await c.net.settle();
      const before = connects;
      // Still a member for a while (suspicion takes time): the app keeps sending to it.
      for (let i = 0; i < 500; i++) {
        try {
          x.messenger.send('n1', 'ping', i);
        } catch {
          break; // declared down: sends are refused from then on
        }
        await c.net.settle(); // each send in its own turn, after the previous dial failed
        if (i % 50 === 0) await c.tick(10);
      }
      const dials = connects - before;
      assert.ok(dials < 20, `${dials} connection attempts for 500 sends`);
    } finally {
      await c.stopAll();
    }
  });
});
