// What an actor is made of: a behaviour (a plain message handler, or a GenServer-style object),
// the context it runs with, and the system messages it may receive (EXIT when trapping exits,
// DOWN from monitors). Also the type-level protocol of an actor: what `spawn` infers from a
// behaviour and hands on to the pid, so that calls to it are checked at compile time.
import type { Pid, PidLike, Typed } from './pid.js';

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

// ---- protocols: types that flow from spawn to the pid ----

/**
 * What an actor accepts and answers, at the type level only: the message `call` takes and the
 * reply it resolves with, the message `cast` takes, and the message `send` takes. `spawn` infers
 * it from the behaviour (`ProtocolOf`); write one yourself to type an actor you did not spawn
 * (`ActorRef<Protocol<...>>`). `unknown` everywhere means untyped: anything goes, replies are
 * `unknown`.
 */
export interface Protocol<Call = unknown, Reply = unknown, Cast = unknown, Info = unknown> {
  call: Call;
  reply: Reply;
  cast: Cast;
  info: Info;
}

/**
 * A typed address of an actor: a pid from a typed spawn, or a name (local to a node, or
 * cluster-wide) you give the protocol of. A plain literal fits without a cast:
 * `const c: ActorRef<CounterProtocol> = { name: 'counter', node: 'a' }`.
 */
export type ActorRef<P = unknown> =
  | Pid<P>
  | ({ name: string; node: string } & Typed<P>)
  | ({ global: string } & Typed<P>);

// `any` where a behaviour left a message unannotated means "not typed": it becomes `unknown`.
type IsAny<T> = 0 extends 1 & T ? true : false;
type Known<T> = IsAny<T> extends true ? unknown : T;
type Method<B, K extends string> = K extends keyof B ? NonNullable<B[K]> : undefined;
// biome-ignore lint/suspicious/noExplicitAny: matching any function's shape
type ArgOf<F> = F extends (msg: infer M, ...rest: any[]) => unknown ? Known<M> : never;
// biome-ignore lint/suspicious/noExplicitAny: matching any function's shape
type ResultOf<F> = F extends (...args: any[]) => infer R ? Known<Awaited<R>> : never;

/**
 * The protocol `spawn` infers from a behaviour. A plain handler `(msg: M) => R` takes `M` for
 * calls, casts and sends, and answers `Awaited<R>`. A GenServer takes `handleCall`'s message
 * (answering what it returns), `handleCast`'s and `handleInfo`'s; a callback it lacks makes that
 * kind of message a compile error (`never`). A pid (a start function of a child spec may return
 * one) keeps its own protocol.
 */
export type ProtocolOf<B> =
  B extends Pid<infer P>
    ? P
    : B extends PidLike
      ? unknown
      : // biome-ignore lint/suspicious/noExplicitAny: matching any function's shape
        B extends (...args: any[]) => unknown
        ? Protocol<ArgOf<B>, ResultOf<B>, ArgOf<B>, ArgOf<B>>
        : Protocol<
            ArgOf<Method<B, 'handleCall'>>,
            ResultOf<Method<B, 'handleCall'>>,
            ArgOf<Method<B, 'handleCast'>>,
            ArgOf<Method<B, 'handleInfo'>>
          >;

type ProtocolPart<To, K extends keyof Protocol> =
  To extends Typed<infer P> ? (P extends Protocol ? P[K] : unknown) : unknown;
/** The message `call(to, msg)` takes for this target (`unknown` for an untyped one). */
export type CallMessage<To> = ProtocolPart<To, 'call'>;
/** What `call(to, ...)` resolves with for this target (`unknown` for an untyped one). */
export type ReplyOf<To> = ProtocolPart<To, 'reply'>;
/** The message `cast(to, msg)` takes for this target. */
export type CastMessage<To> = ProtocolPart<To, 'cast'>;
/** The message `send(to, msg)` takes for this target. */
export type InfoMessage<To> = ProtocolPart<To, 'info'>;
/**
 * A call's result: `R` when given explicitly (`call<R>(...)`, an unchecked assertion kept for
 * untyped targets), else the target's reply type.
 */
export type CallResult<R, To> = [R] extends [never] ? ReplyOf<To> : R;

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
  send<To extends Target>(to: To, msg: InfoMessage<To>): void;
  /** Like send, but resolves once the message is in the target's mailbox (or rejects with why not). */
  sendAsync<To extends Target>(to: To, msg: InfoMessage<To>): Promise<void>;
  /** Calls `to` with `ctx.self` as `from`; a typed target checks `msg` and types the reply. */
  call<R = never, To extends Target = Target>(
    to: To,
    msg: CallMessage<To>,
    opts?: CallOptions,
  ): Promise<CallResult<R, To>>;
  cast<To extends Target>(to: To, msg: CastMessage<To>): void;
  spawn<M = unknown, R = unknown>(
    behaviour: MessageHandler<M, R>,
    opts?: SpawnOptions,
  ): Pid<HandlerProtocol<M, R>>;
  spawn<B extends LooseGenServer>(
    behaviour: B & ThisType<B>,
    opts?: SpawnOptions,
  ): Pid<ProtocolOf<B>>;
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
 * actor with the error as its exit reason. Annotate `msg` with what the actor accepts (include
 * `ExitMessage` / `DownMessage` if it traps exits or monitors) and calls to its pid are checked.
 */
export type MessageHandler<M = unknown, R = unknown> = (msg: M, ctx: ActorContext) => R;

/** The protocol of a plain handler `(msg: M) => R`. */
export type HandlerProtocol<M, R> = Protocol<M, Known<Awaited<R>>, M, M>;

/**
 * A GenServer-style behaviour. State lives on the object (`this`). Every callback runs one at a
 * time and may be async; a throw ends the actor with the error as exit reason. The type
 * parameters are what `implements GenServer<...>` checks a class against; `spawn` infers the
 * protocol from the callbacks' own parameter and return types either way.
 */
export interface GenServer<Call = unknown, Cast = unknown, Reply = unknown, Info = unknown> {
  /** Runs first; messages wait until it finishes. A throw means the actor never starts. */
  init?(ctx: ActorContext): unknown;
  /** Answers `call`; the return value is the reply. */
  handleCall?(msg: Call, ctx: ActorContext, from: PidLike | undefined): Reply | Promise<Reply>;
  handleCast?(msg: Cast, ctx: ActorContext): unknown;
  /** Plain `send` messages and system messages (EXIT, DOWN). */
  handleInfo?(msg: Info, ctx: ActorContext): unknown;
  /** Runs when the actor exits (not when killed). */
  terminate?(reason: ExitReason, ctx: ActorContext): unknown;
}

/**
 * What `spawn` accepts as a GenServer. The index signature lets state fields sit beside the
 * callbacks; when TypeScript cannot infer the object's type (a callback's reply depends on
 * `this` and has no return annotation) `this` falls back to it, so such code still compiles, with
 * an untyped protocol. Annotate the reply type to get a typed one.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type LooseGenServer = GenServer & { [field: string]: any };

// A method's parameters are checked bivariantly, so this accepts every handler, typed or not,
// while an unannotated `msg` is still `unknown`.
type AnyHandler = { handler(msg: unknown, ctx: ActorContext): unknown }['handler'];

/** Any behaviour, typed or not: a plain handler or a GenServer. */
export type Behaviour = AnyHandler | GenServer;
