// `dns`: polls the A (and/or AAAA) records of one name and joins every address listed, on a fixed
// port (libcluster's DNSPoll and Kubernetes.DNS). In Kubernetes the name is a headless service,
// whose records are the IPs of its ready pods. Also holds the DNS helpers `dns-srv` shares.
import { Resolver } from 'node:dns/promises';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import type { Address } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import { familiesFor, type IpFamily, PollFailures, parseStrategyOptions } from './polling.js';

export interface DnsOptions {
  /**
   * Name whose A/AAAA records list the nodes. Required. In Kubernetes: the headless service, e.g.
   * `my-app-headless.my-ns.svc.cluster.local`, or just `my-app-headless`: like Erlang's inet_res
   * (and libcluster), a name with fewer dots than resolv.conf's `ndots` is tried with each
   * `search` domain first, then as written; one with at least `ndots` dots the other way round; a
   * name ending in `.` only as written. The first name with records wins.
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

/** Where the search path is read from (Linux, macOS). */
export const RESOLV_CONF = '/etc/resolv.conf';

/** The parts of resolv.conf that decide which names a query tries. */
export interface ResolvConf {
  /** Search domains, in order (the last `search` or `domain` line wins, as in glibc). */
  search: string[];
  /** Names with at least this many dots are tried as written first. Default 1. */
  ndots: number;
}

/** Parses resolv.conf text; unknown lines are ignored. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { search: [], ndots: 1 };
  for (const raw of text.split(/\r?\n/)) {
    const [key, ...rest] = raw
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (key === 'search' || key === 'domain') {
      conf.search = rest.map((d) => d.replace(/\.$/, '')).filter((d) => d && d !== '.');
    } else if (key === 'options') {
      for (const o of rest) {
        const m = /^ndots:(\d+)$/.exec(o);
        if (m) conf.ndots = Math.min(Number(m[1]), 15);
      }
    }
  }
  return conf;
}

/** Reads `file` (default /etc/resolv.conf); a missing or unreadable file means no search path. */
export async function readResolvConf(file = RESOLV_CONF): Promise<ResolvConf> {
  try {
    return parseResolvConf(await fs.readFile(file, 'utf8'));
  } catch {
    return { search: [], ndots: 1 };
  }
}

/** The names a query for `name` tries, in order (inet_res / glibc rules; see DnsOptions.query). */
export function searchNames(name: string, conf: ResolvConf): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const qualified = conf.search.map((d) => `${name}.${d}`);
  const dots = name.split('.').length - 1;
  return dots >= conf.ndots ? [name, ...qualified] : [...qualified, name];
}

/**
 * Runs `query` on each of `names` in order until one has records. A failure (timeout, SERVFAIL)
 * ends the search: unknown is not empty. The answer says which names were tried.
 */
export async function searchLookup<T>(
  names: string[],
  query: (name: string) => Promise<LookupResult<T>>,
): Promise<LookupResult<T> & { tried: string[] }> {
  const tried: string[] = [];
  for (const name of names) {
    tried.push(name);
    const r = await query(name);
    if (!r.ok || r.value.length > 0) return { ...r, tried };
  }
  return { ok: true, value: [], tried };
}

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

/** What the DNS strategies take besides their options (tests point them elsewhere). */
export interface DnsEnvironment {
  /** resolv.conf to read the search path and ndots from. Default /etc/resolv.conf. */
  resolvConf?: string;
}

export class DnsStrategy implements DiscoveryStrategy {
  readonly name = 'dns';
  private readonly opts: Omit<z.infer<typeof dnsSchema>, 'strategy'>;
  private readonly resolver: Resolver;
  private loop: { stop(): void } | undefined;

  /** Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid. */
  constructor(
    opts: DnsOptions,
    private readonly env: DnsEnvironment = {},
  ) {
    this.opts = parseStrategyOptions(dnsSchema.omit({ strategy: true }), opts);
    this.resolver = createResolver(
      this.opts.resolver,
      this.opts.timeoutMs ?? DNS_DEFAULTS.timeoutMs,
      'discovery.resolver',
    );
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    const port = this.opts.port ?? ctx.self.address.port;
    const families = familiesFor(this.opts.family ?? 'auto', ctx.self.address.host);
    const names = searchNames(this.opts.query, await readResolvConf(this.env.resolvConf));
    this.loop = pollDns(ctx, this.name, this.opts, async () => {
      const found = await searchLookup(names, (n) => resolveHost(this.resolver, n, families));
      return found.ok
        ? {
            ok: true,
            tried: found.tried,
            value: found.value.map((host): Address => ({ host, port })),
          }
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
  fetch: () => Promise<LookupResult<Address> & { tried?: string[] }>,
): { stop(): void } {
  const r = new Reconciler(ctx, name, opts.disconnectRemoved ?? DNS_DEFAULTS.disconnectRemoved);
  const failures = new PollFailures(ctx, name);
  // Whether the last answered round had no records: logged when that changes, not every poll.
  let empty: boolean | undefined;
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
    const nowEmpty = found.value.length === 0;
    if (nowEmpty && empty !== true) {
      ctx.log.warn(
        { strategy: name, query: opts.query, tried: found.tried ?? [opts.query] },
        `${name}: no records for ${opts.query}; no peers from DNS until some appear (check the name: a short name is completed with resolv.conf's search domains)`,
      );
    } else if (!nowEmpty && empty === true) {
      ctx.log.info(
        { strategy: name, query: opts.query, records: found.value.length },
        `${name}: records for ${opts.query} again`,
      );
    }
    empty = nowEmpty;
    await r.reconcile(found.value);
  });
}
