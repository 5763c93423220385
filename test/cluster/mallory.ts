// A malicious member for attack tests: it has the cluster secret and is built from the library's
// own PeerManager, so it passes the real handshake and sends crafted *messages* (not hand-rolled
// bytes) on the control channel, whatever frame layer lies underneath.
import { encode } from '../../src/transport/codec.js';
import type { Identity } from '../../src/transport/handshake.js';
import { type Address, parseAddress, type Transport } from '../../src/transport/types.js';
import type { Clock } from '../../src/util/clock.js';
import { TEST_SECRET } from '../helpers/nodes.js';
import { testPeerManager } from '../helpers/peers.js';

export interface Mallory {
  name: string;
  address: Address;
  /** Sends one message `[type, ...fields]` to the node `to` (`{ name, address: 'host:port' }`). */
  say(to: { name: string; address: string }, msg: unknown[]): void;
  stop(): Promise<void>;
}

export async function mallory(opts: {
  transport: Transport;
  clock: Clock;
  cluster: string;
  secret?: string;
  name?: string;
  host?: string;
  /** Messages the victims send back (mallory's inbound connections). */
  onMessage?: (from: string, msg: unknown[]) => void;
}): Promise<Mallory> {
  const self: Identity = {
    cluster: opts.cluster,
    name: opts.name ?? 'mallory',
    incarnation: Math.floor(opts.clock.wallNow()),
    address: { host: opts.host ?? '127.0.0.1', port: 0 },
  };
  const pm = testPeerManager(
    opts.transport,
    self,
    {
      secret: opts.secret ?? TEST_SECRET,
      clock: opts.clock,
      maxFrameSize: 16 * 1024 * 1024,
      maxQueueBytes: 64 * 1024 * 1024,
      connectTimeoutMs: 3000,
      backoff: { baseMs: 100, maxMs: 1000 },
    },
    { message: (from, _channel, msg) => opts.onMessage?.(from.name, msg) },
  );
  self.address = await pm.listen({ host: self.address.host, port: 0 });
  return {
    name: self.name,
    address: self.address,
    say(to, msg) {
      const address = parseAddress(to.address);
      if (!address) throw new Error(`bad address ${to.address}`);
      pm.learn(to.name, address, 0);
      pm.send(to.name, 'control', encode(msg));
    },
    stop: () => pm.stop(),
  };
}
