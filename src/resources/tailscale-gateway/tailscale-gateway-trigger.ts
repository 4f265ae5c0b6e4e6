/**
 * How Envoy Gateway learns that the routes we generate changed.
 *
 * EG re-translates a Gateway only when its own IR for that Gateway changes, and builds the IR only
 * from objects it watches. A TailscaleEndpoints that no route names is not in any IR, so a new one (or
 * an edit of one) would reach Envoy only with the Gateway's next unrelated change. What EG v1.9.1 does
 * (internal/provider/kubernetes/controller.go, internal/gatewayapi/listener.go):
 * - a `backendResources` object (TailscaleEndpoints) is watched with GenerationChangedPredicate and
 *   enqueues a reconcile of the whole GatewayClass; but the IR it rebuilds carries the object only
 *   where a route names it, so the xDS translation is skipped as unchanged;
 * - a Gateway is watched with generation OR label OR annotation changes (`metadataPredicate`), and
 *   its annotations under `gateway.envoyproxy.io/` are copied (prefix stripped) into the metadata of
 *   every IR listener of that Gateway (`buildListenerMetadata`).
 * So one annotation on the Gateway, `gateway.envoyproxy.io/tailscale-gateway-revision: <digest>`,
 * changes that Gateway's IR exactly when the digest changes, and EG re-translates it, calling our hooks.
 * No spec is touched. The digest covers what the generated routes and clusters are built from: the
 * specs of the TailscaleGateways joining the Gateway and of the TailscaleEndpoints they generate
 * routes for, the cross-cluster failover members their published services add
 * (src/model/remote-endpoints.ts), and the virtual hosts of their published services of mode HTTP
 * (src/model/ingress-generation.ts), whose domains come partly from status: the MagicDNS name
 * appears there once the tailnet's suffix is known. (TailscaleEndpoints that routes name are inside
 * EG's IR already, whole.)
 *
 * It also covers the ports of the TailscaleEndpoints backendRefs of the HTTPRoutes on the Gateway,
 * which EG does not hand to PostClusterModify: the hook reads them from the reference index, which
 * may see a route a moment after EG translated it, and then builds the cluster as for a backendRef
 * without a port. The index having the route changes the digest, and EG translates again, this time
 * with the port. So a Gateway no TailscaleGateway joins gets the annotation too while such a route
 * with a port is on it.
 *
 * The reconciler is keyed by Gateway, writes with a JSON merge patch of that one annotation (never
 * creating a Gateway), removes it when neither a TailscaleGateway joins the Gateway nor such a route
 * is on it any more, and writes nothing when the annotation already says the current digest.
 *
 * @module
 */

import { createHash } from 'node:crypto';
import { canonical } from '../../canonical-json.ts';
import type { ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { splitKey } from '../../kube/index.ts';
import { DEFAULT_CLUSTER_DOMAIN } from '../../model/egress-target.ts';
import { CUSTOM_BACKEND_ROUTE_KINDS, isEndpointsBackend, routeKey } from '../../model/gateway-api.ts';
import { ingressServicesOf } from '../../model/ingress-generation.ts';
import { remoteMembersByEndpoints } from '../../model/remote-endpoints.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import { joinedGatewayKey, servicesOf } from '../../model/route-generation.ts';

export const REVISION_ANNOTATION = 'gateway.envoyproxy.io/tailscale-gateway-revision';

/**
 * The cluster domain the digest's ingress targets are spelled with. The real one is fixed for the
 * life of the process, so any constant detects the same changes, and the trigger and the status
 * reconciler (which both compute the digest) agree without being handed it.
 */
const DIGEST_CLUSTER_DOMAIN = DEFAULT_CLUSTER_DOMAIN;

/**
 * `HTTPRoute/<ns>/<name>/<rule>/<index> <endpoints ns>/<name>:<port>` for every TailscaleEndpoints
 * backendRef with a port of the HTTPRoutes on a Gateway, sorted.
 */
function backendPortsOf(gatewayKey: string, snapshot: ResourceSnapshot): string[] {
  const { namespace = '', name } = splitKey(gatewayKey);
  const out: string[] = [];
  for (const route of snapshot.index.routesOfGateway(namespace, name)) {
    if (!CUSTOM_BACKEND_ROUTE_KINDS.includes(route.kind)) continue;
    for (const b of route.backends)
      if (isEndpointsBackend(b) && b.port !== undefined)
        out.push(`${routeKey(route)}/${b.rule}/${b.index} ${b.namespace}/${b.name}:${b.port}`);
  }
  return out.sort();
}

/**
 * The revision a Gateway (`namespace/name`) should carry, or undefined when no TailscaleGateway joins
 * it and no HTTPRoute on it names a TailscaleEndpoints with a port.
 */
export function gatewayRevision(gatewayKey: string, snapshot: ResourceSnapshot): string | undefined {
  const joined = snapshot.gateways.filter((g) => joinedGatewayKey(g) === gatewayKey);
  const backendPorts = backendPortsOf(gatewayKey, snapshot);
  if (joined.length === 0 && backendPorts.length === 0) return undefined;
  const endpoints = new Map<string, unknown>();
  const gateways = joined.map((g) => {
    for (const service of servicesOf(g, snapshot)) {
      const e = service.endpoints;
      endpoints.set(`${e.metadata.namespace ?? ''}/${e.metadata.name}`, e.spec);
    }
    return [`${g.metadata.namespace ?? ''}/${g.metadata.name}`, g.spec];
  });
  // Cross-cluster failover members (from the joined TailscaleGateways' status) change clusters too; the
  // key is left out when there are none, so digests without them stay what they were.
  const remote = [...remoteMembersByEndpoints(joined)].sort(([a], [b]) => a.localeCompare(b));
  // Likewise the ingress virtual hosts: the spec is in the digest already, but their domains also
  // follow status (the DNS name), which EG never sees change.
  const ingress = joined
    .flatMap((g) => ingressServicesOf(g, DIGEST_CLUSTER_DOMAIN))
    .map((s) => ({
      name: s.name,
      hosts: s.hosts,
      pathPrefix: s.pathPrefix,
      targetHost: s.targetHost,
      targetPort: s.targetPort,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const input = canonical({
    gateways,
    endpoints: [...endpoints].sort(([a], [b]) => a.localeCompare(b)),
    ...(remote.length > 0 ? { remote } : {}),
    ...(ingress.length > 0 ? { ingress } : {}),
    ...(backendPorts.length > 0 ? { backendPorts } : {}),
  });
  return createHash('sha256').update(input).digest('hex').slice(0, 16);
}

export interface GatewayTriggerOptions {
  /** The Gateway's current revision annotation; `found: false` when the Gateway is not in the cache. */
  getGateway(
    namespace: string,
    name: string,
  ): { found: false } | { found: true; revision: string | undefined };
  snapshot(): ResourceSnapshot;
  /** Sets the annotation (or removes it, for undefined) with a merge patch. */
  setRevision(
    namespace: string,
    name: string,
    revision: string | undefined,
    signal: AbortSignal,
  ): Promise<void>;
}

export function createGatewayTriggerReconciler(options: GatewayTriggerOptions): Reconciler {
  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const gateway = options.getGateway(namespace, name);
    if (!gateway.found) return undefined;
    const desired = gatewayRevision(key, options.snapshot());
    if (desired === gateway.revision) return undefined;
    await options.setRevision(namespace, name, desired, signal);
    log.info({ from: gateway.revision, to: desired }, 'Gateway revision annotation updated');
    return undefined;
  };
}
