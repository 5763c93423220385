// Node-level messaging, the base the actor, RPC and pub/sub layers build on: one-way messages and
// request/response between members, with correlation ids, timeouts on the injected clock, and
// immediate rejection of everything pending towards a node the moment it is declared down or leaves.
import { FoundationError, isErrorCode, serializeError } from '../errors.js';
import { encode } from '../transport/codec.js';
import { type ChannelName, MSG } from '../transport/protocol.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';

/** Handles a one-way message. Never called concurrently for one connection; must not block. */
export type MessageHandler = (payload: unknown, from: string) => void;
/** Answers a request; the returned value (or promise) is the reply, a throw becomes FND_ERR_REMOTE. */
export type RequestHandler = (payload: unknown, from: string) => unknown;

export interface SendOptions {
  /** Channel to use; messages above the bulk threshold go to `bulk` whatever this says. Default 'default'. */
  channel?: ChannelName;
}

export interface RequestOptions extends SendOptions {
  /** Milliseconds to wait for the reply. Default: the node's `requestTimeoutMs`. */
  timeout?: number;
}

export interface MessengerDeps {
  selfName: string;
  send(to: string, channel: ChannelName, body: Uint8Array): void;
  /** Whether `name` is a member we may talk to (alive or suspect). */
  reachable(name: string): boolean;
  clock: Clock;
  log: Logger;
  requestTimeoutMs: number;
  bulkThreshold: number;
}

interface Pending {
  to: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

export class Messenger {
  private readonly oneWay = new Map<string, MessageHandler>();
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopped = false;

  constructor(private readonly deps: MessengerDeps) {}

  /** Registers the handler for one-way messages of `kind` (replacing any previous one). */
  on(kind: string, handler: MessageHandler): void {
    this.oneWay.set(kind, handler);
  }

  /** Registers the handler for requests of `kind` (replacing any previous one). */
  handle(kind: string, handler: RequestHandler): void {
    this.handlers.set(kind, handler);
  }

  /** Requests awaiting a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  private check(to: string): void {
    if (this.stopped) throw new FoundationError('FND_ERR_NODE_STOPPED');
    if (to !== this.deps.selfName && !this.deps.reachable(to)) {
      throw new FoundationError('FND_ERR_UNKNOWN_NODE', `node ${to} is not an alive member`, {
        node: to,
      });
    }
  }

  private out(to: string, channel: ChannelName, msg: unknown[]): void {
    const body = encode(msg);
    this.deps.send(to, body.length >= this.deps.bulkThreshold ? 'bulk' : channel, body);
  }

  /** At-most-once, ordered per (sender, receiver, channel). Throws coded errors synchronously. */
  send(to: string, kind: string, payload: unknown, opts: SendOptions = {}): void {
    this.check(to);
    if (to === this.deps.selfName) {
      queueMicrotask(() => this.dispatch(to, 'default', [MSG.SEND, kind, payload]));
      return;
    }
    this.out(to, opts.channel ?? 'default', [MSG.SEND, kind, payload]);
  }

  /** Sends a request and resolves with the reply; rejects with a coded error. */
  request<T = unknown>(
    to: string,
    kind: string,
    payload: unknown,
    opts: RequestOptions = {},
  ): Promise<T> {
    try {
      this.check(to);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.nextId++;
    const timeout = opts.timeout ?? this.deps.requestTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = this.deps.clock.setTimeout(() => {
        if (this.pending.delete(id)) {
          reject(
            new FoundationError(
              'FND_ERR_REQUEST_TIMEOUT',
              `no reply from ${to} to "${kind}" within ${timeout} ms`,
              { node: to, kind, timeout },
            ),
          );
        }
      }, timeout);
      this.pending.set(id, { to, resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        if (to === this.deps.selfName)
          queueMicrotask(() => this.dispatch(to, 'default', [MSG.REQUEST, id, kind, payload]));
        else this.out(to, opts.channel ?? 'default', [MSG.REQUEST, id, kind, payload]);
      } catch (err) {
        timer.cancel();
        this.pending.delete(id);
        reject(err);
      }
    });
  }

  /** Rejects every request pending towards `name` (it is down or gone). */
  nodeDown(name: string, reason: 'down' | 'left'): void {
    for (const [id, p] of this.pending) {
      if (p.to !== name) continue;
      this.pending.delete(id);
      p.timer.cancel();
      p.reject(
        new FoundationError(
          'FND_ERR_NODE_DOWN',
          `node ${name} ${reason === 'left' ? 'left the cluster' : 'was declared down'}`,
          { node: name, reason },
        ),
      );
    }
  }

  stop(): void {
    this.stopped = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.timer.cancel();
      p.reject(
        new FoundationError('FND_ERR_NODE_STOPPED', 'this node stopped before the reply arrived'),
      );
    }
  }

  /** Handles one data message from `from`. Never throws. */
  dispatch(from: string, channel: ChannelName, msg: unknown[]): void {
    switch (msg[0]) {
      case MSG.SEND: {
        const h = typeof msg[1] === 'string' ? this.oneWay.get(msg[1]) : undefined;
        if (!h) {
          this.deps.log.debug({ from, kind: msg[1] }, 'no handler for message; dropped');
          return;
        }
        try {
          h(msg[2], from);
        } catch (err) {
          this.deps.log.error(
            { from, kind: msg[1], err: (err as Error).message },
            'message handler threw',
          );
        }
        return;
      }
      case MSG.REQUEST: {
        const [, id, kind] = msg;
        if (typeof id !== 'number' || typeof kind !== 'string') return;
        const h = this.handlers.get(kind);
        if (!h) {
          const e = new FoundationError(
            'FND_ERR_NO_HANDLER',
            `node ${this.deps.selfName} has no handler for "${kind}"`,
            { kind },
          );
          this.reply(from, channel, id, false, e.toJSON());
          return;
        }
        let result: unknown;
        try {
          result = h(msg[3], from);
        } catch (err) {
          this.reply(from, channel, id, false, serializeError(err));
          return;
        }
        if (result instanceof Promise) {
          result.then(
            (v) => this.reply(from, channel, id, true, v),
            (err) => this.reply(from, channel, id, false, serializeError(err)),
          );
        } else this.reply(from, channel, id, true, result);
        return;
      }
      case MSG.RESPONSE: {
        const [, id, ok, value] = msg;
        const p = typeof id === 'number' ? this.pending.get(id) : undefined;
        if (!p || p.to !== from) return;
        this.pending.delete(id as number);
        p.timer.cancel();
        if (ok) p.resolve(value);
        else p.reject(remoteError(from, value));
        return;
      }
    }
  }

  private reply(to: string, channel: ChannelName, id: number, ok: boolean, value: unknown): void {
    if (to === this.deps.selfName) {
      this.dispatch(to, channel, [MSG.RESPONSE, id, ok, value]);
      return;
    }
    try {
      this.out(to, channel, [MSG.RESPONSE, id, ok, value]);
    } catch (err) {
      this.deps.log.warn({ to, err: (err as Error).message }, 'could not send reply');
    }
  }
}

function remoteError(from: string, value: unknown): FoundationError {
  const v = (value ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
  const message = typeof v.message === 'string' ? v.message : 'remote error';
  if (isErrorCode(v.code) && v.code !== 'FND_ERR_REMOTE') {
    return FoundationError.fromWire(v.code, `node ${from}: ${message}`, {
      node: from,
      ...(v.data as object),
    });
  }
  return new FoundationError('FND_ERR_REMOTE', `node ${from} failed: ${message}`, {
    node: from,
    code: v.code,
    message,
    data: v.data,
  });
}
