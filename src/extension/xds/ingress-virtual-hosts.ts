/**
 * Where the virtual hosts of published services of mode HTTP (ingress-generation.ts) go, and what
 * they hold. PostTranslateModify is the only hook that can add a virtual host (PostVirtualHostModify
 * changes one it is given), and it sees RouteConfigurations only as Envoy Gateway's encoded bytes, so
 * this module decides from a cheap summary (raw.ts) which RouteConfigurations are a joined Gateway's,
 * and rewrites only those.
 *
 * What Envoy Gateway v1.9.1 builds (internal/xds/translator/translator.go, listener.go):
 * - One RouteConfiguration per HTTPS listener, named after the IR listener (`<ns>/<gw>/<listener>`,
 *   `<gwNs>/<gw>/<lsNs>/<ls>/<listener>` for a ListenerSet), and one per port for plain HTTP: listeners
 *   sharing a port share the first one's (legacy names: that listener's IR name; XDSNameSchemeV2:
 *   `http-<port>`, which says nothing). With mergeGateways several Gateways share it.
 * - Each virtual host carries its listener's Gateway and `sectionName` in its `envoy-gateway`
 *   metadata, and (legacy names) in its name `<ir listener>/<host>`.
 * - Every RouteConfiguration sets `ignore_port_in_host_matching`, so a `Host: name:80` matches the
 *   domain `name`: no `name:*` variants are needed.
 * So a RouteConfiguration belongs to the Gateways (listeners) its name and its virtual hosts name. One
 * that is named `http-<port>` and holds no virtual host (no route attaches to that port yet) cannot be
 * told and gets none; neither does a second HTTP listener on a shared port when the TailscaleGateway
 * names it by `sectionName` and it has no route of its own. Where a RouteConfiguration serves several
 * listeners, our virtual host is reachable through each of them: Envoy routes one port with one table.
 *
 * Our virtual hosts are told from Envoy Gateway's by name and metadata, not by the `tailscale/` prefix
 * alone: EG's legacy virtual-host names start with the Gateway's namespace, which may be `tailscale`.
 *
 * Envoy rejects a RouteConfiguration that has one domain on two virtual hosts, so a domain already
 * there (a user's HTTPRoute hostname, or an earlier published service) is left out of ours; a virtual
 * host left with no domain is not added.
 *
 * @module
 */
import { create } from '@bufbuild/protobuf';
import type { Metadata } from '../../../gen/envoy/config/core/v3/base_pb.ts';
import {
  type Route,
  RouteSchema,
  type VirtualHost,
  VirtualHostSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import type { RouteConfiguration } from '../../../gen/envoy/config/route/v3/route_pb.ts';
import {
  type GatewayIdentity,
  gatewayOfRouteConfigName,
  gatewayOfVirtualHostName,
} from '../../model/envoy-gateway-names.ts';
import { type IngressService, isIngressName } from '../../model/ingress-generation.ts';
import { gatewaysOfVirtualHost } from '../../model/route-generation.ts';
import type { RouteConfigSummary } from './raw.ts';
import { prefixMatchAndRewrite } from './routes.ts';

/** Envoy Gateway's metadata key; every virtual host it builds carries it. */
const EG_METADATA = 'envoy-gateway';

/**
 * A virtual host of ours (`tailscale/<ns>/<tsgw>/ingress/<tailnet>/<service>`, see ingress-generation.ts)
 * and not Envoy Gateway's, whose names may look alike but which always carries EG's metadata.
 */
export function isIngressVirtualHost(vhost: { name: string; metadata?: Metadata | undefined }): boolean {
  return isIngressName(vhost.name) && vhost.metadata?.filterMetadata[EG_METADATA] === undefined;
}

/** The Gateways (and listeners) a RouteConfiguration serves, from its name and its virtual hosts. */
export function routeConfigGateways(summary: RouteConfigSummary): GatewayIdentity[] {
  const out: GatewayIdentity[] = [];
  const byConfigName = gatewayOfRouteConfigName(summary.name);
  if (byConfigName) out.push(byConfigName);
  for (const vhost of summary.virtualHosts) {
    // Ours carry no metadata, and their six-segment names would read as a ListenerSet's.
    if (isIngressVirtualHost(vhost)) continue;
    // A legacy name tells the Gateway and listener as well as the metadata does, without decoding it.
    const byName = gatewayOfVirtualHostName(vhost.name);
    if (byName) out.push(byName);
    else
      out.push(
        ...gatewaysOfVirtualHost(create(VirtualHostSchema, { name: vhost.name, metadata: vhost.metadata })),
      );
  }
  return out;
}

/**
 * The one route of a published service's virtual host: its path prefix, rewritten to `/` (so the
 * service sees the paths it serves on its own), to the target Service's cluster. The Host stays the
 * client's, as for any route of the Gateway; WebSocket upgrades are allowed, as Envoy Gateway allows
 * them on its routes.
 */
export function buildIngressRoute(service: IngressService): Route {
  const { match, rewrite } = prefixMatchAndRewrite(service.pathPrefix);
  return create(RouteSchema, {
    name: service.name,
    match: { pathSpecifier: match },
    action: {
      case: 'route',
      value: {
        clusterSpecifier: { case: 'cluster', value: service.name },
        ...rewrite,
        upgradeConfigs: [{ upgradeType: 'websocket' }],
      },
    },
  });
}

export function buildIngressVirtualHost(
  service: IngressService,
  domains: readonly string[],
  routes: readonly Route[],
): VirtualHost {
  return create(VirtualHostSchema, { name: service.name, domains: [...domains], routes: [...routes] });
}

/** One published service for one RouteConfiguration, with its routes (policies applied). */
export interface IngressPlacement {
  service: IngressService;
  routes: Route[];
}

export interface PlacementResult {
  /** The services that got a virtual host. */
  placed: IngressService[];
  /** Whether the RouteConfiguration changed (earlier output of ours removed, or virtual hosts added). */
  changed: boolean;
}

/**
 * Replaces our virtual hosts in `routeConfig` (in place: the caller decoded it for this) with one per
 * placement, leaving out each domain another virtual host already has; `onSkip` hears of each.
 */
export function placeIngressVirtualHosts(
  routeConfig: RouteConfiguration,
  placements: readonly IngressPlacement[],
  onSkip: (service: IngressService, domain: string, holder: string) => void,
): PlacementResult {
  const theirs = routeConfig.virtualHosts.filter((vhost) => !isIngressVirtualHost(vhost));
  const removed = theirs.length !== routeConfig.virtualHosts.length;
  // Envoy compares domains without regard to case.
  const holders = new Map<string, string>();
  for (const vhost of theirs)
    for (const domain of vhost.domains) holders.set(domain.toLowerCase(), vhost.name);
  const ours: VirtualHost[] = [];
  const placed: IngressService[] = [];
  for (const { service, routes } of placements) {
    const domains: string[] = [];
    for (const host of service.hosts) {
      const holder = holders.get(host.toLowerCase());
      if (holder !== undefined) onSkip(service, host, holder);
      else domains.push(host);
    }
    if (domains.length === 0) continue;
    for (const domain of domains) holders.set(domain.toLowerCase(), service.name);
    ours.push(buildIngressVirtualHost(service, domains, routes));
    placed.push(service);
  }
  routeConfig.virtualHosts = [...theirs, ...ours];
  return { placed, changed: removed || ours.length > 0 };
}
