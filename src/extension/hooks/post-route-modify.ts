/**
 * PostRouteModify: TailscaleRoutePolicy actions on the routes of HTTPRoutes they target. Policies come
 * from the store, and from `extension_policies` when Envoy Gateway (1.9+) sends them; one policy from
 * both places counts once, the store's copy winning because it follows the API server directly.
 *
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import { RouteSchema } from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type PostRouteModifyRequest,
  type PostRouteModifyResponse,
  PostRouteModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { TailscaleRoutePolicy } from '../../api/index.ts';
import { DEFAULT_NAMESPACE, type ResourceSnapshot } from '../../store/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { routePoliciesIn } from '../xds/extension-resource.ts';
import { applyPolicies, policyTargets, routeOrigin } from '../xds/route-policies.ts';
import { guarded, type HookOptions } from './context.ts';

const key = (policy: TailscaleRoutePolicy) =>
  `${policy.metadata.namespace ?? DEFAULT_NAMESPACE}/${policy.metadata.name}`;

export function postRouteModify(
  req: PostRouteModifyRequest,
  snapshot: ResourceSnapshot,
  _options: HookOptions,
): HookResult<PostRouteModifyResponse> {
  return guarded('PostRouteModify', () => {
    const unchanged = { response: create(PostRouteModifyResponseSchema) };
    const route = req.route;
    if (route === undefined) return unchanged;
    const sent = routePoliciesIn(
      req.postRouteContext?.extensionPolicies ?? [],
      'post_route_context.extension_policies',
    );
    const origin = routeOrigin(route);
    if (origin === undefined) return unchanged;
    const byKey = new Map<string, TailscaleRoutePolicy>();
    for (const policy of [...snapshot.routePolicies, ...sent]) {
      if (!byKey.has(key(policy)) && policyTargets(policy, origin)) byKey.set(key(policy), policy);
    }
    if (byKey.size === 0) return unchanged;
    // Sorted like the snapshot, so the outcome does not depend on where a policy came from.
    const policies = [...byKey.values()].sort((a, b) => key(a).localeCompare(key(b)));
    const modified = clone(RouteSchema, route);
    const applied = applyPolicies(modified, policies);
    if (applied === 0) return unchanged;
    return {
      response: create(PostRouteModifyResponseSchema, { route: modified }),
      effect: { routesModified: 1 },
    };
  });
}
