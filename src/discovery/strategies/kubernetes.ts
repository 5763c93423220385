// `kubernetes`: lists the cluster's pods (or the endpoints of its service, from EndpointSlices,
// falling back to the deprecated Endpoints) by label selector through the Kubernetes API with the
// pod's service account, and joins the ready ones (libcluster's Cluster.Strategy.Kubernetes).
// Needs RBAC `list` on pods or endpointslices; the DNS strategies need no API access at all.
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import type { Address } from '../../transport/types.js';
import { VERSION } from '../../util/version.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import { PollFailures, parseStrategyOptions, uniqueAddresses } from './polling.js';

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubernetesOptions {
  /**
   * Label selector of the cluster's pods, e.g. `app=my-app` or `app=my-app,tier!=canary`
   * (libcluster's `kubernetes_selector`). Required, except in `endpoints` mode with `serviceName`.
   * In `endpoints` mode it selects EndpointSlices (or Endpoints), which carry their Service's labels.
   */
  selector?: string;
  /**
   * `endpoints` mode: the Service whose endpoints to list (libcluster's `kubernetes_service_name`).
   * EndpointSlices are then selected by `kubernetes.io/service-name=<serviceName>` (and `selector`
   * when given too), the Endpoints fallback by name.
   */
  serviceName?: string;
  /** Namespace to list in. Default: the pod's own, read from `namespacePath` at start. */
  namespace?: string;
  /**
   * `endpoints` (default, like libcluster): the ready endpoints of the matching Services, read
   * from `discovery.k8s.io/v1` EndpointSlices (needs `list` on `endpointslices` in API group
   * `discovery.k8s.io`). When the API server does not serve EndpointSlices (404) or RBAC refuses
   * them (403), the deprecated `v1` Endpoints are listed instead (needs `list` on `endpoints`),
   * for as long as the node runs, and the switch is logged once. `pods`: the pods matching the
   * selector that are Running and Ready; needs `list` on `pods`, and works without a Service.
   */
  ipLookupMode?: 'endpoints' | 'pods';
  /**
   * Read from the API server's cache (`resourceVersion=0`) instead of a quorum read from etcd
   * (libcluster's `kubernetes_use_cached_resources`). Default false. Cheaper for the control
   * plane with many pods polling; the answer may lag by a moment.
   */
  useCachedResources?: boolean;
  /**
   * Items per list call (`limit`); longer lists are read page by page with `continue`. Default 500
   * (kubectl's). Lower: smaller responses, more calls.
   */
  pageSize?: number;
  /**
   * How often to list, in ms. Default 5000 (libcluster's). Lower: new pods found sooner, more load
   * on the API server (one list call per node per interval).
   */
  pollingIntervalMs?: number;
  /** Foundation port of the other pods. Default: this node's own port (all pods use one fixed port). */
  port?: number;
  /**
   * Name of the port to use instead of `port`: a container port name (`pods` mode) or an Endpoints
   * port name, i.e. the Service port name (`endpoints` mode). Pods without it are skipped.
   */
  portName?: string;
  /**
   * Base URL of the API server, e.g. `https://10.96.0.1:443`, or `http://127.0.0.1:8001` behind
   * `kubectl proxy`. Default: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (set in
   * every pod), else `https://kubernetes.default.svc`.
   */
  apiServer?: string;
  /**
   * libcluster's `kubernetes_master`: the API server as `host` or `host:port`, reached over HTTPS.
   * Used when `apiServer` is not given. Unlike libcluster, no cluster domain is appended: the name
   * is resolved as given (the pod's DNS search path completes short names).
   */
  master?: string;
  /** Service-account token file, re-read on every poll (tokens rotate). Default `<serviceaccount>/token`. */
  tokenPath?: string;
  /**
   * CA bundle that signs the API server's certificate. Default `<serviceaccount>/ca.crt`. When the
   * file is missing the system CAs are used; certificate checks are never turned off.
   */
  caPath?: string;
  /** File holding the pod's namespace, read when `namespace` is not given. Default `<serviceaccount>/namespace`. */
  namespacePath?: string;
  /** Deadline for one list call without progress, in ms. Default 10000. */
  requestTimeoutMs?: number;
  /**
   * Report pods that were listed and no longer are (deleted, or no longer ready); membership
   * forgets them at once if they are down and probes them if alive. Default true, unlike the DNS
   * strategies: the API server's answer is authoritative and current, pod IPs get reused by other
   * pods, and forgetting a deleted pod at once stops reconnect attempts to its IP.
   */
  disconnectRemoved?: boolean;
}

/** Validation of `{ strategy: 'kubernetes', ... }` discovery options. */
export const kubernetesSchema = z.strictObject({
  strategy: z.literal('kubernetes'),
  selector: z.string().min(1).optional(),
  serviceName: z.string().min(1).max(253).optional(),
  useCachedResources: z.boolean().optional(),
  pageSize: z.number().int().min(1).max(10_000).optional(),
  namespace: z.string().min(1).max(253).optional(),
  ipLookupMode: z.enum(['endpoints', 'pods']).optional(),
  pollingIntervalMs: z.number().int().positive().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  portName: z.string().min(1).max(63).optional(),
  apiServer: z.url({ protocol: /^https?$/ }).optional(),
  master: z.string().min(1).optional(),
  tokenPath: z.string().min(1).optional(),
  caPath: z.string().min(1).optional(),
  namespacePath: z.string().min(1).optional(),
  requestTimeoutMs: z.number().int().positive().optional(),
  disconnectRemoved: z.boolean().optional(),
});

export const KUBERNETES_DEFAULTS = Object.freeze({
  ipLookupMode: 'endpoints' as const,
  // libcluster's interval: a new pod is joined within 5 s; one cheap list call per pod per 5 s.
  pollingIntervalMs: 5_000,
  tokenPath: `${SERVICE_ACCOUNT}/token`,
  caPath: `${SERVICE_ACCOUNT}/ca.crt`,
  namespacePath: `${SERVICE_ACCOUNT}/namespace`,
  // Shorter than libcluster's 15 s so a hung API server costs at most two polling intervals.
  requestTimeoutMs: 10_000,
  disconnectRemoved: true,
  // A PodList of a few thousand pods is a few MB; this only stops a broken server from exhausting memory.
  maxResponseBytes: 64 * 1024 * 1024,
  // kubectl's page size: one call for any usual cluster, bounded responses for huge ones.
  pageSize: 500,
  // A list longer than this many pages is cut short (a server that never ends its `continue` chain).
  maxPages: 1000,
  useCachedResources: false,
});

/** Sent with every API call, so the API server's audit log and metrics name the client. */
export const USER_AGENT = `foundation-cluster/${VERSION} (${process.platform}/${process.arch}) node/${process.versions.node}`;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
const validPort = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536;

/** Where the other pods' Foundation port comes from. */
export interface PortChoice {
  port: number;
  portName?: string | undefined;
}

/**
 * Addresses of the Running, Ready, not-terminating pods of a PodList (`GET .../pods`); undefined
 * when `body` is not a list.
 */
export function readyPodAddresses(body: unknown, p: PortChoice): Address[] | undefined {
  if (!isObj(body) || !Array.isArray(body.items)) return undefined;
  const out: Address[] = [];
  for (const pod of body.items) {
    if (!isObj(pod) || !isObj(pod.status)) continue;
    if (isObj(pod.metadata) && pod.metadata.deletionTimestamp) continue;
    const ip = str(pod.status.podIP);
    const ready = list(pod.status.conditions).some(
      (c) => isObj(c) && c.type === 'Ready' && c.status === 'True',
    );
    if (!ip || pod.status.phase !== 'Running' || !ready) continue;
    let port: number | undefined = p.port;
    if (p.portName) {
      port = undefined;
      const containers = isObj(pod.spec) ? list(pod.spec.containers) : [];
      for (const c of containers) {
        for (const cp of isObj(c) ? list(c.ports) : []) {
          if (isObj(cp) && cp.name === p.portName && validPort(cp.containerPort))
            port = cp.containerPort;
        }
      }
    }
    if (port !== undefined) out.push({ host: ip, port });
  }
  return out;
}

/**
 * Ready addresses of an EndpointsList (`GET .../endpoints`): `subsets[].addresses`, never
 * `notReadyAddresses`; undefined when `body` is not a list.
 */
export function readyEndpointAddresses(body: unknown, p: PortChoice): Address[] | undefined {
  if (!isObj(body) || !Array.isArray(body.items)) return undefined;
  const out: Address[] = [];
  for (const ep of body.items) {
    for (const subset of isObj(ep) ? list(ep.subsets) : []) {
      if (!isObj(subset)) continue;
      let port: number | undefined = p.port;
      if (p.portName) {
        const named = list(subset.ports).find((sp) => isObj(sp) && sp.name === p.portName);
        port = isObj(named) && validPort(named.port) ? named.port : undefined;
      }
      if (port === undefined) continue;
      for (const a of list(subset.addresses)) {
        const ip = isObj(a) ? str(a.ip) : undefined;
        if (ip) out.push({ host: ip, port });
      }
    }
  }
  return out;
}

/**
 * Ready addresses of an EndpointSliceList (`GET /apis/discovery.k8s.io/v1/.../endpointslices`):
 * endpoints whose `conditions.ready` is not false (a missing condition means ready, per the API),
 * first address of each (the API says an endpoint's addresses are fungible); FQDN slices skipped.
 * Undefined when `body` is not a list.
 */
export function readyEndpointSliceAddresses(body: unknown, p: PortChoice): Address[] | undefined {
  if (!isObj(body) || !Array.isArray(body.items)) return undefined;
  const out: Address[] = [];
  for (const slice of body.items) {
    if (!isObj(slice) || slice.addressType === 'FQDN') continue;
    let port: number | undefined = p.port;
    if (p.portName) {
      const named = list(slice.ports).find((sp) => isObj(sp) && sp.name === p.portName);
      port = isObj(named) && validPort(named.port) ? named.port : undefined;
    }
    if (port === undefined) continue;
    for (const ep of list(slice.endpoints)) {
      if (!isObj(ep)) continue;
      if (isObj(ep.conditions) && ep.conditions.ready === false) continue;
      const ip = str(list(ep.addresses)[0]);
      if (ip && net.isIP(ip)) out.push({ host: ip, port });
    }
  }
  return out;
}

/** The API server base URL: `apiServer`, else `master`, else the in-cluster env, else the default name. */
export function apiServerUrl(
  opts: Pick<KubernetesOptions, 'apiServer' | 'master'>,
  env: NodeJS.ProcessEnv,
): string {
  if (opts.apiServer) return opts.apiServer.replace(/\/+$/, '');
  if (opts.master) return `https://${opts.master.replace(/\/+$/, '')}`;
  const host = env.KUBERNETES_SERVICE_HOST;
  if (host) {
    const h = net.isIP(host) === 6 ? `[${host}]` : host;
    return `https://${h}:${env.KUBERNETES_SERVICE_PORT || '443'}`;
  }
  return 'https://kubernetes.default.svc';
}

interface HttpResult {
  status: number;
  body: string;
  /** The text of each `Warning` header (RFC 7234 `299 - "text"`), as the API server sent them. */
  warnings: string[];
}

/** The text of `Warning` header values: `299 - "text"` → `text`; anything else as is. */
export function warningTexts(rawHeaders: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'warning') continue;
    const v = rawHeaders[i + 1]!;
    const m = /^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(v);
    out.push(m ? m[1]!.replace(/\\(.)/g, '$1') : v.trim());
  }
  return out;
}

function get(
  url: URL,
  headers: Record<string, string>,
  ca: string | undefined,
  agent: http.Agent | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<HttpResult> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      { method: 'GET', headers, agent, timeout: timeoutMs, signal, ...(ca ? { ca } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > KUBERNETES_DEFAULTS.maxResponseBytes) {
            req.destroy(
              new Error(`response larger than ${KUBERNETES_DEFAULTS.maxResponseBytes} bytes`),
            );
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            warnings: warningTexts(res.rawHeaders),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no response progress within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** One kind of list the strategy reads. */
interface Source {
  /** Resource name for messages and RBAC hints. */
  resource: 'pods' | 'endpoints' | 'endpointslices';
  /** API group for RBAC hints ('' is the core group). */
  group: string;
  path: string;
  /** labelSelector / fieldSelector of the call. */
  params: Record<string, string>;
  parse: (body: unknown, p: PortChoice) => Address[] | undefined;
}

function hintFor(status: number, src: Source, namespace: string): string {
  if (status === 401)
    return 'the API server rejected the service-account token: check tokenPath (the file is re-read on every poll)';
  if (status === 403)
    return `RBAC: grant the service account "list" on "${src.resource}" in namespace "${namespace}" (a Role with apiGroups ["${src.group}"], resources ["${src.resource}"], verbs ["list"], and a RoleBinding)`;
  if (status === 404) return `not found: check the namespace ("${namespace}") and apiServer`;
  return 'the API server answered with an error; retrying on the next poll';
}

/** Outcome of listing every page of one source. */
type ListResult =
  | { ok: true; items: unknown[] }
  /** The API server answered with an error status (`status` > 0) or unusable data (`code`). */
  | { ok: false; status: number; code: string; message: string | undefined }
  /** No answer (connection refused, timeout, TLS): `status` 0. */
  | { ok: false; status: 0; code: string; message: string; unreachable: true };

function statusMessage(body: string): string | undefined {
  // The body of an error is a Status object; its message says what the server objects to.
  try {
    const s: unknown = JSON.parse(body);
    return isObj(s) ? str(s.message) : undefined;
  } catch {
    return body.slice(0, 200) || undefined;
  }
}

export class KubernetesStrategy implements DiscoveryStrategy {
  readonly name = 'kubernetes';
  private readonly opts: Omit<z.infer<typeof kubernetesSchema>, 'strategy'>;
  private readonly base: string;
  private agent: http.Agent | undefined;
  private loop: { stop(): void } | undefined;
  /** Warning header texts already logged: each is logged once per strategy. */
  private readonly warned = new Set<string>();

  /**
   * @param env where `KUBERNETES_SERVICE_HOST` / `_PORT` are read (tests pass their own).
   * Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid.
   */
  constructor(opts: KubernetesOptions, env: NodeJS.ProcessEnv = process.env) {
    this.opts = parseStrategyOptions(kubernetesSchema.omit({ strategy: true }), opts);
    const mode = this.opts.ipLookupMode ?? KUBERNETES_DEFAULTS.ipLookupMode;
    if (!this.opts.selector && !(mode === 'endpoints' && this.opts.serviceName)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "discovery.selector": required${mode === 'endpoints' ? ' (or give serviceName)' : ' in pods mode'}`,
        { field: 'discovery.selector' },
      );
    }
    this.base = apiServerUrl(this.opts, env);
    try {
      new URL(this.base);
    } catch {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "discovery.master": "${this.base}" is not a valid API server URL`,
        { field: 'discovery.master' },
      );
    }
  }

  /** The lists to read, in order of preference: pods; or EndpointSlices, then Endpoints. */
  private sources(namespace: string): Source[] {
    const o = this.opts;
    const ns = encodeURIComponent(namespace);
    if ((o.ipLookupMode ?? KUBERNETES_DEFAULTS.ipLookupMode) === 'pods') {
      return [
        {
          resource: 'pods',
          group: '',
          path: `/api/v1/namespaces/${ns}/pods`,
          params: { labelSelector: o.selector! },
          parse: readyPodAddresses,
        },
      ];
    }
    const sliceSelector = [
      ...(o.serviceName ? [`kubernetes.io/service-name=${o.serviceName}`] : []),
      ...(o.selector ? [o.selector] : []),
    ].join(',');
    const endpointParams: Record<string, string> = {};
    if (o.selector) endpointParams.labelSelector = o.selector;
    if (o.serviceName) endpointParams.fieldSelector = `metadata.name=${o.serviceName}`;
    return [
      {
        resource: 'endpointslices',
        group: 'discovery.k8s.io',
        path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
        params: { labelSelector: sliceSelector },
        parse: readyEndpointSliceAddresses,
      },
      {
        resource: 'endpoints',
        group: '',
        path: `/api/v1/namespaces/${ns}/endpoints`,
        params: endpointParams,
        parse: readyEndpointAddresses,
      },
    ];
  }

  async start(ctx: DiscoveryContext): Promise<void> {
    const o = this.opts;
    const namespacePath = o.namespacePath ?? KUBERNETES_DEFAULTS.namespacePath;
    const namespace =
      o.namespace ?? (await fs.readFile(namespacePath, 'utf8').catch(() => '')).trim();
    if (!namespace) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "discovery.namespace": not given and ${namespacePath} is missing or empty (not running in a pod?)`,
        { field: 'discovery.namespace' },
      );
    }
    const mode = o.ipLookupMode ?? KUBERNETES_DEFAULTS.ipLookupMode;
    const sources = this.sources(namespace);
    if (new URL(this.base).protocol === 'https:')
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const portChoice: PortChoice = { port: o.port ?? ctx.self.address.port, portName: o.portName };
    const r = new Reconciler(
      ctx,
      this.name,
      o.disconnectRemoved ?? KUBERNETES_DEFAULTS.disconnectRemoved,
    );
    const failures = new PollFailures(ctx, this.name);
    ctx.log.debug(
      { apiServer: this.base, namespace, mode, resource: sources[0]!.resource },
      'kubernetes discovery started',
    );
    this.loop = poll(
      ctx,
      o.pollingIntervalMs ?? KUBERNETES_DEFAULTS.pollingIntervalMs,
      async () => {
        // Re-read on every poll: projected service-account tokens rotate (about hourly).
        const token = (
          await fs.readFile(o.tokenPath ?? KUBERNETES_DEFAULTS.tokenPath, 'utf8').catch(() => '')
        ).trim();
        const ca = await fs
          .readFile(o.caPath ?? KUBERNETES_DEFAULTS.caPath, 'utf8')
          .catch(() => undefined);
        const headers: Record<string, string> = {
          accept: 'application/json',
          'user-agent': USER_AGENT,
        };
        if (token) headers.authorization = `Bearer ${token}`;
        let src = sources[0]!;
        let res = await this.listAll(ctx, src, headers, ca);
        // EndpointSlices not served (404: Kubernetes < 1.21) or not allowed (403: a Role written
        // for Endpoints): the deprecated Endpoints, from now on.
        if (!res.ok && sources.length > 1 && (res.status === 404 || res.status === 403)) {
          const refused = res.status;
          sources.shift();
          src = sources[0]!;
          res = await this.listAll(ctx, src, headers, ca);
          if (res.ok) {
            const msg =
              refused === 404
                ? 'kubernetes: the API server does not serve discovery.k8s.io/v1 EndpointSlices; listing v1 Endpoints instead'
                : `kubernetes: RBAC refuses "list" on endpointslices; listing the deprecated v1 Endpoints instead (grant "list" on resources ["endpointslices"] in apiGroups ["discovery.k8s.io"] in namespace "${namespace}" and restart to use EndpointSlices)`;
            ctx.log[refused === 404 ? 'info' : 'warn']({ status: refused, namespace }, msg);
          }
        }
        if (ctx.signal.aborted) return;
        const details = { url: src.path, resource: src.resource, namespace };
        if (!res.ok) {
          if ('unreachable' in res) {
            failures.failed(res.code, `kubernetes API unreachable: ${res.message}`, {
              apiServer: this.base,
              ...details,
            });
          } else if (res.status === 200) {
            failures.failed(
              res.code,
              `kubernetes API answered 200 without a usable list${res.message ? ` (${res.message})` : ''}`,
              details,
            );
          } else {
            failures.failed(
              res.code,
              `kubernetes API ${res.status}: ${hintFor(res.status, src, namespace)}`,
              { status: res.status, message: res.message, ...details },
            );
          }
          return;
        }
        const addresses = src.parse({ items: res.items }, portChoice) ?? [];
        failures.ok();
        await r.reconcile(uniqueAddresses(addresses));
      },
    );
  }

  /**
   * Reads every page of `src` (`limit` / `continue`). A `continue` token that expired (410 Gone)
   * restarts the list once from the first page. Logs each distinct `Warning` header once.
   */
  private async listAll(
    ctx: DiscoveryContext,
    src: Source,
    headers: Record<string, string>,
    ca: string | undefined,
  ): Promise<ListResult> {
    const o = this.opts;
    const items: unknown[] = [];
    let token: string | undefined;
    let restarted = false;
    for (let page = 0; page < KUBERNETES_DEFAULTS.maxPages; page++) {
      const url = new URL(`${this.base}${src.path}`);
      for (const [k, v] of Object.entries(src.params)) url.searchParams.set(k, v);
      url.searchParams.set('limit', String(o.pageSize ?? KUBERNETES_DEFAULTS.pageSize));
      if (token) url.searchParams.set('continue', token);
      else if (o.useCachedResources ?? KUBERNETES_DEFAULTS.useCachedResources)
        url.searchParams.set('resourceVersion', '0');
      let res: HttpResult;
      try {
        res = await get(
          url,
          headers,
          ca,
          this.agent,
          o.requestTimeoutMs ?? KUBERNETES_DEFAULTS.requestTimeoutMs,
          ctx.signal,
        );
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EREQUEST';
        return { ok: false, status: 0, code, message: (err as Error).message, unreachable: true };
      }
      for (const w of res.warnings) {
        if (this.warned.has(w)) continue;
        if (this.warned.size < 64) this.warned.add(w);
        ctx.log.warn({ resource: src.resource, warning: w }, `kubernetes API warning: ${w}`);
      }
      if (res.status === 410 && token && !restarted) {
        // The continue token expired (the list changed for too long): read it again, once.
        restarted = true;
        token = undefined;
        items.length = 0;
        continue;
      }
      if (res.status !== 200)
        return {
          ok: false,
          status: res.status,
          code: `HTTP ${res.status}`,
          message: statusMessage(res.body),
        };
      let body: unknown;
      try {
        body = JSON.parse(res.body);
      } catch {
        body = undefined;
      }
      if (!isObj(body) || !Array.isArray(body.items))
        return { ok: false, status: 200, code: 'EBADRESPONSE', message: undefined };
      items.push(...body.items);
      token = isObj(body.metadata) ? str(body.metadata.continue) : undefined;
      if (!token) return { ok: true, items };
    }
    return {
      ok: false,
      status: 200,
      code: 'ETOOMANYPAGES',
      message: `more than ${KUBERNETES_DEFAULTS.maxPages} pages`,
    };
  }

  stop(): void {
    this.loop?.stop();
    this.agent?.destroy();
  }
}
