/**
 * PostVirtualHostModify: routes to tailnet services on the virtual hosts of Gateways a
 * TailscaleGateway joins (see route-generation.ts for which services and routes.ts for where), then
 * TailscaleRoutePolicy rules on every route of the virtual host: in place where a rule covers a whole
 * route, as narrowed copies before it otherwise (xds/route-policies.ts), for policies targeting the
 * route's HTTPRoute (and rule), the TailscaleGateway that generated it, and the virtual host's Gateway
 * (and listener), with conflicts and precedence as in xds/policy-attachment.ts.
 *
 * @module
 */
import { clone, create, equals } from '@bufbuild/protobuf';
import {
  type Route,
  RouteSchema,
  type VirtualHost,
  VirtualHostSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type PostVirtualHostModifyRequest,
  type PostVirtualHostModifyResponse,
  PostVirtualHostModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import { isGeneratedName } from '../../model/names.ts';
import {
  applicableFor,
  attachments,
  gatewayTargets,
  LEVEL,
  type PolicyTarget,
  tailscaleGatewayTarget,
} from '../../model/policy-attachment.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import {
  gatewaysForVirtualHost,
  gatewaysOfVirtualHost,
  servicesOf,
  uniqueServices,
} from '../../model/route-generation.ts';
import type { HookResult } from '../hooks.ts';
import { routeOrigin, routeTargets, withPolicies } from '../xds/route-policies.ts';
import { buildServiceRoute, placeRoutes } from '../xds/routes.ts';
import { guarded, type HookOptions, type HookProblem } from './context.ts';

/**
 * A virtual host's identity across calls: its name, with the Gateways it belongs to, as the V2 name
 * scheme (`www_example_com`) repeats one name on every Gateway with that host.
 */
const virtualHostScope = (vhost: VirtualHost): string =>
  [
    `virtualHost:${vhost.name}`,
    ...gatewaysOfVirtualHost(vhost).map((g) => `${g.namespace}/${g.name}/${g.listener ?? ''}`),
  ].join('|');

export function postVirtualHostModify(
  req: PostVirtualHostModifyRequest,
  snapshot: ResourceSnapshot,
  options: HookOptions,
): HookResult<PostVirtualHostModifyResponse> {
  return guarded('PostVirtualHostModify', () => {
    const unchanged = { response: create(PostVirtualHostModifyResponseSchema) };
    const vhost = req.virtualHost;
    if (vhost === undefined) return unchanged;
    const gateways = gatewaysForVirtualHost(vhost, snapshot);
    const hadGenerated = vhost.routes.some((route) => isGeneratedName(route.name));
    if (gateways.length === 0 && snapshot.routePolicies.length === 0 && !hadGenerated) {
      options.problems.report(virtualHostScope(vhost), []);
      return unchanged;
    }

    const problems: HookProblem[] = [];
    const services = uniqueServices(gateways, snapshot, vhost.domains, (service, reason) =>
      problems.push({
        key: `${service.name}\n${reason}`,
        fields: { virtualHost: vhost.name, service: service.name },
        message: `no route generated: ${reason}`,
      }),
    );
    options.problems.report(virtualHostScope(vhost), problems);
    // Which TailscaleGateways generate each route (two may expose the same endpoints).
    const generators = new Map<string, PolicyTarget[]>();
    for (const gateway of gateways)
      for (const service of servicesOf(gateway, snapshot)) {
        const list = generators.get(service.name) ?? [];
        list.push(tailscaleGatewayTarget(gateway));
        generators.set(service.name, list);
      }
    const generated = services.map(buildServiceRoute);
    // A copy, so the request stays as received whatever happens after this point.
    const modified = clone(VirtualHostSchema, vhost);
    const placed = placeRoutes(modified.routes, generated);

    const byTarget = attachments(snapshot.routePolicies);
    const onGateway = gatewayTargets(gatewaysOfVirtualHost(vhost));
    let copies = 0;
    let changed = 0;
    const routes: Route[] = [];
    for (const route of placed) {
      const origin = routeOrigin(route);
      const candidates = [
        ...(origin ? routeTargets(origin) : []),
        ...(generators.get(route.name) ?? []),
        ...onGateway,
      ];
      const policies = applicableFor(byTarget, candidates).map((a) => ({
        policy: a.policy,
        rank: LEVEL[a.level],
      }));
      if (policies.length === 0) {
        routes.push(route);
        continue;
      }
      const before = clone(RouteSchema, route);
      const result = withPolicies(route, policies);
      copies += result.routes.length - 1;
      if (!equals(RouteSchema, before, route)) changed++;
      routes.push(...result.routes);
    }
    if (generated.length === 0 && copies === 0 && changed === 0 && !hadGenerated) return unchanged;
    modified.routes = routes;
    return {
      response: create(PostVirtualHostModifyResponseSchema, { virtualHost: modified }),
      effect: {
        routesAdded: generated.length + copies,
        ...(changed > 0 ? { routesModified: changed } : {}),
      },
    };
  });
}
