import { describe, expect, test } from 'bun:test';
import { create, fromBinary, toBinary, toJson } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import {
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  ClusterSchema,
} from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import { ListenerSchema } from '../../../gen/envoy/config/listener/v3/listener_pb.ts';
import {
  type Route,
  RouteSchema,
  type VirtualHost,
  VirtualHostSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type RouteConfiguration,
  RouteConfigurationSchema,
} from '../../../gen/envoy/config/route/v3/route_pb.ts';
import { SecretSchema } from '../../../gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import { API_VERSION, parseResource, type TailscaleGateway } from '../../api/index.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import { forwardedPath } from '../../testing/envoy-path.ts';
import {
  API,
  egCustomBackendCluster,
  egRoute,
  endpointsObject,
  gatewayObject,
  policyObject,
  snapshotOf,
  WEB,
} from '../../testing/xds-resources.ts';
import { buildHealthChecks, buildOutlierDetection, SYSTEM_CA_BUNDLE } from '../xds/clusters.ts';
import { readClusterName, readRouteConfigSummary } from '../xds/raw.ts';
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
          noTrafficInterval: durationFromMs(10_000),
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

  test('an HTTPS failover group: each endpoint is verified against its own name', () => {
    const secure = endpointsObject('secure', [
      { name: 'primary', tailscaleFQDN: 'primary.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
      {
        name: 'standby',
        tailscaleFQDN: 'standby.tail1234.ts.net',
        port: 443,
        protocol: 'HTTPS',
        priority: 1,
      },
    ]);
    const added = decode(
      hooks.postTranslateModify(request([]), snapshotOf(secure, gatewayObject())).response.clusters,
    );
    const failover = added.find((c) => c.name === 'tailscale/default/secure')!;
    const tlsNames = (bytes: Uint8Array) =>
      new TextDecoder().decode(bytes).match(/[a-z]+\.tail1234\.ts\.net/g);
    // The preferred endpoint's name is the cluster's default; the standby's socket is matched by its metadata.
    expect(tlsNames(failover.transportSocket!.configType.value!.value)).toEqual([
      'primary.tail1234.ts.net',
      'primary.tail1234.ts.net',
    ]);
    expect(failover.transportSocketMatches).toHaveLength(1);
    const match = failover.transportSocketMatches[0]!;
    expect(match.match).toEqual({ 'tailscale-gateway.tls-name': 'standby.tail1234.ts.net' });
    expect(tlsNames(match.transportSocket!.configType.value!.value)).toEqual([
      'standby.tail1234.ts.net',
      'standby.tail1234.ts.net',
    ]);
    const standby = failover.loadAssignment!.endpoints[1]!.lbEndpoints[0]!;
    expect(standby.metadata!.filterMetadata['envoy.transport_socket_match']).toEqual({
      'tailscale-gateway.tls-name': 'standby.tail1234.ts.net',
    });
    // A cluster of one name needs no matches.
    const primary = added.find((c) => c.name === 'tailscale/default/secure/primary')!;
    expect(primary.transportSocketMatches).toEqual([]);
    expect(primary.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.metadata).toBeUndefined();
  });

  test('a failover group mixing HTTP and HTTPS gets no cluster; its endpoints keep theirs', () => {
    const mixed = endpointsObject('mixed', [
      { name: 'plain', tailscaleIP: '100.64.0.1', port: 80 },
      { name: 'tls', tailscaleFQDN: 'tls.tail1234.ts.net', port: 443, protocol: 'HTTPS', priority: 1 },
    ]);
    const added = decode(
      hooks.postTranslateModify(request([]), snapshotOf(mixed, gatewayObject())).response.clusters,
    );
    expect(added.map((c) => c.name).filter((n) => n.startsWith('tailscale/'))).toEqual([
      'tailscale/default/mixed/plain',
      'tailscale/default/mixed/tls',
    ]);
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

/** A TailscaleGateway in `default` publishing `grafana` (mode HTTP) and `db` (mode TCP, ignored). */
const publisher = (
  extra: {
    name?: string;
    gateway?: string;
    sectionName?: string;
    pathPrefix?: string;
    dnsName?: string;
  } = {},
) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleGateway',
    metadata: { name: extra.name ?? 'edge', namespace: 'default' },
    spec: {
      gatewayRef: {
        name: extra.gateway ?? 'eg',
        ...(extra.sectionName === undefined ? {} : { sectionName: extra.sectionName }),
      },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ...(extra.pathPrefix === undefined
            ? {}
            : { routeGeneration: { ingress: { pathPrefix: extra.pathPrefix } } }),
          ingress: {
            proxyGroup: 'ingress',
            services: [
              {
                name: 'grafana',
                mode: 'HTTP',
                target: { name: 'grafana', namespace: 'monitoring', port: 3000 },
              },
              { name: 'db', target: { name: 'postgres' } },
            ],
          },
        },
      ],
    },
    ...(extra.dnsName === undefined
      ? {}
      : {
          status: {
            services: [
              {
                tailnet: 'corp',
                name: 'grafana',
                service: 'svc:grafana',
                tailscaleTailnet: 'corp',
                state: 'Advertised',
                dnsName: extra.dnsName,
              },
            ],
          },
        }),
  }) as TailscaleGateway;

const GRAFANA = 'tailscale/default/edge/ingress/corp/grafana';
const GRAFANA_HOST = 'grafana.corp.gateway.local';

/** EG's virtual host: legacy name `<ir listener>/<host>` and the listener's Gateway in its metadata. */
const egHost = (host: string, gateway = 'eg', listener = 'http', name?: string) =>
  create(VirtualHostSchema, {
    name: name ?? `default/${gateway}/${listener}/${host.replaceAll('.', '_')}`,
    domains: [host],
    routes: [egRoute('site', '/')],
    metadata: {
      filterMetadata: {
        'envoy-gateway': {
          resources: [{ kind: 'Gateway', name: gateway, namespace: 'default', sectionName: listener }],
        },
      },
    },
  });

const routeConfigBytes = (name: string, virtualHosts: VirtualHost[] = []) =>
  toBinary(
    RouteConfigurationSchema,
    create(RouteConfigurationSchema, { name, virtualHosts, ignorePortInHostMatching: true }),
  );

const translate = (routes: Uint8Array[], snapshot: ResourceSnapshot, log = recordingLog()) => {
  const withLog = createExtensionHooks({ proxies: false, log });
  return withLog.postTranslateModify(
    create(RawPostTranslateModifyRequestSchema, { clusters: [egCluster], secrets: [tlsSecret], routes }),
    snapshot,
  );
};

function recordingLog() {
  const lines: { level: string; object: object; message: string }[] = [];
  return {
    lines,
    warn: (object: object, message: string) => lines.push({ level: 'warn', object, message }),
    info: (object: object, message: string) => lines.push({ level: 'info', object, message }),
    debug: (object: object, message: string) => lines.push({ level: 'debug', object, message }),
  };
}

const decodeRoutes = (bytes: Uint8Array[]) => bytes.map((b) => fromBinary(RouteConfigurationSchema, b));
const vhostNames = (routeConfig: RouteConfiguration) => routeConfig.virtualHosts.map((v) => v.name);
const ours = (routeConfig: RouteConfiguration) => routeConfig.virtualHosts.find((v) => v.name === GRAFANA);

describe('PostTranslateModify: virtual hosts of published services (mode HTTP)', () => {
  const http = () => routeConfigBytes('default/eg/http', [egHost('www.example.com')]);
  const https = () => routeConfigBytes('default/eg/https', [egHost('secure.example.com', 'eg', 'https')]);
  const other = () => routeConfigBytes('default/other/http', [egHost('other.example.com', 'other')]);

  test("one virtual host on each of the joined Gateway's RouteConfigurations, others byte-identical", () => {
    const routes = [http(), https(), other()];
    const { response, effect } = translate(routes, snapshotOf(publisher()));
    expect(response.routes).toHaveLength(3);
    expect(response.routes[2]).toBe(routes[2]!);
    const [onHttp, onHttps] = decodeRoutes(response.routes);
    expect(vhostNames(onHttp!)).toEqual(['default/eg/http/www_example_com', GRAFANA]);
    expect(vhostNames(onHttps!)).toEqual(['default/eg/https/secure_example_com', GRAFANA]);
    // EG's own virtual host and settings are as they were.
    expect(onHttp!.virtualHosts[0]).toEqual(
      fromBinary(RouteConfigurationSchema, routes[0]!).virtualHosts[0]!,
    );
    expect(onHttp!.ignorePortInHostMatching).toBe(true);
    const vhost = ours(onHttp!)!;
    expect(vhost.domains).toEqual([GRAFANA_HOST]);
    const expected = create(RouteSchema, {
      name: GRAFANA,
      match: { pathSpecifier: { case: 'prefix', value: '/' } },
      action: {
        case: 'route',
        value: {
          clusterSpecifier: { case: 'cluster', value: GRAFANA },
          upgradeConfigs: [{ upgradeType: 'websocket' }],
        },
      },
    });
    expect(vhost.routes).toHaveLength(1);
    expect(toJson(RouteSchema, vhost.routes[0]!)).toEqual(toJson(RouteSchema, expected));
    // One cluster for the service, however many RouteConfigurations got its virtual host.
    expect(effect).toEqual({ clustersAdded: 1, virtualHostsAdded: 2, routesAdded: 2 });
    expect(response.clusters.map(readClusterName)).toEqual(['httproute/default/backend/rule/0', GRAFANA]);
    expect(response.secrets[0]).toBe(tlsSecret);
  });

  test('the cluster: STRICT_DNS to the target Service on its port, plain HTTP, in the configured domain', () => {
    const hooksK8s = createExtensionHooks({ clusterDomain: 'k8s.internal' });
    const { response } = hooksK8s.postTranslateModify(
      create(RawPostTranslateModifyRequestSchema, { routes: [http()] }),
      snapshotOf(publisher()),
    );
    const cluster = fromBinary(ClusterSchema, response.clusters[0]!);
    expect(toJson(ClusterSchema, cluster)).toEqual(
      toJson(
        ClusterSchema,
        create(ClusterSchema, {
          name: GRAFANA,
          clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS },
          connectTimeout: durationFromMs(10_000),
          dnsLookupFamily: Cluster_DnsLookupFamily.V4_PREFERRED,
          loadAssignment: {
            clusterName: GRAFANA,
            endpoints: [
              {
                lbEndpoints: [
                  {
                    hostIdentifier: {
                      case: 'endpoint',
                      value: {
                        address: {
                          address: {
                            case: 'socketAddress',
                            value: {
                              address: 'grafana.monitoring.svc.k8s.internal',
                              portSpecifier: { case: 'portValue', value: 3000 },
                            },
                          },
                        },
                      },
                    },
                  },
                ],
              },
            ],
          },
        }),
      ),
    );
    expect(cluster.transportSocket).toBeUndefined();
  });

  test('gatewayRef.sectionName: only the RouteConfiguration of that listener', () => {
    const routes = [http(), https()];
    const { response } = translate(routes, snapshotOf(publisher({ sectionName: 'https' })));
    expect(response.routes[0]).toBe(routes[0]!);
    expect(vhostNames(decodeRoutes([response.routes[1]!])[0]!)).toContain(GRAFANA);
  });

  test("a shared HTTP RouteConfiguration (XDSNameSchemeV2's http-<port>) is told by its virtual hosts' metadata", () => {
    const v2 = (name: string, host: string, gateway: string) =>
      create(VirtualHostSchema, { ...egHost(host, gateway), name });
    const shared = routeConfigBytes('http-80', [
      v2('other_example_com', 'other.example.com', 'other'),
      v2('www_example_com', 'www.example.com', 'eg'),
    ]);
    const unknown = routeConfigBytes('http-81');
    const { response } = translate([shared, unknown], snapshotOf(publisher()));
    expect(vhostNames(decodeRoutes([response.routes[0]!])[0]!)).toEqual([
      'other_example_com',
      'www_example_com',
      GRAFANA,
    ]);
    // No virtual host, a name that says nothing: not ours to touch.
    expect(response.routes[1]).toBe(unknown);
  });

  test('a domain another virtual host has stays there: ours leaves it out, or is not added at all', () => {
    const log = recordingLog();
    const taken = routeConfigBytes('default/eg/http', [egHost('GRAFANA.tail1234.ts.net')]);
    const { response, effect } = translate(
      [taken],
      snapshotOf(publisher({ dnsName: 'grafana.tail1234.ts.net' })),
      log,
    );
    expect(ours(decodeRoutes(response.routes)[0]!)?.domains).toEqual([GRAFANA_HOST]);
    expect(effect).toMatchObject({ virtualHostsAdded: 1 });
    expect(log.lines).toContainEqual({
      level: 'warn',
      object: {
        routeConfiguration: 'default/eg/http',
        service: GRAFANA,
        domain: 'grafana.tail1234.ts.net',
        virtualHost: 'default/eg/http/GRAFANA_tail1234_ts_net',
      },
      message: 'ingress domain left out: another virtual host of the RouteConfiguration has it',
    });

    const all = routeConfigBytes('default/eg/http', [egHost(GRAFANA_HOST)]);
    const none = translate([all], snapshotOf(publisher()));
    expect(none.response.routes[0]).toBe(all);
    expect(none.effect).toEqual({ clustersAdded: 0 });
    expect(none.response.clusters.map(readClusterName)).toEqual(['httproute/default/backend/rule/0']);
  });

  test('a domain left out is logged once while it lasts, and once when it clears', () => {
    const log = recordingLog();
    const hooksLogged = createExtensionHooks({ proxies: false, log });
    const call = (routes: Uint8Array[]) =>
      hooksLogged.postTranslateModify(
        create(RawPostTranslateModifyRequestSchema, { clusters: [egCluster], routes }),
        snapshotOf(publisher({ dnsName: 'grafana.tail1234.ts.net' })),
      );
    const taken = routeConfigBytes('default/eg/http', [egHost('grafana.tail1234.ts.net')]);
    for (let i = 0; i < 3; i++) call([taken]);
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    for (let i = 0; i < 3; i++) call([routeConfigBytes('default/eg/http', [egHost('www.example.com')])]);
    expect(log.lines.filter((l) => l.level !== 'debug').map((l) => [l.level, l.message])).toEqual([
      ['warn', 'ingress domain left out: another virtual host of the RouteConfiguration has it'],
      ['info', 'cleared: ingress domain left out: another virtual host of the RouteConfiguration has it'],
    ]);
  });

  test('the DNS name from status comes first; a path prefix is rewritten to /', () => {
    const { response } = translate(
      [http()],
      snapshotOf(publisher({ dnsName: 'grafana.tail1234.ts.net', pathPrefix: '/{tailnet}/' })),
    );
    const vhost = ours(decodeRoutes(response.routes)[0]!)!;
    expect(vhost.domains).toEqual(['grafana.tail1234.ts.net', GRAFANA_HOST]);
    const route = vhost.routes[0]!;
    expect(route.match?.pathSpecifier).toEqual({ case: 'pathSeparatedPrefix', value: '/corp' });
    expect(forwardedPath(route, '/corp')).toBe('/');
    expect(forwardedPath(route, '/corp/d/1?from=now')).toBe('/d/1?from=now');
    expect(forwardedPath(route, '/corporate')).toBeUndefined();
  });

  test('is idempotent: its own output yields the same bytes, nothing duplicated', () => {
    const snapshot = snapshotOf(publisher(), WEB(), gatewayObject());
    const once = translate([http(), other()], snapshot).response;
    const twice = translate(once.routes, snapshot).response;
    const hex = (list: Uint8Array[]) => list.map((b) => Buffer.from(b).toString('hex'));
    expect(hex(twice.routes)).toEqual(hex(once.routes));
    expect(twice.clusters.map(readClusterName)).toEqual(once.clusters.map(readClusterName));
    expect(vhostNames(decodeRoutes(twice.routes)[0]!)).toEqual(['default/eg/http/www_example_com', GRAFANA]);
    // With the service gone, the earlier virtual host (and its cluster) go too.
    const gone = translate(once.routes, snapshotOf(publisher({ gateway: 'elsewhere' }))).response;
    expect(vhostNames(decodeRoutes(gone.routes)[0]!)).toEqual(['default/eg/http/www_example_com']);
    expect(gone.clusters.map(readClusterName)).toEqual(['httproute/default/backend/rule/0']);
  });

  test("EG's virtual hosts that only look like ours (Gateway namespace `tailscale`) are kept", () => {
    const lookalike = create(VirtualHostSchema, {
      ...egHost('x.example.com'),
      name: 'tailscale/eg/ingress/tailnet/corp/x_example_com',
    });
    const routes = [routeConfigBytes('default/eg/http', [lookalike])];
    const { response } = translate(routes, snapshotOf(publisher()));
    expect(vhostNames(decodeRoutes(response.routes)[0]!)).toEqual([lookalike.name, GRAFANA]);
  });

  test('fields our protos do not know survive the re-encoding of a joined RouteConfiguration', () => {
    const unknown = new BinaryWriter().tag(999, WireType.LengthDelimited).string('newer envoy').finish();
    const bytes = new Uint8Array([...http(), ...unknown]);
    const { response } = translate([bytes], snapshotOf(publisher()));
    expect(Buffer.from(response.routes[0]!).includes(Buffer.from('newer envoy'))).toBe(true);
  });

  test('undecodable RouteConfigurations pass through as sent; the others still get theirs', () => {
    const log = recordingLog();
    // Readable enough to name the Gateway, but field 3 (internal_only_headers) has the wrong wire type.
    const broken = new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .string('default/eg/http')
      .tag(3, WireType.Varint)
      .int32(5)
      .finish();
    const routes = [garbage, broken, https()];
    const { response } = translate(routes, snapshotOf(publisher()), log);
    expect(response.routes[0]).toBe(garbage);
    expect(response.routes[1]).toBe(broken);
    expect(vhostNames(decodeRoutes([response.routes[2]!])[0]!)).toContain(GRAFANA);
    expect(log.lines.map((l) => l.message)).toContain(
      'RouteConfiguration not decodable: passed through without ingress virtual hosts',
    );
  });

  test('no RouteConfigurations (translation.route.includeAll off): nothing added, said at debug', () => {
    const log = recordingLog();
    const { response, effect } = translate([], snapshotOf(publisher()), log);
    expect(response.routes).toEqual([]);
    expect(effect).toEqual({ clustersAdded: 0 });
    expect(log.lines).toContainEqual(
      expect.objectContaining({ level: 'debug', object: { services: [GRAFANA] } }),
    );
  });

  test('policies of the TailscaleGateway and the Gateway apply: in place, and as narrowed copies', () => {
    const onTsgw = policyObject('headers', {
      targetRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleGateway', name: 'edge' }],
      rules: [
        {
          actions: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { set: [{ name: 'X-Via', value: 'ts' }] },
            },
          ],
        },
        { matches: [{ caller: { users: ['alice@example.com'] } }], actions: [{ type: 'Deny' }] },
      ],
    });
    const onListener = policyObject('no-admin', {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg', sectionName: 'http' }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/admin' } }], actions: [{ type: 'Deny' }] }],
    });
    const { response, effect } = translate([http(), https()], snapshotOf(publisher(), onTsgw, onListener));
    const [onHttp, onHttps] = decodeRoutes(response.routes).map((rc) => ours(rc)!.routes);
    const headerNames = (route: Route) => route.match?.headers.map((h) => h.name);
    // The listener's policy only where its listener is; the TailscaleGateway's on both, and first (more
    // specific). The caller is the header `tailscale serve` sets on this very path.
    expect(onHttp!.map(headerNames)).toEqual([['tailscale-user-login'], [':path'], []]);
    expect(onHttps!.map(headerNames)).toEqual([['tailscale-user-login'], []]);
    for (const route of [...onHttp!, ...onHttps!]) {
      expect(route.requestHeadersToAdd.map((h) => h.header?.key)).toEqual(['X-Via']);
      expect(route.name.startsWith('tailscale/')).toBe(true);
    }
    expect(onHttp![0]!.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });
    expect(onHttp![1]!.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });
    expect(onHttp!.at(-1)!.action.case).toBe('route');
    expect(effect).toEqual({ clustersAdded: 1, virtualHostsAdded: 2, routesAdded: 5 });
  });
});

describe('readRouteConfigSummary', () => {
  test('names and virtual-host metadata without decoding routes; undefined for garbage', () => {
    const bytes = toBinary(
      RouteConfigurationSchema,
      create(RouteConfigurationSchema, {
        name: 'default/eg/http',
        virtualHosts: [
          egHost('www.example.com'),
          create(VirtualHostSchema, { name: 'bare', domains: ['*'] }),
        ],
      }),
    );
    const summary = readRouteConfigSummary(bytes)!;
    expect(summary.name).toBe('default/eg/http');
    expect(summary.virtualHosts.map((v) => v.name)).toEqual(['default/eg/http/www_example_com', 'bare']);
    expect(summary.virtualHosts[0]!.metadata?.filterMetadata['envoy-gateway']).toEqual({
      resources: [{ kind: 'Gateway', name: 'eg', namespace: 'default', sectionName: 'http' }],
    });
    expect(summary.virtualHosts[1]!.metadata).toBeUndefined();
    expect(readRouteConfigSummary(garbage)).toBeUndefined();
  });
});
