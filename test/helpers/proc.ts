// Spawns fixture node processes and reads their JSON-line events, for integration tests.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE = path.join(here, '..', 'fixtures', 'node-process.js');

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON from the child
export type Event = Record<string, any>;

/**
 * Calls `onLine` with every complete line `stream` prints (UTF-8), and `onChunk` after each chunk's
 * lines; `onLine` gets the line and, when it is JSON, the parsed value.
 */
export function eachLine(
  stream: NodeJS.ReadableStream,
  onLine: (line: string, json: Event | undefined) => void,
  onChunk?: () => void,
): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let json: Event | undefined;
      try {
        json = JSON.parse(line);
      } catch {
        // a plain text line
      }
      onLine(line, json);
    }
    onChunk?.();
  });
}

export class NodeProc {
  readonly events: Event[] = [];
  stderr = '';
  private readonly child: ChildProcess;
  private waiters: Array<() => void> = [];
  private nextId = 1;
  exited: Promise<number | null>;

  constructor(
    readonly name: string,
    args: string[],
  ) {
    this.child = spawn(process.execPath, [FIXTURE, '--name', name, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    eachLine(
      this.child.stdout!,
      (_line, json) => {
        if (json !== undefined) this.events.push(json);
      },
      () => {
        for (const w of this.waiters) w();
      },
    );
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first event matching `pred` (already seen or future); rejects after `ms`. */
  waitFor(pred: (e: Event) => boolean, ms: number, what = 'event'): Promise<Event> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.events.find(pred);
        if (!e) return false;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== listener);
        resolve(e);
        return true;
      };
      const listener = () => void check();
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== listener);
        reject(
          new Error(
            `${this.name}: no ${what} within ${ms} ms; stderr: ${this.stderr.slice(-2000)}`,
          ),
        );
      }, ms);
      if (!check()) this.waiters.push(listener);
    });
  }

  command(cmd: Event): number {
    const id = this.nextId++;
    this.child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    return id;
  }

  async request(to: string, payload: unknown, ms = 10_000): Promise<Event> {
    const id = this.command({ cmd: 'request', to, payload });
    return this.waitFor((e) => e.event === 'reply' && e.id === id, ms, `reply ${id}`);
  }

  async members(ms = 5000): Promise<Event[]> {
    const id = this.command({ cmd: 'members' });
    return (await this.waitFor((e) => e.event === 'members' && e.id === id, ms, 'members')).members;
  }

  /** Kills with `signal` and resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/**
 * Polls `fn` until it returns true; rejects after `ms` with `what`. A probe that throws counts as
 * "not yet" (a starved process may answer one probe late), and its last error is in the message.
 */
export async function until(
  fn: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const why = last === undefined ? '' : ` (last probe failed: ${(last as Error).message})`;
      throw new Error(`timed out after ${ms} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
