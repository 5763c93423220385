// Per-lane order over real TCP: a 4 MiB message (bulk connection) and then a small one (default
// connection) from the same lane arrive in send order, every time; the small message of another
// lane is not held behind the large one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { MSG } from '../../src/transport/protocol.js';
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
  it('small messages then a large one from one lane: the large one waits for them; small-only lanes go plain', async () => {
    const [a, b] = nodes as [FoundationNode, FoundationNode];
    const types: number[] = [];
    const dispatch = b.messenger.dispatch.bind(b.messenger);
    b.messenger.dispatch = (from, channel, msg) => {
      types.push(msg[0] as number);
      dispatch(from, channel, msg);
    };
    const got: string[] = [];
    b.messenger.on('mixed', (p) => got.push(p instanceof Uint8Array ? 'large' : String(p)));
    const filler = 'f'.repeat(1000);
    // Many small messages queue up on `default`; the large one on `bulk` would overtake them.
    for (let trial = 0; trial < 5; trial++) {
      got.length = 0;
      for (let i = 0; i < 2000; i++)
        a.messenger.send('lane-b', 'mixed', `${i}${filler}`, { lane: 5 });
      a.messenger.send('lane-b', 'mixed', randomBytes(70_000), { lane: 5 });
      await waitUntil(() => got.length === 2001, `trial ${trial}: all arrive`);
      assert.equal(got.indexOf('large'), 2000, `trial ${trial}: the large one came last`);
      assert.ok(
        got.slice(0, 2000).every((g, i) => g.startsWith(String(i))),
        `trial ${trial}: in order`,
      );
    }
    // A lane that only sends small messages, long after any large one, numbers nothing.
    types.length = 0;
    got.length = 0;
    for (let i = 0; i < 100; i++) a.messenger.send('lane-b', 'mixed', `s${i}`, { lane: 6 });
    await waitUntil(() => got.length === 100, 'all arrive');
    assert.deepEqual(new Set(types), new Set([MSG.SEND]), 'plain SEND frames only');
    b.messenger.dispatch = dispatch;
  });
});

describe("actors keep Erlang's per-pair order over real TCP", () => {
  const nodes: FoundationNode[] = [];
  before(async () => {
    for (const name of ['act-a', 'act-b'])
      nodes.push(
        await Foundation.start({
          name,
          cluster: `actor-lanes-${process.pid}`,
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

  it('an actor that sends 4 MiB, then a small message, then crashes: the linked receiver sees them in that order, 10 of 10 times', async () => {
    const [a, b] = nodes as [FoundationNode, FoundationNode];
    const large = randomBytes(4 << 20);
    for (let trial = 0; trial < 10; trial++) {
      const seen: string[] = [];
      const receiver = b.spawn(
        (msg: unknown) => {
          if (msg instanceof Uint8Array) seen.push('large');
          else if (
            typeof msg === 'object' &&
            msg !== null &&
            (msg as { type?: unknown }).type === 'EXIT'
          )
            seen.push('EXIT');
          else seen.push(String(msg));
        },
        { trapExits: true },
      );
      const sender = a.spawn((_msg: 'go', ctx) => {
        ctx.link(receiver);
        ctx.send(receiver, large);
        ctx.send(receiver, 'small');
        throw new Error('boom');
      });
      a.send(sender, 'go');
      await waitUntil(() => seen.length === 3, `trial ${trial}: all three arrive`);
      assert.deepEqual(seen, ['large', 'small', 'EXIT'], `trial ${trial}`);
    }
  });
});
