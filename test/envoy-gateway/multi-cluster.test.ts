/**
 * Tailscale Services across clusters, end to end: two compiled operators (`run`), each with its own
 * kube-apiserver (two clusters: separate identities `--operator-id`/`--cluster-id`, separate objects,
 * nobody fights over a status), sharing one fake Tailscale control plane (one tailnet). Both publish
 * the service `web` from a TailscaleGateway through an ingress TailscaleProxyGroup.
 *
 * Checked: exactly one Tailscale Service with both consumers, ports and tags; no PUT while both keep
 * reconciling after convergence; every config Secret version either proxy group ever had advertises
 * only services it also serves (a watch records every version); status with VIPs, DNS name, owner,
 * consumers and the other cluster; an HTTPRoute attached to the Gateway joins our routes on the service
 * at once; the other cluster's copy as a priority-1 member of the clusters the hooks return (grpc-js);
 * deletion: the first cluster detaches (service stays), the second's detach deletes it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import * as grpc from '@grpc/grpc-js';
import { renderCrds } from '../../src/api/index.ts';
import { REGISTRY_ANNOTATION } from '../../src/coordination/index.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from '../../src/proxy/config.ts';
import { configSecretName, proxyBaseName } from '../../src/proxy/names.ts';
import { REVISION_ANNOTATION } from '../../src/resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { envoyGatewayCrds } from '../harness/envoy-gateway/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';
import { loadProtoPackage } from '../harness/support/proto-package.ts';

// biome-ignore lint/suspicious/noExplicitAny: proto-loader hands back untyped objects; the assertions check their shape.
type Message = Record<string, any>;
type Callback = (error: grpc.ServiceError | null, response?: Message) => void;
type Client = grpc.Client & Record<string, (request: unknown, callback: Callback) => void>;

const NS = 'mc';
const TS = '/apis/gateway.tailscale.com/v1alpha1';
const GW = '/apis/gateway.networking.k8s.io/v1';
const SERVICE = 'svc:web';
const SERVICE_PUT = { method: 'PUT', endpoint: '/tailnet/{tailnet}/vip-services/{name}' };
const SUFFIX = 'tail1234.ts.net';

interface Cluster {
  id: 'a' | 'b';
  cp: StartedControlPlane;
  operator?: RunningBinary;
  grpc?: Client;
  /** Every version of every config Secret of the proxy group, in watch order. */
  configVersions: Record<string, string>[];
  stopWatch?: () => void;
}

interface PublishedStatus {
  tailnet: string;
  name: string;
  service: string;
  state: string;
  addresses?: string[];
  dnsName?: string;
  owner?: string;
  consumers?: number;
  remoteClusters?: string[];
  advertisedBy?: number;
}
interface TsgwObject {
  metadata: { finalizers?: string[]; annotations?: Record<string, string> };
  status?: {
    services?: PublishedStatus[];
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

let fake: FakeTailscale;
const clusters: Cluster[] = [];

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}
const apply = async (c: Cluster, path: string, body: object) =>
  ok(
    await c.cp.request(path, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'mc-test', force: 'true' },
    }),
  );
const get = async <T>(c: Cluster, path: string): Promise<T | undefined> => {
  const res = await c.cp.request(path);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  return (await ok(res)) as T;
};
const tsgwPath = `${TS}/namespaces/${NS}/tailscalegateways/tsgw`;
const tsgw = (c: Cluster) => get<TsgwObject>(c, tsgwPath);
const published = (o: TsgwObject | undefined) => o?.status?.services?.find((s) => s.name === 'web');
const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
const registry = () => {
  const text = fake.state.services.get(SERVICE)?.annotations?.[REGISTRY_ANNOTATION];
  return text
    ? (JSON.parse(text) as { consumers: Record<string, { clusterId: string; routes: string[] }> })
    : undefined;
};

/** Records every version of the proxy group's config Secrets (watch from the start). */
function watchConfigSecrets(c: Cluster): void {
  const abort = new AbortController();
  c.stopWatch = () => abort.abort();
  const selector = encodeURIComponent('tailscale.com/secret-type=config');
  void (async () => {
    const res = await fetch(
      `${c.cp.server}/api/v1/namespaces/${NS}/secrets?watch=1&labelSelector=${selector}`,
      {
        signal: abort.signal,
        tls: { ca: c.cp.ca, cert: c.cp.cert, key: c.cp.key },
      } as RequestInit,
    );
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          const event = JSON.parse(line) as {
            type: string;
            object: { metadata: { name: string }; data?: Record<string, string> };
          };
          if (event.type !== 'ADDED' && event.type !== 'MODIFIED') continue;
          const data = Object.fromEntries(
            Object.entries(event.object.data ?? {}).map(([k, v]) => [k, b64(v)]),
          );
          c.configVersions.push({ __name: event.object.metadata.name, ...data });
        }
      }
    } catch {
      // aborted
    }
  })();
}

/** Services advertised and served by one config Secret version. */
function advertisedAndServed(version: Record<string, string>): { advertised: string[]; served: string[] } {
  const cap = version[CURRENT_CAP_FILE] ? JSON.parse(version[CURRENT_CAP_FILE]!) : {};
  const serve = version[SERVE_CONFIG_KEY] ? JSON.parse(version[SERVE_CONFIG_KEY]!) : {};
  return { advertised: cap.AdvertiseServices ?? [], served: Object.keys(serve.Services ?? {}) };
}

async function startCluster(id: 'a' | 'b'): Promise<Cluster> {
  const cp = await startControlPlane();
  const c: Cluster = { id, cp, configVersions: [] };
  const gatewayApi = (await envoyGatewayCrds()).filter((crd) =>
    (crd as { metadata: { name: string } }).metadata.name.endsWith('.gateway.networking.k8s.io'),
  );
  await installCrds(cp, [...gatewayApi, ...renderCrds()], 60_000);
  await ok(await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: NS } } }));
  watchConfigSecrets(c);
  await ok(
    await cp.request(`/api/v1/namespaces/${NS}/secrets`, {
      method: 'POST',
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'corp-oauth' },
        stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
      },
    }),
  );
  await apply(c, `${TS}/tailscaletailnets/corp`, {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp' },
    spec: { oauthSecretRef: { name: 'corp-oauth', namespace: NS } },
  });
  await apply(c, `${TS}/namespaces/${NS}/tailscaleproxygroups/ingress`, {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleProxyGroup',
    metadata: { name: 'ingress', namespace: NS },
    spec: { type: 'ingress', tailnet: 'corp', replicas: 2 },
  });
  await apply(c, `${GW}/namespaces/${NS}/gateways/eg`, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: NS },
    spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
  });
  await apply(c, `${TS}/namespaces/${NS}/tailscaleendpoints/web-local`, {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleEndpoints',
    metadata: { name: 'web-local', namespace: NS },
    spec: {
      tailnet: 'corp',
      endpoints: [{ name: 'web', externalTarget: `web-${id}.app.svc.cluster.local:80`, port: 80 }],
      proxy: { connectionType: 'ingress', replicas: 1 },
    },
  });
  c.operator = await startOperator({
    cp,
    namespace: NS,
    tailscaleApiUrl: fake.url,
    args: ['--operator-id', `tsgw-operator-${id}`, '--cluster-id', `cluster-${id}`],
  });
  const listening = await c.operator.waitForLog(/extension server listening/, 30_000);
  c.grpc = grpcClient(String(listening.url).replace(/^http:\/\//, ''));
  return c;
}

let Service: grpc.ServiceClientConstructor;
function grpcClient(address: string): Client {
  return new Service(address, grpc.credentials.createInsecure()) as unknown as Client;
}
const call = (c: Cluster, method: string, request: unknown) =>
  new Promise<Message>((resolve, reject) =>
    c.grpc![method]!(request, (error, response) => (error ? reject(error) : resolve(response ?? {}))),
  );

const publish = (c: Cluster, extra: string[] = []) =>
  apply(c, tsgwPath, {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleGateway',
    metadata: { name: 'tsgw', namespace: NS },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ingress: {
            proxyGroup: 'ingress',
            services: [
              {
                name: 'web',
                target: { name: 'envoy-eg', namespace: 'envoy-gateway-system' },
                tailscaleEndpoints: 'web-local',
              },
              ...extra.map((name) => ({
                name,
                target: { name: 'envoy-eg', namespace: 'envoy-gateway-system' },
              })),
            ],
          },
        },
      ],
    },
  });
/** An annotation edit: wakes the services controller (one more reconcile, which must write nothing). */
const touch = async (c: Cluster, n: number) =>
  ok(
    await c.cp.request(tsgwPath, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { 'mc-test/touch': String(n) } } },
    }),
  );

beforeAll(async () => {
  const pkg = (await loadProtoPackage(['envoygateway/extension/service.proto'])) as Message;
  Service = pkg.envoygateway.extension.EnvoyGatewayExtension as grpc.ServiceClientConstructor;
  fake = startFakeTailscale();
  fake.state.seedDevice({ name: `laptop.${SUFFIX}` });
  const [a, b] = await Promise.all([startCluster('a'), startCluster('b')]);
  clusters.push(a, b);
}, 240_000);

afterAll(async () => {
  for (const c of clusters) {
    c.stopWatch?.();
    c.grpc?.close();
    c.operator?.process.kill('SIGKILL');
  }
  await Promise.all(clusters.map((c) => c.cp.stop()));
  await fake?.stop();
});

const [A, B] = [() => clusters[0]!, () => clusters[1]!];

describe('one Tailscale Service published from two clusters', () => {
  test('A publishes: created with ports, tags and A as consumer; its proxies serve, then advertise it', async () => {
    await publish(A());
    // Replicas' config Secrets are written one by one: wait for both.
    const status = await eventually(
      () => tsgw(A()),
      (o) => published(o)?.state === 'Advertised' && published(o)?.advertisedBy === 2,
      { timeoutMs: 60_000 },
    );
    const entry = published(status)!;
    const service = fake.state.services.get(SERVICE)!;
    expect(service.ports).toEqual(['tcp:443', 'tcp:80']);
    expect(service.tags).toEqual(['tag:k8s']);
    expect(entry.addresses).toEqual(service.addrs);
    expect(entry.addresses?.[0]).toMatch(/^100\./);
    expect(entry.dnsName).toBe(`web.${SUFFIX}`);
    expect(entry.owner).toBe('tsgw-operator-a');
    expect(entry.consumers).toBe(1);
    expect(entry.advertisedBy).toBe(2);
    expect(status?.metadata.finalizers).toContain('gateway.tailscale.com/tailscale-services');
    expect(status?.status?.conditions?.find((c) => c.type === 'TailscaleServices')).toMatchObject({
      status: 'True',
      reason: 'Advertised',
    });
    expect(Object.keys(registry()!.consumers)).toEqual(['tsgw-operator-a']);
    // The served service forwards both ports to the target Service.
    const base = proxyBaseName(NS, 'ingress', 'pg');
    const config = await get<{ data: Record<string, string> }>(
      A(),
      `/api/v1/namespaces/${NS}/secrets/${configSecretName(base, 0)}`,
    );
    expect(JSON.parse(b64(config!.data[SERVE_CONFIG_KEY]!)).Services[SERVICE]).toEqual({
      TCP: {
        '80': { TCPForward: 'envoy-eg.envoy-gateway-system.svc.cluster.local:80' },
        '443': { TCPForward: 'envoy-eg.envoy-gateway-system.svc.cluster.local:443' },
      },
    });
  }, 90_000);

  test('B publishes the same name: it attaches (one service, both consumers), B sees cluster-a as remote', async () => {
    const addrs = fake.state.services.get(SERVICE)!.addrs;
    await publish(B());
    const status = await eventually(
      () => tsgw(B()),
      (o) => published(o)?.state === 'Advertised',
      { timeoutMs: 60_000 },
    );
    expect([...fake.state.services.keys()]).toEqual([SERVICE]);
    expect(fake.state.services.get(SERVICE)!.addrs).toEqual(addrs);
    const consumers = registry()!.consumers;
    expect(Object.keys(consumers).sort()).toEqual(['tsgw-operator-a', 'tsgw-operator-b']);
    expect(consumers['tsgw-operator-b']!.clusterId).toBe('cluster-b');
    expect(consumers['tsgw-operator-b']!.routes).toEqual([`${NS}/TailscaleGateway/tsgw`]);
    const entry = published(status)!;
    expect(entry.owner).toBe('tsgw-operator-a');
    expect(entry.consumers).toBe(2);
    expect(entry.remoteClusters).toEqual(['cluster-a']);
    expect(entry.addresses).toEqual(addrs);
  }, 90_000);

  test('no PUT after convergence while both keep reconciling', async () => {
    // A learns about B on its next reconcile; let both settle.
    await touch(A(), 0);
    await eventually(
      () => tsgw(A()),
      (o) => published(o)?.remoteClusters?.[0] === 'cluster-b',
      { timeoutMs: 30_000 },
    );
    const before = fake.requests.count(SERVICE_PUT);
    // Create, record the VIPs the control plane assigned in the registry, attach the second cluster.
    expect(before).toBe(3);
    const gets = fake.requests.count({ method: 'GET', endpoint: SERVICE_PUT.endpoint });
    for (let n = 1; n <= 5; n++) {
      await Promise.all([touch(A(), n), touch(B(), n)]);
      await eventually(
        () => fake.requests.count({ method: 'GET', endpoint: SERVICE_PUT.endpoint }),
        (count) => count >= gets + 2 * n,
      );
    }
    expect(fake.requests.count(SERVICE_PUT) - before).toBe(0);
  }, 60_000);

  test('both publish a new service at the same moment: one Tailscale Service, both consumers, then no PUT', async () => {
    const puts = fake.requests.count(SERVICE_PUT);
    await Promise.all([publish(A(), ['race']), publish(B(), ['race'])]);
    for (const c of clusters)
      await eventually(
        () => tsgw(c),
        (o) => o?.status?.services?.find((s) => s.name === 'race')?.consumers === 2,
        { timeoutMs: 30_000 },
      );
    expect([...fake.state.services.keys()].sort()).toEqual(['svc:race', SERVICE]);
    const race = JSON.parse(fake.state.services.get('svc:race')!.annotations![REGISTRY_ANNOTATION]!) as {
      consumers: Record<string, unknown>;
    };
    expect(Object.keys(race.consumers).sort()).toEqual(['tsgw-operator-a', 'tsgw-operator-b']);
    const converged = fake.requests.count(SERVICE_PUT);
    // Create, record the VIPs, attach the other; a create race (last writer wins) costs a repair or two.
    expect(converged - puts).toBeGreaterThanOrEqual(3);
    expect(converged - puts).toBeLessThanOrEqual(6);
    for (let n = 10; n < 13; n++) await Promise.all([touch(A(), n), touch(B(), n)]);
    await eventually(
      () => tsgw(A()),
      (o) => o?.metadata.annotations?.['mc-test/touch'] === '12',
    );
    const gets = fake.requests.count({ method: 'GET', endpoint: SERVICE_PUT.endpoint });
    await Promise.all([touch(A(), 13), touch(B(), 13)]);
    await eventually(
      () => fake.requests.count({ method: 'GET', endpoint: SERVICE_PUT.endpoint }),
      (count) => count >= gets + 4,
    );
    expect(fake.requests.count(SERVICE_PUT)).toBe(converged);
  }, 60_000);

  test('every config Secret version that advertises a service also serves it', () => {
    for (const c of clusters) {
      const versions = c.configVersions.filter((v) => v.__name?.includes('-pg-'));
      expect(versions.some((v) => advertisedAndServed(v).advertised.includes(SERVICE))).toBe(true);
      for (const version of versions) {
        const { advertised, served } = advertisedAndServed(version);
        for (const service of advertised) expect(served).toContain(service);
      }
    }
  });

  test('an HTTPRoute attached to the Gateway joins our routes on the service at once; removed, it leaves', async () => {
    const route = `${GW}/namespaces/${NS}/httproutes/shop`;
    await apply(A(), route, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'shop', namespace: NS },
      spec: { parentRefs: [{ name: 'eg' }], rules: [{ backendRefs: [{ name: 'shop', port: 80 }] }] },
    });
    await eventually(
      () => registry()?.consumers['tsgw-operator-a']?.routes,
      (routes) => routes?.includes(`${NS}/HTTPRoute/shop`) === true,
      { timeoutMs: 15_000 },
    );
    await ok(await A().cp.request(route, { method: 'DELETE' }));
    await eventually(
      () => registry()?.consumers['tsgw-operator-a']?.routes,
      (routes) => JSON.stringify(routes) === JSON.stringify([`${NS}/TailscaleGateway/tsgw`]),
      { timeoutMs: 15_000 },
    );
  }, 40_000);

  test('the hooks: the other cluster’s copy is a priority-1 member after the local endpoint, and the Gateway revision moved', async () => {
    const vip = fake.state.services.get(SERVICE)!.addrs[0]!;
    for (const c of clusters) {
      const gateway = await get<TsgwObject>(c, `${GW}/namespaces/${NS}/gateways/eg`);
      expect(gateway?.metadata.annotations?.[REVISION_ANNOTATION]).toBeDefined();
      const endpoints = await get<object>(c, `${TS}/namespaces/${NS}/tailscaleendpoints/web-local`);
      const response = await eventually(
        () =>
          call(c, 'PostClusterModify', {
            cluster: {
              name: 'httproute/mc/web/rule/0',
              type: 'EDS',
              edsClusterConfig: { edsConfig: { ads: {} }, serviceName: 'httproute/mc/web/rule/0' },
              connectTimeout: { seconds: '10' },
            },
            postClusterContext: {
              backendExtensionResources: [{ unstructuredBytes: Buffer.from(JSON.stringify(endpoints)) }],
            },
          }),
        (r) => (r.cluster?.loadAssignment?.endpoints?.length ?? 0) === 2,
        { timeoutMs: 15_000 },
      );
      const localities = response.cluster.loadAssignment.endpoints as Message[];
      const address = (l: Message) => l.lbEndpoints[0].endpoint.address.socketAddress;
      expect(localities.map((l) => l.priority ?? 0)).toEqual([0, 1]);
      expect(address(localities[0]!)).toMatchObject({
        address: `web-${c.id}.app.svc.cluster.local`,
        portValue: 80,
      });
      expect(address(localities[1]!)).toMatchObject({ address: vip, portValue: 80 });
      expect(localities[1]!.locality.subZone).toBe('web-local/remote-web');
    }
  }, 40_000);
});

describe('detach on deletion', () => {
  test('A deleted: its consumer goes, the service stays for B; its proxies stop advertising first', async () => {
    await ok(await A().cp.request(tsgwPath, { method: 'DELETE' }));
    await eventually(
      () => tsgw(A()),
      (o) => o === undefined,
      { timeoutMs: 30_000 },
    );
    expect(Object.keys(registry()!.consumers)).toEqual(['tsgw-operator-b']);
    const base = proxyBaseName(NS, 'ingress', 'pg');
    await eventually(
      () =>
        get<{ data: Record<string, string> }>(
          A(),
          `/api/v1/namespaces/${NS}/secrets/${configSecretName(base, 0)}`,
        ),
      (s) => s !== undefined && !b64(s.data[SERVE_CONFIG_KEY] ?? '').includes(SERVICE),
      { timeoutMs: 30_000 },
    );
    for (const version of A().configVersions) {
      const { advertised, served } = advertisedAndServed(version);
      for (const service of advertised) expect(served).toContain(service);
    }
  }, 60_000);

  test('B deleted: the last consumer detaches and the service is deleted', async () => {
    await ok(await B().cp.request(tsgwPath, { method: 'DELETE' }));
    await eventually(
      () => fake.state.services.has(SERVICE),
      (present) => !present,
      { timeoutMs: 30_000 },
    );
    await eventually(
      () => tsgw(B()),
      (o) => o === undefined,
      { timeoutMs: 30_000 },
    );
  }, 60_000);
});
