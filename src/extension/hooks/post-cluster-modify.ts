/**
 * PostClusterModify: turns the EDS cluster Envoy Gateway generates for a TailscaleEndpoints backendRef
 * (a custom backend, with no endpoints of its own) into one that reaches the tailnet endpoints.
 *
 * EG's cluster is the starting point, not replaced wholesale: its name is baked into the route, and
 * its circuit breakers, timeouts, buffer limits and load-balancing policy carry the user's
 * BackendTrafficPolicy. Its `load_balancing_policy` is kept: every policy EG emits works with STATIC
 * and STRICT_DNS clusters and with priorities. Health checks and outlier detection the user configured
 * through EG win over the endpoint's defaults; ours fill in when EG has none.
 *
 * Several TailscaleEndpoints in one rule share one cluster (EG sends all of them without weights); all
 * their endpoints join it, each at its own priority and weight.
 *
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import { ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type PostClusterModifyRequest,
  type PostClusterModifyResponse,
  PostClusterModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { TailscaleEndpoints } from '../../api/index.ts';
import { DEFAULT_NAMESPACE, type ResourceSnapshot } from '../../store/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { buildAddressing, type ClusterMember } from '../xds/clusters.ts';
import { tailscaleEndpointsIn } from '../xds/extension-resource.ts';
import { guarded, type HookOptions } from './context.ts';

export function postClusterModify(
  req: PostClusterModifyRequest,
  snapshot: ResourceSnapshot,
  options: HookOptions,
): HookResult<PostClusterModifyResponse> {
  return guarded('PostClusterModify', () => {
    const unchanged = { response: create(PostClusterModifyResponseSchema) };
    const cluster = req.cluster;
    if (cluster === undefined) return unchanged;
    const fromContext = tailscaleEndpointsIn(
      req.postClusterContext?.backendExtensionResources ?? [],
      'post_cluster_context.backend_extension_resources',
    );
    if (fromContext.length === 0) return unchanged;
    // The store follows the API server directly; EG's copy can lag behind by a translation.
    const backends = fromContext.map(
      (sent) =>
        snapshot.getEndpoints(sent.metadata.namespace ?? DEFAULT_NAMESPACE, sent.metadata.name) ?? sent,
    );
    const members = membersOf(backends);
    if (members.length < backends.flatMap((b) => b.spec.endpoints).length) {
      options.log.warn({ cluster: cluster.name }, 'UDP endpoints cannot back an HTTP route; left out');
    }
    const addressing = buildAddressing(cluster.name, members, options.egress);
    const modified = clone(ClusterSchema, cluster);
    modified.clusterDiscoveryType = { case: 'type', value: addressing.discovery };
    modified.edsClusterConfig = undefined;
    modified.loadAssignment = addressing.loadAssignment;
    if (modified.healthChecks.length === 0) modified.healthChecks = addressing.healthChecks;
    modified.outlierDetection ??= addressing.outlierDetection;
    modified.transportSocket ??= addressing.transportSocket;
    return {
      response: create(PostClusterModifyResponseSchema, { cluster: modified }),
      effect: { clustersModified: 1 },
    };
  });
}

function membersOf(backends: readonly TailscaleEndpoints[]): ClusterMember[] {
  // The same object twice (two backendRefs to it) would double its hosts' share.
  const seen = new Set<string>();
  const out: ClusterMember[] = [];
  for (const endpoints of backends) {
    const key = `${endpoints.metadata.namespace ?? DEFAULT_NAMESPACE}/${endpoints.metadata.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const endpoint of endpoints.spec.endpoints) {
      if (endpoint.protocol !== 'UDP') out.push({ endpoints, endpoint });
    }
  }
  return out;
}
