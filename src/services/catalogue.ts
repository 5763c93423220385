// The service catalogue: which node offers which service (version, actions, events, meta,
// capabilities, health), replicated cluster-wide on the owner-partitioned Replica of src/dist/
// (each node writes only its own services). Endpoints per service are indexed lazily and the
// index is dropped on any change, so a call's lookup is one map read.
import type { DistContext } from '../dist/context.js';
import { Replica } from '../dist/replica.js';
import type { Endpoint } from './balancers.js';
import { decodeEndpoint, type EndpointValue, type ServiceLimits, SVC_KINDS } from './wire.js';

/** Filter of `services.list()`; every given field must match. */
export interface ServiceFilter {
  name?: string;
  version?: string;
  node?: string;
  capability?: string;
  /** Only endpoints that can take calls now (alive node, not unhealthy). */
  available?: boolean;
}

/** One row of `services.list()`. */
export interface CatalogueEntry {
  name: string;
  node: string;
  version: string;
  actions: string[];
  events: string[];
  meta: Record<string, unknown>;
  capabilities: string[];
  health: EndpointValue['health'];
  /** Membership status of the node as this node sees it. */
  status: string;
}

/** The endpoints offering one action. */
export interface Offering {
  eps: Endpoint[];
  /** Every endpoint declares the action idempotent (versions may differ on that). */
  idempotent: boolean;
}

export class Catalogue {
  private readonly replica: Replica<EndpointValue>;
  private index = new Map<string, Endpoint[]>();
  /** `service ␀ action` → endpoints offering that action, and whether all say idempotent. */
  private byAction = new Map<string, Offering>();
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly ctx: DistContext,
    limits: ServiceLimits,
    private readonly status: (node: string) => string | undefined,
  ) {
    // The Replica bounds entries per owner with ctx.limits.maxEntriesPerNode: here, services.
    const rctx: DistContext = {
      ...ctx,
      limits: { ...ctx.limits, maxEntriesPerNode: limits.maxServicesPerNode },
    };
    this.replica = new Replica<EndpointValue>(rctx, {
      kind: SVC_KINDS.catalogue,
      maxKeyLength: limits.maxNameLength,
      decodeValue: (v) => decodeEndpoint(v, limits),
    });
    this.replica.onChange(() => {
      this.index = new Map();
      this.byAction = new Map();
      for (const fn of this.listeners) fn();
    });
  }

  /** Called after any change of any node's services. Must not throw. */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Announces (or updates) this node's offer of `name`. */
  set(name: string, value: EndpointValue): void {
    this.replica.set(name, value);
  }

  delete(name: string): void {
    this.replica.delete(name);
  }

  /** Every node's endpoint of `service` (this node's included), sorted by node name. */
  endpoints(service: string): Endpoint[] {
    let eps = this.index.get(service);
    if (eps) return eps;
    eps = [];
    const self = this.ctx.self;
    const mine = this.replica.ownEntries().get(service);
    if (mine) eps.push({ node: self, service, local: true, info: mine });
    for (const owner of this.replica.owners()) {
      const v = this.replica.entriesOf(owner)?.get(service);
      if (v) eps.push({ node: owner, service, local: false, info: v });
    }
    eps.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    this.index.set(service, eps);
    return eps;
  }

  /** Endpoints (sorted by node) offering `service.action`; cached until the catalogue changes. */
  offering(service: string, action: string): Offering {
    const key = `${service}\u0000${action}`;
    let o = this.byAction.get(key);
    if (o) return o;
    const eps: Endpoint[] = [];
    let idempotent = true;
    for (const e of this.endpoints(service)) {
      const a = e.info.actions.find((x) => x.name === action);
      if (!a) continue;
      eps.push(e);
      idempotent &&= a.idempotent;
    }
    idempotent &&= eps.length > 0;
    o = { eps, idempotent };
    // Bounded: names come from calls; a flood of unknown actions only refills the cache.
    if (this.byAction.size >= 10_000) this.byAction = new Map();
    this.byAction.set(key, o);
    return o;
  }

  list(filter: ServiceFilter = {}): CatalogueEntry[] {
    const out: CatalogueEntry[] = [];
    const owners = [this.ctx.self, ...this.replica.owners()];
    for (const node of owners) {
      if (filter.node !== undefined && node !== filter.node) continue;
      const entries = this.replica.entriesOf(node);
      if (!entries) continue;
      const status = node === this.ctx.self ? 'alive' : (this.status(node) ?? 'unknown');
      for (const [name, v] of entries) {
        if (filter.name !== undefined && name !== filter.name) continue;
        if (filter.version !== undefined && v.version !== filter.version) continue;
        if (filter.capability !== undefined && !v.capabilities.includes(filter.capability))
          continue;
        if (filter.available && (status !== 'alive' || v.health === 'unhealthy')) continue;
        out.push({
          name,
          node,
          version: v.version,
          actions: v.actions.map((a) => a.name),
          events: v.events,
          meta: v.meta,
          capabilities: v.capabilities,
          health: v.health,
          status,
        });
      }
    }
    return out.sort((a, b) =>
      a.name === b.name ? (a.node < b.node ? -1 : 1) : a.name < b.name ? -1 : 1,
    );
  }

  /** Stops replicating, after sending what is queued (the withdrawals of a stopping node). */
  stop(): void {
    this.replica.flush();
    this.replica.stop();
  }
}
