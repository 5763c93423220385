// `node.telemetry`: metrics on prom-client, one registry per node. Your own counters, gauges and
// histograms; every Foundation diagnostics channel and the node's runtime figures as metrics;
// Prometheus exposition; metrics of every node gathered over node-level messaging; and
// EWMA + z-score anomaly flags (statistics on past samples, not prediction).
import diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import client from 'prom-client';
import type { DistContext } from '../dist/context.js';
import { FoundationError } from '../errors.js';
import type { TimerHandle } from '../util/clock.js';
import { CHANNELS, publish } from '../util/diagnostics.js';
import {
  CORE_KINDS,
  type CoreLimits,
  decodeMetrics,
  type MetricFamily,
  stoppedError,
} from './wire.js';

export type Labels = Record<string, string | number>;

export interface CounterLike {
  inc(n?: number): void;
}
export interface GaugeLike {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
}
export interface HistogramLike {
  observe(v: number): void;
}

/** What telemetry reads from the node at scrape time (never on a hot path). */
export interface TelemetrySource {
  members(): Array<{ status: string; self?: true }>;
  actors(): {
    count: number;
    mailboxDepth: number;
    dropped: number;
    crashes: number;
    runQueue: number;
  };
  /** Lifeguard local-health score (0 healthy; higher: this node is slow to answer probes). */
  health(): number;
  registrySize(): number;
  /** Messages sent and received per channel since start, summed over the node's clusters. */
  transport(): { sent: Record<string, number>; received: Record<string, number> };
  /** The process's busy poller (`busyPollUs`): windows started, and its two hit averages. */
  busyPoll(): { windows: number; score: { sent: number; received: number } };
}

export type Aggregation = 'sum' | 'avg' | 'min' | 'max';

export interface ClusterMetrics {
  /** Each metric summed (or averaged, ...) over the nodes that answered, per label set. */
  metrics: Array<{ name: string; labels: Labels; value: number; nodes: number }>;
  /** Nodes that answered (this one included). */
  nodes: string[];
  /** Members that did not answer in time or sent something invalid. */
  missing: string[];
}

export interface AnomalyOptions {
  /** EWMA weight of each new sample, 0 < alpha ≤ 1. Default 0.3. */
  alpha?: number;
  /** |z| at or above which a sample is flagged. Default 3. */
  threshold?: number;
  /** Samples before anything is flagged (the mean and variance settle first). Default 10. */
  warmup?: number;
}

export interface Anomaly {
  metric: string;
  value: number;
  mean: number;
  stddev: number;
  z: number;
}

/**
 * Exponentially weighted mean and variance of a series; `observe` returns the z-score of the
 * sample against the estimate *before* it, and whether |z| crossed the threshold. Statistics of
 * the past, not a forecast: it flags a sample unlike the recent ones.
 */
export class EwmaDetector {
  private mean = 0;
  private variance = 0;
  private n = 0;
  readonly alpha: number;
  readonly threshold: number;
  readonly warmup: number;

  constructor(opts: AnomalyOptions = {}) {
    this.alpha = opts.alpha ?? 0.3;
    this.threshold = opts.threshold ?? 3;
    this.warmup = opts.warmup ?? 10;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw badArg('alpha', 'in (0, 1]');
    if (!(this.threshold > 0)) throw badArg('threshold', '> 0');
    if (!Number.isSafeInteger(this.warmup) || this.warmup < 2)
      throw badArg('warmup', 'an integer ≥ 2');
  }

  observe(x: number): { z: number; anomalous: boolean; mean: number; stddev: number } {
    const mean = this.mean;
    const stddev = Math.sqrt(this.variance);
    let z = 0;
    if (this.n > 0) {
      const d = x - mean;
      z = stddev > 0 ? d / stddev : d === 0 ? 0 : Number.POSITIVE_INFINITY * Math.sign(d);
    }
    const anomalous = this.n >= this.warmup && Math.abs(z) >= this.threshold;
    if (this.n === 0) this.mean = x;
    else {
      const d = x - this.mean;
      this.mean += this.alpha * d;
      this.variance = (1 - this.alpha) * (this.variance + this.alpha * d * d);
    }
    this.n++;
    return { z, anomalous, mean, stddev };
  }
}

function badArg(argument: string, what: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_ARGUMENT', `${argument}: ${what}`, { argument });
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkLabels(labels: Labels | undefined): Labels {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null) throw badArg('labels', 'an object');
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL.test(k) || k.startsWith('__')) throw badArg('labels', `bad label name "${k}"`);
    if (typeof v !== 'string' && typeof v !== 'number')
      throw badArg('labels', `"${k}" must be a string or number`);
  }
  return labels;
}

type AnyMetric = client.Counter<string> | client.Gauge<string> | client.Histogram<string>;

let runtimeRegistry: client.Registry | undefined;

/**
 * prom-client's default metrics (the runtime figures), made once per process: they read
 * process-wide sources that prom-client never lets go (an event-loop delay histogram, a GC
 * observer), so a set per node would leave one of each behind every node that stops. Every
 * node's registry holds these same metric objects; the `node` label is the registry's own.
 */
function runtimeMetrics(): client.Metric[] {
  if (runtimeRegistry === undefined) {
    runtimeRegistry = new client.Registry();
    client.collectDefaultMetrics({ register: runtimeRegistry });
  }
  const r = runtimeRegistry;
  return r.getMetricsAsArray().map((m) => r.getSingleMetric(m.name)!);
}

/** Events of node.telemetry. */
export interface TelemetryEvents {
  /** A watched metric's sample was flagged by its EWMA + z-score detector. */
  anomaly: [Anomaly];
}

export class Telemetry extends EventEmitter<TelemetryEvents> {
  /** This node's prom-client registry (register your own prom-client metrics here too). */
  readonly registry = new client.Registry();
  private readonly metrics = new Map<
    string,
    { kind: string; labelNames: string; metric: AnyMetric }
  >();
  private readonly unsubscribe: Array<() => void> = [];
  private readonly watches: TimerHandle[] = [];
  private stopped = false;

  constructor(
    private readonly ctx: DistContext,
    private readonly source: TelemetrySource,
    private readonly limits: CoreLimits,
    withRuntime: boolean,
  ) {
    super();
    this.registry.setDefaultLabels({ node: ctx.self });
    if (withRuntime) for (const m of runtimeMetrics()) this.registry.registerMetric(m);
    this.nodeGauges();
    this.channelMetrics();
    ctx.net.handle(CORE_KINDS.metrics, async () => {
      // Stopping (the registry is cleared): the asker lists this node as missing, not as empty.
      if (this.stopped) throw stoppedError('telemetry');
      return this.snapshot();
    });
  }

  private get<T extends AnyMetric>(
    kind: 'counter' | 'gauge' | 'histogram',
    name: string,
    labels: Labels,
    make: (labelNames: string[]) => T,
  ): T {
    if (typeof name !== 'string' || !NAME.test(name) || name.length > 200)
      throw badArg('name', `"${String(name)}" is not a Prometheus metric name`);
    const labelNames = Object.keys(labels).sort();
    const key = labelNames.join(',');
    const have = this.metrics.get(name);
    if (have) {
      if (have.kind !== kind || have.labelNames !== key) {
        throw badArg(
          'name',
          `"${name}" is already a ${have.kind} with labels [${have.labelNames}]`,
        );
      }
      return have.metric as T;
    }
    if (this.registry.getSingleMetric(name)) throw badArg('name', `"${name}" is a built-in metric`);
    const metric = make(labelNames);
    this.metrics.set(name, { kind, labelNames: key, metric });
    return metric;
  }

  /** A counter (`.inc(n)`); the same name and label names give the same series family. */
  counter(name: string, labels?: Labels, help?: string): CounterLike {
    const l = checkLabels(labels);
    const c = this.get(
      'counter',
      name,
      l,
      (labelNames) =>
        new client.Counter({ name, help: help ?? name, labelNames, registers: [this.registry] }),
    );
    const child = c.labels(l);
    return {
      inc: (n = 1) => {
        if (!(Number.isFinite(n) && n >= 0)) throw badArg('n', 'a finite number ≥ 0');
        child.inc(n);
      },
    };
  }

  /** A gauge (`.set(v)`, `.inc(n)`, `.dec(n)`). */
  gauge(name: string, labels?: Labels, help?: string): GaugeLike {
    const l = checkLabels(labels);
    const g = this.get(
      'gauge',
      name,
      l,
      (labelNames) =>
        new client.Gauge({ name, help: help ?? name, labelNames, registers: [this.registry] }),
    );
    const child = g.labels(l);
    const num = (v: number) => {
      if (!Number.isFinite(v)) throw badArg('value', 'a finite number');
      return v;
    };
    return {
      set: (v) => child.set(num(v)),
      inc: (n = 1) => child.inc(num(n)),
      dec: (n = 1) => child.dec(num(n)),
    };
  }

  /** A histogram (`.observe(v)`); `buckets` default prom-client's (seconds-scale). */
  histogram(
    name: string,
    labels?: Labels,
    opts: { help?: string; buckets?: number[] } = {},
  ): HistogramLike {
    const l = checkLabels(labels);
    const h = this.get(
      'histogram',
      name,
      l,
      (labelNames) =>
        new client.Histogram({
          name,
          help: opts.help ?? name,
          labelNames,
          registers: [this.registry],
          ...(opts.buckets ? { buckets: opts.buckets } : {}),
        }),
    );
    const child = h.labels(l);
    return {
      observe: (v) => {
        if (!Number.isFinite(v)) throw badArg('value', 'a finite number');
        child.observe(v);
      },
    };
  }

  /**
   * Runs `fn` and records its duration in seconds in histogram `name` with an extra label
   * `outcome` ('ok' or 'error'). Returns (or rethrows) what `fn` does.
   */
  async measure<T>(name: string, labels: Labels | undefined, fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw badArg('fn', 'a function');
    const l = checkLabels(labels);
    if ('outcome' in l) throw badArg('labels', '"outcome" is set by measure');
    const start = performance.now();
    let outcome = 'ok';
    try {
      return await fn();
    } catch (err) {
      outcome = 'error';
      throw err;
    } finally {
      this.histogram(name, { ...l, outcome }).observe((performance.now() - start) / 1000);
    }
  }

  /** Every metric of this node in the Prometheus text format. */
  getMetrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of getMetrics() (for an HTTP response). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** This node's metrics as plain data (what other nodes receive). */
  async snapshot(): Promise<MetricFamily[]> {
    const json = await this.registry.getMetricsAsJSON();
    return json.slice(0, this.limits.maxMetricFamilies).map((f) => ({
      name: f.name,
      type: String(f.type),
      help: f.help,
      values: (f.values ?? []).map((v) => {
        const labels: Labels = {};
        for (const [k, x] of Object.entries(v.labels ?? {}))
          if (typeof x === 'string' || typeof x === 'number') labels[k] = x;
        const out: MetricFamily['values'][number] = { value: v.value, labels };
        const metricName = (v as { metricName?: string }).metricName;
        if (metricName !== undefined) out.metricName = metricName;
        return out;
      }),
    }));
  }

  /**
   * Gathers every alive member's metrics (over node-level messaging, `core:metrics`) and combines
   * each series (name + labels other than `node`) by `aggregation`. Members that do not answer
   * within the request timeout, or answer with something invalid, are listed in `missing`.
   */
  async getClusterMetrics(
    opts: { aggregation?: Aggregation; timeoutMs?: number } = {},
  ): Promise<ClusterMetrics> {
    const aggregation = opts.aggregation ?? 'sum';
    if (!['sum', 'avg', 'min', 'max'].includes(aggregation))
      throw badArg('aggregation', "'sum' | 'avg' | 'min' | 'max'");
    const peers = this.ctx.members.peers();
    const replies = await Promise.allSettled(
      peers.map((p) =>
        this.ctx.net.request(
          p,
          CORE_KINDS.metrics,
          null,
          opts.timeoutMs ?? this.ctx.requestTimeoutMs,
        ),
      ),
    );
    const perNode: Array<[string, MetricFamily[]]> = [[this.ctx.self, await this.snapshot()]];
    const missing: string[] = [];
    for (const [i, r] of replies.entries()) {
      const node = peers[i]!;
      if (r.status === 'rejected') {
        missing.push(node);
        continue;
      }
      const d = decodeMetrics(r.value, this.limits);
      if (!d.ok) {
        this.ctx.log.warn({ from: node, reason: d.reason }, 'metrics reply refused');
        missing.push(node);
        continue;
      }
      perNode.push([node, d.value]);
    }
    const series = new Map<string, { name: string; labels: Labels; values: number[] }>();
    for (const [, families] of perNode) {
      for (const f of families) {
        for (const v of f.values) {
          const { node: _node, ...labels } = v.labels;
          const name = v.metricName ?? f.name;
          const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
          let s = series.get(key);
          if (!s) {
            s = { name, labels, values: [] };
            series.set(key, s);
          }
          s.values.push(v.value);
        }
      }
    }
    const combine = (xs: number[]) =>
      aggregation === 'sum'
        ? xs.reduce((a, b) => a + b, 0)
        : aggregation === 'avg'
          ? xs.reduce((a, b) => a + b, 0) / xs.length
          : aggregation === 'min'
            ? Math.min(...xs)
            : Math.max(...xs);
    return {
      metrics: [...series.values()]
        .map((s) => ({
          name: s.name,
          labels: s.labels,
          value: combine(s.values),
          nodes: s.values.length,
        }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      nodes: perNode.map(([n]) => n),
      missing,
    };
  }

  /**
   * Samples metric `name` (the sum over its label sets; for a counter, the increase since the
   * previous sample) every `intervalMs` and runs it through an EWMA + z-score detector; a flagged
   * sample emits `anomaly` and is published on `foundation:telemetry:anomaly`. Returns a stop
   * function.
   */
  watch(name: string, opts: AnomalyOptions & { intervalMs?: number } = {}): () => void {
    const det = new EwmaDetector(opts);
    const intervalMs = opts.intervalMs ?? 10_000;
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 1)
      throw badArg('intervalMs', 'an integer ≥ 1');
    if (!this.registry.getSingleMetric(name)) throw badArg('name', `no metric "${name}"`);
    let previous: number | undefined;
    let busy = false;
    const timer = this.ctx.clock.setInterval(() => {
      if (busy) return;
      busy = true;
      void this.sample(name)
        .then(({ value, counter }) => {
          let x = value;
          if (counter) {
            const prev = previous;
            previous = value;
            if (prev === undefined) return;
            x = value - prev;
          }
          const r = det.observe(x);
          if (!r.anomalous) return;
          const a: Anomaly = { metric: name, value: x, mean: r.mean, stddev: r.stddev, z: r.z };
          publish('telemetryAnomaly', () => ({ node: this.ctx.self, ...a }));
          this.emit('anomaly', a);
        })
        .catch((err: unknown) =>
          this.ctx.log.warn({ metric: name, err: (err as Error).message }, 'sample failed'),
        )
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    this.watches.push(timer);
    return () => timer.cancel();
  }

  private async sample(name: string): Promise<{ value: number; counter: boolean }> {
    const m = this.registry.getSingleMetric(name);
    if (!m) throw new Error(`metric ${name} is gone`);
    const data = await m.get();
    const values = data.values.filter(
      (v) =>
        (v as { metricName?: string }).metricName === undefined ||
        (v as { metricName?: string }).metricName === `${name}_sum`,
    );
    return {
      value: values.reduce((a, v) => a + v.value, 0),
      counter: String(data.type) === 'counter',
    };
  }

  /** Gauges read from the node at scrape time. */
  private nodeGauges(): void {
    const r = [this.registry];
    const s = this.source;
    new client.Gauge({
      name: 'foundation_members',
      help: 'Members of the cluster by status, this node included',
      labelNames: ['status'],
      registers: r,
      collect() {
        this.reset();
        for (const m of s.members()) this.inc({ status: m.status });
      },
    });
    const actorGauge = (
      name: string,
      help: string,
      pick: (a: ReturnType<TelemetrySource['actors']>) => number,
    ) =>
      new client.Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(pick(s.actors()));
        },
      });
    actorGauge('foundation_actors', 'Actors alive on this node', (a) => a.count);
    actorGauge(
      'foundation_mailbox_depth',
      'Messages waiting in all mailboxes of this node',
      (a) => a.mailboxDepth,
    );
    actorGauge('foundation_run_queue', 'Actors waiting to run', (a) => a.runQueue);
    actorGauge(
      'foundation_mailbox_dropped',
      'Messages dropped by full mailboxes since start',
      (a) => a.dropped,
    );
    actorGauge(
      'foundation_actor_crashes',
      'Actors that exited abnormally since start',
      (a) => a.crashes,
    );
    new client.Gauge({
      name: 'foundation_local_health',
      help: 'Lifeguard local-health score of the failure detector (0 = healthy)',
      registers: r,
      collect() {
        this.set(s.health());
      },
    });
    new client.Counter({
      name: 'foundation_transport_messages_total',
      help: 'Messages queued to peers (direction="sent") and received from them, per channel; rate() gives messages/s',
      labelNames: ['direction', 'channel'],
      registers: r,
      collect() {
        this.reset();
        const t = s.transport();
        for (const direction of ['sent', 'received'] as const)
          for (const [channel, n] of Object.entries(t[direction]))
            if (n > 0) this.inc({ direction, channel }, n);
      },
    });
    new client.Counter({
      name: 'foundation_busy_poll_windows_total',
      help: 'Windows of busy polling started in this process (busyPollUs; shared by its nodes)',
      registers: r,
      collect() {
        this.reset();
        this.inc(s.busyPoll().windows);
      },
    });
    new client.Gauge({
      name: 'foundation_busy_poll_score',
      help: 'Busy poller hit average after a send or a receive (0-1); the process polls at 0.5 and above',
      labelNames: ['after'],
      registers: r,
      collect() {
        const { score } = s.busyPoll();
        this.set({ after: 'sent' }, score.sent);
        this.set({ after: 'received' }, score.received);
      },
    });
    new client.Gauge({
      name: 'foundation_registry_names',
      help: 'Names in the cluster-wide registry, as this node sees it',
      registers: r,
      collect() {
        this.set(s.registrySize());
      },
    });
  }

  /** Counters fed by every Foundation diagnostics channel. */
  private channelMetrics(): void {
    const r = [this.registry];
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new client.Counter({ name, help, labelNames, registers: r });
    const on = (channel: string, fn: (m: Record<string, unknown>) => void) => {
      const h = (m: unknown) => fn((m ?? {}) as Record<string, unknown>);
      diagnostics.subscribe(channel, h);
      this.unsubscribe.push(() => diagnostics.unsubscribe(channel, h));
    };
    const str = (v: unknown) => (typeof v === 'string' ? v : 'unknown');
    const self = this.ctx.self;
    const membership = counter(
      'foundation_membership_changes_total',
      'Member status changes seen by this node',
      ['status'],
    );
    on(CHANNELS.membershipChange, (m) => {
      if (m.node === self) membership.inc({ status: str(m.status) });
    });
    // Transport, discovery and protection channels carry no node name: in a process running
    // several nodes, each node's counters count the events of all of them.
    const connects = counter(
      'foundation_transport_connects_total',
      'Outbound links authenticated',
      ['channel'],
    );
    on(CHANNELS.transportConnect, (m) => connects.inc({ channel: str(m.channel) }));
    const disconnects = counter('foundation_transport_disconnects_total', 'Outbound links closed', [
      'channel',
    ]);
    on(CHANNELS.transportDisconnect, (m) => disconnects.inc({ channel: str(m.channel) }));
    const hsErrors = counter('foundation_transport_handshake_errors_total', 'Failed handshakes', [
      'code',
      'direction',
    ]);
    on(CHANNELS.transportHandshakeError, (m) =>
      hsErrors.inc({ code: str(m.code), direction: str(m.direction) }),
    );
    const frameErrors = counter(
      'foundation_transport_frame_errors_total',
      'Inbound links closed with an error',
      ['code'],
    );
    on(CHANNELS.transportFrameError, (m) => frameErrors.inc({ code: str(m.code) }));
    const dConnect = counter('foundation_discovery_joins_total', 'Join attempts by discovery', [
      'strategy',
      'ok',
    ]);
    on(CHANNELS.discoveryConnect, (m) => {
      const md = (m.metadata ?? {}) as Record<string, unknown>;
      dConnect.inc({ strategy: str(md.strategy), ok: String(md.ok === true) });
    });
    const dPoll = counter(
      'foundation_discovery_poll_errors_total',
      'Polls that could not read their source',
      ['strategy'],
    );
    on(CHANNELS.discoveryPollError, (m) =>
      dPoll.inc({ strategy: str(((m.metadata ?? {}) as Record<string, unknown>).strategy) }),
    );
    const dDropped = counter(
      'foundation_discovery_dropped_total',
      'Times discovered addresses were dropped over limits',
    );
    on(CHANNELS.discoveryDropped, () => dDropped.inc());
    const circuit = new client.Gauge({
      name: 'foundation_protection_circuit_open',
      help: 'Circuit breaker state per protection key: 0 closed, 0.5 half-open, 1 open or isolated',
      labelNames: ['key'],
      registers: r,
    });
    on(CHANNELS.protectionState, (m) => {
      const s = str(m.state);
      circuit.set({ key: str(m.key) }, s === 'closed' ? 0 : s === 'half-open' ? 0.5 : 1);
    });
    const rejected = counter(
      'foundation_protection_rejected_total',
      'Calls refused by node.protection',
      ['key', 'reason'],
    );
    on(CHANNELS.protectionRejected, (m) =>
      rejected.inc({ key: str(m.key), reason: str(m.reason) }),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    for (const w of this.watches.splice(0)) w.cancel();
    this.registry.clear();
  }
}
