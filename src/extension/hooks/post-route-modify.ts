/**
 * PostRouteModify: TailscaleRoutePolicy actions on the routes of HTTPRoutes they target. Policies come
 * from the store, and from `extension_policies` when Envoy Gateway (1.9+) sends them; one policy from
 * both places counts once, the store's copy winning because it follows the API server directly.
 *
 * Only the rules that apply to the whole route are applied here (one route in, one route out); rules
 * whose matches narrow the route, and policies on Gateways and TailscaleGateways, are applied by
 * PostVirtualHostModify, which also re-applies these idempotently (see xds/route-policies.ts).
 * Conflicts on one target and precedence between the rule and the whole HTTPRoute follow
 * xds/policy-attachment.ts.
 *
 * A route of a rule naming a Service beside a TailscaleEndpoints is also sent to that rule's clusters by
 * the backendRefs' weights (xds/mixed-rules.ts), before any policy is applied to it.
 *
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import {
  type Route,
  RouteSchema,
  WeightedCluster_ClusterWeightSchema,
  WeightedClusterSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type PostRouteModifyRequest,
  type PostRouteModifyResponse,
  PostRouteModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import { applicableFor, attachments, LEVEL } from '../../model/policy-attachment.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { routePoliciesIn } from '../xds/extension-resource.ts';
import { mixedRuleOf, mixedRuleWeights } from '../xds/mixed-rules.ts';
import { applyPolicies, routeOrigin, routeTargets } from '../xds/route-policies.ts';
import { guarded, type HookOptions } from './context.ts';

export function postRouteModify(
  req: PostRouteModifyRequest,
  snapshot: ResourceSnapshot,
  _options: HookOptions,
): HookResult<PostRouteModifyResponse> {
  return guarded('PostRouteModify', () => {
    const unchanged = { response: create(PostRouteModifyResponseSchema) };
    if (req.route === undefined) return unchanged;
    const split = splitMixedRule(req.route, snapshot);
    const route = split ?? req.route;
    const sent = routePoliciesIn(
      req.postRouteContext?.extensionPolicies ?? [],
      'post_route_context.extension_policies',
    );
    const splitOnly = split && {
      response: create(PostRouteModifyResponseSchema, { route: split }),
      effect: { routesModified: 1 },
    };
    const origin = routeOrigin(route);
    if (origin === undefined) return splitOnly || unchanged;
    // The store's copy first: a policy from both places counts once, as it is in the API server.
    const byTarget = attachments([...snapshot.routePolicies, ...sent]);
    const policies = applicableFor(byTarget, routeTargets(origin)).map((a) => ({
      policy: a.policy,
      rank: LEVEL[a.level],
    }));
    if (policies.length === 0) return splitOnly || unchanged;
    const modified = clone(RouteSchema, route);
    const applied = applyPolicies(modified, policies);
    if (applied === 0) return splitOnly || unchanged;
    return {
      response: create(PostRouteModifyResponseSchema, { route: modified }),
      effect: { routesModified: 1 },
    };
  });
}

/**
 * A route of a rule that names a Service beside a TailscaleEndpoints (xds/mixed-rules.ts), sent to
 * EG's cluster of the rule and the TailscaleEndpoints backendRefs' own clusters by the backendRefs'
 * weights; undefined for any other route (left to EG's single cluster).
 */
export function splitMixedRule(route: Route, snapshot: ResourceSnapshot): Route | undefined {
  if (route.action.case !== 'route') return undefined;
  const specifier = route.action.value.clusterSpecifier;
  if (specifier.case !== 'cluster') return undefined;
  const mixed = mixedRuleOf(specifier.value, snapshot);
  if (mixed === undefined) return undefined;
  const weights = mixedRuleWeights(mixed);
  if (weights.length === 0) return undefined;
  const split = clone(RouteSchema, route);
  if (split.action.case !== 'route') return undefined;
  split.action.value.clusterSpecifier = {
    case: 'weightedClusters',
    value: create(WeightedClusterSchema, {
      clusters: weights.map(({ name, weight }) =>
        create(WeightedCluster_ClusterWeightSchema, { name, weight }),
      ),
    }),
  };
  return split;
}
