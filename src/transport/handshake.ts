// The handshake, as pure functions: HELLO (client) → CHALLENGE (server, proves it knows the
// secret) → AUTH (client proves it) → WELCOME. Proofs are HMAC-SHA256 over both nonces, the
// cluster and both names, so the secret never crosses the wire and a proof cannot be replayed.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type ErrorCode, isErrorCode } from '../errors.js';
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
}

export function hmacKey(secret: string | undefined, cluster: string): Buffer {
  // Without a secret (loopback only) the proof still runs, keyed by the cluster name: it proves
  // nothing against an attacker, but it keeps one code path and catches misdirected connections.
  return Buffer.from(secret ?? `foundation-insecure:${cluster}`, 'utf8');
}

export function nonce(): Buffer {
  return randomBytes(16);
}

function proof(
  key: Buffer,
  role: 'S' | 'C',
  a: Buffer,
  b: Buffer,
  cluster: string,
  x: string,
  y: string,
): Buffer {
  return createHmac('sha256', key)
    .update(`FND-${role}\0${cluster}\0${x}\0${y}\0`)
    .update(a)
    .update(b)
    .digest();
}

export function serverProof(
  key: Buffer,
  hello: Hello,
  serverNonce: Buffer,
  serverName: string,
): Buffer {
  return proof(key, 'S', hello.nonce, serverNonce, hello.cluster, serverName, hello.name);
}

export function clientProof(
  key: Buffer,
  hello: Hello,
  serverNonce: Buffer,
  serverName: string,
): Buffer {
  return proof(key, 'C', serverNonce, hello.nonce, hello.cluster, hello.name, serverName);
}

export function proofsEqual(a: unknown, b: Buffer): boolean {
  return a instanceof Uint8Array && a.length === b.length && timingSafeEqual(a, b);
}

export type VersionRange = [number, number];
export const OUR_VERSIONS: VersionRange = [PROTOCOL_MIN, PROTOCOL_MAX];

export function helloMessage(
  id: Identity,
  channel: ChannelName,
  n: Buffer,
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
  ];
}

const str = (v: unknown, max = 255): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;
const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Validates a HELLO message; returns undefined when it is not a well-formed Foundation HELLO. */
export function parseHello(m: unknown[]): Hello | undefined {
  const [type, magic, vmin, vmax, cluster, name, inc, channel, n, host, port] = m;
  if (type !== MSG.HELLO || magic !== MAGIC) return undefined;
  if (!int(vmin) || !int(vmax) || !str(cluster) || !str(name) || !int(inc) || !str(host))
    return undefined;
  if (!int(port) || port > 65535) return undefined;
  if (!CHANNEL_NAMES.includes(channel as ChannelName)) return undefined;
  if (!(n instanceof Uint8Array) || n.length !== 16) return undefined;
  return {
    versions: [vmin, vmax],
    cluster,
    name,
    incarnation: inc,
    channel: channel as ChannelName,
    nonce: Buffer.from(n),
    address: { host, port },
  };
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
