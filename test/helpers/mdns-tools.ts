// Third-party mDNS software for the interoperability tests, run inside the test's own network
// namespaces (test/helpers/netns.ts): avahi-daemon with a private D-Bus (so avahi-browse,
// avahi-resolve and avahi-publish talk to that daemon only), python-zeroconf
// (test/fixtures/mdns-peer.py) and dig. Nothing runs in the root namespace. Missing Debian packages
// are installed with apt when running as root (CI does, see .ci/run); otherwise the test fails
// saying what to install.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Packet } from 'dns-packet';
import type { NetnsHost } from './netns.js';
import { eachLine, until } from './proc.js';
import { repoRoot } from './repo.js';

export const PYTHON = '/usr/bin/python3'; // Debian's, where python3-zeroconf installs
export const MDNS_PEER = path.join(repoRoot(), 'test', 'fixtures', 'mdns-peer.py');
export const MDNS_PACKAGES = ['avahi-daemon', 'avahi-utils', 'python3-zeroconf', 'dnsutils'];

function missingTools(): string[] {
  const missing: string[] = [];
  const has = (cmd: string, args: string[]) => {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!has('/usr/sbin/avahi-daemon', ['--version'])) missing.push('avahi-daemon');
  if (!has('avahi-browse', ['--version'])) missing.push('avahi-utils');
  if (!has(PYTHON, ['-c', 'import zeroconf'])) missing.push('python3-zeroconf');
  if (!has('dig', ['-v'])) missing.push('dnsutils');
  if (!has('dbus-daemon', ['--version'])) missing.push('dbus');
  return missing;
}

/** Installs avahi, avahi-utils, python3-zeroconf and dig when missing (root only), or throws. */
export function ensureMdnsTools(): void {
  let missing = missingTools();
  if (missing.length === 0) return;
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...MDNS_PACKAGES, 'dbus'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    missing = missingTools();
  }
  if (missing.length) {
    throw new Error(
      `the mDNS interoperability tests need Debian packages ${missing.join(', ')}: apt-get install -y ${MDNS_PACKAGES.join(' ')} (as root)`,
    );
  }
}

/** A process in a namespace whose stdout lines are kept; JSON lines are parsed into `json`. */
export class NsProcess {
  readonly lines: string[] = [];
  readonly json: Array<Record<string, unknown>> = [];
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(
    readonly host: NetnsHost,
    cmd: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn('ip', ['netns', 'exec', host.ns, ...cmd], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
      cwd: repoRoot(), // `node -e` scripts resolve dns-packet from here
    });
    eachLine(this.child.stdout!, (line, json) => {
      this.lines.push(line);
      if (json !== undefined) this.json.push(json);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  /** Waits for a JSON line matching `pred` (already printed or future). */
  async waitJson(
    pred: (o: Record<string, unknown>) => boolean,
    ms: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    await until(() => this.json.some(pred), ms, `${what} (stderr: ${this.stderr.slice(-800)})`);
    return this.json.find(pred)!;
  }

  /** Kills the process (by its own pid) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/** Runs a command to completion inside `host`'s namespace; resolves with its stdout. */
export function nsRun(
  host: NetnsHost,
  cmd: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = new NsProcess(host, cmd, env);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
    void p.exited.then((code) => {
      clearTimeout(timer);
      if (code === 0) resolve(p.lines.join('\n'));
      else
        reject(new Error(`${cmd.join(' ')} exited with ${code}: ${p.stderr.slice(-800).trim()}`));
    });
  });
}

/**
 * avahi-daemon in `host`'s namespace with its own D-Bus daemon (the machine's system bus is not
 * used, so daemons in several namespaces do not meet) and host name `hostName`. Its pid file goes
 * to a tmpfs mounted in that process's private mount namespace (`ip netns exec` makes one).
 */
export class Avahi {
  private readonly dir: string;
  private readonly bus: string;
  private dbus: NsProcess | undefined;
  private daemon: NsProcess | undefined;

  constructor(
    readonly host: NetnsHost,
    readonly hostName: string,
  ) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'fnd-avahi-'));
    this.bus = path.join(this.dir, 'bus');
  }

  /** Environment that points avahi's client tools at this daemon. */
  get env(): NodeJS.ProcessEnv {
    return { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${this.bus}` };
  }

  async start(): Promise<void> {
    writeFileSync(
      path.join(this.dir, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${this.bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/>
    <allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    writeFileSync(
      path.join(this.dir, 'avahi.conf'),
      `[server]
host-name=${this.hostName}
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
`,
    );
    const empty = path.join(this.dir, 'services');
    mkdirSync(empty);
    this.dbus = new NsProcess(this.host, [
      'dbus-daemon',
      `--config-file=${path.join(this.dir, 'dbus.conf')}`,
      '--nofork',
    ]);
    await until(
      () =>
        nsRun(
          this.host,
          [
            'dbus-send',
            '--system',
            '--print-reply',
            '--dest=org.freedesktop.DBus',
            '/',
            'org.freedesktop.DBus.ListNames',
          ],
          this.env,
        ).then(
          () => true,
          () => false,
        ),
      10_000,
      `the private D-Bus in ${this.host.ns} (stderr: ${this.dbus.stderr})`,
    );
    mkdirSync('/run/avahi-daemon', { recursive: true });
    this.daemon = new NsProcess(
      this.host,
      [
        'sh',
        '-c',
        `mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon -f ${path.join(this.dir, 'avahi.conf')} --no-drop-root --no-chroot --no-rlimits`,
      ],
      this.env,
    );
    await until(
      () =>
        this.daemon!.stderr.includes('Server startup complete') ||
        this.daemon!.lines.some((l) => l.includes('Server startup complete')),
      15_000,
      `avahi-daemon in ${this.host.ns} to start (stderr: ${this.daemon.stderr.slice(-800)})`,
    );
  }

  /**
   * `avahi-browse -rtp <type>` (or `-a`): resolved services in avahi's cache once it reports
   * "all for now", as { name, type, host, address, port, txt }.
   */
  async browse(type: string | 'all'): Promise<Array<Record<string, string>>> {
    const out = await nsRun(
      this.host,
      ['avahi-browse', '-r', '-t', '-p', ...(type === 'all' ? ['-a'] : [type])],
      this.env,
    );
    return out
      .split('\n')
      .filter((l) => l.startsWith('='))
      .map((l) => {
        const f = l.split(';');
        return {
          name: f[3]!,
          type: f[4]!,
          host: f[6]!,
          address: f[7]!,
          port: f[8]!,
          txt: f[9] ?? '',
        };
      });
  }

  /** `avahi-resolve -4 -n <name>`: the address avahi resolves a host name to, or '' if none. */
  async resolveHost(name: string): Promise<string> {
    const out = await nsRun(this.host, ['avahi-resolve', '-4', '-n', name], this.env).catch(
      () => '',
    );
    return out.trim().split(/\s+/)[1] ?? '';
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
    await this.dbus?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Sends one legacy mDNS query (RFC 6762 §6.7: from an ephemeral port, so answers come back by
 * unicast) from inside `host` to `target`:5353, where `target` may be 224.0.0.251 (every responder
 * on the link receives it), and returns the responses that arrive within `ms`, decoded.
 */
export async function legacyQuery(
  host: NetnsHost,
  target: string,
  questions: Array<{ name: string; type: string }>,
  id: number,
  ms = 2000,
): Promise<Array<Packet & { from: string }>> {
  const code = `
    const dns = require('dns-packet');
    const s = require('node:dgram').createSocket('udp4');
    const [ip, target, q, id, ms] = process.argv.slice(1);
    s.on('message', (m, r) => {
      try { console.log(JSON.stringify({ from: r.address + ':' + r.port, ...dns.decode(m) })); } catch {}
    });
    s.bind(0, ip, () => {
      if (target.startsWith('224.')) { s.setMulticastInterface(ip); s.setMulticastTTL(255); }
      s.send(dns.encode({ type: 'query', id: Number(id), questions: JSON.parse(q) }), 5353, target);
      setTimeout(() => s.close(), Number(ms));
    });`;
  const out = await nsRun(
    host,
    [
      process.execPath,
      '-e',
      code,
      host.ip,
      target,
      JSON.stringify(questions),
      String(id),
      String(ms),
    ],
    {},
    ms + 10_000,
  );
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/**
 * `legacyQuery` until `from` (ip:port) answers, at most `tries` times: one UDP datagram each way
 * can be lost, or answered after a starved responder's window. Undefined when it never answered.
 */
export async function legacyAnswer(
  host: NetnsHost,
  target: string,
  questions: Array<{ name: string; type: string }>,
  id: number,
  from: string,
  tries = 3,
): Promise<(Packet & { from: string }) | undefined> {
  for (let i = 0; i < tries; i++) {
    const answer = (await legacyQuery(host, target, questions, id)).find((r) => r.from === from);
    if (answer) return answer;
  }
  return undefined;
}
