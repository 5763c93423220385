// What an actor is made of: a behaviour (a plain message handler, or a GenServer-style object),
// the context it runs with, and the system messages it may receive (EXIT when trapping exits,
// DOWN from monitors).
import type { Pid, PidLike } from './pid.js';

/** Why an actor exited: 'normal', 'shutdown', 'killed', 'noproc', 'noconnection', or an error. */
export type ExitReason = string | Error | { name?: string; message: string; code?: string };

/** Delivered instead of dying when `trapExits` is on and a linked actor exits. */
export interface ExitMessage {
  type: 'EXIT';
  from: PidLike;
  reason: ExitReason;
}

/** Delivered once to the watcher when a monitored actor exits, never existed, or its node went down. */
export interface DownMessage {
  type: 'DOWN';
  ref: string;
  pid: PidLike;
  reason: ExitReason;
}

// EXIT and DOWN messages made by the runtime are remembered here, so a plain object that merely
// looks like one (`{type: 'EXIT', ...}` sent as an ordinary message, perhaps by another node) can
// be told apart: supervisors act only on the real ones. A WeakSet keeps the messages plain objects.
const SYSTEM_MESSAGES = new WeakSet<object>();

/**
 * Whether `m` is an EXIT or DOWN message the runtime itself delivered (from a link, an exit signal
 * or a monitor), not a look-alike someone sent.
 */
export function isSystemMessage(m: unknown): m is ExitMessage | DownMessage {
  return typeof m === 'object' && m !== null && SYSTEM_MESSAGES.has(m);
}

/** Internal (runtime only): marks a message the runtime is about to deliver as a system message. */
export function markSystemMessage<T extends ExitMessage | DownMessage>(m: T): T {
  SYSTEM_MESSAGES.add(m);
  return m;
}

/** Where a message can go: a pid, a locally registered name, or a name registered on another node. */
export type Target = PidLike | string | { name: string; node: string };

export interface CallOptions {
  /** Milliseconds to wait for the reply. Default 5000. */
  timeout?: number;
}

export interface MailboxOptions {
  /** Most messages waiting; unbounded when absent. */
  max: number;
  /** What a full mailbox does with a new message. 'reject' throws FND_ERR_MAILBOX_FULL at the sender. */
  overflow: 'reject' | 'drop-oldest' | 'drop-newest';
}

export interface SpawnOptions {
  /** Register the actor under this local name (released when it exits). */
  name?: string;
  /** Bound the mailbox. Default unbounded. */
  mailbox?: MailboxOptions;
  /** Turn exit signals from links into EXIT messages. Default false. */
  trapExits?: boolean;
  /** Link the new actor to this pid as it starts (spawn_link). */
  link?: PidLike;
}

/** What a behaviour can do; every call acts on behalf of `self`. */
export interface ActorContext {
  readonly self: Pid;
  /** Name of the node this actor runs on. */
  readonly node: string;
  send(to: Target, msg: unknown): void;
  /** Like send, but resolves once the message is in the target's mailbox (or rejects with why not). */
  sendAsync(to: Target, msg: unknown): Promise<void>;
  call<T = unknown>(to: Target, msg: unknown, opts?: CallOptions): Promise<T>;
  cast(to: Target, msg: unknown): void;
  spawn(behaviour: Behaviour, opts?: SpawnOptions): Pid;
  /** Watches `pid`; one DownMessage arrives with this ref. */
  monitor(pid: PidLike): string;
  demonitor(ref: string): void;
  link(pid: PidLike): void;
  unlink(pid: PidLike): void;
  /** Sends an exit signal to `pid` ('kill' cannot be trapped). */
  exit(pid: PidLike, reason: ExitReason): void;
  /** Registers this actor under a local name (FND_ERR_NAME_TAKEN if another live actor has it). */
  register(name: string): void;
  unregister(name: string): void;
  /** The pid registered under a local name, if any. */
  whereis(name: string): Pid | undefined;
  /** Ends this actor with `reason` (default 'normal') right after the current message (later messages are not handled). */
  stop(reason?: ExitReason): void;
  trapExits: boolean;
}

/**
 * A plain handler: gets every message (sends, casts, EXIT/DOWN system messages) and, for calls,
 * its return value (or the value its promise resolves to) is the reply. Messages are handled one
 * at a time: a returned promise is awaited before the next message. A throw or rejection ends the
 * actor with the error as its exit reason.
 */
export type MessageHandler = (msg: unknown, ctx: ActorContext) => unknown;

/**
 * A GenServer-style behaviour. State lives on the object (`this`). Every callback runs one at a
 * time and may be async; a throw ends the actor with the error as exit reason.
 */
export interface GenServer<Call = unknown, Cast = unknown, Reply = unknown> {
  /** Runs first; messages wait until it finishes. A throw means the actor never starts. */
  init?(ctx: ActorContext): unknown;
  /** Answers `call`; the return value is the reply. */
  handleCall?(msg: Call, ctx: ActorContext, from: PidLike | undefined): Reply | Promise<Reply>;
  handleCast?(msg: Cast, ctx: ActorContext): unknown;
  /** Plain `send` messages and system messages (EXIT, DOWN). */
  handleInfo?(msg: unknown, ctx: ActorContext): unknown;
  /** Runs when the actor exits (not when killed). */
  terminate?(reason: ExitReason, ctx: ActorContext): unknown;
}

export type Behaviour = MessageHandler | GenServer;
