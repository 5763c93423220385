// The etcd backend of `node.consensus`: the same API (KV with revisions and watches, locks with
// fencing tokens, leader election, barriers) on an etcd v3 cluster the team already runs, through
// the `etcd3` client (gRPC). The mapping, and where it differs from the Raft backend, is in
// docs/coordination.md ("The etcd backend"):
// - a key's revision is etcd's mod_revision; cas is a transaction comparing it (0: create_revision
//   0, i.e. absent); watch is an etcd watch on the prefix from the last revision this node has seen;
// - lock and leader are etcd's concurrency recipes (client/v3/concurrency Mutex and Election): a
//   key per contender under the name's prefix, attached to a lease; the contender whose key has the
//   lowest create_revision holds it; the others wait for the deletion of the key just before
//   theirs. The fencing token is the holder's create_revision — strictly increasing, since grants
//   follow create_revision order;
// - barrier: one key per arrived node under the name's prefix, counted; waiters watch the prefix.
// Values are stored as JSON. etcd is real I/O: this backend runs on real time, not the node clock.
import type { Etcd3, IKeyValue, IResponseHeader, Lease, Watcher } from 'etcd3';
import { FoundationError, isFoundationError } from '../errors.js';
import type {
  ConsensusBackend,
  ConsensusStatus,
  LeaderHandle,
  LockHandle,
  Revisioned,
} from './backend.js';
import type { KvEvent } from './machine.js';

export interface EtcdConsensusOptions {
  backend: 'etcd';
  /** Client URLs of the etcd v3 cluster, e.g. `['http://10.0.0.5:2379']`. */
  endpoints: string[];
  /** Every key this node writes lives under this prefix (ends with "/"). Default `foundation/`. */
  prefix?: string;
  /** How long one operation may take (each etcd call's deadline), ms. Default 5000. */
  timeoutMs?: number;
  /** etcd user authentication. */
  auth?: { username: string; password: string };
  /** CA certificate (PEM) of an https endpoint. */
  ca?: string | Buffer;
}

interface Logger {
  warn(o: object, msg: string): void;
}

/** Wakes a waiter early (stop of the node or of a leader handle). */
interface Signal {
  aborted: boolean;
  wake: Set<() => void>;
}

const newSignal = (): Signal => ({ aborted: false, wake: new Set() });
const abort = (s: Signal) => {
  s.aborted = true;
  for (const w of s.wake) w();
};
const sleep = (ms: number, signal?: Signal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.wake.delete(done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.wake.add(done);
  });

export class EtcdBackend implements ConsensusBackend {
  readonly kind = 'etcd';
  private client: Etcd3 | undefined;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  /** The latest store revision any response showed this node (where watches start). */
  private lastRevision = 0;
  private readonly closing = newSignal();
  /** Running leader() campaigns: deposed and their leases revoked on stop. */
  private readonly campaigns = new Set<() => Promise<void>>();
  private readonly watchers = new Set<() => void>();

  constructor(
    private readonly self: string,
    private readonly log: Logger,
    private readonly opts: EtcdConsensusOptions,
  ) {
    this.prefix = opts.prefix ?? 'foundation/';
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Connects and reads once, so a start against an unreachable cluster fails here, clearly. */
  async start(): Promise<void> {
    // Loaded on first use: nodes on the Raft backend never load gRPC.
    const { Etcd3 } = await import('etcd3');
    const timeoutMs = this.timeoutMs;
    this.client = new Etcd3({
      hosts: this.opts.endpoints,
      dialTimeout: timeoutMs,
      ...(this.opts.auth ? { auth: this.opts.auth } : {}),
      ...(this.opts.ca ? { credentials: { rootCertificate: Buffer.from(this.opts.ca) } } : {}),
      // A deadline on every unary call; streams (watch, keep-alive) live on.
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    });
    try {
      const r = await this.call('connect', (c) => c.get(this.k('kv/')).exec());
      this.seen(r.header);
    } catch (err) {
      this.client.close();
      this.client = undefined;
      throw err;
    }
  }

  status(): ConsensusStatus {
    return {
      backend: 'etcd',
      started: this.client !== undefined,
      member: false,
      members: [...this.opts.endpoints],
      role: undefined,
      term: undefined,
      leader: undefined,
      commit: this.lastRevision,
    };
  }

  async stop(): Promise<void> {
    if (this.closing.aborted) return;
    abort(this.closing);
    // Leaders step down at once (their keys go with their leases): no one waits for a ttl.
    await Promise.all([...this.campaigns].map((c) => c()));
    for (const w of this.watchers) w();
    this.client?.close();
  }

  // ---- KV ----

  async get<T = unknown>(key: string): Promise<Revisioned<T> | undefined> {
    const r = await this.call('get', (c) => c.get(this.k(`kv/${key}`)).exec());
    this.seen(r.header);
    const kv = r.kvs[0];
    return kv ? { value: decode(kv) as T, revision: Number(kv.mod_revision) } : undefined;
  }

  async put(key: string, value: unknown): Promise<number> {
    const v = encode(value);
    const r = await this.call('put', (c) =>
      c
        .put(this.k(`kv/${key}`))
        .value(v)
        .exec(),
    );
    return this.seen(r.header);
  }

  async delete(key: string): Promise<boolean> {
    const r = await this.call('delete', (c) =>
      c
        .delete()
        .key(this.k(`kv/${key}`))
        .exec(),
    );
    this.seen(r.header);
    return Number(r.deleted) > 0;
  }

  async cas(
    key: string,
    revision: number,
    value: unknown,
  ): Promise<{ ok: boolean; revision: number }> {
    const v = encode(value);
    const k = this.k(`kv/${key}`);
    const r = await this.call('cas', (c) =>
      (revision === 0 ? c.if(k, 'Create', '==', 0) : c.if(k, 'Mod', '==', revision))
        .then(c.put(k).value(v))
        .else(c.get(k))
        .commit(),
    );
    const rev = this.seen(r.header);
    if (r.succeeded) return { ok: true, revision: rev };
    const cur = r.responses[0]?.response_range?.kvs[0];
    return { ok: false, revision: cur ? Number(cur.mod_revision) : 0 };
  }

  /**
   * Every change under `prefix` after the latest revision this node has seen, in revision order
   * (an etcd watch; it resumes after a reconnection). Works on every node.
   */
  watch(prefix: string, fn: (e: KvEvent) => void): () => void {
    const client = this.use();
    const base = this.k('kv/');
    let cancelled = false;
    let watcher: Watcher | undefined;
    const off = () => {
      cancelled = true;
      this.watchers.delete(off);
      void watcher?.cancel().catch(() => {});
    };
    this.watchers.add(off);
    const deliver = (kv: IKeyValue, deleted: boolean) => {
      if (cancelled) return;
      const rev = Number(kv.mod_revision);
      this.lastRevision = Math.max(this.lastRevision, rev);
      try {
        fn({
          key: kv.key.toString().slice(base.length),
          value: deleted ? undefined : decode(kv),
          revision: rev,
        });
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'consensus watcher threw');
      }
    };
    client
      .watch()
      .prefix(base + prefix)
      .startRevision(String(this.lastRevision + 1))
      .create()
      .then(
        (w) => {
          watcher = w;
          if (cancelled) return void w.cancel().catch(() => {});
          w.on('put', (kv) => deliver(kv, false));
          w.on('delete', (kv) => deliver(kv, true));
          w.on('error', (err) => this.log.warn({ err: err.message }, 'etcd watch failed'));
        },
        (err: Error) => this.log.warn({ err: err.message }, 'etcd watch could not start'),
      );
    return off;
  }

  // ---- locks, leaders, barriers ----

  async lock(name: string, opts: { ttl: number; timeout?: number }): Promise<LockHandle> {
    const client = this.use();
    const deadline = Date.now() + (opts.timeout ?? this.timeoutMs);
    const ttlSec = leaseSeconds(opts.ttl);
    // Kept alive while queued (the wait may outlast the ttl); once granted it runs its ttl out.
    const lease = client.lease(ttlSec);
    lease.on('lost', () => {});
    try {
      const { key, token } = await this.enqueue(`lock/${name}/`, lease, deadline, this.closing);
      await this.call('lock', () => lease.keepaliveOnce());
      lease.release();
      return {
        token,
        expiresAt: Date.now() + ttlSec * 1000,
        release: async () => {
          const r = await this.call('unlock', (c) =>
            c.if(key, 'Create', '==', token).then(c.delete().key(key)).commit(),
          );
          this.seen(r.header);
          if (r.succeeded) await lease.revoke().catch(() => {});
          return r.succeeded;
        },
      };
    } catch (err) {
      await lease.revoke().catch(() => {});
      if (isFoundationError(err, 'FND_ERR_CONSENSUS_TIMEOUT'))
        throw new FoundationError(
          'FND_ERR_CONSENSUS_TIMEOUT',
          `lock "${name}" is held by another node`,
          { name },
        );
      throw err;
    }
  }

  /** Campaigns for `group` (etcd's election recipe, lease kept alive every ttl/3) until stop(). */
  leader(group: string, opts: { ttl?: number } = {}): LeaderHandle {
    const client = this.use();
    const ttlSec = leaseSeconds(opts.ttl ?? 3000);
    const elected: Array<(t: number) => void> = [];
    const deposed: Array<() => void> = [];
    const signal = newSignal();
    let token: number | undefined;
    let lease: Lease | undefined;
    const lose = () => {
      if (token === undefined) return;
      token = undefined;
      for (const f of deposed) f();
    };
    const resign = async () => {
      abort(signal);
      this.campaigns.delete(resign);
      lose();
      await lease?.revoke().catch(() => {});
    };
    this.campaigns.add(resign);
    const run = async () => {
      while (!signal.aborted && !this.closing.aborted) {
        const l = client.lease(ttlSec);
        lease = l;
        const lost = new Promise<void>((resolve) => {
          l.once('lost', () => resolve());
          signal.wake.add(() => resolve());
        });
        try {
          const got = await this.enqueue(`election/${group}/`, l, Infinity, signal);
          if (signal.aborted) break;
          token = got.token;
          for (const f of elected) f(got.token);
          await lost;
        } catch (err) {
          if (!signal.aborted)
            this.log.warn({ group, err: (err as Error).message }, 'etcd campaign failed');
        }
        lose();
        await l.revoke().catch(() => {});
        if (!signal.aborted) await sleep(Math.min(1000, (ttlSec * 1000) / 3), signal);
      }
    };
    void run();
    return {
      onElected: (fn) => elected.push(fn),
      onDeposed: (fn) => deposed.push(fn),
      isLeader: () => token !== undefined,
      stop: resign,
    };
  }

  /** Resolves once `n` distinct nodes have arrived at barrier `name` (one-shot per name). */
  async barrier(name: string, n: number, opts: { timeout?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeout ?? this.timeoutMs);
    const dir = this.k(`barrier/${name}/`);
    await this.call('barrier', (c) =>
      c
        .put(dir + this.self)
        .value('1')
        .exec(),
    );
    for (;;) {
      const r = await this.call('barrier', (c) => c.getAll().prefix(dir).exec());
      const count = Number(r.count);
      if (count >= n) return;
      const left = deadline - Date.now();
      if (left <= 0 || this.closing.aborted)
        throw new FoundationError(
          'FND_ERR_CONSENSUS_TIMEOUT',
          `barrier "${name}": ${count} of ${n} arrived`,
          { name, count, n },
        );
      await this.waitEvent('put', { prefix: dir }, Number(r.header.revision) + 1, left);
    }
  }

  // ---- internals ----

  /**
   * Queues for `dir` with a key attached to `lease` and waits until it has the lowest
   * create_revision (etcd's Mutex/Election recipe). Returns the key and its create_revision.
   */
  private async enqueue(
    dir: string,
    lease: Lease,
    deadline: number,
    signal: Signal,
  ): Promise<{ key: string; token: number }> {
    const id = await this.call('lease', () => lease.grant());
    const key = this.k(dir) + id;
    const r = await this.call('lock', (c) =>
      c.if(key, 'Create', '==', 0).then(lease.put(key).value(this.self)).else(c.get(key)).commit(),
    );
    this.seen(r.header);
    const token = r.succeeded
      ? Number(r.header.revision)
      : Number(r.responses[0]!.response_range.kvs[0]!.create_revision);
    for (;;) {
      const ahead = await this.call('lock', (c) =>
        c
          .getAll()
          .prefix(this.k(dir))
          .maxCreateRevision(String(token - 1))
          .sort('Create', 'Descend')
          .limit(1)
          .exec(),
      );
      if (ahead.kvs.length === 0) {
        const mine = await this.call('lock', (c) => c.get(key).exec());
        if (mine.kvs.length === 0)
          throw new FoundationError(
            'FND_ERR_CONSENSUS_UNAVAILABLE',
            'etcd lease lost while queued',
            {
              members: this.opts.endpoints,
            },
          );
        return { key, token };
      }
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted || this.closing.aborted)
        throw new FoundationError('FND_ERR_CONSENSUS_TIMEOUT', `"${dir}" stayed held`, {
          name: dir,
        });
      await this.waitEvent(
        'delete',
        { key: ahead.kvs[0]!.key },
        Number(ahead.header.revision) + 1,
        Math.min(left, 2 ** 31 - 1),
        signal,
      );
    }
  }

  /** Waits for one `type` event on a key or prefix from revision `from`, at most `ms`. */
  private async waitEvent(
    type: 'put' | 'delete',
    what: { key: Buffer } | { prefix: string },
    from: number,
    ms: number,
    signal?: Signal,
  ): Promise<void> {
    const b = this.use().watch();
    const builder = 'key' in what ? b.key(what.key) : b.prefix(what.prefix);
    const w = await this.call('watch', () =>
      builder.startRevision(String(from)).only(type).create(),
    );
    try {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          signal?.wake.delete(done);
          this.closing.wake.delete(done);
          resolve();
        };
        const t = setTimeout(done, ms);
        signal?.wake.add(done);
        this.closing.wake.add(done);
        w.once(type, done);
      });
    } finally {
      await w.cancel().catch(() => {});
    }
  }

  private k(s: string): string {
    return this.prefix + s;
  }

  private use(): Etcd3 {
    if (!this.client || this.closing.aborted)
      throw new FoundationError(
        'FND_ERR_CONSENSUS_NOT_STARTED',
        this.closing.aborted ? 'this node has stopped' : 'call node.consensus.start() first',
      );
    return this.client;
  }

  private seen(h: IResponseHeader): number {
    const rev = Number(h.revision);
    if (rev > this.lastRevision) this.lastRevision = rev;
    return rev;
  }

  /** One etcd call; failures to reach the cluster become FND_ERR_CONSENSUS_UNAVAILABLE. */
  private async call<T>(what: string, f: (c: Etcd3) => Promise<T>): Promise<T> {
    const c = this.use();
    try {
      return await f(c);
    } catch (err) {
      if (err instanceof FoundationError) throw err;
      throw new FoundationError(
        'FND_ERR_CONSENSUS_UNAVAILABLE',
        `etcd ${what}: ${(err as Error).message}`,
        { members: this.opts.endpoints },
      );
    }
  }
}

/** etcd leases are whole seconds (and at least the server's minimum TTL, which it enforces). */
function leaseSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

function encode(value: unknown): string {
  const s = value === undefined ? undefined : JSON.stringify(value);
  if (s === undefined)
    throw new FoundationError('FND_ERR_INVALID_OPTION', 'value: the etcd backend stores JSON', {
      field: 'value',
    });
  return s;
}

function decode(kv: IKeyValue): unknown {
  const s = kv.value.toString();
  try {
    return JSON.parse(s);
  } catch {
    // Written by something else than this backend: hand the text over as it is.
    return s;
  }
}
