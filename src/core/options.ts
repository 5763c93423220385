// Start options of the core services (config, events, telemetry, HTTP endpoints), validated
// before the node opens any socket: a bad option is FND_ERR_INVALID_OPTION naming the field.
import { z } from 'zod';
import { FoundationError } from '../errors.js';
import type { ConfigOptions } from './config.js';

/** Opt-in HTTP endpoints: /health, /ready, /metrics, /cluster (docs/core-services.md). */
export interface HttpOptions {
  /** TCP port; 0 picks a free one (`node.http.port` tells which). Required. */
  port: number;
  /**
   * Address to listen on. Default '127.0.0.1'. Same rule as the node: a non-loopback address
   * needs the node to have a secret or `insecure: true` (the endpoints answer without one).
   */
  host?: string | undefined;
  /**
   * /ready answers 503 while a cluster of the node has fewer alive members than this, this node
   * included. Default 1 (a node alone is ready); set the cluster's expected size to hold traffic
   * until it has formed.
   */
  readyMinMembers?: number;
}

/** Where `node.events` keeps events. */
export interface EventsOptions {
  /** 'memory' (default): lost on exit. 'sqlite': a durable file (needs better-sqlite3). */
  storage?: 'memory' | 'sqlite';
  /** SQLite file; required with storage 'sqlite'. */
  path?: string;
  /** In-memory store: most events kept; the oldest go first. Default 100 000. */
  maxEvents?: number;
}

/** `node.telemetry`. */
export interface TelemetryOptions {
  /**
   * Collect Node runtime figures (event-loop delay, heap, GC) as metrics. Default true. Off: fewer
   * series and no event-loop-delay histogram running.
   */
  runtimeMetrics?: boolean;
}

/** The core-service fields of `Foundation.start` options. */
export interface CoreOptions {
  /** `node.config`: defaults, schema, updatable paths, file, environment. Default: empty. */
  config?: ConfigOptions;
  /** HTTP health and metrics endpoints. Default off. */
  http?: HttpOptions;
  /** `node.events` storage. Default in memory. */
  events?: EventsOptions;
  /** `node.telemetry`. */
  telemetry?: TelemetryOptions;
}

export const CORE_OPTION_KEYS = ['config', 'http', 'events', 'telemetry'] as const;

const schema = z.strictObject({
  config: z
    .strictObject({
      defaults: z.record(z.string(), z.unknown()).optional(),
      schema: z
        .custom<z.ZodType>(
          (v) =>
            typeof v === 'object' &&
            v !== null &&
            typeof (v as { safeParse?: unknown }).safeParse === 'function',
          { message: 'expected a zod schema' },
        )
        .optional(),
      updatable: z.array(z.string().min(1).max(256)).max(1024).optional(),
      file: z.string().min(1).optional(),
      env: z.record(z.string().min(1), z.string().min(1)).optional(),
    })
    .optional(),
  http: z
    .strictObject({
      port: z.number().int().min(0).max(65535),
      host: z.string().min(1).optional(),
      readyMinMembers: z.number().int().min(1).max(100_000).optional(),
    })
    .optional(),
  events: z
    .strictObject({
      storage: z.enum(['memory', 'sqlite']).optional(),
      path: z.string().min(1).optional(),
      maxEvents: z.number().int().min(1).max(100_000_000).optional(),
    })
    .optional(),
  telemetry: z.strictObject({ runtimeMetrics: z.boolean().optional() }).optional(),
});

/** Splits core-service options from the cluster options and validates them. */
export function splitCoreOptions<T extends object>(
  input: T | undefined,
): { core: CoreOptions; rest: Omit<T, keyof CoreOptions> } {
  const all = { ...(input ?? {}) } as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const k of CORE_OPTION_KEYS) {
    if (all[k] !== undefined) picked[k] = all[k];
    delete all[k];
  }
  const r = schema.safeParse(picked);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const keys =
      issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : undefined;
    const field = [...issue.path, ...(keys ? [keys[0]] : [])].join('.');
    throw new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${issue.message}`, {
      field,
      issue: issue.message,
    });
  }
  const core = r.data as CoreOptions;
  if (core.events?.storage === 'sqlite' && !core.events.path) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      'option "events.path": required for sqlite',
      {
        field: 'events.path',
      },
    );
  }
  return { core, rest: all as Omit<T, keyof CoreOptions> };
}
