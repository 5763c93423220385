// Pieces shared by the polling strategies (dns, dns-srv, kubernetes, hosts-file): option validation
// that names the bad field, the choice of address family, and failure reporting that logs a broken
// source once per streak instead of once per poll.
import net from 'node:net';
import type { z } from 'zod';
import { FoundationError } from '../../errors.js';
import { type Address, formatAddress } from '../../transport/types.js';
import { publish } from '../../util/diagnostics.js';
import type { DiscoveryContext } from '../strategy.js';

/**
 * Which address families a strategy keeps. `auto` follows this node's own advertised address: an
 * IPv4 node dials IPv4 peers, an IPv6 node IPv6 peers, and a node advertised under a host name
 * takes both. Every node advertises one address, so keeping the other family would make the
 * strategy re-dial a second address of nodes that are already members on every poll.
 */
export type IpFamily = 'auto' | 'ipv4' | 'ipv6' | 'any';

/** The DNS record types (and `net.isIP` families) to keep for `family` on a node at `selfHost`. */
export function familiesFor(family: IpFamily, selfHost: string): Array<4 | 6> {
  switch (family) {
    case 'ipv4':
      return [4];
    case 'ipv6':
      return [6];
    case 'any':
      return [4, 6];
    case 'auto': {
      const v = net.isIP(selfHost);
      return v === 4 ? [4] : v === 6 ? [6] : [4, 6];
    }
  }
}

/**
 * Validates `opts` against a strategy's schema without its `strategy` tag (options may arrive with
 * the tag, straight from FoundationOptions; it is dropped) and throws FND_ERR_INVALID_OPTION naming
 * the field as `discovery.<field>`, the way `Foundation.start` does.
 */
export function parseStrategyOptions<T>(schema: z.ZodType<T>, opts: unknown): T {
  const { strategy: _tag, ...rest } = (opts ?? {}) as { strategy?: unknown };
  const parsed = schema.safeParse(rest);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
  const field = ['discovery', ...issue.path.map(String), ...keys.slice(0, 1)].join('.');
  throw new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${issue.message}`, {
    field,
    issue: issue.message,
  });
}

/**
 * Reports poll failures: a warning when a failure streak starts or its cause changes, debug for
 * repeats (a source that is down for an hour must not write 720 warnings), an info line when the
 * source answers again, and a `foundation:discovery:poll-error` event for every failed round.
 * Never throws. Called from the poll loop only, so never concurrently.
 */
export class PollFailures {
  private streak: string | undefined;
  private since = 0;

  constructor(
    private readonly ctx: DiscoveryContext,
    private readonly strategy: string,
  ) {}

  /** The round failed; `key` identifies the cause (e.g. an HTTP status or errno code). */
  failed(key: string, message: string, details: Record<string, unknown> = {}): void {
    const fields = { strategy: this.strategy, cause: key, ...details };
    if (this.streak !== key) {
      this.ctx.log.warn(fields, message);
      if (this.streak === undefined) this.since = this.ctx.clock.now();
      this.streak = key;
    } else {
      this.ctx.log.debug(fields, message);
    }
    publish('discoveryPollError', () => ({
      measurements: { failingForMs: this.ctx.clock.now() - this.since },
      metadata: { strategy: this.strategy, cluster: this.ctx.cluster, cause: key, message },
    }));
  }

  /** The round succeeded. */
  ok(): void {
    if (this.streak === undefined) return;
    this.ctx.log.info(
      { strategy: this.strategy, failedForMs: Math.round(this.ctx.clock.now() - this.since) },
      'discovery source answers again',
    );
    this.streak = undefined;
  }
}

/** `addresses` without repeats (a pod listed by two Endpoints objects is dialled once). */
export function uniqueAddresses(addresses: Address[]): Address[] {
  return [...new Map(addresses.map((a) => [formatAddress(a), a])).values()];
}

const LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** An IP literal, or a syntactically valid host name (a dotted all-numeric non-IP is a typo). */
export function validHost(host: string): boolean {
  if (net.isIP(host)) return true;
  return HOSTNAME.test(host) && !/^[\d.]+$/.test(host);
}
