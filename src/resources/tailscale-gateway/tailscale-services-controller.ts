/**
 * Wiring of the Tailscale Services controller for one leadership term: a ServiceCoordinator per tailnet
 * (their sweeps, heartbeats and re-verifies run while leading and stop with the term) and the
 * controller keyed by TailscaleGateway. It is woken by its TailscaleGateway's spec, finalizer and
 * annotation changes (not its own status writes), by whatever the TailscaleGateway status controller is
 * woken by (`enqueue`, fed from the reference index: an HTTPRoute attached to its Gateway changes its
 * routes on the service, and a Gateway's listeners decide a mode-HTTP service's upstream), by the config
 * Secrets of the proxy groups hosting its services (an advertisement landing changes the service's
 * state), and by the Envoy Services of the Gateways it joins (a mode-HTTP service's upstream: it waits
 * Pending for EG to create one and follows its ports).
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { TailscaleGatewayStatus } from '../../api/index.ts';
import {
  applyStatus,
  type Clock,
  type Controller,
  createController,
  type EventRecorder,
  parentKeyOf,
} from '../../controller-runtime/index.ts';
import {
  type CoordinatorSettings,
  coordinatorTimings,
  createTailnetCoordinators,
  type Identity,
  type TailnetCoordinators,
} from '../../coordination/index.ts';
import type { KubeClient, ResourceInformer } from '../../kube/index.ts';
import { keyOf, namespaceOf, splitKey } from '../../kube/index.ts';
import type { Informer } from '../../kube/informer.ts';
import { fieldsOf, listOf, specOf } from '../../kube/object-fields.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { ProxyKube } from '../../proxy/kube.ts';
import { PROXY_GROUP_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { filterUpdates, specChanged, withPreviousOnUpdate } from '../../proxy/predicates.ts';
import { ingressProxyGroupsOf } from '../../proxy/service-hosting.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import {
  type CacheLookup,
  createServicesReconciler,
  SERVICES_FIELD_MANAGER,
} from './tailscale-gateway-services.ts';
import { gatewayOfEnvoyService, isEnvoyServiceOf } from './tailscale-gateway-upstream.ts';

export interface ServicesTermOptions {
  /** The operator's settings this term reads, picked from the CLI's Config by the entry point. */
  config: CoordinatorSettings & { readonly clusterDomain: string };
  kube: KubeClient;
  proxyKube: ProxyKube;
  tailscaleGateways: ResourceInformer<'TailscaleGateway'>;
  tailnets: Informer;
  /** The proxy children's Secret informer (operator namespace). */
  secrets: Informer;
  /** The TailscaleProxyGroup informer the proxy controllers use. */
  proxyGroups: Informer;
  /** Envoy Gateway's Envoy Services (createEnvoyServiceInformer); the controller waits for its list. */
  envoyServices: Informer;
  /** A Gateway from the Gateway API informers; 'unknown' until discovery and the Gateway list answered. */
  getGateway(namespace: string, name: string): CacheLookup<KubernetesObject | undefined>;
  operatorNamespace: string;
  client(tailnet: string): Pick<TailscaleApi, 'services'> | undefined;
  identity(): Identity | undefined;
  snapshot(): ResourceSnapshot;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  registry?: Registry;
}

export interface ServicesTerm {
  controller: Controller;
  coordinators: TailnetCoordinators;
  /** Stops the coordinators' timers (the controller is stopped with the others). */
  stop(): void;
}

const annotationsOrSpecChanged = (obj: KubernetesObject, old: KubernetesObject) =>
  specChanged(obj, old) ||
  JSON.stringify(obj.metadata?.annotations ?? {}) !== JSON.stringify(old.metadata?.annotations ?? {});

/**
 * What the upstream depends on: its ports, labels (which Gateway) and deletion. A Service has no
 * generation, and EG's load-balancer status writes must not cost a Tailscale API read each.
 */
const envoyServiceChanged = (obj: KubernetesObject, old: KubernetesObject) => {
  const ports = (o: KubernetesObject) => JSON.stringify(specOf(o).ports ?? []);
  return (
    ports(obj) !== ports(old) ||
    obj.metadata?.deletionTimestamp !== old.metadata?.deletionTimestamp ||
    JSON.stringify(obj.metadata?.labels ?? {}) !== JSON.stringify(old.metadata?.labels ?? {})
  );
};

const hasHttpService = (tsgw: KubernetesObject | undefined) =>
  listOf(specOf(tsgw).tailnets).some((a) =>
    listOf(fieldsOf(fieldsOf(a).ingress).services).some((s) => fieldsOf(s).mode === 'HTTP'),
  );

export function createServicesTerm(options: ServicesTermOptions): ServicesTerm {
  const log = options.log.child({ component: 'tailscale-services' });
  const coordinators = createTailnetCoordinators({
    client: options.client,
    identity: options.identity,
    clock: options.clock,
    log,
    timings: coordinatorTimings(options.config),
  });
  const controller = createController({
    name: 'tailscalegateway-services',
    log: options.log,
    ...(options.registry ? { registry: options.registry } : {}),
    reconcile: createServicesReconciler({
      getTailscaleGateway: (namespace, name) => options.tailscaleGateways.checked(namespace, name),
      getTailnet: (name) => options.tailnets.get(undefined, name),
      getProxyGroup: (namespace, name) => options.proxyGroups.get(namespace, name),
      getGateway: options.getGateway,
      getEnvoyServices: (namespace, name) =>
        options.envoyServices.hasSynced()
          ? options.envoyServices.list().filter((service) => isEnvoyServiceOf(service, namespace, name))
          : 'unknown',
      clusterDomain: options.config.clusterDomain,
      getSecret: (namespace, name) => options.secrets.get(namespace, name),
      operatorNamespace: options.operatorNamespace,
      coordinators,
      snapshot: options.snapshot,
      writeStatus: async (obj, status: Partial<TailscaleGatewayStatus>, signal) => {
        await applyStatus(options.kube, obj, status, { fieldManager: SERVICES_FIELD_MANAGER, signal });
      },
      setFinalizers: (obj, finalizers, signal) => options.proxyKube.setFinalizers(obj, finalizers, signal),
      events: options.events,
      clock: options.clock,
    }),
  }).for(filterUpdates(options.tailscaleGateways, annotationsOrSpecChanged));
  const usersOfGroup = (groupKey: string) =>
    options.tailscaleGateways
      .list()
      .filter((tsgw) => ingressProxyGroupsOf(tsgw).includes(groupKey))
      .map((tsgw) => keyOf(namespaceOf(tsgw), tsgw.metadata?.name ?? ''));
  controller.watch(options.secrets, (secret) => {
    const group = parentKeyOf(secret, PROXY_GROUP_PARENT_TYPE);
    return group ? usersOfGroup(group) : [];
  });
  controller.watch(options.proxyGroups, (group) =>
    usersOfGroup(keyOf(namespaceOf(group), group.metadata?.name ?? '')),
  );
  // An Envoy Service (before and after a change): the TailscaleGateways with a mode-HTTP service that
  // join its Gateway. The Gateway's own changes (listeners) arrive through `enqueue` from the index.
  controller.watch(withPreviousOnUpdate(options.envoyServices, envoyServiceChanged), (service) => {
    const gateway = gatewayOfEnvoyService(service);
    if (!gateway) return [];
    const { namespace = '', name } = splitKey(gateway);
    return options
      .snapshot()
      .index.tailscaleGatewaysOfGateway(namespace, name)
      .filter((key) => {
        const { namespace: ns = '', name: n } = splitKey(key);
        return hasHttpService(options.tailscaleGateways.get(ns, n));
      });
  });
  coordinators.start();
  return {
    controller,
    coordinators,
    stop() {
      coordinators.stop();
    },
  };
}
