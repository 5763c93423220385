// `dns`: polls the A (and/or AAAA) records of one name and joins every address listed, on a fixed
// port (libcluster's DNSPoll and Kubernetes.DNS). In Kubernetes the name is a headless service,
// whose records are the IPs of its ready pods. Also holds the DNS helpers `dns-srv` shares.
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import type { Address } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import { familiesFor, type IpFamily, PollFailures, parseStrategyOptions } from './polling.js';

export interface DnsOptions {
  /**
   * Name whose A/AAAA records list the nodes. Required. In Kubernetes: the headless service, e.g.
   * `my-app-headless.my-ns.svc.cluster.local` (a fully qualified name avoids search-domain lookups).
   */
  query: string;
  /**
   * TCP port of the nodes behind the records. Default: this node's own port, which is right when
   * every node listens on the same fixed port (the usual deployment) and wrong with port 0.
   */
  port?: number;
  /**
   * How often to poll, in ms. Default 5000 (libcluster's). Lower: new nodes are found sooner,
   * more queries on the DNS server (one or two per node per interval).
   */
  pollingIntervalMs?: number;
  /**
   * DNS server(s) to ask, as `ip:port` / `[v6]:port` (or a plain IP for port 53). Default: the
   * system resolvers from /etc/resolv.conf. Queries go to the DNS server directly (c-ares), so
   * /etc/hosts is not consulted.
   */
  resolver?: string | string[];
  /**
   * Which records to query: `ipv4` (A), `ipv6` (AAAA), `any` (both) or `auto` (default): the family
   * of this node's own advertised address. Querying a family the nodes do not advertise makes every
   * poll dial a second address of nodes that are already members.
   */
  family?: IpFamily;
  /**
   * Per-attempt query timeout in ms (two attempts per poll). Default 2000. Lower: a dead server
   * costs less time per round; too low: answers from a slow server are missed.
   */
  timeoutMs?: number;
  /**
   * Report addresses that were listed and no longer are (libcluster disconnects them). Membership
   * still decides liveness: a down node there is forgotten at once, an alive one is probed.
   * Default false: DNS answers can be briefly incomplete (caches, propagation) and a missing
   * record proves nothing about the node; turn it on to forget removed nodes without waiting.
   */
  disconnectRemoved?: boolean;
}

const ms = z.number().int().positive();
const familySchema = z.enum(['auto', 'ipv4', 'ipv6', 'any']);
const resolverSchema = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** Validation of `{ strategy: 'dns', ... }` discovery options. */
export const dnsSchema = z.strictObject({
  strategy: z.literal('dns'),
  query: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535).optional(),
  pollingIntervalMs: ms.optional(),
  resolver: resolverSchema.optional(),
  family: familySchema.optional(),
  timeoutMs: ms.optional(),
  disconnectRemoved: z.boolean().optional(),
});

/** Defaults for `dns` and `dns-srv`. */
export const DNS_DEFAULTS = Object.freeze({
  // libcluster's polling interval: a new pod is found within 5 s, at negligible DNS load.
  pollingIntervalMs: 5_000,
  // Two 2 s attempts: a round against a dead server ends well within one polling interval.
  timeoutMs: 2_000,
  tries: 2,
  disconnectRemoved: false,
});

/** Result of one lookup: a list (empty for NXDOMAIN / no data), or a failure we cannot interpret. */
export type LookupResult<T> =
  | { ok: true; value: T[] }
  | { ok: false; code: string; message: string };

// NXDOMAIN and NOERROR-without-records are answers: the name has no such records right now.
const EMPTY_ANSWER = new Set(['ENOTFOUND', 'ENODATA']);

/** Runs one query; NXDOMAIN / no data become an empty list, anything else a failure. Never throws. */
export async function lookup<T>(query: () => Promise<T[]>): Promise<LookupResult<T>> {
  try {
    return { ok: true, value: await query() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    if (EMPTY_ANSWER.has(code)) return { ok: true, value: [] };
    return { ok: false, code, message: (err as Error).message };
  }
}

/** A resolver on `servers` (default: the system's), throwing a coded error naming `field` if invalid. */
export function createResolver(
  servers: string | string[] | undefined,
  timeoutMs: number,
  field: string,
): Resolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: DNS_DEFAULTS.tries });
  if (servers !== undefined) {
    try {
      resolver.setServers(Array.isArray(servers) ? servers : [servers]);
    } catch (err) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "${field}": ${(err as Error).message} (expected "ip:port", "[v6]:port" or an IP)`,
        { field },
      );
    }
  }
  return resolver;
}

/** The IPs of `host` in the wanted families; an IP literal stands for itself. */
export async function resolveHost(
  resolver: Resolver,
  host: string,
  families: Array<4 | 6>,
): Promise<LookupResult<string>> {
  const literal = net.isIP(host);
  if (literal) return { ok: true, value: families.includes(literal as 4 | 6) ? [host] : [] };
  const results = await Promise.all(
    families.map((f) =>
      lookup(() => (f === 4 ? resolver.resolve4(host) : resolver.resolve6(host))),
    ),
  );
  const failed = results.find((r) => !r.ok);
  if (failed) return failed;
  return { ok: true, value: results.flatMap((r) => (r.ok ? r.value : [])) };
}

export class DnsStrategy implements DiscoveryStrategy {
  readonly name = 'dns';
  private readonly opts: Omit<z.infer<typeof dnsSchema>, 'strategy'>;
  private readonly resolver: Resolver;
  private loop: { stop(): void } | undefined;

  /** Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid. */
  constructor(opts: DnsOptions) {
    this.opts = parseStrategyOptions(dnsSchema.omit({ strategy: true }), opts);
    this.resolver = createResolver(
      this.opts.resolver,
      this.opts.timeoutMs ?? DNS_DEFAULTS.timeoutMs,
      'discovery.resolver',
    );
  }

  start(ctx: DiscoveryContext): void {
    const port = this.opts.port ?? ctx.self.address.port;
    const families = familiesFor(this.opts.family ?? 'auto', ctx.self.address.host);
    this.loop = pollDns(ctx, this.name, this.opts, async () => {
      const found = await resolveHost(this.resolver, this.opts.query, families);
      return found.ok
        ? { ok: true, value: found.value.map((host): Address => ({ host, port })) }
        : found;
    });
  }

  stop(): void {
    this.loop?.stop();
    // Ends in-flight queries at once (they reject with ECANCELLED and the aborted poll ignores it).
    this.resolver.cancel();
  }
}

/**
 * The poll loop both DNS strategies share. Unknown is not empty: a failed lookup skips the round
 * (logged once per failure streak), so a DNS outage neither joins nor disconnects anybody.
 */
export function pollDns(
  ctx: DiscoveryContext,
  name: string,
  opts: {
    query: string;
    pollingIntervalMs?: number | undefined;
    disconnectRemoved?: boolean | undefined;
  },
  fetch: () => Promise<LookupResult<Address>>,
): { stop(): void } {
  const r = new Reconciler(ctx, name, opts.disconnectRemoved ?? DNS_DEFAULTS.disconnectRemoved);
  const failures = new PollFailures(ctx, name);
  return poll(ctx, opts.pollingIntervalMs ?? DNS_DEFAULTS.pollingIntervalMs, async () => {
    const found = await fetch();
    if (ctx.signal.aborted) return;
    if (!found.ok) {
      failures.failed(found.code, `${name} query failed; skipping this round`, {
        query: opts.query,
        err: found.message,
      });
      return;
    }
    failures.ok();
    if (found.value.length === 0)
      ctx.log.debug({ query: opts.query }, `${name}: no records; no peers this round`);
    await r.reconcile(found.value);
  });
}
