// A Link is one authenticated, framed connection: it runs the handshake over a RawConnection,
// then turns bytes into decoded messages. After the handshake every byte is inside a record
// sealed with this connection's own keys (record.ts); frames are cut from the verified stream.
// Any record, framing or decoding error closes this link only.
import { type ErrorCode, FoundationError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { decodeMessage, decodeMessageAt, encode } from './codec.js';
import { encodeFrame, FrameDecoder, type InboundBudget } from './frame.js';
import {
  challengeBody,
  clientProof,
  deriveKeys,
  errorMessage,
  type Hello,
  helloMessage,
  hmacKey,
  type Identity,
  looksLikeHello,
  negotiateVersion,
  nonce,
  OUR_VERSIONS,
  parseChallengeBody,
  parseError,
  parseHello,
  proofsEqual,
  serverProof,
  type VersionRange,
} from './handshake.js';
import { type ChannelName, HANDSHAKE_MAX_FRAME, MSG } from './protocol.js';
import { RECORD_HEADER, RECORD_MAX, RECORD_TAG, RecordOpener, RecordSealer } from './record.js';
import type { RawConnection } from './types.js';

export interface LinkOptions {
  self: Identity;
  /** The cluster secret (never sent); keys every proof and record. */
  secret: string;
  /** Largest frame accepted on a connection carrying `channel` (see protocol.ts frameLimit). */
  maxFrameSize: (channel: ChannelName) => number;
  handshakeTimeoutMs: number;
  clock: Clock;
  /** Ask for encrypted records (the connection encrypts if either side asks). */
  encrypt: boolean;
  /** Shared by every inbound link of the node: bounds bytes held in partly received large frames. */
  budget?: InboundBudget;
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
  /** Records on this connection are encrypted (else authenticated only). */
  encrypted: boolean;
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

/** What a finished handshake hands to the Link: keys for each direction and leftover bytes. */
interface Established {
  peer: PeerHello;
  sendKey: Buffer;
  recvKey: Buffer;
  maxFrameSize: number;
  /** Bytes that arrived after the last handshake frame (already record bytes). */
  rest: Buffer | undefined;
}

/**
 * A failed proof, in words that read right on both sides: the refusing node logs it, and sends it
 * to the other, which logs it as "peer refused: ...".
 */
function secretMismatch(self: string, peer: string): string {
  return `nodes ${self} and ${peer} do not share the same cluster secret (${self} checked ${peer}'s proof)`;
}

export class Link {
  /** Free bytes `writeBatch` needs before the payload. */
  static readonly HEADROOM = RECORD_HEADER;
  /** Free bytes `writeBatch` needs after the payload. */
  static readonly TAILROOM = RECORD_TAG;

  private handlers: LinkHandlers = { message: noop, close: noop, drain: noop };
  private closed = false;
  private readonly decoder: FrameDecoder;
  private readonly sealer: RecordSealer;
  private readonly opener: RecordOpener;
  private inHandler = false;
  readonly peer: PeerHello;

  /** Use Link.client / Link.server; the constructor takes a connection whose handshake is done. */
  private constructor(
    readonly conn: RawConnection,
    est: Established,
    budget: InboundBudget | undefined,
  ) {
    this.peer = est.peer;
    this.decoder = new FrameDecoder(est.maxFrameSize, budget);
    this.sealer = new RecordSealer(est.sendKey, est.peer.encrypted, est.peer.version);
    this.opener = new RecordOpener(
      est.recvKey,
      est.peer.encrypted,
      this.onPayload,
      est.peer.version,
    );
    conn.setHandlers({
      data: (chunk) => this.onData(chunk),
      drain: () => this.handlers.drain(),
      close: (err) => this.finish(err),
    });
    // Record bytes that arrived in the same chunk as the end of the handshake.
    const rest = est.rest;
    if (rest && rest.length > 0) queueMicrotask(() => this.onData(rest));
  }

  get remote(): string {
    return this.conn.remote;
  }

  setHandlers(h: LinkHandlers): void {
    this.handlers = h;
  }

  /**
   * Writes one batch of frames as a record, sealed in place: `buf` holds HEADROOM free bytes,
   * the frames, then TAILROOM free bytes. A batch larger than one record is cut into several.
   * False means wait for `drain`.
   */
  writeBatch(buf: Buffer): boolean {
    if (this.closed) return false;
    if (buf.length - RECORD_HEADER - RECORD_TAG <= RECORD_MAX)
      return this.conn.write(this.sealer.sealInPlace(buf));
    return this.write(buf.subarray(RECORD_HEADER, buf.length - RECORD_TAG));
  }

  /**
   * Writes bytes of the frame stream (borrowed: not copied when authenticating only, so they
   * must not change until written). False means wait for `drain`.
   */
  write(data: Uint8Array): boolean {
    if (this.closed) return false;
    let ok = true;
    for (const piece of this.sealer.seal(data)) ok = this.conn.write(piece) && ok;
    return ok;
  }

  /** Flushes and closes. */
  end(): void {
    if (this.closed) return;
    this.conn.end();
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    // Report why first: a connection may call its close handler synchronously from destroy().
    this.finish(err);
    this.conn.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(chunk: Uint8Array): void {
    if (this.closed) return;
    try {
      this.opener.push(chunk);
    } catch (err) {
      // A handler's own exception is not a framing error: let it propagate as it always did.
      if (this.inHandler) {
        this.inHandler = false;
        throw err;
      }
      this.destroy(err as Error);
    }
  }

  /** A verified piece of the frame stream. */
  private readonly onPayload = (piece: Buffer): void => {
    if (this.closed) return;
    this.decoder.each(piece, this.onFrame);
  };

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

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.decoder.reset();
    this.handlers.close(err);
  }

  /** Dials side: sends HELLO, checks the server's proof, answers with ours, waits for WELCOME. */
  static client(conn: RawConnection, channel: ChannelName, opts: LinkOptions): Promise<Link> {
    const key = hmacKey(opts.secret);
    const myNonce = nonce();
    const versions = opts.versions ?? OUR_VERSIONS;
    const helloBody = encode(helloMessage(opts.self, channel, myNonce, opts.encrypt, versions));
    let stage: 'challenge' | 'welcome' = 'challenge';
    let server: PeerHello | undefined;
    let keys: ReturnType<typeof deriveKeys> | undefined;
    return runHandshake(
      conn,
      opts,
      (msg, _body, reply, fail, done) => {
        const remoteErr = parseError(msg);
        if (remoteErr) return fail(remoteErr.code, `peer refused: ${remoteErr.message}`, false);
        if (stage === 'challenge') {
          const [type, chBody, sProof] = msg;
          if (type !== MSG.CHALLENGE || !(chBody instanceof Uint8Array))
            return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected CHALLENGE', true);
          const ch = parseChallengeBody(chBody);
          if (!ch) return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'malformed CHALLENGE', true);
          const transcript = { hello: helloBody, challenge: chBody };
          if (!proofsEqual(sProof, serverProof(key, transcript))) {
            return fail('FND_ERR_HANDSHAKE_SECRET', secretMismatch(opts.self.name, ch.name), true);
          }
          if (ch.version < versions[0] || ch.version > versions[1]) {
            return fail(
              'FND_ERR_HANDSHAKE_VERSION',
              `peer chose protocol ${ch.version}, this node speaks ${versions[0]}-${versions[1]}`,
              true,
            );
          }
          server = {
            name: ch.name,
            incarnation: ch.incarnation,
            address: ch.address,
            channel,
            version: ch.version,
            encrypted: ch.encrypt,
          };
          keys = deriveKeys(key, transcript, myNonce, ch.nonce);
          stage = 'welcome';
          reply([MSG.AUTH, clientProof(key, transcript)]);
          return;
        }
        if (msg[0] !== MSG.WELCOME || !server || !keys)
          return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected WELCOME', true);
        done({
          peer: server,
          sendKey: keys.c2s,
          recvKey: keys.s2c,
          // Nothing but records we never act on flows this way; keep what may be buffered small.
          maxFrameSize: HANDSHAKE_MAX_FRAME,
          rest: undefined,
        });
      },
      () => conn.write(encodeFrame(helloBody)),
    );
  }

  /** Accepting side: validates HELLO, proves the secret, checks the client's proof, sends WELCOME. */
  static server(
    conn: RawConnection,
    opts: LinkOptions,
    accept: (hello: PeerHello) => { code: ErrorCode; message: string } | undefined,
  ): Promise<Link> {
    const key = hmacKey(opts.secret);
    const myNonce = nonce();
    let hello: Hello | undefined;
    let peer: PeerHello | undefined;
    let transcript: { hello: Uint8Array; challenge: Uint8Array } | undefined;
    return runHandshake(conn, opts, (msg, body, reply, fail, done) => {
      const remoteErr = parseError(msg);
      if (remoteErr) return fail(remoteErr.code, `peer refused: ${remoteErr.message}`, false);
      if (!hello) {
        const ours = opts.versions ?? OUR_VERSIONS;
        // Read the version range first: an older or newer HELLO may not parse as ours, and the
        // peer should learn it is a version mismatch, not a protocol error.
        if (looksLikeHello(msg) && typeof msg[2] === 'number' && typeof msg[3] === 'number') {
          if (negotiateVersion([msg[2], msg[3]], ours) === undefined) {
            return fail(
              'FND_ERR_HANDSHAKE_VERSION',
              `peer speaks protocol ${msg[2]}-${msg[3]}, this node ${ours[0]}-${ours[1]}`,
              true,
            );
          }
        }
        hello = parseHello(msg);
        if (!hello) return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected a Foundation HELLO', true);
        if (hello.cluster !== opts.self.cluster) {
          // Say which cluster the peer asked for, never which one this node is in: the reply
          // goes to an unauthenticated peer.
          return fail(
            'FND_ERR_HANDSHAKE_CLUSTER',
            `node ${hello.name} asked for cluster "${hello.cluster}", which this node is not in`,
            true,
          );
        }
        const version = negotiateVersion(hello.versions, ours)!;
        if (hello.name === opts.self.name) {
          return fail(
            'FND_ERR_HANDSHAKE_DUPLICATE_NAME',
            `node name "${hello.name}" is this node's own name`,
            true,
          );
        }
        const encrypt = hello.encrypt || opts.encrypt;
        peer = {
          name: hello.name,
          incarnation: hello.incarnation,
          address: hello.address,
          channel: hello.channel,
          version,
          encrypted: encrypt,
        };
        const chBody = challengeBody({
          version,
          name: opts.self.name,
          incarnation: opts.self.incarnation,
          nonce: myNonce,
          address: opts.self.address,
          encrypt,
        });
        // The HELLO body is a slice of a received chunk: copy it before it is kept.
        transcript = { hello: Buffer.from(body), challenge: chBody };
        reply([MSG.CHALLENGE, chBody, serverProof(key, transcript)]);
        return;
      }
      if (msg[0] !== MSG.AUTH || !peer || !transcript)
        return fail('FND_ERR_HANDSHAKE_PROTOCOL', 'expected AUTH', true);
      if (!proofsEqual(msg[1], clientProof(key, transcript))) {
        return fail('FND_ERR_HANDSHAKE_SECRET', secretMismatch(opts.self.name, hello.name), true);
      }
      const refused = accept(peer);
      if (refused) return fail(refused.code, refused.message, true);
      reply([MSG.WELCOME]);
      const keys = deriveKeys(key, transcript, hello.nonce, myNonce);
      done({
        peer,
        sendKey: keys.s2c,
        recvKey: keys.c2s,
        maxFrameSize: opts.maxFrameSize(peer.channel),
        rest: undefined,
      });
    });
  }

  /** @internal used by runHandshake only. */
  static establish(conn: RawConnection, est: Established, budget?: InboundBudget): Link {
    return new Link(conn, est, budget);
  }
}

type Step = (
  msg: unknown[],
  /** The frame body `msg` was decoded from (a slice of the received chunk). */
  body: Buffer,
  reply: (m: unknown[]) => void,
  fail: (code: ErrorCode, message: string, tellPeer: boolean) => void,
  done: (est: Established) => void,
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
    let received = 0;
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
        received += chunk.length;
        let est: Established | undefined;
        let consumed: number;
        try {
          consumed = decoder.each(chunk, (src, start, end) => {
            const body = src.subarray(start, end);
            let msg: unknown[];
            try {
              msg = decodeMessage(body);
            } catch {
              fail('FND_ERR_HANDSHAKE_PROTOCOL', 'undecodable handshake frame', true);
              return false;
            }
            step(msg, body, reply, fail, (e) => {
              est = e;
            });
            return !settled && !est;
          });
        } catch (err) {
          const e = err as FoundationError;
          return fail(e.code ?? 'FND_ERR_HANDSHAKE_PROTOCOL', `handshake: ${e.message}`, false);
        }
        if (!est || settled) return;
        if (decoder.inFrame) {
          return fail(
            'FND_ERR_HANDSHAKE_PROTOCOL',
            'data mixed into the last handshake frame',
            true,
          );
        }
        settled = true;
        timer.cancel();
        const rest = consumed < chunk.length ? Buffer.from(chunk.subarray(consumed)) : undefined;
        resolve(Link.establish(conn, { ...est, rest }, opts.budget));
      },
      drain() {},
      close(err) {
        if (settled) return;
        settled = true;
        timer.cancel();
        // A peer that sent part of a frame and hung up is not speaking our protocol; one that
        // closed between frames (or before saying anything) stopped, crashed or refused silently.
        const cut = decoder.inFrame;
        const why = (err as NodeJS.ErrnoException | undefined)?.code ?? err?.message;
        reject(
          new FoundationError(
            cut ? 'FND_ERR_HANDSHAKE_PROTOCOL' : 'FND_ERR_HANDSHAKE_CLOSED',
            cut
              ? `connection ${conn.remote} closed in the middle of a handshake frame`
              : `connection ${conn.remote} closed during the handshake${why ? ` (${why})` : ''}${received === 0 ? ' before the peer sent anything' : ''}`,
            { remote: conn.remote },
            { cause: err },
          ),
        );
      },
    });
    begin?.();
  });
}
