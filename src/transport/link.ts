// A Link is one authenticated, framed connection: it runs the handshake over a RawConnection,
// then turns bytes into decoded messages. Any framing or decoding error closes this link only.
import { type ErrorCode, FoundationError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { decodeMessage, decodeMessageAt, encode } from './codec.js';
import { encodeFrame, FrameDecoder } from './frame.js';
import {
  clientProof,
  errorMessage,
  type Hello,
  helloMessage,
  hmacKey,
  type Identity,
  negotiateVersion,
  nonce,
  OUR_VERSIONS,
  parseError,
  parseHello,
  proofsEqual,
  serverProof,
  type VersionRange,
} from './handshake.js';
import { type ChannelName, HANDSHAKE_MAX_FRAME, MSG } from './protocol.js';
import type { RawConnection } from './types.js';

export interface LinkOptions {
  self: Identity;
  secret: string | undefined;
  maxFrameSize: number;
  handshakeTimeoutMs: number;
  clock: Clock;
  /** Protocol versions to offer/accept; only tests change this. */
  versions?: VersionRange;
}

/** What the handshake learned about the other side. */
export interface PeerHello {
  name: string;
  incarnation: number;
  address: Hello['address'];
  channel: ChannelName;
  version: number;
}

export interface LinkHandlers {
  /** A decoded message `[type, ...fields]`. Never called concurrently; must not throw. */
  message(msg: unknown[]): void;
  /** Called once, when the link is closed for any reason; `err` says why when it was not asked for. */
  close(err?: Error): void;
  /** The connection can take more writes again. */
  drain(): void;
}

const noop = () => {};

export class Link {
  private handlers: LinkHandlers = { message: noop, close: noop, drain: noop };
  private closed = false;
  private readonly decoder: FrameDecoder;
  private inHandler = false;

  /** Use Link.client / Link.server; the constructor takes a connection whose handshake is done. */
  constructor(
    readonly conn: RawConnection,
    readonly peer: PeerHello,
    decoder: FrameDecoder,
    backlog: Buffer[],
  ) {
    this.decoder = decoder;
    conn.setHandlers({
      data: (chunk) => this.onData(chunk),
      drain: () => this.handlers.drain(),
      close: (err) => this.finish(err),
    });
    // Frames that arrived in the same chunk as the end of the handshake.
    if (backlog.length > 0) queueMicrotask(() => this.deliver(backlog));
  }

  get remote(): string {
    return this.conn.remote;
  }

  setHandlers(h: LinkHandlers): void {
    this.handlers = h;
  }

  /** Writes already-framed bytes; false means wait for `drain`. */
  write(frames: Uint8Array): boolean {
    if (this.closed) return false;
    return this.conn.write(frames);
  }

  /** Flushes and closes. */
  end(): void {
    if (this.closed) return;
    this.conn.end();
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    this.conn.destroy();
    this.finish(err);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(chunk: Uint8Array): void {
    if (this.closed) return;
    try {
      this.decoder.each(chunk, this.onFrame);
    } catch (err) {
      // A handler's own exception is not a framing error: let it propagate as it always did.
      if (this.inHandler) {
        this.inHandler = false;
        throw err;
      }
      this.destroy(err as Error);
    }
  }

  /** One complete frame body, `src[start, end)`, decoded in place. Returns false once closed. */
  private readonly onFrame = (src: Buffer, start: number, end: number): boolean => {
    if (this.closed) return false;
    let msg: unknown[];
    try {
      msg = decodeMessageAt(src, start, end);
    } catch (err) {
      this.destroy(err as Error);
      return false;
    }
    this.inHandler = true;
    this.handlers.message(msg);
    this.inHandler = false;
    return !this.closed;
  };

  private deliver(bodies: Buffer[]): void {
    for (const body of bodies) {
      if (this.closed) return;
      let msg: unknown[];
      try {
        msg = decodeMessage(body);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      this.handlers.message(msg);
    }
  }

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.close(err);
  }

  /** Dials side: sends HELLO, checks the server's proof, answers with ours, waits for WELCOME. */
  static client(conn: RawConnection, channel: ChannelName, opts: LinkOptions): Promise<Link> {
    const key = hmacKey(opts.secret, opts.self.cluster);
    const myNonce = nonce();
    const versions = opts.versions ?? OUR_VERSIONS;
    const hello = parseHello(helloMessage(opts.self, channel, myNonce, versions))!;
    let stage: 'challenge' | 'welcome' = 'challenge';
    let server: PeerHello | undefined;
    return runHandshake(
      conn,
      opts,
      (msg, reply, fail, done) => {
        const remoteErr = parseError(msg);
        if (remoteErr) return fail(remoteErr.code, `peer refused: ${remoteErr.message}`, false);
        if (stage === 'challenge') {
          const [type, version, name, inc, serverNonce, sProof] = msg;
          if (type !== MSG.CHALLENGE || typeof name !== 'string' || typeof inc !== 'number') {
            return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected CHALLENGE', true);
          }
          if (!(serverNonce instanceof Uint8Array) || typeof version !== 'number') {
            return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'malformed CHALLENGE', true);
          }
          const sn = Buffer.from(serverNonce);
          if (!proofsEqual(sProof, serverProof(key, hello, sn, name))) {
            return fail(
              'FND_ERR_HANDSHAKE_SECRET',
              `node ${name} does not share this cluster's secret`,
              true,
            );
          }
          server = { name, incarnation: inc, address: { host: '', port: 0 }, channel, version };
          stage = 'welcome';
          reply([MSG.AUTH, clientProof(key, hello, sn, name)]);
          return;
        }
        if (msg[0] !== MSG.WELCOME || !server)
          return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected WELCOME', true);
        const [, host, port] = msg;
        if (typeof host === 'string' && typeof port === 'number') server.address = { host, port };
        done(server);
      },
      () => conn.write(encodeFrame(encode(helloMessage(opts.self, channel, myNonce, versions)))),
    );
  }

  /** Accepting side: validates HELLO, proves the secret, checks the client's proof, sends WELCOME. */
  static server(
    conn: RawConnection,
    opts: LinkOptions,
    accept: (hello: PeerHello) => { code: ErrorCode; message: string } | undefined,
  ): Promise<Link> {
    const key = hmacKey(opts.secret, opts.self.cluster);
    const myNonce = nonce();
    let hello: Hello | undefined;
    let peer: PeerHello | undefined;
    return runHandshake(conn, opts, (msg, reply, fail, done) => {
      const remoteErr = parseError(msg);
      if (remoteErr) return fail(remoteErr.code, `peer refused: ${remoteErr.message}`, false);
      if (!hello) {
        hello = parseHello(msg);
        if (!hello) return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected a Foundation HELLO', true);
        if (hello.cluster !== opts.self.cluster) {
          return fail(
            'FND_ERR_HANDSHAKE_CLUSTER',
            `node ${hello.name} is in cluster "${hello.cluster}", this node is in "${opts.self.cluster}"`,
            true,
          );
        }
        const ours = opts.versions ?? OUR_VERSIONS;
        const version = negotiateVersion(hello.versions, ours);
        if (version === undefined) {
          return fail(
            'FND_ERR_HANDSHAKE_VERSION',
            `peer speaks protocol ${hello.versions[0]}-${hello.versions[1]}, this node ${ours[0]}-${ours[1]}`,
            true,
          );
        }
        peer = {
          name: hello.name,
          incarnation: hello.incarnation,
          address: hello.address,
          channel: hello.channel,
          version,
        };
        if (hello.name === opts.self.name) {
          return fail(
            'FND_ERR_HANDSHAKE_DUPLICATE_NAME',
            `node name "${hello.name}" is this node's own name`,
            true,
          );
        }
        reply([
          MSG.CHALLENGE,
          version,
          opts.self.name,
          opts.self.incarnation,
          myNonce,
          serverProof(key, hello, myNonce, opts.self.name),
        ]);
        return;
      }
      if (msg[0] !== MSG.AUTH || !peer)
        return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected AUTH', true);
      if (!proofsEqual(msg[1], clientProof(key, hello, myNonce, opts.self.name))) {
        return fail(
          'FND_ERR_HANDSHAKE_SECRET',
          `node ${hello.name} does not share this cluster's secret`,
          true,
        );
      }
      const refused = accept(peer);
      if (refused) return fail(refused.code, refused.message, true);
      reply([MSG.WELCOME, opts.self.address.host, opts.self.address.port]);
      done(peer);
    });
  }
}

type Step = (
  msg: unknown[],
  reply: (m: unknown[]) => void,
  fail: (code: ErrorCode, message: string, tellPeer: boolean) => void,
  done: (peer: PeerHello) => void,
) => void;

/** Shared handshake driver: small frames only, one timeout, errors told to the peer before closing. */
function runHandshake(
  conn: RawConnection,
  opts: LinkOptions,
  step: Step,
  begin?: () => void,
): Promise<Link> {
  return new Promise<Link>((resolve, reject) => {
    const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME);
    let settled = false;
    const timer = opts.clock.setTimeout(() => {
      fail(
        'FND_ERR_HANDSHAKE_TIMEOUT',
        `no handshake from ${conn.remote} within ${opts.handshakeTimeoutMs} ms`,
        false,
      );
    }, opts.handshakeTimeoutMs);

    const fail = (code: ErrorCode, message: string, tellPeer: boolean) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      if (tellPeer) {
        conn.write(encodeFrame(encode(errorMessage(code, message))));
        conn.end();
      } else conn.destroy();
      reject(new FoundationError(code, message, { remote: conn.remote }));
    };
    const reply = (m: unknown[]) => conn.write(encodeFrame(encode(m)));

    conn.setHandlers({
      data(chunk) {
        if (settled) return;
        let bodies: Buffer[];
        try {
          bodies = decoder.push(chunk);
        } catch (err) {
          const e = err as FoundationError;
          return fail(e.code ?? 'FND_ERR_HANDSHAKE_PROTOCOL', `handshake: ${e.message}`, false);
        }
        for (let i = 0; i < bodies.length && !settled; i++) {
          let msg: unknown[];
          try {
            msg = decodeMessage(bodies[i]!);
          } catch {
            return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'undecodable handshake frame', true);
          }
          step(msg, reply, fail, (peer) => {
            settled = true;
            timer.cancel();
            decoder.maxFrameSize = opts.maxFrameSize;
            resolve(new Link(conn, peer, decoder, bodies.slice(i + 1)));
          });
        }
      },
      drain() {},
      close(err) {
        if (settled) return;
        settled = true;
        timer.cancel();
        reject(
          new FoundationError(
            'FND_ERR_HANDSHAKE_PROTOCOL',
            `connection ${conn.remote} closed during handshake`,
            {
              remote: conn.remote,
            },
            { cause: err },
          ),
        );
      },
    });
    begin?.();
  });
}
