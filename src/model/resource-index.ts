/**
 * The bidirectional index: TailscaleEndpoints ↔ the routes that name them as backendRefs ↔ the
 * Gateways those routes attach to ↔ the TailscaleGateways joining those Gateways. Kept up to date one
 * object at a time from informer events (`upsert`, `remove`), so no hook and no reconciler ever lists
 * to answer "who uses this?".
 *
 * Each object contributes its own edges; an update replaces exactly that object's edges, a delete drops
 * them. Lookups in either direction are map reads. The relations:
 *
 * - route → TailscaleEndpoints   (its backendRefs of kind TailscaleEndpoints)
 * - route → Gateway              (its parentRefs of kind Gateway)
 * - TailscaleGateway → Gateway   (its gatewayRef)
 * - TailscaleGateway → namespace/tailnet, TailscaleEndpoints → namespace/tailnet: the generated
 *   `/tailscale/<service>/` routes (route-generation.ts: same namespace, `spec.tailnet` names one of the
 *   TailscaleGateway's tailnets)
 *
 * The index is live, not a copy per snapshot: the feed applies events and replaces the store's snapshot
 * in the same synchronous step, and the hooks are synchronous, so a hook never sees the two disagree.
 *
 * `complete` is false until every Gateway API kind the cluster serves has been listed; readers that
 * would act on an absence (PostTranslateModify leaving clusters out) must treat an incomplete index as
 * "cannot tell".
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP } from '../api/index.ts';
import { fieldsOf, listOf, specOf } from '../kube/object-fields.ts';
import { keyOf, kindKeyOf, namespaceOf } from '../kube/object-key.ts';
import {
  GATEWAY_API_GROUP,
  type GatewayApiKind,
  type GatewayInfo,
  isEndpointsBackend,
  isGatewayParent,
  isRouteKind,
  parseGateway,
  parseRoute,
  type RouteInfo,
  type RouteKind,
  routeKey,
} from './gateway-api.ts';

/** A many-to-many relation kept in both directions. */
export class Relation {
  private readonly forward = new Map<string, Set<string>>();
  private readonly backward = new Map<string, Set<string>>();

  /** Replaces every edge leaving `from`. */
  set(from: string, targets: Iterable<string>): void {
    this.delete(from);
    const set = new Set(targets);
    if (set.size === 0) return;
    this.forward.set(from, set);
    for (const to of set) {
      const sources = this.backward.get(to) ?? new Set<string>();
      sources.add(from);
      this.backward.set(to, sources);
    }
  }

  delete(from: string): void {
    const old = this.forward.get(from);
    if (!old) return;
    this.forward.delete(from);
    for (const to of old) {
      const sources = this.backward.get(to);
      sources?.delete(from);
      if (sources?.size === 0) this.backward.delete(to);
    }
  }

  targets(from: string): string[] {
    return [...(this.forward.get(from) ?? [])].sort();
  }

  sources(to: string): string[] {
    return [...(this.backward.get(to) ?? [])].sort();
  }

  get size(): number {
    let n = 0;
    for (const set of this.forward.values()) n += set.size;
    return n;
  }
}

/** Read access, as the hooks and reconcilers see it. Keys are `namespace/name` unless said otherwise. */
export interface ResourceIndex {
  /** Increases with every change applied. */
  readonly version: number;
  /** Every Gateway API kind the cluster serves has been listed (see the module notes). */
  complete(): boolean;
  /** The Gateway API kinds the cluster serves, as last looked up. */
  servedKinds(): readonly GatewayApiKind[];
  route(kind: RouteKind, namespace: string, name: string): RouteInfo | undefined;
  routes(): RouteInfo[];
  gateway(namespace: string, name: string): GatewayInfo | undefined;
  gateways(): GatewayInfo[];
  /** Routes with a backendRef to the TailscaleEndpoints. */
  routesOfEndpoints(namespace: string, name: string): RouteInfo[];
  /** TailscaleEndpoints keys a route names as backends. */
  endpointsOfRoute(route: RouteInfo): string[];
  /** Routes whose parentRefs name the Gateway. */
  routesOfGateway(namespace: string, name: string): RouteInfo[];
  /** TailscaleGateway keys whose gatewayRef names the Gateway. */
  tailscaleGatewaysOfGateway(namespace: string, name: string): string[];
  /** The Gateway key a TailscaleGateway joins. */
  gatewayOfTailscaleGateway(namespace: string, name: string): string | undefined;
  /** TailscaleGateways that generate routes for the endpoints or whose Gateway has a route to them. */
  tailscaleGatewaysOfEndpoints(namespace: string, name: string): string[];
  /** TailscaleEndpoints the TailscaleGateway generates routes for or that routes on its Gateway name. */
  endpointsOfTailscaleGateway(namespace: string, name: string): string[];
  /** Edge counts per relation and object counts per kind, for the metrics. */
  stats(): { objects: Record<string, number>; edges: Record<string, number> };
}

export interface MutableResourceIndex extends ResourceIndex {
  /** Records an object of any followed kind (ours or Gateway API); others are ignored. */
  upsert(obj: KubernetesObject): void;
  remove(obj: KubernetesObject): void;
  /** Whether the object as given is already what the index holds (same resourceVersion). */
  holds(obj: KubernetesObject): boolean;
  /** Every object held, by `kind/namespace/name` ({@link kindKeyOf}): its kind, name and resourceVersion. */
  held(): Map<string, HeldObject>;
  setServed(kinds: readonly GatewayApiKind[], complete: boolean): void;
}

/** What the index remembers of an object it holds: enough to compare it and to remove it. */
export interface HeldObject extends KubernetesObject {
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

function heldOf(obj: KubernetesObject): HeldObject {
  const { name = '', namespace, resourceVersion } = obj.metadata ?? {};
  return {
    kind: obj.kind ?? '',
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
  };
}

export function createResourceIndex(): MutableResourceIndex {
  let version = 0;
  let served: readonly GatewayApiKind[] = [];
  let complete = true;
  const versions = new Map<string, HeldObject>();
  const routes = new Map<string, RouteInfo>();
  const gateways = new Map<string, GatewayInfo>();
  const routeEndpoints = new Relation();
  const routeGateways = new Relation();
  const tsgwGateway = new Relation();
  const tsgwTailnets = new Relation();
  const endpointsTailnet = new Relation();
  const counts = new Map<string, number>();

  const count = (kind: string, delta: number) => counts.set(kind, (counts.get(kind) ?? 0) + delta);

  const forget = (obj: KubernetesObject) => {
    const id = kindKeyOf(obj);
    if (!versions.has(id)) return false;
    versions.delete(id);
    count(obj.kind ?? '', -1);
    const key = keyOf(namespaceOf(obj), obj.metadata?.name ?? '');
    if (isRouteKind(obj.kind)) {
      const rk = `${obj.kind}/${key}`;
      routes.delete(rk);
      routeEndpoints.delete(rk);
      routeGateways.delete(rk);
    } else if (obj.kind === 'Gateway') gateways.delete(key);
    else if (obj.kind === 'TailscaleGateway') {
      tsgwGateway.delete(key);
      tsgwTailnets.delete(key);
    } else if (obj.kind === 'TailscaleEndpoints') endpointsTailnet.delete(key);
    return true;
  };

  const sortRoutes = (keys: Iterable<string>) =>
    [...keys].map((k) => routes.get(k)).filter((r): r is RouteInfo => r !== undefined);

  const index: MutableResourceIndex = {
    get version() {
      return version;
    },
    complete: () => complete,
    servedKinds: () => served,
    route: (kind, namespace, name) => routes.get(routeKey({ kind, namespace, name })),
    routes: () => [...routes.values()],
    gateway: (namespace, name) => gateways.get(keyOf(namespace, name)),
    gateways: () => [...gateways.values()],
    routesOfEndpoints: (namespace, name) => sortRoutes(routeEndpoints.sources(keyOf(namespace, name))),
    endpointsOfRoute: (route) => routeEndpoints.targets(routeKey(route)),
    routesOfGateway: (namespace, name) => sortRoutes(routeGateways.sources(keyOf(namespace, name))),
    tailscaleGatewaysOfGateway: (namespace, name) => tsgwGateway.sources(keyOf(namespace, name)),
    gatewayOfTailscaleGateway: (namespace, name) => tsgwGateway.targets(keyOf(namespace, name))[0],
    tailscaleGatewaysOfEndpoints(namespace, name) {
      const key = keyOf(namespace, name);
      const out = new Set<string>();
      for (const tailnet of endpointsTailnet.targets(key))
        for (const tsgw of tsgwTailnets.sources(tailnet)) out.add(tsgw);
      for (const route of routeEndpoints.sources(key))
        for (const gateway of routeGateways.targets(route))
          for (const tsgw of tsgwGateway.sources(gateway)) out.add(tsgw);
      return [...out].sort();
    },
    endpointsOfTailscaleGateway(namespace, name) {
      const key = keyOf(namespace, name);
      const out = new Set<string>();
      for (const tailnet of tsgwTailnets.targets(key))
        for (const endpoints of endpointsTailnet.sources(tailnet)) out.add(endpoints);
      for (const gateway of tsgwGateway.targets(key))
        for (const route of routeGateways.sources(gateway))
          for (const endpoints of routeEndpoints.targets(route)) out.add(endpoints);
      return [...out].sort();
    },
    stats: () => ({
      objects: Object.fromEntries([...counts].filter(([, n]) => n > 0)),
      edges: {
        'route-endpoints': routeEndpoints.size,
        'route-gateway': routeGateways.size,
        'tailscalegateway-gateway': tsgwGateway.size,
        'tailscalegateway-tailnet': tsgwTailnets.size,
        'endpoints-tailnet': endpointsTailnet.size,
      },
    }),

    upsert(obj) {
      const kind = obj.kind ?? '';
      const namespace = namespaceOf(obj);
      const name = obj.metadata?.name;
      if (!name) return;
      const key = keyOf(namespace, name);
      const ours = obj.apiVersion?.startsWith(`${GROUP}/`) ?? false;
      if (isRouteKind(kind)) {
        const route = parseRoute(obj);
        if (!route) return;
        forget(obj);
        const rk = routeKey(route);
        routes.set(rk, route);
        routeEndpoints.set(
          rk,
          route.backends.filter(isEndpointsBackend).map((b) => keyOf(b.namespace, b.name)),
        );
        routeGateways.set(
          rk,
          route.parents.filter(isGatewayParent).map((p) => keyOf(p.namespace, p.name)),
        );
      } else if (kind === 'Gateway' && !ours) {
        const gateway = parseGateway(obj);
        if (!gateway) return;
        forget(obj);
        gateways.set(key, gateway);
      } else if (kind === 'TailscaleGateway' && ours) {
        forget(obj);
        const spec = specOf(obj);
        const ref = fieldsOf(spec.gatewayRef);
        const group = typeof ref.group === 'string' ? ref.group : GATEWAY_API_GROUP;
        const refKind = typeof ref.kind === 'string' ? ref.kind : 'Gateway';
        const refName = typeof ref.name === 'string' ? ref.name : undefined;
        const refNamespace = typeof ref.namespace === 'string' ? ref.namespace : namespace;
        tsgwGateway.set(
          key,
          refName && isGatewayParent({ group, kind: refKind }) ? [keyOf(refNamespace, refName)] : [],
        );
        tsgwTailnets.set(
          key,
          listOf(spec.tailnets)
            .map((t) => fieldsOf(t).name)
            .filter((n): n is string => typeof n === 'string')
            .map((n) => keyOf(namespace, n)),
        );
      } else if (kind === 'TailscaleEndpoints' && ours) {
        forget(obj);
        const tailnet = specOf(obj).tailnet;
        endpointsTailnet.set(key, typeof tailnet === 'string' ? [keyOf(namespace, tailnet)] : []);
      } else return;
      versions.set(kindKeyOf(obj), heldOf(obj));
      count(kind, 1);
      version++;
    },
    remove(obj) {
      if (forget(obj)) version++;
    },
    holds: (obj) => {
      const id = kindKeyOf(obj);
      const held = versions.get(id);
      return held !== undefined && held.metadata.resourceVersion === obj.metadata?.resourceVersion;
    },
    held: () => new Map(versions),
    setServed(kinds, isComplete) {
      if (isComplete === complete && kinds.length === served.length && kinds.every((k) => served.includes(k)))
        return;
      served = [...kinds];
      complete = isComplete;
      version++;
    },
  };
  return index;
}

/** An index that holds nothing and says it cannot tell: what file-fed (standalone) snapshots carry. */
export const EMPTY_INDEX: ResourceIndex = (() => {
  const index = createResourceIndex();
  index.setServed([], false);
  return index;
})();
