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
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import { RouteSchema } from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type PostRouteModifyRequest,
  type PostRouteModifyResponse,
  PostRouteModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import { applicableFor, attachments, LEVEL } from '../../model/policy-attachment.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { routePoliciesIn } from '../xds/extension-resource.ts';
import { applyPolicies, routeOrigin, routeTargets } from '../xds/route-policies.ts';
import { guarded, type HookOptions } from './context.ts';

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
    // The store's copy first: a policy from both places counts once, as it is in the API server.
    const byTarget = attachments([...snapshot.routePolicies, ...sent]);
    const policies = applicableFor(byTarget, routeTargets(origin)).map((a) => ({
      policy: a.policy,
      rank: LEVEL[a.level],
    }));
    if (policies.length === 0) return unchanged;
    const modified = clone(RouteSchema, route);
    const applied = applyPolicies(modified, policies);
    if (applied === 0) return unchanged;
    return {
      response: create(PostRouteModifyResponseSchema, { route: modified }),
      effect: { routesModified: 1 },
    };
  });
}
