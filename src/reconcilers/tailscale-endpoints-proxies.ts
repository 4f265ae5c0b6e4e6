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
import type { TailscaleEndpoints, TailscaleEndpointsStatus, TailscaleProxyGroup } from '../api/index.ts';
import { type Condition, isConditionTrue, parentLabels } from '../controller/index.ts';
import { objectHash } from '../proxy/compare.ts';
import { type EgressRoute, egressConfig, egressRoutes, ingressRoutes, serveConfig } from '../proxy/config.ts';
import { buildEgressEndpointSlice, buildEgressService, podAddresses } from '../proxy/egress-services.ts';
import { hostnamePrefixOf, proxyBaseName } from '../proxy/names.ts';
import type { ProxySet, ProxyType } from '../proxy/objects.ts';
import {
  CONDITION_READY,
  ourConditionsEqual,
  type ProxySetStatus,
  proxyConditions,
  readyConditions,
} from '../proxy/status.ts';
import type { SyncProblem } from '../proxy/sync.ts';
import { DEFAULT_NAMESPACE } from '../store/resource-store.ts';
import { membershipProblem } from './tailscale-proxy-group-proxies.ts';

export const INTERNAL_APP = {
  ingress: 'tailscale-gateway-ingress-proxy',
  egress: 'tailscale-gateway-egress-proxy',
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
  const namespace = endpoints.metadata.namespace ?? DEFAULT_NAMESPACE;
  const name = endpoints.metadata.name;
  const proxy = endpoints.spec.proxy ?? {};
  const replicas = proxy.replicas ?? 2;
  const labels = parentLabels(endpoints as unknown as KubernetesObject);
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
  const namespace = endpoints.metadata.namespace ?? DEFAULT_NAMESPACE;
  const labels = parentLabels(endpoints as unknown as KubernetesObject);
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
  status: Pick<TailscaleEndpointsStatus, 'conditions' | 'proxies' | 'proxyGroup'>;
  ready: boolean;
}

/** The part of the status the proxies own: `proxies` and the conditions `ProxiesReady` and `Ready`. */
export function desiredEndpointsStatus(
  endpoints: TailscaleEndpoints,
  sets: ProxySetStatus[],
  problems: SyncProblem[],
  notes: string[],
  now: Date,
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
    },
    ready,
  };
}

/** What the object's own rules leave out of a group's config (UDP, no target, a repeated port). */
export function groupMemberNotes(endpoints: TailscaleEndpoints, clusterDomain: string): string[] {
  if (endpoints.spec.proxy?.connectionType !== 'ingress') return [];
  const namespace = endpoints.metadata.namespace ?? DEFAULT_NAMESPACE;
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
): EndpointsStatusVerdict {
  const name = endpoints.spec.proxy?.proxyGroup ?? '';
  const namespace = endpoints.metadata.namespace ?? DEFAULT_NAMESPACE;
  const { group } = observed;
  const groupReady = group !== undefined && isConditionTrue(group.status?.conditions, CONDITION_READY);
  const member = group?.status?.tailscaleEndpoints?.find((m) => m.name === endpoints.metadata.name);
  const mismatch = group ? membershipProblem(group, endpoints) : undefined;
  let status: 'True' | 'False' = 'False';
  let reason: string;
  let message: string;
  const first = problems[0];
  if (first) {
    reason = first.reason;
    message = problems.map((p) => p.message).join('; ');
  } else if (observed.invalid) {
    reason = 'ProxyGroupInvalid';
    message = `TailscaleProxyGroup ${name} does not match its schema; no proxies carry this object's traffic`;
  } else if (!group) {
    reason = 'ProxyGroupNotFound';
    message = `TailscaleProxyGroup ${name} does not exist in namespace ${namespace}; no proxies carry this object's traffic`;
  } else if (observed.deleting) {
    reason = 'ProxyGroupDeleting';
    message = `TailscaleProxyGroup ${name} is being deleted; its proxies no longer carry this object's traffic`;
  } else if (mismatch) {
    ({ reason, message } = mismatch);
  } else if (!member) {
    reason = 'ProxyGroupNotReady';
    message = `TailscaleProxyGroup ${name} has not taken this object's configuration yet`;
  } else if (member.conflicts && member.conflicts.length > 0) {
    reason = 'PortConflict';
    message = `TailscaleProxyGroup ${name} leaves out ${member.conflicts.join('; ')}`;
  } else if (!groupReady) {
    reason = 'ProxyGroupNotReady';
    const ready = group.status?.conditions?.find((c) => c.type === CONDITION_READY);
    message = `TailscaleProxyGroup ${name} is not ready${ready?.message ? `: ${ready.message}` : ''}`;
  } else {
    status = 'True';
    reason = 'ProxiesReady';
    message = `served by TailscaleProxyGroup ${name}: ${group.status?.readyReplicas ?? 0}/${group.spec.replicas ?? 2} proxies ready`;
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
    objectHash(current?.proxyGroup ?? null) === objectHash(desired.proxyGroup ?? null)
  );
}

export type StateLookup = (name: string) => V1Secret | undefined;
