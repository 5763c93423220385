// Busy polling (the `busyPollUs` option, src/transport/busy-poll.ts): the option is validated,
// traffic of a node that asks for it keeps the process's event loop polling for the window and
// the polling then stops on its own, and a node without it never starts the poller. How much it
// saves is measured in bench/actors, never asserted here.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { resolveAll } from '../../src/options.js';
import { busyPoll, busyPolling } from '../../src/transport/busy-poll.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';

describe('busy polling', () => {
  const nodes: FoundationNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('busyPollUs is an integer from 0 to 10 000 microseconds, default 0 (off)', () => {
    assert.equal(resolveAll({})[0]!.busyPollUs, 0);
    assert.equal(resolveAll({ busyPollUs: 250 })[0]!.busyPollUs, 250);
    for (const bad of [-1, 10_001, 1.5, '100']) {
      assert.throws(
        () => resolveAll({ busyPollUs: bad as number }),
        (e: { code?: string; data?: { field?: string } }) =>
          e.code === 'FND_ERR_INVALID_OPTION' && e.data?.field === 'busyPollUs',
        `busyPollUs: ${JSON.stringify(bad)}`,
      );
    }
  });

  it('the poller keeps the loop turning for its window and then stops by itself; a longer window extends it', async () => {
    await waitUntil(() => !busyPolling(), 'no poller left from before');
    busyPoll(2);
    assert.equal(busyPolling(), true);
    busyPoll(20);
    await waitUntil(() => !busyPolling(), 'the poller stops once the window passed', 5_000);
  });

  async function pair(busyPollUs: number | undefined): Promise<[FoundationNode, FoundationNode]> {
    const start = (name: string) =>
      Foundation.start({
        name,
        cluster: `busy-poll-${busyPollUs}`,
        secret: TEST_SECRET,
        logLevel: 'silent',
        discovery: nullDiscovery(),
        ...(busyPollUs === undefined ? {} : { busyPollUs }),
      });
    const a = await start('a');
    const b = await start('b');
    nodes.push(a, b);
    await a.join(b.address);
    await waitUntil(() => fullyMeshed([a, b]), 'a and b see each other');
    b.messenger.handle('echo', (p) => p);
    return [a, b];
  }

  it('over TCP, a node with busyPollUs polls after each reply it receives; requests and actor calls work as without', async () => {
    const [a, b] = await pair(500);
    const echo = b.spawn(async (msg: unknown) => msg);
    for (let i = 0; i < 200; i++) {
      await waitUntil(() => !busyPolling(), 'the window of the last call passed');
      assert.equal(await a.messenger.request('b', 'echo', i), i);
      // Set when the reply was read, before this continuation ran: no window can end in between.
      assert.equal(busyPolling(), true, `polling after reply ${i}`);
      if (i % 20 === 0) assert.deepEqual(await a.call(echo, { i }), { i });
    }
  });

  it('over TCP, nodes without busyPollUs never start the poller', async () => {
    const [a] = await pair(undefined);
    await waitUntil(() => !busyPolling(), 'no poller left from before');
    for (let i = 0; i < 50; i++) {
      assert.equal(await a.messenger.request('b', 'echo', i), i);
      assert.equal(busyPolling(), false);
    }
  });
});
