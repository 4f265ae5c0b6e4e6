/**
 * TailscaleGateway: joins an Envoy Gateway `Gateway` to one or more tailnets and says how routes for
 * tailnet services are named.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, listMap } from './extensions.ts';
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
  readyColumn,
  resourceSchema,
} from './meta.ts';

/** Host names built from `{service}` and `{tailnet}` placeholders and DNS labels. */
export const HOST_PATTERN = /^([a-z0-9-]|\{service\}|\{tailnet\})+(\.([a-z0-9-]|\{service\}|\{tailnet\})+)*$/;
/** Path prefixes with the same placeholders; braces are otherwise not allowed. */
export const PATH_PATTERN = /^\/([^{}\s]|\{service\}|\{tailnet\})*$/;

const routeTemplate = (defaults: { hostPattern: string; pathPrefix: string; protocol: 'HTTP' | 'HTTPS' }) =>
  v.pipe(
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
        defaults.hostPattern,
      ),
      pathPrefix: v.optional(
        v.pipe(
          v.string(),
          v.maxLength(1024),
          v.regex(
            PATH_PATTERN,
            'pathPrefix must start with "/" and use only {service} and {tailnet} placeholders',
          ),
          v.description('Path prefix of generated routes; it is stripped before forwarding.'),
        ),
        defaults.pathPrefix,
      ),
      protocol: v.optional(v.picklist(['HTTP', 'HTTPS']), defaults.protocol),
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

/**
 * Defaults are spelled out in full rather than as `{}`: the API server checks a default against the
 * CEL rules as written, before nested defaults would fill it in.
 */
const INGRESS_DEFAULTS = {
  hostPattern: '{service}.{tailnet}.gateway.local',
  pathPrefix: '/',
  protocol: 'HTTPS',
} as const;
const EGRESS_DEFAULTS = {
  hostPattern: '{service}.tailscale.local',
  pathPrefix: '/tailscale/{service}/',
  protocol: 'HTTP',
} as const;

export const RouteGeneration = v.pipe(
  v.strictObject({
    ingress: v.optional(
      v.pipe(
        routeTemplate(INGRESS_DEFAULTS),
        v.description('Routes that expose cluster services to tailnet clients.'),
      ),
      INGRESS_DEFAULTS,
    ),
    egress: v.optional(
      v.pipe(
        routeTemplate(EGRESS_DEFAULTS),
        v.description('Routes through the gateway to services on the tailnet.'),
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

export const TailnetAttachment = v.strictObject({
  name: v.pipe(dnsLabel('name'), v.description('Used as {tailnet} in route patterns.')),
  tailscaleTailnetRef: NameReference('The TailscaleTailnet with the credentials.'),
  routeGeneration: v.optional(RouteGeneration, {}),
});

export const TailscaleGatewaySpec = v.strictObject({
  gatewayRef: GatewayReference,
  tailnets: v.pipe(
    v.array(TailnetAttachment),
    v.minLength(1),
    v.maxLength(16),
    listMap('name'),
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

export const TailscaleGatewayStatus = v.strictObject({
  conditions: conditions(),
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
