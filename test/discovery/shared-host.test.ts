// Zero configuration on a shared host: with no secret, loopback nodes authenticate with their
// user's secret, so another user's process cannot join; `local` discovery refuses directories
// another user owns or may write to (a planted record is never dialled) and removes its empty
// per-cluster directory on stop. Each test points TMPDIR at a directory of its own, so "another
// user" is simulated by another TMPDIR (another secret) or by chown (the suite runs as root).
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SECRET_FILE } from '../../src/cluster/local-secret.js';
import { defaultLocalDirectory } from '../../src/discovery/strategies/local.js';
import { isFoundationError } from '../../src/errors.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { resolveAll, withDefaultSecrets } from '../../src/options.js';
import { userDirectory } from '../../src/util/private-dir.js';
import { type Event, NodeProc, until } from '../helpers/proc.js';

const OTHER_UID = 54321;
const uid = process.getuid?.() ?? 0;
const alive = (n: FoundationNode) => n.members().filter((m) => m.status === 'alive').length;

/** Runs `fn` with these environment variables set (child processes spawned inside inherit them). */
async function withEnv<T>(vars: Record<string, string>, fn: () => T | Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, ...fragments: string[]) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isFoundationError(err), `a FoundationError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${f}" in: ${err.message}`);
    return true;
  });
}

describe('zero configuration on a shared host', () => {
  let root = '';
  let n = 0;
  /** A fresh temp dir standing for one user's TMPDIR. */
  const tmpdir = async () => {
    const d = path.join(root, `tmp${++n}`);
    await fs.mkdir(d, { mode: 0o700 });
    return d;
  };
  const procs: NodeProc[] = [];
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'fnd-shared-host-'));
    delete process.env.FOUNDATION_SECRET;
    delete process.env.FOUNDATION_PEERS;
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await fs.rm(root, { recursive: true, force: true });
  });

  it('two processes of one user with no options form a cluster; a process with another per-user secret cannot join it, one given that secret through FOUNDATION_SECRET can', async () => {
    const mine = await tmpdir();
    const [a, b] = await withEnv({ TMPDIR: mine }, () => [
      new NodeProc('a', []),
      new NodeProc('b', []),
    ]);
    procs.push(a, b);
    const started = await a.waitFor((e) => e.event === 'started', 20_000, 'a started');
    assert.equal(started.discovery.name, 'local');
    const names = async (p: NodeProc) =>
      (await p.members())
        .filter((m: Event) => m.status === 'alive')
        .map((m: Event) => m.name)
        .sort()
        .join(',');
    await until(async () => (await names(a)) === 'a,b', 20_000, 'a and b to form a cluster');

    // Another user: another temp dir, so another secret; it dials a directly (it knows the port).
    const theirs = await tmpdir();
    const x = await withEnv(
      { TMPDIR: theirs },
      () => new NodeProc('x', ['--seeds', started.address]),
    );
    procs.push(x);
    const refused = (e: Event) => e.event === 'error' && e.code === 'FND_ERR_HANDSHAKE_SECRET';
    await Promise.race([
      a.waitFor(refused, 20_000, 'a to refuse x'),
      x.waitFor(refused, 20_000, 'x to be refused'),
    ]);
    // Refused more than once (static discovery retries): still nobody let it in.
    await until(
      () => [...a.events, ...x.events].filter(refused).length >= 2,
      20_000,
      'a second refusal',
    );
    assert.equal(await names(a), 'a,b');
    assert.equal(await names(b), 'a,b');
    assert.equal(await names(x), 'x');
    const mineSecret = (
      await fs.readFile(path.join(mine, `foundation-${uid}`, SECRET_FILE), 'utf8')
    ).trim();
    const theirSecret = (
      await fs.readFile(path.join(theirs, `foundation-${uid}`, SECRET_FILE), 'utf8')
    ).trim();
    assert.notEqual(mineSecret, theirSecret);

    // Sharing the secret explicitly is the way across temp dirs (containers, other homes).
    const y = await withEnv(
      { TMPDIR: await tmpdir(), FOUNDATION_SECRET: mineSecret },
      () => new NodeProc('y', ['--seeds', started.address]),
    );
    procs.push(y);
    await until(
      async () => (await names(a)) === 'a,b,y',
      20_000,
      'y to join with the shared secret',
    );
    assert.equal(await names(x), 'x');
  });

  it('a records directory created by another user is refused, and the record planted in it is never dialled', async () => {
    let dialled = 0;
    const bait = net.createServer((s) => {
      dialled++;
      s.destroy();
    });
    await new Promise<void>((r) => bait.listen(0, '127.0.0.1', r));
    const port = (bait.address() as net.AddressInfo).port;
    try {
      const dir = path.join(await tmpdir(), 'records');
      await fs.mkdir(dir, { mode: 0o755 });
      await fs.writeFile(
        path.join(dir, 'planted.json'),
        JSON.stringify({
          v: 1,
          name: 'planted',
          host: '127.0.0.1',
          port,
          pid: process.pid,
          incarnation: 1,
        }),
      );
      await fs.chown(dir, OTHER_UID, OTHER_UID);
      await rejectsWith(
        Foundation.start({
          name: 'p',
          logLevel: 'silent',
          discovery: { strategy: 'local', directory: dir },
        }),
        'FND_ERR_UNSAFE_PATH',
        dir,
        `owned by uid ${OTHER_UID}`,
      );
      // The same directory with mode 0777, now ours: anyone could plant records, so still refused.
      await fs.chown(dir, uid, uid);
      await fs.chmod(dir, 0o777);
      await rejectsWith(
        Foundation.start({
          name: 'p',
          logLevel: 'silent',
          discovery: { strategy: 'local', directory: dir },
        }),
        'FND_ERR_UNSAFE_PATH',
        dir,
        'writable by group or others (mode 0777)',
      );
      assert.equal(dialled, 0, 'the planted record was never dialled');
    } finally {
      bait.close();
    }
  });

  it('the default per-user directory pre-created by another user is refused before anything listens', async () => {
    const t = await tmpdir();
    await withEnv({ TMPDIR: t }, async () => {
      const dir = userDirectory();
      assert.equal(dir, path.join(t, `foundation-${uid}`));
      await fs.mkdir(dir, { mode: 0o700 });
      await fs.chown(dir, OTHER_UID, OTHER_UID);
      await rejectsWith(
        Foundation.start({ name: 'q', logLevel: 'silent' }),
        'FND_ERR_UNSAFE_PATH',
        dir,
        `owned by uid ${OTHER_UID}`,
      );
      assert.deepEqual(await fs.readdir(dir), [], 'nothing written into it');
    });
  });

  it('the default records directory goes with the last node of the cluster; the per-user secret stays', async () => {
    await withEnv({ TMPDIR: await tmpdir() }, async () => {
      const cluster = `cleanup-${process.pid}`;
      const dir = defaultLocalDirectory(cluster);
      const nodes = await Promise.all(
        ['c1', 'c2'].map((name) => Foundation.start({ name, cluster, logLevel: 'silent' })),
      );
      await until(() => nodes.every((x) => alive(x) === 2), 10_000, 'c1 and c2 to form a cluster');
      assert.equal((await fs.stat(dir)).mode & 0o777, 0o700);
      await nodes[0]!.stop();
      assert.equal((await fs.readdir(dir)).length, 1, "c2's record is still there");
      await nodes[1]!.stop();
      await assert.rejects(fs.stat(dir), { code: 'ENOENT' }, 'the empty directory is removed');
      assert.deepEqual(await fs.readdir(userDirectory()), [SECRET_FILE]);
    });
  });

  it('the secret is resolved once per start: option, then FOUNDATION_SECRET, then (loopback) the per-user one, else the public insecure key', async () => {
    await withEnv({ TMPDIR: await tmpdir() }, async () => {
      const [loop] = await withDefaultSecrets(resolveAll({}, {}));
      assert.equal(loop!.secretSource, 'user');
      const file = (await fs.readFile(path.join(userDirectory(), SECRET_FILE), 'utf8')).trim();
      assert.equal(loop!.secret, file);
      const [given] = await withDefaultSecrets(resolveAll({ secret: 's'.repeat(16) }, {}));
      assert.deepEqual([given!.secret, given!.secretSource], ['s'.repeat(16), 'option']);
      const env = { FOUNDATION_SECRET: 'e'.repeat(20) };
      const [fromEnv] = await withDefaultSecrets(resolveAll({ host: '10.1.2.3' }, env));
      assert.deepEqual([fromEnv!.secret, fromEnv!.secretSource], ['e'.repeat(20), 'env']);
      const [open] = await withDefaultSecrets(resolveAll({ host: '10.1.2.3', insecure: true }, {}));
      assert.deepEqual(
        [open!.secret, open!.secretSource],
        ['foundation-insecure:default', 'insecure'],
      );
      assert.throws(() => resolveAll({}, { FOUNDATION_SECRET: 'short' }), /FOUNDATION_SECRET/);
      // Several clusters on loopback share the one per-user secret (the cluster name is in every proof).
      const both = await withDefaultSecrets(resolveAll({ clusters: { a: {}, b: {} } }, {}));
      assert.deepEqual(
        both.map((o) => o.secret),
        [file, file],
      );
    });
  });
});
