// The replicated state machine behind `node.consensus`: a revisioned KV store, leases for locks
// and leader elections (fencing token = the revision that granted them), and barriers. Every
// member applies the same committed commands in the same order, so it must be deterministic: time
// comes from the leader's stamp in each command (kept monotonic here), never from a local clock.
// Commands come out of the Raft log, which only the leader writes; each is still checked before it
// is applied, and a malformed one changes nothing.

/** Commands in the log. `id` deduplicates client retries; `at` is the leader's wall clock, ms. */
export interface Envelope {
  id: string;
  at: number;
  cmd: Command;
}

export type Command =
  | { op: 'put'; key: string; value: unknown }
  | { op: 'del'; key: string }
  /** Compare-and-set on the key's revision: `rev` 0 means "only if absent". */
  | { op: 'cas'; key: string; rev: number; value: unknown }
  | { op: 'lock'; name: string; owner: string; ttlMs: number }
  | { op: 'renew'; name: string; token: number; ttlMs: number }
  | { op: 'unlock'; name: string; token: number }
  | { op: 'arrive'; name: string; node: string };

export type Result =
  | { revision: number }
  | { revision: number; deleted: boolean }
  | { ok: boolean; revision: number }
  | { ok: true; token: number; expiresAt: number }
  | { ok: false; holder: string; expiresAt: number }
  | { ok: boolean; expiresAt?: number }
  | { count: number }
  | { error: string };

export interface KvValue {
  value: unknown;
  /** Revision of the last change of this key (etcd's mod_revision). */
  revision: number;
}

interface Lease {
  owner: string;
  token: number;
  expiresAt: number;
}

/** A change applied to the KV store (what watchers see). */
export interface KvEvent {
  key: string;
  /** Undefined: deleted. */
  value: unknown;
  revision: number;
}

/** Recent request ids kept for deduplication (a retry after a leader change applies once). */
const DEDUP = 10_000;

export class Machine {
  revision = 0;
  /** Latest leader timestamp seen: the machine's notion of now (monotonic). */
  now = 0;
  private kv = new Map<string, KvValue>();
  private leases = new Map<string, Lease>();
  private barriers = new Map<string, string[]>();
  private recent = new Map<string, Result>();
  /** Called for every KV change, in log order. */
  onEvent: (e: KvEvent) => void = () => {};

  get(key: string): KvValue | undefined {
    return this.kv.get(key);
  }

  barrierCount(name: string): number {
    return this.barriers.get(name)?.length ?? 0;
  }

  lease(name: string): Lease | undefined {
    const l = this.leases.get(name);
    return l && l.expiresAt > this.now ? l : undefined;
  }

  apply(data: unknown): Result {
    const env = data as Envelope;
    if (
      typeof env !== 'object' ||
      env === null ||
      typeof env.id !== 'string' ||
      typeof env.at !== 'number'
    )
      return { error: 'malformed command' };
    const seen = this.recent.get(env.id);
    if (seen) return seen;
    if (Number.isFinite(env.at)) this.now = Math.max(this.now, env.at);
    const r = this.exec(env.cmd);
    this.recent.set(env.id, r);
    if (this.recent.size > DEDUP) this.recent.delete(this.recent.keys().next().value!);
    return r;
  }

  private exec(c: Command): Result {
    if (typeof c !== 'object' || c === null) return { error: 'malformed command' };
    switch (c.op) {
      case 'put':
        return { revision: this.set(c.key, c.value) };
      case 'del': {
        if (!this.kv.has(c.key)) return { revision: this.revision, deleted: false };
        this.kv.delete(c.key);
        this.revision++;
        this.onEvent({ key: c.key, value: undefined, revision: this.revision });
        return { revision: this.revision, deleted: true };
      }
      case 'cas': {
        const cur = this.kv.get(c.key)?.revision ?? 0;
        if (cur !== c.rev) return { ok: false, revision: cur };
        return { ok: true, revision: this.set(c.key, c.value) };
      }
      case 'lock': {
        const l = this.lease(c.name);
        if (l && l.owner !== c.owner) return { ok: false, holder: l.owner, expiresAt: l.expiresAt };
        // Free (or expired), or already ours: a new grant gets a new, larger token.
        const token = ++this.revision;
        const lease = { owner: c.owner, token, expiresAt: this.now + c.ttlMs };
        this.leases.set(c.name, lease);
        return { ok: true, token, expiresAt: lease.expiresAt };
      }
      case 'renew': {
        const l = this.lease(c.name);
        if (!l || l.token !== c.token) return { ok: false };
        l.expiresAt = this.now + c.ttlMs;
        return { ok: true, expiresAt: l.expiresAt };
      }
      case 'unlock': {
        const l = this.leases.get(c.name);
        if (!l || l.token !== c.token) return { ok: false };
        this.leases.delete(c.name);
        return { ok: true };
      }
      case 'arrive': {
        const b = this.barriers.get(c.name) ?? [];
        if (!b.includes(c.node)) b.push(c.node);
        this.barriers.set(c.name, b);
        return { count: b.length };
      }
      default:
        return { error: 'unknown command' };
    }
  }

  private set(key: string, value: unknown): number {
    this.revision++;
    this.kv.set(key, { value, revision: this.revision });
    this.onEvent({ key, value, revision: this.revision });
    return this.revision;
  }

  snapshot(): unknown {
    return {
      revision: this.revision,
      now: this.now,
      kv: [...this.kv].map(([k, v]) => [k, v.value, v.revision]),
      leases: [...this.leases].map(([n, l]) => [n, l.owner, l.token, l.expiresAt]),
      barriers: [...this.barriers],
      recent: [...this.recent],
    };
  }

  /** Replaces the state with a snapshot's (from the leader: trusted like the log). */
  restore(data: unknown): void {
    const d = data as {
      revision: number;
      now: number;
      kv: Array<[string, unknown, number]>;
      leases: Array<[string, string, number, number]>;
      barriers: Array<[string, string[]]>;
      recent: Array<[string, Result]>;
    };
    const before = this.kv;
    this.revision = d.revision;
    this.now = d.now;
    this.kv = new Map(d.kv.map(([k, v, r]) => [k, { value: v, revision: r }]));
    this.leases = new Map(
      d.leases.map(([n, o, t, e]) => [n, { owner: o, token: t, expiresAt: e }]),
    );
    this.barriers = new Map(d.barriers);
    this.recent = new Map(d.recent);
    // Watchers see the difference as changes at the snapshot's revision.
    for (const [k, v] of this.kv)
      if (before.get(k)?.revision !== v.revision)
        this.onEvent({ key: k, value: v.value, revision: v.revision });
    for (const k of before.keys())
      if (!this.kv.has(k)) this.onEvent({ key: k, value: undefined, revision: this.revision });
  }
}
