// `kubernetes`: lists the cluster's pods (or the endpoints of its service) by label selector
// through the Kubernetes API with the pod's service account, and joins the ready ones
// (libcluster's Cluster.Strategy.Kubernetes). Needs RBAC `list` on pods or endpoints; the DNS
// strategies need no API access at all.
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { z } from 'zod';
import { FoundationError } from '../../errors.js';
import type { Address } from '../../transport/types.js';
import { type DiscoveryContext, type DiscoveryStrategy, poll, Reconciler } from '../strategy.js';
import { PollFailures, parseStrategyOptions, uniqueAddresses } from './polling.js';

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubernetesOptions {
  /**
   * Label selector of the cluster's pods, e.g. `app=my-app` or `app=my-app,tier!=canary`
   * (libcluster's `kubernetes_selector`). Required. In `endpoints` mode it selects Endpoints
   * objects, which carry their Service's labels.
   */
  selector: string;
  /** Namespace to list in. Default: the pod's own, read from `namespacePath` at start. */
  namespace?: string;
  /**
   * `endpoints` (default, like libcluster): the ready addresses of the Endpoints objects matching
   * the selector; needs `list` on `endpoints`. `pods`: the pods matching the selector that are
   * Running and Ready; needs `list` on `pods`, and works without a Service.
   */
  ipLookupMode?: 'endpoints' | 'pods';
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
  selector: z.string().min(1),
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
});

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
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no response progress within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function hintFor(status: number, resource: string, namespace: string): string {
  if (status === 401)
    return 'the API server rejected the service-account token: check tokenPath (the file is re-read on every poll)';
  if (status === 403)
    return `RBAC: grant the service account "list" on "${resource}" in namespace "${namespace}" (a Role with apiGroups [""], resources ["${resource}"], verbs ["list"], and a RoleBinding)`;
  if (status === 404) return `not found: check the namespace ("${namespace}") and apiServer`;
  return 'the API server answered with an error; retrying on the next poll';
}

export class KubernetesStrategy implements DiscoveryStrategy {
  readonly name = 'kubernetes';
  private readonly opts: Omit<z.infer<typeof kubernetesSchema>, 'strategy'>;
  private readonly base: string;
  private agent: http.Agent | undefined;
  private loop: { stop(): void } | undefined;

  /**
   * @param env where `KUBERNETES_SERVICE_HOST` / `_PORT` are read (tests pass their own).
   * Throws FND_ERR_INVALID_OPTION naming the field when an option is invalid.
   */
  constructor(opts: KubernetesOptions, env: NodeJS.ProcessEnv = process.env) {
    this.opts = parseStrategyOptions(kubernetesSchema.omit({ strategy: true }), opts);
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
    const url = new URL(
      `${this.base}/api/v1/namespaces/${encodeURIComponent(namespace)}/${mode}?labelSelector=${encodeURIComponent(o.selector)}`,
    );
    if (url.protocol === 'https:') this.agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const portChoice: PortChoice = { port: o.port ?? ctx.self.address.port, portName: o.portName };
    const r = new Reconciler(
      ctx,
      this.name,
      o.disconnectRemoved ?? KUBERNETES_DEFAULTS.disconnectRemoved,
    );
    const failures = new PollFailures(ctx, this.name);
    const details = { url: `${url.pathname}${url.search}`, namespace };
    ctx.log.debug({ apiServer: this.base, ...details, mode }, 'kubernetes discovery started');
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
        const headers: Record<string, string> = { accept: 'application/json' };
        if (token) headers.authorization = `Bearer ${token}`;
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
          if (ctx.signal.aborted) return;
          const code = (err as NodeJS.ErrnoException).code ?? 'EREQUEST';
          failures.failed(code, `kubernetes API unreachable: ${(err as Error).message}`, {
            apiServer: this.base,
            ...details,
          });
          return;
        }
        if (ctx.signal.aborted) return;
        if (res.status !== 200) {
          // The body is a Status object; its message says what the server objects to.
          let message: string | undefined;
          try {
            const s: unknown = JSON.parse(res.body);
            message = isObj(s) ? str(s.message) : undefined;
          } catch {
            message = res.body.slice(0, 200) || undefined;
          }
          failures.failed(
            `HTTP ${res.status}`,
            `kubernetes API ${res.status}: ${hintFor(res.status, mode, namespace)}`,
            { status: res.status, message, ...details },
          );
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(res.body);
        } catch {
          body = undefined;
        }
        const addresses =
          mode === 'pods'
            ? readyPodAddresses(body, portChoice)
            : readyEndpointAddresses(body, portChoice);
        if (!addresses) {
          failures.failed('EBADRESPONSE', 'kubernetes API answered 200 without a list', details);
          return;
        }
        failures.ok();
        await r.reconcile(uniqueAddresses(addresses));
      },
    );
  }

  stop(): void {
    this.loop?.stop();
    this.agent?.destroy();
  }
}
