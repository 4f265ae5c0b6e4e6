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
 * Which endpoints: EG sends the backend objects but not the backendRefs, so not their ports. The
 * cluster's name says which HTTPRoute rule it serves (`httproute/<ns>/<name>/rule/<i>`, or
 * `…/backend/<j>` when EG makes one cluster per backendRef), and the reference index holds that rule's
 * backendRefs with their ports. Each port selects the endpoints serving it (xds/cluster-plan.ts, which
 * also refuses clusters mixing protocols). Several TailscaleEndpoints in one rule share one cluster
 * (EG sends all of them without weights); all their selected endpoints join it, each at its own
 * priority and weight. Where the index cannot tell (standalone mode, no index; or it has not seen the
 * route, or this version of it, yet: it names other objects than EG sent) the objects are taken as
 * backendRefs without a port. The operator's Gateway revision covers those ports
 * (src/resources/tailscale-gateway/tailscale-gateway-trigger.ts), so once the index has the route EG translates again.
 *
 * A plan's problems are logged once while they last; the operator reports them on the
 * TailscaleEndpoints (condition ClustersConsistent).
 *
 * @module
 */
import { clone, create } from '@bufbuild/protobuf';
import { type Cluster, ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type PostClusterModifyRequest,
  type PostClusterModifyResponse,
  PostClusterModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { TailscaleEndpoints } from '../../api/index.ts';
import { keyOf, namespaceOf } from '../../kube/object-key.ts';
import { type BackendSelection, endpointsKey, planBackendCluster } from '../../model/cluster-plan.ts';
import { httpRouteRuleOfClusterName } from '../../model/envoy-gateway-names.ts';
import { isEndpointsBackend } from '../../model/gateway-api.ts';
import type { RemoteMembers } from '../../model/remote-endpoints.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { buildAddressing } from '../xds/clusters.ts';
import { tailscaleEndpointsIn } from '../xds/extension-resource.ts';
import { mixedRuleOf } from '../xds/mixed-rules.ts';
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
    const selections = selectionsFor(cluster.name, fromContext, snapshot);
    if (selections === undefined) return unchanged;
    return {
      response: create(PostClusterModifyResponseSchema, {
        cluster: fillBackendCluster(cluster, selections, options, snapshot.remoteMembersByEndpoints),
      }),
      effect: { clustersModified: 1 },
    };
  });
}

/**
 * `cluster` (EG's, left as received) made to reach the endpoints the backendRefs select, its own
 * settings kept. A plan's problems are reported under the cluster's name. Also fills the cluster of a
 * TailscaleEndpoints backendRef of a mixed rule (xds/mixed-rules.ts), made from the rule's. `remote`:
 * the snapshot's cross-cluster members (`ResourceSnapshot.remoteMembersByEndpoints`).
 */
export function fillBackendCluster(
  cluster: Cluster,
  selections: readonly BackendSelection[],
  options: HookOptions,
  remote: RemoteMembers,
): Cluster {
  const plan = planBackendCluster(selections);
  options.problems.report(
    `cluster:${cluster.name}`,
    plan.problems.map((p) => ({
      key: `${p.kind}\n${p.message}`,
      fields: { cluster: cluster.name, endpoints: p.objects },
      message:
        p.refused && plan.members.length === 0 ? `cluster left without endpoints: ${p.message}` : p.message,
    })),
  );
  const addressing = buildAddressing(cluster.name, plan.members, options.egress, remote);
  const modified = clone(ClusterSchema, cluster);
  modified.clusterDiscoveryType = { case: 'type', value: addressing.discovery };
  modified.edsClusterConfig = undefined;
  modified.loadAssignment = addressing.loadAssignment;
  if (modified.healthChecks.length === 0) modified.healthChecks = addressing.healthChecks;
  modified.outlierDetection ??= addressing.outlierDetection;
  if (modified.transportSocket === undefined) {
    modified.transportSocket = addressing.transportSocket;
    modified.transportSocketMatches = addressing.transportSocketMatches;
  }
  return modified;
}

/**
 * The backendRefs this cluster serves, or undefined when it is not ours to fill: a per-backendRef
 * cluster of a Service in a rule that also names a TailscaleEndpoints, or the shared cluster of such a
 * rule, which keeps the Service's endpoints (xds/mixed-rules.ts).
 */
function selectionsFor(
  clusterName: string,
  sent: readonly TailscaleEndpoints[],
  snapshot: ResourceSnapshot,
): BackendSelection[] | undefined {
  if (mixedRuleOf(clusterName, snapshot) !== undefined) return undefined;
  // The store follows the API server directly; EG's copy can lag behind by a translation.
  const current = (e: TailscaleEndpoints) => snapshot.getEndpoints(namespaceOf(e), e.metadata.name) ?? e;
  const withoutPorts = () => sent.map((e) => ({ endpoints: current(e), port: undefined }));
  const origin = httpRouteRuleOfClusterName(clusterName);
  if (!origin) return withoutPorts();
  const { namespace, name, rule, backend } = origin;
  const route = snapshot.index.route('HTTPRoute', namespace, name);
  if (route === undefined) return withoutPorts();
  const refs = route.backends.filter(
    (b) => b.rule === rule && (backend === undefined || b.index === backend),
  );
  if (backend !== undefined && refs.length === 1 && !isEndpointsBackend(refs[0]!)) return undefined;
  const named = refs.filter(isEndpointsBackend);
  const bySent = new Map(sent.map((e) => [endpointsKey(e), e]));
  const keys = named.map((ref) => keyOf(ref.namespace, ref.name));
  // The rule as the index has it must name what EG sent: otherwise it is an older or newer version.
  const agrees =
    keys.length > 0 &&
    keys.every((key) => bySent.has(key)) &&
    (backend !== undefined || [...bySent.keys()].every((key) => keys.includes(key)));
  if (!agrees) return withoutPorts();
  return named.map((ref) => ({
    endpoints: current(bySent.get(keyOf(ref.namespace, ref.name))!),
    port: ref.port,
  }));
}
