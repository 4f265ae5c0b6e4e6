/**
 * The TailscaleEndpoints reconciler: runs the object's proxies (ingress, egress or both) the way the
 * official operator runs its proxies, and reports their devices in status.
 *
 * Level-triggered and write-free when nothing changed: it reads the object and every child from
 * informer caches, computes the desired objects (`desiredEndpointsProxies`), lets `syncProxies` apply
 * only what differs, mint auth keys only where a replica needs one, and prune in the official order;
 * status is written only when it differs. A finalizer keeps the object until its StatefulSets, devices,
 * Secrets, Services and RBAC are gone.
 *
 * An object that names a TailscaleProxyGroup (`spec.proxy.proxyGroup`) gets no proxies of its own (any
 * it ran before are torn down); the group's reconciler carries its configuration, and this one only
 * reports, from the cached group, which group serves it and whether that works.
 *
 * @module
 */
import type { KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import {
  type TailscaleEndpoints,
  type TailscaleProxyGroup,
  type TailscaleTailnet,
  validateResource,
} from '../api/index.ts';
import type { Clock, EventRecorder, ReconcileResult, Reconciler } from '../controller-runtime/index.ts';
import { parentResourceType, recordReadyTransition, splitKey } from '../controller-runtime/index.ts';
import { endpointNamesOwnedBy } from '../discovery/index.ts';
import type { Logger } from '../observability/logger.ts';
import { DEFAULT_SERVER_URL } from '../proxy/config.ts';
import type { ProxyKube } from '../proxy/kube.ts';
import { PROXY_FINALIZER } from '../proxy/names.ts';
import { defaultProxyImage } from '../proxy/objects.ts';
import { proxySetStatus } from '../proxy/status.ts';
import {
  type ChildCache,
  childrenOf,
  createSyncState,
  podsOf,
  type SyncInput,
  type SyncResult,
  type SyncState,
  syncProxies,
} from '../proxy/sync.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import {
  desiredEndpointsProxies,
  desiredEndpointsStatus,
  desiredGroupMemberStatus,
  type EndpointsStatusVerdict,
  egressServiceObjects,
  endpointsStatusEqual,
  groupMemberNotes,
  knownDevicesOf,
  tailnetNotReady,
} from './tailscale-endpoints-proxies.ts';

export const ENDPOINTS_PARENT_TYPE = parentResourceType({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
});
/** Tags of proxy devices when neither the object nor its tailnet names any (the official default). */
export const DEFAULT_PROXY_TAGS = ['tag:k8s'];
/** At most one re-issued key per replica in this interval. */
export const DEFAULT_REISSUE_INTERVAL_MS = 60_000;
/** While waiting for something no event announces (a tailnet becoming Ready), look again this often. */
export const RECHECK_MS = 60_000;

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

/** What a parent decides per pass; everything else `syncProxies` needs comes from the options. */
export type ParentSyncInput = Pick<SyncInput, 'sets' | 'tags' | 'knownDevices'> & {
  extra?: KubernetesObject[];
};

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

export interface TailscaleEndpointsReconcilerOptions extends ProxyReconcilerOptions {
  getEndpoints(namespace: string, name: string): KubernetesObject | undefined;
  /** The TailscaleProxyGroup cache, for objects that name a group. */
  getProxyGroup(namespace: string, name: string): KubernetesObject | undefined;
}

/** Tags for new keys: the object's, else its tailnet's, else `tag:k8s`. */
export function proxyTags(
  own: readonly string[] | undefined,
  tailnet: KubernetesObject | undefined,
): string[] {
  if (own && own.length > 0) return [...own];
  const fromTailnet = (tailnet as TailscaleTailnet | undefined)?.spec?.tags;
  return fromTailnet && fromTailnet.length > 0 ? [...fromTailnet] : [...DEFAULT_PROXY_TAGS];
}

export function createTailscaleEndpointsReconciler(options: TailscaleEndpointsReconcilerOptions): Reconciler {
  const state: SyncState = createSyncState();
  const image = options.image ?? defaultProxyImage();
  const serverUrl = options.serverUrl ?? DEFAULT_SERVER_URL;
  const clusterDomain = options.clusterDomain ?? 'cluster.local';

  /** Writes the status when it differs; an Event when Ready flips. */
  const writeStatus = async (
    raw: KubernetesObject,
    endpoints: TailscaleEndpoints,
    verdict: EndpointsStatusVerdict,
    signal: AbortSignal,
  ) => {
    if (endpointsStatusEqual(endpoints.status, verdict.status)) return;
    await options.kube.applyStatus(raw, verdict.status, signal);
    recordReadyTransition(options.events, raw, endpoints.status?.conditions, verdict, 'Reconcile');
  };

  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const raw = options.getEndpoints(namespace, name);
    const sync = parentSync(options, {
      parentType: ENDPOINTS_PARENT_TYPE,
      parentKey: key,
      state,
      signal,
      log,
    });
    const teardown = () => sync({ sets: [], extra: [], tags: () => [], knownDevices: new Map() });

    if (!raw) {
      // Gone without our finalizer (removed by hand): still clean up whatever it left behind.
      if (childrenOf(options.cache, ENDPOINTS_PARENT_TYPE, key).length === 0) return undefined;
      const result = await teardown();
      return afterTeardown(result);
    }
    const checked = validateResource(raw);
    if (!checked.ok || checked.resource.kind !== 'TailscaleEndpoints') {
      log.error(
        { issues: checked.ok ? [] : checked.issues },
        'TailscaleEndpoints does not match the schema; skipping',
      );
      return undefined;
    }
    const endpoints = checked.resource as TailscaleEndpoints;
    const finalizers = raw.metadata?.finalizers ?? [];

    if (raw.metadata?.deletionTimestamp) {
      if (!finalizers.includes(PROXY_FINALIZER)) return undefined;
      const result = await teardown();
      if (result.remaining === 0) {
        await options.kube.setFinalizers(
          raw,
          finalizers.filter((f) => f !== PROXY_FINALIZER),
          signal,
        );
        log.info('proxies removed; finalizer dropped');
        return undefined;
      }
      return afterTeardown(result);
    }

    if (!finalizers.includes(PROXY_FINALIZER)) {
      await options.kube.setFinalizers(raw, [...finalizers, PROXY_FINALIZER], signal);
    }

    const groupName = endpoints.spec.proxy?.proxyGroup;
    if (groupName !== undefined) {
      // Served by a group: nothing of our own (a teardown of what the object ran before joining).
      const result = await teardown();
      const rawGroup = options.getProxyGroup(namespace, groupName);
      const checkedGroup = rawGroup ? validateResource(rawGroup) : undefined;
      const group =
        checkedGroup?.ok && checkedGroup.resource.kind === 'TailscaleProxyGroup'
          ? (checkedGroup.resource as TailscaleProxyGroup)
          : undefined;
      const verdict = desiredGroupMemberStatus(
        endpoints,
        {
          group,
          invalid: rawGroup !== undefined && group === undefined,
          deleting: rawGroup?.metadata?.deletionTimestamp !== undefined,
        },
        result.problems,
        groupMemberNotes(endpoints, clusterDomain),
        new Date(options.clock.now()),
        { discovered: endpointNamesOwnedBy(raw), clusterDomain },
      );
      await writeStatus(raw, endpoints, verdict, signal);
      return resultOf(result);
    }

    const proxies = desiredEndpointsProxies(endpoints, {
      operatorNamespace: options.operatorNamespace,
      image,
      serverUrl,
      clusterDomain,
    });
    const egressSet = proxies.sets.find((s) => s.type === 'egress');
    const extra = egressServiceObjects(endpoints, proxies, egressSet ? podsOf(options.cache, egressSet) : []);
    const tags = proxyTags(endpoints.spec.tags, options.getTailnet(endpoints.spec.tailnet));
    const result = await sync({
      sets: proxies.sets,
      extra,
      tags: () => tags,
      knownDevices: knownDevicesOf(endpoints.status),
    });

    const sets = proxies.sets.map((set) =>
      proxySetStatus(
        set,
        (n) => options.cache.get('Secret', set.namespace, n) as V1Secret | undefined,
        (n) => options.cache.get('Pod', set.namespace, n) as V1Pod | undefined,
      ),
    );
    const verdict = desiredEndpointsStatus(
      endpoints,
      sets,
      result.problems,
      proxies.notes,
      new Date(options.clock.now()),
      { discovered: endpointNamesOwnedBy(raw), clusterDomain, heldServices: result.heldByOthers },
    );
    await writeStatus(raw, endpoints, verdict, signal);
    if (result.writes > 0 || result.minted > 0)
      log.info({ writes: result.writes, minted: result.minted, ready: verdict.ready }, 'proxies synced');
    return resultOf(result);
  };
}

/** Transient problems retry with backoff; waiting on something without an event looks again later. */
export function resultOf(result: SyncResult): ReconcileResult | undefined {
  if (result.problems.some((p) => p.transient)) return { requeue: true };
  if (result.problems.length > 0 || result.pruning) return { requeueAfter: RECHECK_MS };
  if (result.requeueAfterMs !== undefined) return { requeueAfter: Math.max(1, result.requeueAfterMs) };
  return undefined;
}

function afterTeardown(result: SyncResult): ReconcileResult | undefined {
  return resultOf({ ...result, pruning: result.pruning || result.remaining > 0 });
}
