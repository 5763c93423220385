// The wire half of the actor runtime: the shape of actor messages between nodes (encoders for what
// this node sends), the ONE decoder every inbound actor message goes through (shape, bounds and
// ownership checked before anything changes), and the endpoint that applies decoded messages to
// the local ActorSystem. docs/protocol.md has the tables; docs/actors.md the trust rules.
import { randomBytes } from 'node:crypto';
import { type ErrorCode, FoundationError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import {
  CallEnvelope,
  CallRefusal,
  CastEnvelope,
  ContextEnvelope,
  type ReplySink,
} from './actor.js';
import type { ExitReason } from './behaviour.js';
import { Pid, type PidLike } from './pid.js';
import type { ActorSystem } from './system.js';

/** How the system reaches other nodes (implemented by the node over its clusters' messengers). */
export interface RemoteRouter {
  /**
   * One-way. Throws (coded) when the node is not reachable. `lane`: the sending actor's id (0 for
   * the node itself); one lane's messages to a node arrive in send order whatever their size.
   */
  send(node: string, kind: string, payload: unknown, lane: number): void;
  /**
   * Request/response; rejects with coded errors (node down, ...), and with
   * `timeoutError(subject, timeoutMs)` when no reply came within `timeoutMs`. Ordered in `lane`.
   */
  request(
    node: string,
    kind: string,
    payload: unknown,
    timeoutMs: number,
    lane: number,
    timeoutError?: (subject: unknown, timeoutMs: number) => Error,
    subject?: unknown,
  ): Promise<unknown>;
}

/** Wire message kinds of the actor layer (node-level messaging kinds). */
export const ACTOR_KINDS = {
  send: 'actor:send',
  deliver: 'actor:deliver',
  call: 'actor:call',
  cast: 'actor:cast',
  signal: 'actor:signal',
} as const;

// ---- bounds (named, so docs/protocol.md and the tests can cite them) ----

/** Longest node name in a pid (the handshake allows no longer). */
export const MAX_NODE_NAME = 255;
/** Longest registered name a remote message may address. */
export const MAX_ACTOR_NAME = 1024;
/** Longest monitor ref accepted (this node makes 16-character refs). */
export const MAX_REF = 64;
/** Exit-reason strings and error messages longer than this are cut (characters). */
export const MAX_REASON = 4096;
/** An error reason's `name` and `code` longer than this are dropped (characters). */
const MAX_REASON_TAG = 255;
/**
 * Default budget of system messages (EXIT, DOWN) from one node that may wait in one actor's
 * mailbox. Legitimate traffic needs one per link or monitor that node holds on the actor.
 */
export const DEFAULT_SIGNAL_BUDGET = 1024;
/** Refusals from one node are logged once, then at most once per this many ms, with a count. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

// ---- monitor refs ----

/** 96 random bits per ref: not guessable by another node, so a ref is a capability. */
const REF_BYTES = 12;
const REF_POOL = REF_BYTES * 512;
let refPool = Buffer.alloc(0);
let refAt = 0;

/** A fresh monitor ref: 16 base64url characters from crypto.randomBytes (pooled, one syscall per 512 refs). */
export function monitorRef(): string {
  if (refAt + REF_BYTES > refPool.length) {
    refPool = randomBytes(REF_POOL);
    refAt = 0;
  }
  const ref = refPool.toString('base64url', refAt, refAt + REF_BYTES);
  refAt += REF_BYTES;
  return ref;
}

// ---- what goes on the wire ----

/** An actor on the receiving node: by id, or by its registered name. */
export type RemoteRef = number | string;
type WirePid = [node: string, id: number];

const wirePid = (p: PidLike): WirePid => [p.node, p.id];

function cut(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}

/**
 * An exit reason as it travels: strings stay strings, errors (and error-shaped objects) become
 * `{message, code?, name?}` (no `data`, which might not encode), anything else 'unknown' (the
 * receiving node could not rebuild it anyway). Bounded by MAX_REASON.
 */
export function reasonOut(r: ExitReason): unknown {
  if (typeof r === 'string') return cut(r, MAX_REASON);
  const shaped = errorShaped(r);
  // An Error without a code travels as code 'ERR', as serializeError has it (docs/actors.md).
  if (shaped && shaped.code === undefined && r instanceof Error) shaped.code = 'ERR';
  return shaped ?? 'unknown';
}

function errorShaped(v: unknown): { message: string; code?: string; name?: string } | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { message, code, name } = v as { message?: unknown; code?: unknown; name?: unknown };
  if (typeof message !== 'string') return undefined;
  const out: { message: string; code?: string; name?: string } = {
    message: cut(message, MAX_REASON),
  };
  if (typeof code === 'string' && code.length <= MAX_REASON_TAG) out.code = code;
  if (typeof name === 'string' && name.length <= MAX_REASON_TAG && name !== 'Error')
    out.name = name;
  return out;
}

/** Payloads of the actor kinds, as this node sends them (positional arrays keep frames small). */
// `ctx`: the sender's request context (opaque here), a trailing field only when there is one.
export const encode = {
  /** actor:send, actor:cast, actor:deliver */
  message: (to: RemoteRef, msg: unknown, ctx?: unknown): unknown[] =>
    ctx === undefined ? [to, msg] : [to, msg, ctx],
  /** actor:call; `from` is the calling actor, on this node. */
  call: (to: RemoteRef, msg: unknown, from: PidLike | undefined, ctx?: unknown): unknown[] =>
    ctx === undefined
      ? [to, msg, from ? wirePid(from) : null]
      : [to, msg, from ? wirePid(from) : null, ctx],
  link: (from: PidLike, to: number): unknown[] => ['link', wirePid(from), to],
  unlink: (from: PidLike, to: number): unknown[] => ['unlink', wirePid(from), to],
  exit: (from: PidLike, to: number, reason: ExitReason, viaLink: boolean): unknown[] => [
    'exit',
    wirePid(from),
    to,
    reasonOut(reason),
    viaLink ? 1 : 0,
  ],
  monitor: (ref: string, to: number): unknown[] => ['monitor', ref, to],
  demonitor: (ref: string, to: number): unknown[] => ['demonitor', ref, to],
  down: (ref: string, pid: PidLike, reason: ExitReason): unknown[] => [
    'down',
    ref,
    wirePid(pid),
    reasonOut(reason),
  ],
};

// ---- what comes off the wire ----

/** A signal between nodes, decoded. Pids it speaks for are on the sending node (checked). */
export type Signal =
  | { type: 'link'; from: Pid; to: number }
  | { type: 'unlink'; from: Pid; to: number }
  | { type: 'exit'; from: Pid; to: number; reason: ExitReason; viaLink: boolean }
  | { type: 'monitor'; ref: string; to: number }
  | { type: 'demonitor'; ref: string; to: number }
  | { type: 'down'; ref: string; pid: Pid; reason: ExitReason };

/**
 * An inbound actor message, decoded. `ctx`: the sender's request context, opaque here (checked,
 * and ignored when invalid, by the ContextPropagation that runs the handler in it).
 */
export type Inbound =
  | { kind: 'send' | 'cast' | 'deliver'; to: RemoteRef; msg: unknown; ctx: unknown }
  | { kind: 'call'; to: RemoteRef; msg: unknown; from: Pid | undefined; ctx: unknown }
  | { kind: 'signal'; signal: Signal };

export type Decoded =
  | { ok: true; value: Inbound }
  | { ok: false; code: 'FND_ERR_ACTOR_WIRE' | 'FND_ERR_SIGNAL_FORGED'; detail: string };

const KIND_OF: ReadonlyMap<string, Inbound['kind']> = new Map<string, Inbound['kind']>([
  [ACTOR_KINDS.send, 'send'],
  [ACTOR_KINDS.cast, 'cast'],
  [ACTOR_KINDS.deliver, 'deliver'],
  [ACTOR_KINDS.call, 'call'],
  [ACTOR_KINDS.signal, 'signal'],
]);

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNodeName = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_NAME;
/** A request context is an object (its fields are checked by the propagation that reads it). */
const isContext = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRef = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_REF;

function pidIn(v: unknown): Pid | undefined {
  return Array.isArray(v) && v.length === 2 && isNodeName(v[0]) && isId(v[1])
    ? new Pid(v[0], v[1])
    : undefined;
}

function targetIn(v: unknown): RemoteRef | undefined {
  if (isId(v)) return v;
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ACTOR_NAME ? v : undefined;
}

/** An exit reason from the wire: a bounded string, a bounded `{message, code?, name?}`, else 'unknown'. */
export function reasonIn(v: unknown): ExitReason {
  if (typeof v === 'string') return cut(v, MAX_REASON);
  return errorShaped(v) ?? 'unknown';
}

const bad = (detail: string): Decoded => ({ ok: false, code: 'FND_ERR_ACTOR_WIRE', detail });
const forged = (detail: string): Decoded => ({ ok: false, code: 'FND_ERR_SIGNAL_FORGED', detail });

/**
 * Decodes one inbound actor message of messaging kind `kind` from the authenticated member
 * `sender`. Pure: never throws, changes nothing. Checks the shape and bounds of every field, and
 * ownership where the message itself shows it: a link, unlink, exit or call speaks for a pid that
 * must live on `sender`, a DOWN reports on a pid of `sender`. (Whether `sender` holds the monitor
 * a ref names is checked against state, by the endpoint.)
 */
export function decodeActorMessage(kind: unknown, payload: unknown, sender: string): Decoded {
  const k = typeof kind === 'string' ? KIND_OF.get(kind) : undefined;
  if (k === undefined) return bad('unknown actor message kind');
  if (!Array.isArray(payload)) return bad(`${kind}: payload is not an array`);
  if (k === 'signal') return decodeSignal(payload, sender);
  const to = targetIn(payload[0]);
  if (to === undefined) return bad(`${kind}: target is not an actor id or a name`);
  if (k !== 'call') {
    if (payload.length !== 2 && !(payload.length === 3 && isContext(payload[2])))
      return bad(`${kind}: expected [target, message, context?]`);
    return { ok: true, value: { kind: k, to, msg: payload[1], ctx: payload[2] } };
  }
  if (payload.length !== 3 && !(payload.length === 4 && isContext(payload[3])))
    return bad(`${kind}: expected [target, message, caller, context?]`);
  let from: Pid | undefined;
  if (payload[2] !== null) {
    from = pidIn(payload[2]);
    if (!from) return bad(`${kind}: caller is not a pid`);
    if (from.node !== sender) return forged(`call on behalf of ${from}, a pid of another node`);
  }
  return { ok: true, value: { kind: 'call', to, msg: payload[1], from, ctx: payload[3] } };
}

function decodeSignal(s: unknown[], sender: string): Decoded {
  const type = s[0];
  const ok = (signal: Signal): Decoded => ({ ok: true, value: { kind: 'signal', signal } });
  switch (type) {
    case 'link':
    case 'unlink': {
      if (s.length !== 3) return bad(`${type}: expected [type, pid, id]`);
      const from = pidIn(s[1]);
      if (!from || !isId(s[2])) return bad(`${type}: bad pid or id`);
      if (from.node !== sender) return forged(`${type} on behalf of ${from}`);
      return ok({ type, from, to: s[2] });
    }
    case 'exit': {
      // [exit, from, to, reason] or [..., viaLink 0|1]
      if (s.length !== 4 && s.length !== 5)
        return bad('exit: expected [type, pid, id, reason, viaLink]');
      const from = pidIn(s[1]);
      if (!from || !isId(s[2])) return bad('exit: bad pid or id');
      const via = s.length === 5 ? s[4] : 0;
      if (via !== 0 && via !== 1) return bad('exit: viaLink is not 0 or 1');
      if (from.node !== sender) return forged(`exit signal on behalf of ${from}`);
      return ok({ type, from, to: s[2], reason: reasonIn(s[3]), viaLink: via === 1 });
    }
    case 'monitor':
    case 'demonitor': {
      if (s.length !== 3) return bad(`${type}: expected [type, ref, id]`);
      if (!isRef(s[1]) || !isId(s[2])) return bad(`${type}: bad ref or id`);
      return ok({ type, ref: s[1], to: s[2] });
    }
    case 'down': {
      if (s.length !== 4) return bad('down: expected [type, ref, pid, reason]');
      const pid = pidIn(s[2]);
      if (!isRef(s[1]) || !pid) return bad('down: bad ref or pid');
      if (pid.node !== sender) return forged(`DOWN about ${pid}, a pid of another node`);
      return ok({ type, ref: s[1], pid, reason: reasonIn(s[3]) });
    }
    default:
      return bad('unknown signal type');
  }
}

// ---- applying inbound messages ----

export type Refusal = 'FND_ERR_ACTOR_WIRE' | 'FND_ERR_SIGNAL_FORGED' | 'FND_ERR_SIGNAL_OVERFLOW';

/** Inbound actor messages refused since start, by reason. */
export interface RefusedCounts {
  /** Malformed or out of bounds (FND_ERR_ACTOR_WIRE). */
  malformed: number;
  /** Spoke for a pid or monitor the sender does not own (FND_ERR_SIGNAL_FORGED). */
  forged: number;
  /** Dropped by a full per-node system-message budget (FND_ERR_SIGNAL_OVERFLOW). */
  overflow: number;
}

const COUNTER: Record<Refusal, keyof RefusedCounts> = {
  FND_ERR_ACTOR_WIRE: 'malformed',
  FND_ERR_SIGNAL_FORGED: 'forged',
  FND_ERR_SIGNAL_OVERFLOW: 'overflow',
};

interface LogState {
  at: number;
  suppressed: number;
}

/**
 * Applies decoded actor messages from other nodes to the local system, and counts and logs what
 * it refuses. Refusals affect only the offending message: they are counted, and logged once per
 * (node, code) and then at most every 10 s with the number suppressed, so a flood cannot turn
 * into a flood of log lines.
 */
export class RemoteEndpoint {
  readonly refused: RefusedCounts = { malformed: 0, forged: 0, overflow: 0 };
  private readonly logged = new Map<string, LogState>();

  constructor(
    private readonly system: ActorSystem,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** A one-way actor message (send, cast, signal) from member `from`. Never throws. */
  handle(kind: string, payload: unknown, from: string): void {
    const d = decodeActorMessage(kind, payload, from);
    if (!d.ok) {
      this.refuse(d.code, from, d.detail);
      return;
    }
    const m = d.value;
    if (m.kind === 'signal') {
      this.signal(m.signal, from);
      return;
    }
    if (m.kind !== 'send' && m.kind !== 'cast') {
      this.refuse('FND_ERR_ACTOR_WIRE', from, `${kind} must be sent as a request`);
      return;
    }
    const actor = this.system.targetOf(m.to);
    if (!actor) return; // like Erlang: a message to a dead or unknown actor is dropped
    try {
      const msg = m.kind === 'cast' ? new CastEnvelope(m.msg) : m.msg;
      const ctx = this.contextOf(m.ctx);
      actor.enqueue(ctx === undefined ? msg : new ContextEnvelope(msg, ctx));
    } catch (err) {
      this.log.debug(
        { from, pid: actor.pid.toString(), err: (err as Error).message },
        'remote message refused',
      );
    }
  }

  /**
   * A request (deliver with ack, or call) from member `from`, answered through `sink` (a call when
   * its actor replies). Throws coded errors back instead when it is refused at once.
   */
  handleRequest(kind: string, payload: unknown, from: string, sink: ReplySink): void {
    const d = decodeActorMessage(kind, payload, from);
    if (!d.ok) {
      this.refuse(d.code, from, d.detail);
      throw new FoundationError(d.code, d.detail);
    }
    const m = d.value;
    if (m.kind !== 'deliver' && m.kind !== 'call') {
      this.refuse('FND_ERR_ACTOR_WIRE', from, `${kind} is not a request kind`);
      throw new FoundationError('FND_ERR_ACTOR_WIRE', `${kind} is not a request kind`);
    }
    const actor = this.system.targetOf(m.to);
    if (!actor?.alive) {
      throw new FoundationError(
        'FND_ERR_NOPROC',
        `no actor ${describe(m.to)} on ${this.system.nodeName}`,
        {
          target: typeof m.to === 'number' ? { node: this.system.nodeName, id: m.to } : m.to,
        },
      );
    }
    const ctx = this.contextOf(m.ctx);
    if (m.kind !== 'call') {
      // deliver: the ack is the reply (FND_ERR_MAILBOX_FULL when refused)
      actor.enqueue(ctx === undefined ? m.msg : new ContextEnvelope(m.msg, ctx));
      sink.reply(true, null);
      return;
    }
    const call = new CallEnvelope(m.msg, m.from ?? { node: from, id: 0 }, sink);
    // FND_ERR_MAILBOX_FULL thrown back to the caller when refused.
    actor.enqueue(ctx === undefined ? call : new ContextEnvelope(call, ctx));
  }

  /** A received request context, or undefined when this system does not propagate contexts. */
  private contextOf(ctx: unknown): unknown {
    return this.system.propagation === undefined ? undefined : ctx;
  }

  private signal(s: Signal, from: string): void {
    const sys = this.system;
    switch (s.type) {
      case 'link': {
        const actor = sys.actorById(s.to);
        if (!actor?.alive) {
          // Over the link the requester already holds on its side: it is removed there.
          sys.sendSignal(from, encode.exit(sys.localPid(s.to), s.from.id, 'noproc', true));
          return;
        }
        sys.acceptRemoteLink(actor, s.from);
        return;
      }
      case 'unlink':
        sys.actorById(s.to)?.removeLink(s.from);
        return;
      case 'exit':
        sys.signalExit(s.from, sys.localPid(s.to), s.reason, s.viaLink, from);
        return;
      case 'monitor': {
        const actor = sys.actorById(s.to);
        if (!actor?.alive) {
          sys.sendSignal(from, encode.down(s.ref, sys.localPid(s.to), 'noproc'));
          return;
        }
        if (!sys.acceptRemoteMonitor(actor, s.ref, from))
          this.refuse('FND_ERR_SIGNAL_FORGED', from, 'monitor reusing a ref another node holds');
        return;
      }
      case 'demonitor': {
        const actor = sys.actorById(s.to);
        if (actor && !sys.dropRemoteMonitor(actor, s.ref, from))
          this.refuse('FND_ERR_SIGNAL_FORGED', from, 'demonitor of a monitor another node holds');
        return;
      }
      case 'down':
        if (!sys.remoteDown(s.ref, s.pid, s.reason, from))
          this.refuse('FND_ERR_SIGNAL_FORGED', from, `DOWN for a monitor not on ${s.pid}`);
        return;
    }
  }

  /** Counts a refused inbound message and logs it (rate-limited per node and code). */
  refuse(code: Refusal, node: string, detail: string): void {
    this.refused[COUNTER[code]]++;
    const key = `${code}\u0000${node}`;
    const now = this.clock.now();
    const state = this.logged.get(key);
    if (state && now - state.at < REFUSAL_LOG_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.logged.set(key, { at: now, suppressed: 0 });
    this.log.warn(
      { code: code as ErrorCode, from: node, detail, suppressed },
      'refused an actor message from a member',
    );
  }

  /** `node` is gone: forget its log state. */
  nodeDown(node: string): void {
    for (const key of this.logged.keys())
      if (key.endsWith(`\u0000${node}`)) this.logged.delete(key);
  }
}

function describe(to: RemoteRef): string {
  return typeof to === 'number' ? `#${to}` : `"${to}"`;
}

/**
 * The answer of a built-in service to a request it does not understand: the call rejects with
 * FND_ERR_BAD_REQUEST naming what the service accepts, and the service keeps running. The request
 * itself is never echoed (it may not even be encodable, or printable: a BigInt, a huge string).
 */
export function badRequest(service: string, accepts: readonly string[]): CallRefusal {
  return new CallRefusal(
    new FoundationError(
      'FND_ERR_BAD_REQUEST',
      `${service} accepts ${accepts.map((a) => `'${a}'`).join(', ')} only`,
      { service, accepts: [...accepts] },
    ),
  );
}
