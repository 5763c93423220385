// The wire messages of `node.consensus` and their decoders: every Raft message and client request
// from another node goes through here (shape, types, bounds, and `from` bound to the real sender)
// before the Raft core or the state machine sees it.
import type { Decoded } from '../dist/wire.js';
import type { Entry, Message, Snapshot } from './raft/raft.js';

export const COORD_KINDS = {
  /** Raft messages between group members (SEND). */
  raft: 'coord:raft',
  /** Client requests to a member, answered by the leader or with a redirect (REQUEST). */
  request: 'coord:req',
} as const;

export interface CoordLimits {
  /** Longest key, lock, group or barrier name, UTF-16 units. Default 1024. */
  maxKeyLength: number;
  /** Most entries in one append message. Default 256. */
  maxEntriesPerMessage: number;
  /** Most members a configuration may name. Default 7. */
  maxVoters: number;
}

export const COORD_LIMITS: Readonly<CoordLimits> = Object.freeze({
  maxKeyLength: 1024,
  maxEntriesPerMessage: 256,
  maxVoters: 7,
});

/** A client request (`op` read ones are served by read index, the rest go through the log). */
export type Request =
  | { id: string; t: 'get'; key: string }
  | { id: string; t: 'barrier'; name: string }
  | { id: string; t: 'cmd'; cmd: unknown }
  /** Single-server membership change of the group. */
  | { id: string; t: 'conf'; op: 'add' | 'remove'; node: string };

export type Response = { ok: true; result: unknown } | { ok: false; redirect: string | null };

const fail = (reason: string) => ({ ok: false as const, reason });
const isNat = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;

function decodeEntry(v: unknown): Entry | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Record<string, unknown>;
  if (!isNat(e.term) || !isNat(e.index) || e.index === 0) return undefined;
  if (e.type !== 'normal' && e.type !== 'conf' && e.type !== 'noop') return undefined;
  if (e.type === 'conf' && !isVoterSet((e.data as { voters?: unknown })?.voters)) return undefined;
  return { term: e.term, index: e.index, type: e.type, data: e.data };
}

function isVoterSet(v: unknown): v is string[] {
  return (
    Array.isArray(v) &&
    v.length <= COORD_LIMITS.maxVoters &&
    v.every((x) => isStr(x, 256)) &&
    new Set(v).size === v.length
  );
}

function decodeSnapshot(v: unknown): Snapshot | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const s = v as Record<string, unknown>;
  if (!isNat(s.index) || !isNat(s.term) || !isVoterSet(s.voters)) return undefined;
  return { index: s.index, term: s.term, voters: s.voters, data: s.data };
}

/** Decodes a Raft message from `from` to `self`; `from` must be the real sender. */
export function decodeRaft(
  v: unknown,
  from: string,
  self: string,
  lim: CoordLimits,
): Decoded<Message> {
  if (typeof v !== 'object' || v === null) return fail('not an object');
  const m = v as Record<string, unknown>;
  if (m.from !== from || m.to !== self) return fail('from/to do not match the connection');
  if (!isNat(m.term)) return fail('bad term');
  switch (m.t) {
    case 'vote':
      if (
        typeof m.pre !== 'boolean' ||
        !isNat(m.lastIndex) ||
        !isNat(m.lastTerm) ||
        (m.transfer !== undefined && typeof m.transfer !== 'boolean')
      )
        return fail('bad vote');
      break;
    case 'timeoutNow':
      return { ok: true, value: { t: 'timeoutNow', term: m.term, from, to: self } };
    case 'voteResp':
      if (typeof m.pre !== 'boolean' || typeof m.granted !== 'boolean') return fail('bad voteResp');
      break;
    case 'app': {
      if (
        !isNat(m.prevIndex) ||
        !isNat(m.prevTerm) ||
        !isNat(m.commit) ||
        !Array.isArray(m.entries)
      )
        return fail('bad app');
      if (m.entries.length > lim.maxEntriesPerMessage) return fail('too many entries');
      const es: Entry[] = [];
      for (let i = 0; i < m.entries.length; i++) {
        const e = decodeEntry(m.entries[i]);
        // Entries must be consecutive after prevIndex (the core relies on it).
        if (!e || e.index !== m.prevIndex + 1 + i) return fail('bad entry');
        es.push(e);
      }
      return { ok: true, value: { ...(m as unknown as Message & { t: 'app' }), entries: es } };
    }
    case 'appResp':
      if (!isNat(m.index) || typeof m.reject !== 'boolean' || !isNat(m.hint))
        return fail('bad appResp');
      break;
    case 'hb':
      if (!isNat(m.commit) || !isNat(m.ctx)) return fail('bad hb');
      break;
    case 'hbResp':
      if (!isNat(m.ctx)) return fail('bad hbResp');
      break;
    case 'snap': {
      const s = decodeSnapshot(m.snapshot);
      if (!s) return fail('bad snapshot');
      return { ok: true, value: { t: 'snap', term: m.term, from, to: self, snapshot: s } };
    }
    default:
      return fail('unknown type');
  }
  return { ok: true, value: m as unknown as Message };
}

export function decodeRequest(v: unknown, lim: CoordLimits): Decoded<Request> {
  if (typeof v !== 'object' || v === null) return fail('not an object');
  const r = v as Record<string, unknown>;
  if (!isStr(r.id, 128)) return fail('bad id');
  if (r.t === 'get')
    return isStr(r.key, lim.maxKeyLength) ? { ok: true, value: r as Request } : fail('bad key');
  if (r.t === 'conf')
    return (r.op === 'add' || r.op === 'remove') && isStr(r.node, 256)
      ? { ok: true, value: r as Request }
      : fail('bad conf');
  if (r.t === 'barrier')
    return isStr(r.name, lim.maxKeyLength) ? { ok: true, value: r as Request } : fail('bad name');
  if (r.t !== 'cmd' || typeof r.cmd !== 'object' || r.cmd === null) return fail('bad request');
  const c = r.cmd as Record<string, unknown>;
  const nameOk = (x: unknown) => isStr(x, lim.maxKeyLength);
  switch (c.op) {
    case 'put':
      if (!nameOk(c.key) || c.value === undefined) return fail('bad put');
      break;
    case 'del':
      if (!nameOk(c.key)) return fail('bad del');
      break;
    case 'cas':
      if (!nameOk(c.key) || !isNat(c.rev) || c.value === undefined) return fail('bad cas');
      break;
    case 'lock':
      if (!nameOk(c.name) || !isStr(c.owner, 512) || !isNat(c.ttlMs) || c.ttlMs === 0)
        return fail('bad lock');
      break;
    case 'renew':
      if (!nameOk(c.name) || !isNat(c.token) || !isNat(c.ttlMs)) return fail('bad renew');
      break;
    case 'unlock':
      if (!nameOk(c.name) || !isNat(c.token)) return fail('bad unlock');
      break;
    case 'arrive':
      if (!nameOk(c.name) || !isStr(c.node, 256)) return fail('bad arrive');
      break;
    default:
      return fail('unknown command');
  }
  return { ok: true, value: { id: r.id as string, t: 'cmd', cmd: c } };
}
