// Wire constants: magic, protocol versions, message type numbers and size limits.
// Message type numbers are ONLY APPENDED TO: a number, once shipped, keeps its meaning forever.

export const MAGIC = 'FNDN';
/** Versions this build speaks; the handshake picks the highest both sides share. */
// Version 2: transcript-bound proofs, per-connection keys, every frame inside an authenticated
// record. Version 3 (this build's newest) differs only in the tags of authenticate-only records:
// small ones are HMAC-SHA256, which costs less per record than GMAC (record.ts). Version 1 frames
// were not authenticated, so it is not spoken any more: a version 1 node is refused with
// FND_ERR_HANDSHAKE_VERSION.
export const PROTOCOL_MIN = 2;
export const PROTOCOL_MAX = 3;

/** Frames before authentication are tiny; anything larger is not a Foundation peer. */
export const HANDSHAKE_MAX_FRAME = 4 * 1024;
/** Default largest frame after authentication (configurable with `maxFrameSize`). */
export const DEFAULT_MAX_FRAME_SIZE = 128 * 1024 * 1024;
/**
 * Largest frame accepted on a `control` connection (membership: a SYNC of the largest view it may
 * carry fits easily). Keeps one member from making a node decode huge structures on the
 * connection its heartbeats use.
 */
export const CONTROL_MAX_FRAME = 4 * 1024 * 1024;
/** Largest frame accepted on a `default` connection (anything ≥ bulkThreshold goes on `bulk`). */
export const DEFAULT_CHANNEL_MAX_FRAME = 8 * 1024 * 1024;
/** Default cap on bytes held in partly received large frames across all inbound connections. */
export const DEFAULT_MAX_INBOUND_BUFFER = 512 * 1024 * 1024;

/**
 * The largest frame a connection carrying `channel` accepts (and a sender may queue on it):
 * `maxFrameSize` caps every channel, `control` and `default` are capped lower still. With
 * `singleConnection` (benchmarks only) every channel shares one connection, so bulk's limit.
 */
export function frameLimit(
  channel: ChannelName,
  maxFrameSize: number,
  singleConnection = false,
): number {
  if (singleConnection || channel === 'bulk') return maxFrameSize;
  return Math.min(
    maxFrameSize,
    channel === 'control' ? CONTROL_MAX_FRAME : DEFAULT_CHANNEL_MAX_FRAME,
  );
}

/** Bytes of the length prefix. */
export const FRAME_HEADER = 4;

export const CHANNEL_NAMES = ['control', 'default', 'bulk'] as const;
export type ChannelName = (typeof CHANNEL_NAMES)[number];

export const MSG = {
  // handshake (1-9)
  HELLO: 1,
  CHALLENGE: 2,
  AUTH: 3,
  HS_ERROR: 4,
  WELCOME: 5,
  // membership, on `control` (10-29)
  PING: 10,
  ACK: 11,
  PING_REQ: 12,
  NACK: 13,
  ALIVE: 14,
  SUSPECT: 15,
  DOWN: 16,
  LEAVE: 17,
  SYNC: 18,
  SYNC_REPLY: 19,
  // node-level messaging (30-49)
  SEND: 30,
  REQUEST: 31,
  RESPONSE: 32,
  /** SEND in an ordered lane: `[33, kind, lane, seq, dep, payload]` (src/cluster/lanes.ts). */
  SEND_LANE: 33,
  /** REQUEST in an ordered lane: `[34, id, kind, lane, seq, dep, payload]`. */
  REQUEST_LANE: 34,
} as const;
