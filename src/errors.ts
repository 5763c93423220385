// The one error registry. Every error Foundation raises is a FoundationError with a literal
// `code` from this table; callers match on `code`, never on message text. docs/errors.md lists
// the same codes (a test keeps the two in sync).

/** Code → what it means and what to do about it. Append only; codes are part of the API. */
export const ERRORS = {
  FND_ERR_INVALID_OPTION:
    'An option passed to Foundation is invalid; the message names the field and what is allowed.',
  FND_ERR_INSECURE_BIND:
    'The node would listen on a non-loopback address without a cluster secret. Pass `secret`, bind to 127.0.0.1, or opt out explicitly with `insecure: true`.',
  FND_ERR_LISTEN:
    'The node could not listen on the requested host/port (in use, or not an address of this machine).',
  FND_ERR_HANDSHAKE_SECRET:
    'The peer does not know the same cluster secret (HMAC challenge failed). Give every node of the cluster the same `secret`.',
  FND_ERR_HANDSHAKE_CLUSTER:
    'The peer belongs to a different cluster name. Check the `cluster` option on both nodes.',
  FND_ERR_HANDSHAKE_VERSION:
    'The peer speaks no protocol version in common with this node. Upgrade the older node.',
  FND_ERR_HANDSHAKE_DUPLICATE_NAME:
    'Another live node of the cluster already uses this node name. Give each node a unique `name`.',
  FND_ERR_HANDSHAKE_PROTOCOL:
    'The peer sent something other than a Foundation handshake (bad magic or unexpected message). It is probably not a Foundation node.',
  FND_ERR_HANDSHAKE_TIMEOUT: 'The peer did not complete the handshake in time.',
  FND_ERR_TLS_UNKNOWN_CA:
    "A TLS certificate is not signed by a CA the other side trusts: this node refused the peer's certificate, or the peer refused this node's (`data.by` says which). Issue every node's certificate from a CA listed in every node's `tls.ca`.",
  FND_ERR_TLS_NO_CERT:
    'The dialling side presented no TLS client certificate, and mutual TLS requires one. Give the dialling node `tls.key` and `tls.cert`.',
  FND_ERR_TLS_IDENTITY:
    "The accepting node's TLS certificate does not name the address it was dialled at (`tls.checkServerIdentity` is on). Add that IP or host name to the certificate's subjectAltName, or turn the check off.",
  FND_ERR_TLS_HANDSHAKE:
    'The TLS handshake failed for another reason (the peer does not speak TLS 1.3, a certificate expired, or the handshake was too slow); `data.reason` carries the TLS error code.',
  FND_ERR_FRAME_TOO_LARGE:
    'A frame larger than the configured maximum frame size was received or sent; the connection is closed.',
  FND_ERR_FRAME_DECODE: 'A frame could not be decoded; the connection is closed.',
  FND_ERR_HANDSHAKE_CLOSED:
    'The connection closed during the handshake (the peer stopped or crashed, or dropped the connection without saying why). It is retried like any failed dial.',
  FND_ERR_RECORD_AUTH:
    'A record on an authenticated connection failed verification: its bytes were forged, altered, dropped, reordered or replayed on the way. The connection is closed; nothing from it was delivered.',
  FND_ERR_INBOUND_MEMORY:
    'A large frame would take the bytes held in partly received frames, across all inbound connections, past `maxInboundBufferBytes`; that connection is closed. Raise the limit if many large transfers legitimately arrive at once.',
  FND_ERR_BACKPRESSURE:
    'The outbound queue to this peer is full (the peer or network is slower than the sender). Retry later or slow down.',
  FND_ERR_REQUEST_TIMEOUT: 'No reply arrived within the timeout.',
  FND_ERR_NODE_UNREACHABLE:
    'Every connection to the target node closed and it did not answer a re-dial (its process probably stopped or was killed); the request was rejected at once instead of waiting for failure detection. Retry elsewhere; memberDown follows if it does not come back.',
  FND_ERR_NODE_DOWN:
    'The target node left the cluster or was declared down; the request cannot complete.',
  FND_ERR_UNKNOWN_NODE: 'The target node is not a member of this cluster.',
  FND_ERR_NO_HANDLER: 'The target node has no handler registered for this message kind.',
  FND_ERR_REMOTE: 'The remote handler threw; `data` carries the remote error code and message.',
  FND_ERR_NODE_STOPPED: 'The node has been stopped; start a new one.',
  FND_ERR_DISCOVERY: 'A discovery strategy failed; the message says which and why.',
  FND_ERR_UNSAFE_PATH:
    'A directory or file Foundation keeps private state in (the per-user secret, `local` discovery records) is owned by another user, open to group/others, or a symbolic link; it is refused, not used. The message names the path and the fix.',
  FND_ERR_LOCAL_SECRET:
    'The per-user secret (used on loopback when no `secret` is given) cannot be read or created. Fix or delete the file the message names, or pass `secret` / FOUNDATION_SECRET.',
  FND_ERR_CONNECT:
    'No connection could be opened to that address (refused, unreachable, timed out, or closed before any handshake). Check that a node listens there.',
  FND_ERR_DIAL_RATE_LIMITED:
    'This node refused to open a connection: too many dials (global rate) or that address keeps failing (per-address backoff). It is retried later; data.retryInMs says when.',
  FND_ERR_MEMBERSHIP_MESSAGE:
    'A member sent a membership message that is malformed or outside the bounds (names, incarnations, ports, entry counts); it was ignored and nothing changed.',
  FND_ERR_INCARNATION_RANGE:
    "An incarnation number lies too far ahead of this node's wall clock to be genuine; the handshake or message was refused. Check both nodes' clocks.",
  FND_ERR_ENCODE:
    'The value cannot be serialised with msgpack (e.g. a function, a symbol or a circular structure).',
  FND_ERR_UNKNOWN_CLUSTER:
    'This node is not a member of the named cluster; node.clusters() lists the ones it is in.',
  FND_ERR_AMBIGUOUS_CLUSTER:
    'This node is in several clusters, so the call must name one: use node.cluster(name).',
  FND_ERR_NOPROC:
    'No such actor (it never existed, or has exited). Monitor actors to learn when they exit.',
  FND_ERR_CALL_TIMEOUT:
    'The actor did not reply within the call timeout. It may be busy, blocked, or lost the message.',
  FND_ERR_ACTOR_EXITED:
    'The actor exited (crashed or was stopped) before replying; data.reason says why.',
  FND_ERR_MAILBOX_FULL:
    "The actor's bounded mailbox is full and its overflow policy is 'reject' (or the call was dropped by a drop policy). Slow down or raise mailbox.max.",
  FND_ERR_NAME_TAKEN:
    'That name is already registered to another live actor. Unregister it first or pick another name.',
  FND_ERR_NAME_REFUSED:
    "A member refused a sync registration (one of its limits, or a timestamp too far ahead of its clock): the name is not registered. See the warning in that member's log.",
  FND_ERR_SUPERVISOR:
    'A supervisor operation failed: unknown child id, duplicate id, or the child could not start.',
  FND_ERR_POOL_CLOSED:
    'The worker-thread pool (or the ecosystem using it) has been closed; create a new one.',
  FND_ERR_ACTOR_WIRE:
    'A member sent an actor-layer message (actor:send/cast/deliver/call/signal) that is malformed or out of bounds. It was dropped (a request gets this error back); nothing changed. Usually a bug or a version mismatch on the sending node.',
  FND_ERR_SIGNAL_FORGED:
    'A member sent an actor signal or call on behalf of a pid or monitor it does not own (only the node a pid lives on may link, unlink, exit or call for it; only the node that set a monitor may cancel or fire it). It was dropped; nothing changed.',
  FND_ERR_SIGNAL_OVERFLOW:
    "An actor already holds its budget of undelivered system messages (EXIT, DOWN) from one node; further signals from that node are dropped and counted until the actor catches up. Signals from other nodes are unaffected. Raise the runtime's `signalBudget` if a node legitimately has that many links and monitors on one actor.",
  FND_ERR_BAD_REQUEST:
    'A built-in service got a request it does not understand. The message says what it accepts; the service keeps running.',
  FND_ERR_DIST_MESSAGE:
    'A message of the cluster-wide layer (registry, groups, pub/sub, remote spawn, distributed supervisor) failed validation and was dropped; the sender runs a different version or is misbehaving.',
  FND_ERR_DIST_LIMIT:
    'A cluster-wide limit would be exceeded (names, group joins or subscriptions per node; see docs/distributed.md). Unregister or leave first, or raise the limit.',
  FND_ERR_UNKNOWN_KIND:
    'No behaviour is defined under that kind on the target node. Call node.define(kind, factory) on every node that may run it.',
  FND_ERR_VALIDATION:
    "A service action's arguments failed its schema; data.field names the first bad field (e.g. '0.name') and data.issues lists all. Fix the arguments; the action did not run.",
  FND_ERR_SERVICE_NOT_FOUND:
    'No node of the cluster offers that service (or that action of it, or that version). node.services.list() shows what the catalogue holds.',
  FND_ERR_SERVICE_UNAVAILABLE:
    'The service exists but none of its endpoints can take the call now: their nodes are suspect or down, they report unhealthy, or their circuit breakers are open. Retry later.',
  FND_ERR_SERVICE_ACTION:
    "The service action threw; data.service, data.action and data.cause (the thrown error's code and message) say what. data.retryable is true when the handler marked the error retryable.",
  FND_ERR_DEADLINE_EXCEEDED:
    "The call's deadline (its timeout, or the deadline of the call it is nested in) passed before it could be sent or completed. Raise the timeout of the outermost call.",
  FND_ERR_BULKHEAD_FULL:
    "The service's bulkhead is full (maxConcurrent calls running and maxQueue waiting) on the serving node; the action did not run. Another endpoint may take it; else slow down.",
  FND_ERR_RATE_LIMITED:
    "A rate limit is used up for now and the work did not run: a service's rate limit on its serving node (data.retryInMs says when points come back), or a protection key's limiter in node.protection.execute (data.retryAfterMs, data.key).",
  FND_ERR_SERVICE_MESSAGE:
    'A message of the service layer (catalogue entry, call, event or stream message) failed validation or exceeded a limit (docs/services.md) and was refused before any state changed.',
  FND_ERR_STREAM_CANCELLED:
    'The other side of a stream cancelled it (the consumer stopped reading, or the producer failed or stopped), or its node went down; data.reason says which.',
  FND_ERR_INVALID_ARGUMENT:
    'An argument to a Foundation API is invalid (wrong type, empty, out of range); the message names it.',
  FND_ERR_CONFIG_PATH:
    'The config path is malformed or names nothing in the configuration. Paths are dot-separated keys (`app.db.host`); check the spelling against `node.config.get()`.',
  FND_ERR_CONFIG_NOT_UPDATABLE:
    'The config path is not declared updatable. Add it (or a `prefix.*` pattern covering it) to `config.updatable` at start.',
  FND_ERR_CONFIG_INVALID:
    'The configuration does not satisfy its schema; `data.path` names the offending path and `data.issue` says what is expected. Nothing was changed.',
  FND_ERR_CONFIG_SOURCE:
    'A configuration source could not be read: the config file is missing, unreadable, not JSON or not a JSON object; `data.source` names the file.',
  FND_ERR_NOT_AVAILABLE:
    'This feature needs a layer the object was not connected to (a Config built outside a node: `setClusterWide` without the cluster-wide layer, `setWithConsensus` without the consensus group). Use node.config.',
  FND_ERR_CIRCUIT_OPEN:
    'The circuit breaker of this protection key is open after repeated failures: the call was not made. It lets a trial call through after `halfOpenAfter` ms.',
  FND_ERR_POOL_EXHAUSTED:
    "No resource of this protection key's pool became free within `acquireTimeoutMs`: the call was not made. Raise `pool.max` or the timeout, or shed load.",
  FND_ERR_UNKNOWN_PROTECTION:
    'No protection is configured under that key. Call node.protection.configure(key, {...}) first.',
  FND_ERR_EVENT_STORE:
    'The event store could not be opened or used: the SQLite file is corrupted, not a database, or not writable, or better-sqlite3 is not installed; `data.reason` says which. The file is left untouched.',
  FND_ERR_STATE_TYPE:
    'A replicated state object (node.state) is used as another CRDT kind than the one it was created as, or the operation does not fit its kind (an OR-map holds one value kind). Use a new name, or the handle of its kind.',
  FND_ERR_CONSENSUS_NOT_STARTED:
    'A node.consensus operation was called before node.consensus.start(), or after the node stopped. Start it (with the same members on every member node) first.',
  FND_ERR_CONSENSUS_NOT_MEMBER:
    'The operation needs a member of the consensus group (it reads the replicated state locally, like kv.watch). Call it on a member, or poll kv.get elsewhere.',
  FND_ERR_CONSENSUS_UNAVAILABLE:
    'No leader of the consensus group answered before the timeout: fewer than a majority of its members are up and connected, or an election is under way. Retry; check that a majority of the members run.',
  FND_ERR_CONSENSUS_TIMEOUT:
    'A lock stayed held by another node, or a barrier did not fill, before the timeout. Retry later or raise `timeout`.',
  FND_ERR_CONSENSUS_MESSAGE:
    'A consensus message or request from another node failed validation (shape, bounds, or it claimed another sender) and was dropped; a request gets this error back.',
  FND_ERR_CONSENSUS_NOT_LEADER:
    'The operation runs on the consensus group\'s leader (transferLeadership): this member does not lead now. Call it where `status().role` is "leader".',
  FND_ERR_CONSENSUS_UNSUPPORTED:
    'The configured consensus backend does not offer this operation (membership changes and leadership transfer are Raft-only: an etcd cluster is managed with etcdctl).',
  FND_ERR_STATE_LIMIT:
    'A replicated state limit would be exceeded (objects per node, units per object, value size, name length or a counter past a safe integer; see docs/state.md). Remove entries or raise the limit.',
  FND_ERR_MDNS_INACTIVE:
    "node.mdns was used but this cluster's discovery is not running the mdns strategy (another strategy was configured, `auto` chose or fell back to another, or the node stopped). Configure `discovery: { strategy: 'mdns' }`, or check `node.mdns.active` first.",
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** The plain shape an error takes on the wire. */
export interface SerializedError {
  code: string;
  message: string;
  data?: unknown;
}

export class FoundationError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown> | undefined;

  /** `detail` says what happened here; the registry's text (what to do) is appended. */
  constructor(
    code: ErrorCode,
    detail?: string,
    data?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(detail ? `${detail} [${code}] ${ERRORS[code]}` : `[${code}] ${ERRORS[code]}`, options);
    this.name = 'FoundationError';
    this.code = code;
    this.data = data;
  }

  /** Rebuilds an error received from another node, keeping its message as it was written. */
  static fromWire(
    code: ErrorCode,
    message: string,
    data?: Record<string, unknown>,
  ): FoundationError {
    const e = new FoundationError(code, undefined, data);
    e.message = message;
    return e;
  }

  toJSON(): SerializedError {
    return { code: this.code, message: this.message, data: this.data };
  }
}

export function isFoundationError(err: unknown, code?: ErrorCode): err is FoundationError {
  return err instanceof FoundationError && (code === undefined || err.code === code);
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Turns anything thrown into the wire shape, keeping a Foundation code when there is one. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof FoundationError) return err.toJSON();
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : 'ERR', message: err.message };
  }
  return { code: 'ERR', message: String(err) };
}
