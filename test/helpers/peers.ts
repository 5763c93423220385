// A PeerManager for transport tests: the options a test does not care about get one set of
// defaults here (quiet, unencrypted, real clock, generous limits), so each test names only what it
// is about (its transport, its identity, the limit or timeout it exercises, the events it watches).

import type { Identity } from '../../src/transport/handshake.js';
import {
  type PeerEvents,
  PeerManager,
  type PeerManagerOptions,
} from '../../src/transport/peers.js';
import type { Transport } from '../../src/transport/types.js';
import { systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { TEST_SECRET } from './nodes.js';

/** Options every test PeerManager starts from; `overrides` replace any of them. */
export function peerManagerOptions(
  transport: Transport,
  self: Identity,
  overrides: Partial<PeerManagerOptions> = {},
): PeerManagerOptions {
  return {
    transport,
    self,
    secret: TEST_SECRET,
    clock: systemClock,
    log: createLogger('silent'),
    maxFrameSize: 1 << 20,
    encrypt: false,
    maxInboundBufferBytes: 1 << 30,
    maxQueueBytes: 1 << 20,
    handshakeTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    backoff: { baseMs: 50, maxMs: 500 },
    singleConnection: false,
    ...overrides,
  };
}

/**
 * A PeerManager on `transport` as `self`: messages dropped, every inbound peer accepted, link and
 * handshake news ignored, unless `events` says otherwise.
 */
export function testPeerManager(
  transport: Transport,
  self: Identity,
  overrides: Partial<PeerManagerOptions> = {},
  events: Partial<PeerEvents> = {},
): PeerManager {
  return new PeerManager(peerManagerOptions(transport, self, overrides), {
    message: () => {},
    accept: () => undefined,
    linkDown: () => {},
    handshakeError: () => {},
    ...events,
  });
}
