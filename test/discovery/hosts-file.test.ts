import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ERLANG_HOSTS_FILE_NAME,
  HOSTS_FILE_NAME,
  HostsFileStrategy,
  hostsFileSchema,
  parseHostsFile,
} from '../../src/discovery/strategies/hosts-file.js';
import type { DiscoveryStrategy } from '../../src/discovery/strategy.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import type { Logger } from '../../src/util/log.js';
import { captureLogger, sharedPort } from '../helpers/loopback.js';
import { fullyMeshed, nullDiscovery, seesAlive, waitUntil } from '../helpers/nodes.js';

/** Replaces `file` the way config tools do: write a temp file, then rename it over. */
function replaceFile(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

describe('hosts-file parsing', () => {
  it('reads host, host:port, [v6]:port, bare IPv6 and Erlang-style lines; skips comments; flags garbage', () => {
    const text = [
      '# cluster members',
      '',
      '127.0.0.2',
      '127.0.0.3:4100   # inline comment',
      "'node-a.internal'.",
      '[::1]:4200',
      '::1',
      'not a host line!!',
      '127.0.0.9:99999',
      '300.1.2.3',
      'a:b:c',
      '   ',
    ].join('\n');
    const parsed = parseHostsFile(text, 4000);
    assert.deepEqual(parsed.entries, [
      { host: '127.0.0.2', port: 4000 },
      { host: '127.0.0.3', port: 4100 },
      { host: 'node-a.internal', port: 4000 },
      { host: '::1', port: 4200 },
      { host: '::1', port: 4000 },
    ]);
    assert.deepEqual(
      parsed.invalid.map((i) => i.line),
      [8, 9, 10, 11],
    );
  });

  it("reads Erlang's .hosts.erlang format: quoted and plain atoms ending in a dot, % comments, several terms a line", () => {
    // net_adm's own example file, as libcluster's ErlangHosts docs quote it, plus what
    // file:consult also takes.
    const text = [
      '%% hosts of the cluster',
      "'super.eua.ericsson.se'.",
      "'renat.eua.ericsson.se'.",
      "'grouse.eua.ericsson.se'.",
      "'gauffin1.eua.ericsson.se'.",
      '',
      "'127.0.0.2'. '127.0.0.3'.   % two on one line",
      'localhost.',
      '"127.0.0.4".',
      "'127.0.0.5'",
      "'unterminated.",
      'node1.example.com.',
    ].join('\n');
    const parsed = parseHostsFile(text, 4369);
    assert.deepEqual(
      parsed.entries.map((e) => `${e.host}:${e.port}`),
      [
        'super.eua.ericsson.se:4369',
        'renat.eua.ericsson.se:4369',
        'grouse.eua.ericsson.se:4369',
        'gauffin1.eua.ericsson.se:4369',
        '127.0.0.2:4369',
        '127.0.0.3:4369',
        'localhost:4369',
        '127.0.0.4:4369',
        'node1.example.com.:4369',
      ],
    );
    assert.deepEqual(
      parsed.invalid.map((i) => i.line),
      [10, 11],
      'a term without its dot, and an unterminated quote, are flagged',
    );
  });

  it('validates options and looks for the default file in the working, then the home directory', () => {
    const s = new HostsFileStrategy({}, { cwd: '/srv/app', home: '/home/app' });
    assert.deepEqual(s.candidates, [
      path.join('/srv/app', HOSTS_FILE_NAME),
      path.join('/srv/app', ERLANG_HOSTS_FILE_NAME),
      path.join('/home/app', HOSTS_FILE_NAME),
      path.join('/home/app', ERLANG_HOSTS_FILE_NAME),
    ]);
    const explicit = new HostsFileStrategy({ path: 'conf/hosts' }, { cwd: '/srv/app', home: '/h' });
    assert.deepEqual(explicit.candidates, ['/srv/app/conf/hosts']);
    assert.throws(() => new HostsFileStrategy({ port: 0 }), /discovery\.port/);
    assert.ok(hostsFileSchema.safeParse({ strategy: 'hosts-file', path: '/etc/x' }).success);
    assert.ok(!hostsFileSchema.safeParse({ strategy: 'hosts-file', timeout: 1 }).success);
  });
});

describe('hosts-file discovery (real nodes on loopback)', () => {
  let dir: string;
  const nodes: FoundationNode[] = [];
  const cluster = `hosts-file-${process.pid}`;
  const start = (
    name: string,
    host: string,
    port: number,
    discovery: DiscoveryStrategy,
    logger?: Logger,
  ) =>
    Foundation.start({
      name,
      cluster,
      host,
      port,
      discovery,
      ...(logger ? { logger } : { logLevel: 'silent' as const }),
    }).then((n) => {
      nodes.push(n);
      return n;
    });

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'foundation-hosts-'));
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('joins the listed nodes, ignores garbage lines, and picks up a rewritten file at once', async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const file = path.join(dir, 'hosts');
    writeFileSync(
      file,
      ['# two nodes', '127.0.0.2', `127.0.0.3:${port}`, 'this is not a host', 'x:y:z', ''].join(
        '\n',
      ),
    );
    // Polling an hour apart: after the first read, only the file watch can trigger a re-read.
    const strategy = () => new HostsFileStrategy({ path: file, pollingIntervalMs: 3_600_000 });
    const { logger, lines } = captureLogger();
    const a = await start('a', '127.0.0.2', port, strategy(), logger);
    const b = await start('b', '127.0.0.3', port, strategy());
    await waitUntil(() => fullyMeshed([a, b]), 'a and b to join through the file');
    const garbage = lines.filter((l) => String(l.msg).startsWith('hosts file: ignoring'));
    assert.deepEqual(
      garbage.map((l) => l.line),
      [4, 5],
    );

    // c does no discovery of its own: only a re-read of the file by a or b can bring it in.
    const c = await start('c', '127.0.0.4', port, nullDiscovery());
    replaceFile(file, ['127.0.0.2', '127.0.0.3', `127.0.0.4:${port}`, 'x:y:z', ''].join('\n'));
    await waitUntil(() => fullyMeshed([a, b, c]), 'c to be joined after the rewrite');
    assert.equal(
      lines.filter((l) => String(l.msg).startsWith('hosts file: ignoring')).length,
      2,
      'a garbage line is warned about once, not on every read',
    );
  });

  it('without a path: waits for a missing file, prefers the working directory over home', async () => {
    const cwd = path.join(dir, 'cwd');
    const home = path.join(dir, 'home');
    mkdirSync(cwd);
    mkdirSync(home);
    const x = await start('x', '127.0.0.1', 0, nullDiscovery());
    const y = await start('y', '127.0.0.1', 0, nullDiscovery());
    const { logger, lines } = captureLogger();
    const z = await start(
      'z',
      '127.0.0.1',
      0,
      new HostsFileStrategy({ pollingIntervalMs: 100, disconnectRemoved: true }, { cwd, home }),
      logger,
    );
    await waitUntil(
      () => lines.some((l) => l.level === 40 && String(l.msg).startsWith('no hosts file at')),
      'the missing file to be reported',
    );
    // Home lists x; the working directory's file (written later) lists y and wins, so x is no
    // longer listed (reported, with disconnectRemoved) while the home file still names it.
    writeFileSync(path.join(home, HOSTS_FILE_NAME), `${x.address}\n`);
    await waitUntil(() => seesAlive(z, ['x']), 'z to join x from the home file');
    assert.ok(lines.some((l) => l.msg === 'discovery source answers again'));
    const removed: string[] = [];
    const onRemoved = (m: unknown) =>
      removed.push((m as { metadata: { address: string } }).metadata.address);
    diagnostics.subscribe(CHANNELS.discoveryDisconnect, onRemoved);
    try {
      writeFileSync(path.join(cwd, HOSTS_FILE_NAME), `${y.address}\n`);
      await waitUntil(() => seesAlive(z, ['y']), 'z to join y from the working-directory file');
      await waitUntil(() => removed.includes(x.address), 'x, listed only at home, to be reported');
    } finally {
      diagnostics.unsubscribe(CHANNELS.discoveryDisconnect, onRemoved);
    }
  });
});
