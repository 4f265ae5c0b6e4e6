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
import type { Checked, TailscaleEndpoints, TailscaleProxyGroup } from '../../api/index.ts';
import type { ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { recordReadyTransition, splitKey } from '../../controller-runtime/index.ts';
import { DEFAULT_CLUSTER_DOMAIN } from '../../model/egress-target.ts';
import { DEFAULT_SERVER_URL } from '../../proxy/config.ts';
import { PROXY_FINALIZER } from '../../proxy/names.ts';
import { defaultProxyImage } from '../../proxy/objects.ts';
import { ENDPOINTS_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { type ProxyReconcilerOptions, parentSync, proxyTags, resultOf } from '../../proxy/parents.ts';
import { proxySetStatus } from '../../proxy/status.ts';
import { childrenOf, createSyncState, podsOf, type SyncResult, type SyncState } from '../../proxy/sync.ts';
import { endpointNamesOwnedBy } from '../../tailnet-discovery/index.ts';
import {
  desiredEndpointsProxies,
  desiredEndpointsStatus,
  desiredGroupMemberStatus,
  type EndpointsStatusVerdict,
  egressServiceObjects,
  endpointsStatusEqual,
  groupMemberNotes,
  knownDevicesOf,
} from './tailscale-endpoints-proxies.ts';

export interface TailscaleEndpointsReconcilerOptions extends ProxyReconcilerOptions {
  getEndpoints(namespace: string, name: string): Checked<TailscaleEndpoints> | undefined;
  /** The TailscaleProxyGroup cache, for objects that name a group. */
  getProxyGroup(namespace: string, name: string): Checked<TailscaleProxyGroup> | undefined;
}

export function createTailscaleEndpointsReconciler(options: TailscaleEndpointsReconcilerOptions): Reconciler {
  const state: SyncState = createSyncState();
  const image = options.image ?? defaultProxyImage();
  const serverUrl = options.serverUrl ?? DEFAULT_SERVER_URL;
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;

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
    const cached = options.getEndpoints(namespace, name);
    const sync = parentSync(options, {
      parentType: ENDPOINTS_PARENT_TYPE,
      parentKey: key,
      state,
      signal,
      log,
    });
    const teardown = () => sync({ sets: [], extra: [], tags: () => [], knownDevices: new Map() });

    if (!cached) {
      // Gone without our finalizer (removed by hand): still clean up whatever it left behind.
      if (childrenOf(options.cache, ENDPOINTS_PARENT_TYPE, key).length === 0) return undefined;
      const result = await teardown();
      return afterTeardown(result);
    }
    if (!cached.ok) {
      log.error({ issues: cached.issues }, 'TailscaleEndpoints does not match the schema; skipping');
      return undefined;
    }
    const { value: endpoints, raw } = cached;
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
      const checkedGroup = options.getProxyGroup(namespace, groupName);
      const group = checkedGroup?.ok ? checkedGroup.value : undefined;
      const verdict = desiredGroupMemberStatus(
        endpoints,
        {
          group,
          invalid: checkedGroup !== undefined && group === undefined,
          deleting: checkedGroup?.raw.metadata?.deletionTimestamp !== undefined,
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

function afterTeardown(result: SyncResult): ReconcileResult | undefined {
  return resultOf({ ...result, pruning: result.pruning || result.remaining > 0 });
}
