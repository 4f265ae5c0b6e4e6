/**
 * Envoy Gateway itself as the test client (issue 6): a real kube-apiserver with the Gateway API and EG
 * CRDs (from the Go module cache) and ours, the compiled binary's `run`, and the real `envoy-gateway`
 * in Kubernetes mode with our extensionManager block pointing at that binary's gRPC port. The test
 * applies a Gateway, a TailscaleGateway, TailscaleEndpoints, an HTTPRoute with a TailscaleEndpoints
 * backendRef and a TailscaleRoutePolicy on it, then reads what EG's xDS server would send an Envoy of
 * that Gateway, and checks our clusters and routes are in it. No Envoy proxy is involved.
 *
 * Prints the hook call counts and latencies seen (our /metrics) and the time from applying the
 * HTTPRoute (or a TailscaleGateway's published service of mode HTTP) to EG's xDS carrying it. No timing
 * is asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { egressServiceName } from '../../src/model/egress-target.ts';
import { REVISION_ANNOTATION } from '../../src/resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { forwardedPath } from '../../src/testing/envoy-path.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import {
  EG_CONTROLLER_NAME,
  envoyGatewayCrds,
  type RunningEnvoyGateway,
  startEnvoyGateway,
} from '../harness/envoy-gateway/index.ts';
import { describeXds, type XdsState, type XdsWatch } from '../harness/envoy-gateway/xds-client.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';

const NS = 'apps';
const GATEWAY = 'eg';
const HOOKS = [
  'PostRouteModify',
  'PostVirtualHostModify',
  'PostHTTPListenerModify',
  'PostClusterModify',
  'PostTranslateModify',
];

let cp: StartedControlPlane;
let operator: RunningBinary;
let eg: RunningEnvoyGateway;
let xds: XdsWatch;
let routeToXdsMs = Number.NaN;
let endpointsToXdsMs = Number.NaN;
let editToXdsMs = Number.NaN;
let gatewayPolicyToXdsMs = Number.NaN;

async function ok(response: Response, what: string): Promise<unknown> {
  if (!response.ok) throw new Error(`${what}: ${response.status} ${await response.text()}`);
  return response.json();
}

const PLURALS: Record<string, string> = {
  GatewayClass: 'gatewayclasses',
  Gateway: 'gateways',
  HTTPRoute: 'httproutes',
  GRPCRoute: 'grpcroutes',
  TCPRoute: 'tcproutes',
  UDPRoute: 'udproutes',
  TLSRoute: 'tlsroutes',
  Service: 'services',
  EndpointSlice: 'endpointslices',
  TailscaleGateway: 'tailscalegateways',
  TailscaleEndpoints: 'tailscaleendpoints',
  TailscaleRoutePolicy: 'tailscaleroutepolicies',
  Namespace: 'namespaces',
};

function pathOf(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}): string {
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const ns = object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  return `${base}${ns}/${PLURALS[object.kind]}/${object.metadata.name}`;
}

/** Server-side apply, like `kubectl apply --server-side`. */
async function apply(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: unknown;
}): Promise<unknown> {
  return ok(
    await cp.request(pathOf(object), {
      method: 'PATCH',
      body: object,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'tsgw-e2e', force: 'true' },
    }),
    `applying ${object.kind} ${object.metadata.name}`,
  );
}

/**
 * None of our clusters on Gateway `l4`, which no TailscaleGateway joins. EG may translate a new route
 * before our index has seen it; PostTranslateModify then cannot tell which Gateway the translation is
 * for and adds every cluster (harmless extras, the safe fallback). So re-trigger EG's translation of
 * `l4` (a `gateway.envoyproxy.io/` annotation, which EG watches) until the translation it publishes was
 * attributed — bounded, and failing if our clusters never leave.
 */
async function expectNoTailscaleClusters(l4: { waitFor: XdsWatch['waitFor'] }): Promise<void> {
  const ours = (s: XdsState) => [...s.clusters.keys()].filter((name) => name.startsWith('tailscale/'));
  for (let nudge = 0; nudge < 10; nudge++) {
    const state = await l4.waitFor(() => true, 5_000, 'l4 xDS');
    if (ours(state).length === 0) return;
    await ok(
      await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/gateways/l4`, {
        method: 'PATCH',
        body: { metadata: { annotations: { 'gateway.envoyproxy.io/e2e-nudge': String(nudge) } } },
        contentType: 'application/merge-patch+json',
      }),
      'nudging l4',
    );
    await l4
      .waitFor((s) => ours(s).length === 0, 3_000, 'a re-translation of l4 without our clusters')
      .catch(() => undefined);
  }
  const state = await l4.waitFor(() => true, 5_000, 'l4 xDS');
  expect(ours(state)).toEqual([]);
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

async function eventually<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  attempts = 200,
): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < attempts; i++) {
    last = await probe();
    if (accept(last)) return last;
    await Bun.sleep(100);
  }
  throw new Error(`${what}: not reached; last value: ${JSON.stringify(last)}`);
}

/** Our hook metrics: calls by hook and code, and the latency histogram's count and sum by hook. */
async function hookMetrics(): Promise<{
  calls: Map<string, Map<string, number>>;
  seconds: Map<string, { count: number; sum: number; buckets: [number, number][] }>;
}> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  const calls = new Map<string, Map<string, number>>();
  for (const m of text.matchAll(
    /^tsgw_extension_hook_calls_total\{hook="([^"]+)",code="([^"]+)"\} (\S+)$/gm,
  )) {
    const byCode = calls.get(m[1]!) ?? new Map<string, number>();
    byCode.set(m[2]!, Number(m[3]));
    calls.set(m[1]!, byCode);
  }
  const seconds = new Map<string, { count: number; sum: number; buckets: [number, number][] }>();
  const entry = (hook: string) => {
    const e = seconds.get(hook) ?? { count: 0, sum: 0, buckets: [] };
    seconds.set(hook, e);
    return e;
  };
  for (const m of text.matchAll(
    /^tsgw_extension_hook_duration_seconds_(count|sum)\{hook="([^"]+)"\} (\S+)$/gm,
  ))
    entry(m[2]!)[m[1] as 'count' | 'sum'] = Number(m[3]);
  for (const m of text.matchAll(
    /^tsgw_extension_hook_duration_seconds_bucket\{le="([^"]+)",hook="([^"]+)"\} (\S+)$/gm,
  ))
    entry(m[2]!).buckets.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[3])]);
  return { calls, seconds };
}

/** The smallest bucket bound holding at least `q` of the calls: an upper bound on that quantile. */
function quantileBound(buckets: [number, number][], count: number, q: number): number {
  for (const [le, n] of buckets.sort((a, b) => a[0] - b[0])) if (n >= q * count) return le;
  return Number.POSITIVE_INFINITY;
}

const endpointsObjects = [
  {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleEndpoints',
    metadata: { name: 'web', namespace: NS },
    spec: {
      tailnet: 'corp',
      endpoints: [
        {
          name: 'httpbin',
          port: 80,
          protocol: 'HTTP',
          externalTarget: 'httpbin.org:80',
          healthCheck: { path: '/status/200' },
        },
      ],
      proxy: { connectionType: 'bidirectional' },
    },
  },
  {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleEndpoints',
    metadata: { name: 'api', namespace: NS },
    spec: {
      tailnet: 'corp',
      endpoints: [
        {
          name: 'api-primary',
          tailscaleIP: '100.101.102.103',
          tailscaleFQDN: 'api-primary.tail1234.ts.net',
          port: 8080,
          priority: 0,
          healthCheck: { path: '/healthz', interval: '5s', timeout: '2s', unhealthyThreshold: 2 },
        },
        {
          name: 'api-standby',
          tailscaleFQDN: 'api-standby.tail1234.ts.net',
          port: 8080,
          priority: 1,
          healthCheck: { path: '/healthz', interval: '5s', timeout: '2s' },
        },
      ],
      proxy: { connectionType: 'egress' },
    },
  },
];

const routePolicy = {
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleRoutePolicy',
  metadata: { name: 'api-rules', namespace: NS },
  spec: {
    targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'api' }],
    rules: [
      {
        name: 'headers',
        actions: [
          {
            type: 'RequestHeaderModifier',
            requestHeaderModifier: {
              set: [{ name: 'X-Forwarded-By', value: 'tailscale-gateway' }],
              remove: ['X-Debug'],
            },
          },
        ],
      },
    ],
  },
};

const gatewayPolicy = {
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleRoutePolicy',
  metadata: { name: 'no-admin', namespace: NS },
  spec: {
    targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: GATEWAY }],
    rules: [
      {
        name: 'no-admin',
        matches: [{ path: { type: 'PathPrefix', value: '/admin' } }],
        actions: [{ type: 'Deny' }],
      },
    ],
  },
};

/** The TailscaleGateway joining the Gateway; `ingress` publishes services from it. */
const tailscaleGateway = (ingress?: object) => ({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleGateway',
  metadata: { name: 'eg-tailnets', namespace: NS },
  spec: {
    gatewayRef: { name: GATEWAY },
    tailnets: [
      {
        name: 'corp',
        tailscaleTailnetRef: { name: 'corp' },
        routeGeneration: { egress: { pathPrefix: '/tailscale/{service}/' } },
        ...(ingress === undefined ? {} : { ingress }),
      },
    ],
  },
});

/** The virtual host, route and cluster of the published service `grafana` (mode HTTP). */
const INGRESS = `tailscale/${NS}/eg-tailnets/ingress/corp/grafana`;
/** Its hostPattern expanded (the default `{service}.{tailnet}.gateway.local`). */
const INGRESS_HOST = 'grafana.corp.gateway.local';
let ingressToXdsMs = Number.NaN;

const httpRoute = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'api', namespace: NS },
  spec: {
    parentRefs: [{ name: GATEWAY }],
    hostnames: ['api.example.com'],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'api' }],
      },
    ],
  },
};

function virtualHost(state: XdsState, domain: string) {
  return [...state.routes.values()]
    .flatMap((rc) => rc.virtualHosts)
    .find((vh) => vh.domains.includes(domain));
}

/** EG's route for rule 0 of the HTTPRoute `api`. */
function ruleRoute(state: XdsState) {
  return virtualHost(state, 'api.example.com')?.routes.find((r) =>
    r.name.startsWith(`httproute/${NS}/api/rule/0/match/0`),
  );
}

function clusterOf(route: { action: { case: string | undefined; value?: unknown } }): string | undefined {
  if (route.action.case !== 'route') return undefined;
  const specifier = (
    route.action.value as { clusterSpecifier: { case: string | undefined; value?: unknown } }
  ).clusterSpecifier;
  return specifier.case === 'cluster' ? String(specifier.value) : undefined;
}

/** EG's error lines about hooks (`rpc error: …` from the extension client, or translation skipped). */
function extensionErrors(): string[] {
  return eg.errorLines().filter((line) => /rpc error|extension|skipped publishing/i.test(line));
}

beforeAll(async () => {
  cp = await startControlPlane();
  await installCrds(cp, [...(await envoyGatewayCrds()), ...renderCrds()], 60_000);
  await ok(
    await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: NS } } }),
    'creating namespace',
  );
  operator = await startOperator({ cp, namespace: NS });
  const grpc = new URL(String((await operator.waitForLog('extension server listening')).url));
  eg = await startEnvoyGateway({ cp, extensionServer: { host: '127.0.0.1', port: Number(grpc.port) } });
}, 180_000);

afterAll(async () => {
  xds?.close();
  await eg?.stop();
  operator?.process.kill('SIGKILL');
  await cp?.stop();
});

describe('Envoy Gateway with tailscale-gateway as its extension server', () => {
  test('a Gateway joined to a tailnet: EG translates it through our hooks', async () => {
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'eg' },
      spec: { controllerName: EG_CONTROLLER_NAME },
    });
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: GATEWAY, namespace: NS },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 8888 }] },
    });
    await apply(tailscaleGateway());
    for (const object of endpointsObjects) await apply(object);
    xds = await eg.watchXds({ namespace: NS, name: GATEWAY });
    // The Gateway's listener is there. No route attaches to it yet, so it has no virtual host for our
    // generated routes, and PostTranslateModify (which tells the Gateway by its routes' clusters)
    // adds none of our clusters.
    const state = await xds.waitFor(
      (s) => s.listeners.has(`${NS}/${GATEWAY}/http`),
      60_000,
      'the Gateway listener',
    );
    const gateway = (await ok(
      await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/gateways/${GATEWAY}`),
      'gateway',
    )) as {
      status?: { conditions?: Condition[] };
    };
    const accepted = gateway.status?.conditions?.find((c) => c.type === 'Accepted');
    expect(accepted?.status).toBe('True');
    expect([...state.clusters.keys()].filter((name) => name.startsWith('tailscale/'))).toEqual([]);
  }, 90_000);

  test('an HTTPRoute with a TailscaleEndpoints backendRef: PostClusterModify fills the rule cluster', async () => {
    const started = performance.now();
    await apply(httpRoute);
    const cluster = `httproute/${NS}/api/rule/0`;
    const state = await xds.waitFor(
      (s) =>
        (s.clusters.get(cluster)?.loadAssignment?.endpoints.length ?? 0) > 0 &&
        ruleRoute(s) !== undefined &&
        s.clusters.has(`tailscale/${NS}/api`),
      60_000,
      `cluster ${cluster} with a load assignment, and the rule's route`,
    );
    routeToXdsMs = performance.now() - started;
    console.log(`HTTPRoute applied → EG's xDS carries ${cluster}: ${routeToXdsMs.toFixed(0)} ms`);

    // Now the Gateway has a route: our clusters are in its xDS, the failover one with both priorities.
    expect([...state.clusters.keys()]).toEqual(
      expect.arrayContaining([
        `tailscale/${NS}/web/httpbin`,
        `tailscale/${NS}/api/api-primary`,
        `tailscale/${NS}/api/api-standby`,
        `tailscale/${NS}/api`,
      ]),
    );
    const failover = state.clusters.get(`tailscale/${NS}/api`)!;
    expect(failover.loadAssignment?.endpoints.map((l) => l.priority)).toEqual([0, 1]);

    const rule = state.clusters.get(cluster)!;
    // EG hands us an EDS cluster; ours carries its endpoints itself, every priority, checks and outlier detection.
    expect(rule.edsClusterConfig).toBeUndefined();
    expect(rule.loadAssignment?.clusterName).toBe(cluster);
    expect(rule.loadAssignment?.endpoints.map((l) => l.priority)).toEqual([0, 1]);
    expect(rule.healthChecks.length).toBeGreaterThan(0);
    expect(rule.outlierDetection).toBeDefined();

    const vhost = virtualHost(state, 'api.example.com');
    expect(vhost?.name).toBe(`${NS}/${GATEWAY}/http/api_example_com`);
    const names = vhost!.routes.map((r) => r.name);
    // Our generated routes on the vhost (PostVirtualHostModify), before EG's own route.
    expect(names).toContain(`tailscale/${NS}/web/httpbin`);
    expect(names).toContain(`tailscale/${NS}/api`);
    expect(names.at(-1)).toStartWith(`httproute/${NS}/api/rule/0/match/0`);
    const httpbin = vhost!.routes.find((r) => r.name === `tailscale/${NS}/web/httpbin`)!;
    // /tailscale/httpbin itself and everything below it, reaching httpbin as / and /…
    expect(httpbin.match?.pathSpecifier).toEqual({
      case: 'pathSeparatedPrefix',
      value: '/tailscale/httpbin',
    });
    expect(forwardedPath(httpbin, '/tailscale/httpbin')).toBe('/');
    expect(forwardedPath(httpbin, '/tailscale/httpbin/get?a=1')).toBe('/get?a=1');
    expect(forwardedPath(httpbin, '/tailscale/httpbinx')).toBeUndefined();
    expect(clusterOf(httpbin)).toBe(`tailscale/${NS}/web/httpbin`);
    // EG's route for the HTTPRoute rule still points at the rule cluster we filled.
    expect(clusterOf(ruleRoute(state)!)).toBe(cluster);

    // EG accepted the route and resolved the custom backend.
    const status = await eventually(
      async () =>
        (await ok(
          await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/httproutes/api`),
          'route',
        )) as { status?: { parents?: { conditions?: Condition[] }[] } },
      (r) => (r.status?.parents?.[0]?.conditions?.length ?? 0) >= 2,
      'HTTPRoute status',
    );
    const conditions = status.status?.parents?.[0]?.conditions ?? [];
    expect(conditions.find((c) => c.type === 'Accepted')?.status).toBe('True');
    expect(conditions.find((c) => c.type === 'ResolvedRefs')?.status).toBe('True');
  }, 90_000);

  // EG's IR for a Gateway does not hold a TailscaleEndpoints that no route names, so applying one
  // changes nothing EG would re-translate. The operator marks the Gateway with the revision annotation
  // (gateway.envoyproxy.io/…, which EG copies into the Gateway's IR listener metadata and whose change
  // its Gateway watch honours), and EG re-runs our hooks.
  test('a TailscaleEndpoints applied after the Gateway: the revision annotation makes EG carry its generated route and cluster', async () => {
    const late = {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleEndpoints',
      metadata: { name: 'late', namespace: NS },
      spec: {
        tailnet: 'corp',
        endpoints: [{ name: 'late-svc', tailscaleIP: '100.64.0.77', port: 8080, protocol: 'HTTP' }],
        proxy: { connectionType: 'egress' },
      },
    };
    const cluster = `tailscale/${NS}/late/late-svc`;
    const host = `${egressServiceName('late', 'late-svc')}.${NS}.svc.cluster.local`;
    const portOf = (state: XdsState) =>
      state.clusters.get(cluster)?.loadAssignment?.endpoints[0]?.lbEndpoints[0]?.hostIdentifier;
    const address = (state: XdsState) => {
      const id = portOf(state);
      if (id?.case !== 'endpoint') return undefined;
      const socket =
        id.value.address?.address.case === 'socketAddress' ? id.value.address.address.value : undefined;
      return socket
        ? `${socket.address}:${socket.portSpecifier.case === 'portValue' ? socket.portSpecifier.value : ''}`
        : undefined;
    };
    const lateRoute = (state: XdsState) =>
      virtualHost(state, 'api.example.com')?.routes.find((r) => r.name === cluster);

    let started = performance.now();
    await apply(late);
    let state = await xds.waitFor(
      (s) => lateRoute(s) !== undefined && address(s) === `${host}:8080`,
      60_000,
      `the generated route and cluster ${cluster}`,
    );
    endpointsToXdsMs = performance.now() - started;
    console.log(
      `TailscaleEndpoints applied (no route names it) → EG's xDS carries ${cluster}: ${endpointsToXdsMs.toFixed(0)} ms`,
    );
    expect(lateRoute(state)?.match?.pathSpecifier).toEqual({
      case: 'pathSeparatedPrefix',
      value: '/tailscale/late-svc',
    });
    expect(clusterOf(lateRoute(state)!)).toBe(cluster);

    const gateway = (await ok(
      await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/gateways/${GATEWAY}`),
      'gateway',
    )) as { metadata: { annotations?: Record<string, string>; generation: number } };
    const revision = gateway.metadata.annotations?.[REVISION_ANNOTATION];
    expect(revision).toMatch(/^[0-9a-f]{16}$/);

    // A spec edit of it (a new port) changes the xDS too, and the revision with it; the Gateway's spec
    // (generation) is never touched.
    started = performance.now();
    await apply({ ...late, spec: { ...late.spec, endpoints: [{ ...late.spec.endpoints[0]!, port: 9090 }] } });
    state = await xds.waitFor((s) => address(s) === `${host}:9090`, 60_000, `${cluster} on port 9090`);
    editToXdsMs = performance.now() - started;
    console.log(
      `TailscaleEndpoints spec edited → EG's xDS carries the new port: ${editToXdsMs.toFixed(0)} ms`,
    );
    // Any EG translation reads our live snapshot, so one EG runs for another reason can carry the new
    // port a moment before the operator's annotation write lands: wait for the write.
    const after = await eventually(
      async () =>
        (await ok(
          await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/gateways/${GATEWAY}`),
          'gateway',
        )) as { metadata: { annotations?: Record<string, string>; generation: number } },
      (g) => g.metadata.annotations?.[REVISION_ANNOTATION] !== revision,
      'the revision annotation after the edit',
      50,
    );
    expect(after.metadata.annotations?.[REVISION_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    expect(after.metadata.generation).toBe(gateway.metadata.generation);
  }, 90_000);

  // Issue 13 item 5: one TailscaleEndpoints holding an HTTP, an HTTPS and a Postgres service. EG does
  // not send backendRef ports to PostClusterModify; the hook reads them from the reference index by
  // EG's cluster name. A port selects that service alone; no port on an object of several services
  // leaves the rule's cluster empty (never mixed), and the object's ClustersConsistent condition says
  // why.
  test('a multi-service TailscaleEndpoints as a backendRef: the port selects one service; without a port, no mixed cluster', async () => {
    const errorsBefore = extensionErrors().length;
    await apply({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleEndpoints',
      metadata: { name: 'shop', namespace: NS },
      spec: {
        tailnet: 'corp',
        endpoints: [
          {
            name: 'shop-web',
            tailscaleFQDN: 'shop-web.tail1234.ts.net',
            port: 80,
            healthCheck: { path: '/healthz' },
          },
          {
            name: 'shop-api',
            tailscaleFQDN: 'shop-api.tail1234.ts.net',
            port: 443,
            protocol: 'HTTPS',
            healthCheck: { path: '/ready' },
          },
          { name: 'shop-db', tailscaleIP: '100.64.0.5', port: 5432, protocol: 'TCP' },
        ],
        proxy: { connectionType: 'egress' },
      },
    });
    const ref = (port?: number) => ({
      group: 'gateway.tailscale.com',
      kind: 'TailscaleEndpoints',
      name: 'shop',
      ...(port === undefined ? {} : { port }),
    });
    const rule = (path: string, port?: number) => ({
      matches: [{ path: { type: 'PathPrefix', value: path } }],
      backendRefs: [ref(port)],
    });
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'shop', namespace: NS },
      spec: {
        parentRefs: [{ name: GATEWAY }],
        hostnames: ['shop.example.com'],
        rules: [rule('/api', 443), rule('/web', 80), rule('/', undefined)],
      },
    });
    const cluster = (i: number) => `httproute/${NS}/shop/rule/${i}`;
    const zones = (s: XdsState, i: number) =>
      s.clusters.get(cluster(i))?.loadAssignment?.endpoints.map((l) => l.locality?.subZone);
    const state = await xds.waitFor(
      (s) =>
        zones(s, 0)?.join() === 'shop/shop-api' &&
        zones(s, 1)?.join() === 'shop/shop-web' &&
        s.clusters.get(cluster(2))?.loadAssignment !== undefined,
      60_000,
      'the shop rule clusters, each of one service',
    );
    console.log(
      `shop rule clusters: ${[0, 1, 2].map((i) => `${cluster(i)} → [${zones(state, i)?.join(', ')}]`).join('; ')}`,
    );
    const https = state.clusters.get(cluster(0))!;
    expect(https.transportSocket?.name).toBe('envoy.transport_sockets.tls');
    expect(https.healthChecks[0]?.healthChecker).toMatchObject({ value: { path: '/ready' } });
    const http = state.clusters.get(cluster(1))!;
    expect(http.transportSocket).toBeUndefined();
    expect(http.healthChecks[0]?.healthChecker).toMatchObject({ value: { path: '/healthz' } });
    // No port: never the three together; no endpoints at all, so Envoy answers 503.
    const unselected = state.clusters.get(cluster(2))!;
    expect(unselected.edsClusterConfig).toBeUndefined();
    expect(unselected.loadAssignment?.endpoints).toEqual([]);
    // The Postgres endpoint is in no HTTP cluster.
    for (const name of state.clusters.keys())
      expect({
        name,
        zones: (state.clusters.get(name)?.loadAssignment?.endpoints ?? []).map((l) => l.locality?.subZone),
      }).not.toMatchObject({
        zones: expect.arrayContaining(['shop/shop-db']),
      });
    expect(extensionErrors().slice(errorsBefore)).toEqual([]);

    const condition = await eventually(
      async () =>
        (
          (await ok(
            await cp.request(`/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleendpoints/shop`),
            'shop',
          )) as { status?: { conditions?: Condition[] } }
        ).status?.conditions?.find((c) => c.type === 'ClustersConsistent'),
      (c) => c?.reason === 'PortRequired',
      'ClustersConsistent on shop',
    );
    expect(condition).toMatchObject({ status: 'False', reason: 'PortRequired' });
    expect(condition?.message).toBe(
      `HTTPRoute ${NS}/shop rule 2: ${NS}/shop serves HTTP on several ports, 80 (shop-web) and 443 (shop-api): set the backendRef port to one of them`,
    );

    // Giving the last rule a port fixes both the cluster and the condition.
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'shop', namespace: NS },
      spec: {
        parentRefs: [{ name: GATEWAY }],
        hostnames: ['shop.example.com'],
        rules: [rule('/api', 443), rule('/web', 80), rule('/', 80)],
      },
    });
    await xds.waitFor((s) => zones(s, 2)?.join() === 'shop/shop-web', 60_000, `${cluster(2)} with shop-web`);
    await eventually(
      async () =>
        (
          (await ok(
            await cp.request(`/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleendpoints/shop`),
            'shop',
          )) as { status?: { conditions?: Condition[] } }
        ).status?.conditions?.find((c) => c.type === 'ClustersConsistent'),
      (c) => c?.reason === 'Consistent',
      'ClustersConsistent True on shop',
    );
    // The later tests expect Gateway eg's own virtual hosts as they were.
    await ok(
      await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/httproutes/shop`, {
        method: 'DELETE',
      }),
      'deleting HTTPRoute shop',
    );
    await xds.waitFor(
      (s) => virtualHost(s, 'shop.example.com') === undefined,
      60_000,
      'no shop virtual host',
    );
  }, 120_000);

  // EG gives a rule naming a Service beside a TailscaleEndpoints one EDS cluster, the Service's
  // endpoints arriving by EDS: filling it inline for the tailnet would drop them (src/extension/xds/mixed-rules.ts).
  test('a rule naming a Service beside a TailscaleEndpoints: the Service keeps its EDS endpoints, the tailnet gets its own cluster, the route splits by weight', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'plain', namespace: NS },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    });
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'plain-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'plain' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.1.9'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    } as never);
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'mixed', namespace: NS },
      spec: {
        parentRefs: [{ name: GATEWAY }],
        hostnames: ['mixed.example.com'],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/' } }],
            backendRefs: [
              { name: 'plain', port: 80, weight: 3 },
              { group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'api', weight: 1 },
            ],
          },
        ],
      },
    });
    const rule = `httproute/${NS}/mixed/rule/0`;
    const own = `${rule}/backend/1`;
    const mixedRoute = (s: XdsState) =>
      virtualHost(s, 'mixed.example.com')?.routes.find((r) => r.name.startsWith(`${rule}/match/0`));
    const lbEndpoints = (s: XdsState) =>
      (s.endpoints.get(rule)?.endpoints ?? []).flatMap((l) => l.lbEndpoints);
    const state = await xds.waitFor(
      (s) => s.clusters.has(own) && lbEndpoints(s).length > 0 && mixedRoute(s) !== undefined,
      60_000,
      `cluster ${own}, the Service's endpoints in ${rule}, and the rule's route`,
    );
    // EG's cluster of the rule stays EDS, its load assignment holding the Service's endpoint.
    expect(state.clusters.get(rule)?.edsClusterConfig).toBeDefined();
    expect(state.clusters.get(rule)?.loadAssignment).toBeUndefined();
    expect(
      lbEndpoints(state).map((e) => {
        const address =
          e.hostIdentifier.case === 'endpoint' ? e.hostIdentifier.value.address?.address : undefined;
        return address?.case === 'socketAddress'
          ? `${address.value.address}:${address.value.portSpecifier.value}`
          : undefined;
      }),
    ).toEqual(['10.244.1.9:8080']);
    // The TailscaleEndpoints backendRef's own cluster: its endpoints, both priorities, inline.
    const tailnet = state.clusters.get(own)!;
    expect(tailnet.edsClusterConfig).toBeUndefined();
    expect(tailnet.loadAssignment?.clusterName).toBe(own);
    expect(tailnet.loadAssignment?.endpoints.map((l) => l.priority)).toEqual([0, 1]);
    // And the route picks between them by the backendRefs' weights.
    const action = mixedRoute(state)!.action;
    const specifier = action.case === 'route' ? action.value.clusterSpecifier : undefined;
    expect(
      specifier?.case === 'weightedClusters'
        ? specifier.value.clusters.map((c) => ({ name: c.name, weight: c.weight }))
        : specifier,
    ).toEqual([
      { name: rule, weight: 3 },
      { name: own, weight: 1 },
    ]);
    expect(extensionErrors()).toEqual([]);
    await ok(
      await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/httproutes/mixed`, {
        method: 'DELETE',
      }),
      'deleting HTTPRoute mixed',
    );
    await xds.waitFor(
      (s) => virtualHost(s, 'mixed.example.com') === undefined,
      60_000,
      'no mixed virtual host',
    );
  }, 120_000);

  // Issue 13 item 12: routeGeneration.egress.hostPattern limits the generated routes to the virtual
  // hosts it covers. A Gateway of its own, so the other tests' virtual hosts are untouched.
  test('egress hostPattern: generated routes only on the virtual hosts it covers', async () => {
    const errorsBefore = extensionErrors().length;
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'edge', namespace: NS },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 8890 }] },
    });
    await apply({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleGateway',
      metadata: { name: 'edge-tailnets', namespace: NS },
      spec: {
        gatewayRef: { name: 'edge' },
        tailnets: [
          {
            name: 'corp',
            tailscaleTailnetRef: { name: 'corp' },
            routeGeneration: { egress: { hostPattern: '*.internal.example.com' } },
          },
        ],
      },
    });
    for (const [name, host] of [
      ['inside', 'a.internal.example.com'],
      ['outside', 'www.example.com'],
    ] as const)
      await apply({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: `edge-${name}`, namespace: NS },
        spec: {
          parentRefs: [{ name: 'edge' }],
          hostnames: [host],
          rules: [
            { backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'api' }] },
          ],
        },
      });
    const edge = await eg.watchXds({ namespace: NS, name: 'edge' });
    try {
      const generated = (s: XdsState, domain: string) =>
        virtualHost(s, domain)
          ?.routes.map((r) => r.name)
          .filter((n) => n.startsWith('tailscale/'));
      const state = await edge.waitFor(
        (s) =>
          (generated(s, 'a.internal.example.com')?.length ?? 0) > 0 &&
          virtualHost(s, 'www.example.com') !== undefined,
        60_000,
        'the edge virtual hosts, generated routes on the internal one',
      );
      expect(generated(state, 'a.internal.example.com')).toEqual(
        expect.arrayContaining([`tailscale/${NS}/web/httpbin`, `tailscale/${NS}/api`]),
      );
      expect(generated(state, 'www.example.com')).toEqual([]);
      console.log(
        `edge virtual hosts: ${[...state.routes.values()]
          .flatMap((rc) => rc.virtualHosts)
          .map((v) => `${v.domains.join(',')} [${v.routes.map((r) => r.name).join(', ')}]`)
          .join('; ')}`,
      );
      expect(extensionErrors().slice(errorsBefore)).toEqual([]);
    } finally {
      edge.close();
    }
  }, 120_000);

  // A published service of mode HTTP: PostTranslateModify (which gets the RouteConfigurations because
  // our EG config sets translation.route.includeAll) adds a virtual host for it on the Gateway's
  // RouteConfiguration and a cluster of its target Service. The TailscaleGateway's spec edit changes
  // the revision annotation, so EG re-translates. No tailnet here: the service stays Pending without a
  // DNS name, so the expanded hostPattern is the virtual host's only domain.
  test('a published service of mode HTTP: EG carries its virtual host and cluster, and its own virtual hosts intact', async () => {
    const errorsBefore = extensionErrors().length;
    const before = virtualHost(xds.state, 'api.example.com');
    expect(before).toBeDefined();
    const started = performance.now();
    await apply(
      tailscaleGateway({
        proxyGroup: 'ingress',
        services: [{ name: 'grafana', mode: 'HTTP', target: { name: 'grafana', port: 3000 } }],
      }),
    );
    const state = await xds.waitFor(
      (s) => virtualHost(s, INGRESS_HOST) !== undefined && s.clusters.has(INGRESS),
      60_000,
      `the virtual host and cluster ${INGRESS}`,
    );
    ingressToXdsMs = performance.now() - started;
    console.log(
      `TailscaleGateway with a mode-HTTP service applied → EG's xDS carries its virtual host: ${ingressToXdsMs.toFixed(0)} ms`,
    );

    // RDS: our virtual host on the Gateway's RouteConfiguration, next to EG's.
    const routeConfig = state.routes.get(`${NS}/${GATEWAY}/http`)!;
    expect(routeConfig.virtualHosts.map((v) => v.name)).toEqual([
      `${NS}/${GATEWAY}/http/api_example_com`,
      INGRESS,
    ]);
    const vhost = virtualHost(state, INGRESS_HOST)!;
    expect(vhost.name).toBe(INGRESS);
    expect(vhost.domains).toEqual([INGRESS_HOST]);
    expect(vhost.routes.map((r) => r.name)).toEqual([INGRESS]);
    expect(vhost.routes[0]!.match?.pathSpecifier).toEqual({ case: 'prefix', value: '/' });
    expect(clusterOf(vhost.routes[0]!)).toBe(INGRESS);
    // Envoy matches Host without its port on EG's RouteConfigurations.
    expect(routeConfig.ignorePortInHostMatching).toBe(true);

    // CDS: the target Service, by name, on its port.
    const cluster = state.clusters.get(INGRESS)!;
    const endpoint = cluster.loadAssignment?.endpoints[0]?.lbEndpoints[0]?.hostIdentifier;
    const socket =
      endpoint?.case === 'endpoint' && endpoint.value.address?.address.case === 'socketAddress'
        ? endpoint.value.address.address.value
        : undefined;
    expect(socket?.address).toBe(`grafana.${NS}.svc.cluster.local`);
    expect(socket?.portSpecifier).toEqual({ case: 'portValue', value: 3000 });

    // EG's own virtual host passed through with everything on it: its routes and our egress routes.
    const api = virtualHost(state, 'api.example.com')!;
    expect(api.routes.map((r) => r.name)).toEqual(before!.routes.map((r) => r.name));
    expect(api.routes.at(-1)?.name).toStartWith(`httproute/${NS}/api/rule/0/match/0`);
    expect(clusterOf(ruleRoute(state)!)).toBe(`httproute/${NS}/api/rule/0`);
    expect(state.clusters.has(`httproute/${NS}/api/rule/0`)).toBe(true);
    expect(extensionErrors().slice(errorsBefore)).toEqual([]);

    const status = (await ok(
      await cp.request(`/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscalegateways/eg-tailnets`),
      'tailscalegateway',
    )) as { status?: { services?: { name: string; state: string; hosts?: string[]; message?: string }[] } };
    console.log(`TailscaleGateway status.services: ${JSON.stringify(status.status?.services ?? [])}`);
  }, 90_000);

  test('TailscaleGateway status: Accepted, ResolvedRefs names the missing tailnet, Programmed, routes listed', async () => {
    const tsgw = await eventually(
      async () =>
        (await ok(
          await cp.request(
            `/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscalegateways/eg-tailnets`,
          ),
          'tailscalegateway',
        )) as {
          status?: {
            conditions?: Condition[];
            tailnets?: {
              name: string;
              services: number;
              routes?: { service: string; cluster: string; pathPrefix: string }[];
            }[];
            routes?: {
              kind: string;
              namespace: string;
              name: string;
              endpoints: string[];
              supported: boolean;
            }[];
            revision?: string;
          };
        },
      (t) =>
        t.status?.conditions?.find((c) => c.type === 'Programmed')?.status === 'True' &&
        (t.status?.tailnets?.[0]?.routes ?? []).some((r) => r.cluster === `tailscale/${NS}/late/late-svc`),
      'TailscaleGateway status',
    );
    const byType = Object.fromEntries((tsgw.status?.conditions ?? []).map((c) => [c.type, c]));
    expect(byType.Accepted).toMatchObject({ status: 'True', reason: 'Accepted' });
    // No TailscaleTailnet "corp" exists in this test.
    expect(byType.ResolvedRefs).toMatchObject({ status: 'False', reason: 'TailnetNotFound' });
    expect(byType.Programmed).toMatchObject({ status: 'True', reason: 'Programmed' });
    expect(byType.Ready).toMatchObject({ status: 'False', reason: 'TailnetNotFound' });
    expect(tsgw.status?.routes).toContainEqual({
      kind: 'HTTPRoute',
      namespace: NS,
      name: 'api',
      endpoints: [`${NS}/api`],
      supported: true,
    });
    expect(tsgw.status?.tailnets?.[0]?.routes).toContainEqual({
      service: 'late-svc',
      pathPrefix: '/tailscale/late-svc/',
      cluster: `tailscale/${NS}/late/late-svc`,
    });
    // The api endpoints: HTTPRoute names it, so RouteReferences True.
    const api = (await ok(
      await cp.request(`/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleendpoints/api`),
      'api',
    )) as { status?: { conditions?: Condition[] } };
    expect(api.status?.conditions?.find((c) => c.type === 'RouteReferences')).toMatchObject({
      status: 'True',
      reason: 'Referenced',
    });
  }, 60_000);

  test('EG called every hook, all answered ok, and EG logged no extension error', async () => {
    const { calls, seconds } = await hookMetrics();
    const lines: string[] = [];
    for (const hook of HOOKS) {
      const byCode = calls.get(hook) ?? new Map<string, number>();
      const s = seconds.get(hook);
      const mean = s && s.count > 0 ? (s.sum / s.count) * 1000 : Number.NaN;
      const p99 = s ? quantileBound(s.buckets, s.count, 0.99) * 1000 : Number.NaN;
      lines.push(
        `${hook}: ${[...byCode].map(([code, n]) => `${n} ${code}`).join(', ') || 'no calls'}; mean ${mean.toFixed(2)} ms, p99 ≤ ${p99} ms`,
      );
    }
    console.log(`hook calls seen during the e2e:\n  ${lines.join('\n  ')}`);
    for (const hook of HOOKS) {
      const byCode = calls.get(hook) ?? new Map<string, number>();
      expect({ hook, ok: (byCode.get('ok') ?? 0) > 0 }).toEqual({ hook, ok: true });
      expect({ hook, failed: [...byCode.keys()].filter((code) => code !== 'ok') }).toEqual({
        hook,
        failed: [],
      });
    }
    expect(extensionErrors()).toEqual([]);
  });

  // What EG 1.9 does with TailscaleEndpoints on the other route kinds, through the real controller:
  // on a GRPCRoute it resolves the backend but drops the object, so no hook sees it and the rule's EDS
  // cluster stays empty; on a TCPRoute it rejects the kind (ResolvedRefs False, BackendNotFound). The
  // supported way is the endpoint's egress Service as an ordinary backendRef, which RouteReferences names.
  test('GRPCRoute and TCPRoute with TailscaleEndpoints backendRefs: EG leaves them empty, RouteReferences says so, the egress Service works instead', async () => {
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'l4', namespace: NS },
      spec: {
        gatewayClassName: 'eg',
        listeners: [
          { name: 'http', protocol: 'HTTP', port: 8889 },
          { name: 'tcp', protocol: 'TCP', port: 9999 },
        ],
      },
    });
    await apply({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleEndpoints',
      metadata: { name: 'rpc', namespace: NS },
      spec: {
        tailnet: 'corp',
        endpoints: [{ name: 'rpc', tailscaleIP: '100.64.0.10', port: 9000, protocol: 'HTTP' }],
        proxy: { connectionType: 'egress' },
      },
    });
    await apply({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleEndpoints',
      metadata: { name: 'db', namespace: NS },
      spec: {
        tailnet: 'corp',
        endpoints: [{ name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP' }],
        proxy: { connectionType: 'egress' },
      },
    });
    const backendRefs = (name: string) => [
      { group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name },
    ];
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GRPCRoute',
      metadata: { name: 'rpc', namespace: NS },
      spec: {
        parentRefs: [{ name: 'l4', sectionName: 'http' }],
        hostnames: ['rpc.example.com'],
        rules: [{ backendRefs: backendRefs('rpc') }],
      },
    });
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TCPRoute',
      metadata: { name: 'db', namespace: NS },
      spec: { parentRefs: [{ name: 'l4', sectionName: 'tcp' }], rules: [{ backendRefs: backendRefs('db') }] },
    });
    const l4 = await eg.watchXds({ namespace: NS, name: 'l4' });
    try {
      const grpcCluster = `grpcroute/${NS}/rpc/rule/0`;
      const state = await l4.waitFor(
        (s) =>
          s.clusters.has(grpcCluster) &&
          s.endpoints.has(grpcCluster) &&
          [...s.clusters.keys()].some((name) => name.startsWith(`tcproute/${NS}/db/`)),
        60_000,
        'the GRPCRoute and TCPRoute clusters of Gateway l4',
      );
      console.log(`EG xDS for ${NS}/l4: ${describeXds(state)}`);
      // EG's own EDS cluster, untouched by PostClusterModify, and its load assignment empty.
      expect(state.clusters.get(grpcCluster)?.edsClusterConfig).toBeDefined();
      expect(state.endpoints.get(grpcCluster)?.endpoints.flatMap((l) => l.lbEndpoints) ?? []).toEqual([]);
      const parentConditions = async (path: string) =>
        (
          (await ok(
            await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/${path}`),
            path,
          )) as {
            status?: { parents?: { conditions?: Condition[] }[] };
          }
        ).status?.parents?.[0]?.conditions ?? [];
      const grpc = await eventually(
        () => parentConditions('grpcroutes/rpc'),
        (c) => c.length >= 2,
        'GRPCRoute status',
      );
      expect(grpc.find((c) => c.type === 'ResolvedRefs')?.status).toBe('True');
      const tcp = await eventually(
        () => parentConditions('tcproutes/db'),
        (c) => c.length >= 2,
        'TCPRoute status',
      );
      expect(tcp.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
        status: 'False',
        reason: 'BackendNotFound',
      });

      // PostTranslateModify attributes the translation to l4 by its routes' clusters; no
      // TailscaleGateway joins l4, so none of our clusters is added there.
      await expectNoTailscaleClusters(l4);

      // Both endpoints say which route names them and what to use instead.
      const routeReferences = async (name: string) =>
        (
          (await ok(
            await cp.request(
              `/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleendpoints/${name}`,
            ),
            name,
          )) as { status?: { conditions?: Condition[] } }
        ).status?.conditions?.find((c) => c.type === 'RouteReferences');
      for (const [name, kind] of [
        ['rpc', 'GRPCRoute'],
        ['db', 'TCPRoute'],
      ] as const) {
        const condition = await eventually(
          () => routeReferences(name),
          (c) => c?.reason === 'UnsupportedRouteKind',
          `RouteReferences on ${name}`,
        );
        expect(condition?.status).toBe('False');
        expect(condition?.message).toContain(`${kind} ${NS}/${name}`);
        expect(condition?.message).toContain(`name: ${egressServiceName(name, name)}`);
      }

      // The supported alternative: the per-endpoint egress Service as an ordinary backendRef.
      const service = egressServiceName('db', 'db');
      const existing = await cp.request(`/api/v1/namespaces/${NS}/services/${service}`);
      // The proxy controller creates it once the egress proxy can be set up (this test has no tailnet);
      // stand in for it with the same selector-less Service.
      if (existing.status === 404)
        await apply({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: service, namespace: NS },
          spec: { ports: [{ name: 'db', port: 5432, protocol: 'TCP' }] },
        });
      const started = performance.now();
      await apply({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'TCPRoute',
        metadata: { name: 'db', namespace: NS },
        spec: {
          parentRefs: [{ name: 'l4', sectionName: 'tcp' }],
          rules: [{ backendRefs: [{ kind: 'Service', name: service, port: 5432 }] }],
        },
      });
      // EG resolves the Service (no BackendNotFound any more). Its EndpointSlice lists the egress proxy
      // pods, and this test runs none (no tailnet), so EG reports EndpointsNotFound until they are
      // ready; with a ready endpoint it is True.
      const tcpResolved = await eventually(
        () => parentConditions('tcproutes/db'),
        (c) =>
          ['ResolvedRefs', 'EndpointsNotFound'].includes(
            c.find((x) => x.type === 'ResolvedRefs')?.reason ?? '',
          ),
        'TCPRoute with the egress Service resolved',
      );
      expect(tcpResolved.find((c) => c.type === 'Accepted')?.status).toBe('True');
      expect(tcpResolved.find((c) => c.type === 'ResolvedRefs')?.message ?? '').not.toContain(
        'BackendNotFound',
      );
      const slices = (await ok(
        await cp.request(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
          query: { labelSelector: `kubernetes.io/service-name=${service}` },
        }),
        'endpointslices',
      )) as {
        items: { metadata: { name: string; labels?: Record<string, string> }; endpoints?: unknown[] }[];
      };
      console.log(
        `egress Service ${service}: EndpointSlices ${JSON.stringify(slices.items.map((i) => ({ name: i.metadata.name, managed: i.metadata.labels?.['tailscale.com/managed'], endpoints: i.endpoints?.length ?? 0 })))}; TCPRoute ResolvedRefs ${tcpResolved.find((c) => c.type === 'ResolvedRefs')?.reason} after ${(performance.now() - started).toFixed(0)} ms`,
      );
      console.log(`EG xDS for ${NS}/l4 with the egress Service: ${describeXds(l4.state)}`);
      // No route names db directly any more: its RouteReferences condition goes.
      await eventually(
        () => routeReferences('db'),
        (c) => c === undefined,
        'RouteReferences removed from db',
      );
    } finally {
      l4.close();
    }
  }, 90_000);

  // The same for the two other L4 kinds (served at v1 by the Gateway API v1.6 standard CRDs that
  // envoyGatewayCrds() installs): a UDP listener with a UDPRoute and a TLS passthrough listener with a
  // TLSRoute, each first naming a TailscaleEndpoints directly, then its egress Service. A stand-in
  // EndpointSlice with one ready address plays the egress proxy Pod (none runs here), so EG's EDS for
  // the route's cluster must carry that address.
  test('UDPRoute and TLSRoute with TailscaleEndpoints backendRefs: EG drops them, RouteReferences says so, the egress Service yields the cluster', async () => {
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'l4', namespace: NS },
      spec: {
        gatewayClassName: 'eg',
        listeners: [
          { name: 'http', protocol: 'HTTP', port: 8889 },
          { name: 'tcp', protocol: 'TCP', port: 9999 },
          { name: 'udp', protocol: 'UDP', port: 9053 },
          { name: 'tls', protocol: 'TLS', port: 9443, tls: { mode: 'Passthrough' } },
        ],
      },
    });
    const cases = [
      {
        kind: 'UDPRoute',
        plural: 'udproutes',
        name: 'dns',
        ip: '100.64.0.53',
        port: 53,
        protocol: 'UDP',
        address: '10.244.0.53',
        spec: (backendRefs: unknown[]) => ({
          parentRefs: [{ name: 'l4', sectionName: 'udp' }],
          rules: [{ backendRefs }],
        }),
      },
      {
        kind: 'TLSRoute',
        plural: 'tlsroutes',
        name: 'vault',
        ip: '100.64.0.43',
        port: 8443,
        protocol: 'TCP',
        address: '10.244.0.43',
        spec: (backendRefs: unknown[]) => ({
          parentRefs: [{ name: 'l4', sectionName: 'tls' }],
          hostnames: ['vault.example.com'],
          rules: [{ backendRefs }],
        }),
      },
    ] as const;
    const routeApplied = new Map<string, number>();
    for (const c of cases) {
      await apply({
        apiVersion: 'gateway.tailscale.com/v1alpha1',
        kind: 'TailscaleEndpoints',
        metadata: { name: c.name, namespace: NS },
        spec: {
          tailnet: 'corp',
          endpoints: [{ name: c.name, tailscaleIP: c.ip, port: c.port, protocol: c.protocol }],
          proxy: { connectionType: 'egress' },
        },
      });
      routeApplied.set(c.kind, performance.now());
      await apply({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: c.kind,
        metadata: { name: c.name, namespace: NS },
        spec: c.spec([{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: c.name }]),
      });
    }
    const parentConditions = async (plural: string, name: string) =>
      (
        (await ok(
          await cp.request(`/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/${plural}/${name}`),
          `${plural}/${name}`,
        )) as { status?: { parents?: { conditions?: Condition[] }[] } }
      ).status?.parents?.[0]?.conditions ?? [];
    const routeReferences = async (name: string) =>
      (
        (await ok(
          await cp.request(
            `/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleendpoints/${name}`,
          ),
          name,
        )) as { status?: { conditions?: Condition[] } }
      ).status?.conditions?.find((x) => x.type === 'RouteReferences');
    const clusterOf = (state: XdsState, c: (typeof cases)[number]) =>
      [...state.clusters.keys()].find((name) => name.startsWith(`${c.kind.toLowerCase()}/${NS}/${c.name}/`));
    const lbAddresses = (state: XdsState, cluster: string | undefined) =>
      (cluster ? (state.endpoints.get(cluster)?.endpoints ?? []) : [])
        .flatMap((l) => l.lbEndpoints)
        .map((e) =>
          e.hostIdentifier.case === 'endpoint' &&
          e.hostIdentifier.value.address?.address.case === 'socketAddress'
            ? e.hostIdentifier.value.address.address.value.address
            : undefined,
        );
    const l4 = await eg.watchXds({ namespace: NS, name: 'l4' });
    try {
      for (const c of cases) {
        // EG's route status with the TailscaleEndpoints backendRef.
        const conditions = await eventually(
          () => parentConditions(c.plural, c.name),
          (x) => x.length >= 2,
          `${c.kind} status`,
        );
        console.log(
          `${c.kind} ${NS}/${c.name} → TailscaleEndpoints: EG status ${JSON.stringify(conditions)}`,
        );
        expect(conditions.find((x) => x.type === 'ResolvedRefs')).toMatchObject({
          status: 'False',
          reason: 'BackendNotFound',
        });
        // Our condition on the TailscaleEndpoints names the route and the egress Service.
        const condition = await eventually(
          () => routeReferences(c.name),
          (x) => x?.reason === 'UnsupportedRouteKind',
          `RouteReferences on ${c.name}`,
        );
        expect(condition?.status).toBe('False');
        expect(condition?.message).toContain(`${c.kind} ${NS}/${c.name}`);
        expect(condition?.message).toContain(
          `{kind: Service, name: ${egressServiceName(c.name, c.name)}, port: ${c.port}}`,
        );
      }
      // EG still emits each route's listener and EDS cluster, with an empty load assignment.
      const state = await l4.waitFor(
        (s) =>
          cases.every(
            (c) =>
              s.listeners.has(`${NS}/l4/${c.kind === 'UDPRoute' ? 'udp' : 'tls'}`) &&
              s.endpoints.has(clusterOf(s, c) ?? ''),
          ),
        30_000,
        'the UDPRoute and TLSRoute listeners and clusters of Gateway l4',
      );
      console.log(`EG xDS for ${NS}/l4 with TailscaleEndpoints on UDPRoute/TLSRoute: ${describeXds(state)}`);
      for (const c of cases) {
        expect(state.clusters.get(clusterOf(state, c) ?? '')?.edsClusterConfig).toBeDefined();
        expect(lbAddresses(state, clusterOf(state, c))).toEqual([]);
      }
      // No TailscaleGateway joins l4: PostTranslateModify adds none of our clusters there.
      await expectNoTailscaleClusters(l4);

      // The supported alternative: the egress Service (and a ready endpoint) as an ordinary backendRef.
      const timings: string[] = [];
      const standIns: string[] = [];
      for (const c of cases) {
        const service = egressServiceName(c.name, c.name);
        // The proxy controller applies the egress Service (port named after the endpoint, targetPort the
        // proxy's) and an EndpointSlice of the egress proxy Pods: none here (no tailnet), so that slice
        // is empty and EG would say EndpointsNotFound. Stand in for a ready proxy Pod with a slice of
        // our own; the Service too if the controller has not applied it yet (EG matches slice ports to
        // the Service's by name and protocol).
        const existing = await cp.request(`/api/v1/namespaces/${NS}/services/${service}`);
        const servicePort =
          existing.status === 404
            ? undefined
            : (
                (await ok(existing, service)) as {
                  metadata: { labels?: Record<string, string> };
                  spec: { ports: { name?: string; targetPort?: number | string }[] };
                }
              ).spec.ports.find((p) => p.name === c.name);
        if (existing.status === 404)
          await apply({
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: service, namespace: NS },
            spec: { ports: [{ name: c.name, port: c.port, protocol: c.protocol }] },
          });
        await apply({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name: `${service}-e2e`,
            namespace: NS,
            labels: { 'kubernetes.io/service-name': service },
          },
          addressType: 'IPv4',
          ports: [
            {
              name: c.name,
              port: typeof servicePort?.targetPort === 'number' ? servicePort.targetPort : c.port,
              protocol: c.protocol,
            },
          ],
          endpoints: [{ addresses: [c.address], conditions: { ready: true } }],
        } as Parameters<typeof apply>[0]);
        standIns.push(
          `${service}: Service ${existing.status === 404 ? 'stand-in' : "the proxy controller's"}, stand-in ready EndpointSlice`,
        );
        const started = performance.now();
        await apply({
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: c.kind,
          metadata: { name: c.name, namespace: NS },
          spec: c.spec([{ kind: 'Service', name: service, port: c.port }]),
        });
        const state = await l4
          .waitFor(
            (s) => lbAddresses(s, clusterOf(s, c)).includes(c.address),
            30_000,
            `the ${c.kind} cluster with the egress Service's endpoint`,
          )
          .catch(async (error: Error) => {
            const [svc, eps] = await Promise.all([
              cp.request(`/api/v1/namespaces/${NS}/services/${service}`).then((r) => r.text()),
              cp
                .request(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
                  query: { labelSelector: `kubernetes.io/service-name=${service}` },
                })
                .then((r) => r.text()),
            ]);
            throw new Error(
              `${error.message}\n${c.kind} status: ${JSON.stringify(await parentConditions(c.plural, c.name))}\nService: ${svc}\nEndpointSlices: ${eps}\nEG errors: ${eg.errorLines().slice(-20).join('\n')}`,
            );
          });
        const xdsMs = performance.now() - started;
        const cluster = clusterOf(state, c);
        expect(state.clusters.get(cluster ?? '')?.edsClusterConfig).toBeDefined();
        const resolved = await eventually(
          () => parentConditions(c.plural, c.name),
          (x) => x.find((y) => y.type === 'ResolvedRefs')?.status === 'True',
          `${c.kind} with the egress Service resolved`,
        );
        expect(resolved.find((x) => x.type === 'Accepted')?.status).toBe('True');
        // No route names the TailscaleEndpoints directly any more: its RouteReferences condition goes.
        await eventually(
          () => routeReferences(c.name),
          (x) => x === undefined,
          `RouteReferences removed from ${c.name}`,
        );
        timings.push(
          `${c.kind}: egress Service backendRef apply → cluster ${cluster} with ${c.address} in EDS ${xdsMs.toFixed(0)} ms; ResolvedRefs True ${(performance.now() - started).toFixed(0)} ms`,
        );
      }
      console.log(`EG xDS for ${NS}/l4 with the egress Services: ${describeXds(l4.state)}`);
      console.log(`${standIns.join('; ')}\n${timings.join('\n')}`);
    } finally {
      l4.close();
    }
  }, 120_000);

  // Envoy Gateway 1.9 sends the policy in post_route_context.extension_policies with the
  // status.ancestors it computed in memory (conditions with `lastTransitionTime: null`); the hook reads
  // only the spec, so that status must not make it answer InvalidArgument (which, fail-closed, would
  // stop EG publishing the Gateway).
  test('a TailscaleRoutePolicy on the HTTPRoute: PostRouteModify adds its header modifier', async () => {
    const errorsBefore = extensionErrors().length;
    await apply(routePolicy);
    const started = performance.now();
    await xds
      .waitFor(
        (s) =>
          extensionErrors().length > errorsBefore ||
          (ruleRoute(s)?.requestHeadersToAdd.some((h) => h.header?.key === 'X-Forwarded-By') ?? false),
        30_000,
        'the policy header on the HTTPRoute route, or an extension error',
      )
      .catch(() => undefined);
    const newErrors = extensionErrors().slice(errorsBefore);
    const outcome = newErrors.length > 0 ? `EG: ${newErrors[0]}` : 'no EG error';
    console.log(
      `TailscaleRoutePolicy applied → after ${(performance.now() - started).toFixed(0)} ms: ${outcome}`,
    );
    expect(extensionErrors().slice(errorsBefore)).toEqual([]);
    const route = ruleRoute(xds.state)!;
    expect(route.requestHeadersToAdd.map((h) => h.header?.key)).toContain('X-Forwarded-By');
    expect(route.requestHeadersToRemove).toContain('X-Debug');
  }, 60_000);

  // A policy on the Gateway itself: PostVirtualHostModify puts a 403 copy of every route that can
  // serve /admin before it (EG's HTTPRoute route and our generated ones), and both controllers' ancestor
  // entries end up in the policy's status: EG's (per Gateway) and ours (per target).
  test('a TailscaleRoutePolicy on the Gateway denying /admin: the 403 routes are in EG xDS, both controllers report', async () => {
    const errorsBefore = extensionErrors().length;
    const started = performance.now();
    await apply(gatewayPolicy);
    const denies = (s: XdsState) =>
      (virtualHost(s, 'api.example.com')?.routes ?? []).filter(
        (r) => r.name.startsWith(`tailscale/policy/${NS}/no-admin/`) && r.action.case === 'directResponse',
      );
    const state = await xds.waitFor(
      (s) => denies(s).length > 0 || extensionErrors().length > errorsBefore,
      60_000,
      'the Gateway policy deny routes',
    );
    gatewayPolicyToXdsMs = performance.now() - started;
    console.log(
      `Gateway-targeted TailscaleRoutePolicy applied → EG's xDS carries its deny routes: ${gatewayPolicyToXdsMs.toFixed(0)} ms`,
    );
    expect(extensionErrors().slice(errorsBefore)).toEqual([]);
    const routes = virtualHost(state, 'api.example.com')!.routes;
    const rule = routes.findIndex((r) => r.name.startsWith(`httproute/${NS}/api/rule/0/match/0`));
    const copy = routes.findIndex(
      (r) => r.name === `tailscale/policy/${NS}/no-admin/rule/0/match/0/${routes[rule]!.name}`,
    );
    // The copy of EG's `/` route sits right before it, answers 403, and matches /admin on :path.
    expect(copy).toBe(rule - 1);
    expect(routes[copy]!.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });
    expect(routes[copy]!.match?.headers.map((h) => h.name)).toContain(':path');
    // The HTTPRoute policy's header modifier is on the copy too (it was applied to the route first).
    expect(routes[copy]!.requestHeadersToAdd.map((h) => h.header?.key)).toContain('X-Forwarded-By');
    // Our generated /tailscale/<service>/ routes cannot serve /admin: no copies of those.
    expect(denies(state).every((r) => r.name.includes('/httproute/'))).toBe(true);
    // The published service's route (prefix /) can: the Gateway's policy puts its 403 copy there too.
    const ingressRoutes = virtualHost(state, INGRESS_HOST)?.routes ?? [];
    expect(ingressRoutes.map((r) => r.name)).toEqual([
      `tailscale/policy/${NS}/no-admin/rule/0/match/0/${INGRESS}`,
      INGRESS,
    ]);
    expect(ingressRoutes[0]!.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });

    const policy = await eventually(
      async () =>
        (await ok(
          await cp.request(
            `/apis/gateway.tailscale.com/v1alpha1/namespaces/${NS}/tailscaleroutepolicies/no-admin`,
          ),
          'policy',
        )) as {
          status?: {
            ancestors?: {
              controllerName: string;
              ancestorRef: { kind?: string; name: string };
              conditions?: Condition[];
            }[];
            conditions?: Condition[];
          };
        },
      (p) => {
        const controllers = new Set((p.status?.ancestors ?? []).map((a) => a.controllerName));
        return (
          controllers.has(EG_CONTROLLER_NAME) && controllers.has('gateway.tailscale.com/tailscale-gateway')
        );
      },
      'ancestor entries of both controllers',
    );
    for (const ancestor of policy.status!.ancestors!) {
      expect(ancestor.ancestorRef).toMatchObject({ kind: 'Gateway', name: GATEWAY });
      expect(ancestor.conditions?.find((c) => c.type === 'Accepted')?.status).toBe('True');
    }
    expect(policy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  }, 90_000);

  test('the xDS EG ends up with, for the record', () => {
    const state: XdsState = xds.state;
    console.log(`EG xDS for ${NS}/${GATEWAY}: ${describeXds(state)}`);
    console.log(`HTTPRoute apply → xDS: ${routeToXdsMs.toFixed(0)} ms`);
    console.log(`TailscaleEndpoints apply (no route) → xDS: ${endpointsToXdsMs.toFixed(0)} ms`);
    console.log(`TailscaleEndpoints spec edit → xDS: ${editToXdsMs.toFixed(0)} ms`);
    console.log(`Gateway-targeted TailscaleRoutePolicy apply → xDS: ${gatewayPolicyToXdsMs.toFixed(0)} ms`);
    console.log(
      `TailscaleGateway mode-HTTP service apply → xDS virtual host: ${ingressToXdsMs.toFixed(0)} ms`,
    );
    expect(state.clusters.size).toBeGreaterThan(0);
  });

  test("EG's admin server answers; its config dump holds the provider resources (not xDS)", async () => {
    const response = await fetch(`${eg.adminUrl}/api/config_dump?resource=httproute`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).toContain('"api"');
  });
});
