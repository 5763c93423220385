// Carries `config.setWithConsensus` over `node.consensus`: the agreed values live in ONE key of the
// group's KV (`foundation/config`, a list of [path, value] in write order), changed by
// compare-and-set, so concurrent writers of different paths never lose each other's values.
// Members apply it as they apply the log (kv.watch); non-members (watch is members-only) re-read it
// through the group (a linearizable kv.get) every POLL_MS, so they converge too, also after a
// partition heals or when they start late.
import type { Consensus } from '../coord/consensus.js';
import type { DistContext } from '../dist/context.js';
import { FoundationError } from '../errors.js';
import type { TimerHandle } from '../util/clock.js';
import { type Config, type ConsensusEntries, splitPath } from './config.js';

/** The consensus KV key holding every value set with setWithConsensus. */
export const CONFIG_KEY = 'foundation/config';
/** How often a node re-reads the key through the group (non-members; members until caught up). */
export const POLL_MS = 1000;
/** Compare-and-set attempts against concurrent writers before giving up. */
const MAX_CAS = 32;

export class ConfigConsensusSync {
  private timer: TimerHandle | undefined;
  private unwatch: (() => void) | undefined;
  /** A member has read the key once since it started watching: the watch covers the rest. */
  private caughtUp = false;
  private reading = false;
  private stopped = false;

  constructor(
    dist: DistContext,
    private readonly consensus: Consensus,
    private readonly config: Config,
  ) {
    config.attachConsensus({ write: (path, value) => this.write(path, value) });
    this.timer = dist.clock.setInterval(() => this.poll(), POLL_MS);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /** Read-modify-write of the key by compare-and-set; applies the committed set here. */
  private async write(path: string, value: unknown): Promise<void> {
    for (let i = 0; i < MAX_CAS; i++) {
      const cur = await this.consensus.kv.get<unknown>(CONFIG_KEY);
      const entries = cur ? parseEntries(cur.value) : [];
      // The new value replaces the path and everything under it; it goes last (it wins).
      const next = entries.filter(([p]) => p !== path && !p.startsWith(`${path}.`));
      next.push([path, value]);
      const r = await this.consensus.kv.cas(CONFIG_KEY, cur?.revision ?? 0, next);
      if (r.ok) {
        this.config.applyConsensus(next, r.revision);
        return;
      }
    }
    throw new FoundationError(
      'FND_ERR_CONSENSUS_TIMEOUT',
      `setWithConsensus("${path}"): ${MAX_CAS} concurrent writers won first`,
      { path },
    );
  }

  private poll(): void {
    if (this.stopped || this.reading) return;
    const st = this.consensus.status();
    if (!st.started) return;
    // Raft: members hold the state and watch it; etcd: every node can watch.
    const watches = st.member || st.backend === 'etcd';
    if (watches && !this.unwatch) {
      this.unwatch = this.consensus.kv.watch(CONFIG_KEY, (e) => {
        if (e.key !== CONFIG_KEY) return;
        this.config.applyConsensus(e.value === undefined ? [] : parseEntries(e.value), e.revision);
      });
    }
    if (watches && this.caughtUp) return;
    this.reading = true;
    this.consensus.kv.get<unknown>(CONFIG_KEY).then(
      (cur) => {
        this.reading = false;
        if (cur) this.config.applyConsensus(parseEntries(cur.value), cur.revision);
        if (this.unwatch) this.caughtUp = true;
      },
      () => {
        // No leader now (or stopping): the next poll tries again.
        this.reading = false;
      },
    );
  }
}

/** The key's value as written by write(); anything else (written by hand) counts as empty. */
function parseEntries(v: unknown): ConsensusEntries {
  if (!Array.isArray(v)) return [];
  return v.filter((e): e is [string, unknown] => {
    if (!Array.isArray(e) || e.length !== 2) return false;
    try {
      splitPath(e[0]);
      return true;
    } catch {
      return false;
    }
  });
}
