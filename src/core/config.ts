// `node.config`: the node's configuration, layered defaults → file → environment → runtime, with
// a zod schema checked on every change and subscribers told of every change. Runtime changes are
// local (`update`) or cluster-wide (`setClusterWide`, replicated by ./config-sync.ts, last writer
// wins on hybrid logical clocks) or agreed through `node.consensus` (`setWithConsensus`, applied
// on every node by ./config-consensus.ts). Only paths declared updatable at start can change at
// runtime.
import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { FoundationError } from '../errors.js';
import { compareHlc, type Hlc, type HybridClock } from '../util/hlc.js';
import type { Logger } from '../util/log.js';

/** Configuration declared at start: `Foundation.start({ config: {...} })`. */
export interface ConfigOptions {
  /** The base configuration (an object). Default `{}`. */
  defaults?: Record<string, unknown>;
  /**
   * A zod schema the whole merged configuration must satisfy, at start and after every change.
   * Default none (any value is accepted).
   */
  schema?: z.ZodType;
  /**
   * Paths that may change at runtime: an exact path (`app.mode`) or `prefix.*` (anything under
   * `prefix`); `*` alone allows every path. Default `[]`: nothing changes at runtime.
   */
  updatable?: string[];
  /** A JSON file whose object is merged over the defaults. Default none. */
  file?: string;
  /**
   * Environment variables merged over the file: config path → variable name
   * (`{ 'db.host': 'DB_HOST' }`). A value that parses as JSON is taken as such (`8080`, `true`,
   * `{"a":1}`), anything else as a string. Default none.
   */
  env?: Record<string, string>;
}

/** One change of the configuration, as subscribers see it. */
export interface ConfigChange {
  path: string;
  oldValue: unknown;
  newValue: unknown;
  /**
   * `local` (update, reset), `cluster` (setClusterWide here or on another node) or `consensus`
   * (setWithConsensus here or on another node).
   */
  source: 'local' | 'cluster' | 'consensus';
}

/** A runtime value: where it came from and when it was written, for last-writer-wins ordering. */
interface Override {
  value: unknown;
  ts: Hlc;
  origin: string;
  source: 'local' | 'cluster';
}

/**
 * What Config needs from the consensus group (./config-consensus.ts): writes `path` through the
 * group and resolves once committed (rejecting with the consensus layer's coded errors).
 */
export interface ConfigConsensus {
  write(path: string, value: unknown): Promise<void>;
}

/** The values agreed through consensus, in the order they were written (later ones win). */
export type ConsensusEntries = ReadonlyArray<readonly [path: string, value: unknown]>;

/** What Config needs from the cluster-wide replication (./config-sync.ts). */
export interface ConfigReplication {
  /** Announces a value written here; the replication stamps nothing itself. */
  publish(path: string, value: unknown, ts: Hlc): void;
}

const FORBIDDEN = new Set(['__proto__', 'prototype', 'constructor']);
const MAX_PATH = 256;
const MAX_SEGMENTS = 32;
/** Changes kept for an async iterator that is not being read; older ones are dropped. */
const ITERATOR_BUFFER = 1024;

/** Splits a dotted path, refusing empty, over-long and prototype-reaching ones. */
export function splitPath(path: unknown): string[] {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH) {
    throw new FoundationError('FND_ERR_CONFIG_PATH', `bad config path ${JSON.stringify(path)}`, {
      path,
    });
  }
  const parts = path.split('.');
  if (parts.length > MAX_SEGMENTS || parts.some((p) => p.length === 0 || FORBIDDEN.has(p))) {
    throw new FoundationError('FND_ERR_CONFIG_PATH', `bad config path "${path}"`, { path });
  }
  return parts;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function lookup(root: unknown, parts: string[]): { found: boolean; value: unknown } {
  let cur = root;
  for (const p of parts) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, p)) return { found: false, value: undefined };
    cur = cur[p];
  }
  return { found: true, value: cur };
}

/** Sets `parts` in `root` (mutating), creating plain objects on the way. */
function assign(root: Record<string, unknown>, parts: string[], value: unknown): void {
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (isPlainObject(next)) cur = next;
    else {
      const made: Record<string, unknown> = {};
      cur[p] = made;
      cur = made;
    }
  }
  cur[parts[parts.length - 1]!] = value;
}

/** Deep merge of plain objects; arrays and other values replace. */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(over)) {
    if (FORBIDDEN.has(k)) continue;
    const cur = base[k];
    if (isPlainObject(cur) && isPlainObject(v)) merge(cur, v);
    else base[k] = structuredClone(v);
  }
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Whether `path` is covered by one of `patterns` (exact, `prefix.*`, or `*`). */
export function matchesUpdatable(patterns: readonly string[], path: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === path) return true;
    if (p.endsWith('.*') && path.startsWith(p.slice(0, -1))) return true;
  }
  return false;
}

/** Reads defaults, file and environment: the base every runtime change is applied over. */
export async function loadConfigSources(
  opts: ConfigOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, unknown>> {
  const base: Record<string, unknown> = {};
  if (opts.defaults !== undefined) {
    if (!isPlainObject(opts.defaults)) {
      throw new FoundationError('FND_ERR_INVALID_OPTION', 'option "config.defaults": an object', {
        field: 'config.defaults',
      });
    }
    merge(base, opts.defaults);
  }
  if (opts.file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(opts.file, 'utf8'));
    } catch (err) {
      throw new FoundationError(
        'FND_ERR_CONFIG_SOURCE',
        `config file ${opts.file}: ${(err as Error).message}`,
        { source: opts.file },
        { cause: err },
      );
    }
    if (!isPlainObject(parsed)) {
      throw new FoundationError(
        'FND_ERR_CONFIG_SOURCE',
        `config file ${opts.file} is not a JSON object`,
        { source: opts.file },
      );
    }
    merge(base, parsed);
  }
  for (const [path, variable] of Object.entries(opts.env ?? {})) {
    const parts = splitPath(path);
    const raw = env[variable];
    if (raw === undefined) continue;
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // Not JSON: the string itself.
    }
    assign(base, parts, value);
  }
  return base;
}

/** Checks the merged start configuration against the schema (before the node listens). */
export function validateConfig(opts: ConfigOptions, base: Record<string, unknown>): void {
  validate(opts.schema, base, 'configuration at start');
}

/** Throws FND_ERR_CONFIG_INVALID naming the first offending path. */
function validate(schema: z.ZodType | undefined, candidate: unknown, context: string): void {
  if (!schema) return;
  const r = schema.safeParse(candidate);
  if (r.success) return;
  const issue = r.error.issues[0]!;
  const path = issue.path.map(String).join('.') || '(root)';
  throw new FoundationError('FND_ERR_CONFIG_INVALID', `${context}: "${path}": ${issue.message}`, {
    path,
    issue: issue.message,
  });
}

type Listener = (change: ConfigChange) => void;

export class Config {
  private readonly base: Record<string, unknown>;
  private readonly local = new Map<string, Override>();
  private readonly cluster = new Map<string, Override>();
  private current: Record<string, unknown>;
  private readonly listeners = new Set<Listener>();
  /** Ends each open `changes()` iterator (on stop). */
  private readonly iterators = new Set<() => void>();
  private stopped = false;
  private replication: ConfigReplication | undefined;
  private consensus: ConfigConsensus | undefined;
  /** The group's committed values (whole set, at `consensusRevision`): applied over the rest. */
  private consensusEntries: ConsensusEntries = [];
  private consensusRevision = 0;
  private readonly patterns: readonly string[];

  /** `base` comes from loadConfigSources; it is validated here (FND_ERR_CONFIG_INVALID). */
  constructor(
    private readonly opts: ConfigOptions,
    base: Record<string, unknown>,
    private readonly hlc: HybridClock,
    private readonly self: string,
    private readonly log: Logger,
    private readonly reload: () => Promise<Record<string, unknown>>,
  ) {
    validate(opts.schema, base, 'configuration at start');
    this.base = base;
    this.current = deepFreeze(structuredClone(base));
    this.patterns = [...(opts.updatable ?? [])];
    for (const p of this.patterns) {
      if (p !== '*') splitPath(p.endsWith('.*') ? p.slice(0, -2) : p);
    }
  }

  /** Connects cluster-wide replication (done by the node once the cluster layer exists). */
  attach(replication: ConfigReplication): void {
    this.replication = replication;
  }

  /** Connects the consensus group (done by the node; setWithConsensus needs it). */
  attachConsensus(consensus: ConfigConsensus): void {
    this.consensus = consensus;
  }

  /**
   * The whole configuration (no path) or the value at `path`, deep-frozen (copy it to modify).
   * FND_ERR_CONFIG_PATH when `path` names nothing.
   */
  get<T = unknown>(path?: string): T {
    if (path === undefined) return this.current as T;
    const r = lookup(this.current, splitPath(path));
    if (!r.found) {
      throw new FoundationError('FND_ERR_CONFIG_PATH', `no config value at "${path}"`, { path });
    }
    return r.value as T;
  }

  /** Whether `path` holds a value. */
  has(path: string): boolean {
    return lookup(this.current, splitPath(path)).found;
  }

  /** The patterns of paths that may change at runtime, as declared at start. */
  updatablePaths(): string[] {
    return [...this.patterns];
  }

  /**
   * Changes `path` on this node only. FND_ERR_CONFIG_NOT_UPDATABLE when no pattern covers it,
   * FND_ERR_CONFIG_INVALID (naming the path) when the result fails the schema; nothing changes
   * then. Subscribers are told synchronously, before this returns.
   */
  update(path: string, value: unknown): void {
    this.write(path, value, 'local');
  }

  /**
   * Changes `path` on every node of the cluster: replicated, last writer wins by hybrid logical
   * clock (ties by node name), so every node converges on the same value, also after a partition
   * heals. Resolves once applied here; other nodes apply it as it reaches them.
   */
  async setClusterWide(path: string, value: unknown): Promise<void> {
    if (!this.replication) {
      throw new FoundationError('FND_ERR_NOT_AVAILABLE', 'cluster-wide config is not attached', {
        feature: 'cluster-config',
      });
    }
    this.write(path, value, 'cluster');
  }

  /**
   * Changes `path` on every node through the consensus group: checked here like `update` (same
   * coded errors, before anything is proposed), then written with compare-and-set on the group's
   * KV (key `foundation/config`), so no concurrent consensus write is lost. Resolves once committed
   * and applied here; every node applies committed values in the group's order. A consensus value
   * takes precedence over local and cluster-wide values of the same path. Rejects with
   * FND_ERR_CONSENSUS_NOT_STARTED before `node.consensus.start()`, FND_ERR_CONSENSUS_UNAVAILABLE
   * when no majority answers in time (the write may still commit later, once; nothing is applied
   * until it does).
   */
  async setWithConsensus(path: string, value: unknown): Promise<void> {
    this.check(path, value, true);
    if (!this.consensus) {
      throw new FoundationError('FND_ERR_NOT_AVAILABLE', 'consensus is not attached', {
        feature: 'consensus',
        path,
      });
    }
    await this.consensus.write(path, structuredClone(value));
  }

  /**
   * Validates a runtime write and returns its deep copy. With `overConsensus`, the candidate is the
   * configuration with the value on top of everything (where a consensus value lands).
   */
  private check(path: string, value: unknown, overConsensus = false): unknown {
    const parts = splitPath(path);
    if (!matchesUpdatable(this.patterns, path)) {
      throw new FoundationError('FND_ERR_CONFIG_NOT_UPDATABLE', `"${path}" is not updatable`, {
        path,
      });
    }
    if (value === undefined) {
      throw new FoundationError('FND_ERR_CONFIG_INVALID', `"${path}": a value is required`, {
        path,
        issue: 'undefined',
      });
    }
    let copy: unknown;
    try {
      copy = structuredClone(value);
    } catch (err) {
      throw new FoundationError(
        'FND_ERR_CONFIG_INVALID',
        `"${path}": not plain data (${(err as Error).message})`,
        { path, issue: 'not cloneable' },
      );
    }
    const candidate = structuredClone(this.current);
    assign(candidate, parts, copy);
    validate(this.opts.schema, candidate, overConsensus ? 'setWithConsensus' : 'update');
    return copy;
  }

  /**
   * Replaces the consensus values with the group's committed set at `revision` (ignored unless
   * newer than the one held). Returns whether it was applied. Values the local schema or
   * updatable list refuse are skipped when the configuration is rebuilt (logged).
   */
  applyConsensus(entries: ConsensusEntries, revision: number): boolean {
    if (revision <= this.consensusRevision) return false;
    const before = new Map(this.consensusEntries.map(([p, v]) => [p, v]));
    this.consensusRevision = revision;
    this.consensusEntries = entries.map(([p, v]) => [p, structuredClone(v)] as const);
    const touched = new Set<string>(before.keys());
    for (const [p, v] of entries) if (!isDeepStrictEqual(before.get(p), v)) touched.add(p);
    this.recompute([...touched], 'consensus');
    return true;
  }

  private write(path: string, value: unknown, source: 'local' | 'cluster'): void {
    const copy = this.check(path, value);
    const ts = this.hlc.now();
    const o: Override = { value: copy, ts, origin: this.self, source };
    if (source === 'local') this.local.set(path, o);
    else {
      // Published first: a value replication refuses (FND_ERR_DIST_LIMIT) is not kept here
      // either, or this node would hold (and prefer) a value no other node has.
      this.replication?.publish(path, copy, ts);
      this.cluster.set(path, o);
    }
    this.recompute([path], source);
  }

  /**
   * Applies a cluster-wide value received from another node (or adopted from one): kept when it
   * is newer than what this node holds for `path`. Returns whether it was. A value the local
   * schema or updatable list refuses is kept for ordering but not applied (logged).
   */
  applyRemote(path: string, value: unknown, ts: Hlc, origin: string): boolean {
    const cur = this.cluster.get(path);
    if (cur && compareWinner(cur.ts, cur.origin, ts, origin) >= 0) return false;
    this.hlc.observe(ts);
    this.cluster.set(path, { value, ts, origin, source: 'cluster' });
    this.recompute([path], 'cluster');
    return true;
  }

  /**
   * Whether this node lets `path` be updated at run time. A received value on such a path is kept
   * even when the schema refuses it with what else is set now: recompute skips it in timestamp
   * order, which every member with the same schema does alike, whatever order values arrived in.
   */
  updatable(path: string): boolean {
    return matchesUpdatable(this.patterns, path);
  }

  /** The cluster-wide value this node holds for `path` (for the replication's own partition). */
  clusterEntry(path: string): { value: unknown; ts: Hlc; origin: string } | undefined {
    return this.cluster.get(path);
  }

  /**
   * Drops this node's local runtime updates and reads file and environment again. Cluster-wide
   * values stay (they are the cluster's; overwrite them with setClusterWide).
   */
  async reset(): Promise<void> {
    const fresh = await this.reload();
    validate(this.opts.schema, fresh, 'configuration on reset');
    const touched = [...this.local.keys()];
    this.local.clear();
    for (const k of Object.keys(this.base)) delete this.base[k];
    Object.assign(this.base, fresh);
    this.recompute(touched.length > 0 ? touched : [], 'local', true);
  }

  /**
   * Calls `fn` for every change (of `path` or anything under it, when given). Returns the
   * unsubscribe function. `fn` runs synchronously after the change; it must not throw (a throw
   * is logged) and must not block.
   */
  subscribe(fn: Listener, path?: string): () => void {
    const filter = path === undefined ? undefined : splitPath(path).join('.');
    const l: Listener =
      filter === undefined
        ? fn
        : (c) => {
            if (
              c.path === filter ||
              c.path.startsWith(`${filter}.`) ||
              filter.startsWith(`${c.path}.`)
            )
              fn(c);
          };
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }

  /**
   * The changes from now on, as an async iterator (`for await (const c of node.config.changes())`).
   * Breaking out of the loop unsubscribes. Up to 1024 unread changes are buffered; older ones are
   * dropped. The loop ends (after the buffered changes) when the node stops.
   */
  changes(path?: string): AsyncIterableIterator<ConfigChange> {
    const buffer: ConfigChange[] = [];
    let wake: ((r: IteratorResult<ConfigChange>) => void) | undefined;
    let done = this.stopped;
    const off = this.subscribe((c) => {
      if (wake) {
        const w = wake;
        wake = undefined;
        w({ value: c, done: false });
        return;
      }
      buffer.push(c);
      if (buffer.length > ITERATOR_BUFFER) buffer.shift();
    }, path);
    const it: AsyncIterableIterator<ConfigChange> = {
      next: () => {
        const c = buffer.shift();
        if (c) return Promise.resolve({ value: c, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((r) => {
          wake = r;
        });
      },
      return: () => {
        done = true;
        off();
        this.iterators.delete(end);
        const w = wake;
        wake = undefined;
        w?.({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    const end = () => void it.return!();
    if (done) off();
    else this.iterators.add(end);
    return it;
  }

  /** The node is stopping: every `changes()` loop ends once it has read what is buffered. */
  stop(): void {
    this.stopped = true;
    for (const end of [...this.iterators]) end();
  }

  /**
   * Rebuilds the effective configuration: the base, then every runtime value in timestamp order
   * (so the latest write to overlapping paths wins). A cluster value that the schema or the
   * updatable list refuses here is skipped. Tells subscribers about each of `paths` that changed.
   */
  private recompute(paths: string[], source: 'local' | 'cluster' | 'consensus', all = false): void {
    const before = this.current;
    const next = structuredClone(this.base);
    const ordered: Array<[string, { value: unknown; origin: string }]> = [
      ...this.local.entries(),
      ...this.cluster.entries(),
    ].sort((a, b) => compareWinner(a[1].ts, a[1].origin, b[1].ts, b[1].origin));
    // Consensus values go last, in the group's write order: they win over local and LWW values.
    for (const [p, v] of this.consensusEntries)
      ordered.push([p, { value: v, origin: 'consensus' }]);
    for (const [path, o] of ordered) {
      if (!matchesUpdatable(this.patterns, path)) continue;
      const parts = splitPath(path);
      if (this.opts.schema) {
        const candidate = structuredClone(next);
        assign(candidate, parts, structuredClone(o.value));
        if (!this.opts.schema.safeParse(candidate).success) {
          this.log.warn({ path, origin: o.origin }, 'config value refused by the schema');
          continue;
        }
      }
      assign(next, parts, structuredClone(o.value));
    }
    this.current = deepFreeze(next);
    const report = all ? [...new Set([...paths, ...leafPaths(before), ...leafPaths(next)])] : paths;
    for (const path of report) {
      const parts = path.split('.');
      const oldValue = lookup(before, parts).value;
      const newValue = lookup(this.current, parts).value;
      if (isDeepStrictEqual(oldValue, newValue)) continue;
      this.notify({ path, oldValue, newValue, source });
    }
  }

  private notify(change: ConfigChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.log.error({ err: (err as Error).message, path: change.path }, 'config listener threw');
      }
    }
  }
}

/** Last-writer-wins order: by timestamp, then by node name. */
export function compareWinner(aTs: Hlc, aOrigin: string, bTs: Hlc, bOrigin: string): number {
  const c = compareHlc(aTs, bTs);
  if (c !== 0) return c;
  return aOrigin < bOrigin ? -1 : aOrigin > bOrigin ? 1 : 0;
}

/** Paths of the leaves of a plain-object tree (used to report what a reset changed). */
function leafPaths(v: unknown, prefix = ''): string[] {
  if (!isPlainObject(v) || Object.keys(v).length === 0) return prefix ? [prefix] : [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) out.push(...leafPaths(x, prefix ? `${prefix}.${k}` : k));
  return out;
}
