/**
 * TailscaleRoutePolicy: matching and actions for traffic between a Gateway and tailnet services,
 * attached to Gateway API objects by Gateway API policy attachment (`targetRefs`).
 *
 * An action's `type` picks exactly one sub-object. That is a discriminated union, but structural
 * schemas allow no `oneOf` of objects, so the shape is one object with optional sub-objects plus CEL
 * rules, and valibot mirrors the rules instead of using `v.variant`.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, k8s, listMap, listSet } from './extensions.ts';
import {
  ageColumn,
  conditions,
  DNS_SUBDOMAIN,
  dnsLabel,
  duration,
  GROUP_PATTERN,
  int,
  KIND_PATTERN,
  type KindDefinition,
  LocalPolicyTargetReference,
  namespaceName,
  objectName,
  parseDuration,
  port,
  readyColumn,
  resourceSchema,
} from './meta.ts';

/** RFC 7230 token: what an HTTP header name may be. */
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

/** The objects a policy can attach to; anything else would be accepted and silently do nothing. */
const TARGET_KINDS: Record<string, string[]> = {
  'gateway.networking.k8s.io': ['Gateway', 'HTTPRoute'],
  'gateway.tailscale.com': ['TailscaleGateway'],
};

const headerName = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(256),
  v.regex(HEADER_NAME, 'name must be an HTTP header name'),
);

export const PathMatch = v.pipe(
  v.strictObject({
    type: v.optional(v.picklist(['Exact', 'PathPrefix', 'RegularExpression']), 'PathPrefix'),
    value: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(1024)), '/'),
  }),
  cel(
    {
      rule: "self.type == 'RegularExpression' || self.value.startsWith('/')",
      message: 'value must start with "/" unless type is RegularExpression',
      fieldPath: '.value',
    },
    (self) => self.type === 'RegularExpression' || self.value.startsWith('/'),
  ),
);

export const HeaderMatch = v.strictObject({
  type: v.optional(v.picklist(['Exact', 'RegularExpression']), 'Exact'),
  name: headerName,
  value: v.pipe(v.string(), v.maxLength(4096)),
});

/**
 * Tailscale login names as `tailscale serve` sends them in `Tailscale-User-Login`. ASCII only: serve
 * Q-encodes (RFC 2047) a non-ASCII value, which an exact match would have to repeat byte for byte.
 */
const LOGIN_NAME = /^[\x21-\x7e]+$/;

/**
 * Who is calling, from the identity headers of `tailscale serve`'s HTTP proxy. Serve sets them only
 * for requests from devices owned by a user (none for tagged devices or Funnel), and strips any value
 * a client sent; a listener reachable other than through that proxy gets whatever the client sends.
 */
export const CallerMatch = v.strictObject({
  users: v.pipe(
    v.array(
      v.pipe(
        v.string(),
        v.minLength(1),
        v.maxLength(256),
        v.regex(LOGIN_NAME, 'users must be ASCII Tailscale login names such as alice@example.com'),
      ),
    ),
    v.minLength(1),
    v.maxLength(16),
    listSet(),
    v.description(
      'Tailscale login names (the Tailscale-User-Login header); any of them matches. Tagged devices carry no user.',
    ),
  ),
});

export const RouteMatch = v.strictObject({
  path: v.optional(PathMatch),
  headers: v.optional(v.pipe(v.array(HeaderMatch), v.maxLength(16), listMap('name'))),
  method: v.optional(
    v.picklist(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']),
  ),
  caller: v.optional(
    v.pipe(
      CallerMatch,
      v.description(
        'The tailnet caller, from the Tailscale-User-* headers that tailscale serve sets on requests to a mode-HTTP published service (never for tagged callers, mode TCP or egress).',
      ),
    ),
  ),
});

export const BackendRef = v.pipe(
  v.strictObject({
    group: v.optional(
      v.pipe(v.string(), v.maxLength(253), v.regex(GROUP_PATTERN, 'group must be an API group')),
      '',
    ),
    kind: v.optional(
      v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(KIND_PATTERN, 'kind must be a Kind')),
      'Service',
    ),
    name: objectName('name'),
    namespace: v.optional(namespaceName()),
    port: v.optional(port()),
    weight: v.optional(int(0, 1_000_000), 1),
  }),
  cel(
    {
      rule: "self.group != '' || self.kind != 'Service' || has(self.port)",
      message: 'port is required when referring to a Service',
      fieldPath: '.port',
      reason: 'FieldValueRequired',
    },
    (self) => self.group !== '' || self.kind !== 'Service' || self.port !== undefined,
  ),
);

export const Timeouts = v.pipe(
  v.strictObject({
    request: v.optional(duration('Whole request, including retries.')),
    backendRequest: v.optional(duration('One attempt to the backend.')),
  }),
  cel(
    {
      rule: '!has(self.request) || !has(self.backendRequest) || duration(self.backendRequest) <= duration(self.request)',
      message: 'backendRequest must not be longer than request',
      fieldPath: '.backendRequest',
    },
    (self) =>
      self.request === undefined ||
      self.backendRequest === undefined ||
      parseDuration(self.backendRequest) <= parseDuration(self.request),
  ),
);

export const RouteAction = v.strictObject({
  backendRefs: v.pipe(v.array(BackendRef), v.minLength(1), v.maxLength(16)),
  timeouts: v.optional(Timeouts),
});

export const RedirectAction = v.pipe(
  v.strictObject({
    scheme: v.optional(v.picklist(['http', 'https'])),
    hostname: v.optional(
      v.pipe(v.string(), v.maxLength(253), v.regex(DNS_SUBDOMAIN, 'hostname must be a DNS name')),
    ),
    path: v.optional(
      v.strictObject({
        type: v.picklist(['ReplaceFullPath', 'ReplacePrefixMatch']),
        value: v.pipe(v.string(), v.maxLength(1024), v.regex(/^\//, 'value must start with "/"')),
      }),
    ),
    port: v.optional(port()),
    statusCode: v.optional(v.picklist([301, 302]), 302),
  }),
  cel(
    {
      rule: 'has(self.scheme) || has(self.hostname) || has(self.path) || has(self.port)',
      message: 'a redirect must change at least one of scheme, hostname, path or port',
    },
    (self) =>
      self.scheme !== undefined ||
      self.hostname !== undefined ||
      self.path !== undefined ||
      self.port !== undefined,
  ),
);

const HeaderValue = v.strictObject({ name: headerName, value: v.pipe(v.string(), v.maxLength(4096)) });

export const HeaderModifier = v.pipe(
  v.strictObject({
    set: v.optional(v.pipe(v.array(HeaderValue), v.maxLength(16), listMap('name'))),
    add: v.optional(v.pipe(v.array(HeaderValue), v.maxLength(16), listMap('name'))),
    remove: v.optional(v.pipe(v.array(headerName), v.maxLength(16), listSet())),
  }),
  cel(
    {
      rule: 'has(self.set) || has(self.add) || has(self.remove)',
      message: 'set at least one of set, add or remove',
    },
    (self) => self.set !== undefined || self.add !== undefined || self.remove !== undefined,
  ),
);

const ActionFields = v.strictObject({
  type: v.picklist(['Route', 'Redirect', 'Deny', 'RequestHeaderModifier', 'ResponseHeaderModifier']),
  route: v.optional(RouteAction),
  redirect: v.optional(RedirectAction),
  requestHeaderModifier: v.optional(HeaderModifier),
  responseHeaderModifier: v.optional(HeaderModifier),
});
type ActionFields = v.InferOutput<typeof ActionFields>;

/** The sub-object `field` belongs to `type`: required with it, forbidden without it. */
const onlyWithType = (type: ActionFields['type'], field: Exclude<keyof ActionFields, 'type'>) =>
  cel<ActionFields>(
    {
      rule: `(self.type == '${type}') == has(self.${field})`,
      message: `${field} must be set when type is ${type}, and only then`,
      fieldPath: `.${field}`,
    },
    (self) => (self.type === type) === (self[field] !== undefined),
  );

export const Action = v.pipe(
  ActionFields,
  onlyWithType('Route', 'route'),
  onlyWithType('Redirect', 'redirect'),
  onlyWithType('RequestHeaderModifier', 'requestHeaderModifier'),
  onlyWithType('ResponseHeaderModifier', 'responseHeaderModifier'),
);
export type Action = v.InferOutput<typeof Action>;

export const Rule = v.strictObject({
  name: v.optional(v.pipe(dnsLabel('name'), v.description('Shown in status and logs.'))),
  matches: v.optional(
    v.pipe(
      v.array(RouteMatch),
      v.maxLength(8),
      v.description('Any match selects the rule; none matches all.'),
    ),
  ),
  actions: v.pipe(v.array(Action), v.minLength(1), v.maxLength(8)),
});

export const TailscaleRoutePolicySpec = v.strictObject({
  targetRefs: v.pipe(
    v.array(LocalPolicyTargetReference),
    v.minLength(1),
    v.maxLength(16),
    cel(
      {
        rule:
          "self.all(r, (r.group == 'gateway.networking.k8s.io' && (r.kind == 'Gateway' || r.kind == 'HTTPRoute')) || " +
          "(r.group == 'gateway.tailscale.com' && r.kind == 'TailscaleGateway'))",
        message: 'targetRefs may only name a Gateway, an HTTPRoute or a TailscaleGateway',
      },
      (self) => self.every((ref) => TARGET_KINDS[ref.group]?.includes(ref.kind) === true),
    ),
    v.description('Objects in this namespace the policy applies to.'),
  ),
  rules: v.pipe(v.array(Rule), v.minLength(1), v.maxLength(16), v.description('Evaluated in order.')),
});

const ParentReference = v.strictObject({
  group: v.optional(
    v.pipe(v.string(), v.maxLength(253), v.regex(GROUP_PATTERN)),
    'gateway.networking.k8s.io',
  ),
  kind: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(KIND_PATTERN)), 'Gateway'),
  namespace: v.optional(namespaceName()),
  name: objectName('name'),
  sectionName: v.optional(dnsLabel('sectionName')),
});

/** Gateway API PolicyAncestorStatus, so gwctl and other Gateway API tools can show attachment. */
const PolicyAncestorStatus = v.strictObject({
  ancestorRef: ParentReference,
  controllerName: v.pipe(v.string(), v.minLength(1), v.maxLength(253)),
  conditions: conditions(),
});

/** The controllerName of the ancestor entries this operator writes. */
export const POLICY_CONTROLLER_NAME = 'gateway.tailscale.com/tailscale-gateway';

export const TailscaleRoutePolicyStatus = v.strictObject({
  conditions: conditions(),
  // Atomic, and it cannot be otherwise: the Gateway API keys an entry by ancestorRef and controllerName
  // together, but a list map's keys must be scalar fields of the item, and ancestorRef is an object.
  // Envoy Gateway writes its entries with an update of the whole status anyway (which drops ours until
  // our controller writes them again), so our writer sends the other controllers' entries back as read,
  // with a resourceVersion precondition.
  ancestors: v.optional(
    v.pipe(
      v.array(PolicyAncestorStatus),
      v.maxLength(16),
      k8s({ listType: 'atomic' }),
      v.description(
        `Per target and controller: Envoy Gateway's entries (one per Gateway it applies the policy on) and ` +
          `this operator's (controllerName ${POLICY_CONTROLLER_NAME}, one per targetRef).`,
      ),
    ),
  ),
});

export const TailscaleRoutePolicySchema = resourceSchema(
  'TailscaleRoutePolicy',
  TailscaleRoutePolicySpec,
  TailscaleRoutePolicyStatus,
);
export type TailscaleRoutePolicy = v.InferOutput<typeof TailscaleRoutePolicySchema>;
export type TailscaleRoutePolicySpec = v.InferOutput<typeof TailscaleRoutePolicySpec>;
export type TailscaleRoutePolicyStatus = v.InferOutput<typeof TailscaleRoutePolicyStatus>;

export const tailscaleRoutePolicyDefinition: KindDefinition = {
  kind: 'TailscaleRoutePolicy',
  plural: 'tailscaleroutepolicies',
  singular: 'tailscaleroutepolicy',
  shortNames: ['tsrp'],
  scope: 'Namespaced',
  description: 'Route matching and actions attached to a Gateway, HTTPRoute or TailscaleGateway.',
  spec: TailscaleRoutePolicySpec,
  status: TailscaleRoutePolicyStatus,
  printerColumns: [
    {
      name: 'Targets',
      type: 'string',
      jsonPath: '.spec.targetRefs[*].name',
      description: 'Attached objects.',
    },
    readyColumn,
    ageColumn,
  ],
};
