// The Transport seam: byte streams between addresses. TCP (node:net / node:tls) and the in-memory
// network implement it; everything above (handshake, framing, channels) is shared code, so tests
// on the in-memory network exercise the same handshake and framing as production.
import type { FoundationError } from '../errors.js';
import type { Admission, AdmissionTicket } from './admission.js';

export interface Address {
  host: string;
  port: number;
}

export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Parses `host:port` or `[v6]:port`; returns undefined when it is not one. */
export function parseAddress(s: string): Address | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

export interface ConnectionHandlers {
  /** A chunk of bytes arrived; chunk boundaries mean nothing. Never called concurrently. */
  data(chunk: Uint8Array): void;
  /** The write buffer drained after `write` returned false. */
  drain(): void;
  /** The connection is gone (either side, or an error); called once. */
  close(err?: Error): void;
}

/** One bidirectional byte stream. */
export interface RawConnection {
  /** Human-readable remote end, for logs. */
  readonly remote: string;
  /** Where an accepted connection comes from (IP address, no port), for per-source limits. */
  readonly source?: string;
  /**
   * The admission slot the transport took when it accepted this connection (TCP does, before
   * reading a byte); the acceptor releases it once the handshake settled.
   */
  readonly ticket?: AdmissionTicket;
  /** Installs the callbacks; data that arrived before is delivered right after. */
  setHandlers(h: ConnectionHandlers): void;
  /** Queues bytes; false means the caller should wait for `drain` before writing more. */
  write(data: Uint8Array): boolean;
  /** Flushes what was written, then closes. */
  end(): void;
  /** Closes at once, dropping anything unsent. */
  destroy(): void;
}

/** What an acceptor lends the transport for the time before a connection is handed over. */
export interface ListenHooks {
  /** Limits on pending connections; a transport that can should apply them on accept. */
  admission?: Admission;
  /**
   * A connection was refused below the handshake (e.g. TLS: unknown CA, no client certificate),
   * with a coded error and the remote `host:port`. Must not block; called once per connection.
   */
  refused?(err: FoundationError, remote: string): void;
}

export interface Transport {
  /** Starts accepting connections; resolves with the bound address (port 0 picks one). */
  listen(
    address: Address,
    onConnection: (conn: RawConnection) => void,
    hooks?: ListenHooks,
  ): Promise<Address>;
  /**
   * Opens a connection; rejects on refusal or after `timeoutMs`. A refusal the transport can
   * explain (a TLS certificate problem) rejects with a coded FoundationError.
   */
  connect(address: Address, timeoutMs: number): Promise<RawConnection>;
  /** Stops listening and destroys every connection it made or accepted. */
  close(): Promise<void>;
  /**
   * True when connections are kernel sockets, so a process waiting for one sleeps in epoll and
   * busy polling (`busyPollUs`) saves its wake-up. Without it a node never busy-polls.
   */
  readonly kernelSockets?: boolean;
}
