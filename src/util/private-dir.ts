// The per-user private directory (`<tmpdir>/foundation-<uid>`) and the ownership checks for every
// path Foundation keeps state in on a shared host: the per-user secret and the `local` discovery
// records. A path another user owns or may write to is refused with FND_ERR_UNSAFE_PATH, never
// used: on a shared /tmp anyone can pre-create a directory with a guessable name.
import { promises as fs, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FoundationError } from '../errors.js';

/** This user's id, or undefined where the platform has none (Windows: no ownership checks). */
const uid = (): number | undefined =>
  typeof process.getuid === 'function' ? process.getuid() : undefined;

/**
 * `<tmpdir>/foundation-<uid>`: where this user's secret and `local` discovery records live.
 * Processes of one user see the same directory when they share the temp dir (same `TMPDIR`, same
 * /tmp mount); processes in other containers or with another `TMPDIR` do not.
 */
export function userDirectory(): string {
  return path.join(os.tmpdir(), `foundation-${uid() ?? os.userInfo().username}`);
}

export interface PrivacyRule {
  /** Mode bits that must be clear: 0o077 (nobody else may even read) or 0o022 (nobody else may write). */
  forbidden: number;
  /** Refuse a symbolic link instead of following it (paths under a shared temp dir). */
  noSymlink: boolean;
  /** 'directory' or 'file'. */
  kind: 'directory' | 'file';
}

function unsafe(p: string, problem: string, fix: string): FoundationError {
  return new FoundationError('FND_ERR_UNSAFE_PATH', `${p}: ${problem}; ${fix}`, {
    path: p,
    problem,
  });
}

/**
 * Throws FND_ERR_UNSAFE_PATH (naming the path and what is wrong) unless `st` describes a `kind`
 * owned by this user with none of `forbidden` set. A no-op where there are no uids.
 */
export function checkPrivate(p: string, st: Stats, rule: PrivacyRule): void {
  const me = uid();
  if (st.isSymbolicLink() && rule.noSymlink) {
    throw unsafe(p, 'is a symbolic link', 'remove it (Foundation creates the real one)');
  }
  const isKind = rule.kind === 'directory' ? st.isDirectory() : st.isFile();
  if (!isKind) throw unsafe(p, `is not a ${rule.kind}`, 'remove it or choose another path');
  if (me === undefined) return;
  if (st.uid !== me) {
    throw unsafe(
      p,
      `is owned by uid ${st.uid}, not by this user (uid ${me})`,
      'another user may have created it to plant records or read secrets: remove it or choose another path',
    );
  }
  const bad = st.mode & rule.forbidden;
  if (bad !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    const what =
      rule.forbidden === 0o022 ? 'writable by group or others' : 'accessible by group or others';
    const want = rule.kind === 'directory' ? '0700' : '0600';
    throw unsafe(p, `is ${what} (mode ${mode})`, `chmod ${want} ${p}`);
  }
}

/**
 * Creates `dir` (and missing parents, mode 0700) if needed, then checks it with `rule`. Throws
 * FND_ERR_UNSAFE_PATH when it is not private, the fs error when it cannot be created.
 */
export async function ensurePrivateDirectory(
  dir: string,
  rule: Omit<PrivacyRule, 'kind'>,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = rule.noSymlink ? await fs.lstat(dir) : await fs.stat(dir);
  checkPrivate(dir, st, { ...rule, kind: 'directory' });
}

/** The rule for the per-user directory: it holds the secret, so nobody else may even list it. */
export const USER_DIRECTORY_RULE = { forbidden: 0o077, noSymlink: true } as const;

/** Creates and checks the per-user directory; returns its path. */
export async function ensureUserDirectory(dir = userDirectory()): Promise<string> {
  await ensurePrivateDirectory(dir, USER_DIRECTORY_RULE);
  return dir;
}
