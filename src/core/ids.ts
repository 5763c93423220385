// Identifiers Node does not give: UUIDv7 (time-ordered, RFC 9562). Node 20 has crypto.randomUUID
// (v4, random) but no v7; event ids are v7 so that ids sort by creation time, which keeps the
// SQLite index on them append-mostly.
import { randomFillSync } from 'node:crypto';

let lastMs = -1;
let seq = 0;
/** Random bytes drawn 4 KiB at a time: one getrandom call per ~400 ids, not one per id. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/**
 * A UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter that keeps ids from one process
 * strictly increasing within a millisecond, then 62 random bits. `nowMs` defaults to Date.now().
 */
export function uuidv7(nowMs: number = Date.now()): string {
  let ms = Math.max(0, Math.floor(nowMs));
  if (ms <= lastMs) {
    ms = lastMs;
    seq++;
    if (seq > 0xfff) {
      // 4096 ids in one millisecond: borrow the next one (ids stay ordered, time drifts by 1 ms).
      ms = lastMs + 1;
      seq = 0;
    }
  } else seq = 0;
  lastMs = ms;
  if (poolAt + 8 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const rand = pool.subarray(poolAt, poolAt + 8);
  poolAt += 8;
  const b = new Uint8Array(16);
  for (let i = 0; i < 6; i++) b[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  b[6] = 0x70 | ((seq >> 8) & 0x0f);
  b[7] = seq & 0xff;
  b[8] = 0x80 | (rand[0]! & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = rand[i - 8]!;
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The Unix milliseconds a UUIDv7 was made at. */
export function uuidv7Time(id: string): number {
  return Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}
