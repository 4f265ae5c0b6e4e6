/**
 * Wiring of the Tailscale Services controller for one leadership term: a ServiceCoordinator per tailnet
 * (their sweeps, heartbeats and re-verifies run while leading and stop with the term) and the
 * controller keyed by TailscaleGateway. It is woken by its TailscaleGateway's spec, finalizer and
 * annotation changes (not its own status writes), by whatever the TailscaleGateway status controller is
 * woken by (`enqueue`, fed from the reference index: an HTTPRoute attached to its Gateway changes its
 * routes on the service), and by the config Secrets of the proxy groups hosting its services (an
 * advertisement landing changes the service's state).
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { TailscaleGatewayStatus } from '../api/index.ts';
import type { Config } from '../config/schema.ts';
import {
  applyStatus,
  type Clock,
  type Controller,
  createController,
  type EventRecorder,
  parentKeyOf,
} from '../controller/index.ts';
import {
  coordinatorTimings,
  createTailnetCoordinators,
  type Identity,
  type TailnetCoordinators,
} from '../coordination/index.ts';
import type { KubeClient } from '../kube/index.ts';
import type { Informer } from '../kube/informer.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProxyKube } from '../proxy/kube.ts';
import { filterUpdates, specChanged } from '../proxy/predicates.ts';
import { ingressProxyGroupsOf } from '../proxy/service-hosting.ts';
import {
  createServicesReconciler,
  SERVICES_FIELD_MANAGER,
} from '../reconcilers/tailscale-gateway-services.ts';
import { PROXY_GROUP_PARENT_TYPE } from '../reconcilers/tailscale-proxy-group.ts';
import type { ResourceSnapshot } from '../store/resource-store.ts';
import type { TailscaleApi } from '../tailscale/index.ts';

export interface ServicesTermOptions {
  config: Pick<Config, 'serviceStaleAfter' | 'serviceReverifyMin' | 'serviceReverifyMax'>;
  kube: KubeClient;
  proxyKube: ProxyKube;
  tailscaleGateways: Informer;
  tailnets: Informer;
  /** The proxy children's Secret informer (operator namespace). */
  secrets: Informer;
  /** The TailscaleProxyGroup informer the proxy controllers use. */
  proxyGroups: Informer;
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
      getTailscaleGateway: (namespace, name) => options.tailscaleGateways.get(namespace, name),
      getTailnet: (name) => options.tailnets.get(undefined, name),
      getProxyGroup: (namespace, name) => options.proxyGroups.get(namespace, name),
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
      .map((tsgw) => `${tsgw.metadata?.namespace ?? 'default'}/${tsgw.metadata?.name}`);
  controller.watch(options.secrets, (secret) => {
    const group = parentKeyOf(secret, PROXY_GROUP_PARENT_TYPE);
    return group ? usersOfGroup(group) : [];
  });
  controller.watch(options.proxyGroups, (group) =>
    usersOfGroup(`${group.metadata?.namespace ?? 'default'}/${group.metadata?.name}`),
  );
  coordinators.start();
  return {
    controller,
    coordinators,
    stop() {
      coordinators.stop();
    },
  };
}
