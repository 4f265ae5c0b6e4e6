/**
 * The proxy controllers (TailscaleEndpoints' StatefulSets, Secrets, per-proxy Roles and RoleBindings,
 * egress Services and EndpointSlices, finalizers, status, Events) with ONLY the chart's RBAC: a token
 * of the chart's ServiceAccount, on a real kube-apiserver with `--authorization-mode=RBAC`. `run` does
 * not start these controllers yet, so they run in-process here (as test/harness/proxy-controllers.ts does
 * with cluster-admin); once `run` does, test/chart/chart.test.ts's binary scenario covers them too.
 *
 * Creating a proxy's Role is the sharpest check: RBAC lets the operator grant only what it holds.
 * An ingress group hosting an HTTPS service also gets its shared certificate's Secret and a Role rule
 * for it; the group's own ServiceAccount is then checked for what tailscaled's kube store does with
 * that Secret (a GET, a JSON patch of tls.crt and tls.key) and for what it must not do.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import type { KubernetesObject, V1Role, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION } from '../../src/api/index.ts';
import { createEventRecorder, kubeEventSink, systemClock } from '../../src/controller-runtime/index.ts';
import { createInformer, createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { CURRENT_CAP_FILE } from '../../src/proxy/config.ts';
import { createProxyInformers, type ProxyInformers } from '../../src/proxy/informers.ts';
import { createProxyKube } from '../../src/proxy/kube.ts';
import { configSecretName, PROXY_FINALIZER, proxyBaseName } from '../../src/proxy/names.ts';
import { createProxyControllers, type ProxyControllers } from '../../src/resources/proxy-parents.ts';
import { createTailscaleClient } from '../../src/tailscale/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { helmBinary, type KubeObject, renderChart } from '../harness/helm/index.ts';
import { putTailnet } from '../harness/proxy-controllers.ts';
import { eventually } from '../harness/support/eventually.ts';
import { httpsPublisher, publishedStatus } from '../harness/support/published-service.ts';

const RELEASE_NS = 'tailscale-gateway';
const APP_NS = 'app';

let cp: StartedControlPlane;
let fake: FakeTailscale;
let asOperator: KubeClient;
let children: ProxyInformers;
let controllers: ProxyControllers;
let tailscaleGateways: ReturnType<typeof createInformer> | undefined;
const abort = new AbortController();
const logLines: string[] = [];

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}
const get = async <T>(path: string): Promise<T | undefined> => {
  const res = await cp.request(path);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  return (await ok(res)) as T;
};

beforeAll(async () => {
  await helmBinary();
  cp = await startControlPlane();
  const admin = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  const objects = await renderChart();
  await installCrds(
    cp,
    objects.filter((o) => o.kind === 'CustomResourceDefinition'),
  );
  for (const name of [RELEASE_NS, APP_NS])
    await ok(await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name } } }));
  // Only the ServiceAccount and its RBAC, for real.
  const rbacKinds = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
  for (const object of objects.filter((o: KubeObject) => rbacKinds.includes(o.kind)))
    await admin.applyObject(object as never, { fieldManager: 'chart-test', force: true });
  const serviceAccount = objects.find((o) => o.kind === 'ServiceAccount')!.metadata.name;
  const { status } = (await ok(
    await cp.request(`/api/v1/namespaces/${RELEASE_NS}/serviceaccounts/${serviceAccount}/token`, {
      method: 'POST',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 3600 },
      },
    }),
  )) as { status: { token: string } };
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: cp.server, caData: Buffer.from(cp.ca).toString('base64'), skipTLSVerify: false },
    ],
    users: [{ name: 'sa', token: status.token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'sa' }],
    currentContext: 'x',
  });
  asOperator = createKubeClient({ kubeConfig: kc });

  // The TailscaleTailnet the objects name, Ready as its controller (not run here) would leave it.
  await putTailnet(cp, 'corp', { status: 'True', reason: 'Ready', message: 'credentials valid' });
  fake = await startFakeTailscale();
  const api = createTailscaleClient({
    baseUrl: fake.url,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    retry: { maxAttempts: 2, baseMs: 10, capMs: 50 },
    writeRateLimit: { perSecond: 1000, burst: 1000 },
  });
  const log = createLogger({
    level: 'warn',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(...String(chunk).trim().split('\n'));
        done();
      },
    }),
  });
  children = createProxyInformers({ client: asOperator, operatorNamespace: RELEASE_NS, log });
  tailscaleGateways = createInformer({
    client: asOperator,
    path: `/apis/${API_VERSION}/tailscalegateways`,
    log,
  });
  controllers = createProxyControllers({
    client: asOperator,
    tailscaleGateways,
    kube: createProxyKube(asOperator),
    children,
    tailscale: (tailnet) => (tailnet === 'corp' ? api : undefined),
    operatorNamespace: RELEASE_NS,
    serverUrl: fake.url,
    clock: systemClock,
    events: createEventRecorder({ sink: kubeEventSink(asOperator), log }),
    log,
  });
  for (const informer of [...children.all(), ...controllers.ownInformers, tailscaleGateways])
    informer.start();
  void controllers.endpoints.start(abort.signal);
  void controllers.proxyGroups.start(abort.signal);
}, 600_000);

afterAll(async () => {
  abort.abort();
  await Promise.all([controllers?.endpoints.stop(0), controllers?.proxyGroups.stop(0)]);
  await Promise.all(
    [
      ...(children?.all() ?? []),
      ...(controllers?.ownInformers ?? []),
      ...(tailscaleGateways ? [tailscaleGateways] : []),
    ].map((i) => i.stop()),
  );
  await fake?.stop();
  await cp?.stop();
});

describe('proxies with only the chart RBAC', () => {
  const endpointsPath = `/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleendpoints/web`;
  const egress = proxyBaseName(APP_NS, 'web', 'egress');
  const stsPath = `/apis/apps/v1/namespaces/${RELEASE_NS}/statefulsets/${egress}`;

  test('a TailscaleEndpoints gets its finalizer, StatefulSet, Secrets, proxy Role and RoleBinding, egress Service and EndpointSlice', async () => {
    await ok(
      await cp.request(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleendpoints`, {
        method: 'POST',
        body: {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name: 'web' },
          spec: {
            tailnet: 'corp',
            endpoints: [{ name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000 }],
            proxy: { connectionType: 'egress', replicas: 1 },
          },
        },
      }),
    );
    const sts = await eventually(
      () => get<V1StatefulSet>(stsPath),
      (s) => s !== undefined,
    );
    const managed = `labelSelector=${encodeURIComponent('tailscale.com/managed=true')}`;
    const list = async (path: string) =>
      ((await ok(await cp.request(`${path}?${managed}`))) as { items: KubernetesObject[] }).items;
    const kinds = await eventually(
      async () => ({
        secrets: (await list(`/api/v1/namespaces/${RELEASE_NS}/secrets`)).length,
        serviceAccounts: (await list(`/api/v1/namespaces/${RELEASE_NS}/serviceaccounts`)).length,
        roles: (await list(`/apis/rbac.authorization.k8s.io/v1/namespaces/${RELEASE_NS}/roles`)).length,
        roleBindings: (await list(`/apis/rbac.authorization.k8s.io/v1/namespaces/${RELEASE_NS}/rolebindings`))
          .length,
        services: (await list(`/api/v1/namespaces/${APP_NS}/services`)).length,
      }),
      (k) => Object.values(k).every((n) => n > 0),
    );
    expect(kinds.roles).toBeGreaterThan(0);
    const endpoints = await get<{ metadata: { finalizers?: string[] }; status?: { conditions?: unknown[] } }>(
      endpointsPath,
    );
    expect(endpoints?.metadata.finalizers).toContain(PROXY_FINALIZER);

    // Play the StatefulSet controller: a ready Pod with an IP; the operator writes the EndpointSlice.
    await ok(
      await cp.request(`/api/v1/namespaces/${RELEASE_NS}/pods`, {
        method: 'POST',
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `${egress}-0`, labels: sts!.spec!.template.metadata!.labels },
          spec: { containers: [{ name: 'tailscale', image: 'tailscale/tailscale' }] },
        },
      }),
    );
    await ok(
      await cp.request(`/api/v1/namespaces/${RELEASE_NS}/pods/${egress}-0/status`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: {
          status: {
            podIP: '10.1.0.1',
            podIPs: [{ ip: '10.1.0.1' }],
            conditions: [{ type: 'Ready', status: 'True' }],
          },
        },
      }),
    );
    await eventually(
      () => list(`/apis/discovery.k8s.io/v1/namespaces/${APP_NS}/endpointslices`),
      (items) => items.length > 0,
    );
    // Status is written (the status subresource).
    await eventually(
      () => get<{ status?: { conditions?: unknown[] } }>(endpointsPath),
      (e) => (e?.status?.conditions?.length ?? 0) > 0,
    );
  });

  test('deleting it tears everything down and drops the finalizer', async () => {
    await ok(await cp.request(endpointsPath, { method: 'DELETE' }));
    // Play the garbage collector for the foreground deletion of the StatefulSet.
    await eventually(
      () => get<V1StatefulSet>(stsPath),
      (s) => s === undefined || s.metadata?.deletionTimestamp !== undefined,
    );
    const pod = await cp.request(`/api/v1/namespaces/${RELEASE_NS}/pods/${egress}-0?gracePeriodSeconds=0`, {
      method: 'DELETE',
    });
    await pod.body?.cancel();
    if (await get(stsPath))
      await ok(
        await cp.request(stsPath, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { metadata: { finalizers: null } },
        }),
      );
    await eventually(
      () => get(endpointsPath),
      (e) => e === undefined,
    );
  });

  test('a TailscaleProxyGroup gets its StatefulSet, finalizer and status', async () => {
    await ok(
      await cp.request(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleproxygroups`, {
        method: 'POST',
        body: {
          apiVersion: API_VERSION,
          kind: 'TailscaleProxyGroup',
          metadata: { name: 'shared' },
          spec: { type: 'ingress', tailnet: 'corp', replicas: 1, hostnamePrefix: 'gw' },
        },
      }),
    );
    const base = proxyBaseName(APP_NS, 'shared', 'pg');
    await eventually(
      () => get<V1StatefulSet>(`/apis/apps/v1/namespaces/${RELEASE_NS}/statefulsets/${base}`),
      (s) => s !== undefined,
    );
    const group = await eventually(
      () =>
        get<{ metadata: { finalizers?: string[] }; status?: { conditions?: unknown[] } }>(
          `/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleproxygroups/shared`,
        ),
      (g) => (g?.status?.conditions?.length ?? 0) > 0,
    );
    expect(group?.metadata.finalizers).toContain(PROXY_FINALIZER);
  });

  test('an HTTPS service on the group: its certificate Secret and Role rule; the group ServiceAccount can read and patch that Secret only', async () => {
    const base = proxyBaseName(APP_NS, 'shared', 'pg');
    const dns = 'grafana.tail1234.ts.net';
    const tsgwPath = `/apis/${API_VERSION}/namespaces/${APP_NS}/tailscalegateways/tsgw`;
    await ok(
      await cp.request(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscalegateways`, {
        method: 'POST',
        body: httpsPublisher({ name: 'tsgw', proxyGroup: 'shared' }),
      }),
    );
    // The services controller's part (not run here): the service is published with its DNS name.
    await ok(
      await cp.request(`${tsgwPath}/status`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: publishedStatus(dns, 'http://envoy.envoy-gateway-system.svc.cluster.local:80'),
      }),
    );
    const certPath = `/api/v1/namespaces/${RELEASE_NS}/secrets/${dns}`;
    await eventually(
      () => get<{ type: string }>(certPath),
      (s) => s?.type === 'kubernetes.io/tls',
    );
    await eventually(
      () => get<V1Role>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${RELEASE_NS}/roles/${base}`),
      (r) => r?.rules?.some((rule) => rule.resourceNames?.includes(dns)) ?? false,
    );
    await ok(
      await cp.request(`/api/v1/namespaces/${RELEASE_NS}/secrets`, {
        method: 'POST',
        body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'someone-else' } },
      }),
    );

    // The group's ServiceAccount, as the proxies' tailscaled uses it.
    const { status } = (await ok(
      await cp.request(`/api/v1/namespaces/${RELEASE_NS}/serviceaccounts/${base}/token`, {
        method: 'POST',
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 600 },
        },
      }),
    )) as { status: { token: string } };
    const asProxy = (path: string, init: { method?: string; body?: unknown; contentType?: string } = {}) =>
      fetch(`${cp.server}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${status.token}`,
          ...(init.contentType ? { 'content-type': init.contentType } : {}),
        },
        ...(init.body ? { body: JSON.stringify(init.body) } : {}),
        tls: { ca: cp.ca },
      } as RequestInit).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      });
    expect(await asProxy(certPath)).toBe(200);
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    expect(
      await asProxy(certPath, {
        method: 'PATCH',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/data/tls.crt', value: b64('cert') },
          { op: 'add', path: '/data/tls.key', value: b64('key') },
        ],
      }),
    ).toBe(200);
    expect(await asProxy(`/api/v1/namespaces/${RELEASE_NS}/secrets/someone-else`)).toBe(403);
    const selector = encodeURIComponent('tailscale.com/secret-type=certs');
    expect(await asProxy(`/api/v1/namespaces/${RELEASE_NS}/secrets?labelSelector=${selector}`)).toBe(403);
    expect(await asProxy(certPath, { method: 'DELETE' })).toBe(403);

    // With the certificate there, the operator (chart RBAC) advertises the service.
    await eventually(
      async () => {
        const secret = await get<V1Secret>(
          `/api/v1/namespaces/${RELEASE_NS}/secrets/${configSecretName(base, 0)}`,
        );
        const file = secret?.data?.[CURRENT_CAP_FILE];
        return file
          ? (JSON.parse(Buffer.from(file, 'base64').toString()) as { AdvertiseServices?: string[] })
          : {};
      },
      (config) => config.AdvertiseServices?.includes('svc:grafana') ?? false,
    );
  });

  test('nothing was refused', () => {
    expect(logLines.filter((line) => /forbidden|\b403\b|Unauthorized/i.test(line))).toEqual([]);
  });
});
