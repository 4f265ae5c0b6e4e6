/**
 * The little of Gateway API objects the index needs, read leniently: a route's parents and backends,
 * a Gateway's identity and annotations. Not validated against the Gateway API schemas (the API server
 * did that); anything unexpected in shape is skipped, never thrown, because one odd route must not stop
 * the index from following the others.
 *
 * Defaults are the Gateway API's: a parentRef is a `gateway.networking.k8s.io` `Gateway` in the
 * route's namespace; a backendRef is a core `Service` in the route's namespace.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP } from '../api/index.ts';
import type { Informer } from '../kube/index.ts';
import { fieldsOf, listOf, specOf } from '../kube/object-fields.ts';
import { namespaceOf } from '../kube/object-key.ts';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
/** The route kinds the index follows, in the order they are listed. */
export const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TCPRoute', 'UDPRoute', 'TLSRoute'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];
/** The Gateway API kinds the operator watches. */
export const GATEWAY_API_KINDS = ['Gateway', ...ROUTE_KINDS] as const;
export type GatewayApiKind = (typeof GATEWAY_API_KINDS)[number];

/** Route kinds Envoy Gateway (1.9) hands custom backends to the extension for: HTTPRoute only. */
export const CUSTOM_BACKEND_ROUTE_KINDS: readonly RouteKind[] = ['HTTPRoute'];

export const TAILSCALE_ENDPOINTS_KIND = 'TailscaleEndpoints';

export interface ParentRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  sectionName?: string;
}

export interface BackendRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  port?: number;
  /** Index of the rule holding it. */
  rule: number;
  /**
   * Its position among the rule's backendRefs, every entry counted: Envoy Gateway's
   * `…/rule/<rule>/backend/<index>` cluster, when it makes one per backendRef.
   */
  index: number;
  /** Whether it has filters of its own, which makes Envoy Gateway give each backendRef its own cluster. */
  filtered: boolean;
  /** Its `weight`, when set (Gateway API's default is 1). */
  weight?: number;
}

export interface RouteInfo {
  kind: RouteKind;
  namespace: string;
  name: string;
  generation: number | undefined;
  resourceVersion: string | undefined;
  parents: ParentRef[];
  backends: BackendRef[];
}

export interface GatewayInfo {
  namespace: string;
  name: string;
  generation: number | undefined;
  resourceVersion: string | undefined;
  annotations: Readonly<Record<string, string>>;
}

export const isGatewayApiKind = (kind: unknown): kind is GatewayApiKind =>
  typeof kind === 'string' && (GATEWAY_API_KINDS as readonly string[]).includes(kind);

export const isRouteKind = (kind: unknown): kind is RouteKind =>
  typeof kind === 'string' && (ROUTE_KINDS as readonly string[]).includes(kind);

/** `Kind/namespace/name`: the key of a route in the index and in status lists. */
export const routeKey = (route: { kind: string; namespace: string; name: string }): string =>
  `${route.kind}/${route.namespace}/${route.name}`;

/** True when a backendRef names a TailscaleEndpoints (any version of our group). */
export const isEndpointsBackend = (ref: Pick<BackendRef, 'group' | 'kind'>): boolean =>
  ref.group === GROUP && ref.kind === TAILSCALE_ENDPOINTS_KIND;

/** True when a parentRef names a Gateway API Gateway. */
export const isGatewayParent = (ref: Pick<ParentRef, 'group' | 'kind'>): boolean =>
  ref.group === GATEWAY_API_GROUP && ref.kind === 'Gateway';

const str = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/** The route's parents and backends, or undefined when `obj` is not a route the index follows. */
export function parseRoute(obj: KubernetesObject): RouteInfo | undefined {
  if (!isRouteKind(obj.kind)) return undefined;
  const name = obj.metadata?.name;
  if (!name) return undefined;
  const namespace = namespaceOf(obj);
  const spec = specOf(obj);
  const parents: ParentRef[] = [];
  for (const raw of listOf(spec.parentRefs)) {
    const ref = fieldsOf(raw);
    const parentName = str(ref.name);
    if (!parentName) continue;
    const sectionName = str(ref.sectionName);
    parents.push({
      group: typeof ref.group === 'string' ? ref.group : GATEWAY_API_GROUP,
      kind: str(ref.kind) ?? 'Gateway',
      namespace: str(ref.namespace) ?? namespace,
      name: parentName,
      ...(sectionName ? { sectionName } : {}),
    });
  }
  const backends: BackendRef[] = [];
  listOf(spec.rules).forEach((rawRule, rule) => {
    listOf(fieldsOf(rawRule).backendRefs).forEach((raw, index) => {
      const ref = fieldsOf(raw);
      const backendName = str(ref.name);
      if (!backendName) return;
      backends.push({
        group: typeof ref.group === 'string' ? ref.group : '',
        kind: str(ref.kind) ?? 'Service',
        namespace: str(ref.namespace) ?? namespace,
        name: backendName,
        ...(typeof ref.port === 'number' ? { port: ref.port } : {}),
        rule,
        index,
        filtered: listOf(ref.filters).length > 0,
        ...(typeof ref.weight === 'number' ? { weight: ref.weight } : {}),
      });
    });
  });
  return {
    kind: obj.kind,
    namespace,
    name,
    generation: obj.metadata?.generation,
    resourceVersion: obj.metadata?.resourceVersion,
    parents,
    backends,
  };
}

export function parseGateway(obj: KubernetesObject): GatewayInfo | undefined {
  if (obj.kind !== 'Gateway' || !obj.metadata?.name) return undefined;
  return {
    namespace: namespaceOf(obj),
    name: obj.metadata.name,
    generation: obj.metadata.generation,
    resourceVersion: obj.metadata.resourceVersion,
    annotations: { ...(obj.metadata.annotations ?? {}) },
  };
}

/** The Gateway API informers as the lookup of served kinds starts them: what a resource's setup reads of them. */
export interface GatewayApiView {
  get(kind: GatewayApiKind): Informer | undefined;
  kindsKnown(): boolean;
  onInformer(listener: (kind: GatewayApiKind, informer: Informer) => void): () => void;
}
