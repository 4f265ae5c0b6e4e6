/**
 * PostVirtualHostModify: routes to tailnet services on the virtual hosts of Gateways a
 * TailscaleGateway joins. See route-generation.ts for which services and routes.ts for where.
 *
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import { VirtualHostSchema } from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type PostVirtualHostModifyRequest,
  type PostVirtualHostModifyResponse,
  PostVirtualHostModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { ResourceSnapshot } from '../../store/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { isGeneratedName } from '../xds/names.ts';
import { gatewaysForVirtualHost, uniqueServices } from '../xds/route-generation.ts';
import { buildServiceRoute, placeRoutes } from '../xds/routes.ts';
import { guarded, type HookOptions } from './context.ts';

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
    if (gateways.length === 0) return unchanged;
    const services = uniqueServices(gateways, snapshot, (service, reason) =>
      options.log.warn({ virtualHost: vhost.name, service: service.name }, `no route generated: ${reason}`),
    );
    const hadGenerated = vhost.routes.some((route) => isGeneratedName(route.name));
    if (services.length === 0 && !hadGenerated) return unchanged;
    const generated = services.map(buildServiceRoute);
    // A copy, so the request stays as received whatever happens after this point.
    const modified = clone(VirtualHostSchema, vhost);
    modified.routes = placeRoutes(vhost.routes, generated);
    return {
      response: create(PostVirtualHostModifyResponseSchema, { virtualHost: modified }),
      effect: { routesAdded: generated.length },
    };
  });
}
