/**
 * PostTranslateModify: adds the cluster of every generated service this translation can need, and
 * passes everything of Envoy Gateway's through as the very bytes it sent. The response lists replace
 * EG's complete sets, so nothing may be dropped; and EG's resources are never decoded (see xds/raw.ts),
 * which also means a resource our older protos cannot describe survives intact.
 *
 * Which Gateway a translation is for: EG's request does not say (its context carries only policies).
 * It does carry EG's own clusters, whose names start with the route they serve
 * (`httproute/<ns>/<name>/rule/<i>`, `tcproute/<ns>/<name>`, …). The index knows each route's parent
 * Gateways, so the translation is attributed to the union of those, and only the TailscaleGateways
 * joining one of them get clusters. Where that cannot be told, every TailscaleGateway's clusters are
 * added, as before (a superset never breaks a route; a missing cluster would):
 * - the index has not listed every route kind yet, or holds no route a cluster names (it lags EG);
 * - a route attaches to something other than a Gateway (a ListenerSet);
 * - standalone mode (no index at all).
 * A translation whose clusters name no route at all can still carry our virtual-host routes if a
 * clusterless HTTPRoute (redirects only) made a virtual host: then every joined Gateway with an HTTP
 * route attached counts.
 *
 * Published services of mode HTTP (xds/ingress-generation.ts) get a virtual host of their own on each
 * RouteConfiguration of the joined Gateway, and a cluster of their target Service. EG sends the
 * RouteConfigurations only with `translation.route.includeAll: true`; without it `routes` is empty
 * (and EG ignores what we answer there), so no virtual host is added and neither is its cluster. The
 * RouteConfigurations are told apart by their names and virtual hosts (xds/ingress-virtual-hosts.ts)
 * read without decoding; only a joined Gateway's is decoded and re-encoded (protobuf-es keeps the
 * fields our protos do not know), every other one passes through as the bytes EG sent. The generated
 * routes get the TailscaleRoutePolicies of the TailscaleGateway and of the Gateway (listener), as the
 * egress routes do in PostVirtualHostModify: this is the path where `Tailscale-User-Login` is set by
 * `tailscale serve`.
 *
 * A rule naming a Service beside a TailscaleEndpoints gets a cluster per TailscaleEndpoints backendRef
 * here, made from EG's cluster of the rule (xds/mixed-rules.ts).
 *
 * @module
 */

import { clone, create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type Cluster, ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type RouteConfiguration,
  RouteConfigurationSchema,
} from '../../../gen/envoy/config/route/v3/route_pb.ts';
import {
  type RawPostTranslateModifyRequest,
  type RawPostTranslateModifyResponse,
  RawPostTranslateModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import type { TailscaleGateway } from '../../api/index.ts';
import { keyOf, splitKey } from '../../kube/index.ts';
import { DEFAULT_CLUSTER_DOMAIN } from '../../model/egress-target.ts';
import { routeOfClusterName } from '../../model/envoy-gateway-names.ts';
import { isGatewayParent } from '../../model/gateway-api.ts';
import { type IngressService, ingressServicesOf } from '../../model/ingress-generation.ts';
import { isGeneratedName } from '../../model/names.ts';
import {
  applicableFor,
  attachments,
  gatewayTargets,
  LEVEL,
  tailscaleGatewayTarget,
} from '../../model/policy-attachment.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import {
  allServices,
  joinedGatewayKey,
  joinedListeners,
  servicesOfGateways,
} from '../../model/route-generation.ts';
import type { HookResult } from '../hooks.ts';
import { buildCluster, buildTargetCluster } from '../xds/clusters.ts';
import {
  buildIngressRoute,
  isIngressVirtualHost,
  placeIngressVirtualHosts,
  routeConfigGateways,
} from '../xds/ingress-virtual-hosts.ts';
import { backendClusterName, mixedRuleOf } from '../xds/mixed-rules.ts';
import { readClusterName, readRouteConfigSummary } from '../xds/raw.ts';
import { withPolicies } from '../xds/route-policies.ts';
import { guarded, type HookOptions, type HookProblem } from './context.ts';
import { fillBackendCluster } from './post-cluster-modify.ts';

/** The Gateways (`namespace/name`) a translation is for, or why that cannot be told. */
export type Attribution = { known: true; gateways: Set<string> } | { known: false; reason: string };

export function attributeTranslation(
  clusterNames: readonly (string | undefined)[],
  snapshot: ResourceSnapshot,
): Attribution {
  const index = snapshot.index;
  if (!index.complete()) return { known: false, reason: 'the index has not listed every route kind' };
  const gateways = new Set<string>();
  let named = 0;
  for (const name of clusterNames) {
    const origin = name === undefined ? undefined : routeOfClusterName(name);
    if (!origin) continue;
    named++;
    const route = index.route(origin.kind, origin.namespace, origin.name);
    if (!route) return { known: false, reason: `cluster ${name} names a route the index does not hold` };
    for (const parent of route.parents) {
      if (!isGatewayParent(parent))
        return {
          known: false,
          reason: `${route.kind} ${route.namespace}/${route.name} has a ${parent.kind} parent`,
        };
      gateways.add(keyOf(parent.namespace, parent.name));
    }
  }
  if (named === 0) {
    for (const tsgw of snapshot.gateways) {
      const key = joinedGatewayKey(tsgw);
      if (key === undefined) continue;
      const { namespace = '', name } = splitKey(key);
      if (
        index.routesOfGateway(namespace, name).some((r) => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute')
      )
        gateways.add(key);
    }
  }
  return { known: true, gateways };
}

/** What the published services of mode HTTP add to one translation. */
export interface IngressAddition {
  /** `req.routes` with our virtual hosts: the very same bytes for every RouteConfiguration not changed. */
  routes: Uint8Array[];
  /** The clusters of the services that got a virtual host, encoded. */
  clusters: Uint8Array[];
  virtualHosts: number;
  /** Routes in those virtual hosts, narrowed policy copies included. */
  routesAdded: number;
}

interface Publisher {
  gateway: TailscaleGateway;
  services: IngressService[];
}

/**
 * Our virtual hosts on the RouteConfigurations of the joined Gateways, and their clusters. Earlier
 * output of ours in a RouteConfiguration (a chained extension may hand it back) is replaced.
 */
export function addIngress(
  routes: readonly Uint8Array[],
  snapshot: ResourceSnapshot,
  options: HookOptions,
): IngressAddition {
  const none = { routes: [...routes], clusters: [], virtualHosts: 0, routesAdded: 0 };
  const clusterDomain = options.egress.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const publishers: Publisher[] = snapshot.gateways
    .map((gateway) => ({ gateway, services: ingressServicesOf(gateway, clusterDomain) }))
    .filter((p) => p.services.length > 0);
  if (publishers.length === 0) return none;
  if (routes.length === 0) {
    options.log.debug(
      { services: publishers.flatMap((p) => p.services.map((s) => s.name)) },
      'no RouteConfigurations in PostTranslateModify (translation.route.includeAll is off): no ingress virtual hosts added',
    );
    return none;
  }
  const byTarget = attachments(snapshot.routePolicies);
  const placed = new Map<string, IngressService>();
  let virtualHosts = 0;
  let routesAdded = 0;
  const out = routes.map((bytes) => {
    const summary = readRouteConfigSummary(bytes);
    if (summary === undefined) return bytes;
    const identities = routeConfigGateways(summary);
    const joined = publishers
      .map((p) => ({ ...p, listeners: joinedListeners(p.gateway, identities) }))
      .filter((p) => p.listeners.length > 0);
    const hadOurs = summary.virtualHosts.some(isIngressVirtualHost);
    // The V2 name scheme (`http-8080`) repeats a name on every Gateway, so the Gateways are part of it.
    const scope = [
      `routeConfiguration:${summary.name}`,
      ...identities.map((g) => `${g.namespace}/${g.name}/${g.listener ?? ''}`),
    ].join('|');
    const problems: HookProblem[] = [];
    if (joined.length === 0 && !hadOurs) {
      options.problems.report(scope, problems);
      return bytes;
    }
    let routeConfig: RouteConfiguration;
    try {
      routeConfig = fromBinary(RouteConfigurationSchema, bytes);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      options.problems.report(scope, [
        {
          key: 'undecodable',
          fields: { routeConfiguration: summary.name, error: reason },
          message: 'RouteConfiguration not decodable: passed through without ingress virtual hosts',
        },
      ]);
      return bytes;
    }
    const placements = joined.flatMap(({ gateway, services, listeners }) => {
      // Most specific first: the TailscaleGateway, then the Gateway's listener, then the Gateway.
      const candidates = [tailscaleGatewayTarget(gateway), ...gatewayTargets(listeners)];
      const policies = applicableFor(byTarget, candidates).map((a) => ({
        policy: a.policy,
        rank: LEVEL[a.level],
      }));
      return services.map((service) => ({
        service,
        routes:
          policies.length === 0
            ? [buildIngressRoute(service)]
            : withPolicies(buildIngressRoute(service), policies).routes,
      }));
    });
    const result = placeIngressVirtualHosts(routeConfig, placements, (service, domain, holder) =>
      problems.push({
        key: `${service.name}\n${domain}\n${holder}`,
        fields: { routeConfiguration: summary.name, service: service.name, domain, virtualHost: holder },
        message: 'ingress domain left out: another virtual host of the RouteConfiguration has it',
      }),
    );
    options.problems.report(scope, problems);
    if (!result.changed) return bytes;
    for (const p of placements) {
      if (!result.placed.includes(p.service)) continue;
      placed.set(p.service.name, p.service);
      virtualHosts++;
      routesAdded += p.routes.length;
    }
    return toBinary(RouteConfigurationSchema, routeConfig);
  });
  const clusters = [...placed.values()].map((service) =>
    toBinary(ClusterSchema, buildTargetCluster(service.name, service.targetHost, service.targetPort)),
  );
  return { routes: out, clusters, virtualHosts, routesAdded };
}

/**
 * The cluster of each TailscaleEndpoints backendRef of a rule that also names a Service
 * (xds/mixed-rules.ts): EG's cluster of the rule, renamed, filled as PostClusterModify fills a custom
 * backend's, so it keeps EG's settings for the rule (timeouts, circuit breakers, load balancing). Not
 * added when EG (or a chained extension) already has the name, nor for an object the store lacks (EG
 * then reports the backend not found).
 */
export function mixedRuleClusters(
  clusters: readonly Uint8Array[],
  names: readonly (string | undefined)[],
  snapshot: ResourceSnapshot,
  options: HookOptions,
): Uint8Array[] {
  const present = new Set(names);
  const added: Uint8Array[] = [];
  names.forEach((name, i) => {
    const mixed = name === undefined ? undefined : mixedRuleOf(name, snapshot);
    if (mixed === undefined) return;
    let rule: Cluster | undefined;
    for (const ref of mixed.tailnet) {
      const own = backendClusterName(mixed.cluster, ref);
      const endpoints = snapshot.getEndpoints(ref.namespace, ref.name);
      if (present.has(own) || endpoints === undefined) continue;
      try {
        rule ??= fromBinary(ClusterSchema, clusters[i]!);
      } catch (error) {
        options.log.warn(
          { cluster: name, error: error instanceof Error ? error.message : String(error) },
          "EG's cluster of a rule mixing a Service and a TailscaleEndpoints is not decodable: no cluster added for the TailscaleEndpoints",
        );
        return;
      }
      const template = clone(ClusterSchema, rule);
      template.name = own;
      const filled = fillBackendCluster(
        template,
        [{ endpoints, port: ref.port }],
        options,
        snapshot.remoteMembersByEndpoints,
      );
      added.push(toBinary(ClusterSchema, filled));
      present.add(own);
    }
  });
  return added;
}

export function postTranslateModify(
  req: RawPostTranslateModifyRequest,
  snapshot: ResourceSnapshot,
  options: HookOptions,
): HookResult<RawPostTranslateModifyResponse> {
  return guarded('PostTranslateModify', () => {
    const names = req.clusters.map(readClusterName);
    const attribution = attributeTranslation(names, snapshot);
    const services = attribution.known
      ? servicesOfGateways(
          snapshot.gateways.filter((g) => attribution.gateways.has(joinedGatewayKey(g) ?? '')),
          snapshot,
        )
      : allServices(snapshot);
    if (!attribution.known)
      options.log.debug({ reason: attribution.reason }, 'translation not attributed; adding every cluster');
    const ours = services.map((service) =>
      toBinary(
        ClusterSchema,
        buildCluster(service.name, service.members, options.egress, snapshot.remoteMembersByEndpoints),
      ),
    );
    const ingress = addIngress(req.routes, snapshot, options);
    const split = mixedRuleClusters(req.clusters, names, snapshot, options);
    // Earlier output of ours (a chained extension may hand it back) is replaced, not duplicated. Only
    // names with our prefix are even looked at closely.
    const kept = req.clusters.filter((_, i) => {
      const name = names[i];
      return name === undefined || !isGeneratedName(name);
    });
    return {
      response: create(RawPostTranslateModifyResponseSchema, {
        clusters: [...kept, ...ours, ...ingress.clusters, ...split],
        secrets: req.secrets,
        listeners: req.listeners,
        routes: ingress.routes,
      }),
      effect: {
        clustersAdded: ours.length + ingress.clusters.length + split.length,
        ...(ingress.virtualHosts > 0
          ? { virtualHostsAdded: ingress.virtualHosts, routesAdded: ingress.routesAdded }
          : {}),
      },
    };
  });
}
