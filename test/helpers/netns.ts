// Network namespaces for multicast tests: a private Ethernet segment that exists only inside
// namespaces this test run creates. A bridge namespace holds a Linux bridge; each host namespace
// gets one veth into it (created directly inside the namespaces, so no interface ever appears in
// the root namespace), an address in 10.231.<k>.0/24, and routes that send multicast and limited
// broadcast out of that veth. Node processes run inside with `ip netns exec`; the test process
// stays in the root namespace and sends nothing. Requires root and iproute2: without them the
// segment cannot be built and `createSegment` throws saying why, so the test fails rather than
// passing without having tested anything.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Event } from './proc.js';
import { eachLine, until } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const NETNS_FIXTURE = path.join(here, '..', 'fixtures', 'netns-node.js');

/** Every namespace of this run starts with this; `fnd-<pid>-` lets a later run find leftovers. */
const PREFIX = `fnd-${process.pid}-`;
const OWN = /^fnd-(\d+)-/;
let segments = 0;
const live = new Set<Segment>();

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** Kills what still runs in `ns` (only our own node processes ever run there) and deletes it. */
function deleteNamespace(ns: string): void {
  try {
    for (const pid of ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // namespace already gone
  }
  try {
    ip(['netns', 'del', ns]);
  } catch {
    // already gone
  }
}

/** Deletes namespaces left behind by earlier runs that crashed (their creating process is gone). */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    const m = OWN.exec(ns);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    deleteNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

/** Throws, saying why, when this process cannot build namespaces. */
export function checkNetnsSupport(): void {
  if (process.platform !== 'linux') {
    throw new Error(`multicast tests need Linux network namespaces; this is ${process.platform}`);
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(
      `multicast tests create network namespaces and need root (running as uid ${process.getuid()}); run the suite as root (CI does)`,
    );
  }
  try {
    ip(['-V']);
  } catch (err) {
    throw new Error(
      `multicast tests need iproute2's \`ip\` command to create namespaces: ${(err as Error).message}`,
    );
  }
}

export interface NetnsHost {
  /** Namespace name, e.g. fnd-1234-1h2. */
  ns: string;
  /** IPv4 address of its veth (eth0) on the private segment. */
  ip: string;
}

export interface Segment {
  bridgeNs: string;
  /** e.g. 10.231.17.0/24 */
  subnet: string;
  hosts: NetnsHost[];
  /** Kills every process in the namespaces and deletes them. Idempotent. */
  destroy(): void;
}

/**
 * Builds a private segment with `n` host namespaces. On any failure, removes what it made and
 * throws an error that names the command that failed and why.
 */
export function createSegment(n: number): Segment {
  checkNetnsSupport();
  removeLeftovers();
  const id = ++segments;
  const k = ((process.pid + id) % 250) + 1;
  const base = `${PREFIX}${id}`;
  const bridgeNs = `${base}b`;
  const made: string[] = [];
  const segment: Segment = {
    bridgeNs,
    subnet: `10.231.${k}.0/24`,
    hosts: [],
    destroy() {
      for (const ns of made.splice(0).reverse()) deleteNamespace(ns);
      live.delete(segment);
    },
  };
  live.add(segment);
  const run = (args: string[]) => {
    try {
      ip(args);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new Error(
        `could not build the test network: \`ip ${args.join(' ')}\` failed: ${stderr || (err as Error).message}`,
      );
    }
  };
  try {
    run(['netns', 'add', bridgeNs]);
    made.push(bridgeNs);
    run(['-n', bridgeNs, 'link', 'set', 'lo', 'up']);
    // Snooping off: the bridge floods every multicast frame to every port, like a dumb switch.
    run(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    run(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= n; i++) {
      const ns = `${base}h${i}`;
      const addr = `10.231.${k}.${i + 1}`;
      run(['netns', 'add', ns]);
      made.push(ns);
      run(['-n', ns, 'link', 'set', 'lo', 'up']);
      // Both ends are created inside their namespaces: nothing appears in the root namespace.
      run([
        'link',
        'add',
        'eth0',
        'netns',
        ns,
        'type',
        'veth',
        'peer',
        'name',
        `v${i}`,
        'netns',
        bridgeNs,
      ]);
      run(['-n', bridgeNs, 'link', 'set', `v${i}`, 'master', 'br0']);
      run(['-n', bridgeNs, 'link', 'set', `v${i}`, 'up']);
      run(['-n', ns, 'addr', 'add', `${addr}/24`, 'brd', '+', 'dev', 'eth0']);
      run(['-n', ns, 'link', 'set', 'eth0', 'up']);
      run(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      run(['-n', ns, 'route', 'add', '255.255.255.255/32', 'dev', 'eth0']);
      segment.hosts.push({ ns, ip: addr });
    }
  } catch (err) {
    segment.destroy();
    throw err;
  }
  return segment;
}

// Last resort when a test run dies without its `after` hooks: nothing outlives the process.
process.on('exit', () => {
  for (const s of [...live]) s.destroy();
});

/** Names of namespaces of this process that still exist (for asserting cleanup). */
export function ownNamespaces(): string[] {
  return listNamespaces().filter((ns) => ns.startsWith(PREFIX));
}

/**
 * A node process (test/fixtures/netns-node.ts) running inside a namespace: JSON-line events on
 * stdout, JSON-line commands on stdin.
 */
export class NsNode {
  readonly events: Event[] = [];
  stderr = '';
  private readonly child: ChildProcess;
  private waiters: Array<() => void> = [];
  private nextId = 1;
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly host: NetnsHost,
    args: string[],
  ) {
    this.child = spawn(
      'ip',
      [
        'netns',
        'exec',
        host.ns,
        process.execPath,
        NETNS_FIXTURE,
        '--name',
        name,
        '--host',
        host.ip,
        ...args,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    eachLine(
      this.child.stdout!,
      (_line, json) => {
        if (json !== undefined) this.events.push(json);
      },
      () => {
        for (const w of [...this.waiters]) w();
      },
    );
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first event matching `pred` (already seen or future); rejects after `ms`. */
  waitFor(pred: (e: Event) => boolean, ms: number, what = 'event'): Promise<Event> {
    return new Promise((resolve, reject) => {
      const listener = () => void check();
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== listener);
        reject(
          new Error(
            `${this.name}: no ${what} within ${ms} ms; stderr: ${this.stderr.slice(-2000)}`,
          ),
        );
      }, ms);
      const check = () => {
        const e = this.events.find(pred);
        if (!e) return false;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== listener);
        resolve(e);
        return true;
      };
      if (!check()) this.waiters.push(listener);
    });
  }

  started(ms = 20_000): Promise<Event> {
    return this.waitFor((e) => e.event === 'started' || e.event === 'fatal', ms, 'start').then(
      (e) => {
        if (e.event === 'fatal') throw new Error(`${this.name} failed to start: ${e.message}`);
        return e;
      },
    );
  }

  /** Sends a command (with `args`, if any) and resolves with its reply event. */
  async ask(cmd: string, ms = 5000, args: object = {}): Promise<Event> {
    const id = this.nextId++;
    this.child.stdin!.write(`${JSON.stringify({ ...args, cmd, id })}\n`);
    return this.waitFor((e) => e.id === id, ms, `reply to ${cmd}`);
  }

  /** Names of members this node sees alive (itself included), sorted. */
  async alive(): Promise<string[]> {
    const r = await this.ask('members');
    return (r.members as Event[])
      .filter((m) => m.status === 'alive')
      .map((m) => m.name as string)
      .sort();
  }

  /** Kills with `signal` and resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exited;
  }
}

/** Polls `fn` until it holds; rejects after `ms` naming `what` (the shared `until`). */
export const eventually = until;

/** Waits until every node of `nodes` sees exactly `names` alive. */
export async function allSeeAlive(nodes: NsNode[], names: string[], ms: number): Promise<void> {
  const want = JSON.stringify([...names].sort());
  await Promise.all(
    nodes.map((n) =>
      eventually(
        async () => JSON.stringify(await n.alive()) === want,
        ms,
        `${n.name} to see ${names.join(', ')} alive`,
      ),
    ),
  );
}

/**
 * Milliseconds from the last node's call to Foundation.start (its 'starting' event) until every
 * node had seen every other one come up (the last relevant 'memberUp'). Event times are wall-clock
 * readings of processes on the same machine.
 */
export function formationMs(nodes: NsNode[]): number {
  const last = (n: NsNode, pred: (e: Event) => boolean) =>
    [...n.events].reverse().find(pred)?.t as number;
  const start = Math.max(...nodes.map((n) => last(n, (e) => e.event === 'starting')));
  const formed = Math.max(
    ...nodes.flatMap((n) =>
      nodes
        .filter((o) => o !== n)
        .map((o) => last(n, (e) => e.event === 'memberUp' && e.member.name === o.name)),
    ),
  );
  return Math.round(formed - start);
}
