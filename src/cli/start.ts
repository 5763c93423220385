// `foundation start`: one node in the foreground. Prints membership changes as text or, with
// --json, one JSON object per line (what `foundation demo` and scripts parse). SIGINT/SIGTERM
// (or stdin closing, with --stop-on-stdin-close) stop the node gracefully: peers see it `left`.
import { parseArgs } from 'node:util';
import type { ChangeInfo, Member } from '../cluster/membership.js';
import type { PresetName } from '../cluster/presets.js';
import { FoundationError, isFoundationError } from '../errors.js';
import { Foundation } from '../index.js';
import type { FoundationNode, MemberEventName } from '../node.js';
import type { FoundationOptions } from '../options.js';
import type { LogLevel } from '../util/log.js';
import { USAGE } from './usage.js';

const OPTIONS = {
  name: { type: 'string' },
  cluster: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  secret: { type: 'string' },
  discovery: { type: 'string' },
  'discovery-options': { type: 'string' },
  hosts: { type: 'string' },
  'advertise-host': { type: 'string' },
  preset: { type: 'string' },
  insecure: { type: 'boolean' },
  'log-level': { type: 'string' },
  json: { type: 'boolean' },
  'stop-on-stdin-close': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** How long a graceful stop may take before we give up on it, in ms. */
const STOP_DEADLINE_MS = 5_000;

const MEMBER_EVENTS: MemberEventName[] = ['memberUp', 'memberDown', 'memberSuspect', 'memberLeft'];
const EVENT_OF: Record<Member['status'], MemberEventName> = {
  alive: 'memberUp',
  suspect: 'memberSuspect',
  down: 'memberDown',
  left: 'memberLeft',
};

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes of one host. */
export const now = (): number => performance.timeOrigin + performance.now();

function invalid(field: string, detail: string): FoundationError {
  return new FoundationError('FND_ERR_INVALID_OPTION', `option "${field}": ${detail}`, { field });
}

/** Command-line values → FoundationOptions. Foundation.start validates the rest (zod). */
export function toOptions(v: Values, env: NodeJS.ProcessEnv): FoundationOptions {
  const o: FoundationOptions = {};
  if (v.name !== undefined) o.name = v.name;
  if (v.cluster !== undefined) o.cluster = v.cluster;
  if (v.host !== undefined) o.host = v.host;
  if (v.port !== undefined) {
    if (!/^\d+$/.test(v.port))
      throw invalid('port', `expected an integer 0-65535, got "${v.port}"`);
    o.port = Number(v.port);
  }
  const secret = v.secret ?? (env.FOUNDATION_SECRET || undefined);
  if (secret !== undefined) o.secret = secret;
  const hosts = v.hosts
    ?.split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const strategy = v.discovery ?? (hosts ? 'static' : undefined);
  let extra: Record<string, unknown> = {};
  if (v['discovery-options'] !== undefined) {
    try {
      extra = JSON.parse(v['discovery-options']) as Record<string, unknown>;
    } catch {
      throw invalid(
        'discovery-options',
        'expected a JSON object, e.g. \'{"query":"shop.prod.svc.cluster.local"}\'',
      );
    }
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
      throw invalid('discovery-options', 'expected a JSON object');
    }
    if (strategy === undefined) throw invalid('discovery-options', 'needs --discovery <strategy>');
  }
  if (strategy === 'static') {
    if (!hosts?.length) throw invalid('hosts', '--discovery static needs --hosts host:port,...');
    o.discovery = { ...extra, strategy: 'static', hosts } as FoundationOptions['discovery'];
  } else if (strategy !== undefined) {
    // Every other strategy's options are validated by Foundation itself (errors name discovery.<key>).
    o.discovery = { ...extra, strategy } as FoundationOptions['discovery'];
  }
  if (hosts && strategy !== 'static')
    throw invalid('hosts', `only used with --discovery static (got --discovery ${strategy})`);
  if (v.preset !== undefined) o.preset = v.preset as PresetName;
  if (v.insecure) o.insecure = true;
  if (v['log-level'] !== undefined) o.logLevel = v['log-level'] as LogLevel;
  if (v['advertise-host'] !== undefined) o.advertiseHost = v['advertise-host'];
  return o;
}

interface Printer {
  started(node: FoundationNode): void;
  member(event: MemberEventName, m: Member, info: ChangeInfo): void;
  error(code: string, message: string): void;
  stopped(reason: string): void;
}

// Whoever reads our stdout may go away (a parent killed with SIGKILL): an EPIPE must not crash
// the node before it has left the cluster and removed its discovery record.
let stdoutOpen = true;
const stdoutClosed = new Set<() => void>();
function write(s: string): void {
  if (stdoutOpen) process.stdout.write(s);
}
function watchStdout(): void {
  process.stdout.on('error', () => {
    stdoutOpen = false;
    for (const f of stdoutClosed) f();
  });
}

function clockTime(t: number): string {
  const d = new Date(t);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function jsonPrinter(): Printer {
  const out = (o: object) => write(`${JSON.stringify({ ...o, t: now() })}\n`);
  return {
    started: (node) =>
      out({
        event: 'started',
        name: node.name,
        cluster: node.clusterName,
        address: node.address,
        incarnation: node.incarnation,
        discovery: node.discovery.name,
        pid: process.pid,
      }),
    member: (event, m, info) =>
      out({
        event,
        member: { name: m.name, address: m.address, status: m.status, incarnation: m.incarnation },
        info: { previous: info.previous ?? null, reason: info.reason, by: info.by },
      }),
    error: (code, message) => out({ event: 'error', code, message }),
    stopped: (reason) => out({ event: 'stopped', reason }),
  };
}

function textPrinter(): Printer {
  const out = (s: string) => write(`${clockTime(Date.now())}  ${s}\n`);
  return {
    started: (node) => {
      out(
        `started ${node.name} at ${node.address} (cluster "${node.clusterName}", incarnation ${node.incarnation})`,
      );
      out(`discovery: ${node.discovery.name} (${node.discovery.reason})`);
      out('waiting for members; start another node the same way to see it join. Ctrl-C stops.');
    },
    member: (_event, m, info) => {
      const by = info.by ? ` by ${info.by}` : '';
      out(
        `${m.name.padEnd(12)} ${(info.previous ?? 'new').padStart(7)} → ${m.status.padEnd(7)}  ${info.reason}${by}  ${m.address}`,
      );
    },
    error: (code, message) => out(`error ${code}: ${message}`),
    stopped: (reason) => out(`stopped (${reason})`),
  };
}

/** Runs `foundation start`; resolves with the exit code once the node has stopped. */
export async function startCommand(argv: string[]): Promise<number> {
  let values: Values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`foundation start: ${(err as Error).message}. Run "foundation help".\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  watchStdout();
  const print = values.json ? jsonPrinter() : textPrinter();
  const refuse = (err: unknown): number => {
    const usage = isFoundationError(err, 'FND_ERR_INVALID_OPTION');
    const bind = isFoundationError(err, 'FND_ERR_INSECURE_BIND');
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`foundation start: ${message}\n`);
    if (values.json) print.error(isFoundationError(err) ? err.code : 'ERR', message);
    return usage || bind ? 2 : 1;
  };

  let options: FoundationOptions;
  try {
    options = toOptions(values, process.env);
  } catch (err) {
    return refuse(err);
  }

  // Listen for the stop request before starting, so a Ctrl-C during start still stops gracefully.
  const stopRequest = new Promise<string>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      resolve(signal);
      // A second signal while stopping means "now": skip the graceful leave.
      const force = () => process.exit(1);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // Nobody reads our output any more: stop like a signal would, instead of dying of EPIPE.
    stdoutClosed.add(() => resolve('stdout closed'));
    if (values['stop-on-stdin-close']) {
      process.stdin.on('error', () => resolve('stdin closed'));
      process.stdin.on('close', () => resolve('stdin closed'));
      process.stdin.on('end', () => resolve('stdin closed'));
      process.stdin.resume();
    }
  });

  let node: FoundationNode;
  try {
    node = await Foundation.start(options);
  } catch (err) {
    return refuse(err);
  }
  for (const event of MEMBER_EVENTS) {
    node.on(event, (m, info) => print.member(event, m, info));
  }
  node.on('error', (err) => print.error(err.code, err.message));
  print.started(node);
  // Members that joined while start() was still settling emitted before we listened: report them.
  for (const m of node.members()) {
    if (!m.self) print.member(EVENT_OF[m.status], m, { previous: undefined, reason: 'known' });
  }

  const reason = await stopRequest;
  let deadline: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    node.stop().then(() => true),
    new Promise<false>((resolve) => {
      deadline = setTimeout(() => resolve(false), STOP_DEADLINE_MS);
    }),
  ]);
  clearTimeout(deadline);
  if (values['stop-on-stdin-close']) process.stdin.destroy();
  if (!finished) {
    print.error('ERR_STOP_TIMEOUT', `graceful stop took longer than ${STOP_DEADLINE_MS} ms`);
    return 1;
  }
  print.stopped(reason);
  return 0;
}
