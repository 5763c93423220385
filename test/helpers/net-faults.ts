// A real-network fault harness for membership (issue 14): node processes in network namespaces on
// a private bridge (test/helpers/netns.ts), faults injected by the kernel with nft rules inside
// each host namespace (silent drops: partitions, a blackholed node, random loss with `numgen`),
// and latency by a userspace switch (test/fixtures/latency-switch.ts; this kernel has no netem)
// that all node-to-node connections go through when `viaSwitch` is set. Traffic never leaves the
// namespaces this harness creates. Used by test/integration/network-faults.test.ts (short) and
// bench/network-faults.ts (measured).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MembershipTiming } from '../../src/cluster/presets.js';
import { checkNetnsSupport, createSegment, NsNode, type Segment } from './netns.js';
import { TEST_SECRET } from './nodes.js';
import { until } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SWITCH_FIXTURE = path.join(here, '..', 'fixtures', 'latency-switch.js');
const PORT = 7946;

/** Same clock as the node processes' event times (test/fixtures/netns-node.ts). */
export const now = (): number => performance.timeOrigin + performance.now();

/** Why this process cannot run the harness, or undefined. Not root is the one reason to skip. */
export function notRoot(): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return `the network-fault harness creates network namespaces and nft rules and needs root (running as uid ${process.getuid()})`;
  return undefined;
}

/**
 * Throws, saying why, when namespaces or nft are missing (as root that is a failure, not a skip).
 * A missing nft is installed first (Debian's nftables, as root), as the etcd and mDNS tests do.
 */
export function checkFaultSupport(): void {
  checkNetnsSupport();
  const nft = () => execFileSync('nft', ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    nft();
  } catch {
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'nftables'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      nft();
    } catch (err) {
      throw new Error(
        `the network-fault harness needs the \`nft\` command (Debian package nftables): ${(err as Error).message}`,
      );
    }
  }
}

/** One membership event seen by one node. */
export interface MemberEvent {
  t: number;
  observer: string;
  event: 'memberUp' | 'memberSuspect' | 'memberDown' | 'memberLeft';
  member: string;
  reason: string;
  /** The node whose message caused it, when another node's (the membership event's `info.by`). */
  by: string | undefined;
}

export interface FaultClusterOptions {
  n: number;
  preset: 'local' | 'lan';
  /** Route every connection through the latency switch (needed for `latency`). */
  viaSwitch?: boolean;
  membership?: Partial<MembershipTiming>;
}

interface HostFaults {
  /** Peer addresses (real and switch) this host cannot exchange packets with. */
  cut: Set<string>;
  blackhole: boolean;
  lossPct: number;
}

export class FaultCluster {
  readonly nodes: NsNode[] = [];
  private switchProc: ChildProcess | undefined;
  private readonly faults: HostFaults[];
  /** Switch address of node i (what peers dial when viaSwitch), else its real address. */
  readonly dialIps: string[];

  private constructor(
    readonly seg: Segment,
    readonly opts: FaultClusterOptions,
  ) {
    const k = seg.subnet.split('.')[2];
    this.dialIps = seg.hosts.map((h, i) => (opts.viaSwitch ? `10.231.${k}.${101 + i}` : h.ip));
    this.faults = seg.hosts.map(() => ({ cut: new Set(), blackhole: false, lossPct: 0 }));
  }

  /** Builds the segment, the switch if asked, starts `n` nodes n1..nN and waits until all see all. */
  static async start(opts: FaultClusterOptions, formMs = 30_000): Promise<FaultCluster> {
    checkFaultSupport();
    const seg = createSegment(opts.n);
    const c = new FaultCluster(seg, opts);
    try {
      if (opts.viaSwitch) await c.startSwitch();
      const seeds = c.dialIps.map((ip) => `${ip}:${PORT}`);
      for (const [i, host] of seg.hosts.entries()) {
        c.nodes.push(
          new NsNode(`n${i + 1}`, host, [
            '--cluster',
            'faults',
            '--secret',
            TEST_SECRET,
            '--preset',
            opts.preset,
            '--port',
            String(PORT),
            '--advertise-host',
            c.dialIps[i]!,
            '--discovery-json',
            JSON.stringify({ strategy: 'static', hosts: seeds }),
            ...(opts.membership ? ['--membership-json', JSON.stringify(opts.membership)] : []),
          ]),
        );
      }
      await Promise.all(c.nodes.map((n) => n.started(formMs)));
      await c.allAlive(formMs, 'the cluster to form');
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  private async startSwitch(): Promise<void> {
    const ns = this.seg.bridgeNs;
    const k = this.seg.subnet.split('.')[2];
    const ip = (args: string[]) => execFileSync('ip', ['-n', ns, ...args], { stdio: 'pipe' });
    ip(['addr', 'add', `10.231.${k}.1/24`, 'dev', 'br0']);
    for (const a of this.dialIps) ip(['addr', 'add', `${a}/24`, 'dev', 'br0']);
    const routes = this.seg.hosts.map((h, i) => ({
      listen: `${this.dialIps[i]}:${PORT}`,
      target: `${h.ip}:${PORT}`,
      source: h.ip,
    }));
    const p = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, SWITCH_FIXTURE, '--routes', JSON.stringify(routes)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.switchProc = p;
    let err = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    p.stdin!.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`latency switch not ready within 20 s: ${err}`)),
        20_000,
      );
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        if (d.includes('"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      p.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`latency switch exited (${code}): ${err}`));
      });
    });
  }

  get names(): string[] {
    return this.nodes.map((n) => n.name);
  }

  // ---- faults ----

  /** Cuts every link between the groups (node indexes, 0-based); silent drops both ways. */
  partition(a: number[], b: number[]): void {
    const addrs = (i: number) => [this.seg.hosts[i]!.ip, this.dialIps[i]!];
    for (const i of a) for (const j of b) for (const x of addrs(j)) this.faults[i]!.cut.add(x);
    for (const j of b) for (const i of a) for (const x of addrs(i)) this.faults[j]!.cut.add(x);
    this.apply();
  }

  /** Node `i` sends and receives nothing (no RST, no ICMP: a frozen machine or a dead link). */
  blackhole(i: number): void {
    this.faults[i]!.blackhole = true;
    this.apply();
  }

  /** Every host drops `pct` % of the packets it receives (each packet crosses one host input). */
  loss(pct: number): void {
    for (const f of this.faults) f.lossPct = pct;
    this.apply();
  }

  /** One-way delay `delayMs ± jitterMs` per chunk in the switch (round trip twice that). */
  latency(delayMs: number, jitterMs: number): void {
    if (!this.switchProc) throw new Error('latency needs a cluster started with viaSwitch');
    this.switchProc.stdin!.write(`${JSON.stringify({ delay: delayMs, jitter: jitterMs })}\n`);
  }

  /** Removes every fault (the latency too). */
  clear(): void {
    for (const f of this.faults) {
      f.cut.clear();
      f.blackhole = false;
      f.lossPct = 0;
    }
    this.apply();
    if (this.switchProc) this.latency(0, 0);
  }

  private apply(): void {
    for (const [i, h] of this.seg.hosts.entries()) {
      const f = this.faults[i]!;
      const input: string[] = [];
      const output: string[] = [];
      if (f.blackhole) {
        input.push('iifname "eth0" drop');
        output.push('oifname "eth0" drop');
      }
      if (f.cut.size) {
        const set = `{ ${[...f.cut].join(', ')} }`;
        input.push(`iifname "eth0" ip saddr ${set} drop`);
        output.push(`oifname "eth0" ip daddr ${set} drop`);
      }
      if (f.lossPct > 0) input.push(`iifname "eth0" numgen random mod 100 < ${f.lossPct} drop`);
      const chain = (name: string, hook: string, rules: string[]) => [
        `  chain ${name} {`,
        `    type filter hook ${hook} priority 0; policy accept;`,
        ...rules.map((r) => `    ${r}`),
        '  }',
      ];
      const script = [
        'table inet fnd',
        'delete table inet fnd',
        'table inet fnd {',
        ...chain('in', 'input', input),
        ...chain('out', 'output', output),
        '}',
        '',
      ].join('\n');
      try {
        execFileSync('ip', ['netns', 'exec', h.ns, 'nft', '-f', '-'], {
          input: script,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
      } catch (err) {
        const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
        throw new Error(`nft rules for ${h.ns} failed: ${stderr || (err as Error).message}`);
      }
    }
  }

  // ---- observation ----

  /** Every membership event of every node, oldest first. */
  events(since = 0): MemberEvent[] {
    const out: MemberEvent[] = [];
    for (const n of this.nodes) {
      for (const e of n.events) {
        if (typeof e.event !== 'string' || !e.event.startsWith('member') || e.t < since) continue;
        out.push({
          t: e.t,
          observer: n.name,
          event: e.event as MemberEvent['event'],
          member: e.member.name,
          reason: e.reason,
          by: e.by,
        });
      }
    }
    return out.sort((a, b) => a.t - b.t);
  }

  /** Statuses each node holds of each other node, asked now. */
  async views(): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    await Promise.all(
      this.nodes.map(async (n) => {
        const r = await n.ask('members', 10_000);
        out.set(
          n.name,
          new Map(
            (r.members as Array<{ name: string; status: string }>).map((m) => [m.name, m.status]),
          ),
        );
      }),
    );
    return out;
  }

  /** Waits until every node sees every node alive; rejects naming who does not. */
  async allAlive(ms: number, what: string): Promise<void> {
    let last = '';
    try {
      await until(
        async () => {
          const views = await this.views();
          const wrong: string[] = [];
          for (const [o, v] of views)
            for (const name of this.names)
              if (v.get(name) !== 'alive') wrong.push(`${o}→${name}:${v.get(name)}`);
          last = wrong.join(' ');
          return wrong.length === 0;
        },
        ms,
        what,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; not alive: ${last}`);
    }
  }

  /** Waits until each observer holds each target down; rejects naming the pairs still missing. */
  async allDown(observers: number[], targets: number[], ms: number, what: string): Promise<void> {
    let last = '';
    try {
      await until(
        async () => {
          const views = await this.views();
          const missing: string[] = [];
          for (const o of observers)
            for (const t of targets) {
              const s = views.get(this.names[o]!)?.get(this.names[t]!);
              if (s !== 'down') missing.push(`${this.names[o]}→${this.names[t]}:${s}`);
            }
          last = missing.join(' ');
          return missing.length === 0;
        },
        ms,
        what,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; not down yet: ${last}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGKILL')));
    this.switchProc?.kill('SIGKILL');
    this.seg.destroy();
  }
}

// ---- measures ----

export interface Detection {
  /** ms from the fault to the first suspicion of a cut-off member, by any observer. */
  firstSuspectMs: number | null;
  /** ms until every observer held every target down (null: some never did). */
  allDownMs: number | null;
  /** Observer→target pairs never declared down. */
  missing: number;
}

/** How fast `observers` declared `targets` down after `t0`, from the events. */
export function detection(
  events: MemberEvent[],
  t0: number,
  observers: string[],
  targets: string[],
): Detection {
  let firstSuspect: number | null = null;
  let last = 0;
  let missing = 0;
  for (const o of observers) {
    for (const m of targets) {
      const s = events.find(
        (e) => e.t >= t0 && e.observer === o && e.member === m && e.event === 'memberSuspect',
      );
      if (s && (firstSuspect === null || s.t < firstSuspect)) firstSuspect = s.t;
      const d = events.find(
        (e) => e.t >= t0 && e.observer === o && e.member === m && e.event === 'memberDown',
      );
      if (d) last = Math.max(last, d.t);
      else missing++;
    }
  }
  return {
    firstSuspectMs: firstSuspect === null ? null : Math.round(firstSuspect - t0),
    allDownMs: missing ? null : Math.round(last - t0),
    missing,
  };
}

/** Suspicions and downs in [from, to) between nodes that `connected` says could talk. */
export function falseVerdicts(
  events: MemberEvent[],
  from: number,
  to: number,
  connected: (observer: string, member: string) => boolean,
): { suspects: number; downs: number; downList: string[] } {
  const inWindow = events.filter((e) => e.t >= from && e.t < to && connected(e.observer, e.member));
  const downs = inWindow.filter((e) => e.event === 'memberDown');
  return {
    suspects: inWindow.filter((e) => e.event === 'memberSuspect').length,
    downs: downs.length,
    downList: downs.map(
      (e) =>
        `${e.observer}→${e.member} (${e.reason}${e.by ? ` by ${e.by}` : ''}, +${Math.round(e.t - from)} ms)`,
    ),
  };
}

/** ms from `t1` until the last memberUp after it (0 when nothing had to come back). */
export function healMs(events: MemberEvent[], t1: number): number {
  const ups = events.filter((e) => e.t >= t1 && e.event === 'memberUp');
  return ups.length ? Math.round(Math.max(...ups.map((e) => e.t)) - t1) : 0;
}
