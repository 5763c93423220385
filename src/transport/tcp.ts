// The production Transport: node:net, or node:tls with mutual certificate authentication when
// `tls` options are given. Nagle is off (we batch writes ourselves) and keep-alive is on.
import net from 'node:net';
import tls from 'node:tls';
import { FoundationError } from '../errors.js';
import {
  type Address,
  type ConnectionHandlers,
  formatAddress,
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

class SocketConnection implements RawConnection {
  readonly remote: string;
  private handlers: ConnectionHandlers | undefined;
  private early: Buffer[] = [];
  private closed = false;
  private closeErr: Error | undefined;

  constructor(private readonly socket: net.Socket) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
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
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export class TcpTransport implements Transport {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  /**
   * @param onTlsError told about a TLS handshake a client failed (e.g. a certificate from another
   *   CA); the connection is dropped either way.
   */
  constructor(
    private readonly tlsOptions?: TlsOptions,
    private readonly onTlsError: (err: Error, remote: string) => void = () => {},
    /** TLS handshake deadline in ms (Node's default is 120 s; an unauthenticated socket should not live that long). */
    private readonly tlsHandshakeTimeoutMs = 5000,
  ) {}

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  listen(address: Address, onConnection: (conn: RawConnection) => void): Promise<Address> {
    const accept = (socket: net.Socket) => {
      this.track(socket);
      onConnection(new SocketConnection(socket));
    };
    const t = this.tlsOptions;
    const server = t
      ? tls.createServer(
          {
            key: t.key,
            cert: t.cert,
            ca: t.ca,
            requestCert: true,
            rejectUnauthorized: true,
            handshakeTimeout: this.tlsHandshakeTimeoutMs,
          },
          accept,
        )
      : net.createServer(accept);
    // TLS failures (bad client certificate) are per-connection; they must not reach 'error'.
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
      this.onTlsError(err, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`),
    );
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

  connect(address: Address, timeoutMs: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const t = this.tlsOptions;
      const socket = t
        ? tls.connect({
            host: address.host,
            port: address.port,
            key: t.key,
            cert: t.cert,
            ca: t.ca,
            rejectUnauthorized: true,
            checkServerIdentity: t.checkServerIdentity ? tls.checkServerIdentity : () => undefined,
          })
        : net.connect({ host: address.host, port: address.port });
      this.track(socket);
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connect timeout after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
      socket.once(t ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new SocketConnection(socket));
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
