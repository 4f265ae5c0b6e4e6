/**
 * The contract between the extension server (transport: gRPC, limits, metrics, errors) and the hook
 * logic (what each hook does to Envoy Gateway's xDS). Hooks are plain functions of a request and a
 * resource snapshot, so they are tested without sockets and the server without xDS knowledge.
 *
 * A hook throws `OperatorError('Invalid')` for a malformed request (the server answers InvalidArgument)
 * and any other error for a failure (Internal). It never returns a half-modified resource: it builds
 * its answer completely before returning it.
 *
 * @module
 */
import type {
  PostClusterModifyRequest,
  PostClusterModifyResponse,
  PostEndpointsModifyRequest,
  PostEndpointsModifyResponse,
  PostRouteModifyRequest,
  PostRouteModifyResponse,
  PostVirtualHostModifyRequest,
  PostVirtualHostModifyResponse,
} from '../../gen/envoygateway/extension/service_pb.ts';
import type {
  RawPostHTTPListenerModifyRequest,
  RawPostHTTPListenerModifyResponse,
  RawPostTranslateModifyRequest,
  RawPostTranslateModifyResponse,
} from '../../gen/tsgw/extension/v1/raw_pb.ts';
import type { ResourceSnapshot } from '../model/resource-store.ts';

/** The hook names as Envoy Gateway's method names; also the `hook` label of the metrics. */
export const HOOK_NAMES = [
  'PostRouteModify',
  'PostVirtualHostModify',
  'PostHTTPListenerModify',
  'PostClusterModify',
  'PostEndpointsModify',
  'PostTranslateModify',
] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** What each hook added or changed, for the `tsgw_extension_resources_added_total` metric and logs. */
export interface HookEffect {
  routesAdded?: number;
  clustersAdded?: number;
  virtualHostsAdded?: number;
  clustersModified?: number;
  routesModified?: number;
}

export interface HookResult<T> {
  response: T;
  effect?: HookEffect;
}

export interface ExtensionHooks {
  postRouteModify(
    req: PostRouteModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<PostRouteModifyResponse>;
  postVirtualHostModify(
    req: PostVirtualHostModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<PostVirtualHostModifyResponse>;
  postHTTPListenerModify(
    req: RawPostHTTPListenerModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<RawPostHTTPListenerModifyResponse>;
  postClusterModify(
    req: PostClusterModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<PostClusterModifyResponse>;
  postEndpointsModify(
    req: PostEndpointsModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<PostEndpointsModifyResponse>;
  postTranslateModify(
    req: RawPostTranslateModifyRequest,
    snapshot: ResourceSnapshot,
  ): HookResult<RawPostTranslateModifyResponse>;
}
