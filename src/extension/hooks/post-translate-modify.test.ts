import { describe, expect, test } from 'bun:test';
import { create, fromBinary, toBinary, toJson } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import {
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  ClusterSchema,
} from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import { ListenerSchema } from '../../../gen/envoy/config/listener/v3/listener_pb.ts';
import { RouteConfigurationSchema } from '../../../gen/envoy/config/route/v3/route_pb.ts';
import { SecretSchema } from '../../../gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import {
  API,
  egCustomBackendCluster,
  endpointsObject,
  gatewayObject,
  snapshotOf,
  WEB,
} from '../../../test/fixtures/xds/resources.ts';
import { buildHealthChecks, buildOutlierDetection, SYSTEM_CA_BUNDLE } from '../xds/clusters.ts';
import { readClusterName } from '../xds/raw.ts';
import { createExtensionHooks } from './index.ts';

const hooks = createExtensionHooks({ proxies: false });

/** EG's TLS secret for an HTTPS listener: the Go prototype dropped these. */
const tlsSecret = toBinary(
  SecretSchema,
  create(SecretSchema, {
    name: 'default/eg-tls',
    type: {
      case: 'tlsCertificate',
      value: {
        certificateChain: {
          specifier: { case: 'inlineBytes', value: new TextEncoder().encode('-----BEGIN CERTIFICATE-----') },
        },
        privateKey: {
          specifier: { case: 'inlineBytes', value: new TextEncoder().encode('-----BEGIN PRIVATE KEY-----') },
        },
      },
    },
  }),
);
const egCluster = toBinary(ClusterSchema, egCustomBackendCluster('httproute/default/backend/rule/0'));
const listener = toBinary(ListenerSchema, create(ListenerSchema, { name: 'default/eg/http' }));
const routeConfig = toBinary(
  RouteConfigurationSchema,
  create(RouteConfigurationSchema, { name: 'default/eg/http' }),
);
/** Not a protobuf message at all: must still come back as sent. */
const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);

const request = (clusters: Uint8Array[] = [egCluster, garbage]) =>
  create(RawPostTranslateModifyRequestSchema, {
    clusters,
    secrets: [tlsSecret],
    listeners: [listener],
    routes: [routeConfig],
  });

const decode = (bytes: Uint8Array[]) => bytes.map((b) => fromBinary(ClusterSchema, b));

describe('PostTranslateModify', () => {
  const snapshot = snapshotOf(WEB(), API(), gatewayObject());

  test("returns EG's resources as the very same bytes, secrets included", () => {
    const req = request();
    const { response } = hooks.postTranslateModify(req, snapshot);
    expect(response.clusters[0]).toBe(req.clusters[0]!);
    expect(response.clusters[1]).toBe(garbage);
    expect(response.secrets).toHaveLength(1);
    expect(response.secrets[0]).toBe(tlsSecret);
    expect(fromBinary(SecretSchema, response.secrets[0]!).name).toBe('default/eg-tls');
    expect(response.listeners[0]).toBe(listener);
    expect(response.routes[0]).toBe(routeConfig);
  });

  test('appends one cluster per service: STATIC for IPs, STRICT_DNS for names', () => {
    const { response, effect } = hooks.postTranslateModify(request(), snapshot);
    expect(effect).toEqual({ clustersAdded: 5 });
    const added = decode(response.clusters.slice(2));
    expect(added.map((c) => [c.name, c.clusterDiscoveryType.value])).toEqual([
      ['tailscale/default/api', Cluster_DiscoveryType.STRICT_DNS],
      ['tailscale/default/api/api-primary', Cluster_DiscoveryType.STATIC],
      ['tailscale/default/api/api-standby', Cluster_DiscoveryType.STRICT_DNS],
      ['tailscale/default/web/httpbin', Cluster_DiscoveryType.STRICT_DNS],
      ['tailscale/default/web/grafana', Cluster_DiscoveryType.STRICT_DNS],
    ]);
    for (const cluster of added) expect(cluster.loadAssignment?.clusterName).toBe(cluster.name);
  });

  test('golden per-endpoint cluster: address, health check, outlier detection', () => {
    const added = decode(hooks.postTranslateModify(request([]), snapshot).response.clusters);
    const httpbin = added.find((c) => c.name === 'tailscale/default/web/httpbin')!;
    const expected = create(ClusterSchema, {
      name: 'tailscale/default/web/httpbin',
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS },
      connectTimeout: durationFromMs(10_000),
      dnsLookupFamily: Cluster_DnsLookupFamily.V4_PREFERRED,
      loadAssignment: {
        clusterName: 'tailscale/default/web/httpbin',
        endpoints: [
          {
            locality: { subZone: 'web/httpbin' },
            priority: 0,
            loadBalancingWeight: 1,
            lbEndpoints: [
              {
                loadBalancingWeight: 1,
                hostIdentifier: {
                  case: 'endpoint',
                  value: {
                    address: {
                      address: {
                        case: 'socketAddress',
                        value: { address: 'httpbin.org', portSpecifier: { case: 'portValue', value: 80 } },
                      },
                    },
                    hostname: 'httpbin.org',
                    healthCheckConfig: { hostname: 'httpbin.org' },
                  },
                },
              },
            ],
          },
        ],
      },
      healthChecks: [
        {
          timeout: durationFromMs(3000),
          interval: durationFromMs(10_000),
          healthyThreshold: 2,
          unhealthyThreshold: 3,
          healthChecker: { case: 'httpHealthCheck', value: { path: '/status/200' } },
        },
      ],
      outlierDetection: buildOutlierDetection(),
    });
    expect(toJson(ClusterSchema, httpbin)).toEqual(toJson(ClusterSchema, expected));
    expect(httpbin.outlierDetection?.consecutive5xx).toBe(5);
    expect(httpbin.outlierDetection?.maxEjectionPercent).toBe(100);
  });

  test('failover cluster: locality priorities and weights from the spec', () => {
    const added = decode(hooks.postTranslateModify(request([]), snapshot).response.clusters);
    const failover = added.find((c) => c.name === 'tailscale/default/api')!;
    const localities = failover.loadAssignment!.endpoints.map((l) => ({
      zone: l.locality?.subZone,
      priority: l.priority,
      weight: l.loadBalancingWeight,
      host:
        l.lbEndpoints[0]!.hostIdentifier.case === 'endpoint'
          ? l.lbEndpoints[0]!.hostIdentifier.value.address?.address.value
          : undefined,
    }));
    expect(localities).toEqual([
      {
        zone: 'api/api-primary',
        priority: 0,
        weight: 100,
        host: expect.objectContaining({ address: '100.101.102.103' }),
      },
      {
        zone: 'api/api-standby',
        priority: 1,
        weight: 50,
        host: expect.objectContaining({ address: 'api-standby.tail1234.ts.net' }),
      },
    ]);
    // The primary's probe; the standby has no health check of its own, so it is not probed.
    expect(failover.healthChecks[0]?.healthChecker).toMatchObject({
      case: 'httpHealthCheck',
      value: { path: '/healthz' },
    });
    expect(failover.healthChecks[0]?.interval).toEqual(durationFromMs(5000));
    const standby = failover.loadAssignment!.endpoints[1]!.lbEndpoints[0]!.hostIdentifier;
    expect(standby.case === 'endpoint' && standby.value.healthCheckConfig?.disableActiveHealthCheck).toBe(
      true,
    );
    expect(failover.outlierDetection).toBeDefined();
  });

  test('priorities with gaps become dense Envoy priorities', () => {
    const gappy = endpointsObject('gappy', [
      { name: 'a', tailscaleIP: '100.64.0.1', port: 80, priority: 3 },
      { name: 'b', tailscaleIP: '100.64.0.2', port: 80, priority: 7 },
      { name: 'c', tailscaleIP: '100.64.0.3', port: 80, priority: 3 },
    ]);
    const added = decode(
      hooks.postTranslateModify(request([]), snapshotOf(gappy, gatewayObject())).response.clusters,
    );
    const failover = added.find((c) => c.name === 'tailscale/default/gappy')!;
    expect(failover.clusterDiscoveryType.value).toBe(Cluster_DiscoveryType.STATIC);
    expect(failover.loadAssignment!.endpoints.map((l) => [l.locality?.subZone, l.priority])).toEqual([
      ['gappy/a', 0],
      ['gappy/c', 0],
      ['gappy/b', 1],
    ]);
  });

  test('TCP endpoints are health-checked by connecting; HTTPS endpoints get TLS with SNI', () => {
    const mixed = endpointsObject('mixed', [
      {
        name: 'secure',
        tailscaleFQDN: 'secure.tail1234.ts.net',
        port: 443,
        protocol: 'HTTPS',
        healthCheck: {},
      },
    ]);
    const added = decode(
      hooks.postTranslateModify(request([]), snapshotOf(mixed, gatewayObject())).response.clusters,
    );
    const secure = added[0]!;
    expect(secure.transportSocket?.name).toBe('envoy.transport_sockets.tls');
    const any = secure.transportSocket!.configType.value!;
    expect(any.typeUrl).toBe(
      'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    );
    const text = new TextDecoder().decode(any.value);
    expect(text).toContain('secure.tail1234.ts.net');
    expect(text).toContain(SYSTEM_CA_BUNDLE);
    expect(secure.healthChecks[0]?.healthChecker.case).toBe('httpHealthCheck');
    const tcp = endpointsObject('tcp', [
      { name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP', healthCheck: {} },
    ]);
    expect(
      buildHealthChecks([{ endpoints: tcp, endpoint: tcp.spec.endpoints[0]! }])[0]?.healthChecker.case,
    ).toBe('tcpHealthCheck');
  });

  test('clusters point at the egress proxy Service when proxies run', () => {
    const withProxies = createExtensionHooks({ clusterDomain: 'k8s.internal' });
    const added = decode(
      withProxies.postTranslateModify(request([]), snapshotOf(WEB(), gatewayObject())).response.clusters,
    );
    const grafana = added.find((c) => c.name === 'tailscale/default/web/grafana')!;
    const host = grafana.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.hostIdentifier;
    expect(host.case === 'endpoint' && host.value.address?.address.value).toMatchObject({
      address: 'web-grafana-egress.default.svc.k8s.internal',
      portSpecifier: { case: 'portValue', value: 3000 },
    });
    // The service still sees its own name.
    expect(host.case === 'endpoint' && host.value.hostname).toBe('grafana.tail1234.ts.net');
  });

  test('is idempotent: its own output yields the same lists', () => {
    const once = hooks.postTranslateModify(request(), snapshot).response;
    const twice = hooks.postTranslateModify(
      create(RawPostTranslateModifyRequestSchema, {
        clusters: once.clusters,
        secrets: once.secrets,
        listeners: once.listeners,
        routes: once.routes,
      }),
      snapshot,
    ).response;
    expect(twice.clusters.map((b) => Buffer.from(b).toString('hex'))).toEqual(
      once.clusters.map((b) => Buffer.from(b).toString('hex')),
    );
    expect(twice.clusters[0]).toBe(once.clusters[0]!);
    expect(twice.secrets).toEqual(once.secrets);
  });

  test('with nothing to add, returns the lists as they came', () => {
    const req = request();
    const { response, effect } = hooks.postTranslateModify(req, snapshotOf());
    expect(response.clusters).toEqual(req.clusters);
    expect(response.clusters[0]).toBe(req.clusters[0]!);
    expect(effect).toEqual({ clustersAdded: 0 });
  });
});

describe('readClusterName', () => {
  test('reads the name without decoding the rest', () => {
    expect(readClusterName(egCluster)).toBe('httproute/default/backend/rule/0');
  });
  test('is undefined for garbage, empty or nameless input', () => {
    expect(readClusterName(garbage)).toBeUndefined();
    expect(readClusterName(new Uint8Array())).toBeUndefined();
    expect(
      readClusterName(toBinary(ClusterSchema, create(ClusterSchema, { connectTimeout: durationFromMs(1) }))),
    ).toBeUndefined();
  });
});
