// `foundation demo`: the first thing a new user runs. Spawns N real `foundation start --json`
// processes with no discovery configuration, waits until they all agree, SIGKILLs one, reports
// how fast each survivor declared it down, restarts it and shows it rejoin with a higher
// incarnation. Any timeout prints what was missing plus the children's stderr, and exits 1.
import { type ChildProcess, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultLocalDirectory } from '../discovery/strategies/local.js';
import { FoundationError } from '../errors.js';
import { now } from './start.js';
import { USAGE } from './usage.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

// Generous bounds: the machine may be slow or busy. The `local` preset detects a kill in ~1-2 s.
const CONVERGE_TIMEOUT_MS = 20_000;
const DOWN_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_NODES = 32;

interface Seen {
  status: string;
  incarnation: number;
  address: string;
  t: number;
}

/** A failure the user should read: what was expected and what was missing. */
class DemoFailure extends Error {}

/** One `foundation start --json` child process and what it has reported so far. */
class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  started = false;
  address = '';
  incarnation = 0;
  /** This node's latest view of every other member. */
  readonly view = new Map<string, Seen>();
  /** Every membership event, in order, to find when something was first seen. */
  readonly history: (Seen & { name: string })[] = [];
  readonly errors: string[] = [];
  private readonly stderrTail: string[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Set before we kill or stop it on purpose. */
  expectExit = false;
  readonly closed: Promise<void>;

  constructor(
    readonly name: string,
    cluster: string,
    onChange: () => void,
    onUnexpectedExit: (c: Child) => void,
  ) {
    const env = { ...process.env };
    // Zero configuration really means none: ignore seeds or a secret the user's shell may export.
    delete env.FOUNDATION_PEERS;
    delete env.FOUNDATION_SECRET;
    this.proc = spawn(
      process.execPath,
      [MAIN, 'start', '--json', '--name', name, '--cluster', cluster, '--stop-on-stdin-close'],
      { stdio: ['pipe', 'pipe', 'pipe'], env },
    );
    this.pid = this.proc.pid ?? -1;
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      this.onLine(line);
      onChange();
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
    });
    // The child stops gracefully when this pipe closes, so even if we die it does not linger.
    this.proc.stdin!.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.proc.on('error', (err) => {
        this.errors.push(`spawn failed: ${err.message}`);
        this.exit ??= { code: null, signal: null };
        onUnexpectedExit(this);
        resolve();
      });
      this.proc.on('close', (code, signal) => {
        this.exit = { code, signal };
        if (!this.expectExit) onUnexpectedExit(this);
        onChange();
        resolve();
      });
    });
  }

  private onLine(line: string): void {
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line);
    } catch {
      this.stderrTail.push(`(stdout) ${line}`);
      return;
    }
    const t = Number(ev.t);
    switch (ev.event) {
      case 'started':
        this.started = true;
        this.address = String(ev.address);
        this.incarnation = Number(ev.incarnation);
        break;
      case 'memberUp':
      case 'memberDown':
      case 'memberSuspect':
      case 'memberLeft': {
        const m = ev.member as {
          name: string;
          status: string;
          incarnation: number;
          address: string;
        };
        const seen = { status: m.status, incarnation: m.incarnation, address: m.address, t };
        this.view.set(m.name, seen);
        this.history.push({ name: m.name, ...seen });
        break;
      }
      case 'error':
        this.errors.push(`${ev.code}: ${ev.message}`);
        break;
    }
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** True when this node has started and sees every name in `names` (other than itself) alive. */
  seesAlive(names: string[]): boolean {
    return (
      this.started && names.every((n) => n === this.name || this.view.get(n)?.status === 'alive')
    );
  }

  /** What this node is missing from `names`, for a timeout message. */
  missing(names: string[]): string {
    if (!this.started) return `${this.name} has not started`;
    const gaps = names
      .filter((n) => n !== this.name && this.view.get(n)?.status !== 'alive')
      .map((n) => `${n} ${this.view.get(n)?.status ?? 'unknown'}`);
    return `${this.name} sees ${gaps.join(', ')}`;
  }

  kill(signal: NodeJS.Signals): void {
    this.expectExit = true;
    if (this.running) this.proc.kill(signal);
  }

  report(): string {
    const lines = [...this.errors.map((e) => `error event: ${e}`), ...this.stderrTail.slice(-20)];
    const exit = this.exit ? `exited (${this.exit.signal ?? `code ${this.exit.code}`})` : 'running';
    return [
      `--- ${this.name} (pid ${this.pid}, ${exit}) ---`,
      ...(lines.length ? lines : ['(no output on stderr)']),
    ].join('\n');
  }
}

const fmtMs = (ms: number) => `${Math.round(ms)} ms`;
const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

class Demo {
  /** The current process for each node name. */
  private readonly nodes = new Map<string, Child>();
  /** Every process ever spawned, so none is left behind. */
  private readonly all: Child[] = [];
  private readonly checks = new Set<() => void>();
  private failure: DemoFailure | undefined;
  readonly names: string[];

  constructor(
    readonly count: number,
    readonly cluster: string,
    private readonly out: (s: string) => void,
  ) {
    this.names = Array.from({ length: count }, (_, i) => `demo-${i + 1}`);
  }

  spawn(name: string): Child {
    const c = new Child(
      name,
      this.cluster,
      () => this.changed(),
      (dead) => {
        const how = dead.exit?.signal ?? `code ${dead.exit?.code}`;
        this.failure ??= new DemoFailure(
          `${dead.name} (pid ${dead.pid}) exited unexpectedly (${how})`,
        );
        this.changed();
      },
    );
    this.nodes.set(name, c);
    this.all.push(c);
    return c;
  }

  node(name: string): Child {
    return this.nodes.get(name)!;
  }

  get current(): Child[] {
    return this.names.map((n) => this.node(n));
  }

  private changed(): void {
    for (const check of [...this.checks]) check();
  }

  /** Resolves with the elapsed ms once `done()` holds; rejects listing `missing()` on timeout. */
  waitFor(what: string, timeoutMs: number, done: () => boolean, missing: () => string[]) {
    const t0 = now();
    return new Promise<number>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        this.checks.delete(check);
      };
      const check = () => {
        if (this.failure) {
          finish();
          reject(this.failure);
        } else if (done()) {
          finish();
          resolve(now() - t0);
        }
      };
      const timer = setTimeout(() => {
        finish();
        const lines = missing().map((m) => `  - ${m}`);
        reject(new DemoFailure(`timed out after ${fmtS(timeoutMs)} ${what}:\n${lines.join('\n')}`));
      }, timeoutMs);
      this.checks.add(check);
      check();
    });
  }

  converged(): boolean {
    return this.current.every((c) => c.seesAlive(this.names));
  }

  convergenceGaps(): string[] {
    return this.current.filter((c) => !c.seesAlive(this.names)).map((c) => c.missing(this.names));
  }

  /** The membership table: each member as the other nodes see it, and how many agree. */
  table(): string {
    const rows = this.current.map((m) => {
      const others = this.current.filter((o) => o !== m).map((o) => o.view.get(m.name));
      const incarnation = Math.max(m.incarnation, ...others.map((s) => s?.incarnation ?? 0));
      const status = others.every((s) => s?.status === 'alive') ? 'alive' : 'disputed';
      const agree =
        1 + others.filter((s) => s?.status === 'alive' && s.incarnation === incarnation).length;
      return [
        m.name,
        String(m.pid),
        m.address,
        String(incarnation),
        status,
        `${agree}/${this.count}`,
      ];
    });
    const head = ['NODE', 'PID', 'ADDRESS', 'INCARNATION', 'STATUS', 'AGREE'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => `  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd();
    return [line(head), ...rows.map(line)].join('\n');
  }

  async run(): Promise<void> {
    const { out, names } = this;
    out(
      `Foundation demo: ${this.count} nodes on this machine, no configuration (cluster "${this.cluster}")\n`,
    );
    out(`Starting ${names.join(', ')} ...`);
    for (const n of names) this.spawn(n);
    const tJoin = await this.waitFor(
      `for every node to see ${this.count} alive members`,
      CONVERGE_TIMEOUT_MS,
      () => this.converged(),
      () => this.convergenceGaps(),
    );
    out(`✓ every node sees ${this.count} alive members (${fmtS(tJoin)} after launch)\n`);
    out(this.table());

    // Kill the second node: a real process, a real SIGKILL, no goodbye.
    const victim = this.node(names[1]!);
    const survivors = this.current.filter((c) => c !== victim);
    const mark = new Map(survivors.map((s) => [s, s.history.length]));
    out(`\nKilling ${victim.name} (pid ${victim.pid}) with SIGKILL ...`);
    const tKill = now();
    victim.kill('SIGKILL');
    await this.waitFor(
      `for every survivor to see ${victim.name} down`,
      DOWN_TIMEOUT_MS,
      () => survivors.every((s) => s.view.get(victim.name)?.status === 'down'),
      () =>
        survivors
          .filter((s) => s.view.get(victim.name)?.status !== 'down')
          .map((s) => `${s.name} sees ${victim.name} ${s.view.get(victim.name)?.status}`),
    );
    for (const s of survivors) {
      const after = s.history.slice(mark.get(s)).filter((e) => e.name === victim.name);
      const down = after.find((e) => e.status === 'down')!;
      const suspect = after.find((e) => e.status === 'suspect');
      const note = suspect ? ` (suspected after ${fmtMs(suspect.t - tKill)})` : '';
      out(`✓ ${s.name} saw ${victim.name} down after ${fmtMs(down.t - tKill)}${note}`);
    }
    await victim.closed;

    // Restart it under the same name: it must come back as a newer incarnation.
    const before = new Map(survivors.map((s) => [s, s.view.get(victim.name)!.incarnation]));
    const mark2 = new Map(survivors.map((s) => [s, s.history.length]));
    out(`\nRestarting ${victim.name} ...`);
    const tRestart = now();
    const reborn = this.spawn(victim.name);
    await this.waitFor(
      `for ${victim.name} to rejoin`,
      CONVERGE_TIMEOUT_MS,
      () =>
        this.converged() &&
        survivors.every((s) => s.view.get(victim.name)!.incarnation > before.get(s)!),
      () => [
        ...this.convergenceGaps(),
        ...survivors
          .filter((s) => !(s.view.get(victim.name)!.incarnation > before.get(s)!))
          .map((s) => `${s.name} has not seen a newer incarnation of ${victim.name}`),
      ],
    );
    for (const s of survivors) {
      const up = s.history
        .slice(mark2.get(s))
        .find(
          (e) => e.name === victim.name && e.status === 'alive' && e.incarnation > before.get(s)!,
        )!;
      out(
        `✓ ${s.name} saw ${victim.name} alive again ${fmtMs(up.t - tRestart)} after restart, incarnation ${before.get(s)} → ${up.incarnation}`,
      );
    }
    out(`  (new pid ${reborn.pid}; the time includes starting a Node.js process)\n`);
    out(this.table());

    out(`\nStopping all nodes with SIGTERM (graceful leave) ...`);
    for (const c of this.current) c.kill('SIGTERM');
    await this.waitFor(
      'for the nodes to stop',
      STOP_TIMEOUT_MS,
      () => this.current.every((c) => !c.running),
      () => this.current.filter((c) => c.running).map((c) => `${c.name} is still running`),
    );
    const unclean = this.current.filter((c) => c.exit?.code !== 0);
    if (unclean.length) {
      throw new DemoFailure(
        unclean
          .map((c) => `${c.name} exited with ${c.exit?.signal ?? `code ${c.exit?.code}`}`)
          .join('; '),
      );
    }
    out(`✓ all ${this.count} nodes left the cluster and exited cleanly\n`);
  }

  /** Details for a failure report: every child's error events and stderr tail. */
  reports(): string {
    return this.all.map((c) => c.report()).join('\n');
  }

  /** Kills every child still running (SIGKILL unless `graceful`), waiting briefly for them. */
  async killAll(graceful: boolean): Promise<void> {
    for (const c of this.all) c.kill(graceful ? 'SIGTERM' : 'SIGKILL');
    const wait = Promise.all(this.all.map((c) => c.closed));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      wait.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), 2_000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      for (const c of this.all) if (c.running) c.proc.kill('SIGKILL');
      await wait;
    }
  }

  /** Synchronous last resort for process exit and uncaught errors. */
  killAllNow(): void {
    for (const c of this.all) {
      if (c.running) {
        try {
          c.proc.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  interrupt(signal: string): void {
    this.failure ??= new DemoFailure(`interrupted by ${signal}`);
    this.changed();
  }
}

function parseNodes(argv: string[]): number | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: { nodes: { type: 'string', short: 'n' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const raw = values.nodes ?? '3';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 2 || n > MAX_NODES) {
    throw new FoundationError(
      'FND_ERR_INVALID_OPTION',
      `option "nodes": expected an integer from 2 to ${MAX_NODES}, got "${raw}"`,
      { field: 'nodes' },
    );
  }
  return n;
}

/** Runs `foundation demo`; resolves with the exit code. Never leaves a child process behind. */
export async function demoCommand(argv: string[]): Promise<number> {
  let count: number | 'help';
  try {
    count = parseNodes(argv);
  } catch (err) {
    process.stderr.write(`foundation demo: ${(err as Error).message}\n`);
    return 2;
  }
  if (count === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const cluster = `demo-${process.pid}-${Date.now().toString(36)}`;
  const demo = new Demo(count, cluster, (s) => process.stdout.write(`${s}\n`));

  const onExit = () => demo.killAllNow();
  const onUncaught = (err: unknown) => {
    process.stderr.write(`foundation demo: internal error: ${(err as Error)?.stack ?? err}\n`);
    demo.killAllNow();
    process.exit(1);
  };
  const onSignal = (signal: NodeJS.Signals) => demo.interrupt(signal);
  process.on('exit', onExit);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 0;
  try {
    await demo.run();
    process.stdout.write(
      'Done. Try it by hand: run `node bin/foundation.js start` in two terminals.\n',
    );
  } catch (err) {
    const interrupted = err instanceof DemoFailure && err.message.startsWith('interrupted');
    process.stdout.write(`\n✗ demo failed: ${(err as Error).message}\n`);
    if (!interrupted) {
      process.stderr.write(`\nWhat the nodes reported:\n${demo.reports()}\n`);
    }
    await demo.killAll(interrupted);
    code = interrupted ? 130 : 1;
  } finally {
    await rm(defaultLocalDirectory(cluster), { recursive: true, force: true }).catch(() => {});
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    process.off('exit', onExit);
  }
  return code;
}
