/**
 * TailscaleEndpoints' desired proxies and status, pure: from the object (and, for the egress
 * EndpointSlices, the proxy Pods) to the proxy sets and extra objects `syncProxies` brings about, and
 * from what the state Secrets say to the status. No I/O, so every shape is tested without a cluster.
 *
 * connectionType → proxy sets: `ingress` one userspace set serving the tailnet; `egress` one kernel-mode
 * set forwarding to the tailnet (DNAT needs netfilter); `bidirectional` both. With
 * `spec.proxy.proxyGroup` the object has no proxies of its own: the TailscaleProxyGroup carries its
 * configuration, and `desiredGroupMemberStatus` reports which group serves it and how the group is doing.
 *
 * @module
 */

import type { KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import type {
  Endpoint,
  TailscaleEndpoints,
  TailscaleEndpointsStatus,
  TailscaleProxyGroup,
} from '../../api/index.ts';
import {
  type Condition,
  conditionTime,
  isConditionTrue,
  parentLabels,
} from '../../controller-runtime/index.ts';
import { namespaceOf } from '../../kube/index.ts';
import { egressServiceName } from '../../model/egress-target.ts';
import { objectHash } from '../../proxy/compare.ts';
import {
  type EgressRoute,
  egressConfig,
  egressRoutes,
  ingressRoutes,
  serveConfig,
} from '../../proxy/config.ts';
import { buildEgressEndpointSlice, buildEgressService, podAddresses } from '../../proxy/egress-services.ts';
import { hostnamePrefixOf, proxyBaseName } from '../../proxy/names.ts';
import type { ProxySet, ProxyType } from '../../proxy/objects.ts';
import { conflictEndpointOf, membershipProblem } from '../../proxy/parents.ts';
import {
  CONDITION_READY,
  ourConditionsEqual,
  type ProxySetStatus,
  proxyConditions,
  readyConditions,
} from '../../proxy/status.ts';
import type { SyncProblem } from '../../proxy/sync.ts';
import { OFFLINE_PRIORITY } from '../../tailnet-discovery/index.ts';

/**
 * `TS_INTERNAL_APP`, reported to control as `Hostinfo.App`. tailscaled keeps only values on its
 * allow-list (`envknob.App()`, the official operator's `kube/kubetypes` names) and drops any other
 * without a word, so ours are the official operator's for the same kind of proxy.
 */
export const INTERNAL_APP = {
  ingress: 'k8s-operator-ingress-proxy',
  egress: 'k8s-operator-egress-proxy',
} as const;

export interface EndpointsProxyOptions {
  operatorNamespace: string;
  image: string;
  serverUrl: string;
  clusterDomain: string;
}

export interface EndpointsProxies {
  sets: ProxySet[];
  /** The egress routes (Service, port, matchPort per endpoint), empty without egress. */
  egress: EgressRoute[];
  /** Endpoints a direction cannot carry, for the condition message. */
  notes: string[];
}

const typesOf = (connectionType: string): ProxyType[] =>
  connectionType === 'ingress'
    ? ['ingress']
    : connectionType === 'egress'
      ? ['egress']
      : ['ingress', 'egress'];

export function desiredEndpointsProxies(
  endpoints: TailscaleEndpoints,
  options: EndpointsProxyOptions,
): EndpointsProxies {
  const namespace = namespaceOf(endpoints);
  const name = endpoints.metadata.name;
  const proxy = endpoints.spec.proxy ?? {};
  const replicas = proxy.replicas ?? 2;
  const labels = parentLabels(endpoints);
  const notes: string[] = [];
  let egress: EgressRoute[] = [];
  const sets = typesOf(proxy.connectionType ?? 'bidirectional').map((type): ProxySet => {
    const base = proxyBaseName(namespace, name, type);
    const prefix = hostnamePrefixOf(namespace, name, type);
    const set: ProxySet = {
      base,
      namespace: options.operatorNamespace,
      type,
      mode: type === 'egress' ? 'kernel' : 'userspace',
      replicas,
      hostnames: Array.from({ length: replicas }, (_, i) => `${prefix}-${i}`),
      tailnet: endpoints.spec.tailnet,
      image: proxy.image ?? options.image,
      app: INTERNAL_APP[type],
      serverUrl: options.serverUrl,
      labels,
      ...(proxy.resources ? { resources: proxy.resources } : {}),
      ...(proxy.nodeSelector ? { nodeSelector: proxy.nodeSelector } : {}),
      ...(proxy.tolerations ? { tolerations: proxy.tolerations } : {}),
      ...(proxy.affinity ? { affinity: proxy.affinity } : {}),
      ...(proxy.priorityClassName ? { priorityClassName: proxy.priorityClassName } : {}),
      ...(proxy.topologySpreadConstraints
        ? { topologySpreadConstraints: proxy.topologySpreadConstraints }
        : {}),
    };
    if (type === 'ingress') {
      const ingress = ingressRoutes(
        endpoints.spec.endpoints,
        proxy.ingressService,
        namespace,
        options.clusterDomain,
      );
      for (const s of ingress.skipped) notes.push(`ingress skips ${s.endpoint}: ${s.reason}`);
      set.serveConfig = serveConfig(ingress.routes);
    } else {
      const routes = egressRoutes(name, endpoints.spec.endpoints);
      egress = routes;
      set.egressRoutes = routes;
      set.egressConfig = egressConfig(routes);
    }
    return set;
  });
  return { sets, egress, notes };
}

/** The egress Services and EndpointSlices in the TailscaleEndpoints' namespace. */
export function egressServiceObjects(
  endpoints: TailscaleEndpoints,
  proxies: EndpointsProxies,
  egressPods: readonly V1Pod[],
): KubernetesObject[] {
  const egressSet = proxies.sets.find((s) => s.type === 'egress');
  if (!egressSet) return [];
  const namespace = namespaceOf(endpoints);
  const labels = parentLabels(endpoints);
  const addresses = podAddresses(egressPods);
  return proxies.egress.flatMap((route) => [
    buildEgressService(route, namespace, labels),
    buildEgressEndpointSlice(route, namespace, labels, addresses, egressSet.namespace),
  ]);
}

/** Device ids the current status records, by Pod name: a device that exists needs no new key. */
export function knownDevicesOf(
  status: { proxies?: { devices?: { podName?: string; nodeId?: string }[] }[] } | undefined,
) {
  const known = new Map<string, string>();
  for (const proxy of status?.proxies ?? [])
    for (const device of proxy.devices ?? [])
      if (device.podName && device.nodeId) known.set(device.podName, device.nodeId);
  return known;
}

export interface EndpointsStatusVerdict {
  status: Pick<
    TailscaleEndpointsStatus,
    'conditions' | 'proxies' | 'proxyGroup' | 'totalEndpoints' | 'healthyEndpoints' | 'endpoints'
  >;
  ready: boolean;
}

export type EndpointHealth = NonNullable<TailscaleEndpointsStatus['endpoints']>[number];

/**
 * One direction of proxies that carries the object's traffic: its own StatefulSet, or the
 * TailscaleProxyGroup it shares. Ingress carries every endpoint (tailnet clients reach each one through
 * it); egress carries the endpoints with a tailnet address (the cluster reaches those through it).
 */
export interface CarrierState {
  type: 'ingress' | 'egress';
  /** For messages: `ingress proxy <StatefulSet>` or `TailscaleProxyGroup <name>`. */
  via: string;
  /** Replicas whose Pod runs with a tailnet device (as `status.proxies` counts them). */
  readyReplicas: number;
  /** Endpoints it should carry but leaves out, with why (UDP on ingress, a port or Service held elsewhere). */
  leftOut: ReadonlyMap<string, string>;
  /** Why it carries nothing of this object at all (a group that is missing, mismatched, not joined yet). */
  unavailable?: string;
}

export interface EndpointHealthInput {
  endpoints: TailscaleEndpoints;
  carriers: readonly CarrierState[];
  /** Entries of spec.endpoints the discovery owns (their device's online state is known). */
  discovered: ReadonlySet<string>;
  now: Date;
}

const onTailnet = (endpoint: Endpoint) =>
  endpoint.tailscaleIP !== undefined || endpoint.tailscaleFQDN !== undefined;

/**
 * Health of each endpoint as far as the operator can know it: Healthy when every proxy that should
 * carry the endpoint carries it with at least one replica ready (and, for a discovered endpoint, its
 * device was online at the last discovery sync); Unhealthy when one of them has no replica ready or
 * leaves it out, or its discovered device is offline; Unknown when no proxy of the operator carries it
 * (the cluster reaches it directly). Envoy's active health checks are Envoy's own and not seen here.
 * A lastTransitionTime is kept while the health stays the same.
 */
export function endpointHealth(
  input: EndpointHealthInput,
  previous: TailscaleEndpointsStatus['endpoints'],
): EndpointHealth[] {
  const before = new Map((previous ?? []).map((e) => [e.name, e]));
  return [...input.endpoints.spec.endpoints]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((endpoint) => {
      const { health, message } = healthOf(endpoint, input);
      const last = before.get(endpoint.name);
      const lastTransitionTime =
        last?.health === health && last.lastTransitionTime
          ? last.lastTransitionTime
          : conditionTime(input.now);
      return { name: endpoint.name, health, lastTransitionTime, message: message.slice(0, 1024) };
    });
}

function healthOf(
  endpoint: Endpoint,
  input: EndpointHealthInput,
): { health: EndpointHealth['health']; message: string } {
  if (input.discovered.has(endpoint.name) && endpoint.priority === OFFLINE_PRIORITY)
    return { health: 'Unhealthy', message: 'its device was offline at the last discovery sync' };
  const carriers = input.carriers.filter((c) => c.type === 'ingress' || onTailnet(endpoint));
  if (carriers.length === 0) {
    const target = endpoint.externalTarget ?? endpoint.tailscaleIP ?? endpoint.tailscaleFQDN ?? '';
    return {
      health: 'Unknown',
      message: `no proxy of the operator carries it; traffic goes to ${target} directly`,
    };
  }
  for (const carrier of carriers) {
    if (carrier.unavailable) return { health: 'Unhealthy', message: carrier.unavailable };
    const why = carrier.leftOut.get(endpoint.name);
    if (why !== undefined) return { health: 'Unhealthy', message: `${carrier.via} leaves it out: ${why}` };
    if (carrier.readyReplicas === 0)
      return { health: 'Unhealthy', message: `${carrier.via} has no replica ready` };
  }
  return { health: 'Healthy', message: `carried by ${carriers.map((c) => c.via).join(' and ')}` };
}

/** `totalEndpoints`, `healthyEndpoints` and `endpoints` from the health of each endpoint. */
export function healthStatus(
  health: readonly EndpointHealth[],
): Pick<EndpointsStatusVerdict['status'], 'totalEndpoints' | 'healthyEndpoints' | 'endpoints'> {
  return {
    totalEndpoints: health.length,
    healthyEndpoints: health.filter((e) => e.health === 'Healthy').length,
    ...(health.length > 0 ? { endpoints: [...health] } : {}),
  };
}

/**
 * The carriers of an object running its own proxies: each set with its ready replicas; ingress leaves
 * out what `ingressRoutes` skips, egress the endpoints whose egress Service another object holds
 * (`heldServices`, `namespace/name`).
 */
export function ownCarriers(
  endpoints: TailscaleEndpoints,
  sets: readonly ProxySetStatus[],
  clusterDomain: string,
  heldServices: readonly string[],
): CarrierState[] {
  const namespace = namespaceOf(endpoints);
  return sets.map((set): CarrierState => {
    const leftOut = new Map<string, string>();
    if (set.connectionType === 'ingress') {
      for (const [endpoint, reason] of ingressLeftOut(endpoints, clusterDomain))
        leftOut.set(endpoint, reason);
    } else {
      const held = new Set(heldServices);
      for (const endpoint of endpoints.spec.endpoints) {
        const service = `${namespace}/${egressServiceName(endpoints.metadata.name, endpoint.name)}`;
        if (held.has(service))
          leftOut.set(endpoint.name, `egress Service ${service} is held by another object`);
      }
    }
    return {
      type: set.connectionType,
      via: `${set.connectionType} proxy ${set.statefulSetName}`,
      readyReplicas: set.readyReplicas,
      leftOut,
    };
  });
}

/** The endpoints an ingress proxy of the object skips (UDP, no target, a port taken), with why. */
function ingressLeftOut(endpoints: TailscaleEndpoints, clusterDomain: string): Map<string, string> {
  const { skipped } = ingressRoutes(
    endpoints.spec.endpoints,
    endpoints.spec.proxy?.ingressService,
    namespaceOf(endpoints),
    clusterDomain,
  );
  return new Map(skipped.map((s) => [s.endpoint, s.reason]));
}

/**
 * The one carrier of an object a TailscaleProxyGroup serves: the group with its ready replicas,
 * leaving out what the object's own rules skip and the group lists as its conflicts; unavailable with
 * the reason when the group does not serve the object (`problem`, from `desiredGroupMemberStatus`).
 */
export function groupCarrier(
  endpoints: TailscaleEndpoints,
  observed: GroupObservation,
  clusterDomain: string,
  problem: string | undefined,
): CarrierState {
  const name = endpoints.spec.proxy?.proxyGroup ?? '';
  const type = endpoints.spec.proxy?.connectionType === 'egress' ? 'egress' : 'ingress';
  const leftOut = type === 'ingress' ? ingressLeftOut(endpoints, clusterDomain) : new Map<string, string>();
  const member = observed.group?.status?.tailscaleEndpoints?.find((m) => m.name === endpoints.metadata.name);
  for (const conflict of member?.conflicts ?? []) {
    const endpoint = conflictEndpointOf(conflict);
    if (endpoint !== undefined) leftOut.set(endpoint.name, endpoint.reason);
  }
  return {
    type,
    via: `TailscaleProxyGroup ${name}`,
    readyReplicas: observed.deleting ? 0 : (observed.group?.status?.readyReplicas ?? 0),
    leftOut,
    ...(problem !== undefined ? { unavailable: problem } : {}),
  };
}

/** What endpoint health needs beyond the object and its proxies. */
export interface HealthContext {
  /** Entries of spec.endpoints the discovery owns (`endpointNamesOwnedBy`). */
  discovered: ReadonlySet<string>;
  clusterDomain: string;
  /** Egress Services (`namespace/name`) another object holds (`SyncResult.heldByOthers`). */
  heldServices?: readonly string[];
}

/**
 * The part of the status the proxies own: `proxies`, the conditions `ProxiesReady` and `Ready`, and the
 * endpoints' health (`totalEndpoints`, `healthyEndpoints`, `endpoints`).
 */
export function desiredEndpointsStatus(
  endpoints: TailscaleEndpoints,
  sets: ProxySetStatus[],
  problems: SyncProblem[],
  notes: string[],
  now: Date,
  context: HealthContext,
): EndpointsStatusVerdict {
  const { conditions, ready } = proxyConditions({
    sets,
    problems,
    notes,
    ...(endpoints.metadata.generation === undefined ? {} : { generation: endpoints.metadata.generation }),
    previous: endpoints.status?.conditions as Condition[] | undefined,
    now,
  });
  return {
    status: {
      conditions,
      proxies: sets.map((s) => ({
        statefulSetName: s.statefulSetName,
        connectionType: s.connectionType,
        replicas: s.replicas,
        readyReplicas: s.readyReplicas,
        ...(s.devices.length > 0 ? { devices: s.devices } : {}),
      })),
      ...healthStatus(
        endpointHealth(
          {
            endpoints,
            carriers: ownCarriers(endpoints, sets, context.clusterDomain, context.heldServices ?? []),
            discovered: context.discovered,
            now,
          },
          endpoints.status?.endpoints,
        ),
      ),
    },
    ready,
  };
}

/** What the object's own rules leave out of a group's config (UDP, no target, a repeated port). */
export function groupMemberNotes(endpoints: TailscaleEndpoints, clusterDomain: string): string[] {
  if (endpoints.spec.proxy?.connectionType !== 'ingress') return [];
  const namespace = namespaceOf(endpoints);
  return ingressRoutes(
    endpoints.spec.endpoints,
    endpoints.spec.proxy.ingressService,
    namespace,
    clusterDomain,
  ).skipped.map((s) => `ingress skips ${s.endpoint}: ${s.reason}`);
}

export interface GroupObservation {
  /** The group `spec.proxy.proxyGroup` names, validated; undefined when it does not exist. */
  group: TailscaleProxyGroup | undefined;
  /** It exists but does not match the schema. */
  invalid?: boolean;
  /** It is being deleted. */
  deleting?: boolean;
}

/**
 * Status of an object served by a TailscaleProxyGroup: `proxyGroup` (name, readiness, replicas) and
 * `ProxiesReady`/`Ready`, True only when the group exists, matches the object (type and tailnet), lists
 * it in `status.tailscaleEndpoints` without conflicts, and is Ready itself. `problems` are those of
 * removing proxies the object ran before it joined the group.
 */
export function desiredGroupMemberStatus(
  endpoints: TailscaleEndpoints,
  observed: GroupObservation,
  problems: SyncProblem[],
  notes: string[],
  now: Date,
  context: HealthContext,
): EndpointsStatusVerdict {
  const name = endpoints.spec.proxy?.proxyGroup ?? '';
  const namespace = namespaceOf(endpoints);
  const { group } = observed;
  const groupReady = group !== undefined && isConditionTrue(group.status?.conditions, CONDITION_READY);
  const member = group?.status?.tailscaleEndpoints?.find((m) => m.name === endpoints.metadata.name);
  const mismatch = group ? membershipProblem(group, endpoints) : undefined;
  // Why the group carries nothing of this object, if it does not.
  let unavailable: { reason: string; message: string } | undefined;
  if (observed.invalid)
    unavailable = {
      reason: 'ProxyGroupInvalid',
      message: `TailscaleProxyGroup ${name} does not match its schema; no proxies carry this object's traffic`,
    };
  else if (!group)
    unavailable = {
      reason: 'ProxyGroupNotFound',
      message: `TailscaleProxyGroup ${name} does not exist in namespace ${namespace}; no proxies carry this object's traffic`,
    };
  else if (observed.deleting)
    unavailable = {
      reason: 'ProxyGroupDeleting',
      message: `TailscaleProxyGroup ${name} is being deleted; its proxies no longer carry this object's traffic`,
    };
  else if (mismatch) unavailable = mismatch;
  else if (!member)
    unavailable = {
      reason: 'ProxyGroupNotReady',
      message: `TailscaleProxyGroup ${name} has not taken this object's configuration yet`,
    };
  let status: 'True' | 'False' = 'False';
  let reason: string;
  let message: string;
  const first = problems[0];
  if (first) {
    reason = first.reason;
    message = problems.map((p) => p.message).join('; ');
  } else if (unavailable) {
    ({ reason, message } = unavailable);
  } else if (member?.conflicts && member.conflicts.length > 0) {
    reason = 'PortConflict';
    message = `TailscaleProxyGroup ${name} leaves out ${member.conflicts.join('; ')}`;
  } else if (!groupReady) {
    reason = 'ProxyGroupNotReady';
    const ready = group?.status?.conditions?.find((c) => c.type === CONDITION_READY);
    message = `TailscaleProxyGroup ${name} is not ready${ready?.message ? `: ${ready.message}` : ''}`;
  } else {
    status = 'True';
    reason = 'ProxiesReady';
    message = `served by TailscaleProxyGroup ${name}: ${group?.status?.readyReplicas ?? 0}/${group?.spec.replicas ?? 2} proxies ready`;
  }
  const { conditions, ready } = readyConditions({
    status,
    reason,
    message: notes.length > 0 ? `${message}; ${notes.join('; ')}` : message,
    ...(endpoints.metadata.generation === undefined ? {} : { generation: endpoints.metadata.generation }),
    previous: endpoints.status?.conditions as Condition[] | undefined,
    now,
  });
  return {
    status: {
      conditions,
      proxyGroup: {
        name,
        ready,
        ...(group && !observed.deleting
          ? { replicas: group.spec.replicas ?? 2, readyReplicas: group.status?.readyReplicas ?? 0 }
          : {}),
      },
      ...healthStatus(
        endpointHealth(
          {
            endpoints,
            carriers: [groupCarrier(endpoints, observed, context.clusterDomain, unavailable?.message)],
            discovered: context.discovered,
            now,
          },
          endpoints.status?.endpoints,
        ),
      ),
    },
    ready,
  };
}

/** Whether writing `desired` would change what the proxies own in `current`. */
export function endpointsStatusEqual(
  current: TailscaleEndpointsStatus | undefined,
  desired: EndpointsStatusVerdict['status'],
): boolean {
  return (
    ourConditionsEqual(current?.conditions as Condition[] | undefined, desired.conditions as Condition[]) &&
    objectHash(current?.proxies ?? []) === objectHash(desired.proxies ?? []) &&
    objectHash(current?.proxyGroup ?? null) === objectHash(desired.proxyGroup ?? null) &&
    current?.totalEndpoints === desired.totalEndpoints &&
    current?.healthyEndpoints === desired.healthyEndpoints &&
    objectHash(current?.endpoints ?? []) === objectHash(desired.endpoints ?? [])
  );
}

export type StateLookup = (name: string) => V1Secret | undefined;
