import { describe, expect, test } from 'bun:test';
import { API, endpointsObject, WEB } from '../testing/xds-resources.ts';
import { planBackendCluster, planFailover } from './cluster-plan.ts';

/** The object: HTTP, HTTPS and a Postgres endpoint in one TailscaleEndpoints. */
const MIXED = () =>
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

const names = (plan: ReturnType<typeof planBackendCluster>) => plan.members.map((m) => m.endpoint.name);

describe('planBackendCluster', () => {
  test("a backendRef's port selects the endpoints serving it, and only those", () => {
    expect(names(planBackendCluster([{ endpoints: MIXED(), port: 443 }]))).toEqual(['api']);
    expect(names(planBackendCluster([{ endpoints: MIXED(), port: 80 }]))).toEqual(['web']);
    expect(planBackendCluster([{ endpoints: MIXED(), port: 80 }]).problems).toEqual([]);
    expect(names(planBackendCluster([{ endpoints: WEB(), port: 3000 }]))).toEqual(['grafana']);
  });

  test('without a port, an object whose HTTP endpoints serve several ports builds nothing: PortRequired', () => {
    const plan = planBackendCluster([{ endpoints: WEB(), port: undefined }]);
    expect(plan.members).toEqual([]);
    expect(plan.problems).toEqual([
      {
        kind: 'port-required',
        objects: ['default/web'],
        refused: true,
        message:
          'default/web serves HTTP on several ports, 80 (httpbin) and 3000 (grafana): set the backendRef port to one of them',
      },
    ]);
  });

  test('without a port, one port is the service: all of its endpoints, every priority', () => {
    const plan = planBackendCluster([{ endpoints: API(), port: undefined }]);
    expect(names(plan)).toEqual(['api-primary', 'api-standby']);
    expect(plan.problems).toEqual([]);
  });

  test('a port no HTTP or HTTPS endpoint serves: NoMatchingEndpoints, naming what is there', () => {
    const tcp = planBackendCluster([{ endpoints: MIXED(), port: 5432 }]);
    expect(tcp.members).toEqual([]);
    expect(tcp.problems[0]).toMatchObject({ kind: 'no-matching-endpoints', refused: true });
    expect(tcp.problems[0]!.message).toBe(
      'no HTTP or HTTPS endpoint of default/shop serves port 5432 (db speaks TCP there, which an HTTPRoute cannot carry); HTTP and HTTPS ports: 80 (web), 443 (api)',
    );
    const none = planBackendCluster([{ endpoints: MIXED(), port: 8080 }]);
    expect(none.problems[0]!.message).toBe(
      'no HTTP or HTTPS endpoint of default/shop serves port 8080; HTTP and HTTPS ports: 80 (web), 443 (api)',
    );
    const onlyTcp = endpointsObject('db', [
      { name: 'db', tailscaleIP: '100.64.0.5', port: 5432, protocol: 'TCP' },
    ]);
    expect(planBackendCluster([{ endpoints: onlyTcp, port: undefined }]).problems[0]!.message).toBe(
      'default/db has no HTTP or HTTPS endpoint (db speaks TCP), which an HTTPRoute cannot carry',
    );
  });

  test('HTTP and HTTPS never share a cluster: MixedProtocols, nothing built', () => {
    const both = endpointsObject('both', [
      { name: 'plain', tailscaleIP: '100.64.0.1', port: 8080 },
      { name: 'tls', tailscaleFQDN: 'tls.tail1234.ts.net', port: 8080, protocol: 'HTTPS', priority: 1 },
    ]);
    const plan = planBackendCluster([{ endpoints: both, port: 8080 }]);
    expect(plan.members).toEqual([]);
    expect(plan.problems).toEqual([
      {
        kind: 'mixed-protocols',
        objects: ['default/both'],
        refused: true,
        message:
          'default/both/plain (HTTP) and default/both/tls (HTTPS) would share one cluster, but Envoy speaks one protocol to a cluster: list them in separate TailscaleEndpoints or on separate ports',
      },
    ]);
  });

  test('several objects of one rule share the cluster, so their protocols must agree too', () => {
    const secure = endpointsObject('secure', [
      { name: 'api', tailscaleFQDN: 'api.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
    ]);
    const plan = planBackendCluster([
      { endpoints: API(), port: undefined },
      { endpoints: secure, port: undefined },
    ]);
    expect(plan.members).toEqual([]);
    expect(plan.problems[0]).toMatchObject({
      kind: 'mixed-protocols',
      objects: ['default/api', 'default/secure'],
    });
    // The same object twice counts once.
    expect(
      names(
        planBackendCluster([
          { endpoints: API(), port: 8080 },
          { endpoints: API(), port: 8080 },
        ]),
      ),
    ).toEqual(['api-primary', 'api-standby']);
  });

  test('one cluster, one health checker: differing checks are merged into the preferred one, and said', () => {
    const api = endpointsObject('api', [
      { name: 'a', tailscaleIP: '100.64.0.1', port: 8080, priority: 1, healthCheck: { path: '/b-health' } },
      { name: 'b', tailscaleIP: '100.64.0.2', port: 8080, healthCheck: { path: '/healthz', interval: '5s' } },
      { name: 'c', tailscaleIP: '100.64.0.3', port: 8080, priority: 2 },
    ]);
    const plan = planBackendCluster([{ endpoints: api, port: undefined }]);
    expect(names(plan)).toEqual(['a', 'b', 'c']);
    expect(plan.problems).toEqual([
      {
        kind: 'health-checks-merged',
        objects: ['default/api'],
        refused: false,
        message:
          'default/api/b (path /healthz, every 5s) and default/api/a (path /b-health, every 10s) ask for different health checks, but Envoy runs one health checker per cluster: all are probed as default/api/b is',
      },
    ]);
  });
});

describe('planFailover', () => {
  test('only for endpoints spanning several priorities', () => {
    expect(planFailover(WEB())).toBeUndefined();
    const plan = planFailover(API())!;
    expect(names(plan)).toEqual(['api-primary', 'api-standby']);
    // The standby has no health check of its own: nothing to merge.
    expect(plan.problems).toEqual([]);
  });

  test('a failover group mixing HTTP and HTTPS is not built; TCP endpoints are no part of it', () => {
    const mixed = endpointsObject('shop', [
      { name: 'web', tailscaleIP: '100.64.0.1', port: 80 },
      { name: 'api', tailscaleFQDN: 'api.tail1234.ts.net', port: 443, protocol: 'HTTPS', priority: 1 },
      { name: 'db', tailscaleIP: '100.64.0.5', port: 5432, protocol: 'TCP', priority: 2 },
    ]);
    const plan = planFailover(mixed)!;
    expect(plan.members).toEqual([]);
    expect(plan.problems.map((p) => p.kind)).toEqual(['mixed-protocols']);
  });
});
