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
          r.path === `/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dshop` &&
          r.authorization === `Bearer ${TOKEN}`,
      ),
      'list calls carry the selector and the bearer token',
    );

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

  it('endpoints mode (default): in-cluster env, namespace file, named port, ready addresses only', async () => {
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
    await waitUntil(() => fullyMeshed([a, b]), 'a and b to find each other through Endpoints');

    const served = api.served('endpoints');
    await waitUntil(() => api.served('endpoints') >= served + 6, 'a few more list calls');
    assert.ok(!seesAlive(a, ['c']), 'notReadyAddresses are not joined');
    assert.ok(!seesAlive(a, ['other']), "another service's endpoints are not joined");
    assert.ok(
      api.requests.every(
        (r) => r.path === `/api/v1/namespaces/${NS}/endpoints?labelSelector=app%3Dshop`,
      ),
      'the namespace comes from the service-account file',
    );

    api.pods[2]!.ready = true;
    await waitUntil(() => fullyMeshed([a, b, c]), 'c to be joined once its address is ready');
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
