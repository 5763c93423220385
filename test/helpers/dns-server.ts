// A real authoritative DNS server on 127.0.0.1 (UDP, ephemeral port) built on dns-packet, whose
// records a test changes while it runs. Names it does not know get NXDOMAIN; known names without
// records of the asked type get an empty NOERROR answer; `down` makes it drop every query (the
// client sees timeouts) until set back.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface SrvTarget {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

interface Records {
  A: string[];
  AAAA: string[];
  SRV: SrvTarget[];
}

const RCODE_NXDOMAIN = 3;
const TTL = 1;

const norm = (name: string) => name.toLowerCase().replace(/\.$/, '');

export class TestDnsServer {
  /** Queries answered or dropped so far, as `TYPE name` (lower case). */
  readonly queries: string[] = [];
  /** When true, queries are read and dropped: clients time out. */
  down = false;
  private readonly zone = new Map<string, Records>();

  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
  ) {}

  static async start(): Promise<TestDnsServer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const server = new TestDnsServer(socket, socket.address().port);
    socket.on('message', (msg, rinfo) => server.answer(msg, rinfo));
    socket.on('error', () => {});
    return server;
  }

  /** `ip:port` to pass as a resolver. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private records(name: string): Records {
    const key = norm(name);
    let r = this.zone.get(key);
    if (!r) {
      r = { A: [], AAAA: [], SRV: [] };
      this.zone.set(key, r);
    }
    return r;
  }

  setA(name: string, ips: string[]): void {
    this.records(name).A = [...ips];
  }

  setAAAA(name: string, ips: string[]): void {
    this.records(name).AAAA = [...ips];
  }

  setSRV(name: string, targets: SrvTarget[]): void {
    this.records(name).SRV = targets.map((t) => ({ ...t }));
  }

  /** Removes every record of `name`: queries for it get NXDOMAIN. */
  remove(name: string): void {
    this.zone.delete(norm(name));
  }

  private answer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    this.queries.push(`${question.type} ${norm(question.name)}`);
    if (this.down) return;
    const r = this.zone.get(norm(question.name));
    const answers: dnsPacket.Answer[] = [];
    if (r && question.type === 'A')
      for (const ip of r.A) answers.push({ type: 'A', name: question.name, ttl: TTL, data: ip });
    if (r && question.type === 'AAAA')
      for (const ip of r.AAAA)
        answers.push({ type: 'AAAA', name: question.name, ttl: TTL, data: ip });
    if (r && question.type === 'SRV')
      for (const s of r.SRV)
        answers.push({
          type: 'SRV',
          name: question.name,
          ttl: TTL,
          data: {
            target: s.target,
            port: s.port,
            priority: s.priority ?? 10,
            weight: s.weight ?? 50,
          },
        });
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id ?? 0,
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER |
        ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
        (r ? 0 : RCODE_NXDOMAIN),
      questions: [question],
      answers,
    });
    this.socket.send(reply, rinfo.port, rinfo.address);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
