// A Kubernetes API server stand-in on 127.0.0.1 over HTTPS (test CA from certs.ts) that answers the
// two list calls the `kubernetes` strategy makes, in the real response shapes:
//   GET /api/v1/namespaces/{ns}/pods?labelSelector=...      → PodList
//   GET /api/v1/namespaces/{ns}/endpoints?labelSelector=... → EndpointsList
// It checks `Authorization: Bearer <token>` (401 Status otherwise), requires and applies the
// label selector (equality, inequality and existence terms), and can be made to answer 403.
// Pods are the one source of truth; each Service's Endpoints are derived from the pods its
// selector matches (ready pods under `addresses`, the others under `notReadyAddresses`).

import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FakePod {
  name: string;
  ip: string;
  labels: Record<string, string>;
  /** Ready condition; default true. */
  ready?: boolean;
  /** Pod phase; default 'Running'. */
  phase?: string;
  /** Named container ports of the pod's one container. */
  ports?: Array<{ name: string; containerPort: number }>;
  /** Set while the pod is terminating. */
  deleting?: boolean;
}

export interface FakeService {
  name: string;
  /** Labels of the Service (and so of its Endpoints object). */
  labels: Record<string, string>;
  /** Pod selector. */
  selector: Record<string, string>;
  ports: Array<{ name: string; port: number }>;
}

export interface RequestLog {
  path: string;
  authorization: string | undefined;
  status: number;
}

function matches(selector: string, labels: Record<string, string>): boolean {
  return selector
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .every((term) => {
      let m = /^([^!=\s]+)\s*!=\s*(.*)$/.exec(term);
      if (m) return labels[m[1]!] !== m[2];
      m = /^([^!=\s]+)\s*==?\s*(.*)$/.exec(term);
      if (m) return labels[m[1]!] === m[2];
      if (term.startsWith('!')) return !(term.slice(1) in labels);
      return term in labels;
    });
}

const status = (code: number, reason: string, message: string) => ({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message,
  reason,
  code,
});

export class FakeKubeApi {
  pods: FakePod[] = [];
  services: FakeService[] = [];
  /** The only token accepted. */
  token: string;
  /** When set, list calls on this resource answer 403 Forbidden. */
  forbidden: 'pods' | 'endpoints' | undefined;
  readonly requests: RequestLog[] = [];
  private resourceVersion = 1000;

  private constructor(
    private readonly server: https.Server,
    readonly namespace: string,
    token: string,
  ) {
    this.token = token;
  }

  static async start(opts: {
    key: string;
    cert: string;
    namespace: string;
    token: string;
  }): Promise<FakeKubeApi> {
    let api: FakeKubeApi | undefined;
    const server = https.createServer({ key: opts.key, cert: opts.cert }, (req, res) =>
      api!.handle(req, res),
    );
    api = new FakeKubeApi(server, opts.namespace, opts.token);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return api;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Successful list calls so far for `resource`. */
  served(resource: 'pods' | 'endpoints'): number {
    return this.requests.filter((r) => r.status === 200 && r.path.includes(`/${resource}?`)).length;
  }

  private handle(
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
  ) {
    const url = new URL(req.url ?? '/', 'https://x');
    const send = (code: number, body: object) => {
      this.requests.push({
        path: `${url.pathname}${url.search}`,
        authorization: req.headers.authorization,
        status: code,
      });
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|endpoints)$/.exec(url.pathname);
    if (req.method !== 'GET' || !m)
      return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const [, ns, resource] = m as unknown as [string, string, 'pods' | 'endpoints'];
    if (this.forbidden === resource)
      return send(
        403,
        status(
          403,
          'Forbidden',
          `${resource} is forbidden: User "system:serviceaccount:${ns}:default" cannot list resource "${resource}" in API group "" in the namespace "${ns}"`,
        ),
      );
    const selector = url.searchParams.get('labelSelector');
    if (!selector)
      return send(400, status(400, 'BadRequest', 'test server: labelSelector is required'));
    const rv = String(this.resourceVersion++);
    const inNs = ns === this.namespace;
    if (resource === 'pods') {
      const items = inNs ? this.pods.filter((p) => matches(selector, p.labels)) : [];
      return send(200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: rv },
        items: items.map((p) => this.podObject(p)),
      });
    }
    const items = inNs ? this.services.filter((s) => matches(selector, s.labels)) : [];
    return send(200, {
      kind: 'EndpointsList',
      apiVersion: 'v1',
      metadata: { resourceVersion: rv },
      items: items.map((s) => this.endpointsObject(s)),
    });
  }

  private podObject(p: FakePod): object {
    const ready = p.ready ?? true;
    const now = '2024-01-01T00:00:00Z';
    return {
      metadata: {
        name: p.name,
        namespace: this.namespace,
        uid: `uid-${p.name}`,
        resourceVersion: '1',
        creationTimestamp: now,
        labels: p.labels,
        ...(p.deleting ? { deletionTimestamp: now, deletionGracePeriodSeconds: 30 } : {}),
      },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'example/app:1',
            ports: (p.ports ?? []).map((cp) => ({ ...cp, protocol: 'TCP' })),
          },
        ],
        nodeName: 'node-1',
        hostname: p.name,
      },
      status: {
        phase: p.phase ?? 'Running',
        conditions: [
          { type: 'Initialized', status: 'True', lastTransitionTime: now },
          { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now },
          { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: now },
          { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        ],
        hostIP: '10.0.0.1',
        podIP: p.ip,
        podIPs: [{ ip: p.ip }],
        startTime: now,
      },
    };
  }

  private endpointsObject(s: FakeService): object {
    const pods = this.pods.filter(
      (p) =>
        !p.deleting &&
        (p.phase ?? 'Running') === 'Running' &&
        Object.entries(s.selector).every(([k, v]) => p.labels[k] === v),
    );
    const address = (p: FakePod) => ({
      ip: p.ip,
      nodeName: 'node-1',
      targetRef: { kind: 'Pod', namespace: this.namespace, name: p.name, uid: `uid-${p.name}` },
    });
    const ready = pods.filter((p) => p.ready ?? true).map(address);
    const notReady = pods.filter((p) => !(p.ready ?? true)).map(address);
    return {
      metadata: { name: s.name, namespace: this.namespace, labels: s.labels, resourceVersion: '1' },
      // Like the real API server: empty fields are omitted, not sent as empty arrays.
      ...(ready.length + notReady.length === 0
        ? {}
        : {
            subsets: [
              {
                ...(ready.length ? { addresses: ready } : {}),
                ...(notReady.length ? { notReadyAddresses: notReady } : {}),
                ports: s.ports.map((p) => ({ ...p, protocol: 'TCP' })),
              },
            ],
          }),
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
