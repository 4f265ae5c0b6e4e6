/**
 * The TailscaleProxyGroup reconciler: one StatefulSet of HA proxies, scaled up and down (a removed
 * replica's device is deleted through the API once its Pod is gone, then its Secrets), torn down in
 * the official order behind a finalizer. Same machinery and write-free steady state as TailscaleEndpoints.
 *
 * The proxies carry the configuration of every TailscaleEndpoints that names the group
 * (`spec.proxy.proxyGroup`): the serve config of an ingress group, the egress config of an egress
 * group plus each member endpoint's egress Service and EndpointSlice (the group's children, so a member
 * that leaves, and the whole group on teardown, leaves nothing behind). `status.tailscaleEndpoints`
 * lists the members with their conflicts; the members' own reconciler reads it from there.
 *
 * An ingress group also hosts the Tailscale Services TailscaleGateways publish through it
 * (src/proxy/service-hosting.ts): serve blocks, advertisements, and the Secrets of the certificates its
 * replicas share for the services served with HTTPS; a renewed one rolls its Pods
 * (src/proxy/certificate-revision.ts).
 *
 * @module
 */

import type { KubernetesObject, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { Checked, TailscaleEndpoints, TailscaleGateway, TailscaleProxyGroup } from '../../api/index.ts';
import type { ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { recordReadyTransition, splitKey } from '../../controller-runtime/index.ts';
import { DEFAULT_CLUSTER_DOMAIN } from '../../model/egress-target.ts';
import {
  certificateRecordOf,
  issuedCertificates,
  planCertificateRevision,
} from '../../proxy/certificate-revision.ts';
import { DEFAULT_SERVER_URL } from '../../proxy/config.ts';
import { configSecretName, PROXY_FINALIZER, stateSecretName } from '../../proxy/names.ts';
import { defaultProxyImage } from '../../proxy/objects.ts';
import { PROXY_GROUP_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { type ProxyReconcilerOptions, parentSync, proxyTags, resultOf } from '../../proxy/parents.ts';
import {
  advertisedServicesOf,
  certificateIssued,
  hostedServices,
  namedCertificateDomains,
  planServiceHosting,
  serveServicesOf,
} from '../../proxy/service-hosting.ts';
import { proxySetStatus } from '../../proxy/status.ts';
import { childrenOf, createSyncState, podsOf, type SyncState } from '../../proxy/sync.ts';
import {
  aggregateMembers,
  desiredProxyGroupSet,
  desiredProxyGroupStatus,
  groupEgressServiceObjects,
  groupMembers,
  proxyGroupStatusEqual,
} from './tailscale-proxy-group-proxies.ts';

export interface TailscaleProxyGroupReconcilerOptions extends ProxyReconcilerOptions {
  getProxyGroup(namespace: string, name: string): Checked<TailscaleProxyGroup> | undefined;
  /** Every cached TailscaleEndpoints; the members are those whose spec.proxy.proxyGroup names the group. */
  listEndpoints(): KubernetesObject[];
  /**
   * A listed TailscaleEndpoints, checked; the informer's memo (once per resourceVersion) instead of
   * validating every cached one again on each group reconcile. Default: checked on every call.
   */
  checkEndpoints?(raw: KubernetesObject): Checked<TailscaleEndpoints>;
  /**
   * Every cached TailscaleGateway that matches its schema (one that does not is its own reconcile's to
   * report): an ingress group hosts the Tailscale Services their ingress names it for.
   */
  listTailscaleGateways?(): TailscaleGateway[];
}

export function createTailscaleProxyGroupReconciler(
  options: TailscaleProxyGroupReconcilerOptions,
): Reconciler {
  const state: SyncState = createSyncState();
  const image = options.image ?? defaultProxyImage();
  const serverUrl = options.serverUrl ?? DEFAULT_SERVER_URL;
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;

  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const cached = options.getProxyGroup(namespace, name);
    const sync = parentSync(options, {
      parentType: PROXY_GROUP_PARENT_TYPE,
      parentKey: key,
      state,
      signal,
      log,
    });
    const teardown = async () => {
      const result = await sync({ sets: [], tags: () => [], knownDevices: new Map() });
      return { result, done: result.remaining === 0 };
    };

    if (!cached) {
      if (childrenOf(options.cache, PROXY_GROUP_PARENT_TYPE, key).length === 0) return undefined;
      const { result } = await teardown();
      return resultOf({ ...result, pruning: true });
    }
    if (!cached.ok) {
      log.error({ issues: cached.issues }, 'TailscaleProxyGroup does not match the schema; skipping');
      return undefined;
    }
    const { value: group, raw } = cached;
    const finalizers = raw.metadata?.finalizers ?? [];
    if (raw.metadata?.deletionTimestamp) {
      if (!finalizers.includes(PROXY_FINALIZER)) return undefined;
      const { result, done } = await teardown();
      if (!done) return resultOf({ ...result, pruning: true });
      await options.kube.setFinalizers(
        raw,
        finalizers.filter((f) => f !== PROXY_FINALIZER),
        signal,
      );
      log.info('proxy group removed; finalizer dropped');
      return undefined;
    }
    if (!finalizers.includes(PROXY_FINALIZER))
      await options.kube.setFinalizers(raw, [...finalizers, PROXY_FINALIZER], signal);

    const aggregate = aggregateMembers(
      group,
      groupMembers(group, options.listEndpoints(), options.checkEndpoints),
      clusterDomain,
    );
    const setOptions = { operatorNamespace: options.operatorNamespace, image, serverUrl };
    let set = desiredProxyGroupSet(group, setOptions, aggregate);
    const gateways = options.listTailscaleGateways?.() ?? [];
    const hosted = hostedServices(group, gateways, clusterDomain);
    const tailnet = options.getTailnet(group.spec.tailnet) as
      | (KubernetesObject & { status?: { magicDNSSuffix?: string } })
      | undefined;
    const named = namedCertificateDomains(group, gateways, tailnet?.status?.magicDNSSuffix);
    const observedConfigs = Array.from(
      { length: set.replicas },
      (_, i) =>
        options.cache.get('Secret', set.namespace, configSecretName(set.base, i)) as V1Secret | undefined,
    );
    // Also while a config Secret still serves something (its certificate Secret goes only after that),
    // and while a named HTTPS service waits unhosted (its certificate is kept).
    if (
      hosted.length > 0 ||
      named.length > 0 ||
      observedConfigs.some(
        (c) => advertisedServicesOf(c).length > 0 || Object.keys(serveServicesOf(c)).length > 0,
      )
    ) {
      const certIssued = (dnsName: string) =>
        certificateIssued(options.cache.get('Secret', set.namespace, dnsName));
      // What each replica's tailscaled applied: a port switching serve type waits for it (the module).
      const appliedStates = Array.from(
        { length: set.replicas },
        (_, i) =>
          options.cache.get('Secret', set.namespace, stateSecretName(set.base, i)) as V1Secret | undefined,
      );
      const plan = planServiceHosting(hosted, observedConfigs, certIssued, named, appliedStates);
      set = desiredProxyGroupSet(group, setOptions, aggregate, plan);
    }
    let renewed: string[] = [];
    if (set.certShare) {
      const observedSts = options.cache.get('StatefulSet', set.namespace, set.base) as
        | V1StatefulSet
        | undefined;
      const issued = issuedCertificates(set.certDomains ?? [], (n) =>
        options.cache.get('Secret', set.namespace, n),
      );
      const certificates = planCertificateRevision(certificateRecordOf(observedSts), issued);
      set = { ...set, certificates: certificates.record };
      renewed = certificates.renewed;
    }
    const extra = groupEgressServiceObjects(group, set, aggregate, podsOf(options.cache, set));
    const tags = proxyTags(group.spec.tags, options.getTailnet(group.spec.tailnet));
    const known = new Map<string, string>();
    for (const device of group.status?.devices ?? [])
      if (device.podName && device.nodeId) known.set(device.podName, device.nodeId);
    const result = await sync({ sets: [set], extra, tags: () => tags, knownDevices: known });
    if (renewed.length > 0) {
      // Names only: the certificates themselves (and their hashes) stay out of logs and Events.
      const message = `rolling the proxies to serve the renewed certificate of ${renewed.join(', ')}`;
      log.info({ statefulSet: set.base, renewed }, message);
      void options.events?.event(raw, 'Normal', 'CertificateRenewed', message, 'RollProxies');
    }

    const setStatus = proxySetStatus(
      set,
      (n) => options.cache.get('Secret', set.namespace, n) as V1Secret | undefined,
      (n) => options.cache.get('Pod', set.namespace, n) as V1Pod | undefined,
    );
    const verdict = desiredProxyGroupStatus(
      group,
      setStatus,
      result.problems,
      new Date(options.clock.now()),
      aggregate.members,
    );
    if (!proxyGroupStatusEqual(group.status, verdict.status)) {
      await options.kube.applyStatus(raw, verdict.status, signal);
      recordReadyTransition(options.events, raw, group.status?.conditions, verdict, 'Reconcile');
    }
    if (result.writes > 0 || result.minted > 0)
      log.info({ writes: result.writes, minted: result.minted, ready: verdict.ready }, 'proxy group synced');
    return resultOf(result);
  };
}
