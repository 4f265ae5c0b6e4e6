/**
 * TailscaleProxyGroup's desired proxy set and status, pure. A ProxyGroup is one StatefulSet of
 * interchangeable proxies with hostnames `<hostnamePrefix>-<i>`, spread over nodes (soft pod
 * anti-affinity) and protected by a PodDisruptionBudget. Ingress groups run in userspace with an (empty
 * until Services are attached) serve config; egress groups in kernel mode with an egress config.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { TailscaleProxyGroup, TailscaleProxyGroupStatus } from '../api/index.ts';
import { type Condition, parentLabels } from '../controller/index.ts';
import { objectHash } from '../proxy/compare.ts';
import { proxyBaseName } from '../proxy/names.ts';
import type { ProxySet } from '../proxy/objects.ts';
import { ourConditionsEqual, type ProxySetStatus, proxyConditions } from '../proxy/status.ts';
import type { SyncProblem } from '../proxy/sync.ts';
import { DEFAULT_NAMESPACE } from '../store/resource-store.ts';

export const PROXY_GROUP_APP = {
  ingress: 'tailscale-gateway-proxygroup-ingress',
  egress: 'tailscale-gateway-proxygroup-egress',
} as const;

export interface ProxyGroupOptions {
  operatorNamespace: string;
  image: string;
  serverUrl: string;
}

export function desiredProxyGroupSet(group: TailscaleProxyGroup, options: ProxyGroupOptions): ProxySet {
  const namespace = group.metadata.namespace ?? DEFAULT_NAMESPACE;
  const type = group.spec.type;
  const replicas = group.spec.replicas ?? 2;
  const prefix = group.spec.hostnamePrefix ?? group.metadata.name;
  return {
    base: proxyBaseName(namespace, group.metadata.name, 'pg'),
    namespace: options.operatorNamespace,
    type,
    mode: type === 'egress' ? 'kernel' : 'userspace',
    replicas,
    hostnames: Array.from({ length: replicas }, (_, i) => `${prefix}-${i}`),
    tailnet: group.spec.tailnet,
    image: group.spec.image ?? options.image,
    app: PROXY_GROUP_APP[type],
    serverUrl: options.serverUrl,
    labels: parentLabels(group as unknown as KubernetesObject),
    ...(group.spec.resources ? { resources: group.spec.resources } : {}),
    ...(type === 'ingress' ? { serveConfig: {}, advertiseServices: [] } : { egressConfig: {} }),
    highAvailability: true,
  };
}

export interface ProxyGroupStatusVerdict {
  status: Pick<TailscaleProxyGroupStatus, 'conditions' | 'readyReplicas' | 'devices'>;
  ready: boolean;
}

export function desiredProxyGroupStatus(
  group: TailscaleProxyGroup,
  set: ProxySetStatus,
  problems: SyncProblem[],
  now: Date,
): ProxyGroupStatusVerdict {
  const { conditions, ready } = proxyConditions({
    sets: [set],
    problems,
    notes: [],
    ...(group.metadata.generation === undefined ? {} : { generation: group.metadata.generation }),
    previous: group.status?.conditions as Condition[] | undefined,
    now,
  });
  return {
    status: {
      conditions,
      readyReplicas: set.readyReplicas,
      ...(set.devices.length > 0 ? { devices: set.devices } : {}),
    },
    ready,
  };
}

export function proxyGroupStatusEqual(
  current: TailscaleProxyGroupStatus | undefined,
  desired: ProxyGroupStatusVerdict['status'],
): boolean {
  return (
    ourConditionsEqual(current?.conditions as Condition[] | undefined, desired.conditions as Condition[]) &&
    current?.readyReplicas === desired.readyReplicas &&
    objectHash(current?.devices ?? []) === objectHash(desired.devices ?? [])
  );
}
