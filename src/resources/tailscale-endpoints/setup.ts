/**
 * TailscaleEndpoints in `run`, per leadership term: its two controllers with their watches, the
 * proxies' (`tailscaleendpoints`) and tailnet service discovery's (`tailscaleendpoints-discovery`:
 * `spec.discovery` fills `spec.endpoints`; its reconciler is tailscale-endpoints-discovery.ts). The
 * caches and options the proxies share with TailscaleProxyGroup, which they wake and are woken by, come
 * built from `../proxy-parents.ts`.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  applyStatus,
  type Clock,
  type Controller,
  createController,
  enqueueForParent,
  type Term,
} from '../../controller-runtime/index.ts';
import { type Informer, type KubeClient, keyOf, objectKey, typedInformer } from '../../kube/index.ts';
import type { Logger } from '../../observability/logger.ts';
import { ENDPOINTS_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { type ProxyParentsShared, proxyGroupKeyOf } from '../../proxy/parents.ts';
import { filterUpdates } from '../../proxy/predicates.ts';
import {
  createTailnetInventory,
  DISCOVERY_FIELD_MANAGER,
  type TailnetInventory,
} from '../../tailnet-discovery/index.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import { createTailscaleEndpointsReconciler } from './tailscale-endpoints.ts';
import {
  createDiscoveryReconciler,
  type DiscoveryReconcilerOptions,
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

export interface DiscoveryControllerOptions {
  kube: Pick<KubeClient, 'applyObject'>;
  /** Typed here if it is not already (one typed informer is shared as it is). */
  endpoints: Informer;
  tailnets: Informer;
  tailscale(tailnet: string): TailscaleApi | undefined;
  /** Shared by every object; default a new one. Pass one to count its calls. */
  inventory?: TailnetInventory;
  clock: Clock;
  log: Logger;
  registry?: Registry;
  workers?: number;
  onSync?: DiscoveryReconcilerOptions['onSync'];
}

/** The leader's discovery controller: keyed by TailscaleEndpoints, woken by tailnet changes too. */
export function createDiscoveryController(options: DiscoveryControllerOptions): Controller {
  const { kube, tailnets } = options;
  const endpoints = typedInformer('TailscaleEndpoints', options.endpoints);
  const reconcile = createDiscoveryReconciler({
    getEndpoints: (namespace, name) => endpoints.checked(namespace, name),
    getTailnet: (name) => tailnets.get(undefined, name),
    tailscale: options.tailscale,
    inventory: options.inventory ?? createTailnetInventory({ clock: options.clock }),
    async applyEndpoints(obj, entries, signal) {
      const stored: KubernetesObject = await kube.applyObject<KubernetesObject>(
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace ?? '' },
          // No entries: apply none, so the ones applied before are removed (they were only ours).
          spec: (entries.length > 0 ? { endpoints: entries } : {}) as never,
        } as KubernetesObject,
        { fieldManager: DISCOVERY_FIELD_MANAGER, force: true, signal },
      );
      return { generation: stored.metadata?.generation, resourceVersion: stored.metadata?.resourceVersion };
    },
    async applyStatus(obj, status, signal) {
      // An empty list rather than no field: the API server reads an empty status as null and refuses it.
      const body = {
        conditions: status.conditions,
        ...(status.discovery ? { discovery: status.discovery } : {}),
      };
      const stored: KubernetesObject = await applyStatus(kube, obj, body, {
        fieldManager: DISCOVERY_FIELD_MANAGER,
        signal,
      });
      return { generation: stored.metadata?.generation, resourceVersion: stored.metadata?.resourceVersion };
    },
    clock: options.clock,
    ...(options.onSync ? { onSync: options.onSync } : {}),
  });
  return createController({
    name: 'tailscaleendpoints-discovery',
    reconcile,
    log: options.log,
    clock: options.clock,
    ...(options.workers ? { workers: options.workers } : {}),
    ...(options.registry ? { registry: options.registry } : {}),
  })
    .for(endpoints)
    .watch(tailnets, (tailnet) =>
      endpoints
        .valid()
        .filter((e) => e.spec.tailnet === tailnet.metadata?.name && e.spec.discovery !== undefined)
        .map((e) => keyOf(e.metadata.namespace, e.metadata.name)),
    );
}
