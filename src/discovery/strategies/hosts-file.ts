// `hosts-file`: joins the nodes listed in a plain text file, one `host`, `host:port` or
// `[v6]:port` per line (libcluster's ErlangHosts, which reads Erlang's `.hosts.erlang`). The file is
// watched and also re-read every polling interval, so edits (or a config-management rewrite) take
// effect without a restart, and listed nodes that restart are joined again.
import { promises as dns } from 'node:dns';
import { type FSWatcher, promises as fs, watch } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { type Address, parseAddress } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import {
  familiesFor,
  type IpFamily,
  PollFailures,
  parseStrategyOptions,
  uniqueAddresses,
  validHost,
} from './polling.js';

/** Default file name, looked for in the working directory, then the home directory (like `.hosts.erlang`). */
export const HOSTS_FILE_NAME = '.hosts.foundation';
/** Erlang's file (net_adm), read by libcluster's ErlangHosts: used when no `.hosts.foundation` is found. */
export const ERLANG_HOSTS_FILE_NAME = '.hosts.erlang';

export interface HostsFileOptions {
  /**
   * The hosts file. Default: the first of `.hosts.foundation` then `.hosts.erlang` in the working
   * directory, then the same two in the home directory (Erlang's lookup order for `.hosts.erlang`;
   * its `$OTP_ROOT` has no counterpart here). A missing file is looked for again on every poll, so
   * it may be created after the node starts.
   */
  path?: string;
  /** Port for lines that give only a host. Default: this node's own port (all nodes on one fixed port). */
  port?: number;
  /**
   * Re-read interval in ms, on top of watching the file. Default 2000. The watch makes edits take
   * effect at once where it works; polling covers filesystems where it does not (network mounts,
   * some container bind mounts) and re-joins listed nodes that restarted. Lower: faster on such
   * filesystems, more reads.
   */
  pollingIntervalMs?: number;
  /**
   * Address family kept when a host name resolves (via the system resolver, /etc/hosts included):
   * `ipv4`, `ipv6`, `any` or `auto` (default: this node's own family). IP literals are kept when
   * their family is wanted.
   */
  family?: IpFamily;
  /**
   * Report addresses removed from the file; membership forgets them if down and probes them if
   * alive. Default false (libcluster's ErlangHosts never disconnects); turn it on to have removed
   * nodes forgotten without waiting for the down-member retention.
   */
  disconnectRemoved?: boolean;
}

/** Validation of `{ strategy: 'hosts-file', ... }` discovery options. */
export const hostsFileSchema = z.strictObject({
  strategy: z.literal('hosts-file'),
  path: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  pollingIntervalMs: z.number().int().positive().optional(),
  family: z.enum(['auto', 'ipv4', 'ipv6', 'any']).optional(),
  disconnectRemoved: z.boolean().optional(),
});

export const HOSTS_FILE_DEFAULTS = Object.freeze({
  // Fallback for filesystems without change events; cheap (one small file read).
  pollingIntervalMs: 2_000,
  disconnectRemoved: false,
});

export interface HostsFileEntry {
  /** Host name or IP literal, as written. */
  host: string;
  port: number;
}

export interface ParsedHostsFile {
  entries: HostsFileEntry[];
  /** Lines that are neither blank, a comment, nor a host: 1-based line number and text. */
  invalid: Array<{ line: number; text: string }>;
}

// One Erlang term of a `.hosts.erlang` file: a quoted atom `'host'.`, a plain atom `host.` or a
// string `"host".`, each ended by a dot (file:consult syntax; net_adm reads atoms).
const ERLANG_TERM = /^\s*(?:'([^'\\]+)'|"([^"\\]+)"|([a-z][A-Za-z0-9_@]*))\s*\.(?=\s|$)/;

/** The hosts of a line of Erlang terms (`'a'. 'b'.`), or undefined when it is not one. */
function erlangTerms(line: string): string[] | undefined {
  const hosts: string[] = [];
  let rest = line;
  while (rest.trim()) {
    const m = ERLANG_TERM.exec(rest);
    if (!m) return undefined;
    hosts.push((m[1] ?? m[2] ?? m[3])!);
    rest = rest.slice(m[0].length);
  }
  return hosts;
}

/**
 * Parses a hosts file: one `host`, `host:port`, `[v6]:port` or bare IPv6 per line, or Erlang's
 * `.hosts.erlang` format (`'host'.` terms ending in a dot, several per line allowed); `#` and
 * Erlang's `%` start a comment; blank lines are skipped. Hosts without a port get `defaultPort`.
 */
export function parseHostsFile(text: string, defaultPort: number): ParsedHostsFile {
  const entries: HostsFileEntry[] = [];
  const invalid: ParsedHostsFile['invalid'] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/[#%].*$/, '').trim();
    if (!line) return;
    const terms = line.includes('.') && /\.$/.test(line) ? erlangTerms(line) : undefined;
    for (const item of terms ?? [line]) {
      const withPort = parseAddress(item);
      if (withPort && validHost(withPort.host)) entries.push(withPort);
      else if (!withPort && validHost(item)) entries.push({ host: item, port: defaultPort });
      else {
        invalid.push({ line: i + 1, text: raw.trim().slice(0, 200) });
        return;
      }
    }
  });
  return { entries, invalid };
}

export class HostsFileStrategy implements DiscoveryStrategy {
  readonly name = 'hosts-file';
  private readonly opts: Omit<z.infer<typeof hostsFileSchema>, 'strategy'>;
  /** Files to try, in order; the first that exists is used. */
  readonly candidates: string[];
  private readonly watchers: FSWatcher[] = [];
  private loop: { stop(): void } | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning = false;
  private again = false;
  private readonly warned = new Set<string>();

  /**
   * @param dirs where the default file is looked for (the working and home directories).
   * Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid.
   */
  constructor(
    opts: HostsFileOptions = {},
    dirs: { cwd: string; home: string } = { cwd: process.cwd(), home: os.homedir() },
  ) {
    this.opts = parseStrategyOptions(hostsFileSchema.omit({ strategy: true }), opts);
    this.candidates = this.opts.path
      ? [path.resolve(dirs.cwd, this.opts.path)]
      : [dirs.cwd, dirs.home].flatMap((d) => [
          path.join(d, HOSTS_FILE_NAME),
          path.join(d, ERLANG_HOSTS_FILE_NAME),
        ]);
  }

  start(ctx: DiscoveryContext): void {
    const r = new Reconciler(
      ctx,
      this.name,
      this.opts.disconnectRemoved ?? HOSTS_FILE_DEFAULTS.disconnectRemoved,
    );
    const failures = new PollFailures(ctx, this.name);
    const scan = () => this.scanOnce(ctx, r, failures);
    for (const dir of new Set(this.candidates.map((c) => path.dirname(c)))) {
      const names = new Set(
        this.candidates.filter((c) => path.dirname(c) === dir).map((c) => path.basename(c)),
      );
      try {
        // Watch the directory, not the file: editors and config tools replace files by rename,
        // which ends a watch on the old inode.
        const w = watch(dir, (_event, file) => {
          if (file !== null && !names.has(file.toString())) return;
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => void scan(), 25);
          this.debounce.unref();
        });
        w.on('error', () => {});
        w.unref();
        this.watchers.push(w);
      } catch {
        // No watch (missing directory, no inotify slots): polling below still re-reads.
      }
    }
    this.loop = poll(
      ctx,
      this.opts.pollingIntervalMs ?? HOSTS_FILE_DEFAULTS.pollingIntervalMs,
      scan,
    );
  }

  /** One read-and-reconcile at a time; a change seen while reading triggers one more round. */
  private async scanOnce(
    ctx: DiscoveryContext,
    r: Reconciler,
    failures: PollFailures,
  ): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.again = false;
        if (ctx.signal.aborted) return;
        await this.scan(ctx, r, failures);
      } while (this.again);
    } finally {
      this.scanning = false;
    }
  }

  private async scan(ctx: DiscoveryContext, r: Reconciler, failures: PollFailures): Promise<void> {
    let file: string | undefined;
    let text = '';
    let lastErr: NodeJS.ErrnoException | undefined;
    for (const c of this.candidates) {
      try {
        text = await fs.readFile(c, 'utf8');
        file = c;
        break;
      } catch (err) {
        lastErr = err as NodeJS.ErrnoException;
        if (lastErr.code !== 'ENOENT') break;
      }
    }
    if (ctx.signal.aborted) return;
    if (file === undefined) {
      // Missing or unreadable is not an empty list: skip the round (no joins, no disconnects).
      failures.failed(
        lastErr?.code ?? 'ENOENT',
        lastErr?.code === 'ENOENT'
          ? `no hosts file at ${this.candidates.join(' or ')}; looking again on the next poll`
          : `hosts file unreadable: ${lastErr?.message}`,
        { candidates: this.candidates },
      );
      return;
    }
    failures.ok();
    const parsed = parseHostsFile(text, this.opts.port ?? ctx.self.address.port);
    for (const bad of parsed.invalid) {
      const key = `${file}\n${bad.text}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      ctx.log.warn(
        { file, line: bad.line, text: bad.text },
        'hosts file: ignoring a line that is not host, host:port or [v6]:port',
      );
    }
    const families = familiesFor(this.opts.family ?? 'auto', ctx.self.address.host);
    const resolved = await Promise.all(parsed.entries.map((e) => this.resolve(ctx, e, families)));
    if (ctx.signal.aborted) return;
    await r.reconcile(uniqueAddresses(resolved.flat()));
  }

  /** A name becomes the addresses it resolves to, so it compares equal to members' addresses. */
  private async resolve(
    ctx: DiscoveryContext,
    e: HostsFileEntry,
    families: Array<4 | 6>,
  ): Promise<Address[]> {
    const literal = net.isIP(e.host);
    if (literal) return families.includes(literal as 4 | 6) ? [e] : [];
    try {
      const found = await dns.lookup(e.host, { all: true });
      return found
        .filter((a) => families.includes(a.family as 4 | 6))
        .map((a) => ({ host: a.address, port: e.port }));
    } catch (err) {
      ctx.log.debug({ host: e.host, err: (err as Error).message }, 'hosts file: name not resolved');
      return [];
    }
  }

  stop(): void {
    this.loop?.stop();
    clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
  }
}
