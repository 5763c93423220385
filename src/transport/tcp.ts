// The production Transport: node:net, or TLS 1.3 with mutual certificate authentication when
// `tls` options are given. Sockets are accepted as plain TCP so that admission (pending limits in
// total and per source, a first-byte deadline) runs before any TLS work, then wrapped in TLS here.
// TLS refusals are classified into coded errors on both sides. Nagle is off (we batch writes).
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { type ErrorCode, FoundationError } from '../errors.js';
import { type AdmissionTicket, DEFAULT_FIRST_BYTE_TIMEOUT_MS } from './admission.js';
import {
  type Address,
  type ConnectionHandlers,
  formatAddress,
  type ListenHooks,
  type RawConnection,
  type Transport,
} from './types.js';

export interface TlsOptions {
  /** PEM private key of this node. */
  key: string | Buffer;
  /** PEM certificate of this node. */
  cert: string | Buffer;
  /** PEM CA(s) that peers' certificates must chain to (mutual authentication). */
  ca: string | Buffer | Array<string | Buffer>;
  /** Check the peer's certificate names its host (default false: cluster certs rarely carry IPs). */
  checkServerIdentity?: boolean;
}

export interface TcpTransportOptions {
  /** Mutual TLS (TLS 1.3 only) on every connection; off when absent. */
  tls?: TlsOptions;
  /** Deadline for the TLS handshake of an accepted socket, in ms. Default 5000 (Node's is 120 s). */
  tlsHandshakeTimeoutMs?: number;
  /** An accepted socket that sends nothing for this long is dropped, in ms. Default 2000. */
  firstByteTimeoutMs?: number;
}

class SocketConnection implements RawConnection {
  private handlers: ConnectionHandlers | undefined;
  private early: Buffer[] = [];
  private closed = false;
  private closeErr: Error | undefined;
  /** Destroys the socket if an `end` did not close it in time. */
  private endTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: net.Socket,
    readonly remote: string,
    readonly source?: string,
    readonly ticket?: AdmissionTicket,
  ) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => {
      if (this.handlers) this.handlers.data(chunk);
      else this.early.push(chunk);
    });
    socket.on('drain', () => this.handlers?.drain());
    socket.on('error', (err) => {
      this.closeErr = err;
    });
    socket.on('close', () => {
      this.closed = true;
      if (this.endTimer) clearTimeout(this.endTimer);
      this.endTimer = undefined;
      this.handlers?.close(this.closeErr);
    });
  }

  setHandlers(h: ConnectionHandlers): void {
    this.handlers = h;
    const early = this.early;
    this.early = [];
    for (const c of early) h.data(c);
    if (this.closed) h.close(this.closeErr);
  }

  write(data: Uint8Array): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(data);
  }

  end(): void {
    this.socket.end();
    // A peer that never reads must not hold the socket open forever.
    if (this.closed || this.endTimer) return;
    this.endTimer = setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A TLS refusal, before it becomes a FoundationError. */
interface Refusal {
  code: ErrorCode;
  detail: string;
  /** Who refused: this node ('local') or the other side ('peer'). */
  by: 'local' | 'peer';
  /** The TLS / socket error code behind it. */
  reason: string;
  /** True when the other side gave no reason and this one is deduced (see docs/security.md). */
  inferred?: boolean;
}

/** OpenSSL verification results that mean "not signed by a CA we trust". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'INVALID_CA',
]);
/** Alerts a peer sends when it does not accept our certificate. */
const PEER_UNTRUSTED = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
]);

const codeOf = (err: Error): string => (err as NodeJS.ErrnoException).code ?? err.message;
/**
 * Node's TLS errors: OpenSSL's (ERR_SSL_*), Node's own TLS checks (ERR_TLS_*) and certificate
 * verification results (CERT_HAS_EXPIRED, ...); not system errors (ECONNRESET, ETIMEDOUT, ...).
 */
const isTlsError = (code: string): boolean =>
  code.startsWith('ERR_SSL_') ||
  code.startsWith('ERR_TLS_') ||
  (/^[A-Z][A-Z0-9_]+$/.test(code) && !/^E[A-Z0-9]+$/.test(code));

/**
 * What a TLS error seen by either side means. Errors that are not about TLS (ECONNRESET, a
 * refused connection) return undefined: the caller handles them as plain network failures.
 */
function classify(err: Error, side: 'dialler' | 'acceptor'): Refusal | undefined {
  const code = codeOf(err);
  const mine = side === 'dialler' ? "the peer's certificate" : "the dialler's certificate";
  if (UNTRUSTED.has(code))
    return {
      code: 'FND_ERR_TLS_UNKNOWN_CA',
      detail: `${mine} is not signed by a CA in this node's tls.ca (${code})`,
      by: 'local',
      reason: code,
    };
  if (PEER_UNTRUSTED.has(code))
    return {
      code: 'FND_ERR_TLS_UNKNOWN_CA',
      detail: `the peer refused this node's certificate (${code})`,
      by: 'peer',
      reason: code,
    };
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE')
    return {
      code: 'FND_ERR_TLS_NO_CERT',
      detail: 'the dialler presented no client certificate',
      by: 'local',
      reason: code,
    };
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')
    return {
      code: 'FND_ERR_TLS_NO_CERT',
      detail: 'the peer requires a client certificate and this node presented none',
      by: 'peer',
      reason: code,
    };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return {
      code: 'FND_ERR_TLS_IDENTITY',
      detail: `${mine} does not name the address dialled (${err.message})`,
      by: 'local',
      reason: code,
    };
  if (!isTlsError(code)) return undefined;
  return {
    code: 'FND_ERR_TLS_HANDSHAKE',
    detail: `TLS handshake failed: ${code}`,
    by: code.startsWith('ERR_SSL_') && code.includes('_ALERT_') ? 'peer' : 'local',
    reason: code,
  };
}

function refusalError(r: Refusal, remote: string, cause?: Error): FoundationError {
  const data: Record<string, unknown> = { remote, by: r.by, reason: r.reason };
  if (r.inferred) data.inferred = true;
  return new FoundationError(r.code, `TLS with ${remote}: ${r.detail}`, data, { cause });
}

/** Strips the IPv4-mapped prefix so `::ffff:10.0.0.1` and `10.0.0.1` are one source. */
const plainIp = (ip: string): string => (ip.startsWith('::ffff:') ? ip.slice(7) : ip);

/** Bookkeeping of one accepted socket until it is handed over or refused. */
interface Accepted {
  remote: string;
  ip: string;
  localIp: string;
  ticket: AdmissionTicket | undefined;
  /** Dropped by the first-byte deadline: what TLS says afterwards is not a refusal. */
  idle: boolean;
}

/**
 * The raw socket under a TLSSocket made by `tls.Server` from an injected connection. Node keeps it
 * as `_parent` (not documented, present since the first TLSSocket); it is the only link from a
 * `tlsClientError` back to the socket we accepted once the TLS socket has been destroyed.
 */
const rawOf = (s: tls.TLSSocket): net.Socket | undefined =>
  (s as unknown as { _parent?: net.Socket })._parent;

export class TcpTransport implements Transport {
  readonly kernelSockets = true;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly tlsOptions: TlsOptions | undefined;
  private readonly tlsHandshakeTimeoutMs: number;
  private readonly firstByteTimeoutMs: number;
  private ownCert: X509Certificate | undefined;

  constructor(opts: TcpTransportOptions = {}) {
    this.tlsOptions = opts.tls;
    this.tlsHandshakeTimeoutMs = opts.tlsHandshakeTimeoutMs ?? 5000;
    this.firstByteTimeoutMs = opts.firstByteTimeoutMs ?? DEFAULT_FIRST_BYTE_TIMEOUT_MS;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  listen(
    address: Address,
    onConnection: (conn: RawConnection) => void,
    hooks: ListenHooks = {},
  ): Promise<Address> {
    const t = this.tlsOptions;
    const accepted = new WeakMap<net.Socket, Accepted>();
    const refuse = (err: FoundationError, remote: string) => hooks.refused?.(err, remote);
    // The TLS server never listens: it is handed sockets that passed admission. With
    // rejectUnauthorized, OpenSSL sends the "certificate required" alert to a dialler without a
    // certificate, and Node closes on one from an unknown CA before its session tickets go out,
    // which is how the dialler tells refusal from acceptance (see connect()).
    const tlsServer = t
      ? tls.createServer({
          key: t.key,
          cert: t.cert,
          ca: t.ca,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.3',
          handshakeTimeout: this.tlsHandshakeTimeoutMs,
        })
      : undefined;
    tlsServer?.on('secureConnection', (s: tls.TLSSocket) => {
      const a = accepted.get(rawOf(s) as net.Socket);
      if (!a || !s.authorized) {
        s.destroy();
        return;
      }
      onConnection(new SocketConnection(s, a.remote, a.ip, a.ticket));
    });
    tlsServer?.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
      const raw = rawOf(s);
      const a = raw && accepted.get(raw);
      const remote = a?.remote ?? `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
      // A socket that never sent a byte was not refused for its certificate: it just went away
      // (or the first-byte deadline dropped it).
      if (a?.idle || raw?.bytesRead === 0) return;
      // Node refused the certificate after the handshake: it reports a hang-up and keeps the
      // verification result in authorizationError.
      const verdict = s.authorizationError ? String(s.authorizationError) : undefined;
      const r =
        (verdict
          ? (classify(Object.assign(new Error(verdict), { code: verdict }), 'acceptor') ?? {
              code: 'FND_ERR_TLS_HANDSHAKE' as const,
              detail: `the dialler's certificate was refused (${verdict})`,
              by: 'local' as const,
              reason: verdict,
            })
          : classify(err, 'acceptor')) ?? this.peerBrokeOff(err, a?.localIp);
      refuse(refusalError(r, remote, err), remote);
    });

    const server = net.createServer((raw) => {
      const ip = raw.remoteAddress;
      if (!ip || this.server !== server) {
        raw.destroy();
        return;
      }
      const source = plainIp(ip);
      const remote = formatAddress({ host: source, port: raw.remotePort ?? 0 });
      // Admission first: a refused socket costs no TLS work and is closed at once.
      const ticket = hooks.admission?.admit(source);
      if (hooks.admission && !ticket) {
        raw.destroy();
        return;
      }
      this.track(raw);
      raw.on('error', () => {}); // the owner (TLS socket or SocketConnection) reports errors
      const a: Accepted = {
        remote,
        ip: source,
        localIp: plainIp(raw.localAddress ?? ''),
        ticket,
        idle: false,
      };
      const firstByte = setTimeout(() => {
        if (raw.bytesRead > 0) return;
        a.idle = true;
        raw.destroy();
      }, this.firstByteTimeoutMs);
      raw.once('close', () => {
        clearTimeout(firstByte);
        ticket?.release();
      });
      if (tlsServer) {
        accepted.set(raw, a);
        tlsServer.emit('connection', raw);
        return;
      }
      // Plain TCP: handed over on its first byte, so a silent socket never reaches the handshake.
      const conn = new SocketConnection(raw, remote, source, ticket);
      raw.once('data', () => {
        clearTimeout(firstByte);
        onConnection(conn);
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new FoundationError(
            'FND_ERR_LISTEN',
            `cannot listen on ${formatAddress(address)}: ${err.code ?? err.message}`,
            {
              host: address.host,
              port: address.port,
            },
          ),
        ),
      );
      server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
        const a = server.address() as net.AddressInfo;
        resolve({ host: address.host, port: a.port });
      });
    });
  }

  /**
   * The dialler broke off the TLS handshake after this node sent its certificate, without an
   * alert (Node's TLS client checks certificates after the handshake and just closes). The likely
   * reasons are the two checks a dialler makes: the CA, and (when the cluster checks identities)
   * whether our certificate names the address it dialled, which we can test ourselves.
   */
  private peerBrokeOff(err: Error, localIp: string | undefined): Refusal {
    const reason = codeOf(err);
    const t = this.tlsOptions;
    if (t?.checkServerIdentity && localIp) {
      this.ownCert ??= new X509Certificate(t.cert);
      if (this.ownCert.checkIP(localIp) === undefined) {
        return {
          code: 'FND_ERR_TLS_IDENTITY',
          detail: `the dialler broke off the TLS handshake; this node's certificate does not name ${localIp}, the address it dialled`,
          by: 'peer',
          reason,
          inferred: true,
        };
      }
    }
    return {
      code: 'FND_ERR_TLS_UNKNOWN_CA',
      detail:
        "the dialler broke off the TLS handshake after receiving this node's certificate: most likely it does not trust the CA that signed it",
      by: 'peer',
      reason,
      inferred: true,
    };
  }

  connect(address: Address, timeoutMs: number): Promise<RawConnection> {
    const t = this.tlsOptions;
    const remote = formatAddress(address);
    return new Promise((resolve, reject) => {
      const socket = t
        ? tls.connect({
            host: address.host,
            port: address.port,
            key: t.key,
            cert: t.cert,
            ca: t.ca,
            minVersion: 'TLSv1.3',
            rejectUnauthorized: true,
            checkServerIdentity: t.checkServerIdentity ? tls.checkServerIdentity : () => undefined,
          })
        : net.connect({ host: address.host, port: address.port });
      this.track(socket);
      let secured = false;
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve(new SocketConnection(socket, remote));
      };
      const timer = setTimeout(
        () => finish(new Error(`connect timeout after ${timeoutMs} ms`)),
        timeoutMs,
      );
      // TLS 1.3: the server checks our certificate after the client's side of the handshake is
      // done and, when it refuses it, closes without an alert; acceptance shows as its session
      // tickets. So a close between 'secureConnect' and the first ticket is a refusal.
      const refusedAfterHandshake = (cause?: Error) =>
        refusalError(
          {
            code: 'FND_ERR_TLS_UNKNOWN_CA',
            detail:
              "the peer closed the connection at the end of the TLS handshake without accepting this node's certificate: most likely it is not signed by a CA the peer trusts",
            by: 'peer',
            reason: cause ? codeOf(cause) : 'closed after handshake',
            inferred: true,
          },
          remote,
          cause,
        );
      const onError = (err: Error) => {
        const r = t ? classify(err, 'dialler') : undefined;
        finish(r ? refusalError(r, remote, err) : secured ? refusedAfterHandshake(err) : err);
      };
      const onClose = () =>
        finish(
          secured
            ? refusedAfterHandshake()
            : new Error(`connection to ${remote} closed while connecting`),
        );
      socket.on('error', onError);
      socket.on('close', onClose);
      if (!t) {
        socket.once('connect', () => finish());
        return;
      }
      socket.once('secureConnect', () => {
        secured = true;
      });
      // Not from inside the 'session' callback: OpenSSL is mid-read there, and a write made
      // before it returns corrupts the record stream.
      (socket as tls.TLSSocket).once('session', () => setImmediate(() => finish()));
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
