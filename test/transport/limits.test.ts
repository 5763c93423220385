// Limits after authentication, against a member that ignores its own sending checks: frames over
// their channel's limit, and many connections each announcing a large frame, close only the
// offending connections; the node keeps serving everyone else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { frameHeader } from '../../src/transport/frame.js';
import { Link, type LinkOptions } from '../../src/transport/link.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { type ChannelName, DEFAULT_CHANNEL_MAX_FRAME } from '../../src/transport/protocol.js';
import { parseAddress } from '../../src/transport/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { captureLogger } from '../helpers/loopback.js';
import { startMemNode, TEST_SECRET, tickUntil } from '../helpers/nodes.js';

const MiB = 1024 * 1024;

async function setup() {
  const clock = new ManualClock();
  const net = new InMemoryNetwork(clock);
  const capture = captureLogger();
  const node = await startMemNode(net, clock, {
    name: 'target',
    logger: capture.logger,
    maxInboundBufferBytes: 3 * MiB,
  });
  const honest = await startMemNode(net, clock, { name: 'honest' });
  honest.messenger.handle('ping', (p) => p);
  node.messenger.handle('ping', (p) => p);
  await honest.join(node.address);
  await tickUntil(
    clock,
    net,
    () => node.members().some((m) => m.name === 'honest' && m.status === 'alive'),
    'honest joins',
  );
  /** A member with the secret that writes whatever it likes after the handshake. */
  const rogue = async (channel: ChannelName) => {
    const conn = await net.transport().connect(parseAddress(node.address)!, 1000);
    const opts: LinkOptions = {
      self: {
        cluster: 'default',
        name: 'rogue',
        incarnation: 1,
        address: parseAddress('127.0.0.1:1')!,
      },
      secret: TEST_SECRET,
      maxFrameSize: () => 4096,
      handshakeTimeoutMs: 5000,
      clock,
      encrypt: false,
    };
    const pending = Link.client(conn, channel, opts);
    await net.settle();
    return pending;
  };
  const closedWith = (code: string) =>
    capture.lines.filter((l) => l.code === code && l.peer === 'rogue').length;
  return { clock, net, node, honest, rogue, closedWith };
}

describe('limits after the handshake, against a member that ignores them', () => {
  it(`a frame over the default channel's ${DEFAULT_CHANNEL_MAX_FRAME / MiB} MiB closes that connection only (FND_ERR_FRAME_TOO_LARGE)`, async () => {
    const { clock, net, node, honest, rogue, closedWith } = await setup();
    try {
      const link = await rogue('default');
      link.write(frameHeader(DEFAULT_CHANNEL_MAX_FRAME + 1));
      await tickUntil(clock, net, () => closedWith('FND_ERR_FRAME_TOO_LARGE') === 1, 'closed');
      assert.ok(link.isClosed);
      const reply = honest.messenger.request('target', 'ping', 'still here');
      await net.settle();
      clock.tick(10);
      await net.settle();
      assert.equal(await reply, 'still here');
      assert.ok(node.members().some((m) => m.name === 'honest' && m.status === 'alive'));
    } finally {
      await Promise.all([node.stop(), honest.stop()]);
    }
  });

  it('links each announcing a large frame share one inbound budget; the ones past it are closed (FND_ERR_INBOUND_MEMORY)', async () => {
    const { clock, net, node, honest, rogue, closedWith } = await setup();
    try {
      const links: Link[] = [];
      for (let i = 0; i < 6; i++) {
        const link = await rogue('bulk');
        // 1.2 MiB announced, a little of it sent: it must be held while the rest "arrives".
        link.write(Buffer.concat([frameHeader(1.2 * MiB), Buffer.alloc(1000)]));
        links.push(link);
      }
      await tickUntil(clock, net, () => closedWith('FND_ERR_INBOUND_MEMORY') === 4, '4 refused');
      assert.equal(links.filter((l) => l.isClosed).length, 4, 'two fit in 3 MiB, four did not');
      const reply = honest.messenger.request('target', 'ping', 'served');
      await net.settle();
      clock.tick(10);
      await net.settle();
      assert.equal(await reply, 'served');
    } finally {
      await Promise.all([node.stop(), honest.stop()]);
    }
  });
});

describe('fuzz: the authenticated stream after a real handshake', () => {
  it('property: any bytes a member writes raw (not sealed) close its connection with a coded error; nothing is delivered', async () => {
    const { clock, net, node, honest, rogue, closedWith } = await setup();
    let delivered = 0;
    node.messenger.on('fuzz', () => delivered++);
    try {
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (bytes) => {
          const link = await rogue('default');
          // Raw bytes on the connection, around the record layer: as a relay would inject them.
          link.conn.write(bytes);
          // A valid-looking frame follows, so a stream that merely waits is pushed on.
          link.conn.write(Buffer.concat([frameHeader(8), Buffer.alloc(8 + 300, 0x90)]));
          await net.settle();
          clock.tick(10);
          await net.settle();
          runs++;
          link.destroy();
          await net.settle();
        }),
        { numRuns: 60 },
      );
      assert.equal(runs, 60);
      assert.equal(delivered, 0, 'no fuzzed message reached the messenger');
      // A random record header announces more than 256 KiB but for 1 in 16384; the rest wait
      // for a record that never completes (and go with their connection).
      assert.ok(closedCount() >= 55, `coded closes: ${closedCount()} of 60`);
    } finally {
      await Promise.all([node.stop(), honest.stop()]);
    }
    function closedCount() {
      return (
        closedWith('FND_ERR_RECORD_AUTH') +
        closedWith('FND_ERR_FRAME_TOO_LARGE') +
        closedWith('FND_ERR_FRAME_DECODE')
      );
    }
  });
});
