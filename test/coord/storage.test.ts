// FileStorage: what was persisted comes back after a reopen, a torn record at the tail (a crash
// mid-write) is cut off instead of failing the load, and snapshots drop the entries they cover.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Entry, Ready } from '../../src/coord/raft/raft.js';
import { FileStorage } from '../../src/coord/raft/storage.js';

const ent = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: { v: index },
});
const rd = (p: Partial<Ready>): Ready => ({
  log: [],
  committed: [],
  messages: [],
  reads: [],
  ...p,
});

describe('FileStorage', () => {
  it('reopens with the hard state, log (truncations applied) and snapshot; cuts a torn tail', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fnd-raft-'));
    try {
      const path = join(dir, 'raft.log');
      const s = new FileStorage(path, ['a', 'b', 'c']);
      s.persist(
        rd({
          hardState: { term: 1, vote: 'a', commit: 0 },
          log: [{ append: [ent(1, 1), ent(2, 1), ent(3, 1)] }],
        }),
      );
      s.persist(
        rd({
          hardState: { term: 2, vote: 'b', commit: 2 },
          log: [{ truncateFrom: 3 }, { append: [ent(3, 2), ent(4, 2)] }],
        }),
      );
      s.close();
      const sizeBefore = statSync(path).size;
      appendFileSync(path, Buffer.from([200, 0, 0, 0, 1, 2, 3])); // a record cut short by a crash
      const r = new FileStorage(path, ['ignored']);
      const p = r.load();
      assert.deepEqual(p.bootstrap, ['a', 'b', 'c'], 'the voters the file was created with');
      assert.deepEqual(p.hardState, { term: 2, vote: 'b', commit: 2 });
      assert.deepEqual(
        p.entries.map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 1],
          [3, 2],
          [4, 2],
        ],
      );
      assert.ok(statSync(path).size <= sizeBefore, 'the torn tail is gone from the file');
      r.saveSnapshot({ index: 3, term: 2, voters: ['a', 'b', 'c'], data: { k: 'v' } });
      r.close();
      const again = new FileStorage(path, []).load();
      assert.equal(again.snapshot?.index, 3);
      assert.deepEqual(again.snapshot?.data, { k: 'v' });
      assert.deepEqual(
        again.entries.map((e) => e.index),
        [4],
      );
      // A flipped byte in the last record (the snapshot): that record is refused, not misread,
      // and the state is what it was before it.
      const buf = readFileSync(path);
      buf[buf.length - 3] = (buf[buf.length - 3] ?? 0) ^ 0xff;
      appendFileSync(join(dir, 'copy.log'), buf);
      const broken = new FileStorage(join(dir, 'copy.log'), []).load();
      assert.equal(broken.snapshot, undefined);
      assert.equal(broken.entries.length, 4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
