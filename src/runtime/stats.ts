// Runtime health in numbers: actors, mailbox depth, event-loop delay (perf_hooks histogram) and
// heap, with plain-language warnings when a threshold is crossed. Nothing here is estimated.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { ActorSystem } from './system.js';

export interface RuntimeThresholds {
  /** Warn when the event loop's p99 delay exceeds this many ms. Default 100. */
  loopDelayP99Ms: number;
  /** Warn when used heap exceeds this fraction of the heap limit. Default 0.85. */
  heapUsedRatio: number;
  /** Warn when this many messages wait in all mailboxes together. Default 100000. */
  mailboxDepth: number;
}

export interface RuntimeStats {
  actors: number;
  mailboxDepth: number;
  /** Messages dropped by full mailboxes since start. */
  dropped: number;
  /** Actors that exited abnormally since start. */
  crashes: number;
  /** Actors waiting to run. */
  runQueue: number;
  /** Monitors held by this node's actors and callbacks. */
  monitors: number;
  /**
   * Actor messages from other nodes refused since start: malformed (FND_ERR_ACTOR_WIRE), forged
   * (FND_ERR_SIGNAL_FORGED), or over a node's system-message budget (FND_ERR_SIGNAL_OVERFLOW).
   */
  refused: { malformed: number; forged: number; overflow: number };
  /** Times the scheduler yielded to the event loop with work left (fairness at work). */
  schedulerYields: number;
  /** Event-loop delay since the previous stats() call, in ms (perf_hooks.monitorEventLoopDelay). */
  eventLoopDelay: { p50Ms: number; p99Ms: number; maxMs: number; meanMs: number };
  heap: { usedBytes: number; totalBytes: number; limitBytes: number; externalBytes: number };
  /** Plain-language warnings for thresholds crossed right now. */
  warnings: string[];
}

export const DEFAULT_THRESHOLDS: Readonly<RuntimeThresholds> = Object.freeze({
  loopDelayP99Ms: 100,
  heapUsedRatio: 0.85,
  mailboxDepth: 100_000,
});

const ns = (v: number) => (Number.isFinite(v) ? v / 1e6 : 0);

export class RuntimeMonitor {
  private histogram: IntervalHistogram | undefined;

  constructor(
    private readonly system: ActorSystem,
    private readonly thresholds: RuntimeThresholds = DEFAULT_THRESHOLDS,
  ) {}

  /** Starts sampling the event-loop delay (10 ms resolution). Idempotent. */
  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
  }

  stop(): void {
    this.histogram?.disable();
    this.histogram = undefined;
  }

  stats(): RuntimeStats {
    this.start();
    const h = this.histogram!;
    const heap = v8.getHeapStatistics();
    const s: RuntimeStats = {
      actors: this.system.size,
      mailboxDepth: this.system.mailboxDepth(),
      dropped: this.system.dropped,
      crashes: this.system.crashes,
      runQueue: this.system.scheduler.length,
      monitors: this.system.monitorCount,
      refused: { ...this.system.refused },
      schedulerYields: this.system.scheduler.yields,
      eventLoopDelay: {
        p50Ms: ns(h.percentile(50)),
        p99Ms: ns(h.percentile(99)),
        maxMs: ns(h.max),
        meanMs: ns(h.mean),
      },
      heap: {
        usedBytes: heap.used_heap_size,
        totalBytes: heap.total_heap_size,
        limitBytes: heap.heap_size_limit,
        externalBytes: heap.external_memory,
      },
      warnings: [],
    };
    h.reset();
    const t = this.thresholds;
    if (s.eventLoopDelay.p99Ms > t.loopDelayP99Ms) {
      s.warnings.push(
        `The event loop is lagging: 99% of delays were under ${s.eventLoopDelay.p99Ms.toFixed(1)} ms (threshold ${t.loopDelayP99Ms} ms). Something blocks it; move CPU-heavy work to cpuIntensive() or worker threads.`,
      );
    }
    if (s.heap.usedBytes > t.heapUsedRatio * s.heap.limitBytes) {
      s.warnings.push(
        `The heap is ${Math.round((100 * s.heap.usedBytes) / s.heap.limitBytes)}% full (${(s.heap.usedBytes / 2 ** 20).toFixed(0)} MiB of ${(s.heap.limitBytes / 2 ** 20).toFixed(0)} MiB). Look for growing mailboxes or caches, or raise --max-old-space-size.`,
      );
    }
    if (s.mailboxDepth > t.mailboxDepth) {
      s.warnings.push(
        `${s.mailboxDepth} messages are waiting in mailboxes (threshold ${t.mailboxDepth}). Producers are faster than consumers; bound the mailboxes or add workers.`,
      );
    }
    return s;
  }
}
