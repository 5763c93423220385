// A Kubernetes API server stand-in on 127.0.0.1 over HTTPS (test CA from certs.ts) that answers the
// list calls the `kubernetes` strategy makes, in the real response shapes:
//   GET /api/v1/namespaces/{ns}/pods?labelSelector=...                          → PodList
//   GET /api/v1/namespaces/{ns}/endpoints?labelSelector=...|fieldSelector=...   → EndpointsList
//   GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector= → EndpointSliceList
// It checks `Authorization: Bearer <token>` (401 Status otherwise), requires and applies the
// label selector (equality, inequality and existence terms), pages with `limit` / `continue` (an
// opaque token; 410 Gone once `expireContinue` is set, as when etcd compacted), adds `Warning`
// headers, and can be made to answer 403, or 404 for EndpointSlices (an old API server).
// Pods are the one source of truth; each Service's Endpoints and EndpointSlices are derived from
// the pods its selector matches (Endpoints: ready pods under `addresses`, the others under
// `notReadyAddresses`; slices: every pod, with `conditions.ready`, at most `maxEndpointsPerSlice`
// per slice, carrying the Service's labels plus `kubernetes.io/service-name`, like the controller).

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
  /** EndpointSlices leave `conditions.ready` out (the API says: treat as ready). */
  readyUnset?: boolean;
}

type Resource = 'pods' | 'endpoints' | 'endpointslices';

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
  userAgent: string | undefined;
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
  forbidden: Resource | undefined;
  /** false: EndpointSlices answer 404, like an API server older than Kubernetes 1.21. */
  endpointSlices = true;
  /** Sent as `Warning: 299 - "<text>"` headers with every answer. */
  warnings: string[] = [];
  /** Endpoints per EndpointSlice (the controller's default is 100). */
  maxEndpointsPerSlice = 100;
  /** When true, any `continue` token is refused with 410 Gone (expired). */
  expireContinue = false;
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

  /** Successful list calls (pages) so far for `resource`. */
  served(resource: Resource): number {
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
        userAgent: req.headers['user-agent'],
        status: code,
      });
      const headers: Array<[string, string]> = [['content-type', 'application/json']];
      for (const w of this.warnings) headers.push(['Warning', `299 - "${w.replace(/"/g, '\\"')}"`]);
      res.writeHead(code, headers.flat());
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    const m =
      /^\/api\/v1\/namespaces\/([^/]+)\/(pods|endpoints)$/.exec(url.pathname) ??
      /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/(endpointslices)$/.exec(url.pathname);
    const notFound = () =>
      send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    if (req.method !== 'GET' || !m) return notFound();
    const [, ns, resource] = m as unknown as [string, string, Resource];
    if (resource === 'endpointslices' && !this.endpointSlices) return notFound();
    if (this.forbidden === resource) {
      const group = resource === 'endpointslices' ? 'discovery.k8s.io' : '';
      return send(
        403,
        status(
          403,
          'Forbidden',
          `${resource} is forbidden: User "system:serviceaccount:${ns}:default" cannot list resource "${resource}" in API group "${group}" in the namespace "${ns}"`,
        ),
      );
    }
    const selector = url.searchParams.get('labelSelector') ?? '';
    const field = /^metadata\.name=(.+)$/.exec(url.searchParams.get('fieldSelector') ?? '');
    if (!selector && !field)
      return send(
        400,
        status(400, 'BadRequest', 'test server: a label or field selector is required'),
      );
    const inNs = ns === this.namespace;
    const services = () =>
      inNs
        ? this.services.filter(
            (s) => (!selector || matches(selector, s.labels)) && (!field || s.name === field[1]),
          )
        : [];
    let all: object[];
    let kind: string;
    if (resource === 'pods') {
      kind = 'PodList';
      all = inNs
        ? this.pods.filter((p) => matches(selector, p.labels)).map((p) => this.podObject(p))
        : [];
    } else if (resource === 'endpoints') {
      kind = 'EndpointsList';
      all = services().map((s) => this.endpointsObject(s));
    } else {
      kind = 'EndpointSliceList';
      all = inNs
        ? this.services
            .flatMap((s) => this.sliceObjects(s))
            .filter((sl) => matches(selector, sl.metadata.labels))
        : [];
    }
    // Paging: the continue token carries the offset of the next item.
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let offset = 0;
    if (cont) {
      if (this.expireContinue)
        return send(
          410,
          status(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result.',
          ),
        );
      offset = Number(JSON.parse(Buffer.from(cont, 'base64url').toString()).offset);
    }
    const end = limit > 0 ? offset + limit : all.length;
    const items = all.slice(offset, end);
    const rv = String(this.resourceVersion++);
    return send(200, {
      kind,
      apiVersion: resource === 'endpointslices' ? 'discovery.k8s.io/v1' : 'v1',
      metadata: {
        resourceVersion: rv,
        ...(end < all.length
          ? { continue: Buffer.from(JSON.stringify({ offset: end })).toString('base64url') }
          : {}),
      },
      items,
    });
  }

  private sliceObjects(s: FakeService): Array<{ metadata: { labels: Record<string, string> } }> {
    const pods = this.servicePods(s);
    const chunks: FakePod[][] = [];
    for (let i = 0; i < pods.length; i += this.maxEndpointsPerSlice)
      chunks.push(pods.slice(i, i + this.maxEndpointsPerSlice));
    if (chunks.length === 0) chunks.push([]);
    return chunks.map((chunk, i) => ({
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: {
        name: `${s.name}-${String(i).padStart(5, 'x')}`,
        namespace: this.namespace,
        labels: {
          ...s.labels,
          'kubernetes.io/service-name': s.name,
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: s.name, controller: true }],
      },
      addressType: 'IPv4',
      // Like the real API server: an empty slice has `endpoints: null`, sent as absent.
      ...(chunk.length
        ? {
            endpoints: chunk.map((p) => ({
              addresses: [p.ip],
              conditions: p.readyUnset
                ? {}
                : {
                    ready: (p.ready ?? true) && !p.deleting,
                    serving: p.ready ?? true,
                    terminating: !!p.deleting,
                  },
              nodeName: 'node-1',
              targetRef: {
                kind: 'Pod',
                namespace: this.namespace,
                name: p.name,
                uid: `uid-${p.name}`,
              },
            })),
          }
        : {}),
      ports: s.ports.map((p) => ({ ...p, protocol: 'TCP' })),
    }));
  }

  /** Pods a Service's selector matches that are Running (terminating ones stay in slices). */
  private servicePods(s: FakeService): FakePod[] {
    return this.pods.filter(
      (p) =>
        (p.phase ?? 'Running') === 'Running' &&
        Object.entries(s.selector).every(([k, v]) => p.labels[k] === v),
    );
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
