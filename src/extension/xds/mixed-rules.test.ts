/**
 * A rule naming a Service beside a TailscaleEndpoints, across the three hooks that split it: EG's
 * cluster of the rule is left with the Service's EDS endpoints (PostClusterModify), each
 * TailscaleEndpoints backendRef gets a cluster of its own made from the rule's (PostTranslateModify),
 * and the rule's routes pick among them by the backendRefs' weights (PostRouteModify).
 */
import { describe, expect, test } from 'bun:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Cluster_DiscoveryType, ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  PostClusterModifyRequestSchema,
  PostRouteModifyRequestSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import type { AnyResource } from '../../api/index.ts';
import { createResourceIndex } from '../../model/resource-index.ts';
import { buildSnapshot } from '../../model/resource-store.ts';
import { API, asSent, egCustomBackendCluster, egRoute, snapshotOf } from '../../testing/xds-resources.ts';
import { createExtensionHooks } from '../hooks/index.ts';
import { backendClusterName, mixedRuleOf, mixedRuleWeights } from './mixed-rules.ts';
import { readClusterName } from './raw.ts';

const hooks = createExtensionHooks({ proxies: false });
const RULE = 'httproute/default/app/rule/0';
const tsRef = (name: string, extra: Record<string, unknown> = {}) => ({
  group: 'gateway.tailscale.com',
  kind: 'TailscaleEndpoints',
  name,
  ...extra,
});

/** A snapshot whose index holds HTTPRoute default/app with these rules' backendRefs. */
function withRoute(rules: Record<string, unknown>[][], ...resources: AnyResource[]) {
  const index = createResourceIndex();
  index.upsert({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'app', namespace: 'default', resourceVersion: '1' },
    spec: { parentRefs: [{ name: 'eg' }], rules: rules.map((backendRefs) => ({ backendRefs })) },
  } as KubernetesObject);
  return buildSnapshot(resources, 1, index);
}

describe('a rule mixing a Service and TailscaleEndpoints', () => {
  test('told from the index by its shared cluster; weights default to 1, a weight of 0 sends nothing', () => {
    const mixed = withRoute([
      [{ name: 'svc', port: 80, weight: 3 }, tsRef('api', { weight: 1 }), tsRef('web')],
    ]);
    const rule = mixedRuleOf(RULE, mixed)!;
    expect(rule.resolved.map((r) => r.name)).toEqual(['svc']);
    expect(rule.tailnet.map((r) => backendClusterName(RULE, r))).toEqual([
      `${RULE}/backend/1`,
      `${RULE}/backend/2`,
    ]);
    expect(mixedRuleWeights(rule)).toEqual([
      { name: RULE, weight: 3 },
      { name: `${RULE}/backend/1`, weight: 1 },
      { name: `${RULE}/backend/2`, weight: 1 },
    ]);
    // Per-backendRef clusters are EG's split already; other rules, routes and kinds are not mixed.
    expect(mixedRuleOf(`${RULE}/backend/1`, mixed)).toBeUndefined();
    expect(mixedRuleOf('httproute/default/app/rule/1', mixed)).toBeUndefined();
    expect(mixedRuleOf('httproute/default/other/rule/0', mixed)).toBeUndefined();
    expect(mixedRuleOf(RULE, withRoute([[tsRef('api'), tsRef('web')]]))).toBeUndefined();
    expect(mixedRuleOf(RULE, withRoute([[{ name: 'svc', port: 80 }]]))).toBeUndefined();
    expect(mixedRuleOf(RULE, snapshotOf())).toBeUndefined(); // no index: standalone
    const zero = mixedRuleOf(RULE, withRoute([[{ name: 'svc', port: 80, weight: 0 }, tsRef('api')]]))!;
    expect(mixedRuleWeights(zero)).toEqual([{ name: `${RULE}/backend/1`, weight: 1 }]);
    const none = mixedRuleOf(RULE, withRoute([[{ name: 'svc', weight: 0 }, tsRef('api', { weight: 0 })]]))!;
    expect(mixedRuleWeights(none)).toEqual([]);
  });

  test("PostClusterModify leaves EG's cluster of the rule (the Service's EDS endpoints) alone", () => {
    const api = API();
    const snapshot = withRoute([[{ name: 'svc', port: 80 }, tsRef('api')]], api);
    const req = create(PostClusterModifyRequestSchema, {
      cluster: egCustomBackendCluster(RULE),
      postClusterContext: { backendExtensionResources: [asSent(api)] },
    });
    expect(hooks.postClusterModify(req, snapshot).response.cluster).toBeUndefined();
  });

  test('PostTranslateModify adds a cluster per TailscaleEndpoints backendRef, made from the rule cluster', () => {
    const api = API();
    const snapshot = withRoute([[{ name: 'svc', port: 80 }, tsRef('api'), tsRef('missing')]], api);
    const rule = toBinary(ClusterSchema, egCustomBackendCluster(RULE));
    const req = create(RawPostTranslateModifyRequestSchema, { clusters: [rule] });
    const { response, effect } = hooks.postTranslateModify(req, snapshot);
    // EG's own passes through as sent; the object the store lacks gets none (EG says BackendNotFound).
    expect(response.clusters[0]).toEqual(rule);
    const added = response.clusters.slice(1).map((b) => fromBinary(ClusterSchema, b));
    const own = added.find((c) => c.name === `${RULE}/backend/1`)!;
    expect(added.filter((c) => c.name.startsWith(RULE))).toHaveLength(1);
    expect(own.edsClusterConfig).toBeUndefined();
    expect(own.clusterDiscoveryType).toEqual({ case: 'type', value: Cluster_DiscoveryType.STRICT_DNS });
    expect(own.loadAssignment?.clusterName).toBe(own.name);
    expect(own.loadAssignment?.endpoints.map((l) => l.locality?.subZone)).toEqual([
      'api/api-primary',
      'api/api-standby',
    ]);
    // EG's settings of the rule carry over.
    expect(own.loadBalancingPolicy?.policies[0]?.typedExtensionConfig?.name).toBe(
      'envoy.load_balancing_policies.least_request',
    );
    expect(own.perConnectionBufferLimitBytes).toBe(32768);
    expect(effect?.clustersAdded).toBeGreaterThanOrEqual(1);
    // Handed back (a chained extension): not added twice.
    const again = hooks
      .postTranslateModify(
        create(RawPostTranslateModifyRequestSchema, { clusters: response.clusters }),
        snapshot,
      )
      .response.clusters.map(readClusterName);
    expect(again.filter((n) => n === `${RULE}/backend/1`)).toHaveLength(1);
  });

  test('PostRouteModify sends the rule to both by the backendRefs weights; other routes stay on one cluster', () => {
    const snapshot = withRoute([[{ name: 'svc', port: 80, weight: 3 }, tsRef('api')], [tsRef('api')]]);
    const request = (route: ReturnType<typeof egRoute>) => create(PostRouteModifyRequestSchema, { route });
    const { response, effect } = hooks.postRouteModify(request(egRoute('app', '/')), snapshot);
    const action = response.route?.action;
    expect(action?.case).toBe('route');
    const specifier = action?.case === 'route' ? action.value.clusterSpecifier : undefined;
    expect(specifier?.case).toBe('weightedClusters');
    expect(
      specifier?.case === 'weightedClusters'
        ? specifier.value.clusters.map((c) => ({ name: c.name, weight: c.weight }))
        : [],
    ).toEqual([
      { name: RULE, weight: 3 },
      { name: `${RULE}/backend/1`, weight: 1 },
    ]);
    expect(effect).toEqual({ routesModified: 1 });
    expect(hooks.postRouteModify(request(egRoute('app', '/', 1)), snapshot).response.route).toBeUndefined();
  });
});
