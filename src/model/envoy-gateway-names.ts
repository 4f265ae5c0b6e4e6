/**
 * Envoy Gateway's names of the xDS resources it translates, read back. EG joins a resource's origin
 * with `/`: the Gateway's namespace and name and the listener for route configurations and virtual
 * hosts, the route's kind, namespace, name and rule index for clusters and routes. Where EG's metadata
 * does not say which Gateway, listener or HTTPRoute rule a resource came from, its name does; this is
 * the one place that knows those shapes, so the hooks and the route generation read them alike. A name
 * of any other shape reads as undefined, and the caller falls back to the metadata or leaves the
 * resource alone.
 *
 * @module
 */
import type { RouteKind } from './gateway-api.ts';

/** A Gateway (and listener, when known) an xDS resource was generated for. */
export interface GatewayIdentity {
  namespace: string;
  name: string;
  listener: string | undefined;
}

/** An HTTPRoute rule an xDS route or cluster was translated from. */
export interface HttpRouteRule {
  namespace: string;
  name: string;
  /** The rule's index; undefined when the name holds no number there. */
  rule: number | undefined;
}

const segments = (name: string): string[] => name.split('/');

/**
 * A route configuration's Gateway and listener: `<gwNs>/<gw>/<listener>`, or
 * `<gwNs>/<gw>/<lsNs>/<ls>/<listener>` for a ListenerSet's listener.
 */
export function gatewayOfRouteConfigName(name: string): GatewayIdentity | undefined {
  const parts = segments(name);
  return parts.length === 3 || parts.length === 5
    ? { namespace: parts[0]!, name: parts[1]!, listener: parts[parts.length - 1] }
    : undefined;
}

/**
 * A virtual host's Gateway and listener from its legacy name, the route configuration's plus
 * `/<host>`: `<gwNs>/<gw>/[<lsNs>/<ls>/]<listener>/<host>`. The V2 scheme (`www_example_com`) says nothing.
 */
export function gatewayOfVirtualHostName(name: string): GatewayIdentity | undefined {
  const parts = segments(name);
  return parts.length === 4 || parts.length === 6
    ? { namespace: parts[0]!, name: parts[1]!, listener: parts[parts.length - 2] }
    : undefined;
}

/** The HTTPRoute rule of an xDS route: `httproute/<ns>/<name>/rule/<i>/match/<j>/<host>`. */
export function httpRouteRuleOfRouteName(name: string): HttpRouteRule | undefined {
  const parts = segments(name);
  if (parts[0] !== 'httproute' || parts.length < 5 || parts[3] !== 'rule') return undefined;
  const rule = Number(parts[4]);
  return { namespace: parts[1]!, name: parts[2]!, rule: Number.isInteger(rule) ? rule : undefined };
}

const RULE_CLUSTER = /^httproute\/([^/]+)\/([^/]+)\/rule\/(\d+)(?:\/backend\/(\d+))?$/;

/**
 * The HTTPRoute rule (and backendRef, for a per-backendRef cluster) of a cluster:
 * `httproute/<ns>/<name>/rule/<i>[/backend/<j>]`.
 */
export function httpRouteRuleOfClusterName(
  name: string,
): (HttpRouteRule & { rule: number; backend: number | undefined }) | undefined {
  // The three groups before the optional backend always take part in a match; the checks tell the types.
  const [, namespace, route, rule, backend] = RULE_CLUSTER.exec(name) ?? [];
  if (namespace === undefined || route === undefined || rule === undefined) return undefined;
  return {
    namespace,
    name: route,
    rule: Number(rule),
    backend: backend === undefined ? undefined : Number(backend),
  };
}

const ROUTE_CLUSTER = /^(httproute|grpcroute|tcproute|udproute|tlsroute)\/([^/]+)\/([^/]+)(?:\/|$)/;
const KIND_OF: Readonly<Record<string, RouteKind>> = {
  httproute: 'HTTPRoute',
  grpcroute: 'GRPCRoute',
  tcproute: 'TCPRoute',
  udproute: 'UDPRoute',
  tlsroute: 'TLSRoute',
};

/** The route of a cluster EG translated from one: `<kind, lower case>/<ns>/<name>[/…]`. */
export function routeOfClusterName(
  name: string,
): { kind: RouteKind; namespace: string; name: string } | undefined {
  const [, kind, namespace, route] = ROUTE_CLUSTER.exec(name) ?? [];
  const routeKind = kind === undefined ? undefined : KIND_OF[kind];
  if (routeKind === undefined || namespace === undefined || route === undefined) return undefined;
  return { kind: routeKind, namespace, name: route };
}
