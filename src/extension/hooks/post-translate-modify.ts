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
 * @module
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type RawPostTranslateModifyRequest,
  type RawPostTranslateModifyResponse,
  RawPostTranslateModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import { isGatewayParent, nsName, type RouteKind } from '../../index/gateway-api.ts';
import type { ResourceSnapshot } from '../../store/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { buildCluster } from '../xds/clusters.ts';
import { isGeneratedName } from '../xds/names.ts';
import { readClusterName } from '../xds/raw.ts';
import { allServices, joinedGatewayKey, servicesOfGateways } from '../xds/route-generation.ts';
import { guarded, type HookOptions } from './context.ts';

const ROUTE_CLUSTER = /^(httproute|grpcroute|tcproute|udproute|tlsroute)\/([^/]+)\/([^/]+)(?:\/|$)/;
const KIND_OF: Record<string, RouteKind> = {
  httproute: 'HTTPRoute',
  grpcroute: 'GRPCRoute',
  tcproute: 'TCPRoute',
  udproute: 'UDPRoute',
  tlsroute: 'TLSRoute',
};

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
    const match = name === undefined ? null : ROUTE_CLUSTER.exec(name);
    if (!match) continue;
    named++;
    const route = index.route(KIND_OF[match[1]!]!, match[2]!, match[3]!);
    if (!route) return { known: false, reason: `cluster ${name} names a route the index does not hold` };
    for (const parent of route.parents) {
      if (!isGatewayParent(parent))
        return {
          known: false,
          reason: `${route.kind} ${route.namespace}/${route.name} has a ${parent.kind} parent`,
        };
      gateways.add(nsName(parent.namespace, parent.name));
    }
  }
  if (named === 0) {
    for (const tsgw of snapshot.gateways) {
      const key = joinedGatewayKey(tsgw);
      if (key === undefined) continue;
      const [namespace, name] = key.split('/') as [string, string];
      if (
        index.routesOfGateway(namespace, name).some((r) => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute')
      )
        gateways.add(key);
    }
  }
  return { known: true, gateways };
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
      toBinary(ClusterSchema, buildCluster(service.name, service.members, options.egress)),
    );
    // Earlier output of ours (a chained extension may hand it back) is replaced, not duplicated. Only
    // names with our prefix are even looked at closely.
    const kept = req.clusters.filter((_, i) => {
      const name = names[i];
      return name === undefined || !isGeneratedName(name);
    });
    return {
      response: create(RawPostTranslateModifyResponseSchema, {
        clusters: [...kept, ...ours],
        secrets: req.secrets,
        listeners: req.listeners,
        routes: req.routes,
      }),
      effect: { clustersAdded: ours.length },
    };
  });
}
