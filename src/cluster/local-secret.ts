// The per-user cluster secret used when a loopback node is given none: 32 random bytes, generated
// on first use into the user's private directory (the one `local` discovery uses), so processes of
// the same user form a cluster with no configuration and processes of other users cannot join it.
// Read once per Foundation.start by the composition root (options.ts `withDefaultSecrets`).
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { FoundationError } from '../errors.js';
import { checkPrivate, ensureUserDirectory, userDirectory } from '../util/private-dir.js';

/** File name of the secret inside the per-user directory. */
export const SECRET_FILE = 'secret';
/** Random bytes in a generated secret (written base64url: 43 characters). */
export const SECRET_BYTES = 32;
/** Shortest secret accepted from the file, in characters: a hand-edited file must not weaken it. */
const MIN_CHARS = 32;
/** Longest file read: the secret is one short line. */
const MAX_FILE = 4096;

/** Path of this user's secret file. */
export function userSecretPath(dir = userDirectory()): string {
  return path.join(dir, SECRET_FILE);
}

function secretError(file: string, problem: string, cause?: unknown): FoundationError {
  return new FoundationError(
    'FND_ERR_LOCAL_SECRET',
    `per-user secret ${file}: ${problem}`,
    { path: file, problem },
    cause === undefined ? undefined : { cause },
  );
}

/** Reads and checks the secret file; undefined when it does not exist yet. */
async function readSecret(file: string): Promise<string | undefined> {
  let fh: fs.FileHandle;
  try {
    // O_NOFOLLOW: a symlink planted in place of the file is refused, not followed.
    fh = await fs.open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      checkPrivate(file, await fs.lstat(file), {
        kind: 'file',
        forbidden: 0o077,
        noSymlink: true,
      });
    }
    throw secretError(file, `cannot be read (${code ?? (err as Error).message})`, err);
  }
  try {
    checkPrivate(file, await fh.stat(), { kind: 'file', forbidden: 0o077, noSymlink: true });
    const buf = Buffer.alloc(MAX_FILE);
    const { bytesRead } = await fh.read(buf, 0, MAX_FILE, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8').trim();
    if (text.length < MIN_CHARS || bytesRead === MAX_FILE) {
      throw secretError(
        file,
        `holds ${text.length} characters; expected ${MIN_CHARS}-${MAX_FILE - 1} (delete it and a new one is generated)`,
      );
    }
    return text;
  } finally {
    await fh.close();
  }
}

/**
 * This user's secret: read from `<dir>/secret`, or generated there on first use (file mode 0600 in
 * a 0700 directory, both checked to belong to this user). Concurrent first starts agree on one
 * secret: each writes a temporary file with O_EXCL and links it into place, and a link that finds
 * the file already there reads the winner's. Throws FND_ERR_UNSAFE_PATH when the directory or
 * file belongs to another user or is open to others, FND_ERR_LOCAL_SECRET when it cannot be read
 * or created.
 */
export async function loadUserSecret(dir = userDirectory()): Promise<string> {
  await ensureUserDirectory(dir);
  const file = userSecretPath(dir);
  const existing = await readSecret(file);
  if (existing !== undefined) return existing;
  const tmp = path.join(dir, `.${SECRET_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${randomBytes(SECRET_BYTES).toString('base64url')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // link(2) never replaces an existing file: exactly one creator wins.
    await fs.link(tmp, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  } catch (err) {
    if (err instanceof FoundationError) throw err;
    throw secretError(
      file,
      `cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      err,
    );
  } finally {
    await fs.unlink(tmp).catch(() => {});
  }
  const created = await readSecret(file);
  if (created === undefined) throw secretError(file, 'vanished right after it was created');
  return created;
}
