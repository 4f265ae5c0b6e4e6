import { describe, expect, test } from 'bun:test';
import { clone, create, equals } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Cluster_DiscoveryType, ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import { PostClusterModifyRequestSchema } from '../../../gen/envoygateway/extension/service_pb.ts';
import type { AnyResource } from '../../api/index.ts';
import { OperatorError } from '../../errors.ts';
import { createResourceIndex } from '../../model/resource-index.ts';
import { buildSnapshot } from '../../model/resource-store.ts';
import {
  API,
  asSent,
  egCustomBackendCluster,
  endpointsObject,
  extensionResource,
  snapshotOf,
  WEB,
} from '../../testing/xds-resources.ts';
import {
  buildHealthChecks,
  buildLoadAssignment,
  buildOutlierDetection,
  resolveMembers,
} from '../xds/clusters.ts';
import { createExtensionHooks } from './index.ts';

const hooks = createExtensionHooks({ proxies: false });
const NAME = 'httproute/default/tailnet-api/rule/0';

const request = (...resources: ReturnType<typeof extensionResource>[]) =>
  create(PostClusterModifyRequestSchema, {
    cluster: egCustomBackendCluster(NAME),
    postClusterContext: { backendExtensionResources: resources },
  });

/** An ExtensionRef filter object EG puts in the same list as the backends. */
const filterObject = extensionResource({
  apiVersion: 'gateway.envoyproxy.io/v1alpha1',
  kind: 'HTTPRouteFilter',
  metadata: { name: 'rewrite', namespace: 'default' },
  spec: { urlRewrite: { hostname: { type: 'Backend' } } },
});

describe('PostClusterModify', () => {
  test("rewrites EG's EDS custom-backend cluster, keeping its name and its own settings", () => {
    const api = API();
    const { response, effect } = hooks.postClusterModify(request(filterObject, asSent(api)), snapshotOf());
    const cluster = response.cluster!;
    const members = api.spec.endpoints.map((endpoint) => ({ endpoints: api, endpoint }));
    const expected = clone(ClusterSchema, egCustomBackendCluster(NAME));
    expected.clusterDiscoveryType = { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS };
    expected.edsClusterConfig = undefined;
    expected.loadAssignment = buildLoadAssignment(
      NAME,
      resolveMembers(members, { proxies: false }, new Map()),
    );
    expected.healthChecks = buildHealthChecks(members);
    expected.outlierDetection = buildOutlierDetection();
    // toJson cannot print EG's LeastRequest Any (not in our registry); equals compares it as bytes.
    expect(equals(ClusterSchema, cluster, expected)).toBe(true);
    expect(cluster.name).toBe(NAME);
    expect(cluster.loadAssignment?.clusterName).toBe(NAME);
    expect(cluster.edsClusterConfig).toBeUndefined();
    expect(cluster.connectTimeout).toEqual(durationFromMs(10_000));
    expect(cluster.loadBalancingPolicy?.policies[0]?.typedExtensionConfig?.name).toBe(
      'envoy.load_balancing_policies.least_request',
    );
    expect(cluster.loadAssignment!.endpoints.map((l) => l.priority)).toEqual([0, 1]);
    expect(cluster.healthChecks[0]?.healthChecker).toMatchObject({
      case: 'httpHealthCheck',
      value: { path: '/healthz' },
    });
    expect(effect).toEqual({ clustersModified: 1 });
  });

  test('prefers the store copy of the endpoints over the one EG sent', () => {
    const sent = endpointsObject('api', [{ name: 'old', tailscaleIP: '100.64.0.1', port: 80 }]);
    const stored = endpointsObject('api', [{ name: 'new', tailscaleIP: '100.64.0.2', port: 80 }]);
    const { response } = hooks.postClusterModify(request(asSent(sent)), snapshotOf(stored));
    expect(response.cluster!.clusterDiscoveryType.value).toBe(Cluster_DiscoveryType.STATIC);
    expect(response.cluster!.loadAssignment!.endpoints[0]!.locality?.subZone).toBe('api/new');
  });

  test('is idempotent and leaves the request as received', () => {
    const req = request(asSent(API()));
    const before = clone(ClusterSchema, req.cluster!);
    const once = hooks.postClusterModify(req, snapshotOf()).response.cluster!;
    expect(equals(ClusterSchema, req.cluster!, before)).toBe(true);
    const again = create(PostClusterModifyRequestSchema, {
      cluster: once,
      postClusterContext: req.postClusterContext!,
    });
    expect(equals(ClusterSchema, hooks.postClusterModify(again, snapshotOf()).response.cluster!, once)).toBe(
      true,
    );
  });

  test('leaves the cluster unset without a TailscaleEndpoints in the context', () => {
    expect(hooks.postClusterModify(request(filterObject), snapshotOf()).response.cluster).toBeUndefined();
    expect(hooks.postClusterModify(request(), snapshotOf()).response.cluster).toBeUndefined();
  });

  test('malformed JSON is Invalid', () => {
    const bad = create(PostClusterModifyRequestSchema, {
      cluster: egCustomBackendCluster(NAME),
      postClusterContext: {
        backendExtensionResources: [{ unstructuredBytes: new TextEncoder().encode('{nope') }],
      },
    });
    expect(() => hooks.postClusterModify(bad, snapshotOf())).toThrow(OperatorError);
    try {
      hooks.postClusterModify(bad, snapshotOf());
    } catch (error) {
      expect((error as OperatorError).code).toBe('Invalid');
      expect((error as OperatorError).message).toContain('backend_extension_resources[0]');
    }
  });

  test('a TailscaleEndpoints that fails validation is Invalid and names the field', () => {
    const invalid = extensionResource({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleEndpoints',
      metadata: { name: 'api', namespace: 'default' },
      spec: { tailnet: 'corp', endpoints: [{ name: 'x', tailscaleIP: '100.64.0.1', port: 70000 }] },
    });
    let caught: unknown;
    try {
      hooks.postClusterModify(request(invalid), snapshotOf());
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OperatorError);
    expect((caught as OperatorError).code).toBe('Invalid');
    expect((caught as OperatorError).message).toContain('spec.endpoints[0].port');
  });

  test('UDP endpoints are left out; HTTPS adds TLS only when EG set none', () => {
    const mixed = endpointsObject('mixed', [
      { name: 'dns', tailscaleIP: '100.64.0.53', port: 53, protocol: 'UDP' },
      { name: 'web', tailscaleFQDN: 'web.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
    ]);
    const cluster = hooks.postClusterModify(request(asSent(mixed)), snapshotOf()).response.cluster!;
    expect(cluster.loadAssignment!.endpoints.map((l) => l.locality?.subZone)).toEqual(['mixed/web']);
    expect(cluster.transportSocket?.name).toBe('envoy.transport_sockets.tls');
  });
});

/** The object: HTTP, HTTPS and a Postgres endpoint in one TailscaleEndpoints. */
const SHOP = () =>
  endpointsObject('shop', [
    { name: 'web', tailscaleFQDN: 'web.tail1234.ts.net', port: 80, healthCheck: { path: '/healthz' } },
    {
      name: 'api',
      tailscaleFQDN: 'api.tail1234.ts.net',
      port: 443,
      protocol: 'HTTPS',
      healthCheck: { path: '/ready' },
    },
    { name: 'db', tailscaleIP: '100.64.0.5', port: 5432, protocol: 'TCP' },
  ]);

const tsRef = (name: string, port?: number) => ({
  group: 'gateway.tailscale.com',
  kind: 'TailscaleEndpoints',
  name,
  ...(port === undefined ? {} : { port }),
});

/** A snapshot whose index holds HTTPRoute default/tailnet-api with these rules' backendRefs. */
function withRoute(rules: Record<string, unknown>[][], ...resources: AnyResource[]) {
  const index = createResourceIndex();
  index.upsert({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'tailnet-api', namespace: 'default', resourceVersion: '1' },
    spec: { parentRefs: [{ name: 'eg' }], rules: rules.map((backendRefs) => ({ backendRefs })) },
  } as KubernetesObject);
  return buildSnapshot(resources, 1, index);
}

const subZones = (cluster: { loadAssignment?: { endpoints: { locality?: { subZone: string } }[] } }) =>
  cluster.loadAssignment?.endpoints.map((l) => l.locality?.subZone);

describe('PostClusterModify: which endpoints of a TailscaleEndpoints a backendRef selects', () => {
  test("the backendRef's port: a cluster of just that service, never a mixed one", () => {
    const shop = SHOP();
    const https = hooks.postClusterModify(request(asSent(shop)), withRoute([[tsRef('shop', 443)]], shop))
      .response.cluster!;
    expect(subZones(https)).toEqual(['shop/api']);
    expect(https.transportSocket?.name).toBe('envoy.transport_sockets.tls');
    expect(https.healthChecks[0]?.healthChecker).toMatchObject({ value: { path: '/ready' } });
    const http = hooks.postClusterModify(request(asSent(shop)), withRoute([[tsRef('shop', 80)]], shop))
      .response.cluster!;
    expect(subZones(http)).toEqual(['shop/web']);
    expect(http.transportSocket).toBeUndefined();
    expect(http.healthChecks[0]?.healthChecker).toMatchObject({ value: { path: '/healthz' } });
  });

  test('no port on an object of several services: a cluster without endpoints, logged once while it lasts', () => {
    const lines: [string, string][] = [];
    const logged = createExtensionHooks({
      proxies: false,
      log: { warn: (_o, m) => lines.push(['warn', m]), info: (_o, m) => lines.push(['info', m]), debug() {} },
    });
    const web = WEB();
    const snapshot = withRoute([[tsRef('web')]], web);
    for (let i = 0; i < 3; i++) {
      const cluster = logged.postClusterModify(request(asSent(web)), snapshot).response.cluster!;
      expect(cluster.loadAssignment?.endpoints).toEqual([]);
      expect(cluster.clusterDiscoveryType.value).toBe(Cluster_DiscoveryType.STATIC);
      expect(cluster.edsClusterConfig).toBeUndefined();
      expect(cluster.healthChecks).toEqual([]);
    }
    expect(lines).toEqual([
      [
        'warn',
        'cluster left without endpoints: default/web serves HTTP on several ports, 80 (httpbin) and 3000 (grafana): set the backendRef port to one of them',
      ],
    ]);
    logged.postClusterModify(request(asSent(web)), withRoute([[tsRef('web', 3000)]], web));
    expect(lines.at(-1)?.[0]).toBe('info');
    expect(lines).toHaveLength(2);
  });

  test('HTTP and HTTPS objects in one rule share no cluster', () => {
    const secure = endpointsObject('secure', [
      { name: 'api', tailscaleFQDN: 'api.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
    ]);
    const api = API();
    const cluster = hooks.postClusterModify(
      request(asSent(api), asSent(secure)),
      withRoute([[tsRef('api'), tsRef('secure')]], api, secure),
    ).response.cluster!;
    expect(cluster.loadAssignment?.endpoints).toEqual([]);
    expect(cluster.transportSocket).toBeUndefined();
  });

  test("one cluster per backendRef (…/backend/<i>): that backendRef's endpoints; a Service's cluster is EG's", () => {
    const shop = SHOP();
    const api = API();
    const snapshot = withRoute([[{ name: 'svc', port: 80 }, tsRef('shop', 80), tsRef('api')]], shop, api);
    const perBackend = (i: number) =>
      hooks.postClusterModify(
        create(PostClusterModifyRequestSchema, {
          cluster: egCustomBackendCluster(`${NAME}/backend/${i}`),
          postClusterContext: { backendExtensionResources: [asSent(shop), asSent(api)] },
        }),
        snapshot,
      ).response.cluster;
    expect(perBackend(0)).toBeUndefined();
    expect(subZones(perBackend(1)!)).toEqual(['shop/web']);
    expect(subZones(perBackend(2)!)).toEqual(['api/api-primary', 'api/api-standby']);
  });

  test("a rule naming a Service beside a TailscaleEndpoints: the shared cluster stays EG's, with the Service's EDS endpoints", () => {
    const api = API();
    const snapshot = withRoute([[{ name: 'svc', port: 80 }, tsRef('api')]], api);
    const { response, effect } = hooks.postClusterModify(request(asSent(api)), snapshot);
    expect(response.cluster).toBeUndefined();
    expect(effect).toBeUndefined();
    // The TailscaleEndpoints backendRef's own cluster (added by PostTranslateModify) is filled as usual.
    const own = hooks.postClusterModify(
      create(PostClusterModifyRequestSchema, {
        cluster: egCustomBackendCluster(`${NAME}/backend/1`),
        postClusterContext: { backendExtensionResources: [asSent(api)] },
      }),
      snapshot,
    ).response.cluster!;
    expect(subZones(own)).toEqual(['api/api-primary', 'api/api-standby']);
  });

  test('a route the index does not hold (yet), or holds naming other objects: built as without a port', () => {
    const api = API();
    const elsewhere = withRoute([[tsRef('other', 80)]], api);
    for (const snapshot of [snapshotOf(api), elsewhere]) {
      const cluster = hooks.postClusterModify(request(asSent(api)), snapshot).response.cluster!;
      expect(subZones(cluster)).toEqual(['api/api-primary', 'api/api-standby']);
    }
  });
});
