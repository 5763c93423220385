// `node.service(...)` and `node.services`: services publish named actions on their node and
// announce them in the replicated catalogue; callers pick an endpoint with a load balancer and call
// it over node-level request/response, with deadlines, retries/failover, circuit breakers and
// fallbacks on the caller, bulkhead and rate limit on the serving node, context propagation, and
// async-iterable arguments/results streamed with flow control. Typed end to end by a contract type.
import type { ZodType } from 'zod';
import type { ReplyTarget } from '../cluster/messenger.js';
import type { DistContext } from '../dist/context.js';
import type { PubSub, Subscription } from '../dist/pubsub.js';
import { approxSize } from '../dist/wire.js';
import { FoundationError } from '../errors.js';
import { capture, captured } from '../util/capture.js';
import { batchNow, type TimerHandle } from '../util/clock.js';
import {
  BALANCER_NAMES,
  type Balancer,
  type BalancerName,
  balancerFor,
  type Endpoint,
  LatencyStats,
  type PickContext,
} from './balancers.js';
import { Catalogue, type CatalogueEntry, type Offering, type ServiceFilter } from './catalogue.js';
import {
  currentDeadline,
  endSpan,
  type Outgoing,
  outgoing,
  quiet,
  runIncoming,
  runWithDeadline,
  tracing,
} from './context.js';
import { type EventHandler, ServiceEvents } from './events.js';
import {
  type BreakerOptions,
  Breakers,
  type BulkheadOptions,
  isRetryable,
  type RateLimitOptions,
  type RetryOptions,
  retryPolicy,
  ServerGuards,
} from './resilience.js';
import { isStreamable, Streams } from './streams.js';
import {
  type ActionInfo,
  type CallMsg,
  decodeCall,
  decodeReply,
  type EndpointValue,
  type Health,
  SERVICE_LIMITS,
  type ServiceLimits,
  SVC_KINDS,
} from './wire.js';

// biome-ignore lint/suspicious/noExplicitAny: action signatures are the user's
type AnyFn = (...args: any[]) => unknown;

/** An action with options: its runtime schema (the array of arguments) and idempotency. */
export interface ActionSpec<F extends AnyFn = AnyFn> {
  handler: F;
  /** Validates the arguments array (e.g. `z.tuple([z.string()])`); bad → FND_ERR_VALIDATION. */
  input?: ZodType;
  /** Safe to run twice: retried on failures that may have run it (node died mid-call). */
  idempotent?: boolean;
}

/** The actions of a service: functions, or ActionSpecs with a schema / idempotency. */
export type Handlers = Record<string, AnyFn | ActionSpec>;

/** What a contract says about each action beyond its type. */
export type ContractActions<T> = {
  [K in keyof T]?: { input?: ZodType; idempotent?: boolean };
};

/**
 * A service contract, shared by the serving and calling code: the service name, its type `T`
 * (an interface of methods), and optionally per action a zod schema of the arguments (checked on
 * the caller before anything is sent, and again on the serving node) and `idempotent`.
 */
export interface Contract<T> {
  readonly service: string;
  readonly actions: ContractActions<T>;
  /** Type carrier only; never set. */
  readonly __type?: T;
}

export function contract<T>(service: string, actions: ContractActions<T> = {}): Contract<T> {
  return Object.freeze({ service, actions });
}

/** The handlers a service of type T must provide: each method, plain or as an ActionSpec. */
export type Implementation<T> = {
  [K in keyof T]: T[K] extends (...a: infer A) => infer R
    ? ((...a: A) => R | Promise<Awaited<R>>) | ActionSpec<(...a: A) => R | Promise<Awaited<R>>>
    : never;
};

/** A typed client of a service of type T: every method returns a promise of its result. */
export type Client<T> = {
  [K in keyof T]: T[K] extends (...a: infer A) => infer R
    ? (...a: A) => Promise<Awaited<R>>
    : never;
};

export interface ServiceOptions {
  /** Announced version; callers may ask for one (`{ version }`). Default '1'. */
  version?: string;
  /** Free-form metadata in the catalogue (at most maxMetaBytes). */
  meta?: Record<string, unknown>;
  /** Capability tags callers can filter on (`services.list({ capability })`). */
  capabilities?: string[];
  /** Event handlers by event pattern (NATS wildcards). */
  events?: Record<string, EventHandler>;
  /** Calls running at once on this node (+ waiting); more → FND_ERR_BULKHEAD_FULL. */
  bulkhead?: BulkheadOptions;
  /** Calls per window on this node; more → FND_ERR_RATE_LIMITED. */
  rateLimit?: RateLimitOptions;
  /** Health check run every `intervalMs` (default 5000); its result is announced. */
  health?: { check: () => Health | Promise<Health>; intervalMs?: number };
}

/** Returned by `node.service(...)`. */
export interface ServiceHandle {
  readonly name: string;
  /** Announces this endpoint's health ('unhealthy' endpoints get no calls). */
  setHealth(health: Health): void;
  /** Withdraws the service from this node (the catalogue entry goes; event subscriptions end). */
  stop(): void;
}

/** Options of one call (or defaults for every call of a service, see `services.configure`). */
export interface ServiceCallOptions {
  /** ms until the call fails with FND_ERR_REQUEST_TIMEOUT; nested calls inherit what is left. */
  timeout?: number;
  /** Which endpoint: a name or your own Balancer. Default 'round-robin'. */
  balancer?: BalancerName | Balancer;
  /** Sharding key for 'consistent-hash'. */
  key?: string;
  /** Only endpoints announcing this version. */
  version?: string;
  /** Only this node's endpoint. */
  node?: string;
  /** Retries/failover (false: none). Default { retries: 2, initialDelayMs: 20, maxDelayMs: 1000 }. */
  retry?: Partial<RetryOptions> | false;
  /** Circuit breaker per endpoint (true: defaults { threshold: 5, halfOpenAfterMs: 10 000 }). Default off. */
  breaker?: Partial<BreakerOptions> | boolean;
  /** Overrides the action's announced idempotency for this call. */
  idempotent?: boolean;
  /** The value to resolve with when the call finally fails. */
  fallback?: (err: FoundationError) => unknown;
}

export const CALL_DEFAULTS = Object.freeze({
  balancer: 'round-robin' as BalancerName,
  retry: Object.freeze({ retries: 2, initialDelayMs: 20, maxDelayMs: 1000 }) as RetryOptions,
  breaker: Object.freeze({ threshold: 5, halfOpenAfterMs: 10_000 }) as BreakerOptions,
  healthIntervalMs: 5000,
});

/** What the service layer is built from (the composition root builds it from the first cluster). */
export interface ServicesDeps {
  dist: DistContext;
  pubsub: PubSub;
  /** Request/response to a member (or this node), ms timeout. */
  request(to: string, kind: string, payload: unknown, timeoutMs: number): Promise<unknown>;
  /** `request`, answered through `target` (no promise of the messenger's). */
  requestTo(
    to: string,
    kind: string,
    payload: unknown,
    timeoutMs: number,
    target: ReplyTarget,
  ): void;
  handle(kind: string, handler: (payload: unknown, from: string) => unknown): void;
  /** One-way message; `bulk` on the bulk channel. */
  send(to: string, kind: string, payload: unknown, bulk: boolean): void;
  on(kind: string, handler: (payload: unknown, from: string) => void): void;
  /** Membership status of a node ('alive', 'suspect', ...); undefined if unknown. */
  status(node: string): string | undefined;
  limits?: ServiceLimits;
}

interface LocalAction {
  service: string;
  action: string;
  fn: AnyFn;
  input: ZodType | undefined;
  idempotent: boolean;
}

interface LocalService {
  name: string;
  /** `name.action` → its action (keys of `served` while offered). */
  paths: Map<string, LocalAction>;
  value: EndpointValue;
  actions: Map<string, LocalAction>;
  self: object;
  guards: ServerGuards | undefined;
  subs: Subscription[];
  timer: TimerHandle | undefined;
}

const NO_OPTS: ServiceCallOptions = Object.freeze({});
const EMPTY_OFFERING: Offering = Object.freeze({ eps: [], idempotent: false });

/**
 * A `service.action` as calls see it, cached (per path, and per method of a typed client) and
 * refreshed when `gen` no longer matches the layer's: the catalogue changed, a service was
 * configured or a contract registered. A call without options of a plain route (no configured
 * defaults, no schema) takes the fast path: no per-call lookups, no CallState until it fails.
 */
interface Route {
  service: string;
  action: string;
  /** `service.action`, as sent. */
  path: string;
  gen: number;
  offering: Offering;
  /** No per-service defaults and no caller-side schema for this action. */
  plain: boolean;
  /** The service's default balancer (when plain). */
  balancer: Balancer | undefined;
}

/** One call in progress, across its attempts. */
interface CallState {
  service: string;
  action: string;
  path: string;
  args: unknown[];
  opts: ServiceCallOptions;
  /** Clock time by which the call must be done. */
  deadline: number;
  breaker: BreakerOptions | undefined;
  balancer: Balancer;
  out: Outgoing;
  hasStreams: boolean;
  offering: Offering;
  idempotent: boolean;
  /** Node of the latest attempt. */
  last?: string;
  /** Past the first attempt (failures go to cockatiel's retry, not to recover()). */
  retrying?: boolean;
  /** Measure latency (only least-latency and custom balancers read it). */
  measure: boolean;
}
const CIRCUIT_NAMES = ['closed', 'open', 'half-open', 'isolated'] as const;

/** Turns zod issues into FND_ERR_VALIDATION naming the first bad field. */
function validationError(
  service: string,
  action: string,
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>,
  side: 'caller' | 'server',
): FoundationError {
  const first = issues[0];
  const field = first ? first.path.map(String).join('.') : '';
  return new FoundationError(
    'FND_ERR_VALIDATION',
    `${service}.${action}: argument ${field || '(all)'}: ${first?.message ?? 'invalid'}`,
    {
      service,
      action,
      field,
      side,
      issues: issues
        .slice(0, 16)
        .map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    },
  );
}

export class Services {
  private readonly limits: ServiceLimits;
  private readonly catalogue: Catalogue;
  private readonly local = new Map<string, LocalService>();
  /** `service.action` → the action, for every service offered here. */
  private readonly served = new Map<string, { svc: LocalService; act: LocalAction }>();
  private readonly events: ServiceEvents;
  readonly streams: Streams;
  private readonly latency = new LatencyStats();
  private readonly breakers = new Breakers();
  /** Balancers by service and name (round-robin keeps a counter per service). */
  private readonly balancers = new Map<string, Map<string, Balancer>>();
  private readonly configured = new Map<string, ServiceCallOptions>();
  private readonly contracts = new Map<string, Contract<unknown>>();
  private readonly pickCtx: PickContext;
  /** 'service.action' → its route, parsed once. */
  private readonly paths = new Map<string, Route>();
  /** Bumped whenever a route may be stale (catalogue change, configure, contract). */
  private gen = 0;
  private stopped = false;
  /** The clock read once per batch of calls handled together (see batchNow). */
  private readonly now: () => number;

  constructor(private readonly deps: ServicesDeps) {
    const ctx = deps.dist;
    this.now = batchNow(ctx.clock);
    this.limits = deps.limits ?? SERVICE_LIMITS;
    this.catalogue = new Catalogue(ctx, this.limits, deps.status);
    this.events = new ServiceEvents(deps.pubsub, this.limits, ctx.log);
    this.streams = new Streams(
      { send: (to, payload, bulk) => deps.send(to, SVC_KINDS.stream, payload, bulk) },
      this.limits,
      ctx.clock,
      ctx.log,
      ctx.requestTimeoutMs,
    );
    this.pickCtx = { key: undefined, latency: (n) => this.latency.get(n) };
    this.catalogue.onChange(() => {
      this.gen++;
    });
    deps.handle(SVC_KINDS.call, (payload, from) => this.serve(payload, from));
    deps.on(SVC_KINDS.stream, (payload, from) => {
      if (from === ctx.self || ctx.members.isPeer(from)) this.streams.receive(payload, from);
    });
    ctx.members.onDown((node) => {
      this.streams.nodeDown(node);
      this.breakers.forgetNode(node);
      this.latency.forget(node);
    });
  }

  // ---- serving ----

  /** Publishes service `name` on this node (see FoundationNode.service). */
  register(
    nameOrContract: string | Contract<unknown>,
    handlers: Handlers,
    opts: ServiceOptions = {},
  ): ServiceHandle {
    if (this.stopped) throw new FoundationError('FND_ERR_NODE_STOPPED');
    const c = typeof nameOrContract === 'string' ? undefined : nameOrContract;
    const name = c ? c.service : (nameOrContract as string);
    const L = this.limits;
    const bad = (field: string, what: string) =>
      new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `service ${String(name)}: "${field}": ${what}`,
        {
          field,
        },
      );
    if (
      typeof name !== 'string' ||
      name.length === 0 ||
      name.length > L.maxNameLength ||
      name.includes('.')
    )
      throw bad('name', `a non-empty string without '.', at most ${L.maxNameLength} characters`);
    if (this.local.has(name)) throw bad('name', 'already offered by this node (stop it first)');
    if (typeof handlers !== 'object' || handlers === null)
      throw bad('handlers', 'an object of actions');
    const actions = new Map<string, LocalAction>();
    const paths = new Map<string, LocalAction>();
    const infos: ActionInfo[] = [];
    for (const [action, h] of Object.entries(handlers)) {
      if (action.length === 0 || action.length > L.maxNameLength || action.includes('.'))
        throw bad(action, `action names: non-empty, no '.', at most ${L.maxNameLength} characters`);
      const spec: ActionSpec = typeof h === 'function' ? { handler: h } : (h as ActionSpec);
      if (typeof spec?.handler !== 'function') throw bad(action, 'a function or { handler }');
      const fromContract = (
        c?.actions as Record<string, { input?: ZodType; idempotent?: boolean }> | undefined
      )?.[action];
      const la: LocalAction = {
        service: name,
        action,
        fn: spec.handler,
        input: spec.input ?? fromContract?.input,
        idempotent: spec.idempotent ?? fromContract?.idempotent ?? false,
      };
      actions.set(action, la);
      paths.set(`${name}.${action}`, la);
      infos.push({ name: action, idempotent: la.idempotent });
    }
    if (infos.length > L.maxActionsPerService)
      throw bad('handlers', `at most ${L.maxActionsPerService} actions`);
    const events = Object.keys(opts.events ?? {});
    if (events.length > L.maxEventsPerService)
      throw bad('events', `at most ${L.maxEventsPerService}`);
    const capabilities = opts.capabilities ?? [];
    if (
      !Array.isArray(capabilities) ||
      capabilities.length > L.maxCapabilities ||
      !capabilities.every(
        (x) => typeof x === 'string' && x.length > 0 && x.length <= L.maxNameLength,
      )
    )
      throw bad('capabilities', `at most ${L.maxCapabilities} non-empty strings`);
    const version = opts.version ?? '1';
    if (typeof version !== 'string' || version.length > L.maxNameLength)
      throw bad('version', 'a string');
    const value: EndpointValue = {
      version,
      actions: infos,
      events,
      meta: opts.meta ?? {},
      capabilities: [...capabilities],
      health: 'ok',
    };
    // The same check peers will apply: refuse here what they would refuse there.
    const meta = opts.meta ?? {};
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
      throw bad('meta', 'an object');
    if (approxSize(meta, L.maxMetaBytes) > L.maxMetaBytes)
      throw bad('meta', `at most ${L.maxMetaBytes} bytes`);
    const guards = opts.bulkhead || opts.rateLimit ? new ServerGuards(name, opts) : undefined;
    const svc: LocalService = {
      name,
      paths,
      value,
      actions,
      self: handlers,
      guards,
      subs: [],
      timer: undefined,
    };
    this.catalogue.set(name, value); // throws FND_ERR_DIST_LIMIT past maxServicesPerNode
    this.local.set(name, svc);
    for (const [path, act] of paths) this.served.set(path, { svc, act });
    try {
      for (const [pattern, h] of Object.entries(opts.events ?? {}))
        svc.subs.push(...this.events.listen(name, pattern, h));
    } catch (err) {
      this.withdraw(svc);
      throw err;
    }
    const setHealth = (h: Health) => {
      if (svc.value.health === h || this.local.get(name) !== svc) return;
      svc.value = { ...svc.value, health: h };
      this.catalogue.set(name, svc.value);
    };
    if (opts.health) {
      const check = opts.health.check;
      svc.timer = this.deps.dist.clock.setInterval(() => {
        Promise.resolve()
          .then(check)
          .then(
            (h) => setHealth(h === 'ok' || h === 'degraded' ? h : 'unhealthy'),
            () => setHealth('unhealthy'),
          );
      }, opts.health.intervalMs ?? CALL_DEFAULTS.healthIntervalMs);
    }
    return { name, setHealth, stop: () => this.withdraw(svc) };
  }

  private withdraw(svc: LocalService): void {
    if (this.local.get(svc.name) !== svc) return;
    this.local.delete(svc.name);
    for (const path of svc.paths.keys()) this.served.delete(path);
    svc.timer?.cancel();
    for (const s of svc.subs) s.unsubscribe();
    this.catalogue.delete(svc.name);
  }

  /** Answers one call from `from` (the messenger sends the returned value or thrown error). */
  private serve(payload: unknown, from: string): unknown {
    const d = decodeCall(payload, this.limits);
    if (!d.ok) {
      this.deps.dist.log.warn({ from, reason: d.reason }, 'service call refused');
      throw new FoundationError('FND_ERR_SERVICE_MESSAGE', `call refused: ${d.reason}`, {
        reason: d.reason,
      });
    }
    const m = d.value;
    const found = this.served.get(m.path);
    if (!found) {
      this.cancelStreams(m, from, 'no such service');
      const dot = m.path.indexOf('.');
      throw new FoundationError(
        'FND_ERR_SERVICE_NOT_FOUND',
        `node ${this.deps.dist.self} does not offer ${m.path}`,
        { service: m.path.slice(0, dot), action: m.path.slice(dot + 1) },
      );
    }
    const { svc, act } = found;
    if (m.deadlineMs === 0) {
      this.cancelStreams(m, from, 'deadline exceeded');
      throw new FoundationError('FND_ERR_DEADLINE_EXCEEDED', m.path, {
        service: act.service,
        action: act.action,
      });
    }
    let args = m.args;
    if (m.ctx?.s) {
      for (const [i, id] of m.ctx.s) {
        try {
          args[i] = this.streams.consume(from, id);
        } catch (err) {
          this.cancelStreams(m, from, 'too many streams');
          throw err;
        }
      }
    }
    if (act.input) {
      const r = act.input.safeParse(args);
      if (!r.success) {
        this.cancelStreams(m, from, 'invalid arguments');
        throw validationError(act.service, act.action, r.error.issues, 'server');
      }
      args = r.data as unknown[];
    }
    const deadline = this.now() + m.deadlineMs;
    if (!svc.guards && !m.ctx?.s) return this.runAction(svc, act, m, args, deadline, from);
    const run = () => {
      // A call that waited in the bulkhead's queue past its deadline: its caller has given up.
      if (this.now() >= deadline) {
        throw new FoundationError('FND_ERR_DEADLINE_EXCEEDED', m.path, {
          service: act.service,
          action: act.action,
        });
      }
      return this.runAction(svc, act, m, args, deadline, from);
    };
    if (!m.ctx?.s) return svc.guards!.run(from, run);
    // Stream arguments of a call that fails (refused by a guard, or the action threw) are
    // cancelled, so their producers stop instead of waiting for a reader that will never come.
    try {
      const r = svc.guards ? svc.guards.run(from, run) : run();
      if (r instanceof Promise) {
        return r.catch((err) => {
          this.cancelStreams(m, from, 'call failed');
          throw err;
        });
      }
      return r;
    } catch (err) {
      this.cancelStreams(m, from, 'call failed');
      throw err;
    }
  }

  private runAction(
    svc: LocalService,
    act: LocalAction,
    m: CallMsg,
    args: unknown[],
    deadline: number,
    from: string,
  ): unknown {
    if (m.ctx === undefined && !tracing()) {
      // No context came with the call and nothing traces: the action runs with just its deadline.
      let v: unknown;
      try {
        v = runWithDeadline(deadline, act.fn, svc.self, args);
      } catch (err) {
        throw this.actionError(act, err);
      }
      if (v instanceof Promise) {
        return v.then(
          (x) => this.replyOf(x, from),
          (err) => {
            throw this.actionError(act, err);
          },
        );
      }
      return this.replyOf(v, from);
    }
    let r: ReturnType<typeof runIncoming<unknown>>;
    try {
      r = runIncoming(m.ctx, deadline, 'call', act.service, act.action, () =>
        act.fn.apply(svc.self, args),
      );
    } catch (err) {
      throw this.actionError(act, err);
    }
    const span = r.span;
    if (r.result instanceof Promise) {
      return r.result.then(
        (v) => {
          endSpan(span);
          return this.replyOf(v, from);
        },
        (err) => {
          endSpan(span, err);
          throw this.actionError(act, err);
        },
      );
    }
    endSpan(span);
    return this.replyOf(r.result, from);
  }

  /** The reply to send for result `v` (see ReplyMsg: only arrays and streams are wrapped). */
  private replyOf(v: unknown, to: string): unknown {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
    if (Array.isArray(v)) return [v];
    return isStreamable(v) ? [null, this.streams.produce(to, v)] : v;
  }

  /** Anything an action throws reaches the caller as FND_ERR_SERVICE_ACTION with its cause. */
  private actionError(m: LocalAction, err: unknown): FoundationError {
    const e = err as {
      code?: unknown;
      message?: unknown;
      retryable?: unknown;
      data?: { retryable?: unknown };
    };
    return new FoundationError(
      'FND_ERR_SERVICE_ACTION',
      `${m.service}.${m.action} failed on ${this.deps.dist.self}: ${typeof e?.message === 'string' ? e.message : String(err)}`,
      {
        service: m.service,
        action: m.action,
        cause: {
          code: typeof e?.code === 'string' ? e.code : undefined,
          message: typeof e?.message === 'string' ? e.message : String(err),
        },
        retryable: e?.retryable === true || e?.data?.retryable === true,
      },
    );
  }

  private cancelStreams(m: CallMsg, from: string, reason: string): void {
    if (!m.ctx?.s) return;
    for (const [, id] of m.ctx.s) this.streams.cancelConsumer(from, id, reason);
  }

  // ---- calling ----

  /** Per-service call defaults (merged under per-call options). */
  configure(service: string, opts: ServiceCallOptions): void {
    this.configured.set(service, { ...this.configured.get(service), ...opts });
    this.balancers.delete(service);
    this.gen++;
  }

  /** A typed client of `service` (or of a contract, which adds caller-side validation). */
  get<T>(service: string | Contract<T>, opts: ServiceCallOptions = NO_OPTS): Client<T> {
    const name = typeof service === 'string' ? service : service.service;
    if (typeof service !== 'string') {
      this.contracts.set(name, service as Contract<unknown>);
      this.gen++;
    }
    const fns = new Map<string, AnyFn>();
    return new Proxy(Object.create(null), {
      get: (_t, prop) => {
        // Not thenable: `await client` must not call an action named "then".
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        let fn = fns.get(prop);
        if (!fn) {
          const route = this.newRoute(name, prop, `${name}.${prop}`);
          fn = (...args: unknown[]) => this.invoke(route, args, opts);
          fns.set(prop, fn);
        }
        return fn;
      },
    }) as Client<T>;
  }

  /** Calls `'service.action'` with `args` (an array, or one value for a one-argument action). */
  call<R = unknown>(
    path: string,
    args: unknown = [],
    opts: ServiceCallOptions = NO_OPTS,
  ): Promise<R> {
    let route = this.paths.get(path);
    if (!route) {
      const i = typeof path === 'string' ? path.lastIndexOf('.') : -1;
      if (i <= 0 || i === path.length - 1) {
        return Promise.reject(
          new FoundationError('FND_ERR_INVALID_OPTION', `"${String(path)}": 'service.action'`, {
            field: 'path',
          }),
        );
      }
      route = this.newRoute(path.slice(0, i), path.slice(i + 1), path);
      if (this.paths.size >= 10_000) this.paths.clear();
      this.paths.set(path, route);
    }
    return this.invoke(route, Array.isArray(args) ? args : [args], opts) as Promise<R>;
  }

  private newRoute(service: string, action: string, path: string): Route {
    const r: Route = {
      service,
      action,
      path,
      gen: -1,
      offering: EMPTY_OFFERING,
      plain: false,
      balancer: undefined,
    };
    return r;
  }

  /** Brings `r` up to date with the catalogue, per-service defaults and contracts. */
  private refresh(r: Route): void {
    r.gen = this.gen;
    r.offering = this.catalogue.offering(r.service, r.action);
    const input = (
      this.contracts.get(r.service)?.actions as Record<string, { input?: ZodType }> | undefined
    )?.[r.action]?.input;
    r.plain = !this.configured.has(r.service) && !input;
    r.balancer = r.plain ? this.balancerOf(r.service, NO_OPTS) : undefined;
  }

  private balancerOf(service: string, opts: ServiceCallOptions): Balancer {
    const b = opts.balancer;
    if (b !== undefined && typeof b !== 'string') return b;
    const name = b ?? CALL_DEFAULTS.balancer;
    let per = this.balancers.get(service);
    if (!per) {
      per = new Map();
      this.balancers.set(service, per);
    }
    let bal = per.get(name);
    if (!bal) {
      if (!BALANCER_NAMES.has(name)) {
        throw new FoundationError(
          'FND_ERR_INVALID_OPTION',
          `option "balancer": ${[...BALANCER_NAMES].join(', ')}`,
          { field: 'balancer' },
        );
      }
      bal = balancerFor(name);
      per.set(name, bal);
    }
    return bal;
  }

  /**
   * Endpoints of service.action that can take a call now, minus `exclude`. Returns the cached
   * list itself when nothing is filtered out (the common case: no allocation per call).
   */
  private candidates(st: CallState, exclude: Set<string> | undefined): Endpoint[] {
    const all = st.offering.eps;
    const o = st.opts;
    let out: Endpoint[] | undefined;
    for (let i = 0; i < all.length; i++) {
      const e = all[i]!;
      const usable =
        (o.version === undefined || e.info.version === o.version) &&
        (o.node === undefined || e.node === o.node) &&
        !exclude?.has(e.node) &&
        e.info.health !== 'unhealthy' &&
        (e.local || this.deps.status(e.node) === 'alive') &&
        (!st.breaker || this.breakers.usable(e.node, st.service, st.breaker));
      if (usable) out?.push(e);
      else if (!out) out = all.slice(0, i);
    }
    return out ?? all;
  }

  private invoke(route: Route, args: unknown[], callOpts: ServiceCallOptions): Promise<unknown> {
    if (this.stopped) return Promise.reject(new FoundationError('FND_ERR_NODE_STOPPED'));
    if (route.gen !== this.gen) this.refresh(route);
    if (callOpts === NO_OPTS && route.plain && quiet()) {
      const p = this.fastCall(route, args);
      if (p) return p;
    }
    const { service, action } = route;
    const conf = this.configured.get(service);
    const opts = conf ? { ...conf, ...callOpts } : callOpts;
    let st: CallState;
    try {
      const input = (
        this.contracts.get(service)?.actions as Record<string, { input?: ZodType }> | undefined
      )?.[action]?.input;
      if (input) {
        const r = input.safeParse(args);
        if (!r.success) throw validationError(service, action, r.error.issues, 'caller');
      }
      st = this.callState(route, args, opts, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    let p: Promise<unknown>;
    try {
      p = this.attempt(st, undefined);
      if (st.breaker) p = p.then(undefined, (err) => this.recover(st, err));
    } catch (err) {
      p = this.recover(st, err);
    }
    const span = st.out.span;
    if (span) {
      p = p.then(
        (v) => {
          endSpan(span);
          return v;
        },
        (err) => {
          endSpan(span, err);
          throw err;
        },
      );
    }
    const fb = opts.fallback;
    return fb ? p.catch((err) => fb(err as FoundationError)) : p;
  }

  /**
   * A call without per-call options, per-service defaults, schema, streams or context, while every
   * endpoint can take calls: one pick and one request. Its CallState (for retries and failover,
   * with the same rules as any call) is built only when the first attempt fails. Undefined when
   * the call needs the general path.
   */
  private fastCall(route: Route, args: unknown[]): Promise<unknown> | undefined {
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (isStreamable(a) && !(a instanceof Uint8Array)) return undefined;
    }
    const eps = route.offering.eps;
    if (eps.length === 0) return undefined;
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!;
      if (e.info.health === 'unhealthy' || !(e.local || this.deps.status(e.node) === 'alive'))
        return undefined;
    }
    this.pickCtx.key = undefined;
    const node = (eps.length === 1 ? eps[0]! : route.balancer!.pick(eps, this.pickCtx)).node;
    const timeout = this.deps.dist.requestTimeoutMs;
    const payload =
      args.length === 1 ? [route.path, timeout, args[0]] : [route.path, timeout, ...args];
    const call = new FastCall(this, route, args, node, this.now());
    this.deps.requestTo(node, SVC_KINDS.call, payload, Math.ceil(timeout / 10) * 10, call);
    return call.promise;
  }

  /**
   * @internal The first attempt of a fast-path call to `node` failed: from here on it is an
   * ordinary call (retries, failover, fallback), begun at `start`.
   */
  fastCallFailed(
    route: Route,
    args: unknown[],
    node: string,
    start: number,
    err: unknown,
  ): Promise<unknown> {
    const st = this.callState(route, args, NO_OPTS, start);
    st.last = node;
    return this.recover(st, err);
  }

  /** @internal The result of a reply from `node`: its value, or a consumer of the stream it announces. */
  replyValue(raw: unknown, node: string): unknown {
    const d = decodeReply(raw);
    if (!d.ok) {
      throw new FoundationError(
        'FND_ERR_SERVICE_MESSAGE',
        `reply from ${node} refused: ${d.reason}`,
        {
          node,
          reason: d.reason,
        },
      );
    }
    return d.value.stream ? this.streams.consume(node, d.value.id) : d.value.value;
  }

  /** `start`: clock time the call began (now when undefined). */
  private callState(
    route: Route,
    args: unknown[],
    opts: ServiceCallOptions,
    start: number | undefined,
  ): CallState {
    const { service, action } = route;
    const now = start ?? this.deps.dist.clock.now();
    const t = opts.timeout;
    if (t !== undefined && !(typeof t === 'number' && t > 0 && t <= 2 ** 31 - 1)) {
      throw new FoundationError('FND_ERR_INVALID_OPTION', 'option "timeout": ms, > 0', {
        field: 'timeout',
      });
    }
    const r = opts.retry;
    if (
      r !== undefined &&
      r !== false &&
      (typeof r !== 'object' ||
        (r.retries !== undefined && !(Number.isInteger(r.retries) && r.retries >= 0)))
    ) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        'option "retry": false or { retries (integer ≥ 0), initialDelayMs, maxDelayMs }',
        { field: 'retry' },
      );
    }
    let deadline = now + (t ?? this.deps.dist.requestTimeoutMs);
    const ambient = currentDeadline();
    if (ambient !== undefined && ambient < deadline) deadline = ambient;
    if (opts.balancer === 'consistent-hash' && typeof opts.key !== 'string') {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "key": 'consistent-hash' needs a key`,
        { field: 'key' },
      );
    }
    const b = opts.breaker;
    let hasStreams = false;
    for (const a of args) if (isStreamable(a) && !(a instanceof Uint8Array)) hasStreams = true;
    const offering = route.offering;
    const balancer = this.balancerOf(service, opts);
    return {
      service,
      action,
      path: route.path,
      args,
      opts,
      deadline,
      breaker:
        b === true ? CALL_DEFAULTS.breaker : b ? { ...CALL_DEFAULTS.breaker, ...b } : undefined,
      balancer,
      out: outgoing('call', service, action),
      hasStreams,
      offering,
      // The action's flag where this call may go: an endpoint of another version (or node) that
      // says idempotent must not let a retry repeat one that does not.
      idempotent:
        opts.idempotent ??
        (opts.version === undefined && opts.node === undefined
          ? offering.idempotent
          : idempotentAt(offering.eps, action, opts)),
      measure: balancer.name !== 'round-robin' && balancer.name !== 'random',
    };
  }

  /** One attempt: pick an endpoint (not in `exclude`) and send. Throws coded errors. */
  private attempt(st: CallState, exclude: Set<string> | undefined): Promise<unknown> {
    let eps = this.candidates(st, exclude);
    // Every endpoint failed once: go round again rather than give up while retries remain.
    if (eps.length === 0 && exclude) eps = this.candidates(st, undefined);
    if (eps.length === 0) {
      const { service, action } = st;
      // Open circuits alone keep every endpoint out: say so (the breaker would have).
      const open =
        st.breaker !== undefined &&
        st.offering.eps.length > 0 &&
        this.candidates({ ...st, breaker: undefined }, exclude).length > 0;
      throw st.offering.eps.length > 0
        ? new FoundationError(
            'FND_ERR_SERVICE_UNAVAILABLE',
            `no endpoint of ${service}.${action} can take calls now${open ? ' (circuit open)' : ''}`,
            open ? { service, action, reason: 'circuit_open' } : { service, action },
          )
        : new FoundationError(
            'FND_ERR_SERVICE_NOT_FOUND',
            `no node offers ${service}.${action}${st.opts.version ? ` version ${st.opts.version}` : ''}`,
            { service, action },
          );
    }
    this.pickCtx.key = st.opts.key;
    const ep = eps.length === 1 ? eps[0]! : st.balancer.pick(eps, this.pickCtx);
    st.last = ep.node;
    const remaining = st.deadline - this.deps.dist.clock.now();
    if (remaining <= 0) {
      throw new FoundationError(
        'FND_ERR_DEADLINE_EXCEEDED',
        `${st.service}.${st.action}: no time left`,
        { service: st.service, action: st.action },
      );
    }
    if (!st.breaker) return this.send(st, ep.node, remaining);
    return this.breakers.run(ep.node, st.service, st.breaker, () =>
      this.send(st, ep.node, remaining),
    );
  }

  /** After a failed first attempt: retries with backoff (cockatiel) when the rule allows. */
  private recover(st: CallState, err: unknown): Promise<unknown> {
    const r = st.opts.retry;
    if (r === false || st.hasStreams || !isRetryable(err, st.idempotent))
      return Promise.reject(err);
    const retry = { ...CALL_DEFAULTS.retry, ...r };
    if (retry.retries < 1) return Promise.reject(err);
    st.retrying = true;
    const tried = new Set<string>();
    if (st.last) tried.add(st.last);
    return retryPolicy(retry, st.idempotent).execute(() => {
      const p = this.attempt(st, tried);
      if (st.last) tried.add(st.last);
      return p;
    });
  }

  private send(st: CallState, node: string, remaining: number): Promise<unknown> {
    const wire = st.out.wire;
    let payload: unknown[];
    let produced: number[] | undefined;
    if (st.hasStreams) {
      const s: Array<[number, number]> = [];
      const a = st.args.slice();
      produced = [];
      for (let i = 0; i < a.length; i++) {
        const v = a[i];
        if (isStreamable(v) && !(v instanceof Uint8Array)) {
          const id = this.streams.produce(node, v);
          produced.push(id);
          s.push([i, id]);
          a[i] = null;
        }
      }
      payload = [st.path, { ...wire, s }, Math.ceil(remaining), ...a];
    } else {
      const dl = Math.ceil(remaining);
      payload = wire ? [st.path, wire, dl, ...st.args] : [st.path, dl, ...st.args];
    }
    const t0 = st.measure ? performance.now() : 0;
    // The messenger keeps one timer per distinct timeout value: hand it whole 10 ms steps (the
    // first attempt of a call with the default timeout always gets the same value), not the
    // exact time left, which differs on every call.
    const timeout = Math.ceil(remaining / 10) * 10;
    return this.deps.request(node, SVC_KINDS.call, payload, timeout).then(
      (raw) => {
        if (st.measure) this.latency.observe(node, performance.now() - t0);
        return this.replyValue(raw, node);
      },
      (err) => {
        if (produced) for (const id of produced) this.streams.abandon(id);
        // The first attempt's failure goes to recover(); later ones to cockatiel's retry loop.
        // With a breaker, the breaker must see this failure first (invoke() recovers after it).
        if (st.retrying || st.breaker) throw err;
        return this.recover(st, err);
      },
    );
  }

  // ---- catalogue and events ----

  list(filter?: ServiceFilter): CatalogueEntry[] {
    return this.catalogue.list(filter);
  }

  /** Calls `fn` after any change of the catalogue (services appear, go, change health). */
  onChange(fn: () => void): void {
    this.catalogue.onChange(fn);
  }

  emit(event: string, payload?: unknown): void {
    this.events.emit(event, payload);
  }

  broadcast(event: string, payload?: unknown): void {
    this.events.broadcast(event, payload);
  }

  /** Circuit state of an endpoint as this node sees it ('closed', 'open', 'half-open', ...). */
  circuit(node: string, service: string): 'closed' | 'open' | 'half-open' | 'isolated' {
    return CIRCUIT_NAMES[this.breakers.state(node, service)] ?? 'closed';
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const svc of [...this.local.values()]) this.withdraw(svc);
    this.streams.stop();
    this.catalogue.stop();
  }
}

/**
 * One fast-path call (Services.fastCall): the caller's promise, answered by the messenger straight
 * from the reply (one object per call instead of the messenger's promise and reactions on it).
 */
class FastCall implements ReplyTarget {
  readonly promise: Promise<unknown>;
  private readonly resolve: (v: unknown) => void;
  private readonly reject: (e: unknown) => void;

  constructor(
    private readonly services: Services,
    private readonly route: Route,
    private readonly args: unknown[],
    private readonly node: string,
    private readonly start: number,
  ) {
    this.promise = new Promise(capture);
    this.resolve = captured.resolve;
    this.reject = captured.reject;
  }

  replied(raw: unknown): void {
    if (!Array.isArray(raw)) {
      this.resolve(raw);
      return;
    }
    try {
      this.resolve(this.services.replyValue(raw, this.node));
    } catch (err) {
      this.reject(err);
    }
  }

  failed(err: Error): void {
    try {
      this.resolve(this.services.fastCallFailed(this.route, this.args, this.node, this.start, err));
    } catch (e) {
      this.reject(e);
    }
  }
}

/** Whether every endpoint a call with `o`'s version and node filters may use says `action` is idempotent. */
function idempotentAt(
  eps: readonly Endpoint[],
  action: string,
  o: { version?: string | undefined; node?: string | undefined },
): boolean {
  let any = false;
  for (const e of eps) {
    if (o.version !== undefined && e.info.version !== o.version) continue;
    if (o.node !== undefined && e.node !== o.node) continue;
    if (!e.info.actions.find((x) => x.name === action)?.idempotent) return false;
    any = true;
  }
  return any;
}
