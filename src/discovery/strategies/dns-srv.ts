// `dns-srv`: polls the SRV records of one name; each record names a target host and a port, and
// the target's A/AAAA records (asked of the same resolver) give the addresses (libcluster's
// Kubernetes.DNSSRV). Unlike `dns`, nodes may listen on different ports.
import type { Resolver } from 'node:dns/promises';
import { z } from 'zod';
import type { Address } from '../../transport/types.js';
import type { DiscoveryContext, DiscoveryStrategy } from '../strategy.js';
import {
  createResolver,
  DNS_DEFAULTS,
  type DnsEnvironment,
  lookup,
  pollDns,
  readResolvConf,
  resolveHost,
  searchLookup,
  searchNames,
} from './dns.js';
import { familiesFor, type IpFamily, parseStrategyOptions } from './polling.js';

export interface DnsSrvOptions {
  /**
   * Name whose SRV records list the nodes. Required. In Kubernetes, a named port of a headless
   * service: `_<port-name>._tcp.<service>.<namespace>.svc.cluster.local`, so the port in each
   * record is the Foundation port; or the service itself, `<service>.<namespace>.svc.cluster.local`
   * (libcluster's query), whose records carry port 0 or the Service's first port: then set `port`.
   * Short names are completed with resolv.conf's search domains as for `dns`.
   */
  query: string;
  /**
   * Foundation port of every node, overriding the records' ports. Default: the record's port, or
   * this node's own port for records with port 0 (a headless Service without ports, as in
   * libcluster's example, publishes port 0; its port may also be another protocol's, e.g. HTTP).
   */
  port?: number;
  /** How often to poll, in ms. Default 5000. Lower: nodes found sooner, more DNS queries. */
  pollingIntervalMs?: number;
  /** DNS server(s) as `ip:port` / `[v6]:port` / IP. Default: the system resolvers (/etc/resolv.conf). */
  resolver?: string | string[];
  /**
   * Which records of each SRV target to use: `ipv4` (A), `ipv6` (AAAA), `any`, or `auto` (default):
   * the family of this node's own advertised address. A target given as an IP literal is used as is
   * when its family is wanted.
   */
  family?: IpFamily;
  /** Per-attempt query timeout in ms (two attempts). Default 2000. */
  timeoutMs?: number;
  /**
   * Report addresses that were listed and no longer are; membership forgets them if down and probes
   * them if alive. Default false (a briefly incomplete DNS answer proves nothing about a node).
   */
  disconnectRemoved?: boolean;
}

/** Validation of `{ strategy: 'dns-srv', ... }` discovery options. */
export const dnsSrvSchema = z.strictObject({
  strategy: z.literal('dns-srv'),
  query: z.string().min(1).max(254),
  port: z.number().int().min(1).max(65535).optional(),
  pollingIntervalMs: z.number().int().positive().optional(),
  resolver: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  family: z.enum(['auto', 'ipv4', 'ipv6', 'any']).optional(),
  timeoutMs: z.number().int().positive().optional(),
  disconnectRemoved: z.boolean().optional(),
});

export class DnsSrvStrategy implements DiscoveryStrategy {
  readonly name = 'dns-srv';
  private readonly opts: Omit<z.infer<typeof dnsSrvSchema>, 'strategy'>;
  private readonly resolver: Resolver;
  private loop: { stop(): void } | undefined;

  /** Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid. */
  constructor(
    opts: DnsSrvOptions,
    private readonly env: DnsEnvironment = {},
  ) {
    this.opts = parseStrategyOptions(dnsSrvSchema.omit({ strategy: true }), opts);
    this.resolver = createResolver(
      this.opts.resolver,
      this.opts.timeoutMs ?? DNS_DEFAULTS.timeoutMs,
      'discovery.resolver',
    );
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    const families = familiesFor(this.opts.family ?? 'auto', ctx.self.address.host);
    const names = searchNames(this.opts.query, await readResolvConf(this.env.resolvConf));
    const port = (p: number) => this.opts.port ?? (p > 0 ? p : ctx.self.address.port);
    this.loop = pollDns(ctx, this.name, this.opts, () => this.lookupAll(names, families, port));
  }

  /**
   * SRV records (of the first search name that has any), then each distinct target host's
   * addresses: the target is the node, as in libcluster, which dials `<app>@<target>`. A target
   * without records (NXDOMAIN) adds nothing; a target whose lookup fails fails the round, so its
   * node is not reported as removed.
   */
  private async lookupAll(
    names: string[],
    families: Array<4 | 6>,
    port: (recordPort: number) => number,
  ): Promise<
    { ok: true; value: Address[]; tried: string[] } | { ok: false; code: string; message: string }
  > {
    const srv = await searchLookup(names, (n) => lookup(() => this.resolver.resolveSrv(n)));
    if (!srv.ok) return srv;
    // "." as target means "no service here" (RFC 2782).
    const records = srv.value.filter((s) => s.name !== '' && s.name !== '.');
    const targets = [...new Set(records.map((s) => s.name))];
    const resolved = await Promise.all(
      targets.map(async (t) => [t, await resolveHost(this.resolver, t, families)] as const),
    );
    const ips = new Map<string, string[]>();
    for (const [t, res] of resolved) {
      if (!res.ok) return { ok: false, code: res.code, message: `target ${t}: ${res.message}` };
      ips.set(t, res.value);
    }
    const out = new Map<string, Address>();
    for (const s of records) {
      const p = port(s.port);
      for (const host of ips.get(s.name) ?? []) out.set(`${host}|${p}`, { host, port: p });
    }
    return { ok: true, value: [...out.values()], tried: srv.tried };
  }

  stop(): void {
    this.loop?.stop();
    this.resolver.cancel();
  }
}
