// Per-lane order over real TCP: a 4 MiB message (bulk connection) and then a small one (default
// connection) from the same lane arrive in send order, every time; the small message of another
// lane is not held behind the large one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { fullyMeshed, nullDiscovery, TEST_SECRET, waitUntil } from '../helpers/nodes.js';

describe('ordered lanes over real TCP', () => {
  const nodes: FoundationNode[] = [];
  before(async () => {
    for (const name of ['lane-a', 'lane-b'])
      nodes.push(
        await Foundation.start({
          name,
          cluster: `lanes-${process.pid}`,
          secret: TEST_SECRET,
          logLevel: 'silent',
          discovery: nullDiscovery(),
        }),
      );
    await nodes[1]!.join(nodes[0]!.address);
    await waitUntil(() => fullyMeshed(nodes), 'a and b see each other');
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('a large message then a small one from one lane arrive in that order, 20 of 20 times', async () => {
    const [a, b] = nodes as [FoundationNode, FoundationNode];
    const got: string[] = [];
    b.messenger.on('item', (p) =>
      got.push(p instanceof Uint8Array ? `large:${p.length}` : String(p)),
    );
    const large = randomBytes(4 << 20);
    let otherFirst = 0;
    for (let trial = 0; trial < 20; trial++) {
      got.length = 0;
      a.messenger.send('lane-b', 'item', large, { lane: 1 });
      a.messenger.send('lane-b', 'item', `small-${trial}`, { lane: 1 });
      a.messenger.send('lane-b', 'item', `other-${trial}`, { lane: 2 });
      await waitUntil(() => got.length === 3, `trial ${trial}: all three arrive`);
      const lane1 = got.filter((g) => !g.startsWith('other'));
      assert.deepEqual(lane1, [`large:${4 << 20}`, `small-${trial}`], `trial ${trial}`);
      if (got.indexOf(`other-${trial}`) < got.indexOf(`large:${4 << 20}`)) otherFirst++;
    }
    // Informational: how often the other lane's message was not held behind the transfer.
    console.log(
      `# another lane's small message arrived before the 4 MiB one in ${otherFirst}/20 trials`,
    );
    assert.ok(b.messenger.laneStats.held > 0, 'the small messages did overtake and were held');
  });
});
