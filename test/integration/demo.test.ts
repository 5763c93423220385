// The CLI as a user runs it: `foundation demo` spawns real node processes, kills one with SIGKILL
// and must see it detected and rejoined; `foundation start` refuses bad options with exit code 2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultLocalDirectory } from '../../src/discovery/strategies/local.js';

// This file runs from dist/test/integration/; the compiled CLI is dist/src/cli/main.js.
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const BIN = fileURLToPath(new URL('../../../bin/foundation.js', import.meta.url));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (killing it after `limitMs`, which fails the test). */
function cli(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    limitMs?: number;
    script?: string;
    onStdout?: (s: string, kill: (sig: NodeJS.Signals) => void) => void;
  } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [opts.script ?? MAIN, ...args], {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onStdout?.(stdout, (sig) => p.kill(sig));
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const limit = setTimeout(() => p.kill('SIGKILL'), opts.limitMs ?? 30_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('foundation demo', () => {
  it('runs 3 real nodes, detects a SIGKILLed node, sees it rejoin with a higher incarnation, and leaves no process behind', async () => {
    const r = await cli(['demo', '--nodes', '3'], { limitMs: 90_000 });
    const report = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    assert.equal(r.code, 0, report);
    assert.match(r.stdout, /every node sees 3 alive members/, report);
    const killed = /Killing (demo-\d+) \(pid (\d+)\) with SIGKILL/.exec(r.stdout);
    assert.ok(killed, report);
    const victim = killed[1]!;
    const survivors = ['demo-1', 'demo-2', 'demo-3'].filter((n) => n !== victim);
    for (const s of survivors) {
      assert.match(r.stdout, new RegExp(`${s} saw ${victim} down after \\d+ ms`), report);
      const rejoin = new RegExp(
        `${s} saw ${victim} alive again \\d+ ms after restart, incarnation (\\d+) → (\\d+)`,
      ).exec(r.stdout);
      assert.ok(rejoin, report);
      assert.ok(Number(rejoin[2]) > Number(rejoin[1]), `incarnation must grow: ${rejoin[0]}`);
    }
    // Two tables, each listing every node alive and agreed on by all 3.
    const rows = [
      ...r.stdout.matchAll(/^ {2}(demo-\d) +(\d+) +127\.0\.0\.1:\d+ +\d+ +alive +3\/3$/gm),
    ];
    assert.equal(rows.length, 6, report);
    assert.match(r.stdout, /all 3 nodes left the cluster and exited cleanly/, report);
    // Every process the demo started (including the killed one) is gone.
    const pids = new Set([Number(killed[2]), ...rows.map((m) => Number(m[2]))]);
    assert.equal(pids.size, 4, `expected 3 nodes + 1 restart, got pids ${[...pids]}`);
    for (const pid of pids) assert.equal(isRunning(pid), false, `pid ${pid} is still running`);
  });

  it('rejects a node count below 2 with exit code 2', async () => {
    const r = await cli(['demo', '--nodes', '1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /option "nodes"/);
  });
});

describe('foundation start', () => {
  it('exits 2 naming the field when --port is out of range', async () => {
    const r = await cli(['start', '--port', '99999']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /"port"/);
    assert.match(r.stderr, /FND_ERR_INVALID_OPTION/);
  });

  it('refuses to bind 0.0.0.0 without a secret (exit 2, FND_ERR_INSECURE_BIND)', async () => {
    const r = await cli(['start', '--host', '0.0.0.0'], { env: envWithout('FOUNDATION_SECRET') });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /FND_ERR_INSECURE_BIND/);
  });

  it('passes any strategy and its options to Foundation, which names a bad field (exit 2)', async () => {
    const missing = await cli(['start', '--discovery', 'dns']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /"discovery\.query"/);
    const badJson = await cli(['start', '--discovery', 'dns', '--discovery-options', '{"query":']);
    assert.equal(badJson.code, 2, badJson.stderr);
    assert.match(badJson.stderr, /"discovery-options"/);
  });

  it('exits 2 on an unknown option', async () => {
    const r = await cli(['start', '--no-such-flag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no-such-flag/);
  });

  it('prints started as JSON, then stops gracefully on SIGTERM with exit code 0', async (t) => {
    let sent = false;
    const cluster = `cli-test-${process.pid}`;
    t.after(() => rm(defaultLocalDirectory(cluster), { recursive: true, force: true }));
    const r = await cli(['start', '--json', '--cluster', cluster, '--name', 'solo'], {
      env: envWithout('FOUNDATION_PEERS', 'FOUNDATION_SECRET'),
      onStdout: (s, kill) => {
        if (!sent && s.includes('"event":"started"')) {
          sent = true;
          kill('SIGTERM');
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events[0]!.event, 'started');
    assert.equal(events[0]!.name, 'solo');
    assert.match(String(events[0]!.address), /^127\.0\.0\.1:\d+$/);
    assert.equal(events[0]!.discovery, 'local');
    assert.equal(typeof events[0]!.t, 'number');
    assert.equal(events.at(-1)!.event, 'stopped');
  });

  it('bin/foundation.js runs the compiled CLI', async () => {
    const r = await cli(['help'], { script: BIN });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /foundation start/);
  });
});
