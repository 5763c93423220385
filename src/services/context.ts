// Context propagation: a request context (`withContext({ requestId, ... }, fn)`) lives in an
// AsyncLocalStorage and crosses nodes with every service call, event and stream as a W3C
// `traceparent` + `baggage` pair, together with the call's deadline. When an OpenTelemetry tracer
// provider is registered (`@opentelemetry/api`), calls and events also create client/server
// (producer/consumer) spans whose parent is the caller's span on the other node.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  type Context,
  context as otelContext,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { FoundationError } from '../errors.js';
import { decodeWireContext, isTraceparent, SERVICE_LIMITS, type WireContext } from './wire.js';

/** Values carried with a request across nodes (W3C baggage): strings only. */
export type ContextValues = Readonly<Record<string, string>>;

interface Store {
  values: ContextValues;
  /** W3C trace id (32 hex) and the id of the current span (16 hex); absent outside any trace. */
  traceId: string | undefined;
  spanId: string | undefined;
  sampled: boolean;
  /** Clock time (of the node that runs the code) by which the current call must be done. */
  deadline: number | undefined;
  /** Cached encoded baggage of `values`. */
  baggage: string | undefined;
}

/** What `currentContext()` returns: the values plus the trace and deadline. */
export interface ContextView {
  values: ContextValues;
  traceId: string | undefined;
  spanId: string | undefined;
  /** Clock time (ms) by which the current call must complete, when inside one. */
  deadline: number | undefined;
}

const als = new AsyncLocalStorage<Store>();
/** `als.run(NO_STORE, fn)`: fn runs outside any context (cheaper than als.exit). */
const NO_STORE = undefined as unknown as Store;
const EMPTY: ContextValues = Object.freeze({});
/** The API's no-op provider: what the global proxy delegates to while nobody registered one. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * The tracer, when an OpenTelemetry tracer provider is registered; undefined otherwise, so an
 * untraced call pays a couple of property reads, not a span.
 */
function tracerIfOn(): Tracer | undefined {
  const p = trace.getTracerProvider() as ProxyTracerProvider;
  const d = typeof p.getDelegate === 'function' ? p.getDelegate() : p;
  return d === NOOP_PROVIDER ? undefined : p.getTracer('foundation');
}

const NOTHING: Outgoing = Object.freeze({ wire: undefined, span: undefined });

// Ids come from a pool of random bytes refilled 4 KiB at a time (a syscall per id would cost more
// than the rest of the call).
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

/**
 * Runs `fn` with `values` added to the current context (a new trace starts when there is none).
 * Everything `fn` starts — service calls, events, streams, timers — carries the context, also on
 * other nodes. Values must be strings; keys are baggage keys (token characters).
 */
export function withContext<T>(values: Record<string, string | number | boolean>, fn: () => T): T {
  const cur = als.getStore();
  const merged: Record<string, string> = { ...(cur?.values ?? EMPTY) };
  for (const [k, v] of Object.entries(values)) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k)) {
      throw new FoundationError('FND_ERR_INVALID_OPTION', `context key "${k}": a baggage token`, {
        field: k,
      });
    }
    merged[k] = String(v);
  }
  const store: Store = {
    values: Object.freeze(merged),
    traceId: cur?.traceId ?? randomHex(16),
    spanId: cur?.spanId ?? randomHex(8),
    sampled: cur?.sampled ?? true,
    deadline: cur?.deadline,
    baggage: undefined,
  };
  return als.run(store, fn);
}

/**
 * Whether the running code is outside any context and no tracer records: a call or event then
 * carries nothing extra and needs no span (one ALS read and a couple of property reads).
 */
export function quiet(): boolean {
  return als.getStore() === undefined && tracerIfOn() === undefined;
}

/** Whether an OpenTelemetry tracer provider is registered (spans would be recorded). */
export function tracing(): boolean {
  return tracerIfOn() !== undefined;
}

/**
 * Runs `fn` (with `self` as this) as the serving side of a call that came without context while
 * nothing traces: inside a context holding only the call's deadline (nested calls inherit it).
 */
export function runWithDeadline(
  deadline: number,
  fn: (...a: unknown[]) => unknown,
  self: unknown,
  args: unknown[],
): unknown {
  const store: Store = {
    values: EMPTY,
    traceId: undefined,
    spanId: undefined,
    sampled: true,
    deadline,
    baggage: undefined,
  };
  return als.run(store, Reflect.apply, fn, self, args);
}

/** The context of the code running now (undefined outside withContext and service handlers). */
export function currentContext(): ContextView | undefined {
  const s = als.getStore();
  if (!s) return undefined;
  return { values: s.values, traceId: s.traceId, spanId: s.spanId, deadline: s.deadline };
}

/** The current deadline (clock ms), if the running code is inside a call or a timed context. */
export function currentDeadline(): number | undefined {
  return als.getStore()?.deadline;
}

export function encodeBaggage(values: ContextValues): string {
  let out = '';
  for (const k in values) {
    if (out) out += ',';
    out += `${k}=${encodeURIComponent(values[k]!)}`;
  }
  return out;
}

/** Parses a W3C baggage value (properties after `;` are ignored); malformed members are skipped. */
export function decodeBaggage(bg: string): ContextValues {
  const out: Record<string, string> = {};
  for (const member of bg.split(',')) {
    const kv = member.split(';', 1)[0]!;
    const i = kv.indexOf('=');
    if (i <= 0) continue;
    const k = kv.slice(0, i).trim();
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k) || k === '__proto__') continue;
    try {
      out[k] = decodeURIComponent(kv.slice(i + 1).trim());
    } catch {
      // not percent-encoded properly: skipped
    }
  }
  return Object.freeze(out);
}

/**
 * Span names and attributes (built only when tracing): a call is `service.action` with the
 * OpenTelemetry RPC attributes; an event is `event <name>` with the messaging destination (and,
 * on the consuming side, the listening service in `action`).
 */
/** An OTel context whose parent span is the W3C trace position `store` carries (from another node). */
function remoteParent(store: Pick<Store, 'traceId' | 'spanId' | 'sampled'>): Context {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: store.traceId!,
    spanId: store.spanId!,
    traceFlags: store.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

function spanName(kind: 'call' | 'event', a: string, b: string): string {
  return kind === 'call' ? `${a}.${b}` : `event ${a}`;
}

function spanAttributes(kind: 'call' | 'event', a: string, b: string): Record<string, string> {
  if (kind === 'call') return { 'rpc.system': 'foundation', 'rpc.service': a, 'rpc.method': b };
  return b
    ? { 'messaging.destination.name': a, 'foundation.service': b }
    : { 'messaging.destination.name': a };
}

/** The outgoing half of one call or event: what goes on the wire, and the client span if any. */
export interface Outgoing {
  wire: WireContext | undefined;
  span: Span | undefined;
}

/**
 * Starts the client (or producer) side of a call: a span when OpenTelemetry records, and the
 * traceparent/baggage to send. Returns `wire: undefined` outside any context and trace, so an
 * untraced call carries nothing extra.
 */
export function outgoing(kind: 'call' | 'event', service: string, action: string): Outgoing {
  const store = als.getStore();
  const tracer = tracerIfOn();
  if (!store && !tracer) return NOTHING;
  let span: Span | undefined;
  let tp: string | undefined;
  if (tracer) {
    const active = otelContext.active();
    let parent = active;
    if (store?.traceId && !trace.getSpan(active)) {
      parent = remoteParent(store);
    }
    const s = tracer.startSpan(
      spanName(kind, service, action),
      {
        kind: kind === 'call' ? SpanKind.CLIENT : SpanKind.PRODUCER,
        attributes: spanAttributes(kind, service, action),
      },
      parent,
    );
    if (s.isRecording()) {
      span = s;
      const sc = s.spanContext();
      tp = `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
    } else s.end();
  }
  if (!tp && store?.traceId) tp = `00-${store.traceId}-${randomHex(8)}-0${store.sampled ? 1 : 0}`;
  let bg: string | undefined;
  if (store && store.values !== EMPTY) {
    store.baggage ??= encodeBaggage(store.values);
    if (store.baggage) bg = store.baggage;
  }
  if (!tp && !bg) return span ? { wire: undefined, span } : NOTHING;
  const wire: WireContext = {};
  if (tp) wire.tp = tp;
  if (bg) wire.bg = bg;
  return { wire, span };
}

/** Ends a client/producer span with the outcome. */
export function endSpan(span: Span | undefined, err?: unknown): void {
  if (!span) return;
  if (err !== undefined) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
  }
  span.end();
}

/**
 * Runs `fn` as the server (consumer) side of a call or event: inside the caller's context (values,
 * trace, `deadline`), under a server span whose parent is the caller's span when OTel records.
 */
export function runIncoming<T>(
  wire: WireContext | undefined,
  deadline: number | undefined,
  kind: 'call' | 'event',
  service: string,
  action: string,
  fn: () => T,
): { result: T; span: Span | undefined } {
  let traceId: string | undefined;
  let spanId: string | undefined;
  let sampled = true;
  if (wire?.tp && isTraceparent(wire.tp)) {
    traceId = wire.tp.slice(3, 35);
    spanId = wire.tp.slice(36, 52);
    sampled = (Number.parseInt(wire.tp.slice(53, 55), 16) & 1) === 1;
  }
  const store: Store = {
    values: wire?.bg ? decodeBaggage(wire.bg) : EMPTY,
    traceId,
    spanId,
    sampled,
    deadline,
    baggage: wire?.bg,
  };
  const tracer = tracerIfOn();
  if (!tracer) return { result: als.run(store, fn), span: undefined };
  let otelCtx = ROOT_CONTEXT;
  if (traceId) {
    otelCtx = remoteParent({ traceId, spanId, sampled });
  }
  const s = tracer.startSpan(
    spanName(kind, service, action),
    {
      kind: kind === 'call' ? SpanKind.SERVER : SpanKind.CONSUMER,
      attributes: spanAttributes(kind, service, action),
    },
    otelCtx,
  );
  if (!s.isRecording()) return { result: als.run(store, fn), span: undefined };
  otelCtx = trace.setSpan(otelCtx, s);
  store.traceId = s.spanContext().traceId;
  store.spanId = s.spanContext().spanId;
  return { result: als.run(store, () => otelContext.with(otelCtx, fn)), span: s };
}

/**
 * The propagation hook the composition root gives the cluster-wide layer (pub/sub) and the actor
 * runtime: the current context as `{ tp?, bg? }` (undefined outside any context: nothing extra on
 * the wire, one AsyncLocalStorage read), and running a handler inside a received one (checked as
 * a call's context is; invalid → no context). For an actor's message and with a recording
 * tracer, the handler runs under a consumer span whose parent is the sender's span; it ends when
 * the handler returns (an async handler's later work stays in its trace, as its children).
 */
export const propagation = {
  active(): boolean {
    return als.getStore() !== undefined;
  },
  capture(): WireContext | undefined {
    const store = als.getStore();
    if (!store) return undefined;
    let bg: string | undefined;
    if (store.values !== EMPTY) {
      store.baggage ??= encodeBaggage(store.values);
      if (store.baggage) bg = store.baggage;
    }
    const tp = store.traceId
      ? `00-${store.traceId}-${store.spanId ?? randomHex(8)}-0${store.sampled ? 1 : 0}`
      : undefined;
    if (!tp && !bg) return undefined;
    const wire: WireContext = {};
    if (tp) wire.tp = tp;
    if (bg) wire.bg = bg;
    return wire;
  },
  run<T>(ctx: unknown, fn: () => T, actor?: { spanLabel(): string }): T {
    // No (valid) context: run outside any, explicitly — the receiving code may have been reached
    // through an async chain that began inside some other context.
    if (ctx === undefined) return als.run(NO_STORE, fn);
    const d = decodeWireContext(ctx, SERVICE_LIMITS);
    if (!d.ok) return als.run(NO_STORE, fn);
    const w = d.value;
    const store: Store = {
      values: w.bg ? decodeBaggage(w.bg) : EMPTY,
      traceId: w.tp?.slice(3, 35),
      spanId: w.tp?.slice(36, 52),
      sampled: w.tp ? (Number.parseInt(w.tp.slice(53, 55), 16) & 1) === 1 : true,
      deadline: undefined,
      baggage: w.bg,
    };
    const tracer = actor === undefined ? undefined : tracerIfOn();
    if (!tracer) return als.run(store, fn);
    let parent = ROOT_CONTEXT;
    if (store.traceId) {
      parent = remoteParent(store);
    }
    const s = tracer.startSpan(
      'actor message',
      {
        kind: SpanKind.CONSUMER,
        attributes: { 'messaging.system': 'foundation', 'foundation.actor': actor!.spanLabel() },
      },
      parent,
    );
    if (!s.isRecording()) return als.run(store, fn);
    store.traceId = s.spanContext().traceId;
    store.spanId = s.spanContext().spanId;
    const otelCtx = trace.setSpan(parent, s);
    try {
      return als.run(store, () => otelContext.with(otelCtx, fn));
    } catch (err) {
      endSpan(s, err);
      throw err;
    } finally {
      if (s.isRecording()) s.end();
    }
  },
};
