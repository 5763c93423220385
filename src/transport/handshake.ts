// The handshake, as pure functions: HELLO (client) → CHALLENGE (server, proves it knows the
// secret) → AUTH (client proves it) → WELCOME. Both proofs are HMAC-SHA256 over the whole
// transcript (the exact HELLO bytes and the exact CHALLENGE body bytes, which carry both fresh
// nonces), so no field of either message can be changed in flight, and the secret never crosses
// the wire. The per-connection record keys are derived from the secret and the same transcript
// (HKDF), which binds every later frame to this one handshake: relaying a handshake between two
// members buys an attacker nothing, since it cannot produce or alter a single record after it.
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { type ErrorCode, isErrorCode } from '../errors.js';
import { decodeMessage, encode } from './codec.js';
import {
  CHANNEL_NAMES,
  type ChannelName,
  MAGIC,
  MSG,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
} from './protocol.js';
import type { Address } from './types.js';

export interface Identity {
  cluster: string;
  name: string;
  incarnation: number;
  /** The address peers dial to reach this node. */
  address: Address;
}

export interface Hello {
  versions: [number, number];
  cluster: string;
  name: string;
  incarnation: number;
  channel: ChannelName;
  nonce: Buffer;
  address: Address;
  /** The dialler asks for encrypted records. */
  encrypt: boolean;
}

/** The acceptor's half, sent inside CHALLENGE as its own msgpack body (hashed as sent). */
export interface ChallengeBody {
  version: number;
  name: string;
  incarnation: number;
  nonce: Buffer;
  address: Address;
  /** Records are encrypted (either side asked for it), else authenticated only. */
  encrypt: boolean;
}

/** The HMAC/HKDF key: the cluster secret's UTF-8 bytes (resolved by the node: docs/security.md). */
export function hmacKey(secret: string): Buffer {
  return Buffer.from(secret, 'utf8');
}

export function nonce(): Buffer {
  return randomBytes(16);
}

const str = (v: unknown, max = 255): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;
const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const port = (v: unknown): v is number => int(v) && v <= 65535;

export type VersionRange = [number, number];
export const OUR_VERSIONS: VersionRange = [PROTOCOL_MIN, PROTOCOL_MAX];

export function helloMessage(
  id: Identity,
  channel: ChannelName,
  n: Buffer,
  encrypt: boolean,
  versions = OUR_VERSIONS,
): unknown[] {
  return [
    MSG.HELLO,
    MAGIC,
    versions[0],
    versions[1],
    id.cluster,
    id.name,
    id.incarnation,
    channel,
    n,
    id.address.host,
    id.address.port,
    encrypt ? 1 : 0,
  ];
}

/** Validates a HELLO message; returns undefined when it is not a well-formed Foundation HELLO. */
export function parseHello(m: unknown[]): Hello | undefined {
  const [type, magic, vmin, vmax, cluster, name, inc, channel, n, host, p, enc] = m;
  if (type !== MSG.HELLO || magic !== MAGIC) return undefined;
  if (!int(vmin) || !int(vmax) || !str(cluster) || !str(name) || !int(inc) || !str(host))
    return undefined;
  if (!port(p)) return undefined;
  if (!CHANNEL_NAMES.includes(channel as ChannelName)) return undefined;
  if (!(n instanceof Uint8Array) || n.length !== 16) return undefined;
  return {
    versions: [vmin, vmax],
    cluster,
    name,
    incarnation: inc,
    channel: channel as ChannelName,
    nonce: Buffer.from(n),
    address: { host, port: p },
    encrypt: enc === 1,
  };
}

/** True when the message at least starts like a HELLO of any version (type and magic). */
export function looksLikeHello(m: unknown[]): boolean {
  return m[0] === MSG.HELLO && m[1] === MAGIC;
}

export function challengeBody(c: ChallengeBody): Buffer {
  return encode([
    c.version,
    c.name,
    c.incarnation,
    c.nonce,
    c.address.host,
    c.address.port,
    c.encrypt ? 1 : 0,
  ]);
}

export function parseChallengeBody(body: Uint8Array): ChallengeBody | undefined {
  let m: unknown[];
  try {
    m = decodeMessage(body);
  } catch {
    return undefined;
  }
  const [version, name, inc, n, host, p, enc] = m;
  if (!int(version) || !str(name) || !int(inc) || !str(host) || !port(p)) return undefined;
  if (!(n instanceof Uint8Array) || n.length !== 16) return undefined;
  return {
    version,
    name,
    incarnation: inc,
    nonce: Buffer.from(n),
    address: { host, port: p },
    encrypt: enc === 1,
  };
}

/** The handshake transcript: the HELLO frame body and the CHALLENGE body, byte for byte. */
export interface Transcript {
  hello: Uint8Array;
  challenge: Uint8Array;
}

function proof(key: Buffer, role: 'S' | 'C', t: Transcript): Buffer {
  const lens = Buffer.allocUnsafe(8);
  lens.writeUInt32BE(t.hello.length, 0);
  lens.writeUInt32BE(t.challenge.length, 4);
  return createHmac('sha256', key)
    .update(`FND2-${role}\0`)
    .update(lens)
    .update(t.hello)
    .update(t.challenge)
    .digest();
}

/** The acceptor's proof that it knows the secret, over the whole transcript. */
export const serverProof = (key: Buffer, t: Transcript): Buffer => proof(key, 'S', t);
/** The dialler's proof; a different label, so the acceptor's proof cannot be reflected back. */
export const clientProof = (key: Buffer, t: Transcript): Buffer => proof(key, 'C', t);

export function proofsEqual(a: unknown, b: Buffer): boolean {
  return a instanceof Uint8Array && a.length === b.length && timingSafeEqual(a, b);
}

/** Record keys of one connection, one per direction (client → server, server → client). */
export interface ConnectionKeys {
  c2s: Buffer;
  s2c: Buffer;
}

/**
 * HKDF-SHA256 from the secret, salted with both nonces, with the transcript hash as context: fresh
 * keys for every connection, which only the two ends of this very handshake can compute.
 */
export function deriveKeys(
  key: Buffer,
  t: Transcript,
  clientNonce: Buffer,
  serverNonce: Buffer,
): ConnectionKeys {
  const th = createHash('sha256').update(t.hello).update(t.challenge).digest();
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const k = (label: string) =>
    Buffer.from(hkdfSync('sha256', key, salt, Buffer.concat([Buffer.from(label), th]), 32));
  return { c2s: k('FND2 record c2s\0'), s2c: k('FND2 record s2c\0') };
}

/** Highest version both ranges contain, or undefined. */
export function negotiateVersion(theirs: VersionRange, ours = OUR_VERSIONS): number | undefined {
  const v = Math.min(ours[1], theirs[1]);
  return v >= Math.max(ours[0], theirs[0]) ? v : undefined;
}

export function errorMessage(code: ErrorCode, message: string): unknown[] {
  return [MSG.HS_ERROR, code, message];
}

export function parseError(m: unknown[]): { code: ErrorCode; message: string } | undefined {
  if (m[0] !== MSG.HS_ERROR) return undefined;
  const code = isErrorCode(m[1]) ? m[1] : 'FND_ERR_HANDSHAKE_PROTOCOL';
  return { code, message: typeof m[2] === 'string' ? m[2].slice(0, 500) : '' };
}
