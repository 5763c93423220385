// Opt-in HTTP endpoints for orchestrators and scrapers: /health (liveness), /ready (started,
// enough members, discovery not failing), /metrics (Prometheus text) and /cluster (JSON). Read-only
// and unauthenticated, so they bind to loopback unless told otherwise, under the node's bind rule.
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FoundationError } from '../errors.js';
import { isLoopback } from '../options.js';
import type { Clock } from '../util/clock.js';
import { CHANNELS } from '../util/diagnostics.js';
import type { HttpOptions } from './options.js';

/** What the endpoints read from the node, on each request. */
export interface HttpView {
  name: string;
  clock: Clock;
  /** Per cluster: its name and members. */
  clusters(): Array<{
    name: string;
    members: Array<{ name: string; address: string; status: string; incarnation: number }>;
  }>;
  /** Whether start() finished and stop() has not begun. */
  running(): boolean;
  metrics(): Promise<string>;
  metricsContentType: string;
  services(): Record<string, Array<{ name: string; healthy: boolean }>>;
  registrySize(): number;
}

/** A discovery poll error this recent makes /ready fail: the node cannot find its peers now. */
const DISCOVERY_FAILING_MS = 30_000;

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  type = 'application/json',
): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export class HttpEndpoints {
  private readonly server: http.Server;
  private readonly lastPollError = new Map<string, number>();
  private readonly onPollError = (m: unknown) => {
    const md = ((m as { metadata?: Record<string, unknown> })?.metadata ?? {}) as Record<
      string,
      unknown
    >;
    if (typeof md.cluster === 'string') this.lastPollError.set(md.cluster, this.view.clock.now());
  };
  private port_ = 0;

  private constructor(
    private readonly view: HttpView,
    private readonly minMembers: number,
  ) {
    // Node checks the headers and request timeouts only every connectionsCheckingInterval
    // (30 s by default): checked each second, a slow client is cut off after 10 s, not 30.
    this.server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
      void this.handle(req, res).catch(() => {
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    // Slow or idle clients cannot hold connections for long: these answers are small.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
    this.server.maxHeadersCount = 50;
    this.server.maxRequestsPerSocket = 1000;
    diagnostics.subscribe(CHANNELS.discoveryPollError, this.onPollError);
  }

  /**
   * Listens on `opts.host` (default 127.0.0.1). A non-loopback host needs `allowPublic` (the node
   * has a secret or `insecure: true`), else FND_ERR_INSECURE_BIND; a busy port is FND_ERR_LISTEN.
   */
  static async start(
    view: HttpView,
    opts: HttpOptions,
    allowPublic: boolean,
  ): Promise<HttpEndpoints> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopback(host) && !allowPublic) {
      throw new FoundationError(
        'FND_ERR_INSECURE_BIND',
        `http.host "${host}" is not loopback and the node has no secret (the endpoints are unauthenticated: keep them on loopback or behind a proxy)`,
        { field: 'http.host', host },
      );
    }
    const e = new HttpEndpoints(view, opts.readyMinMembers ?? 1);
    try {
      await new Promise<void>((resolve, reject) => {
        e.server.once('error', reject);
        e.server.listen(opts.port, host, () => {
          e.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      diagnostics.unsubscribe(CHANNELS.discoveryPollError, e.onPollError);
      throw new FoundationError(
        'FND_ERR_LISTEN',
        `http endpoints on ${host}:${opts.port}: ${(err as Error).message}`,
        { field: 'http.port', host, port: opts.port },
        { cause: err },
      );
    }
    e.port_ = (e.server.address() as AddressInfo).port;
    return e;
  }

  /** The port listened on (the chosen one when `port: 0`). */
  get port(): number {
    return this.port_;
  }

  /** Readiness and its reasons (also the body of /ready). */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.view.running()) reasons.push('not running');
    const now = this.view.clock.now();
    for (const c of this.view.clusters()) {
      const alive = c.members.filter((m) => m.status === 'alive').length;
      if (alive < this.minMembers) reasons.push(`cluster ${c.name}: ${alive} alive members`);
      const err = this.lastPollError.get(c.name);
      if (err !== undefined && now - err < DISCOVERY_FAILING_MS)
        reasons.push(`cluster ${c.name}: discovery failing`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, { error: 'method not allowed' });
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/health':
        return send(res, 200, { status: 'ok', node: this.view.name });
      case '/ready': {
        const r = this.readiness();
        return send(res, r.ready ? 200 : 503, { node: this.view.name, ...r });
      }
      case '/metrics':
        return send(res, 200, await this.view.metrics(), this.view.metricsContentType);
      case '/cluster':
        return send(res, 200, {
          node: this.view.name,
          clusters: this.view.clusters(),
          services: this.view.services(),
          registrySize: this.view.registrySize(),
        });
      default:
        return send(res, 404, {
          error: 'not found',
          endpoints: ['/health', '/ready', '/metrics', '/cluster'],
        });
    }
  }

  async stop(): Promise<void> {
    diagnostics.unsubscribe(CHANNELS.discoveryPollError, this.onPollError);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
