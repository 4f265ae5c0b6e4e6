/**
 * HTTPRoute rules that name a TailscaleEndpoints beside a backend Envoy Gateway resolves itself (a
 * Service, EG's Backend). EG gives such a rule one EDS cluster, `httproute/<ns>/<name>/rule/<i>`:
 * the Service's endpoints arrive by EDS and the custom backend adds none. Filling that cluster with an
 * inline load assignment, as a custom backend's is filled, would end its use of EDS and lose the
 * Service's endpoints; and tailnet endpoints reached by name (STRICT_DNS) cannot join an EDS cluster.
 *
 * So the rule is split the way EG splits a rule that needs a cluster per backendRef: EG's cluster
 * keeps what EG resolved, each TailscaleEndpoints backendRef `j` gets `…/rule/<i>/backend/<j>` (added
 * by PostTranslateModify, filled as PostClusterModify fills a custom backend's cluster), and the
 * rule's routes pick among them by the backendRefs' weights (PostRouteModify: weighted clusters).
 * Only with the index: without it (standalone mode) a rule cannot be told to be mixed.
 *
 * @module
 */
import { httpRouteRuleOfClusterName } from '../../model/envoy-gateway-names.ts';
import { type BackendRef, isEndpointsBackend } from '../../model/gateway-api.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';

export interface MixedRule {
  /** EG's cluster of the rule, which keeps the backends EG resolved. */
  cluster: string;
  /** The backendRefs EG resolves (Services and the like). */
  resolved: BackendRef[];
  /** The TailscaleEndpoints backendRefs, each with a cluster of its own. */
  tailnet: BackendRef[];
}

/** The cluster of one TailscaleEndpoints backendRef of a mixed rule: EG's per-backendRef name. */
export const backendClusterName = (ruleCluster: string, ref: Pick<BackendRef, 'index'>): string =>
  `${ruleCluster}/backend/${ref.index}`;

/** The mixed rule `clusterName` is EG's shared cluster of, if it is one. */
export function mixedRuleOf(clusterName: string, snapshot: ResourceSnapshot): MixedRule | undefined {
  // EG's shared cluster of the rule, never a per-backendRef one.
  const origin = httpRouteRuleOfClusterName(clusterName);
  if (origin === undefined || origin.backend !== undefined) return undefined;
  const refs = snapshot.index
    .route('HTTPRoute', origin.namespace, origin.name)
    ?.backends.filter((b) => b.rule === origin.rule);
  if (!refs) return undefined;
  const tailnet = refs.filter(isEndpointsBackend);
  const resolved = refs.filter((b) => !isEndpointsBackend(b));
  if (tailnet.length === 0 || resolved.length === 0) return undefined;
  return { cluster: clusterName, resolved, tailnet };
}

/**
 * The weighted clusters of a mixed rule's routes: EG's cluster with the weight of the backends it
 * resolved (EG balances among them itself, by the same weights), each TailscaleEndpoints cluster with
 * its backendRef's. Gateway API weights default to 1; a weight of 0 sends nothing. Empty when every
 * weight is 0 (the route is left as EG made it).
 */
export function mixedRuleWeights(mixed: MixedRule): { name: string; weight: number }[] {
  const weightOf = (ref: BackendRef) => ref.weight ?? 1;
  return [
    { name: mixed.cluster, weight: mixed.resolved.reduce((sum, ref) => sum + weightOf(ref), 0) },
    ...mixed.tailnet.map((ref) => ({ name: backendClusterName(mixed.cluster, ref), weight: weightOf(ref) })),
  ].filter((e) => e.weight > 0);
}
