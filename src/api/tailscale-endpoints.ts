/**
 * TailscaleEndpoints: services on (or reached through) a tailnet that the gateway routes to, and the
 * proxy pods that carry the traffic between the cluster and the tailnet.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, listMap, listSet } from './extensions.ts';
import {
  Affinity,
  ageColumn,
  conditions,
  dnsLabel,
  duration,
  image,
  int,
  type KindDefinition,
  NodeSelector,
  objectName,
  PriorityClassName,
  parseDuration,
  port,
  ResourceRequirements,
  readyColumn,
  resourceSchema,
  Tolerations,
  TopologySpreadConstraints,
  tags,
} from './meta.ts';

/** `host:port`, with the host a DNS name, an IPv4 address or a bracketed IPv6 address. */
export const HOST_PORT =
  /^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$/;
/** A fully qualified name with at least two labels, as MagicDNS hands out. */
export const FQDN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+\.?$/;
const IP = v.IP_REGEX;

export const HealthCheck = v.pipe(
  v.strictObject({
    enabled: v.optional(
      v.pipe(v.boolean(), v.description('Turn active checks off without losing the settings.')),
      true,
    ),
    path: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(1024),
        v.regex(/^\/[^\s]*$/, 'path must start with "/" and contain no whitespace'),
        v.description(
          'HTTP path probed for HTTP and HTTPS endpoints; TCP and UDP endpoints are probed by connecting.',
        ),
      ),
      '/health',
    ),
    interval: v.optional(duration('Time between probes.'), '10s'),
    timeout: v.optional(duration('Time a probe may take; at most the interval.'), '3s'),
    healthyThreshold: v.optional(
      v.pipe(int(1, 10), v.description('Consecutive successes before an unhealthy endpoint is used again.')),
      2,
    ),
    unhealthyThreshold: v.optional(
      v.pipe(int(1, 10), v.description('Consecutive failures before an endpoint is taken out of rotation.')),
      3,
    ),
  }),
  cel(
    {
      rule: 'duration(self.timeout) <= duration(self.interval)',
      message: 'timeout must not be longer than interval',
      fieldPath: '.timeout',
    },
    (self) => parseDuration(self.timeout) <= parseDuration(self.interval),
  ),
  v.description('Active health checking. Without it an endpoint is always considered healthy.'),
);
export type HealthCheck = v.InferOutput<typeof HealthCheck>;

export const Endpoint = v.pipe(
  v.strictObject({
    name: dnsLabel('name'),
    tailscaleFQDN: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(253),
        v.regex(FQDN, 'tailscaleFQDN must be a fully qualified DNS name'),
        v.description('MagicDNS name of the device or Tailscale Service, e.g. web.tail1234.ts.net.'),
      ),
    ),
    tailscaleIP: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(45),
        cel({ rule: 'isIP(self)', message: 'tailscaleIP must be an IPv4 or IPv6 address' }, (self: string) =>
          IP.test(self),
        ),
        v.description(
          'Tailnet address of the device or Tailscale Service; preferred over the FQDN when both are set.',
        ),
      ),
    ),
    port: v.pipe(port(), v.description('Port of the service on the tailnet side.')),
    protocol: v.optional(v.picklist(['HTTP', 'HTTPS', 'TCP', 'UDP']), 'HTTP'),
    externalTarget: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(260),
        v.regex(HOST_PORT, 'externalTarget must be host:port'),
        v.description(
          'Backend outside the tailnet as host:port (e.g. api.example.com:443 or svc.ns.svc.cluster.local:80) ' +
            'that tailnet clients reach through the ingress proxy.',
        ),
      ),
    ),
    healthCheck: v.optional(HealthCheck),
    weight: v.optional(
      v.pipe(int(1, 100), v.description('Share of traffic among endpoints of the same priority.')),
      1,
    ),
    priority: v.optional(
      v.pipe(
        int(0, 10),
        v.description(
          'Failover tier; 0 is preferred, higher tiers get traffic only when lower ones are unhealthy.',
        ),
      ),
      0,
    ),
  }),
  cel(
    {
      rule: 'has(self.tailscaleFQDN) || has(self.tailscaleIP) || has(self.externalTarget)',
      message: 'set at least one of tailscaleFQDN, tailscaleIP or externalTarget',
    },
    (self) =>
      self.tailscaleFQDN !== undefined || self.tailscaleIP !== undefined || self.externalTarget !== undefined,
  ),
);
export type Endpoint = v.InferOutput<typeof Endpoint>;

export const ProxySpec = v.pipe(
  v.strictObject({
    connectionType: v.optional(
      v.pipe(
        v.picklist(['ingress', 'egress', 'bidirectional']),
        v.description('ingress: tailnet to cluster; egress: cluster to tailnet; bidirectional: both.'),
      ),
      'bidirectional',
    ),
    proxyGroup: v.optional(
      v.pipe(
        objectName('proxyGroup'),
        v.description(
          "Name of a TailscaleProxyGroup in this namespace whose proxies carry this object's traffic instead " +
            "of proxies of its own. connectionType must then be the group's type (ingress or egress), and " +
            'replicas, image, resources and the pod scheduling fields (nodeSelector, tolerations, affinity, ' +
            "priorityClassName, topologySpreadConstraints) are the group's to set.",
        ),
      ),
    ),
    replicas: v.optional(
      v.pipe(int(1, 10), v.description('Proxy pods per direction; 2 when unset. Not with proxyGroup.')),
    ),
    image: v.optional(image()),
    resources: v.optional(ResourceRequirements),
    nodeSelector: v.optional(NodeSelector),
    tolerations: v.optional(Tolerations),
    affinity: v.optional(Affinity),
    priorityClassName: v.optional(PriorityClassName),
    topologySpreadConstraints: v.optional(TopologySpreadConstraints),
    ingressService: v.optional(
      v.pipe(
        v.strictObject({
          name: dnsLabel('name'),
          namespace: v.optional(
            v.pipe(dnsLabel('namespace'), v.description("Defaults to this object's namespace.")),
          ),
          port: v.optional(
            v.pipe(port(), v.description("Port of the Service; defaults to each endpoint's port.")),
          ),
        }),
        v.description(
          "Cluster Service (Envoy Gateway's, or any other) that the ingress proxies forward tailnet " +
            'traffic to, for endpoints without an externalTarget.',
        ),
      ),
    ),
  }),
  cel(
    {
      rule: "!has(self.proxyGroup) || (has(self.connectionType) && self.connectionType != 'bidirectional')",
      message: "with proxyGroup, connectionType must be the group's type: ingress or egress",
      fieldPath: '.connectionType',
    },
    (self) => self.proxyGroup === undefined || self.connectionType !== 'bidirectional',
  ),
  cel(
    {
      rule:
        '!has(self.proxyGroup) || !(has(self.replicas) || has(self.image) || has(self.resources) || ' +
        'has(self.nodeSelector) || has(self.tolerations) || has(self.affinity) || ' +
        'has(self.priorityClassName) || has(self.topologySpreadConstraints))',
      message:
        'with proxyGroup, the TailscaleProxyGroup runs the proxies: remove replicas, image, resources, ' +
        'nodeSelector, tolerations, affinity, priorityClassName and topologySpreadConstraints',
      fieldPath: '.proxyGroup',
    },
    (self) =>
      self.proxyGroup === undefined ||
      [
        self.replicas,
        self.image,
        self.resources,
        self.nodeSelector,
        self.tolerations,
        self.affinity,
        self.priorityClassName,
        self.topologySpreadConstraints,
      ].every((field) => field === undefined),
  ),
  v.description(
    'The proxy StatefulSets that connect the cluster and the tailnet: run for this object, or shared ' +
      'through a TailscaleProxyGroup (proxyGroup).',
  ),
);

/** Most endpoints one object holds, written by hand and discovered together. */
export const MAX_ENDPOINTS = 64;
/** The shortest `discovery.syncInterval` accepted: each sync lists every device of the tailnet. */
export const MIN_SYNC_INTERVAL = '10s';

const TAG_PATTERN = /^tag:[a-zA-Z][a-zA-Z0-9-]*$/;
const deviceTag = () =>
  v.pipe(
    v.string(),
    v.maxLength(128),
    v.regex(TAG_PATTERN, 'a tag must look like tag:name (a letter first)'),
  );

/**
 * One condition on a device's ACL tags. Selectors of a list must all hold (like a label selector's
 * matchExpressions).
 */
export const TagSelector = v.pipe(
  v.strictObject({
    operator: v.pipe(
      v.picklist(['In', 'NotIn', 'Exists', 'DoesNotExist']),
      v.description(
        'Exists: the device carries `tag`. DoesNotExist: it does not. In: it carries at least one of ' +
          '`values`. NotIn: it carries none of `values`.',
      ),
    ),
    tag: v.optional(v.pipe(deviceTag(), v.description('The tag, for Exists and DoesNotExist.'))),
    values: v.optional(
      v.pipe(
        v.array(deviceTag()),
        v.minLength(1),
        v.maxLength(16),
        listSet(),
        v.description('The tags, for In and NotIn.'),
      ),
    ),
  }),
  cel(
    {
      rule: "self.operator == 'Exists' || self.operator == 'DoesNotExist' ? has(self.tag) && !has(self.values) : has(self.values) && !has(self.tag)",
      message: 'Exists and DoesNotExist take tag; In and NotIn take values',
    },
    (self) =>
      self.operator === 'Exists' || self.operator === 'DoesNotExist'
        ? self.tag !== undefined && self.values === undefined
        : self.values !== undefined && self.tag === undefined,
  ),
);
export type TagSelector = v.InferOutput<typeof TagSelector>;

/** True when `pattern` compiles as a JavaScript regular expression (what the operator matches with). */
export function validHostnamePattern(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

export const DeviceDiscovery = v.pipe(
  v.strictObject({
    tagSelectors: v.pipe(
      v.array(TagSelector),
      v.minLength(1),
      v.maxLength(8),
      v.description(
        'Conditions on the device tags, all of which must hold. At least one, so that no object picks ' +
          'up every device of a tailnet by accident.',
      ),
    ),
    hostnamePattern: v.optional(
      v.pipe(
        v.string(),
        v.minLength(1),
        v.maxLength(256),
        // Not checked here: CEL cannot compile a regular expression, and an object the API server
        // accepted must not be dropped by every controller over it. The discovery reports a pattern
        // that does not compile (condition DiscoverySynced, reason InvalidSelector).
        v.description(
          "JavaScript regular expression the device's hostname must match (unanchored: use ^ and $ to " +
            'match it whole).',
        ),
      ),
    ),
    os: v.optional(
      v.pipe(
        v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(32))),
        v.minLength(1),
        v.maxLength(8),
        listSet(),
        v.description('Operating systems as the Tailscale API reports them (linux, windows, macOS, …).'),
      ),
    ),
  }),
  v.description('Tailnet devices to route to, selected by tags and optionally by hostname and OS.'),
);

export const ServiceDiscovery = v.pipe(
  v.strictObject({
    names: v.optional(
      v.pipe(
        v.array(
          v.pipe(
            v.string(),
            v.maxLength(67),
            v.regex(/^svc:[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Tailscale Service name looks like svc:name'),
          ),
        ),
        v.minLength(1),
        v.maxLength(32),
        listSet(),
        v.description('Tailscale Services by name (svc:…).'),
      ),
    ),
    tags: v.optional(
      v.pipe(
        v.array(deviceTag()),
        v.minLength(1),
        v.maxLength(16),
        listSet(),
        v.description('Tailscale Services carrying any of these tags.'),
      ),
    ),
  }),
  cel(
    { rule: 'has(self.names) || has(self.tags)', message: 'select services by names, tags or both' },
    (self) => self.names !== undefined || self.tags !== undefined,
  ),
  v.description('Tailscale Services to route to: those named, and those carrying any of the tags.'),
);

export const DiscoveryPort = v.strictObject({
  port: v.pipe(port(), v.description('Port of the service on each device or Tailscale Service found.')),
  protocol: v.optional(v.picklist(['HTTP', 'HTTPS', 'TCP', 'UDP']), 'HTTP'),
  name: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.maxLength(15),
      v.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'name must be a short DNS label'),
      v.description(
        'Suffix of the endpoint names when several ports are listed (`<device>-<name>`); the port number ' +
          'when unset.',
      ),
    ),
  ),
});

export const Discovery = v.pipe(
  v.strictObject({
    devices: v.optional(DeviceDiscovery),
    services: v.optional(ServiceDiscovery),
    ports: v.pipe(
      v.array(DiscoveryPort),
      v.minLength(1),
      v.maxLength(4),
      listMap('port'),
      v.description('What every device and Tailscale Service found serves: one endpoint per port.'),
    ),
    healthCheck: v.optional(HealthCheck),
    weight: v.optional(
      v.pipe(int(1, 100), v.description('Weight of every discovered endpoint within its priority.')),
      1,
    ),
    priority: v.optional(
      v.pipe(
        int(0, 9),
        v.description(
          'Failover tier of discovered endpoints that are online. Offline ones go to the last tier (10), ' +
            'so failover tries them last.',
        ),
      ),
      0,
    ),
    syncInterval: v.optional(
      v.pipe(
        duration(`How often the tailnet is listed; at least ${MIN_SYNC_INTERVAL}.`),
        cel(
          {
            rule: `duration(self) >= duration('${MIN_SYNC_INTERVAL}')`,
            message: `syncInterval must be at least ${MIN_SYNC_INTERVAL}`,
          },
          (self: string) => parseDuration(self) >= parseDuration(MIN_SYNC_INTERVAL),
        ),
      ),
      '30s',
    ),
    offlineGracePeriod: v.optional(
      duration(
        'How long a device may stay offline (since it was last seen) before its endpoints are removed; ' +
          'until then they are kept at the last priority tier.',
      ),
      '15m',
    ),
  }),
  cel(
    {
      rule: 'has(self.devices) || has(self.services)',
      message: 'discovery needs devices, services or both',
    },
    (self) => self.devices !== undefined || self.services !== undefined,
  ),
  v.description(
    'Fill spec.endpoints from the tailnet: the operator lists devices (and Tailscale Services) every ' +
      'syncInterval and keeps the matching ones in spec.endpoints under its own field manager, beside ' +
      'the endpoints written by hand.',
  ),
);
export type Discovery = v.InferOutput<typeof Discovery>;

export const TailscaleEndpointsSpec = v.pipe(
  v.strictObject({
    tailnet: v.pipe(objectName('tailnet'), v.description('Name of the TailscaleTailnet to use.')),
    tags: v.optional(
      tags(
        "Tags for the proxies and Tailscale Services; defaults to the tailnet tags. A TailscaleProxyGroup's proxies carry the group's tags.",
      ),
    ),
    endpoints: v.optional(
      v.pipe(
        v.array(Endpoint),
        v.maxLength(MAX_ENDPOINTS),
        listMap('name'),
        v.description(
          'Services to route to, by name. With discovery, the operator adds and removes the entries it ' +
            'discovered (its own field manager); the others are yours.',
        ),
      ),
      [],
    ),
    discovery: v.optional(Discovery),
    proxy: v.optional(ProxySpec, {}),
  }),
  cel(
    {
      rule: 'has(self.discovery) || (has(self.endpoints) && size(self.endpoints) > 0)',
      message: 'list at least one endpoint, or set discovery',
      fieldPath: '.endpoints',
      reason: 'FieldValueRequired',
    },
    (self) => self.discovery !== undefined || self.endpoints.length > 0,
  ),
);

const EndpointStatus = v.strictObject({
  name: dnsLabel('name'),
  health: v.pipe(
    v.picklist(['Healthy', 'Unhealthy', 'Unknown']),
    v.description(
      "Healthy: every proxy that should carry the endpoint (this object's own, or its " +
        'TailscaleProxyGroup) carries it with at least one replica ready, and a discovered device was ' +
        'online at the last sync. Unhealthy: one of them has no replica ready or leaves it out, or the ' +
        'discovered device is offline. Unknown: no proxy of the operator carries it. Not the result of ' +
        "Envoy's active health checks, which only Envoy sees.",
    ),
  ),
  lastTransitionTime: v.optional(
    v.pipe(v.string(), v.isoTimestamp(), v.description('When health last changed.')),
  ),
  message: v.optional(v.pipe(v.string(), v.maxLength(1024), v.description('Why, in words.'))),
});

/** A proxy replica's tailnet device, from its state Secret (only when written by the running Pod). */
export const ProxyDevice = v.strictObject({
  hostname: v.pipe(v.string(), v.minLength(1), v.maxLength(63)),
  fqdn: v.optional(v.pipe(v.string(), v.maxLength(253))),
  nodeId: v.optional(v.pipe(v.string(), v.maxLength(64))),
  tailscaleIPs: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(45))), v.maxLength(4))),
  podName: v.optional(objectName('podName')),
});

const ProxyStatus = v.strictObject({
  statefulSetName: objectName('statefulSetName'),
  connectionType: v.picklist(['ingress', 'egress']),
  replicas: v.optional(int(0, 10)),
  readyReplicas: v.optional(int(0, 10)),
  devices: v.optional(
    v.pipe(
      v.array(ProxyDevice),
      v.maxLength(10),
      listMap('hostname'),
      v.description('Tailnet devices of the replicas whose state matches the running Pod.'),
    ),
  ),
});

const ProxyGroupRef = v.pipe(
  v.strictObject({
    name: objectName('name'),
    ready: v.pipe(
      v.boolean(),
      v.description("Whether the group is Ready and carries this object's configuration."),
    ),
    replicas: v.optional(int(0, 10)),
    readyReplicas: v.optional(int(0, 10)),
  }),
  v.description("The TailscaleProxyGroup that carries this object's traffic (spec.proxy.proxyGroup)."),
);

const SelectorMatches = v.strictObject({
  selector: v.pipe(
    v.string(),
    v.maxLength(2200),
    v.description('The selector as text, e.g. "tag:web Exists" or "In [tag:a tag:b]".'),
  ),
  matchedDevices: v.pipe(
    int(0, 1_000_000),
    v.description('Devices of the tailnet this selector alone matches.'),
  ),
});

export const DiscoveryStatus = v.pipe(
  v.strictObject({
    discoveredEndpoints: v.pipe(
      int(0, MAX_ENDPOINTS),
      v.description('Entries of spec.endpoints the operator discovered.'),
    ),
    offlineEndpoints: v.pipe(
      int(0, MAX_ENDPOINTS),
      v.description('Discovered entries whose device is offline (kept at the last priority tier).'),
    ),
    matchedDevices: v.pipe(int(0, 1_000_000), v.description('Devices matching every selector and filter.')),
    matchedServices: v.optional(int(0, 1_000_000)),
    selectors: v.optional(
      v.pipe(
        v.array(SelectorMatches),
        v.maxLength(8),
        v.description('Devices each tag selector matches on its own, in spec order.'),
      ),
    ),
    lastSyncTime: v.optional(
      v.pipe(
        v.string(),
        v.isoTimestamp(),
        v.description(
          'Last successful sync. Refreshed with every change, and otherwise at most every 10 minutes, so ' +
            'an unchanged tailnet costs no writes between.',
        ),
      ),
    ),
  }),
  v.description('What the last discovery sync found; see the DiscoverySynced condition.'),
);
export type DiscoveryStatus = v.InferOutput<typeof DiscoveryStatus>;

export const TailscaleEndpointsStatus = v.strictObject({
  conditions: conditions(),
  discovery: v.optional(DiscoveryStatus),
  totalEndpoints: v.optional(
    v.pipe(int(0, MAX_ENDPOINTS), v.description('Entries of spec.endpoints (discovered ones included).')),
  ),
  healthyEndpoints: v.optional(
    v.pipe(int(0, MAX_ENDPOINTS), v.description('Endpoints whose health is Healthy.')),
  ),
  endpoints: v.optional(
    v.pipe(
      v.array(EndpointStatus),
      v.maxLength(MAX_ENDPOINTS),
      listMap('name'),
      v.description('Health of each endpoint, by name.'),
    ),
  ),
  proxies: v.optional(
    v.pipe(
      v.array(ProxyStatus),
      v.maxLength(4),
      listMap('statefulSetName'),
      v.description('Proxy StatefulSets.'),
    ),
  ),
  proxyGroup: v.optional(ProxyGroupRef),
});

export const TailscaleEndpointsSchema = resourceSchema(
  'TailscaleEndpoints',
  TailscaleEndpointsSpec,
  TailscaleEndpointsStatus,
);
export type TailscaleEndpoints = v.InferOutput<typeof TailscaleEndpointsSchema>;
export type TailscaleEndpointsSpec = v.InferOutput<typeof TailscaleEndpointsSpec>;
export type TailscaleEndpointsStatus = v.InferOutput<typeof TailscaleEndpointsStatus>;

export const tailscaleEndpointsDefinition: KindDefinition = {
  kind: 'TailscaleEndpoints',
  plural: 'tailscaleendpoints',
  singular: 'tailscaleendpoints',
  shortNames: ['tse'],
  scope: 'Namespaced',
  description: 'Services on a tailnet, or reached through it, that the gateway routes to.',
  spec: TailscaleEndpointsSpec,
  status: TailscaleEndpointsStatus,
  printerColumns: [
    { name: 'Tailnet', type: 'string', jsonPath: '.spec.tailnet', description: 'TailscaleTailnet in use.' },
    {
      name: 'Endpoints',
      type: 'integer',
      jsonPath: '.status.totalEndpoints',
      description: 'Entries of spec.endpoints.',
    },
    {
      name: 'Healthy',
      type: 'integer',
      jsonPath: '.status.healthyEndpoints',
      description: 'Endpoints carried by a proxy with a ready replica (status.endpoints says why not).',
    },
    readyColumn,
    ageColumn,
  ],
};
