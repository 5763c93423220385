// A forged mDNS response for the discovery-limit tests: one packet announcing `count` instances
// of a cluster, all aimed at one host on consecutive ports (the shape of the amplification attack:
// one packet, hundreds of dial targets). Not a test file; imported by the tests that need it.
import dnsPacket, { type Answer } from 'dns-packet';
import { DEFAULT_SERVICE_TYPE } from '../../src/discovery/strategies/mdns.js';

export const FORGED_FIRST_PORT = 20_000;

export function forgedMdnsResponse(count: number, victim: string, cluster: string): Buffer {
  const answers: Answer[] = [];
  for (let i = 0; i < count; i++) {
    const inst = `f${i}.${DEFAULT_SERVICE_TYPE}`;
    answers.push(
      { name: DEFAULT_SERVICE_TYPE, type: 'PTR', ttl: 4500, data: inst },
      {
        name: inst,
        type: 'SRV',
        ttl: 4500,
        data: { port: FORGED_FIRST_PORT + i, target: victim },
      },
      {
        name: inst,
        type: 'TXT',
        ttl: 4500,
        data: [`cluster=${cluster}`, `node=f${i}`, 'proto=1'],
      },
    );
  }
  return dnsPacket.encode({ type: 'response', id: 0, flags: 0x8400, answers });
}
