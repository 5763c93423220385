import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  apiServerUrl,
  type KubernetesOptions,
  KubernetesStrategy,
  kubernetesSchema,
  USER_AGENT,
  warningTexts,
} from '../../src/discovery/strategies/kubernetes.js';
import type { DiscoveryStrategy } from '../../src/discovery/strategy.js';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { CHANNELS } from '../../src/util/diagnostics.js';
import type { Logger } from '../../src/util/log.js';
import { assertCoded } from '../helpers/assert.js';
import { createPki, type Pem, type TestPki } from '../helpers/certs.js';
import { FakeKubeApi } from '../helpers/k8s-api.js';
import { captureLogger, sharedPort } from '../helpers/loopback.js';
import { fullyMeshed, nullDiscovery, seesAlive, waitUntil } from '../helpers/nodes.js';

const NS = 'shop';
const TOKEN = 'good-token-0123456789';
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

const WARN = 40;

describe('kubernetes discovery (API stand-in over HTTPS on loopback)', () => {
  let pki: TestPki;
  let caCert: string;
  let serverPem: Pem;
  let api: FakeKubeApi;
  let dir: string;
  const nodes: FoundationNode[] = [];
  const cluster = `k8s-${process.pid}`;

  const paths = () => ({
    tokenPath: path.join(dir, 'token'),
    caPath: path.join(dir, 'ca.crt'),
    namespacePath: path.join(dir, 'namespace'),
  });
  const strategy = (o: Partial<KubernetesOptions> = {}, env: NodeJS.ProcessEnv = {}) =>
    new KubernetesStrategy(
      { selector: 'app=shop', apiServer: api.url, pollingIntervalMs: 100, ...paths(), ...o },
      env,
    );
  const start = (
    name: string,
    host: string,
    port: number,
    discovery: DiscoveryStrategy,
    logger?: Logger,
  ) =>
    Foundation.start({
      name,
      cluster,
      host,
      port,
      discovery,
      ...(logger ? { logger } : { logLevel: 'silent' as const }),
    }).then((n) => {
      nodes.push(n);
      return n;
    });

  before(() => {
    pki = createPki();
    const ca = pki.ca('k8s-ca');
    caCert = ca.cert;
    serverPem = ca.issue('kubernetes.default.svc');
  });
  after(() => pki.cleanup());

  beforeEach(async () => {
    api = await FakeKubeApi.start({ ...serverPem, namespace: NS, token: TOKEN });
    dir = mkdtempSync(path.join(os.tmpdir(), 'foundation-sa-'));
    writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(path.join(dir, 'ca.crt'), caCert);
    writeFileSync(path.join(dir, 'namespace'), NS);
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pods mode: joins Running and Ready pods of the selector only, and reports a terminating pod', async () => {
    const port = await sharedPort(HOSTS);
    api.pods = [
      { name: 'shop-a', ip: '127.0.0.2', labels: { app: 'shop' } },
      { name: 'shop-b', ip: '127.0.0.3', labels: { app: 'shop' } },
      { name: 'shop-c', ip: '127.0.0.4', labels: { app: 'shop' }, ready: false },
      { name: 'other', ip: '127.0.0.5', labels: { app: 'other' } },
    ];
    const a = await start('a', '127.0.0.2', port, strategy({ ipLookupMode: 'pods' }));
    const b = await start('b', '127.0.0.3', port, strategy({ ipLookupMode: 'pods' }));
    // c and other run but do no discovery: only the API's answer can bring them in.
    const c = await start('c', '127.0.0.4', port, nullDiscovery());
    await start('other', '127.0.0.5', port, nullDiscovery());
    await waitUntil(() => fullyMeshed([a, b]), 'a and b to find each other through the API');

    const served = api.served('pods');
    await waitUntil(() => api.served('pods') >= served + 6, 'a few more list calls');
    assert.ok(!seesAlive(a, ['c']) && !seesAlive(b, ['c']), 'a not-ready pod is not joined');
    assert.ok(!seesAlive(a, ['other']), 'a pod outside the selector is not joined');
    assert.ok(
      api.requests.every(
        (r) =>
          r.path === `/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dshop&limit=500` &&
          r.authorization === `Bearer ${TOKEN}` &&
          r.userAgent === USER_AGENT,
      ),
      'list calls carry the selector, a page limit, the bearer token and the User-Agent',
    );
    assert.match(USER_AGENT, /^foundation-cluster\/\d+\.\d+\.\d+ \(/);

    api.pods[2]!.ready = true;
    await waitUntil(() => fullyMeshed([a, b, c]), 'c to be joined once Ready');

    const removed: string[] = [];
    const onRemoved = (m: unknown) =>
      removed.push((m as { metadata: { address: string } }).metadata.address);
    diagnostics.subscribe(CHANNELS.discoveryDisconnect, onRemoved);
    try {
      api.pods[2]!.deleting = true;
      await waitUntil(() => removed.includes(c.address), 'the terminating pod to be reported');
      assert.ok(!removed.includes(a.address) && !removed.includes(b.address));
    } finally {
      diagnostics.unsubscribe(CHANNELS.discoveryDisconnect, onRemoved);
    }
  });

  it('endpoints mode (default) reads EndpointSlices: in-cluster env, namespace file, named port, ready endpoints only', async () => {
    const port = await sharedPort(HOSTS);
    api.services = [
      {
        name: 'shop',
        labels: { app: 'shop' },
        selector: { app: 'shop' },
        ports: [{ name: 'foundation', port }],
      },
      {
        name: 'other',
        labels: { app: 'other' },
        selector: { app: 'other' },
        ports: [{ name: 'foundation', port }],
      },
    ];
    api.pods = [
      { name: 'shop-a', ip: '127.0.0.2', labels: { app: 'shop' } },
      { name: 'shop-b', ip: '127.0.0.3', labels: { app: 'shop' } },
      { name: 'shop-c', ip: '127.0.0.4', labels: { app: 'shop' }, ready: false },
      { name: 'other', ip: '127.0.0.5', labels: { app: 'other' } },
    ];
    // What the kubelet puts in every pod's environment; no apiServer option.
    const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) };
    const k8s = () => strategy({ apiServer: undefined, portName: 'foundation' }, env);
    const a = await start('a', '127.0.0.2', port, k8s());
    const b = await start('b', '127.0.0.3', port, k8s());
    const c = await start('c', '127.0.0.4', port, nullDiscovery());
    await start('other', '127.0.0.5', port, nullDiscovery());
    await waitUntil(() => fullyMeshed([a, b]), 'a and b to find each other through EndpointSlices');

    const served = api.served('endpointslices');
    await waitUntil(() => api.served('endpointslices') >= served + 6, 'a few more list calls');
    assert.ok(!seesAlive(a, ['c']), 'endpoints with conditions.ready false are not joined');
    assert.ok(!seesAlive(a, ['other']), "another service's endpoints are not joined");
    assert.ok(
      api.requests.every(
        (r) =>
          r.path ===
          `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=app%3Dshop&limit=500`,
      ),
      'EndpointSlices only (no Endpoints call); the namespace comes from the service-account file',
    );

    api.pods[2]!.ready = true;
    await waitUntil(() => fullyMeshed([a, b, c]), 'c to be joined once its address is ready');
  });

  it('EndpointSlices: a missing conditions.ready counts as ready, serviceName selects by kubernetes.io/service-name', async () => {
    const port = await sharedPort(HOSTS);
    api.services = [
      { name: 'shop', labels: {}, selector: { app: 'shop' }, ports: [{ name: 'x', port: 1 }] },
      { name: 'other', labels: {}, selector: { app: 'other' }, ports: [{ name: 'x', port: 1 }] },
    ];
    api.pods = [
      { name: 'shop-a', ip: '127.0.0.2', labels: { app: 'shop' } },
      { name: 'shop-b', ip: '127.0.0.3', labels: { app: 'shop' }, readyUnset: true },
      { name: 'other', ip: '127.0.0.5', labels: { app: 'other' } },
    ];
    const k8s = () => strategy({ selector: undefined, serviceName: 'shop' });
    const a = await start('a', '127.0.0.2', port, k8s());
    const b = await start('b', '127.0.0.3', port, nullDiscovery());
    await start('other', '127.0.0.5', port, nullDiscovery());
    await waitUntil(() => fullyMeshed([a, b]), 'b (no ready condition at all) to be joined');
    const served = api.served('endpointslices');
    await waitUntil(() => api.served('endpointslices') >= served + 4, 'a few more list calls');
    assert.ok(!seesAlive(a, ['other']));
    assert.equal(
      api.requests[0]!.path,
      `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dshop&limit=500`,
    );
    assert.throws(
      () => new KubernetesStrategy({ ipLookupMode: 'pods', serviceName: 'shop' }),
      (err: unknown) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal((err.data as { field: string }).field, 'discovery.selector');
        return true;
      },
    );
  });

  it('falls back to v1 Endpoints when EndpointSlices are not served (404) or not allowed (403), logging the switch once', async () => {
    const port = await sharedPort(HOSTS);
    const svc = { name: 'shop', labels: { app: 'shop' }, selector: { app: 'shop' }, ports: [] };
    api.services = [svc];
    api.pods = [
      { name: 'shop-a', ip: '127.0.0.2', labels: { app: 'shop' } },
      { name: 'shop-b', ip: '127.0.0.3', labels: { app: 'shop' } },
    ];
    api.endpointSlices = false;
    const { logger, lines } = captureLogger();
    const a = await start('a', '127.0.0.2', port, strategy(), logger);
    const b = await start('b', '127.0.0.3', port, nullDiscovery());
    await waitUntil(() => fullyMeshed([a, b]), 'a to join b through Endpoints');
    const served = api.served('endpoints');
    await waitUntil(() => api.served('endpoints') >= served + 4, 'a few more list calls');
    const sliceCalls = api.requests.filter((r) => r.path.includes('/endpointslices?'));
    assert.deepEqual(
      sliceCalls.map((r) => r.status),
      [404],
      'one EndpointSlice call, answered 404; every later poll goes to Endpoints',
    );
    assert.equal(
      lines.filter((l) => /does not serve .*EndpointSlices/.test(String(l.msg))).length,
      1,
    );
    assert.ok(!lines.some((l) => l.level === WARN && l.strategy === 'kubernetes'));

    // A Role written for Endpoints only: 403 on slices, Endpoints used, a warning with the fix.
    const c = await start('c', '127.0.0.4', port, nullDiscovery());
    api.pods.push({ name: 'shop-c', ip: '127.0.0.4', labels: { app: 'shop' } });
    api.endpointSlices = true;
    api.forbidden = 'endpointslices';
    const { logger: logger2, lines: lines2 } = captureLogger();
    const d = await start('d', '127.0.0.5', port, strategy(), logger2);
    await waitUntil(() => fullyMeshed([a, b, c, d]), 'd to join through Endpoints after the 403');
    const rbac = lines2.filter((l) => /RBAC refuses "list" on endpointslices/.test(String(l.msg)));
    assert.equal(rbac.length, 1);
    assert.equal(rbac[0]!.level, WARN);
    assert.match(String(rbac[0]!.msg), /apiGroups \["discovery\.k8s\.io"\]/);
  });

  it('pages with limit/continue, restarts an expired list once, reads resourceVersion=0 when cached, logs each Warning once', async () => {
    const port = await sharedPort(HOSTS);
    api.services = [
      { name: 'shop', labels: { app: 'shop' }, selector: { app: 'shop' }, ports: [] },
    ];
    api.pods = HOSTS.map((ip, i) => ({ name: `shop-${i}`, ip, labels: { app: 'shop' } }));
    api.maxEndpointsPerSlice = 1; // four slices, one endpoint each
    api.warnings = ['discovery.k8s.io/v1beta1 is deprecated (test)', 'second warning'];
    const { logger, lines } = captureLogger();
    const a = await start(
      'a',
      HOSTS[0]!,
      port,
      strategy({ pageSize: 1, useCachedResources: true }),
      logger,
    );
    const others = await Promise.all(
      HOSTS.slice(1).map((h, i) => start(`n${i}`, h, port, nullDiscovery())),
    );
    await waitUntil(() => fullyMeshed([a, ...others]), 'every endpoint of every page to be joined');
    const pages = api.requests.filter((r) => r.path.includes('/endpointslices?')).slice(0, 4);
    assert.deepEqual(
      pages.map((r) => new URL(r.path, 'https://x').searchParams.get('limit')),
      ['1', '1', '1', '1'],
    );
    assert.equal(new URL(pages[0]!.path, 'https://x').searchParams.get('resourceVersion'), '0');
    assert.equal(new URL(pages[0]!.path, 'https://x').searchParams.get('continue'), null);
    for (const p of pages.slice(1)) {
      const q = new URL(p.path, 'https://x').searchParams;
      assert.ok(q.get('continue'), 'later pages carry the continue token');
      assert.equal(q.get('resourceVersion'), null, 'a continued list names no resourceVersion');
    }
    const served = api.served('endpointslices');
    await waitUntil(() => api.served('endpointslices') >= served + 8, 'two more full lists');
    for (const w of api.warnings) {
      const logged = lines.filter((l) => l.warning === w);
      assert.equal(logged.length, 1, `"${w}" logged once, not once per call`);
      assert.equal(logged[0]!.level, WARN);
    }

    // The continue token expires (410): the list starts over once, then fails the round.
    const before = api.requests.length;
    api.expireContinue = true;
    await waitUntil(
      () => lines.some((l) => l.level === WARN && l.status === 410),
      'the 410 after the restart to be reported',
    );
    const round = api.requests.slice(before);
    const first410 = round.findIndex((r) => r.status === 410);
    assert.ok(first410 >= 0);
    assert.equal(round[first410 + 1]!.path.includes('continue='), false, 'restarted from page one');
    assert.ok(fullyMeshed([a, ...others]), 'a failed round leaves members alone');
  });

  it('a wrong token: 401 logged once at warn, no crash, no members; a rotated token and RBAC fix are picked up', async () => {
    const port = await sharedPort(HOSTS);
    api.pods = [
      { name: 'shop-a', ip: '127.0.0.2', labels: { app: 'shop' } },
      { name: 'shop-b', ip: '127.0.0.3', labels: { app: 'shop' } },
    ];
    writeFileSync(path.join(dir, 'token'), 'stale-token');
    const { logger, lines } = captureLogger();
    const a = await start('a', '127.0.0.2', port, strategy({ ipLookupMode: 'pods' }), logger);
    const b = await start('b', '127.0.0.3', port, nullDiscovery());

    await waitUntil(
      () => api.requests.filter((r) => r.status === 401).length >= 4,
      'several rejected list calls',
    );
    assert.equal(a.members().length, 1, 'nothing joined without a valid token');
    const warns = lines.filter((l) => l.level === WARN && l.strategy === 'kubernetes');
    assert.equal(warns.length, 1, 'one warning per failure streak, not one per poll');
    assert.equal(warns[0]!.status, 401);
    assert.match(String(warns[0]!.msg), /kubernetes API 401: .*token/);

    // The API server accepts the token, but RBAC forbids listing pods.
    api.forbidden = 'pods';
    writeFileSync(path.join(dir, 'token'), TOKEN);
    await waitUntil(
      () => lines.some((l) => l.level === WARN && l.status === 403),
      'the 403 to be logged',
    );
    const forbidden = lines.find((l) => l.level === WARN && l.status === 403)!;
    assert.match(String(forbidden.msg), /RBAC: grant the service account "list" on "pods"/);
    assert.match(String(forbidden.message), /cannot list resource "pods"/);
    assert.equal(a.members().length, 1);

    api.forbidden = undefined;
    await waitUntil(() => seesAlive(a, ['b']) && seesAlive(b, ['a']), 'a to join b once allowed');
    assert.ok(lines.some((l) => l.msg === 'discovery source answers again'));
  });

  it('an unreachable API server is a logged poll failure, never a crash', async () => {
    const port = await sharedPort(HOSTS.slice(0, 1));
    // Built while the server still runs, so its URL is one that now refuses connections.
    const unreachable = strategy();
    await api.close();
    const errors: string[] = [];
    const onError = (m: unknown) =>
      errors.push(String((m as { metadata: { cause: string } }).metadata.cause));
    diagnostics.subscribe(CHANNELS.discoveryPollError, onError);
    try {
      const a = await start('a', '127.0.0.2', port, unreachable);
      await waitUntil(() => errors.length >= 2, 'two failed polls');
      assert.equal(errors[0], 'ECONNREFUSED');
      assert.equal(a.members().length, 1);
    } finally {
      diagnostics.unsubscribe(CHANNELS.discoveryPollError, onError);
      api = await FakeKubeApi.start({ ...serverPem, namespace: NS, token: TOKEN });
    }
  });

  it('refuses to start without a namespace, and validates options', async () => {
    rmSync(path.join(dir, 'namespace'));
    await assert.rejects(
      Foundation.start({ logLevel: 'silent', discovery: strategy() }),
      (err: unknown) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal((err.data as { field: string }).field, 'discovery.namespace');
        return true;
      },
    );
    assert.throws(
      () => new KubernetesStrategy({ selector: '' }),
      (err: unknown) => {
        assertCoded(err, 'FND_ERR_INVALID_OPTION');
        assert.equal((err.data as { field: string }).field, 'discovery.selector');
        return true;
      },
    );
    assert.ok(
      kubernetesSchema.safeParse({
        strategy: 'kubernetes',
        selector: 'app=x',
        ipLookupMode: 'pods',
      }).success,
    );
    assert.ok(
      !kubernetesSchema.safeParse({ strategy: 'kubernetes', selector: 'app=x', mode: 'ip' })
        .success,
    );
    assert.ok(
      !kubernetesSchema.safeParse({ strategy: 'kubernetes', selector: 'x', apiServer: 'ftp://x' })
        .success,
    );
  });

  it('reads the text of Warning headers (RFC 7234 form and bare)', () => {
    assert.deepEqual(
      warningTexts([
        'Content-Type',
        'x',
        'Warning',
        '299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"',
        'warning',
        '299 - "a \\"quoted\\" word"',
        'Warning',
        'plain text',
      ]),
      [
        'v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice',
        'a "quoted" word',
        'plain text',
      ],
    );
  });

  it('finds the API server: apiServer, then master, then the in-cluster env, then the default name', () => {
    const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' };
    assert.equal(
      apiServerUrl({ apiServer: 'http://127.0.0.1:8001/', master: 'm' }, env),
      'http://127.0.0.1:8001',
    );
    assert.equal(apiServerUrl({ master: 'k8s.example:6443' }, env), 'https://k8s.example:6443');
    assert.equal(apiServerUrl({}, env), 'https://[fd00::1]:6443');
    assert.equal(
      apiServerUrl({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }),
      'https://10.96.0.1:443',
    );
    assert.equal(apiServerUrl({}, {}), 'https://kubernetes.default.svc');
  });
});
