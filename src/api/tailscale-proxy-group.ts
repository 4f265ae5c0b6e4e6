/**
 * TailscaleProxyGroup: a pool of identical proxies (one tailnet device per replica) that several
 * gateways share, so high availability does not need one StatefulSet per TailscaleEndpoints.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, listMap } from './extensions.ts';
import {
  Affinity,
  ageColumn,
  conditions,
  DNS_LABEL,
  image,
  int,
  type KindDefinition,
  NodeSelector,
  objectName,
  PriorityClassName,
  ResourceRequirements,
  readyColumn,
  resourceSchema,
  Tolerations,
  TopologySpreadConstraints,
  tags,
} from './meta.ts';

/** Replicas are capped so that `<hostnamePrefix>-<index>` always fits a 63-character DNS label. */
export const MAX_REPLICAS = 10;

export const TailscaleProxyGroupSpec = v.strictObject({
  type: v.pipe(
    v.picklist(['ingress', 'egress']),
    cel({ rule: 'self == oldSelf', message: 'type is immutable; create a new TailscaleProxyGroup instead' }),
    v.description('ingress proxies serve tailnet clients; egress proxies reach tailnet services.'),
  ),
  tailnet: v.pipe(objectName('tailnet'), v.description('Name of the TailscaleTailnet to join.')),
  replicas: v.optional(
    v.pipe(int(1, MAX_REPLICAS), v.description('Proxy pods, one tailnet device each.')),
    2,
  ),
  tags: v.optional(tags('Tags of the proxy devices; defaults to the tailnet tags.')),
  hostnamePrefix: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.maxLength(61),
      v.regex(DNS_LABEL, 'hostnamePrefix must be a DNS label: lower-case letters, digits and "-"'),
      v.description('Device hostnames are <hostnamePrefix>-<index>; defaults to the object name.'),
    ),
  ),
  image: v.optional(image()),
  resources: v.optional(ResourceRequirements),
  nodeSelector: v.optional(NodeSelector),
  tolerations: v.optional(Tolerations),
  affinity: v.optional(
    v.pipe(
      Affinity,
      v.description(
        'Pod affinity of the proxy pods (core/v1 Affinity), copied into the StatefulSet. Without a ' +
          'podAntiAffinity of its own the default one (replicas preferably on different nodes) is kept.',
      ),
    ),
  ),
  priorityClassName: v.optional(PriorityClassName),
  topologySpreadConstraints: v.optional(TopologySpreadConstraints),
});

const Device = v.strictObject({
  hostname: v.pipe(v.string(), v.minLength(1), v.maxLength(63)),
  fqdn: v.optional(v.pipe(v.string(), v.maxLength(253))),
  nodeId: v.optional(v.pipe(v.string(), v.maxLength(64))),
  tailscaleIPs: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(45))), v.maxLength(4))),
  podName: v.optional(objectName('podName')),
});

/** TailscaleEndpoints a group serves; a bound for the status object, far above any sensible sharing. */
export const MAX_MEMBERS = 1000;

const Member = v.strictObject({
  name: objectName('name'),
  routes: v.pipe(
    int(0, 64),
    v.description('Ports (ingress) or egress Services (egress) of the object that the group carries.'),
  ),
  conflicts: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.maxLength(512))),
      v.maxLength(64),
      v.description('Endpoints left out because another TailscaleEndpoints holds their port or Service.'),
    ),
  ),
});

export const TailscaleProxyGroupStatus = v.strictObject({
  conditions: conditions(),
  readyReplicas: v.optional(int(0, MAX_REPLICAS)),
  devices: v.optional(
    v.pipe(
      v.array(Device),
      v.maxLength(MAX_REPLICAS),
      listMap('hostname'),
      v.description('Tailnet devices of pods whose state matches the running pod.'),
    ),
  ),
  tailscaleEndpoints: v.optional(
    v.pipe(
      v.array(Member),
      v.maxLength(MAX_MEMBERS),
      listMap('name'),
      v.description(
        'TailscaleEndpoints in this namespace whose spec.proxy.proxyGroup names this group and whose ' +
          'configuration the proxies carry, by name.',
      ),
    ),
  ),
});

export const TailscaleProxyGroupSchema = resourceSchema(
  'TailscaleProxyGroup',
  TailscaleProxyGroupSpec,
  TailscaleProxyGroupStatus,
);
export type TailscaleProxyGroup = v.InferOutput<typeof TailscaleProxyGroupSchema>;
export type TailscaleProxyGroupSpec = v.InferOutput<typeof TailscaleProxyGroupSpec>;
export type TailscaleProxyGroupStatus = v.InferOutput<typeof TailscaleProxyGroupStatus>;

export const tailscaleProxyGroupDefinition: KindDefinition = {
  kind: 'TailscaleProxyGroup',
  plural: 'tailscaleproxygroups',
  singular: 'tailscaleproxygroup',
  shortNames: ['tspg'],
  scope: 'Namespaced',
  description: 'A pool of Tailscale proxies shared by gateways.',
  spec: TailscaleProxyGroupSpec,
  status: TailscaleProxyGroupStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'ingress or egress.' },
    { name: 'Tailnet', type: 'string', jsonPath: '.spec.tailnet', description: 'TailscaleTailnet in use.' },
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas', description: 'Desired proxies.' },
    {
      name: 'Ready Replicas',
      type: 'integer',
      jsonPath: '.status.readyReplicas',
      description: 'Ready proxies.',
    },
    readyColumn,
    ageColumn,
  ],
};
