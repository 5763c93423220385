// Raw connections for protocol tests: a RawConnection over a plain net.Socket that the test keeps
// its hands on (to pause reading, say), a recorder of what a raw connection receives, and a
// listener on the in-memory network that hands accepted connections to the test.
import type net from 'node:net';
import type { InMemoryNetwork } from '../../src/transport/memory.js';
import type { Address, RawConnection, Transport } from '../../src/transport/types.js';

/** Wraps a socket the test owns as a RawConnection (no batching, no keep-alive: just bytes). */
export function socketConnection(socket: net.Socket): RawConnection {
  let handlers: Parameters<RawConnection['setHandlers']>[0] | undefined;
  const early: Buffer[] = [];
  let closed = false;
  let closeErr: Error | undefined;
  socket.on('data', (c: Buffer) => (handlers ? handlers.data(c) : early.push(c)));
  socket.on('drain', () => handlers?.drain());
  socket.on('error', (e) => {
    closeErr = e;
  });
  socket.on('close', () => {
    closed = true;
    handlers?.close(closeErr);
  });
  return {
    remote: `${socket.remoteAddress}:${socket.remotePort}`,
    setHandlers(h) {
      handlers = h;
      for (const c of early.splice(0)) h.data(c);
      if (closed) h.close(closeErr);
    },
    write: (d) => !socket.destroyed && socket.write(d),
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  };
}

/** What a raw connection has received, and whether it was closed. */
export interface Recorder {
  bytes: Buffer[];
  closed: boolean;
  readonly received: Buffer;
}

export function record(conn: RawConnection): Recorder {
  const r = {
    bytes: [] as Buffer[],
    closed: false,
    get received() {
      return Buffer.concat(r.bytes);
    },
  };
  conn.setHandlers({
    data: (c) => r.bytes.push(Buffer.from(c)),
    drain: () => {},
    close: () => {
      r.closed = true;
    },
  });
  return r;
}

export interface MemListener {
  transport: Transport;
  address: Address;
  /** Connections accepted so far, in order. */
  accepted: RawConnection[];
}

/** Listens on `net` and collects accepted connections (or hands each to `onConnection`). */
export async function memListen(
  net: InMemoryNetwork,
  onConnection?: (conn: RawConnection) => void,
): Promise<MemListener> {
  const transport = net.transport();
  const accepted: RawConnection[] = [];
  const address = await transport.listen({ host: '127.0.0.1', port: 0 }, (c) => {
    accepted.push(c);
    onConnection?.(c);
  });
  return { transport, address, accepted };
}
