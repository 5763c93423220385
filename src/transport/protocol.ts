// Wire constants: magic, protocol versions, message type numbers and size limits.
// Message type numbers are ONLY APPENDED TO: a number, once shipped, keeps its meaning forever.

export const MAGIC = 'FNDN';
/** Versions this build speaks; the handshake picks the highest both sides share. */
export const PROTOCOL_MIN = 1;
export const PROTOCOL_MAX = 1;

/** Frames before authentication are tiny; anything larger is not a Foundation peer. */
export const HANDSHAKE_MAX_FRAME = 4 * 1024;
/** Default largest frame after authentication (configurable with `maxFrameSize`). */
export const DEFAULT_MAX_FRAME_SIZE = 128 * 1024 * 1024;
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
} as const;
