import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type AnyResource, checkResource, type TailscaleEndpoints } from '../../api/index.ts';
import { createFakeClock } from '../../controller-runtime/index.ts';
import { createResourceIndex } from '../../model/resource-index.ts';
import { buildSnapshot } from '../../model/resource-store.ts';
import { createLogger } from '../../observability/logger.ts';
import { API, endpointsObject, gatewayObject, snapshotOf, WEB } from '../../testing/xds-resources.ts';
import {
  CONDITION_CLUSTERS_CONSISTENT,
  CONDITION_ROUTE_REFERENCES,
  clusterConsistencyConditions,
  createEndpointsRoutesReconciler,
} from './tailscale-endpoints-routes.ts';

const NOW = new Date('2026-01-01T00:00:00Z');
const ctx = { signal: new AbortController().signal, log: createLogger({ level: 'silent', format: 'json' }) };

const tsRef = (name: string, port?: number) => ({
  group: 'gateway.tailscale.com',
  kind: 'TailscaleEndpoints',
  name,
  ...(port === undefined ? {} : { port }),
});

const route = (name: string, rules: Record<string, unknown>[][], kind = 'HTTPRoute'): KubernetesObject =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind,
    metadata: { name, namespace: 'default', resourceVersion: '1' },
    spec: { parentRefs: [{ name: 'eg' }], rules: rules.map((backendRefs) => ({ backendRefs })) },
  }) as KubernetesObject;

function snapshotWith(routes: KubernetesObject[], ...resources: AnyResource[]) {
  const index = createResourceIndex();
  for (const r of routes) index.upsert(r);
  return buildSnapshot(resources, 1, index);
}

const conditionOf = (endpoints: TailscaleEndpoints, routes: KubernetesObject[], ...others: AnyResource[]) =>
  clusterConsistencyConditions(endpoints, snapshotWith(routes, endpoints, ...others), NOW)[0];

describe('ClustersConsistent on TailscaleEndpoints', () => {
  test('nothing builds a cluster from it: no condition', () => {
    expect(clusterConsistencyConditions(WEB(), snapshotOf(WEB()), NOW)).toEqual([]);
    // Exposed by a TailscaleGateway, but every service is one endpoint: nothing to disagree.
    expect(clusterConsistencyConditions(WEB(), snapshotOf(WEB(), gatewayObject()), NOW)).toEqual([]);
  });

  test('a backendRef with a port on a multi-service object: True / Consistent, naming its uses', () => {
    const c = conditionOf(WEB(), [route('site', [[tsRef('web', 3000)]])]);
    expect(c).toMatchObject({
      type: CONDITION_CLUSTERS_CONSISTENT,
      status: 'True',
      reason: 'Consistent',
      message: 'its clusters hold what their users select: HTTPRoute default/site rule 0',
    });
  });

  test('no port on a multi-service object: False / PortRequired, naming the route, rule and ports', () => {
    const c = conditionOf(WEB(), [route('site', [[{ name: 'svc', port: 80 }], [tsRef('web')]])]);
    expect(c).toMatchObject({
      status: 'False',
      reason: 'PortRequired',
      message:
        'HTTPRoute default/site rule 1: default/web serves HTTP on several ports, 80 (httpbin) and 3000 (grafana): set the backendRef port to one of them',
    });
  });

  test('the most severe reason leads; every problem is in the message', () => {
    const api = endpointsObject('api', [
      { name: 'a', tailscaleIP: '100.64.0.1', port: 8080, healthCheck: { path: '/a' } },
      { name: 'b', tailscaleIP: '100.64.0.2', port: 8080, priority: 1, healthCheck: { path: '/b' } },
      { name: 'c', tailscaleFQDN: 'c.tail1234.ts.net', port: 8443, protocol: 'HTTPS', priority: 1 },
    ]);
    const c = conditionOf(
      api,
      [route('site', [[tsRef('api', 8080)], [tsRef('api', 9999)]])],
      gatewayObject(),
    );
    expect(c?.reason).toBe('MixedProtocols');
    const parts = c!.message.split('; ');
    expect(parts[0]).toStartWith('failover route and cluster tailscale/default/api: default/api/a (HTTP)');
    expect(parts.some((p) => p.startsWith('HTTPRoute default/site rule 1: no HTTP or HTTPS endpoint'))).toBe(
      true,
    );
    expect(parts.some((p) => p.startsWith('HTTPRoute default/site rule 0: default/api/a (path /a'))).toBe(
      true,
    );
  });

  test('objects sharing a rule: the mix is reported on both; a rule with backendRef filters shares nothing', () => {
    const secure = endpointsObject('secure', [
      { name: 'api', tailscaleFQDN: 'api.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
    ]);
    const shared = [route('site', [[tsRef('api'), tsRef('secure')]])];
    expect(conditionOf(API(), shared, secure)?.reason).toBe('MixedProtocols');
    expect(conditionOf(secure, shared, API())?.reason).toBe('MixedProtocols');
    const split = [
      route('site', [[tsRef('api'), { ...tsRef('secure'), filters: [{ type: 'RequestHeaderModifier' }] }]]),
    ];
    expect(conditionOf(API(), split, secure)?.reason).toBe('Consistent');
  });

  test('HealthChecksMerged for a failover group whose checks differ', () => {
    const api = endpointsObject('api', [
      { name: 'a', tailscaleIP: '100.64.0.1', port: 8080, healthCheck: { path: '/a' } },
      { name: 'b', tailscaleIP: '100.64.0.2', port: 8080, priority: 1, healthCheck: { path: '/b' } },
    ]);
    const c = clusterConsistencyConditions(api, snapshotOf(api, gatewayObject()), NOW)[0];
    expect(c).toMatchObject({ status: 'False', reason: 'HealthChecksMerged' });
    expect(c?.message).toContain('all are probed as default/api/a is');
  });

  test('the reconciler writes RouteReferences and ClustersConsistent together, once', async () => {
    let raw = WEB();
    const routes = [route('site', [[tsRef('web')]])];
    const writes: unknown[][] = [];
    const reconcile = createEndpointsRoutesReconciler({
      getEndpoints: () => checkResource('TailscaleEndpoints', raw as unknown as KubernetesObject),
      snapshot: () => snapshotWith(routes, raw),
      writeConditions: async (_obj, conditions) => {
        writes.push(conditions);
        raw = { ...raw, status: { ...raw.status, conditions } } as TailscaleEndpoints;
      },
      clock: createFakeClock(NOW.getTime()),
    });
    await reconcile('default/web', ctx);
    await reconcile('default/web', ctx);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.map((c) => (c as { type: string }).type).sort()).toEqual([
      CONDITION_CLUSTERS_CONSISTENT,
      CONDITION_ROUTE_REFERENCES,
    ]);
  });
});
