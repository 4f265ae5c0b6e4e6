/**
 * Which tailnet services a TailscaleGateway exposes, under which path, and which virtual hosts of
 * Envoy Gateway belong to that TailscaleGateway. The virtual-host hook (routes) and the translate hook
 * (clusters) both start here, so every generated route has its cluster.
 *
 * Decisions:
 * - A TailscaleGateway exposes the TailscaleEndpoints of its own namespace whose `spec.tailnet` names
 *   one of its `tailnets[]`. Same namespace only: otherwise anyone who may create a TailscaleEndpoints
 *   anywhere could publish paths on a Gateway they do not own.
 * - `{service}` is the endpoint's name, and for an endpoints object whose endpoints span several
 *   priorities also the object's name (that route goes to the failover cluster, which
 *   cluster-plan.ts refuses when the endpoints mix HTTP and HTTPS). Endpoint names are
 *   unique only within an object, so two services may expand to the same prefix on one virtual host;
 *   the first in snapshot order (namespace, name, spec order) keeps it and later ones are skipped, so
 *   the result is deterministic and never ambiguous for Envoy.
 * - Only HTTP and HTTPS endpoints get routes: a generated route is an HTTP route.
 * - The egress `hostPattern` chooses virtual hosts, it does not make them: EG builds a virtual host per
 *   hostname of the Gateway's listeners and routes, and a route of ours cannot add a domain to one.
 *   So the pattern (placeholders expanded per service) is matched against each virtual host's domains
 *   with Gateway API hostname semantics, and a virtual host gets the route only when the pattern
 *   covers every one of its domains: a route must never answer to a name outside the pattern, which
 *   rules out the catch-all `*` virtual host and a wildcard wider than the pattern. Prefix collisions
 *   are then settled among the services a virtual host actually gets.
 *
 * @module
 */
import type { JsonValue } from '@bufbuild/protobuf';
import type { VirtualHost } from '../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  type Endpoint,
  LEGACY_EGRESS_HOST_PATTERN,
  type TailscaleEndpoints,
  type TailscaleGateway,
} from '../api/index.ts';
import { keyOf, namespaceOf } from '../kube/object-key.ts';
import { type ClusterMember, routableByHttp } from './cluster-members.ts';
import { planFailover } from './cluster-plan.ts';
import { type GatewayIdentity, gatewayOfVirtualHostName } from './envoy-gateway-names.ts';
import { clusterName } from './names.ts';
import { DEFAULT_NAMESPACE, type ResourceSnapshot } from './resource-store.ts';

/** A service that gets a route (on matching virtual hosts) and a cluster. */
export interface GeneratedService {
  /** Name of both the route and the cluster. */
  name: string;
  namespace: string;
  endpoints: TailscaleEndpoints;
  /** The single endpoint, or undefined for an endpoints object's failover group. */
  endpoint: Endpoint | undefined;
  /** What the cluster is built from. */
  members: ClusterMember[];
  /** The `{service}` value. */
  service: string;
  /** The `{tailnet}` value. */
  tailnet: string;
  /** The expanded path prefix, always ending in one `/`. */
  pathPrefix: string;
  /** The expanded egress hostPattern, lower case; undefined selects every virtual host. */
  hostPattern: string | undefined;
}

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
const EG_METADATA = 'envoy-gateway';

/** Replaces `{service}` and `{tailnet}` in a route-generation pattern. */
export function expandPattern(pattern: string, values: { service: string; tailnet: string }): string {
  return pattern.replaceAll('{service}', values.service).replaceAll('{tailnet}', values.tailnet);
}

/**
 * A prefix that ends in exactly one `/`: `/tailscale/web`, `/tailscale/web/` and `/tailscale/web//`
 * are one prefix (routes.ts matches it element by element), so collisions are found however it was
 * spelled.
 */
export function normalizePrefix(prefix: string): string {
  return `${prefix.replace(/\/+$/, '')}/`;
}

/** A host name or virtual-host domain as compared: lower case, no trailing dot, no port. */
const normalHost = (host: string): string =>
  host
    .toLowerCase()
    .replace(/:(\d+|\*)$/, '')
    .replace(/\.$/, '');

/**
 * Whether every host name a virtual-host domain accepts is one `pattern` accepts, with Gateway API
 * hostname semantics: `a.example.com` is that name only; `*.example.com` is every name with one or
 * more labels before `.example.com` (not `example.com` itself). A wildcard domain is covered by a
 * wildcard pattern of the same or a shorter suffix; the catch-all domain `*` by none.
 */
export function hostCovers(pattern: string, domain: string): boolean {
  const p = normalHost(pattern);
  const d = normalHost(domain);
  if (d === '*') return false;
  if (!p.startsWith('*.')) return d === p;
  const suffix = p.slice(1);
  if (d.startsWith('*.')) return d.slice(1).endsWith(suffix);
  return d.endsWith(suffix) && d.length > suffix.length;
}

/** Whether generated routes with this (expanded) hostPattern go on a virtual host with these domains. */
export function selectsVirtualHost(hostPattern: string | undefined, domains: readonly string[]): boolean {
  if (hostPattern === undefined) return true;
  return domains.length > 0 && domains.every((domain) => hostCovers(hostPattern, domain));
}

/** The egress hostPattern of an attachment for one service, expanded; undefined when unset. */
function expandedHostPattern(pattern: string | undefined, values: { service: string; tailnet: string }) {
  if (pattern === undefined || pattern === LEGACY_EGRESS_HOST_PATTERN) return undefined;
  return expandPattern(pattern, values).toLowerCase();
}

/** Why a service of a TailscaleGateway gets no route and no cluster at all. */
export type OnUnbuilt = (service: { name: string }, reason: string) => void;

interface Generated {
  services: readonly GeneratedService[];
  unbuilt: readonly { name: string; reason: string }[];
}

/**
 * servicesOf per snapshot and TailscaleGateway: Envoy Gateway calls the virtual-host hook for every
 * virtual host of a translation, all against one snapshot, and each call needs every gateway's services
 * (twice). Snapshots are immutable, so an answer stays right for as long as the snapshot lives.
 */
const generatedCache = new WeakMap<ResourceSnapshot, WeakMap<TailscaleGateway, Generated>>();

/**
 * The services one TailscaleGateway exposes, in a deterministic order. A failover group that
 * cluster-plan.ts refuses (HTTP and HTTPS endpoints together) is left out and told to `onUnbuilt`.
 */
export function servicesOf(
  gateway: TailscaleGateway,
  snapshot: ResourceSnapshot,
  onUnbuilt?: OnUnbuilt,
): readonly GeneratedService[] {
  let bySnapshot = generatedCache.get(snapshot);
  if (bySnapshot === undefined) {
    bySnapshot = new WeakMap();
    generatedCache.set(snapshot, bySnapshot);
  }
  let generated = bySnapshot.get(gateway);
  if (generated === undefined) {
    generated = generate(gateway, snapshot);
    bySnapshot.set(gateway, generated);
  }
  for (const { name, reason } of generated.unbuilt) onUnbuilt?.({ name }, reason);
  return generated.services;
}

function generate(gateway: TailscaleGateway, snapshot: ResourceSnapshot): Generated {
  const unbuilt: { name: string; reason: string }[] = [];
  const namespace = namespaceOf(gateway);
  const out: GeneratedService[] = [];
  for (const tailnet of gateway.spec.tailnets) {
    const egress = tailnet.routeGeneration.egress;
    for (const endpoints of snapshot.endpoints) {
      if (namespaceOf(endpoints) !== namespace || endpoints.spec.tailnet !== tailnet.name) continue;
      const routable = endpoints.spec.endpoints.filter(routableByHttp);
      const base = { namespace, endpoints, tailnet: tailnet.name };
      const failover = planFailover(endpoints);
      const failoverName = clusterName(namespace, endpoints.metadata.name);
      const refusal = failover?.problems.find((p) => p.refused);
      if (refusal)
        unbuilt.push({ name: failoverName, reason: `failover group not built: ${refusal.message}` });
      else if (failover) {
        const service = endpoints.metadata.name;
        out.push({
          ...base,
          name: failoverName,
          endpoint: undefined,
          members: failover.members,
          service,
          pathPrefix: normalizePrefix(expandPattern(egress.pathPrefix, { service, tailnet: tailnet.name })),
          hostPattern: expandedHostPattern(egress.hostPattern, { service, tailnet: tailnet.name }),
        });
      }
      for (const endpoint of routable) {
        out.push({
          ...base,
          name: clusterName(namespace, endpoints.metadata.name, endpoint.name),
          endpoint,
          members: [{ endpoints, endpoint }],
          service: endpoint.name,
          pathPrefix: normalizePrefix(
            expandPattern(egress.pathPrefix, { service: endpoint.name, tailnet: tailnet.name }),
          ),
          hostPattern: expandedHostPattern(egress.hostPattern, {
            service: endpoint.name,
            tailnet: tailnet.name,
          }),
        });
      }
    }
  }
  return { services: out, unbuilt };
}

/**
 * The services of several gateways for one virtual host (its `domains`, which each service's
 * hostPattern must cover), each name once (two TailscaleGateways may expose the same endpoints) and
 * each path prefix once (see the module notes). A prefix of `/` is dropped: it would be a catch-all
 * that shadows the user's own routes.
 */
export function uniqueServices(
  gateways: readonly TailscaleGateway[],
  snapshot: ResourceSnapshot,
  domains: readonly string[],
  onSkip?: OnUnbuilt,
): GeneratedService[] {
  const names = new Set<string>();
  const prefixes = new Map<string, string>();
  const out: GeneratedService[] = [];
  for (const gateway of gateways) {
    for (const service of servicesOf(gateway, snapshot, (unbuilt, reason) => onSkip?.(unbuilt, reason))) {
      if (names.has(service.name)) continue;
      if (!selectsVirtualHost(service.hostPattern, domains)) continue;
      if (service.pathPrefix === '/') {
        onSkip?.(service, 'path prefix expands to "/"');
        continue;
      }
      const owner = prefixes.get(service.pathPrefix);
      if (owner !== undefined) {
        onSkip?.(service, `path prefix ${service.pathPrefix} is already used by ${owner}`);
        continue;
      }
      names.add(service.name);
      prefixes.set(service.pathPrefix, service.name);
      out.push(service);
    }
  }
  return out;
}

/**
 * Every service any TailscaleGateway exposes: the clusters PostTranslateModify adds. Deliberately a
 * superset of what the virtual-host hook routes (no prefix filtering), so no route can lack its
 * cluster whatever combination of gateways a virtual host matched.
 */
export function allServices(snapshot: ResourceSnapshot): GeneratedService[] {
  return servicesOfGateways(snapshot.gateways, snapshot);
}

/** The services of the given TailscaleGateways, each name once: the clusters of one translation. */
export function servicesOfGateways(
  gateways: readonly TailscaleGateway[],
  snapshot: ResourceSnapshot,
): GeneratedService[] {
  const byName = new Map<string, GeneratedService>();
  for (const gateway of gateways) {
    for (const service of servicesOf(gateway, snapshot)) {
      if (!byName.has(service.name)) byName.set(service.name, service);
    }
  }
  return [...byName.values()];
}

/**
 * The Gateways a virtual host belongs to, read from Envoy Gateway's metadata and from its legacy name
 * `<gwNs>/<gw>/<listener>/<host>` (`<gwNs>/<gw>/<lsNs>/<ls>/<listener>/<host>` for a ListenerSet).
 * The V2 name scheme (`www_example_com`) carries nothing, so metadata is the only source there.
 */
export function gatewaysOfVirtualHost(vhost: VirtualHost): GatewayIdentity[] {
  const out: GatewayIdentity[] = [];
  const resources = (vhost.metadata?.filterMetadata[EG_METADATA] as { resources?: JsonValue } | undefined)
    ?.resources;
  if (Array.isArray(resources)) {
    for (const resource of resources) {
      if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) continue;
      const { kind, name, namespace, sectionName } = resource;
      if (kind !== 'Gateway' || typeof name !== 'string') continue;
      out.push({
        name,
        namespace: typeof namespace === 'string' ? namespace : DEFAULT_NAMESPACE,
        listener: typeof sectionName === 'string' ? sectionName : undefined,
      });
    }
  }
  const byName = gatewayOfVirtualHostName(vhost.name);
  if (byName) out.push(byName);
  return out;
}

export type { GatewayIdentity } from './envoy-gateway-names.ts';

/** `namespace/name` of the Gateway a TailscaleGateway joins, or undefined if its ref is not a Gateway. */
export function joinedGatewayKey(gateway: TailscaleGateway): string | undefined {
  const ref = gateway.spec.gatewayRef;
  if (ref.group !== GATEWAY_API_GROUP || ref.kind !== 'Gateway') return undefined;
  return keyOf(ref.namespace ?? namespaceOf(gateway), ref.name);
}

/**
 * The listeners among `identities` that a TailscaleGateway's gatewayRef (and `sectionName`) names:
 * empty when they are not its Gateway's. A listener-less identity matches any sectionName.
 */
export function joinedListeners(
  gateway: TailscaleGateway,
  identities: readonly GatewayIdentity[],
): GatewayIdentity[] {
  const ref = gateway.spec.gatewayRef;
  if (ref.group !== GATEWAY_API_GROUP || ref.kind !== 'Gateway') return [];
  const namespace = ref.namespace ?? namespaceOf(gateway);
  return identities.filter(
    (id) =>
      id.namespace === namespace &&
      id.name === ref.name &&
      (ref.sectionName === undefined || id.listener === undefined || id.listener === ref.sectionName),
  );
}

/** The TailscaleGateways whose gatewayRef names a Gateway (and listener) of this virtual host. */
export function gatewaysForVirtualHost(vhost: VirtualHost, snapshot: ResourceSnapshot): TailscaleGateway[] {
  const identities = gatewaysOfVirtualHost(vhost);
  if (identities.length === 0) return [];
  return snapshot.gateways.filter((gateway) => joinedListeners(gateway, identities).length > 0);
}
