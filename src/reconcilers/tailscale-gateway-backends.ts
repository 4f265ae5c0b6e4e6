/**
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
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type TailscaleEndpoints, validateResource } from '../api/index.ts';
import {
  type Condition,
  conditionsEqual,
  type ReconcileResult,
  type Reconciler,
  setCondition,
} from '../controller/index.ts';
import { CUSTOM_BACKEND_ROUTE_KINDS, type RouteInfo } from '../index/gateway-api.ts';
import { egressTarget } from '../proxy/egress-target.ts';
import type { ResourceSnapshot } from '../store/resource-store.ts';

export const CONDITION_ROUTE_REFERENCES = 'RouteReferences';
/** The field manager of this one condition. */
export const ROUTES_FIELD_MANAGER = 'tailscale-gateway-routes';

const describeRoute = (route: RouteInfo, endpointsKey: string) => {
  const rules = [
    ...new Set(
      route.backends
        .filter((b) => `${b.namespace}/${b.name}` === endpointsKey && b.kind === 'TailscaleEndpoints')
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
  const key = `${endpoints.metadata.namespace ?? 'default'}/${endpoints.metadata.name}`;
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

export interface BackendsReconcilerOptions {
  getEndpoints(namespace: string, name: string): KubernetesObject | undefined;
  snapshot(): ResourceSnapshot;
  /** Applies `{conditions}` to the status under ROUTES_FIELD_MANAGER. */
  writeConditions(obj: KubernetesObject, conditions: Condition[], signal: AbortSignal): Promise<void>;
  clock: { now(): number };
}

export function createBackendsReconciler(options: BackendsReconcilerOptions): Reconciler {
  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const [namespace, name] = key.split('/') as [string, string];
    const raw = options.getEndpoints(namespace, name);
    if (!raw) return undefined;
    const checked = validateResource(raw);
    if (!checked.ok || checked.resource.kind !== 'TailscaleEndpoints') return undefined;
    const endpoints = checked.resource;
    const snapshot = options.snapshot();
    const routes = snapshot.index.routesOfEndpoints(namespace, name);
    const desired = routeReferenceConditions(endpoints, routes, new Date(options.clock.now()));
    const current = (endpoints.status?.conditions ?? []).filter((c) => c.type === CONDITION_ROUTE_REFERENCES);
    if (conditionsEqual(current, desired)) return undefined;
    await options.writeConditions(raw, desired, signal);
    log.info({ routes: routes.length, reason: desired[0]?.reason ?? 'none' }, 'route references updated');
    return undefined;
  };
}
