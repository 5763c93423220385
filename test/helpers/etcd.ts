// Runs Debian's etcd-server (`etcd`) on loopback for the consensus conformance tests and
// bench/raft: 1 or 3 members, client and peer URLs on free 127.0.0.1 ports, a temp data dir each,
// killed and removed by stop(). When `etcd` is missing and we are root, it is installed with
// apt-get (as .ci/run does); otherwise the caller gets an error saying so.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdCluster {
  /** Client URLs (http://127.0.0.1:port). */
  endpoints: string[];
  /** etcd --version, e.g. "3.4.23". */
  version: string;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/bin/etcd', '/usr/local/bin/etcd'];

/** The etcd binary; installs Debian's etcd-server first when it is missing and we are root. */
export function etcdBinary(): string {
  const found = () => CANDIDATES.find((p) => existsSync(p));
  let bin = found();
  if (!bin && process.getuid?.() === 0) {
    execFileSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    bin = found();
  }
  if (!bin)
    throw new Error('etcd is not installed: apt-get install etcd-server (Debian) and run again');
  return bin;
}

/** Whether etcd is there (without installing anything): benches use it to decide. */
export function etcdInstalled(): boolean {
  return CANDIDATES.some((p) => existsSync(p));
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await r.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

/** Starts an etcd cluster of `members` (1 or 3) on loopback; resolves once every member is healthy. */
export async function startEtcd(members = 1, timeoutMs = 30_000): Promise<EtcdCluster> {
  const bin = etcdBinary();
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' })
    .split('\n')[0]!
    .replace(/^etcd Version: /, '');
  const ports = await freePorts(members * 2);
  const dir = mkdtempSync(join(tmpdir(), 'fnd-etcd-'));
  const names = Array.from({ length: members }, (_, i) => `e${i}`);
  const client = names.map((_, i) => `http://127.0.0.1:${ports[i * 2]}`);
  const peer = names.map((_, i) => `http://127.0.0.1:${ports[i * 2 + 1]}`);
  const initial = names.map((n, i) => `${n}=${peer[i]}`).join(',');
  const procs: ChildProcess[] = [];
  const logs: string[] = names.map(() => '');
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    names.forEach((name, i) => {
      const p = spawn(
        bin,
        [
          '--name',
          name,
          '--data-dir',
          join(dir, name),
          '--listen-client-urls',
          client[i]!,
          '--advertise-client-urls',
          client[i]!,
          '--listen-peer-urls',
          peer[i]!,
          '--initial-advertise-peer-urls',
          peer[i]!,
          '--initial-cluster',
          initial,
          '--initial-cluster-state',
          'new',
          '--initial-cluster-token',
          `fnd-${process.pid}-${ports[0]}`,
          '--logger',
          'zap',
          '--log-level',
          'error',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      p.stderr!.setEncoding('utf8').on('data', (d: string) => {
        logs[i] = (logs[i]! + d).slice(-4000);
      });
      procs.push(p);
    });
    const deadline = Date.now() + timeoutMs;
    for (const [i, url] of client.entries()) {
      while (!(await healthy(url))) {
        const p = procs[i]!;
        if (p.exitCode !== null) throw new Error(`etcd ${names[i]} exited: ${logs[i]}`);
        if (Date.now() > deadline)
          throw new Error(`etcd ${names[i]} not healthy in ${timeoutMs} ms: ${logs[i]}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints: client, version, stop };
}
