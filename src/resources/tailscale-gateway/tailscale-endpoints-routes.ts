/**
 * The endpoints-routes controller (`tailscaleendpoints-routes`): what the routes naming a
 * TailscaleEndpoints make of it, said on the TailscaleEndpoints. It lives beside the TailscaleGateway
 * because it reads the same routes, index and failover plans, and its watches are the
 * TailscaleGateway-side ones (tailscale-gateway-watches.ts).
 *
 * Which routes use a TailscaleEndpoints as a backendRef, said on the TailscaleEndpoints itself, in
 * one condition of its own, `RouteReferences` (written by its own field manager, so the proxy
 * controller's conditions on the same object are untouched).
 *
 * Why not RouteParentStatus on the routes: the Gateway API gives each entry of `status.parents` to the
 * controller named by the parent Gateway's GatewayClass (`controllerName` "corresponds with the
 * controllerName field on GatewayClass"); for a Gateway of Envoy Gateway's class that is EG, which
 * already writes ResolvedRefs for our backends. A second entry for the same parentRef under our name
 * would contradict the spec and could be dropped by EG's status writer. So the routes are named here
 * and on the TailscaleGateway (`status.routes`).
 *
 * - `True`/`Referenced`: only HTTPRoutes name it; Envoy Gateway hands those backends to our hooks.
 * - `False`/`UnsupportedRouteKind`: a GRPCRoute, TCPRoute, UDPRoute or TLSRoute names it directly.
 *   Envoy Gateway 1.9 drops custom backends on those kinds (an empty cluster, or BackendNotFound); the
 *   message names the supported alternative, the per-endpoint egress Service as an ordinary Service
 *   backendRef.
 * - no condition when no route names it.
 *
 * A second condition of its own, `ClustersConsistent`, says whether the Envoy clusters built from the
 * object hold what their users ask for (src/model/cluster-plan.ts, the very plans the hooks
 * build from): for each HTTPRoute rule naming it, the endpoints its backendRef's port selects, and
 * for the failover route a TailscaleGateway generates, its priority group. True / `Consistent`, or
 * False with the most severe problem's reason and every problem in the message; none while nothing
 * builds a cluster of several endpoints from it. The hooks cannot write status (they run on every
 * replica, inside Envoy Gateway's translation), so the leader computes the same plans here.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Checked, TailscaleEndpoints } from '../../api/index.ts';
import {
  type Condition,
  conditionsEqual,
  type ReconcileResult,
  type Reconciler,
  setCondition,
} from '../../controller-runtime/index.ts';
import { splitKey } from '../../kube/index.ts';
import { keyOf, namespaceOf } from '../../kube/object-key.ts';
import {
  type BackendSelection,
  type ClusterProblemKind,
  endpointsKey,
  planBackendCluster,
  planFailover,
} from '../../model/cluster-plan.ts';
import { egressTarget } from '../../model/egress-target.ts';
import {
  type BackendRef,
  CUSTOM_BACKEND_ROUTE_KINDS,
  isEndpointsBackend,
  type RouteInfo,
} from '../../model/gateway-api.ts';
import { clusterName } from '../../model/names.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';

export const CONDITION_ROUTE_REFERENCES = 'RouteReferences';
export const CONDITION_CLUSTERS_CONSISTENT = 'ClustersConsistent';
const OWN_CONDITIONS = new Set([CONDITION_ROUTE_REFERENCES, CONDITION_CLUSTERS_CONSISTENT]);
/**
 * The field manager of these two conditions. The string is on the wire (managedFields of every
 * TailscaleEndpoints in users' clusters): a new one would leave the old manager owning the conditions
 * forever, so it stays `tailscale-gateway-routes` whatever the controller is called.
 */
export const ENDPOINTS_ROUTES_FIELD_MANAGER = 'tailscale-gateway-routes';

const describeRoute = (route: RouteInfo, endpointsKey: string) => {
  const rules = [
    ...new Set(
      route.backends
        .filter((b) => keyOf(b.namespace, b.name) === endpointsKey && b.kind === 'TailscaleEndpoints')
        .map((b) => b.rule),
    ),
  ];
  return `${route.kind} ${route.namespace}/${route.name} (rule ${rules.join(', ')})`;
};

/** What to use instead on kinds EG does not carry: each endpoint's egress Service, where it has one. */
export function egressAlternative(endpoints: TailscaleEndpoints): string {
  const parts = endpoints.spec.endpoints.map((endpoint) => {
    const target = egressTarget(endpoints, endpoint, { proxies: true });
    return target.via === 'egress-proxy'
      ? `{kind: Service, name: ${target.serviceName}, port: ${target.port}} for ${endpoint.name}`
      : `none for ${endpoint.name} (no tailnet address, or proxy.connectionType ingress)`;
  });
  return `use the egress Service as an ordinary backendRef instead: ${parts.join('; ')}`;
}

/** Our conditions (this one type, or none) for `endpoints` referenced by `routes`. */
export function routeReferenceConditions(
  endpoints: TailscaleEndpoints,
  routes: readonly RouteInfo[],
  now: Date,
): Condition[] {
  const previous = (endpoints.status?.conditions ?? []).filter((c) => c.type === CONDITION_ROUTE_REFERENCES);
  if (routes.length === 0) return [];
  const key = `${namespaceOf(endpoints)}/${endpoints.metadata.name}`;
  const unsupported = routes.filter((r) => !CUSTOM_BACKEND_ROUTE_KINDS.includes(r.kind));
  const supported = routes.filter((r) => CUSTOM_BACKEND_ROUTE_KINDS.includes(r.kind));
  const generation = endpoints.metadata.generation;
  const used =
    supported.length > 0 ? `; used by ${supported.map((r) => describeRoute(r, key)).join(', ')}` : '';
  const input =
    unsupported.length > 0
      ? {
          status: 'False' as const,
          reason: 'UnsupportedRouteKind',
          message:
            `${unsupported.map((r) => describeRoute(r, key)).join(', ')} name this TailscaleEndpoints directly, ` +
            `but Envoy Gateway carries custom backends on HTTPRoute only; ${egressAlternative(endpoints)}${used}`,
        }
      : {
          status: 'True' as const,
          reason: 'Referenced',
          message: `backendRef of ${supported.map((r) => describeRoute(r, key)).join(', ')}`,
        };
  return setCondition(
    previous,
    {
      type: CONDITION_ROUTE_REFERENCES,
      ...input,
      message: input.message.slice(0, 32768),
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    },
    now,
  );
}

/** The condition's reason for each kind of problem, most severe first. */
const BY_SEVERITY: readonly { kind: ClusterProblemKind; reason: string }[] = [
  { kind: 'mixed-protocols', reason: 'MixedProtocols' },
  { kind: 'port-required', reason: 'PortRequired' },
  { kind: 'no-matching-endpoints', reason: 'NoMatchingEndpoints' },
  { kind: 'health-checks-merged', reason: 'HealthChecksMerged' },
];

/**
 * The backendRef groups of one rule that share a cluster, as Envoy Gateway builds them: every
 * TailscaleEndpoints of the rule in one, unless a backendRef has filters, which gives each its own.
 */
function clusterGroups(route: RouteInfo, rule: number): BackendRef[][] {
  const refs = route.backends.filter((b) => b.rule === rule);
  const named = refs.filter(isEndpointsBackend);
  return refs.some((b) => b.filtered) ? named.map((b) => [b]) : [named];
}

/** Our ClustersConsistent condition (or none) for `endpoints`. */
export function clusterConsistencyConditions(
  endpoints: TailscaleEndpoints,
  snapshot: ResourceSnapshot,
  now: Date,
): Condition[] {
  const key = endpointsKey(endpoints);
  const namespace = namespaceOf(endpoints);
  const uses: string[] = [];
  const findings: { kind: ClusterProblemKind; message: string }[] = [];
  const collect = (use: string, problems: ReturnType<typeof planBackendCluster>['problems']) => {
    uses.push(use);
    for (const p of problems)
      if (p.objects.includes(key)) findings.push({ kind: p.kind, message: `${use}: ${p.message}` });
  };
  for (const route of snapshot.index.routesOfEndpoints(namespace, endpoints.metadata.name)) {
    if (!CUSTOM_BACKEND_ROUTE_KINDS.includes(route.kind)) continue;
    const rules = new Set(
      route.backends
        .filter((b) => isEndpointsBackend(b) && keyOf(b.namespace, b.name) === key)
        .map((b) => b.rule),
    );
    for (const rule of rules)
      for (const group of clusterGroups(route, rule)) {
        if (!group.some((b) => keyOf(b.namespace, b.name) === key)) continue;
        const selections: BackendSelection[] = group.flatMap((b) => {
          const object =
            keyOf(b.namespace, b.name) === key ? endpoints : snapshot.getEndpoints(b.namespace, b.name);
          return object ? [{ endpoints: object, port: b.port }] : [];
        });
        collect(
          `${route.kind} ${route.namespace}/${route.name} rule ${rule}`,
          planBackendCluster(selections).problems,
        );
      }
  }
  const exposed = snapshot.gateways.some(
    (g) => namespaceOf(g) === namespace && g.spec.tailnets.some((t) => t.name === endpoints.spec.tailnet),
  );
  const failover = exposed ? planFailover(endpoints) : undefined;
  if (failover)
    collect(
      `failover route and cluster ${clusterName(namespace, endpoints.metadata.name)}`,
      failover.problems,
    );
  if (uses.length === 0) return [];
  const ranked = BY_SEVERITY.flatMap(({ kind }) => findings.filter((f) => f.kind === kind));
  const worst = BY_SEVERITY.find(({ kind }) => kind === ranked[0]?.kind);
  const previous = (endpoints.status?.conditions ?? []).filter(
    (c) => c.type === CONDITION_CLUSTERS_CONSISTENT,
  );
  const generation = endpoints.metadata.generation;
  const input =
    worst === undefined
      ? {
          status: 'True' as const,
          reason: 'Consistent',
          message: `its clusters hold what their users select: ${[...new Set(uses)].join(', ')}`,
        }
      : {
          status: 'False' as const,
          reason: worst.reason,
          message: [...new Set(ranked.map((f) => f.message))].join('; '),
        };
  return setCondition(
    previous,
    {
      type: CONDITION_CLUSTERS_CONSISTENT,
      ...input,
      message: input.message.slice(0, 32768),
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    },
    now,
  );
}

export interface EndpointsRoutesReconcilerOptions {
  getEndpoints(namespace: string, name: string): Checked<TailscaleEndpoints> | undefined;
  snapshot(): ResourceSnapshot;
  /** Applies `{conditions}` to the status under ENDPOINTS_ROUTES_FIELD_MANAGER. */
  writeConditions(obj: KubernetesObject, conditions: Condition[], signal: AbortSignal): Promise<void>;
  clock: { now(): number };
}

export function createEndpointsRoutesReconciler(options: EndpointsRoutesReconcilerOptions): Reconciler {
  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const checked = options.getEndpoints(namespace, name);
    if (!checked?.ok) return undefined;
    const { value: endpoints, raw } = checked;
    const snapshot = options.snapshot();
    const routes = snapshot.index.routesOfEndpoints(namespace, name);
    const now = new Date(options.clock.now());
    const references = routeReferenceConditions(endpoints, routes, now);
    const clusters = clusterConsistencyConditions(endpoints, snapshot, now);
    const desired = [...references, ...clusters];
    const current = (endpoints.status?.conditions ?? []).filter((c) => OWN_CONDITIONS.has(c.type));
    if (conditionsEqual(current, desired)) return undefined;
    await options.writeConditions(raw, desired, signal);
    log.info(
      {
        routes: routes.length,
        reason: references[0]?.reason ?? 'none',
        clusters: clusters[0]?.reason ?? 'none',
      },
      'route references updated',
    );
    return undefined;
  };
}
