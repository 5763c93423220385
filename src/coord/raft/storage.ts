// Where a Raft member keeps what it must not forget across a crash: term and vote, the log, the
// latest snapshot and the voters the group was created with. `FileStorage` is one append-only
// file of checksummed records, fsynced before `persist` returns (so before any message of the same
// Ready is sent); a torn record at the tail (a crash mid-write) is cut off on load. It is rewritten
// compactly (temp file, fsync, rename) when a snapshot makes most of it obsolete.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { pack, unpack } from 'msgpackr';
import type { Entry, HardState, Ready, Snapshot } from './raft.js';

/** What a member restarts from. */
export interface Persisted {
  bootstrap: string[];
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

export interface RaftStorage {
  load(): Persisted;
  /** Makes the Ready's hard state, log changes and snapshot durable. */
  persist(rd: Ready): void;
  /** Makes a local compaction durable (entries up to its index are dropped). */
  saveSnapshot(s: Snapshot): void;
  close(): void;
}

/** The state itself, shared by both storages. */
class State implements Persisted {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  constructor(public bootstrap: string[]) {}

  truncateFrom(i: number): void {
    while (this.entries.length > 0 && this.entries[this.entries.length - 1]!.index >= i)
      this.entries.pop();
  }
  append(es: Entry[]): void {
    if (es.length > 0) this.truncateFrom(es[0]!.index);
    this.entries.push(...es);
  }
  snap(s: Snapshot): boolean {
    if (this.snapshot && this.snapshot.index >= s.index) return false;
    this.snapshot = s;
    this.entries = this.entries.filter((e) => e.index > s.index);
    return true;
  }
}

/** Keeps everything in memory: for tests and for groups that accept losing state on restart. */
export class MemoryStorage implements RaftStorage {
  private readonly s: State;
  constructor(bootstrap: string[]) {
    this.s = new State(bootstrap);
  }
  load(): Persisted {
    return {
      bootstrap: this.s.bootstrap,
      hardState: this.s.hardState,
      snapshot: this.s.snapshot,
      entries: [...this.s.entries],
    };
  }
  persist(rd: Ready): void {
    if (rd.hardState) this.s.hardState = rd.hardState;
    for (const op of rd.log) {
      if ('truncateFrom' in op) this.s.truncateFrom(op.truncateFrom);
      else this.s.append(op.append);
    }
    if (rd.snapshot) this.s.snap(rd.snapshot);
  }
  saveSnapshot(s: Snapshot): void {
    this.s.snap(s);
  }
  close(): void {}
}

type Rec =
  | { t: 'boot'; voters: string[] }
  | { t: 'hs'; hs: HardState }
  | { t: 'app'; entries: Entry[] }
  | { t: 'trunc'; from: number }
  | { t: 'snap'; snapshot: Snapshot };

/** Record: u32 body length, u32 CRC-32 of the body, msgpack body. */
function encodeRecords(recs: Rec[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of recs) {
    const body = pack(r);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(body.length, 0);
    head.writeUInt32LE(crc32(body), 4);
    parts.push(head, body);
  }
  return Buffer.concat(parts);
}

/** Rewrite the file once it holds this many bytes more than its compact form would. */
const REWRITE_SLACK = 4 * 1024 * 1024;

export class FileStorage implements RaftStorage {
  private readonly s: State;
  private fd: number;
  private size = 0;
  /** Size right after the last rewrite: growth past it by REWRITE_SLACK triggers the next one. */
  private liveSize = 0;

  /**
   * Opens (or creates) the log at `path`. `bootstrap` is recorded when the file is new; an existing
   * file keeps the voters it was created with.
   */
  constructor(
    private readonly path: string,
    bootstrap: string[],
  ) {
    this.s = new State(bootstrap);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      buf = Buffer.alloc(0);
    }
    let off = 0;
    let sawBoot = false;
    while (off + 8 <= buf.length) {
      const len = buf.readUInt32LE(off);
      const sum = buf.readUInt32LE(off + 4);
      if (off + 8 + len > buf.length) break; // torn tail
      const body = buf.subarray(off + 8, off + 8 + len);
      if (crc32(body) !== sum) break; // torn or corrupt tail: everything after is unusable
      const r = unpack(body) as Rec;
      if (r.t === 'boot') {
        this.s.bootstrap = r.voters;
        sawBoot = true;
      } else if (r.t === 'hs') this.s.hardState = r.hs;
      else if (r.t === 'app') this.s.append(r.entries);
      else if (r.t === 'trunc') this.s.truncateFrom(r.from);
      else if (r.t === 'snap') this.s.snap(r.snapshot);
      off += 8 + len;
    }
    this.fd = openSync(path, 'a+');
    if (off < buf.length || !sawBoot) {
      // Cut the torn tail (or start a new file) by rewriting what was read.
      this.rewrite();
    } else this.size = this.liveSize = off;
  }

  load(): Persisted {
    return {
      bootstrap: this.s.bootstrap,
      hardState: this.s.hardState,
      snapshot: this.s.snapshot,
      entries: [...this.s.entries],
    };
  }

  persist(rd: Ready): void {
    const recs: Rec[] = [];
    for (const op of rd.log) {
      if ('truncateFrom' in op) {
        this.s.truncateFrom(op.truncateFrom);
        recs.push({ t: 'trunc', from: op.truncateFrom });
      } else {
        this.s.append(op.append);
        recs.push({ t: 'app', entries: op.append });
      }
    }
    if (rd.snapshot && this.s.snap(rd.snapshot)) recs.push({ t: 'snap', snapshot: rd.snapshot });
    if (rd.hardState) {
      this.s.hardState = rd.hardState;
      recs.push({ t: 'hs', hs: rd.hardState });
    }
    if (recs.length > 0) this.write(recs);
  }

  saveSnapshot(snap: Snapshot): void {
    if (!this.s.snap(snap)) return;
    this.write([{ t: 'snap', snapshot: snap }]);
    if (this.size - this.liveSize > REWRITE_SLACK) this.rewrite();
  }

  close(): void {
    closeSync(this.fd);
  }

  private write(recs: Rec[]): void {
    const buf = encodeRecords(recs);
    writeSync(this.fd, buf);
    fsyncSync(this.fd);
    this.size += buf.length;
  }

  /** Writes the current state as a new file next to the old one, fsyncs it, and renames it over. */
  private rewrite(): void {
    const recs: Rec[] = [{ t: 'boot', voters: this.s.bootstrap }];
    if (this.s.snapshot) recs.push({ t: 'snap', snapshot: this.s.snapshot });
    recs.push({ t: 'hs', hs: this.s.hardState });
    if (this.s.entries.length > 0) recs.push({ t: 'app', entries: this.s.entries });
    const buf = encodeRecords(recs);
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    writeSync(fd, buf);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    // The rename itself must survive a crash: fsync the directory.
    const dfd = openSync(dirname(this.path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a');
    this.size = this.liveSize = buf.length;
  }
}
