// The per-user secret (src/cluster/local-secret.ts) and the private-directory checks
// (src/util/private-dir.ts) on a shared host. Every test works in its own temp dir passed as the
// per-user directory; ownership by "another user" is simulated with chown (the suite runs as root).
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadUserSecret, SECRET_FILE } from '../../src/cluster/local-secret.js';
import { isFoundationError } from '../../src/errors.js';

const OTHER_UID = 54321;

async function rejectsWith(p: Promise<unknown>, code: string, ...fragments: string[]) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isFoundationError(err), `a FoundationError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${f}" in: ${err.message}`);
    return true;
  });
}

describe('per-user secret (loopback default when no secret is given)', () => {
  let root = '';
  let n = 0;
  const fresh = () => path.join(root, `u${++n}`, `foundation-${process.getuid?.() ?? 'x'}`);
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'fnd-secret-'));
  });
  after(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('is generated on first use (32 random bytes) into a 0600 file in a 0700 directory, and read back the same later', async () => {
    const dir = fresh();
    const s1 = await loadUserSecret(dir);
    assert.match(s1, /^[A-Za-z0-9_-]{43}$/, '32 bytes, base64url');
    assert.equal(Buffer.from(s1, 'base64url').length, 32);
    const dst = await fs.stat(dir);
    const fst = await fs.stat(path.join(dir, SECRET_FILE));
    assert.equal(dst.mode & 0o777, 0o700);
    assert.equal(fst.mode & 0o777, 0o600);
    assert.equal(await loadUserSecret(dir), s1, 'the same secret on every later start');
    assert.notEqual(await loadUserSecret(fresh()), s1, 'another user (directory) has another one');
    assert.deepEqual(await fs.readdir(dir), [SECRET_FILE], 'no temporary file is left behind');
  });

  it('concurrent first starts agree on one secret', async () => {
    const dir = fresh();
    const all = await Promise.all(Array.from({ length: 12 }, () => loadUserSecret(dir)));
    assert.equal(new Set(all).size, 1);
    assert.deepEqual(await fs.readdir(dir), [SECRET_FILE]);
  });

  it('refuses a per-user directory created by another user (FND_ERR_UNSAFE_PATH naming the path)', async () => {
    const dir = fresh();
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chown(dir, OTHER_UID, OTHER_UID);
    await rejectsWith(loadUserSecret(dir), 'FND_ERR_UNSAFE_PATH', dir, `uid ${OTHER_UID}`);
    assert.deepEqual(await fs.readdir(dir), [], 'nothing was written into it');
  });

  it('refuses a per-user directory that group or others can read or write', async () => {
    for (const mode of [0o777, 0o755, 0o750]) {
      const dir = fresh();
      await fs.mkdir(dir, { recursive: true });
      await fs.chmod(dir, mode);
      await rejectsWith(
        loadUserSecret(dir),
        'FND_ERR_UNSAFE_PATH',
        dir,
        `mode 0${mode.toString(8)}`,
        'chmod 0700',
      );
    }
  });

  it('refuses symbolic links in place of the directory or of the secret file', async () => {
    const target = fresh();
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    const link = fresh();
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.symlink(target, link);
    await rejectsWith(loadUserSecret(link), 'FND_ERR_UNSAFE_PATH', link, 'symbolic link');

    const dir = fresh();
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const elsewhere = path.join(root, 'planted-secret');
    await fs.writeFile(elsewhere, 'x'.repeat(64), { mode: 0o600 });
    await fs.symlink(elsewhere, path.join(dir, SECRET_FILE));
    await rejectsWith(loadUserSecret(dir), 'FND_ERR_UNSAFE_PATH', 'symbolic link');
  });

  it('refuses a secret file owned by another user, readable by others, or too short to be a secret', async () => {
    const planted = fresh();
    await fs.mkdir(planted, { recursive: true, mode: 0o700 });
    const file = path.join(planted, SECRET_FILE);
    await fs.writeFile(file, 'a-secret-the-attacker-knows-0123456789', { mode: 0o600 });
    await fs.chown(file, OTHER_UID, OTHER_UID);
    await rejectsWith(loadUserSecret(planted), 'FND_ERR_UNSAFE_PATH', file, `uid ${OTHER_UID}`);

    const open = fresh();
    await loadUserSecret(open);
    await fs.chmod(path.join(open, SECRET_FILE), 0o644);
    await rejectsWith(loadUserSecret(open), 'FND_ERR_UNSAFE_PATH', 'mode 0644', 'chmod 0600');

    const short = fresh();
    await fs.mkdir(short, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(short, SECRET_FILE), 'tooshort\n', { mode: 0o600 });
    await rejectsWith(loadUserSecret(short), 'FND_ERR_LOCAL_SECRET', 'holds 8 characters');
  });
});
