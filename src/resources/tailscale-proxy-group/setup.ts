/**
 * TailscaleProxyGroup in `run`, per leadership term: its controller (`tailscaleproxygroup`) with its
 * watches. The caches and options it shares with TailscaleEndpoints, whose members it aggregates, come
 * built from `../proxy-parents.ts`.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type Controller,
  createController,
  enqueueForParent,
  type Term,
} from '../../controller-runtime/index.ts';
import { objectKey } from '../../kube/index.ts';
import { specOf, statusOf } from '../../kube/object-fields.ts';
import { CERT_SECRET_TYPE, SECRET_TYPE_LABEL } from '../../proxy/names.ts';
import { PROXY_GROUP_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { type ProxyParentsShared, proxyGroupKeyOf } from '../../proxy/parents.ts';
import { filterUpdates, specChanged, withPreviousOnUpdate } from '../../proxy/predicates.ts';
import { ingressProxyGroupsOf } from '../../proxy/service-hosting.ts';
import { createTailscaleProxyGroupReconciler } from './tailscale-proxy-group.ts';

/**
 * The group's controller: its own objects (status-only updates filtered out), its children by their
 * parent labels, the egress Services and EndpointSlices its members claim by name, certificate Secrets
 * (shared between ingress groups), the tailnet it uses, a spec change or deletion of a member
 * TailscaleEndpoints (the group it names now and before), and the TailscaleGateways whose services it
 * hosts.
 */
export function createTailscaleProxyGroupController(shared: ProxyParentsShared): Controller {
  const { endpoints, proxyGroups, children, tailscaleGateways } = shared;
  const controller = createController({
    name: 'tailscaleproxygroup',
    ...shared.controller,
    reconcile: createTailscaleProxyGroupReconciler({
      ...shared.reconciler,
      getProxyGroup: (namespace, name) => proxyGroups.checked(namespace, name),
      listEndpoints: () => endpoints.list(),
      checkEndpoints: (raw) => endpoints.check(raw),
      ...(tailscaleGateways ? { listTailscaleGateways: () => tailscaleGateways.valid() } : {}),
    }),
  }).for(filterUpdates(proxyGroups));
  for (const informer of children.all())
    controller.watch(informer, enqueueForParent(PROXY_GROUP_PARENT_TYPE));
  for (const kind of ['Service', 'EndpointSlice'] as const)
    controller.watch(children.informers[kind], shared.egressClaimants(true));
  // A certificate's Secret is named after its DNS name, so another ingress group hosting the name shares
  // it: any event of one wakes every ingress group (rare: created, issued, renewed, deleted), so a sharer
  // re-creates it when its holder lets it go, advertises once it is issued, and rolls its Pods when it
  // is renewed (src/proxy/certificate-revision.ts). Every update counts, not only label or spec changes:
  // a renewal changes nothing but `data`.
  controller.watch(children.informers.Secret, (secret) =>
    secret.metadata?.labels?.[SECRET_TYPE_LABEL] === CERT_SECRET_TYPE
      ? proxyGroups
          .list()
          .filter((group) => specOf(group).type === 'ingress')
          .map(objectKey)
      : [],
  );
  controller.watch(shared.tailnets, shared.usingTailnet(proxyGroups));
  controller.watch(withPreviousOnUpdate(endpoints), (tse) => {
    const group = proxyGroupKeyOf(tse);
    return group ? [group] : [];
  });
  if (tailscaleGateways) {
    // Spec edits and the published state of its services (status.services, written by the leader's
    // services controller): the groups named before and after.
    const servicesChanged = (obj: KubernetesObject, old: KubernetesObject) =>
      specChanged(obj, old) ||
      JSON.stringify(statusOf(obj).services ?? null) !== JSON.stringify(statusOf(old).services ?? null);
    controller.watch(withPreviousOnUpdate(tailscaleGateways, servicesChanged), ingressProxyGroupsOf);
  }
  return controller;
}

/** `run`'s term: the group's controller. */
export function setupTailscaleProxyGroup(shared: ProxyParentsShared, term: Term): Controller {
  const controller = createTailscaleProxyGroupController(shared);
  term.addControllers(controller);
  return controller;
}
