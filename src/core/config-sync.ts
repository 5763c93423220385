// Cluster-wide config values, replicated on the owner-partitioned table of src/dist/replica.ts.
// Each node's own partition holds the newest value it knows for every path (its own writes and
// those it adopted from others), so a value outlives the node that wrote it: when a node sees a
// newer entry in another node's partition it applies it and re-announces it as its own. The
// maximum (HLC, then node name) is the same everywhere, so every node converges on it, also after
// a partition heals (the member-up snapshots carry each side's winners to the other).
import type { DistContext } from '../dist/context.js';
import { Replica } from '../dist/replica.js';
import type { Hlc } from '../util/hlc.js';
import { type Config, compareWinner, splitPath } from './config.js';
import { CORE_KINDS, type ConfigEntry, type CoreLimits, decodeConfigEntry } from './wire.js';

export class ConfigSync {
  private readonly replica: Replica<ConfigEntry>;

  constructor(
    private readonly ctx: DistContext,
    private readonly config: Config,
    limits: CoreLimits,
  ) {
    // This table's own bound on what a member can make us hold: few, small entries.
    const tableCtx: DistContext = {
      ...ctx,
      limits: { ...ctx.limits, maxEntriesPerNode: limits.maxConfigEntriesPerNode },
    };
    this.replica = new Replica<ConfigEntry>(tableCtx, {
      kind: CORE_KINDS.config,
      maxKeyLength: limits.maxConfigPathLength,
      decodeValue: (v) => {
        const d = decodeConfigEntry(v, limits, ctx.limits.maxNameLength);
        if (!d.ok) return d;
        // A timestamp far in the future would win every later write for good.
        if (!ctx.hlc.acceptable(d.value.ts))
          return { ok: false, reason: 'timestamp too far ahead' };
        return d;
      },
    });
    this.replica.onChange((owner, path, _prev, next) => {
      if (owner === ctx.self || next === undefined) return; // a dropped partition keeps our values
      this.receive(path, next);
    });
    config.attach(this);
  }

  /** Announces a value written on this node. */
  publish(path: string, value: unknown, ts: Hlc): void {
    this.replica.set(path, { v: value, ts, o: this.ctx.self });
  }

  private receive(path: string, e: ConfigEntry): void {
    try {
      splitPath(path);
    } catch {
      this.ctx.log.warn({ path }, 'cluster config path refused');
      return;
    }
    const mine = this.replica.ownEntries().get(path);
    if (mine && compareWinner(mine.ts, mine.o, e.ts, e.o) >= 0) return;
    // A path this node does not let be updated: neither applied nor adopted. A value the schema
    // refuses with what else is set is kept all the same (Config.updatable): refusing it here would
    // depend on the order values arrived in, and members would disagree for good.
    if (!this.config.updatable(path)) {
      this.ctx.log.warn({ path, origin: e.o }, 'cluster config value refused here');
      return;
    }
    try {
      this.replica.set(path, { v: e.v, ts: e.ts, o: e.o }); // adopt: it now outlives its writer
    } catch (err) {
      // This node's part of the table is full (maxConfigEntriesPerNode): not applied either, so
      // what a node holds stays bounded by what it announces.
      this.ctx.log.warn({ path, err: (err as Error).message }, 'cluster config value not adopted');
      return;
    }
    this.config.applyRemote(path, e.v, e.ts, e.o);
  }

  stop(): void {
    this.replica.stop();
  }
}
