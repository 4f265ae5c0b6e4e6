/**
 * TailscaleProxyGroup's desired proxy set and status, pure. A ProxyGroup is one StatefulSet of
 * interchangeable proxies with hostnames `<hostnamePrefix>-<i>`, spread over nodes (soft pod
 * anti-affinity) and protected by a PodDisruptionBudget. Ingress groups run in userspace with a serve
 * config, sharing one certificate per HTTPS name (src/proxy/objects.ts); egress groups in kernel mode
 * with an egress config.
 *
 * Sharing: every TailscaleEndpoints in the group's namespace whose `spec.proxy.proxyGroup` names the
 * group, whose connectionType is the group's type and whose tailnet is the group's, is a member. The
 * group carries the members' configuration, aggregated deterministically (`aggregateMembers`): members
 * claim ports (ingress) and egress Service names (egress) oldest first (creationTimestamp, then name,
 * as Gateway API resolves conflicts), so a new object can never take a port from one already served;
 * an endpoint whose port or Service is taken is left out and listed as a conflict of its object. The
 * outputs (serve config, egress config, Services, status) are ordered by port, Service and name.
 *
 * @module
 */

import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import {
  type Checked,
  checkResource,
  type TailscaleEndpoints,
  type TailscaleProxyGroup,
  type TailscaleProxyGroupStatus,
} from '../../api/index.ts';
import { MAX_MEMBERS } from '../../api/tailscale-proxy-group.ts';
import { type Condition, parentLabels } from '../../controller-runtime/index.ts';
import { createdMs, keyOf, namespaceOf } from '../../kube/index.ts';
import { objectHash } from '../../proxy/compare.ts';
import {
  EGRESS_PORT_RANGE,
  type EgressRoute,
  egressConfig,
  egressPorts,
  egressRoutes,
  type IngressRoute,
  ingressRoutes,
  serveConfig,
} from '../../proxy/config.ts';
import { buildEgressEndpointSlice, buildEgressService, podAddresses } from '../../proxy/egress-services.ts';
import { proxyBaseName } from '../../proxy/names.ts';
import type { ProxySet } from '../../proxy/objects.ts';
import { conflictText, membershipProblem, proxyGroupKeyOf } from '../../proxy/parents.ts';
import type { ServiceHostingPlan } from '../../proxy/service-hosting.ts';
import { ourConditionsEqual, type ProxySetStatus, proxyConditions } from '../../proxy/status.ts';
import type { SyncProblem } from '../../proxy/sync.ts';

/** `TS_INTERNAL_APP` of group replicas: the official operator's values (see INTERNAL_APP). */
export const PROXY_GROUP_APP = {
  ingress: 'k8s-operator-proxygroup-ingress',
  egress: 'k8s-operator-proxygroup-egress',
} as const;

export interface ProxyGroupOptions {
  operatorNamespace: string;
  image: string;
  serverUrl: string;
}

/** A TailscaleEndpoints the group serves, and what of it the group carries. */
export interface ProxyGroupMember {
  name: string;
  /** Ingress ports or egress Services of the object in the group's config. */
  routes: number;
  /** Endpoints left out, each with the object that holds its port or Service. */
  conflicts: string[];
}

export interface GroupAggregate {
  /** Sorted by name. */
  members: ProxyGroupMember[];
  /** Ingress: the serve routes of every member, sorted by port. */
  ingress: IngressRoute[];
  /** Egress: the routes of every member, sorted by Service name, container ports allocated group-wide. */
  egress: EgressRoute[];
}

export const EMPTY_AGGREGATE: GroupAggregate = { members: [], ingress: [], egress: [] };

/** Objects without a creation time sort last. */
const createdAt = (obj: KubernetesObject) => createdMs(obj) ?? Number.MAX_SAFE_INTEGER;

/**
 * The members of `group` among `candidates` (TailscaleEndpoints as cached), in claim order: oldest
 * first, then by name. Objects being deleted, invalid ones and those of another type or tailnet are not
 * members (their own status says why).
 */
export function groupMembers(
  group: TailscaleProxyGroup,
  candidates: readonly KubernetesObject[],
  check: (raw: KubernetesObject) => Checked<TailscaleEndpoints> = (raw) =>
    checkResource('TailscaleEndpoints', raw),
): TailscaleEndpoints[] {
  const key = keyOf(namespaceOf(group), group.metadata.name);
  const members: { endpoints: TailscaleEndpoints; created: number }[] = [];
  for (const raw of candidates) {
    if (proxyGroupKeyOf(raw) !== key || raw.metadata?.deletionTimestamp) continue;
    const checked = check(raw);
    if (!checked.ok) continue;
    const endpoints = checked.value;
    if (membershipProblem(group, endpoints)) continue;
    members.push({ endpoints, created: createdAt(raw) });
  }
  return members
    .sort(
      (a, b) => a.created - b.created || a.endpoints.metadata.name.localeCompare(b.endpoints.metadata.name),
    )
    .slice(0, MAX_MEMBERS)
    .map((m) => m.endpoints);
}

/**
 * The configuration the group's proxies carry for `members` (in claim order, as `groupMembers` gives
 * them). Ingress: each member's serve routes (its own rules: externalTarget or ingressService, no UDP,
 * one endpoint per port), a port already claimed by an earlier member is a conflict. Egress: each
 * member's egress routes under the Service names `egressServiceName` gives; a Service name already
 * claimed, or more Services than container ports, is a conflict; container ports are allocated over
 * the whole group so members never share one.
 */
export function aggregateMembers(
  group: TailscaleProxyGroup,
  members: readonly TailscaleEndpoints[],
  clusterDomain: string,
): GroupAggregate {
  const namespace = namespaceOf(group);
  const verdicts: ProxyGroupMember[] = [];
  const ingress: IngressRoute[] = [];
  const egress: EgressRoute[] = [];
  const portHolder = new Map<number, string>();
  const serviceHolder = new Map<string, string>();
  for (const endpoints of members) {
    const name = endpoints.metadata.name;
    const verdict: ProxyGroupMember = { name, routes: 0, conflicts: [] };
    if (group.spec.type === 'ingress') {
      const { routes } = ingressRoutes(
        endpoints.spec.endpoints,
        endpoints.spec.proxy?.ingressService,
        namespace,
        clusterDomain,
      );
      for (const route of routes) {
        const holder = portHolder.get(route.port);
        if (holder !== undefined) {
          verdict.conflicts.push(
            conflictText(
              route.endpoint,
              `port ${route.port} is already served for TailscaleEndpoints ${holder}`,
            ),
          );
          continue;
        }
        portHolder.set(route.port, name);
        ingress.push(route);
        verdict.routes++;
      }
    } else {
      for (const route of egressRoutesOf(endpoints)) {
        const holder = serviceHolder.get(route.serviceName);
        if (holder !== undefined) {
          verdict.conflicts.push(
            conflictText(
              route.endpoint,
              `egress Service ${route.serviceName} is already used by TailscaleEndpoints ${holder}`,
            ),
          );
          continue;
        }
        if (serviceHolder.size >= EGRESS_PORT_RANGE) {
          verdict.conflicts.push(
            conflictText(
              route.endpoint,
              `the group has no free container port (at most ${EGRESS_PORT_RANGE} egress Services)`,
            ),
          );
          continue;
        }
        serviceHolder.set(route.serviceName, name);
        egress.push(route);
        verdict.routes++;
      }
    }
    verdicts.push(verdict);
  }
  const ports = egressPorts(egress.map((route) => route.serviceName));
  return {
    members: verdicts.sort((a, b) => a.name.localeCompare(b.name)),
    ingress: ingress.sort((a, b) => a.port - b.port),
    egress: egress
      .map((route) => ({ ...route, matchPort: ports.get(route.serviceName)! }))
      .sort((a, b) => a.serviceName.localeCompare(b.serviceName)),
  };
}

const egressRoutesOf = (endpoints: TailscaleEndpoints) =>
  egressRoutes(endpoints.metadata.name, endpoints.spec.endpoints);

export function desiredProxyGroupSet(
  group: TailscaleProxyGroup,
  options: ProxyGroupOptions,
  aggregate: GroupAggregate = EMPTY_AGGREGATE,
  hosting?: ServiceHostingPlan,
): ProxySet {
  const namespace = namespaceOf(group);
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
    labels: parentLabels(group),
    ...(group.spec.resources ? { resources: group.spec.resources } : {}),
    ...(group.spec.nodeSelector ? { nodeSelector: group.spec.nodeSelector } : {}),
    ...(group.spec.tolerations ? { tolerations: group.spec.tolerations } : {}),
    ...(group.spec.affinity ? { affinity: group.spec.affinity } : {}),
    ...(group.spec.priorityClassName ? { priorityClassName: group.spec.priorityClassName } : {}),
    ...(group.spec.topologySpreadConstraints
      ? { topologySpreadConstraints: group.spec.topologySpreadConstraints }
      : {}),
    ...(type === 'ingress'
      ? {
          serveConfig: {
            ...serveConfig(aggregate.ingress),
            ...(hosting && Object.keys(hosting.serveServices).length > 0
              ? { Services: hosting.serveServices }
              : {}),
          },
          advertiseServices: [],
          ...(hosting?.advertise.some((list) => list.length > 0)
            ? { advertiseServicesByReplica: hosting.advertise }
            : {}),
          certShare: true,
          ...(hosting && hosting.certDomains.length > 0 ? { certDomains: hosting.certDomains } : {}),
        }
      : { egressConfig: egressConfig(aggregate.egress), egressRoutes: aggregate.egress }),
    highAvailability: true,
  };
}

/**
 * An egress group's Services, one per member endpoint, in the group's (= the members') namespace under
 * the names `egressServiceName` gives, with EndpointSlices pointing at the group's Pods.
 */
export function groupEgressServiceObjects(
  group: TailscaleProxyGroup,
  set: ProxySet,
  aggregate: GroupAggregate,
  pods: readonly V1Pod[],
): KubernetesObject[] {
  if (group.spec.type !== 'egress') return [];
  const namespace = namespaceOf(group);
  const labels = parentLabels(group);
  const addresses = podAddresses(pods);
  return aggregate.egress.flatMap((route) => [
    buildEgressService(route, namespace, labels),
    buildEgressEndpointSlice(route, namespace, labels, addresses, set.namespace),
  ]);
}

export interface ProxyGroupStatusVerdict {
  status: Pick<TailscaleProxyGroupStatus, 'conditions' | 'readyReplicas' | 'devices' | 'tailscaleEndpoints'>;
  ready: boolean;
}

export function desiredProxyGroupStatus(
  group: TailscaleProxyGroup,
  set: ProxySetStatus,
  problems: SyncProblem[],
  now: Date,
  members: readonly ProxyGroupMember[] = [],
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
      ...(members.length > 0
        ? {
            tailscaleEndpoints: members.map((m) => ({
              name: m.name,
              routes: m.routes,
              ...(m.conflicts.length > 0 ? { conflicts: m.conflicts.slice(0, 64) } : {}),
            })),
          }
        : {}),
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
    objectHash(current?.devices ?? []) === objectHash(desired.devices ?? []) &&
    objectHash(current?.tailscaleEndpoints ?? []) === objectHash(desired.tailscaleEndpoints ?? [])
  );
}
