/**
 * TailscaleEndpoints in `run`, per leadership term: its proxies' controller (`tailscaleendpoints`) with
 * its watches, and tailnet service discovery (`spec.discovery` fills `spec.endpoints`). The caches and
 * options it shares with TailscaleProxyGroup, which it wakes and is woken by, come built from
 * `../proxy-parents.ts`.
 *
 * @module
 */
import {
  type Controller,
  createController,
  enqueueForParent,
  type Term,
} from '../../controller-runtime/index.ts';
import { objectKey } from '../../kube/index.ts';
import { ENDPOINTS_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { type ProxyParentsShared, proxyGroupKeyOf } from '../../proxy/parents.ts';
import { filterUpdates } from '../../proxy/predicates.ts';
import { createTailscaleEndpointsReconciler } from './tailscale-endpoints.ts';
import {
  createDiscoveryController,
  type DiscoveryControllerOptions,
} from './tailscale-endpoints-discovery.ts';

/**
 * The proxies' controller: its own objects (status-only updates filtered out), its children by their
 * parent labels, the egress Services and EndpointSlices it claims by name, the tailnet it uses, and any
 * change of the TailscaleProxyGroup it names (whose state its status reports).
 */
export function createTailscaleEndpointsController(shared: ProxyParentsShared): Controller {
  const { endpoints, proxyGroups, children } = shared;
  const controller = createController({
    name: 'tailscaleendpoints',
    ...shared.controller,
    reconcile: createTailscaleEndpointsReconciler({
      ...shared.reconciler,
      getEndpoints: (namespace, name) => endpoints.checked(namespace, name),
      getProxyGroup: (namespace, name) => proxyGroups.checked(namespace, name),
    }),
  }).for(filterUpdates(endpoints));
  for (const informer of children.all()) controller.watch(informer, enqueueForParent(ENDPOINTS_PARENT_TYPE));
  for (const kind of ['Service', 'EndpointSlice'] as const)
    controller.watch(children.informers[kind], shared.egressClaimants(false));
  controller.watch(shared.tailnets, shared.usingTailnet(endpoints));
  controller.watch(proxyGroups, (group) => {
    const key = objectKey(group);
    return endpoints
      .list()
      .filter((tse) => proxyGroupKeyOf(tse) === key)
      .map(objectKey);
  });
  return controller;
}

/** `run`'s term: the proxies' controller. */
export function setupTailscaleEndpointsProxies(shared: ProxyParentsShared, term: Term): Controller {
  const controller = createTailscaleEndpointsController(shared);
  term.addControllers(controller);
  return controller;
}

export function setupTailscaleEndpointsDiscovery(options: DiscoveryControllerOptions, term: Term): void {
  term.addControllers(createDiscoveryController(options));
}
