/**
 * TailscaleGateway end to end without Envoy Gateway: the compiled binary's `run` against a real
 * kube-apiserver with the Gateway API CRDs except UDPRoute and TLSRoute (missing kinds must not block
 * anything). Status conditions and lists, the Gateway revision annotation, RouteReferences on a
 * TailscaleEndpoints, the index's /health check and metrics, and zero writes once settled.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { REVISION_ANNOTATION } from '../../src/resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { envoyGatewayCrds } from '../harness/envoy-gateway/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

const NS = 'tsgw-it';
const GW = '/apis/gateway.networking.k8s.io/v1';
const TS = '/apis/gateway.tailscale.com/v1alpha1';
let cp: StartedControlPlane;
let operator: RunningBinary;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Obj {
  metadata: { resourceVersion: string; generation?: number; annotations?: Record<string, string> };
  status?: {
    conditions?: Condition[];
    tailnets?: { name: string; services: number; routes?: { cluster: string }[] }[];
    routes?: { kind: string; name: string; supported: boolean }[];
    revision?: string;
  };
}

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}
const apply = async (path: string, body: object) =>
  ok(
    await cp.request(path, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'tsgw-it', force: 'true' },
    }),
  );
const get = async (path: string) => (await ok(await cp.request(path))) as Obj;
const cond = (o: Obj, type: string) => o.status?.conditions?.find((c) => c.type === type);
const endpoints = (name: string, endpointName: string, port = 80) =>
  apply(`${TS}/namespaces/${NS}/tailscaleendpoints/${name}`, {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleEndpoints',
    metadata: { name, namespace: NS },
    spec: {
      tailnet: 'corp',
      endpoints: [{ name: endpointName, tailscaleIP: '100.64.0.5', port, protocol: 'HTTP' }],
      proxy: { connectionType: 'egress' },
    },
  });

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))]
    .map((m) => Number(m[1]))
    .reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  cp = await startControlPlane();
  const gatewayApi = (await envoyGatewayCrds()).filter((crd) => {
    const name = (crd as { metadata: { name: string } }).metadata.name;
    return name.endsWith('.gateway.networking.k8s.io') && !/^(udproutes|tlsroutes)\./.test(name);
  });
  await installCrds(cp, [...gatewayApi, ...renderCrds()], 60_000);
  await ok(await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: NS } } }));
  operator = await startOperator({ cp, namespace: NS });
}, 180_000);

afterAll(async () => {
  operator?.process.kill('SIGKILL');
  await cp?.stop();
});

describe('TailscaleGateway against a real API server', () => {
  test('ready and the index complete though UDPRoute and TLSRoute are not installed', async () => {
    await eventually(
      async () => (await fetch(`${operator.httpUrl}/readyz`)).status,
      (s) => s === 200,
    );
    await eventually(
      () => metric('tsgw_resource_index_complete'),
      (v) => v === 1,
    );
    const health = (await (await fetch(`${operator.httpUrl}/health`)).json()) as {
      checks: { name: string; ok: boolean }[];
    };
    expect(health.checks.find((c) => c.name === 'resource-index')?.ok).toBe(true);
  });

  test('a missing Gateway: Accepted False / GatewayNotFound; the Gateway appears: Accepted, Programmed', async () => {
    await apply(`${TS}/namespaces/${NS}/tailscalegateways/tsgw`, {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleGateway',
      metadata: { name: 'tsgw', namespace: NS },
      spec: {
        gatewayRef: { name: 'eg' },
        tailnets: [{ name: 'corp', tailscaleTailnetRef: { name: 'corp' } }],
      },
    });
    const missing = await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscalegateways/tsgw`),
      (o) => cond(o, 'Accepted')?.reason === 'GatewayNotFound',
    );
    expect(cond(missing, 'Programmed')?.reason).toBe('NotAccepted');

    await apply(`${GW}/namespaces/${NS}/gateways/eg`, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'eg', namespace: NS },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
    });
    await endpoints('web', 'web-svc');
    const tsgw = await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscalegateways/tsgw`),
      (o) => cond(o, 'Programmed')?.status === 'True' && o.status?.tailnets?.[0]?.services === 1,
    );
    expect(cond(tsgw, 'Accepted')?.status).toBe('True');
    expect(cond(tsgw, 'ResolvedRefs')?.reason).toBe('TailnetNotFound');
    const gateway = await get(`${GW}/namespaces/${NS}/gateways/eg`);
    expect(gateway.metadata.annotations?.[REVISION_ANNOTATION]).toBe(tsgw.status?.revision);
  });

  test('an HTTPRoute and a TCPRoute naming TailscaleEndpoints: listed on the TailscaleGateway, RouteReferences on the endpoints', async () => {
    const backend = { group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'web' };
    await apply(`${GW}/namespaces/${NS}/httproutes/web`, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: NS },
      spec: { parentRefs: [{ name: 'eg' }], rules: [{ backendRefs: [backend] }] },
    });
    const referenced = await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscaleendpoints/web`),
      (o) => cond(o, 'RouteReferences')?.reason === 'Referenced',
    );
    expect(cond(referenced, 'RouteReferences')?.message).toBe(`backendRef of HTTPRoute ${NS}/web (rule 0)`);

    await apply(`${GW}/namespaces/${NS}/tcproutes/web-tcp`, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TCPRoute',
      metadata: { name: 'web-tcp', namespace: NS },
      spec: { parentRefs: [{ name: 'eg' }], rules: [{ backendRefs: [{ ...backend, port: 80 }] }] },
    });
    const unsupported = await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscaleendpoints/web`),
      (o) => cond(o, 'RouteReferences')?.reason === 'UnsupportedRouteKind',
    );
    expect(cond(unsupported, 'RouteReferences')?.message).toContain('name: web-web-svc-egress, port: 80');
    const tsgw = await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscalegateways/tsgw`),
      (o) => (o.status?.routes?.length ?? 0) === 2,
    );
    expect(tsgw.status?.routes?.map((r) => [r.kind, r.name, r.supported])).toEqual([
      ['HTTPRoute', 'web', true],
      ['TCPRoute', 'web-tcp', false],
    ]);

    // The TCPRoute moves to the egress Service: the condition is back to Referenced.
    await apply(`${GW}/namespaces/${NS}/tcproutes/web-tcp`, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TCPRoute',
      metadata: { name: 'web-tcp', namespace: NS },
      spec: {
        parentRefs: [{ name: 'eg' }],
        rules: [{ backendRefs: [{ kind: 'Service', name: 'web-web-svc-egress', port: 80 }] }],
      },
    });
    await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscaleendpoints/web`),
      (o) => cond(o, 'RouteReferences')?.reason === 'Referenced',
    );
  });

  test('a new TailscaleEndpoints changes the Gateway revision; the Gateway spec is untouched', async () => {
    const before = await get(`${GW}/namespaces/${NS}/gateways/eg`);
    await endpoints('late', 'late-svc');
    const after = await eventually(
      () => get(`${GW}/namespaces/${NS}/gateways/eg`),
      (o) =>
        o.metadata.annotations?.[REVISION_ANNOTATION] !== before.metadata.annotations?.[REVISION_ANNOTATION],
    );
    expect(after.metadata.generation).toBe(before.metadata.generation);
    await eventually(
      () => get(`${TS}/namespaces/${NS}/tailscalegateways/tsgw`),
      (o) => o.status?.revision === after.metadata.annotations?.[REVISION_ANNOTATION],
    );
  });

  test('settled: reconciles write nothing (resourceVersions stay)', async () => {
    const paths = [
      `${TS}/namespaces/${NS}/tailscalegateways/tsgw`,
      `${GW}/namespaces/${NS}/gateways/eg`,
      `${TS}/namespaces/${NS}/tailscaleendpoints/web`,
    ];
    // Settled when the TailscaleGateway lists both endpoints objects' routes.
    await eventually(
      () => get(paths[0]!),
      (o) => o.status?.tailnets?.[0]?.services === 2 && cond(o, 'Programmed')?.status === 'True',
    );
    const versions = await Promise.all(paths.map(async (p) => (await get(p)).metadata.resourceVersion));
    const reconciles = await metric('controller_runtime_reconcile_total');
    // Touch something that maps to every controller without changing any outcome: a label on the route.
    await ok(
      await cp.request(`${GW}/namespaces/${NS}/httproutes/web`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { metadata: { labels: { touched: 'yes' } } },
      }),
    );
    await eventually(
      () => metric('controller_runtime_reconcile_total'),
      (n) => n > reconciles,
    );
    expect(await Promise.all(paths.map(async (p) => (await get(p)).metadata.resourceVersion))).toEqual(
      versions,
    );
  });
});
