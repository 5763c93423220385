// The composition of the core services a node carries (config, protection, telemetry, events,
// HTTP endpoints): prepared before the node listens (sources read, files opened, so a bad one
// fails start cleanly), then attached to the cluster-wide layer once the node exists.
import type { Consensus } from '../coord/consensus.js';
import type { DistContext } from '../dist/context.js';
import { Config, loadConfigSources, validateConfig } from './config.js';
import { ConfigConsensusSync } from './config-consensus.js';
import { ConfigSync } from './config-sync.js';
import { type EventStore, MemoryEventStore, SqliteEventStore } from './event-store.js';
import { Events } from './events.js';
import type { CoreOptions } from './options.js';
import { Protection } from './protection.js';
import { Telemetry, type TelemetrySource } from './telemetry.js';
import { CORE_LIMITS } from './wire.js';

/** What start() reads and opens before any socket: the base configuration, the event store. */
export interface PreparedCore {
  options: CoreOptions;
  configBase: Record<string, unknown>;
  eventStore: EventStore;
}

/** Default bound of the in-memory event store. */
const DEFAULT_MAX_EVENTS = 100_000;

export async function prepareCore(options: CoreOptions): Promise<PreparedCore> {
  const configBase = await loadConfigSources(options.config ?? {});
  validateConfig(options.config ?? {}, configBase);
  const ev = options.events ?? {};
  const eventStore =
    ev.storage === 'sqlite'
      ? SqliteEventStore.open(ev.path!)
      : new MemoryEventStore(ev.maxEvents ?? DEFAULT_MAX_EVENTS);
  return { options, configBase, eventStore };
}

/** Releases what prepareCore opened, when the node does not start after all. */
export function releasePrepared(p: PreparedCore): void {
  p.eventStore.close();
}

export class CoreServices {
  readonly config: Config;
  private readonly configSync: ConfigSync;
  private readonly configConsensus: ConfigConsensusSync;
  readonly protection: Protection;
  readonly telemetry: Telemetry;
  readonly events: Events;

  constructor(
    prepared: PreparedCore,
    dist: DistContext,
    source: TelemetrySource,
    consensus: Consensus,
  ) {
    const opts = prepared.options;
    this.config = new Config(
      opts.config ?? {},
      prepared.configBase,
      dist.hlc,
      dist.self,
      dist.log.child({ layer: 'config' }),
      () => loadConfigSources(opts.config ?? {}),
    );
    this.configSync = new ConfigSync(dist, this.config, CORE_LIMITS);
    this.configConsensus = new ConfigConsensusSync(dist, consensus, this.config);
    this.protection = new Protection(
      dist.log.child({ layer: 'protection' }),
      () => dist.members.alive().length + 1,
    );
    this.telemetry = new Telemetry(
      dist,
      source,
      CORE_LIMITS,
      opts.telemetry?.runtimeMetrics ?? true,
    );
    this.events = new Events(dist, prepared.eventStore, CORE_LIMITS);
    dist.members.onUp(() => this.protection.membersChanged());
    dist.members.onDown(() => this.protection.membersChanged());
  }

  async stop(): Promise<void> {
    this.configSync.stop();
    this.configConsensus.stop();
    this.config.stop();
    await this.protection.stop();
    this.telemetry.stop();
    this.events.stop();
  }
}
