// The in-memory network (exported from `foundation-cluster/testing`): transports whose connections are
// pairs of in-process byte pipes. Deliveries are asynchronous and in order; links can be cut
// (partition), made lossy (drop, seeded so runs repeat) or slow (delay, on the injected clock),
// and a node can be crashed. Handshake, framing and channels above it are the production code.
import { FoundationError } from '../errors.js';
import { type Clock, flushIO, systemClock } from '../util/clock.js';
import {
  type Address,
  type ConnectionHandlers,
  formatAddress,
  type RawConnection,
  type Transport,
} from './types.js';

interface Rule {
  drop: number;
  delayMs: number;
  cut: boolean;
}

/** mulberry32: a tiny seeded PRNG so lossy-link tests are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class MemoryConnection implements RawConnection {
  peer!: MemoryConnection;
  private handlers: ConnectionHandlers | undefined;
  private early: Uint8Array[] = [];
  closed = false;

  constructor(
    private readonly net: InMemoryNetwork,
    readonly owner: string,
    readonly remote: string,
    /** Accepted side: the dialling transport's address, so each in-memory node is its own source. */
    readonly source?: string,
  ) {}

  setHandlers(h: ConnectionHandlers): void {
    this.handlers = h;
    const early = this.early;
    this.early = [];
    for (const c of early) h.data(c);
    if (this.closed) h.close();
  }

  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.handlers) this.handlers.data(chunk);
    else this.early.push(chunk);
  }

  write(data: Uint8Array): boolean {
    if (this.closed) return false;
    // Copy: the writer may reuse its buffer, as a kernel socket would copy too.
    this.net.deliver(this, Buffer.from(data));
    return true;
  }

  end(): void {
    this.net.schedule(this.owner, this.peer.owner, () => this.shut());
  }

  destroy(): void {
    this.shut();
  }

  shut(): void {
    if (!this.closed) {
      this.closed = true;
      this.handlers?.close();
      this.net.forget(this);
    }
    const p = this.peer;
    if (p && !p.closed) this.net.closed(this);
  }
}

class MemoryTransport implements Transport {
  address: string;
  onConnection: ((c: RawConnection) => void) | undefined;
  dead = false;

  constructor(
    private readonly net: InMemoryNetwork,
    id: number,
  ) {
    this.address = `client-${id}`;
  }

  async listen(address: Address, onConnection: (conn: RawConnection) => void): Promise<Address> {
    const bound = { host: address.host, port: address.port || this.net.nextPort() };
    this.address = formatAddress(bound);
    this.onConnection = onConnection;
    this.net.bind(this.address, this);
    return bound;
  }

  connect(address: Address, _timeoutMs: number): Promise<RawConnection> {
    return this.net.connect(this, formatAddress(address));
  }

  async close(): Promise<void> {
    this.net.closeTransport(this);
  }
}

export class InMemoryNetwork {
  private readonly listeners = new Map<string, MemoryTransport>();
  private readonly conns = new Set<MemoryConnection>();
  private readonly rules = new Map<string, Rule>();
  private readonly random: () => number;
  private readonly paused = new Set<string>();
  private held: Array<{ dst: MemoryConnection; chunk: Buffer }> = [];
  /** What a cut holds until `heal`, in order: bytes, or (no chunk) the news that `src` closed. */
  private cutHeld: Array<{ src: MemoryConnection; chunk: Buffer | undefined }> = [];
  private port = 40000;
  private ids = 0;
  private inFlight = 0;
  /** Chunks dropped by faults so far (tests assert faults really happened). */
  dropped = 0;

  constructor(
    readonly clock: Clock = systemClock,
    seed = 1,
  ) {
    this.random = seeded(seed);
  }

  /** A fresh transport attached to this network. */
  transport(): Transport {
    return new MemoryTransport(this, ++this.ids);
  }

  nextPort(): number {
    return ++this.port;
  }

  bind(address: string, t: MemoryTransport): void {
    if (this.listeners.has(address)) {
      throw new FoundationError('FND_ERR_LISTEN', `cannot listen on ${address}: in use`, {
        address,
      });
    }
    this.listeners.set(address, t);
  }

  private rule(a: string, b: string): Rule | undefined {
    return this.rules.get(`${a}|${b}`);
  }

  private setRule(a: string, b: string, patch: Partial<Rule>): void {
    for (const k of [`${a}|${b}`, `${b}|${a}`]) {
      const r = this.rules.get(k) ?? { drop: 0, delayMs: 0, cut: false };
      this.rules.set(k, { ...r, ...patch });
    }
  }

  /**
   * Cuts every link between the two groups of addresses (`host:port`) until `heal`: new
   * connections time out, and bytes on established connections wait, as TCP keeps retransmitting
   * them, and arrive in order after `heal` unless the connection was closed meanwhile; the news
   * of a close (or crash) on one side waits too, and reaches the other side after `heal`. (Losing them
   * would be a fault TCP never shows: a byte stream is delivered whole and in order or not at all;
   * with authenticated records a gap closes the connection, see `drop`.)
   */
  partition(groupA: string[], groupB: string[]): void {
    for (const a of groupA) for (const b of groupB) this.setRule(a, b, { cut: true });
  }

  /** Restores every cut link and removes drop/delay faults; bytes held by a cut go on. */
  heal(): void {
    this.rules.clear();
    const held = this.cutHeld;
    this.cutHeld = [];
    for (const { src, chunk } of held) {
      if (chunk) this.deliver(src, chunk);
      else this.closed(src);
    }
  }

  /**
   * Drops each chunk between a and b with this probability (seeded): bytes vanish from the middle
   * of a stream, which only a hostile middlebox does. Over authenticated links the next record
   * then fails verification and the connection closes.
   */
  drop(a: string, b: string, probability: number): void {
    this.setRule(a, b, { drop: probability });
  }

  /** Delays every chunk between a and b by `ms` on the network's clock. */
  delay(a: string, b: string, ms: number): void {
    this.setRule(a, b, { delayMs: ms });
  }

  /** Simulates a process crash (kill -9): its listener and every connection vanish at once. */
  crash(address: string): void {
    const t = this.listeners.get(address);
    if (t) this.closeTransport(t);
  }

  async connect(from: MemoryTransport, to: string): Promise<RawConnection> {
    await Promise.resolve();
    if (from.dead) throw new Error('transport closed');
    const target = this.listeners.get(to);
    if (!target?.onConnection || target.dead)
      throw Object.assign(new Error(`connect ECONNREFUSED ${to}`), { code: 'ECONNREFUSED' });
    if (this.rule(from.address, to)?.cut)
      throw Object.assign(new Error(`connect ETIMEDOUT ${to} (partitioned)`), {
        code: 'ETIMEDOUT',
      });
    const client = new MemoryConnection(this, from.address, to);
    const server = new MemoryConnection(this, to, from.address, from.address);
    client.peer = server;
    server.peer = client;
    this.conns.add(client);
    this.conns.add(server);
    target.onConnection(server);
    return client;
  }

  /**
   * @internal `src` closed: its peer hears of it (after the bytes `src` sent before). A cut
   * holds the news until `heal`, as it holds bytes: a FIN or a reset cannot cross a partition
   * either.
   */
  closed(src: MemoryConnection): void {
    if (this.rule(src.owner, src.peer.owner)?.cut) {
      this.cutHeld.push({ src, chunk: undefined });
      return;
    }
    const p = src.peer;
    this.schedule(src.owner, p.owner, () => p.shut(), true);
  }

  deliver(src: MemoryConnection, chunk: Buffer): void {
    const r = this.rule(src.owner, src.peer.owner);
    if (r?.cut) {
      this.cutHeld.push({ src, chunk });
      return;
    }
    if (r && r.drop > 0 && this.random() < r.drop) {
      this.dropped++;
      return;
    }
    const dst = src.peer;
    if (this.paused.has(dst.owner)) {
      this.held.push({ dst, chunk });
      return;
    }
    this.schedule(src.owner, dst.owner, () => dst.receive(chunk));
  }

  /**
   * Simulates a stalled process (a blocked event loop): bytes sent to `address` wait, as they would
   * in the kernel's socket buffers, until `resume`. Stall the node's own clock separately.
   */
  pause(address: string): void {
    this.paused.add(address);
  }

  /** Ends a `pause`: everything held is delivered in order on the next I/O turn. */
  resume(address: string): void {
    this.paused.delete(address);
    const mine = this.held.filter((h) => h.dst.owner === address);
    this.held = this.held.filter((h) => h.dst.owner !== address);
    for (const { dst, chunk } of mine)
      this.schedule(dst.peer.owner, dst.owner, () => dst.receive(chunk));
  }

  /** Runs `fn` after the link's delay (or on the next I/O turn), counting it as in flight. */
  schedule(from: string, to: string, fn: () => void, ignoreCut = false): void {
    const r = this.rule(from, to);
    if (r?.cut && !ignoreCut) return;
    if (r && r.delayMs > 0) {
      this.clock.setTimeout(fn, r.delayMs);
      return;
    }
    this.inFlight++;
    setImmediate(() => {
      this.inFlight--;
      fn();
    });
  }

  forget(c: MemoryConnection): void {
    this.conns.delete(c);
  }

  closeTransport(t: MemoryTransport): void {
    t.dead = true;
    if (this.listeners.get(t.address) === t) this.listeners.delete(t.address);
    for (const c of [...this.conns]) if (c.owner === t.address) c.destroy();
  }

  /** Resolves once nothing is in flight (delayed deliveries wait for the clock and do not count). */
  async settle(maxRounds = 200): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      await flushIO(2);
      if (this.inFlight === 0) {
        await flushIO(2);
        if (this.inFlight === 0) return;
      }
    }
  }
}
