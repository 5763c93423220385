import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { until } from '../helpers/proc.js';

const alive = (n: FoundationNode) => n.members().filter((m) => m.status === 'alive').length;

/** A pid that surely belongs to no running process: one that just exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('local discovery (same host, no network traffic)', () => {
  let dir = '';
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fnd-local-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('three nodes find each other through the cluster directory; stop removes the record', async () => {
    const cluster = `local-${process.pid}`;
    const nodes = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        Foundation.start({
          name,
          cluster,
          logLevel: 'silent',
          discovery: { strategy: 'local', directory: dir },
        }),
      ),
    );
    try {
      await until(() => nodes.every((n) => alive(n) === 3), 10_000, 'three alive everywhere');
      assert.equal((await fs.readdir(dir)).filter((f) => f.endsWith('.json')).length, 3);
      const stat = await fs.stat(dir);
      assert.equal(stat.mode & 0o077, 0, 'the directory is private to its user');
    } finally {
      await nodes[2]!.stop();
    }
    assert.equal(
      (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).length,
      2,
      'c removed its record',
    );
    await Promise.all(nodes.slice(0, 2).map((n) => n.stop()));
  });

  it('stale records (dead pid), records pointing nowhere and garbage files cause no trouble', async () => {
    const cluster = `local-stale-${process.pid}`;
    const stale = path.join(dir, 'ghost.json');
    await fs.writeFile(
      stale,
      JSON.stringify({
        v: 1,
        name: 'ghost',
        host: '127.0.0.1',
        port: 9,
        pid: deadPid(),
        incarnation: 1,
      }),
    );
    // Alive pid (ours) but nothing listens there: connection refused, nothing added.
    await fs.writeFile(
      path.join(dir, 'nowhere.json'),
      JSON.stringify({
        v: 1,
        name: 'nowhere',
        host: '127.0.0.1',
        port: 9,
        pid: process.pid,
        incarnation: 1,
      }),
    );
    await fs.writeFile(path.join(dir, 'garbage.json'), '{"v": 1, "name": ');
    const errors: unknown[] = [];
    const nodes = await Promise.all(
      ['x', 'y'].map((name) =>
        Foundation.start({
          name,
          cluster,
          logLevel: 'silent',
          discovery: { strategy: 'local', directory: dir },
        }),
      ),
    );
    for (const n of nodes) n.on('error', (e) => errors.push(e));
    try {
      await until(() => nodes.every((n) => alive(n) === 2), 10_000, 'x and y to find each other');
      await until(
        async () => !(await fs.readdir(dir)).includes('ghost.json'),
        5000,
        'the stale record to be removed',
      );
      for (const n of nodes)
        assert.deepEqual(
          n
            .members()
            .map((m) => m.name)
            .sort(),
          ['x', 'y'],
        );
      assert.deepEqual(errors, []);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });

  it('a custom strategy object plugs in through the same contract', async () => {
    const cluster = `custom-${process.pid}`;
    const a = await Foundation.start({
      name: 'ca',
      cluster,
      logLevel: 'silent',
      discovery: { name: 'nobody', start() {}, stop() {} },
    });
    const proposed: string[] = [];
    const b = await Foundation.start({
      name: 'cb',
      cluster,
      logLevel: 'silent',
      discovery: {
        name: 'scripted',
        async start(ctx) {
          proposed.push(a.address);
          const name = await ctx.connect({
            host: '127.0.0.1',
            port: Number(a.address.split(':')[1]),
          });
          proposed.push(String(name));
        },
        stop() {},
      },
    });
    try {
      assert.equal(b.discovery.name, 'scripted');
      await until(() => alive(a) === 2 && alive(b) === 2, 10_000, 'the scripted join');
      assert.deepEqual(proposed, [a.address, 'ca']);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
