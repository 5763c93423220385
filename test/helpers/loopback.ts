// Test helpers for strategies that run nodes on several loopback addresses and inspect logs.
import net from 'node:net';
import { pino } from 'pino';
import type { Logger } from '../../src/util/log.js';

/** A port free on every one of `hosts`, so nodes on different loopback addresses can share it. */
export async function sharedPort(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: net.Server[] = [];
    let port = 0;
    try {
      for (const host of hosts) {
        const s = net.createServer();
        servers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(port, host, resolve);
        });
        port = (s.address() as net.AddressInfo).port;
      }
      return port;
    } catch {
      // taken on one of the hosts: try another
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

/** A real pino logger that keeps every line it writes. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { logger, lines };
}
