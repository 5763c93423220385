// The bare-socket baseline of the benches (bench/transport, bench/actors): node:net, a 4-byte
// big-endian length prefix and a msgpackr body [id, payload], one Promise per request, writes
// batched the idiomatic way (cork on the first write of a tick, uncork on process.nextTick: one
// writev per tick) or one socket.write (one syscall) per frame; and the measurement loops
// (pipelined, sequential) every implementation is driven by. One copy, so that every bench compares
// against the same floor.
import net from 'node:net';
import { Packr } from 'msgpackr';

export type Call = (payload: Buffer) => Promise<unknown>;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function frame(value: unknown): Buffer {
  const body = packr.pack(value);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Returns a write function: one syscall per frame, or one writev per tick when `batch`. */
export function writer(sock: net.Socket, batch: boolean): (buf: Buffer) => void {
  if (!batch) return (buf) => void sock.write(buf);
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  return (buf) => {
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    sock.write(buf);
  };
}

/** Minimal length-prefix reader: calls `onFrame` for every complete body. */
export function frameReader(onFrame: (body: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off - 4 < len) break;
      onFrame(buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
  };
}

export async function baselineServer(batch: boolean): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const write = writer(sock, batch);
    sock.on(
      'data',
      frameReader((body) => {
        const [id, payload] = packr.unpack(body) as [number, unknown];
        write(frame([id, payload]));
      }),
    );
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

export async function baselineClient(
  port: number,
  batch: boolean,
): Promise<{ call: Call; close(): void }> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.setNoDelay(true);
  const write = writer(sock, batch);
  const pending = new Map<number, (v: unknown) => void>();
  let nextId = 1;
  sock.on(
    'data',
    frameReader((body) => {
      const [id, payload] = packr.unpack(body) as [number, unknown];
      const resolve = pending.get(id);
      if (resolve) {
        pending.delete(id);
        resolve(payload);
      }
    }),
  );
  const call: Call = (payload) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      write(frame([id, payload]));
    });
  return { call, close: () => sock.destroy() };
}

/** Keeps `depth` calls in flight until `n` completed; per-call latencies in ms. */
export function pipelined(call: Call, payload: Buffer, n: number, depth: number) {
  const lat = new Float64Array(n);
  return new Promise<{ seconds: number; lat: Float64Array }>((resolve, reject) => {
    let sent = 0;
    let done = 0;
    const t0 = performance.now();
    const one = () => {
      const i = sent++;
      const s = performance.now();
      call(payload).then(() => {
        lat[i] = performance.now() - s;
        done++;
        if (sent < n) one();
        else if (done === n) resolve({ seconds: (performance.now() - t0) / 1000, lat });
      }, reject);
    };
    for (let k = 0; k < depth && k < n; k++) one();
  });
}

/** One call at a time, `n` times: per-call latencies in ms. */
export async function sequential(call: Call, payload: Buffer, n: number): Promise<Float64Array> {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await call(payload);
    lat[i] = performance.now() - s;
  }
  return lat;
}

/**
 * `pipelined`, with the CPU time (user + system, µs) this process and the server spent meanwhile;
 * the server's is read through `serverCpuUs` before and after.
 */
export async function pipelinedWithCpu(
  call: Call,
  payload: Buffer,
  n: number,
  depth: number,
  serverCpuUs: () => Promise<number>,
): Promise<{ seconds: number; lat: Float64Array; clientCpuUs: number; serverCpuUs: number }> {
  const server = await serverCpuUs();
  const cpu = process.cpuUsage();
  const p = await pipelined(call, payload, n, depth);
  const used = process.cpuUsage(cpu);
  return {
    ...p,
    clientCpuUs: used.user + used.system,
    serverCpuUs: (await serverCpuUs()) - server,
  };
}
