// The membership wire format (message types 10–29 on the control channel): one typed encoder and
// one decoder. Every inbound membership message passes `decodeMembership` first, which checks
// shape and bounds (names, incarnations, ports, entry counts) before membership changes any state.
import { MSG } from '../transport/protocol.js';
import type { Address } from '../transport/types.js';

export type MemberStatus = 'alive' | 'suspect' | 'down' | 'left';

/** Status numbers on the wire (SYNC entries): append only. */
export const STATUS_CODES: readonly MemberStatus[] = ['alive', 'suspect', 'down', 'left'];

/** Longest node name accepted (the handshake and the `name` option use the same bound). */
export const MAX_NAME_LENGTH = 255;
/** Longest host accepted in an address (a DNS name is at most 253 characters). */
export const MAX_HOST_LENGTH = 255;
/** Most entries in one SYNC / SYNC_REPLY; a larger view is refused whole. */
export const MAX_SYNC_ENTRIES = 10_000;

/** One member in a push-pull view. */
export interface SyncEntry {
  name: string;
  incarnation: number;
  status: MemberStatus;
  address: Address;
}

export type MembershipMessage =
  | { type: 'ping'; seq: number; target: string }
  | { type: 'ack'; seq: number }
  | { type: 'ping-req'; seq: number; target: string }
  | { type: 'nack'; seq: number }
  | { type: 'alive'; name: string; incarnation: number; address: Address }
  /** `by`: the node that suspects (absent: the sender). */
  | { type: 'suspect'; name: string; incarnation: number; by: string | undefined }
  /** `by`: the node whose suspicion timed out (absent: the sender). */
  | { type: 'down'; name: string; incarnation: number; by: string | undefined }
  | { type: 'leave'; name: string; incarnation: number }
  /** The sender's view, its own entry first. */
  | { type: 'sync'; entries: SyncEntry[] }
  | { type: 'sync-reply'; entries: SyncEntry[] };

export type Decoded =
  | { ok: true; msg: MembershipMessage }
  /** `unknown`: a type number this build does not know (a newer peer); ignore it silently. */
  | { ok: false; reason: string; unknown?: true };

const isName = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_LENGTH;
const isHost = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_HOST_LENGTH;
/** Incarnations and sequence numbers: safe non-negative integers (no NaN, floats, ±Infinity). */
const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isPort = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

const bad = (reason: string): Decoded => ({ ok: false, reason });
const ok = (msg: MembershipMessage): Decoded => ({ ok: true, msg });

function entries(v: unknown): SyncEntry[] | string {
  if (!Array.isArray(v)) return 'entries is not an array';
  if (v.length > MAX_SYNC_ENTRIES) return `${v.length} entries (most ${MAX_SYNC_ENTRIES})`;
  const out: SyncEntry[] = [];
  for (let i = 0; i < v.length; i++) {
    const e: unknown = v[i];
    if (!Array.isArray(e)) return `entry ${i} is not an array`;
    const name: unknown = e[0];
    const inc: unknown = e[1];
    const code: unknown = e[2];
    const host: unknown = e[3];
    const port: unknown = e[4];
    if (!isName(name)) return `entry ${i}: bad name`;
    if (!isCount(inc)) return `entry ${i}: bad incarnation`;
    const status =
      typeof code === 'number' && Number.isInteger(code) ? STATUS_CODES[code] : undefined;
    if (!status) return `entry ${i}: bad status`;
    if (!isHost(host) || !isPort(port)) return `entry ${i}: bad address`;
    out.push({ name, incarnation: inc, status, address: { host, port } });
  }
  return out;
}

/**
 * Decodes one membership message `[type, ...fields]`. Never throws; a message that does not
 * match its shape and bounds is refused whole (trailing extra fields are allowed: newer peers
 * may append fields).
 */
export function decodeMembership(msg: unknown[]): Decoded {
  if (!Array.isArray(msg)) return bad('not an array');
  const [type, a, b, c, d] = msg;
  switch (type) {
    case MSG.PING:
    case MSG.PING_REQ:
      if (!isCount(a) || !isName(b)) return bad('expected [type, seq, target]');
      return ok({ type: type === MSG.PING ? 'ping' : 'ping-req', seq: a, target: b });
    case MSG.ACK:
    case MSG.NACK:
      if (!isCount(a)) return bad('expected [type, seq]');
      return ok({ type: type === MSG.ACK ? 'ack' : 'nack', seq: a });
    case MSG.ALIVE:
      if (!isName(a) || !isCount(b) || !isHost(c) || !isPort(d))
        return bad('expected [ALIVE, name, incarnation, host, port]');
      return ok({ type: 'alive', name: a, incarnation: b, address: { host: c, port: d } });
    case MSG.SUSPECT:
    case MSG.DOWN:
      if (!isName(a) || !isCount(b) || (c !== undefined && c !== null && !isName(c)))
        return bad('expected [type, name, incarnation, by?]');
      return ok({
        type: type === MSG.SUSPECT ? 'suspect' : 'down',
        name: a,
        incarnation: b,
        by: isName(c) ? c : undefined,
      });
    case MSG.LEAVE:
      if (!isName(a) || !isCount(b)) return bad('expected [LEAVE, name, incarnation]');
      return ok({ type: 'leave', name: a, incarnation: b });
    case MSG.SYNC:
    case MSG.SYNC_REPLY: {
      const list = entries(a);
      if (typeof list === 'string') return bad(list);
      return ok({ type: type === MSG.SYNC ? 'sync' : 'sync-reply', entries: list });
    }
    default:
      return {
        ok: false,
        reason: `unknown membership message type ${typeof type === 'number' ? type : typeof type}`,
        unknown: true,
      };
  }
}

/** The wire form of a membership message (what `decodeMembership` reads back). */
export function encodeMembership(m: MembershipMessage): unknown[] {
  switch (m.type) {
    case 'ping':
      return [MSG.PING, m.seq, m.target];
    case 'ping-req':
      return [MSG.PING_REQ, m.seq, m.target];
    case 'ack':
      return [MSG.ACK, m.seq];
    case 'nack':
      return [MSG.NACK, m.seq];
    case 'alive':
      return [MSG.ALIVE, m.name, m.incarnation, m.address.host, m.address.port];
    case 'suspect':
    case 'down':
      return [m.type === 'suspect' ? MSG.SUSPECT : MSG.DOWN, m.name, m.incarnation, m.by];
    case 'leave':
      return [MSG.LEAVE, m.name, m.incarnation];
    case 'sync':
    case 'sync-reply':
      return [
        m.type === 'sync' ? MSG.SYNC : MSG.SYNC_REPLY,
        m.entries.map((e) => [
          e.name,
          e.incarnation,
          STATUS_CODES.indexOf(e.status),
          e.address.host,
          e.address.port,
        ]),
      ];
  }
}
