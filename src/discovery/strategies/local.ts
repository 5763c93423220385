// `local`: zero-config discovery of nodes of the same cluster on the same host, with no network
// traffic at all. Each node writes a record (name, address, pid) into a per-user, per-cluster
// directory under the OS temp dir and watches the directory. Records of crashed processes (pid no
// longer running) are deleted by whoever sees them, so stale records never cause trouble. A
// directory owned by another user or writable by others is refused (FND_ERR_UNSAFE_PATH): anyone
// who can write there could plant records and steer whom this node dials.
import { createHash } from 'node:crypto';
import { type FSWatcher, promises as fs, watch } from 'node:fs';
import path from 'node:path';
import type { Address } from '../../transport/types.js';
import {
  ensurePrivateDirectory,
  ensureUserDirectory,
  userDirectory,
} from '../../util/private-dir.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';

export interface LocalOptions {
  /**
   * Directory holding the cluster's records. Default: `<tmpdir>/foundation-<uid>/<cluster>-<hash>`
   * (created 0700, removed again by the last node to stop). A directory given here must belong to
   * this user and not be writable by group or others; it is created if missing and never removed.
   */
  directory?: string;
  /** Rescan interval in ms (the directory is also watched). Default 500. */
  pollingIntervalMs?: number;
}

interface NodeRecord {
  v: 1;
  name: string;
  host: string;
  port: number;
  pid: number;
  incarnation: number;
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 10);

/** The default records directory of `cluster`, inside the per-user directory (util/private-dir.ts). */
export function defaultLocalDirectory(cluster: string): string {
  return path.join(userDirectory(), `${safe(cluster)}-${hash(cluster)}`);
}

/** Nobody but this user may write where records are read from (reading them reveals only addresses). */
const RECORDS_RULE = { forbidden: 0o022 } as const;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseRecord(text: string): NodeRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<NodeRecord>;
    if (r.v !== 1 || typeof r.name !== 'string' || typeof r.host !== 'string') return undefined;
    if (!Number.isInteger(r.port) || !Number.isInteger(r.pid) || typeof r.incarnation !== 'number')
      return undefined;
    return r as NodeRecord;
  } catch {
    return undefined;
  }
}

export class LocalStrategy implements DiscoveryStrategy {
  readonly name = 'local';
  private dir = '';
  private file = '';
  private watcher: FSWatcher | undefined;
  private loop: { stop(): void } | undefined;
  private debounce: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LocalOptions = {}) {}

  async start(ctx: DiscoveryContext): Promise<void> {
    this.dir = this.opts.directory ?? defaultLocalDirectory(ctx.cluster);
    await this.prepareDirectory();
    this.file = path.join(this.dir, `${safe(ctx.self.name)}-${hash(ctx.self.name)}.json`);
    const record: NodeRecord = {
      v: 1,
      name: ctx.self.name,
      host: ctx.self.address.host,
      port: ctx.self.address.port,
      pid: process.pid,
      incarnation: ctx.self.incarnation,
    };
    // Write-then-rename: readers never see a half-written record. ENOENT: the last node of the
    // cluster removed the (then empty) default directory between our mkdir and this write.
    const tmp = `${this.file}.${process.pid}.tmp`;
    for (let attempt = 1; ; attempt++) {
      try {
        await fs.writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
        await fs.rename(tmp, this.file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
        await this.prepareDirectory();
      }
    }

    const r = new Reconciler(ctx, this.name);
    const scan = () => this.scan(ctx, r);
    try {
      this.watcher = watch(this.dir, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void scan().catch(() => {}), 20);
        this.debounce.unref();
      });
      this.watcher.on('error', () => {});
      this.watcher.unref();
    } catch {
      // fs.watch is best-effort; polling below still finds everyone.
    }
    this.loop = poll(ctx, this.opts.pollingIntervalMs ?? 500, scan);
  }

  /** Creates the records directory if needed and refuses it unless it is this user's alone. */
  private async prepareDirectory(): Promise<void> {
    if (this.opts.directory !== undefined) {
      await ensurePrivateDirectory(this.dir, { ...RECORDS_RULE, noSymlink: false });
      return;
    }
    // Default: both levels live under the shared temp dir, so symlinks are refused as well.
    await ensureUserDirectory(path.dirname(this.dir));
    await ensurePrivateDirectory(this.dir, { ...RECORDS_RULE, noSymlink: true });
  }

  private async scan(ctx: DiscoveryContext, r: Reconciler): Promise<void> {
    if (ctx.signal.aborted) return;
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const found: Address[] = [];
    await Promise.all(
      names
        .filter((n) => n.endsWith('.json'))
        .map(async (n) => {
          const full = path.join(this.dir, n);
          if (full === this.file) return;
          const rec = parseRecord(await fs.readFile(full, 'utf8').catch(() => ''));
          if (!rec) return;
          if (!pidAlive(rec.pid)) {
            ctx.log.debug({ record: n, pid: rec.pid }, 'removing stale local discovery record');
            await fs.unlink(full).catch(() => {});
            return;
          }
          if (rec.name !== ctx.self.name) found.push({ host: rec.host, port: rec.port });
        }),
    );
    await r.reconcile(found);
  }

  async stop(): Promise<void> {
    this.loop?.stop();
    clearTimeout(this.debounce);
    this.watcher?.close();
    if (this.file) {
      // Only remove the record if it is still ours (a restarted node with our name may own it now).
      const rec = parseRecord(await fs.readFile(this.file, 'utf8').catch(() => ''));
      if (rec?.pid === process.pid) await fs.unlink(this.file).catch(() => {});
      // The default directory goes with the last node of the cluster (rmdir fails while any record
      // or another node's half-written one remains; a node starting meanwhile re-creates it).
      if (this.opts.directory === undefined) await fs.rmdir(this.dir).catch(() => {});
    }
  }
}
