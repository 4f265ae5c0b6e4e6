/**
 * What both proxy parents (TailscaleEndpoints and TailscaleProxyGroup) share: the reconciler options,
 * `syncProxies` bound to one parent, default tags, the requeue policy, tailnet readiness, and the
 * membership rules a TailscaleEndpoints and the group it names both apply. Beside the engine, so
 * neither parent's folder imports the other's.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { TailscaleEndpoints, TailscaleProxyGroup } from '../api/index.ts';
import type { Clock, EventRecorder, ReconcileResult } from '../controller-runtime/index.ts';
import { type Informer, namespaceOf, type ResourceInformer } from '../kube/index.ts';
import { fieldsOf, listOf, specOf, statusOf } from '../kube/object-fields.ts';
import { keyOf } from '../kube/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import type { ProxyInformers } from './informers.ts';
import type { ProxyKube } from './kube.ts';
import { CONDITION_READY } from './status.ts';
import { type ChildCache, type SyncInput, type SyncResult, type SyncState, syncProxies } from './sync.ts';

/** Transient problems retry with backoff; waiting on something without an event looks again later. */
export function resultOf(result: SyncResult): ReconcileResult | undefined {
  if (result.problems.some((p) => p.transient)) return { requeue: true };
  if (result.problems.length > 0 || result.pruning) return { requeueAfter: RECHECK_MS };
  if (result.requeueAfterMs !== undefined) return { requeueAfter: Math.max(1, result.requeueAfterMs) };
  return undefined;
}

/** Tags for new keys: the object's, else its tailnet's, else `tag:k8s`. */
export function proxyTags(
  own: readonly string[] | undefined,
  tailnet: KubernetesObject | undefined,
): string[] {
  if (own && own.length > 0) return [...own];
  const fromTailnet = listOf(specOf(tailnet).tags).filter((tag): tag is string => typeof tag === 'string');
  return fromTailnet.length > 0 ? fromTailnet : [...DEFAULT_PROXY_TAGS];
}

/**
 * `syncProxies` bound to one parent and one reconcile: the adapters, clock and settings from the
 * reconciler's options, so the TailscaleEndpoints and TailscaleProxyGroup reconcilers wire it alike.
 */
export function parentSync(
  options: ProxyReconcilerOptions,
  parent: { parentType: string; parentKey: string; state: SyncState; signal: AbortSignal; log: Logger },
): (input: ParentSyncInput) => Promise<SyncResult> {
  return (input) =>
    syncProxies({
      ...input,
      extra: input.extra ?? [],
      ...parent,
      cache: options.cache,
      kube: options.kube,
      tailscale: options.tailscale,
      tailnetNotReady: (tailnet) => tailnetNotReady(tailnet, options.getTailnet(tailnet)),
      now: options.clock.now(),
      reissueIntervalMs: options.reissueIntervalMs ?? DEFAULT_REISSUE_INTERVAL_MS,
      ...(options.createdOf ? { createdOf: options.createdOf } : {}),
    }).then((result) => {
      options.onSync?.(parent.parentKey, result);
      return result;
    });
}

/** What a parent decides per pass; everything else `syncProxies` needs comes from the options. */
export type ParentSyncInput = Pick<SyncInput, 'sets' | 'tags' | 'knownDevices'> & {
  extra?: KubernetesObject[];
};

export interface ProxyReconcilerOptions {
  /** The TailscaleTailnet cache, for default tags. */
  getTailnet(name: string): KubernetesObject | undefined;
  /** Children caches (see `createProxyInformers`). */
  cache: ChildCache;
  kube: ProxyKube;
  /** The API client of a Ready TailscaleTailnet (`TailnetClients.current`). */
  tailscale(tailnet: string): TailscaleApi | undefined;
  operatorNamespace: string;
  /** Default `tailscale/tailscale:<DEFAULT_PROXY_TAG>`. */
  image?: string;
  /** Login server written into proxy configs; default https://controlplane.tailscale.com. */
  serverUrl?: string;
  /** Default `cluster.local`. */
  clusterDomain?: string;
  clock: Clock;
  events?: EventRecorder;
  reissueIntervalMs?: number;
  /**
   * A parent's creationTimestamp (ms) by parent type and queue key, from the primary caches: the older
   * of two parents claiming one egress Service name keeps it (`EgressServiceConflict` on the other).
   */
  createdOf?(parentType: string, parentKey: string): number | undefined;
  /** Called after every sync, for tests and benchmarks. */
  onSync?: (key: string, result: SyncResult) => void;
}

/**
 * What the TailscaleEndpoints and TailscaleProxyGroup setups share, built once per term by
 * `resources/proxy-parents.ts`: the caches both read, the reconciler options both take and the watch
 * mappers both need. Each feature's setup creates only its own controller from it, and since the two
 * parents wake each other, both read the same informers.
 */
export interface ProxyParentsShared {
  endpoints: ResourceInformer<'TailscaleEndpoints'>;
  proxyGroups: ResourceInformer<'TailscaleProxyGroup'>;
  tailnets: Informer;
  /** Ingress groups host the Tailscale Services these name; absent, no group hosts any. */
  tailscaleGateways?: ResourceInformer<'TailscaleGateway'>;
  children: ProxyInformers;
  /** The options both reconcilers take (`createdOf` reads both primary caches). */
  reconciler: ProxyReconcilerOptions;
  /** The settings both controllers are created with. */
  controller: { log: Logger; clock: Clock; workers?: number; registry?: Registry };
  /**
   * Keys of the parents claiming an egress Service (or EndpointSlice) by its name: the groups of the
   * claiming TailscaleEndpoints (`forGroups`), or the claiming TailscaleEndpoints that run their own
   * proxies.
   */
  egressClaimants(forGroups: boolean): (child: KubernetesObject) => string[];
  /** Keys of the objects of `informer` that use the given TailscaleTailnet. */
  usingTailnet(informer: Informer): (tailnet: KubernetesObject) => string[];
}

/** While waiting for something no event announces (a tailnet becoming Ready), look again this often. */
export const RECHECK_MS = 60_000;

/** At most one re-issued key per replica in this interval. */
export const DEFAULT_REISSUE_INTERVAL_MS = 60_000;

/** Tags of proxy devices when neither the object nor its tailnet names any (the official default). */
export const DEFAULT_PROXY_TAGS = ['tag:k8s'];

/**
 * Why the TailscaleTailnet `name` (as cached) cannot mint auth keys now, naming it and its own reason;
 * undefined when its Ready condition is True.
 */
export function tailnetNotReady(name: string, tailnet: KubernetesObject | undefined): string | undefined {
  if (!tailnet) return `TailscaleTailnet ${name} does not exist`;
  // The status as stored, read leniently: a check of the whole object would turn a tailnet whose spec
  // fails its schema into another message here, while its controller's Ready condition says why.
  const ready = listOf(statusOf(tailnet).conditions)
    .map(fieldsOf)
    .find((c) => c.type === CONDITION_READY);
  if (ready?.status === 'True') return undefined;
  if (!ready) return `TailscaleTailnet ${name} is not Ready (not checked yet)`;
  const message =
    typeof ready.message === 'string' && ready.message ? `: ${ready.message.slice(0, 512)}` : '';
  return `TailscaleTailnet ${name} is not Ready (${String(ready.reason)}${message})`;
}

/** The endpoint and reason of a conflict written by `conflictText`; undefined for any other text. */
export function conflictEndpointOf(text: string): { name: string; reason: string } | undefined {
  const match = /^endpoint ([a-z0-9]([-a-z0-9]*[a-z0-9])?): (.+)$/.exec(text);
  return match ? { name: match[1]!, reason: match[3]! } : undefined;
}

/**
 * A conflict as `status.tailscaleEndpoints[].conflicts` lists it: the endpoint first, so the member's
 * own reconciler can tell which of its endpoints the group leaves out (`conflictEndpointOf`).
 */
export const conflictText = (endpoint: string, why: string) => `endpoint ${endpoint}: ${why}`;

/** Why a TailscaleEndpoints that names `group` is not served by it; undefined when it is. */
export function membershipProblem(
  group: TailscaleProxyGroup,
  endpoints: TailscaleEndpoints,
): { reason: string; message: string } | undefined {
  const name = group.metadata.name;
  const connectionType = endpoints.spec.proxy?.connectionType ?? 'bidirectional';
  if (connectionType !== group.spec.type)
    return {
      reason: 'ProxyGroupTypeMismatch',
      message: `spec.proxy.connectionType is ${connectionType} but TailscaleProxyGroup ${name} is of type ${group.spec.type}`,
    };
  if (endpoints.spec.tailnet !== group.spec.tailnet)
    return {
      reason: 'ProxyGroupTailnetMismatch',
      message: `spec.tailnet is ${endpoints.spec.tailnet} but TailscaleProxyGroup ${name} joins ${group.spec.tailnet}`,
    };
  return undefined;
}

/** The group a TailscaleEndpoints names, as a queue key, if it names one. */
export function proxyGroupKeyOf(endpoints: KubernetesObject): string | undefined {
  const name = fieldsOf(specOf(endpoints).proxy).proxyGroup;
  if (typeof name !== 'string' || name === '') return undefined;
  return keyOf(namespaceOf(endpoints), name);
}
