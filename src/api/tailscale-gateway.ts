/**
 * TailscaleGateway: joins an Envoy Gateway `Gateway` to one or more tailnets and says how routes for
 * tailnet services are named.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, listMap, listSet } from './extensions.ts';
import {
  ageColumn,
  conditions,
  dnsLabel,
  GROUP_PATTERN,
  int,
  KIND_PATTERN,
  type KindDefinition,
  NameReference,
  namespaceName,
  objectName,
  port,
  readyColumn,
  resourceSchema,
  tags,
} from './meta.ts';

/** Host names built from `{service}` and `{tailnet}` placeholders and DNS labels. */
export const HOST_PATTERN = /^([a-z0-9-]|\{service\}|\{tailnet\})+(\.([a-z0-9-]|\{service\}|\{tailnet\})+)*$/;
/**
 * A Gateway API hostname (a leading `*.` wildcard label allowed) built from DNS labels and the same
 * placeholders: which virtual hosts get the generated egress routes.
 */
export const HOST_MATCH_PATTERN =
  /^(\*\.)?([a-z0-9-]|\{service\}|\{tailnet\})+(\.([a-z0-9-]|\{service\}|\{tailnet\})+)*$/;
/**
 * Path prefixes with the same placeholders; braces are otherwise not allowed, and neither are `?` and
 * `#`, which end a path (Envoy refuses a path match holding them).
 */
export const PATH_PATTERN = /^\/([^{}\s?#]|\{service\}|\{tailnet\})*$/;
/**
 * `routeGeneration.egress.hostPattern`'s default before the field took effect; objects created then
 * still carry it, and it is read as unset so their routes stay on every virtual host.
 */
export const LEGACY_EGRESS_HOST_PATTERN = '{service}.tailscale.local';

const pathPrefix = (defaultValue: string, description: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.maxLength(1024),
      v.regex(
        PATH_PATTERN,
        'pathPrefix must start with "/", use only {service} and {tailnet} placeholders and hold no "?" or "#"',
      ),
      v.description(description),
    ),
    defaultValue,
  );

const INGRESS_DEFAULTS = {
  hostPattern: '{service}.{tailnet}.gateway.local',
  pathPrefix: '/',
  protocol: 'HTTPS',
} as const;
const EGRESS_DEFAULTS = { pathPrefix: '/tailscale/{service}/' } as const;

/**
 * Defaults are spelled out in full rather than as `{}`: the API server checks a default against the
 * CEL rules as written, before nested defaults would fill it in.
 */
const IngressTemplate = v.pipe(
  v.strictObject({
    hostPattern: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(253),
        v.regex(
          HOST_PATTERN,
          'hostPattern must be a host name using only {service} and {tailnet} placeholders',
        ),
        v.description('Host of generated routes; {service} and {tailnet} are replaced.'),
      ),
      INGRESS_DEFAULTS.hostPattern,
    ),
    pathPrefix: pathPrefix(
      INGRESS_DEFAULTS.pathPrefix,
      'Path prefix of generated routes; it is stripped before forwarding.',
    ),
    protocol: v.optional(v.picklist(['HTTP', 'HTTPS']), INGRESS_DEFAULTS.protocol),
  }),
  cel(
    {
      rule: "self.hostPattern.contains('{service}') || self.pathPrefix.contains('{service}')",
      message: 'hostPattern or pathPrefix must contain {service}, or routes of different services collide',
      fieldPath: '.hostPattern',
    },
    (self) => self.hostPattern.includes('{service}') || self.pathPrefix.includes('{service}'),
  ),
);

const EgressTemplate = v.pipe(
  v.strictObject({
    hostPattern: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(253),
        v.regex(
          HOST_MATCH_PATTERN,
          'hostPattern must be a host name, optionally starting with "*.", using only {service} and {tailnet} placeholders',
        ),
        v.description(
          'Which virtual hosts of the Gateway get the generated routes, as a Gateway API hostname after ' +
            '{service} and {tailnet} are replaced: `internal.example.com` selects the virtual host of that ' +
            'name, `*.example.com` those of every name below example.com (`a.example.com`, ' +
            '`a.b.example.com`, `*.a.example.com`; not example.com). A virtual host is selected when every ' +
            'one of its domains is, so a route never answers to a name outside the pattern: the catch-all ' +
            'virtual host `*` (a listener and routes without hostnames) is not. Case and a port in the ' +
            'domain are ignored. Unset: every virtual host. The value {service}.tailscale.local (the ' +
            'default before this field took effect) counts as unset.',
        ),
      ),
    ),
    pathPrefix: pathPrefix(
      EGRESS_DEFAULTS.pathPrefix,
      'Path prefix of generated routes: it matches the prefix itself and every path below it, and is ' +
        'stripped before forwarding (/tailscale/web and /tailscale/web/ reach the service as /, ' +
        '/tailscale/web/a as /a).',
    ),
    /**
     * Kept in the schema only so stored objects and manifests that set it stay valid (a CRD drops or
     * refuses a field it does not declare). Nothing ever read it: each endpoint's own `protocol`
     * decides whether its cluster speaks HTTP or TLS, and a generated route is served on whatever
     * listener the virtual host belongs to. Its default is gone, so new objects do not store it.
     */
    protocol: v.optional(
      v.pipe(
        v.picklist(['HTTP', 'HTTPS']),
        v.description(
          "Deprecated, ignored. Each TailscaleEndpoints endpoint's own `protocol` decides whether the " +
            'generated route forwards with HTTP or HTTPS; the route itself is added to the virtual hosts ' +
            "of the Gateway's listeners, whatever their protocol. Accepted so existing objects stay valid.",
        ),
      ),
    ),
  }),
  cel(
    {
      rule: "(has(self.hostPattern) && self.hostPattern.contains('{service}')) || self.pathPrefix.contains('{service}')",
      message: 'hostPattern or pathPrefix must contain {service}, or routes of different services collide',
      fieldPath: '.pathPrefix',
    },
    (self) => (self.hostPattern?.includes('{service}') ?? false) || self.pathPrefix.includes('{service}'),
  ),
);

export const RouteGeneration = v.pipe(
  v.strictObject({
    ingress: v.optional(
      v.pipe(IngressTemplate, v.description('Routes that expose cluster services to tailnet clients.')),
      INGRESS_DEFAULTS,
    ),
    egress: v.optional(
      v.pipe(
        EgressTemplate,
        v.description(
          'Routes through the gateway to services on the tailnet, added to the virtual hosts of the Gateway.',
        ),
      ),
      EGRESS_DEFAULTS,
    ),
  }),
  v.description('How routes for the services of this tailnet are generated.'),
);
export type RouteGeneration = v.InferOutput<typeof RouteGeneration>;

export const GatewayReference = v.pipe(
  v.strictObject({
    group: v.optional(
      v.pipe(v.string(), v.maxLength(253), v.regex(GROUP_PATTERN, 'group must be an API group')),
      'gateway.networking.k8s.io',
    ),
    kind: v.optional(
      v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(KIND_PATTERN, 'kind must be a Kind')),
      'Gateway',
    ),
    name: objectName('name'),
    namespace: v.optional(v.pipe(namespaceName(), v.description("Defaults to this object's namespace."))),
    sectionName: v.optional(
      v.pipe(dnsLabel('sectionName'), v.description('A single listener of the Gateway.')),
    ),
  }),
  v.description('The Gateway whose routes get tailnet services.'),
);

/** Ports a published service declares when none are given: Envoy Gateway's HTTPS and HTTP listeners. */
export const DEFAULT_SERVICE_PORTS = [443, 80];

/** How a published service reaches its target: layer-4 forwarding, or HTTP through the Gateway. */
export const PUBLISH_MODES = ['TCP', 'HTTP'] as const;

export const PublishedService = v.pipe(
  v.strictObject({
    name: v.pipe(
      dnsLabel('name'),
      v.description(
        'The Tailscale Service svc:<name>, reached as <name>.<MagicDNS suffix>. Every cluster that publishes ' +
          'the same name shares one Tailscale Service (its ingress proxies all host it).',
      ),
    ),
    mode: v.optional(
      v.pipe(
        v.picklist(PUBLISH_MODES),
        v.description(
          'TCP: the ingress proxies forward each of `ports` to the same port of `target` (layer 4; the ' +
            "Envoy Service of the Gateway, or any backend). HTTP: the proxies serve the tailnet attachment's " +
            '`routeGeneration.ingress.protocol` (HTTPS with a certificate for the MagicDNS name, or HTTP) and ' +
            "proxy each request, with the caller's Tailscale identity headers, to the Gateway's Envoy, where " +
            'the extension adds a virtual host for the service that routes `routeGeneration.ingress` ' +
            '(`hostPattern`, `pathPrefix`) to `target`.',
        ),
      ),
      'TCP',
    ),
    target: v.pipe(
      v.strictObject({
        name: dnsLabel('name'),
        namespace: v.optional(v.pipe(namespaceName(), v.description("Defaults to this object's namespace."))),
        port: v.optional(
          v.pipe(
            port(),
            v.description('Mode HTTP (required there): the port of the Service Envoy routes to.'),
          ),
        ),
      }),
      v.description(
        "Mode TCP: the cluster Service the ingress proxies forward the service's ports to, on the same port " +
          "numbers (the Envoy Service of the Gateway, or a local backend's Service). Mode HTTP: the backend " +
          "Service the Gateway's generated route sends requests to.",
      ),
    ),
    ports: v.optional(
      v.pipe(
        v.array(port()),
        v.minLength(1),
        v.maxLength(8),
        listSet(),
        v.description(
          'Mode TCP: TCP ports of the service (declared as tcp:<port>); default 443 and 80. Mode HTTP ' +
            'ignores them: the service is declared on 443 (protocol HTTPS) or 80 (HTTP).',
        ),
      ),
      DEFAULT_SERVICE_PORTS,
    ),
    tags: v.optional(
      tags(
        "ACL tags of the Tailscale Service (keys of autoApprovers.services); default the proxy group's tags.",
      ),
    ),
    tailscaleEndpoints: v.optional(
      v.pipe(
        objectName('tailscaleEndpoints'),
        v.description(
          'A TailscaleEndpoints in this namespace that reaches this backend inside the cluster. When another ' +
            "cluster publishes the same service, its address joins that object's clusters as a failover " +
            'member one priority below its own endpoints.',
        ),
      ),
    ),
  }),
  cel(
    {
      rule: "self.mode != 'HTTP' || has(self.target.port)",
      message: 'mode HTTP needs target.port: the port of the target Service that Envoy routes to',
      fieldPath: '.target.port',
    },
    (self) => self.mode !== 'HTTP' || self.target.port !== undefined,
  ),
);
export type PublishedService = v.InferOutput<typeof PublishedService>;

export const IngressPublishing = v.pipe(
  v.strictObject({
    proxyGroup: v.pipe(
      objectName('proxyGroup'),
      v.description(
        'The TailscaleProxyGroup (type ingress, this namespace, the same tailnet) whose proxies host the ' +
          'services: they advertise each one once its serve config is in place.',
      ),
    ),
    services: v.pipe(
      v.array(PublishedService),
      v.minLength(1),
      v.maxLength(16),
      listMap('name'),
      v.description('Tailscale Services published from this cluster.'),
    ),
  }),
  v.description('Tailnet to cluster: publish the Gateway (or chosen local backends) as Tailscale Services.'),
);
export type IngressPublishing = v.InferOutput<typeof IngressPublishing>;

export const TailnetAttachment = v.strictObject({
  name: v.pipe(dnsLabel('name'), v.description('Used as {tailnet} in route patterns.')),
  tailscaleTailnetRef: NameReference('The TailscaleTailnet with the credentials.'),
  routeGeneration: v.optional(RouteGeneration, {}),
  ingress: v.optional(IngressPublishing),
});

export const TailscaleGatewaySpec = v.strictObject({
  gatewayRef: GatewayReference,
  tailnets: v.pipe(
    v.array(TailnetAttachment),
    v.minLength(1),
    v.maxLength(16),
    listMap('name'),
    cel(
      {
        rule: 'self.all(a, self.exists_one(b, b.tailscaleTailnetRef.name == a.tailscaleTailnetRef.name) || !has(a.ingress))',
        message: 'a TailscaleTailnet joined more than once may publish services from one attachment only',
      },
      (self) =>
        self.every(
          (a) =>
            a.ingress === undefined ||
            self.filter((b) => b.tailscaleTailnetRef.name === a.tailscaleTailnetRef.name).length === 1,
        ),
    ),
    v.description('Tailnets joined to the Gateway.'),
  ),
});

const GeneratedRouteStatus = v.strictObject({
  service: v.pipe(v.string(), v.maxLength(253), v.description('The {service} value.')),
  pathPrefix: v.pipe(v.string(), v.maxLength(1024), v.description('Path prefix the route matches.')),
  cluster: v.pipe(
    v.string(),
    v.maxLength(512),
    v.description('Name of the Envoy route and cluster, tailscale/<namespace>/<endpoints>[/<endpoint>].'),
  ),
});

const TailnetStatus = v.strictObject({
  name: dnsLabel('name'),
  tailscaleTailnet: v.optional(
    v.pipe(v.string(), v.maxLength(253), v.description('The TailscaleTailnet this attachment uses.')),
  ),
  ready: v.optional(
    v.pipe(
      v.picklist(['True', 'False', 'Unknown']),
      v.description('The TailscaleTailnet Ready status (Unknown when it does not exist).'),
    ),
  ),
  services: v.optional(v.pipe(int(0, 1_000_000), v.description('Services routed for this tailnet.'))),
  routes: v.optional(
    v.pipe(
      v.array(GeneratedRouteStatus),
      v.maxLength(64),
      v.description('The generated routes (the first 64 by name; `services` counts them all).'),
    ),
  ),
});

const RouteReferenceStatus = v.strictObject({
  kind: v.pipe(
    v.string(),
    v.maxLength(63),
    v.description('HTTPRoute, GRPCRoute, TCPRoute, UDPRoute or TLSRoute.'),
  ),
  namespace: namespaceName(),
  name: objectName('name'),
  endpoints: v.pipe(
    v.array(v.pipe(v.string(), v.maxLength(253))),
    v.maxLength(16),
    v.description('The TailscaleEndpoints it names as backendRefs (namespace/name).'),
  ),
  supported: v.pipe(
    v.boolean(),
    v.description(
      'Whether Envoy Gateway hands these backends to the extension; false for every kind but HTTPRoute, ' +
        'whose routes must use the egress Service as backendRef instead.',
    ),
  ),
});

/** States of a published service, as status.services reports them. */
export const SERVICE_STATES = ['Pending', 'Published', 'Advertised', 'Refused', 'Failed'] as const;

const PublishedServiceStatus = v.strictObject({
  tailnet: v.pipe(dnsLabel('tailnet'), v.description('The tailnet attachment (spec.tailnets[].name).')),
  name: v.pipe(dnsLabel('name'), v.description('spec.tailnets[].ingress.services[].name.')),
  service: v.pipe(v.string(), v.maxLength(68), v.description('The Tailscale Service, svc:<name>.')),
  tailscaleTailnet: v.pipe(
    v.string(),
    v.maxLength(253),
    v.description('The TailscaleTailnet it is published on (kept so a removed attachment can be detached).'),
  ),
  state: v.pipe(
    v.picklist(SERVICE_STATES),
    v.description(
      'Pending: not written yet (tailnet, proxy group or identity not ready); Published: the Tailscale ' +
        'Service exists with us as a consumer, no proxy advertises it yet; Advertised: the proxy group ' +
        'advertises it; Refused: a Tailscale Service of that name is not ours to share; Failed: the ' +
        'Tailscale API call failed (retried).',
    ),
  ),
  addresses: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.maxLength(45))),
      v.maxLength(4),
      v.description('The VIP addresses, IPv4 first.'),
    ),
  ),
  dnsName: v.optional(
    v.pipe(v.string(), v.maxLength(253), v.description('<name>.<MagicDNS suffix of the tailnet>.')),
  ),
  owner: v.optional(
    v.pipe(v.string(), v.maxLength(253), v.description('Operator id of the owner of the Tailscale Service.')),
  ),
  consumers: v.optional(
    v.pipe(int(0, 10_000), v.description('Operators (one per installation) attached to the service.')),
  ),
  remoteClusters: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.maxLength(253))),
      v.maxLength(16),
      v.description('Cluster ids of other clusters attached to the service (they publish it too).'),
    ),
  ),
  advertisedBy: v.optional(
    v.pipe(int(0, 1_000), v.description('Proxies of the group whose config advertises the service.')),
  ),
  upstream: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(512),
      v.description(
        "Mode HTTP: where the ingress proxies send requests, the Envoy Service of the Gateway's HTTP " +
          'listener (http://<service>.<namespace>.svc.<cluster domain>:<port>).',
      ),
    ),
  ),
  hosts: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.maxLength(253))),
      v.maxLength(2),
      v.description(
        'Mode HTTP: the domains of the virtual host the extension adds on the Gateway (the DNS name, then ' +
          'the expanded routeGeneration.ingress.hostPattern).',
      ),
    ),
  ),
  message: v.optional(v.pipe(v.string(), v.maxLength(1024))),
});
export type PublishedServiceStatus = v.InferOutput<typeof PublishedServiceStatus>;

export const TailscaleGatewayStatus = v.strictObject({
  conditions: conditions(),
  services: v.optional(
    v.pipe(
      v.array(PublishedServiceStatus),
      v.maxLength(256),
      listMap('tailnet', 'name'),
      v.description('The Tailscale Services published from spec.tailnets[].ingress.'),
    ),
  ),
  tailnets: v.optional(v.pipe(v.array(TailnetStatus), v.maxLength(16), listMap('name'))),
  routes: v.optional(
    v.pipe(
      v.array(RouteReferenceStatus),
      v.maxLength(64),
      v.description(
        'Routes attached to the Gateway that name a TailscaleEndpoints as backendRef (the first 64).',
      ),
    ),
  ),
  revision: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(64),
      v.description(
        'Digest of what the generated routes are built from, as last written to the Gateway annotation ' +
          'gateway.envoyproxy.io/tailscale-gateway-revision (how Envoy Gateway learns to re-translate).',
      ),
    ),
  ),
});

export const TailscaleGatewaySchema = resourceSchema(
  'TailscaleGateway',
  TailscaleGatewaySpec,
  TailscaleGatewayStatus,
);
export type TailscaleGateway = v.InferOutput<typeof TailscaleGatewaySchema>;
export type TailscaleGatewaySpec = v.InferOutput<typeof TailscaleGatewaySpec>;
export type TailscaleGatewayStatus = v.InferOutput<typeof TailscaleGatewayStatus>;

export const tailscaleGatewayDefinition: KindDefinition = {
  kind: 'TailscaleGateway',
  plural: 'tailscalegateways',
  singular: 'tailscalegateway',
  shortNames: ['tsgw'],
  scope: 'Namespaced',
  description: 'Joins an Envoy Gateway Gateway to tailnets.',
  spec: TailscaleGatewaySpec,
  status: TailscaleGatewayStatus,
  printerColumns: [
    { name: 'Gateway', type: 'string', jsonPath: '.spec.gatewayRef.name', description: 'Gateway name.' },
    { name: 'Tailnets', type: 'string', jsonPath: '.spec.tailnets[*].name', description: 'Joined tailnets.' },
    readyColumn,
    ageColumn,
  ],
};
