/**
 * The Tailscale Services controller's per-term parts: a ServiceCoordinator per tailnet (their sweeps,
 * heartbeats and re-verifies run while leading and stop with the term) and the reconciler keyed by
 * TailscaleGateway, bound to the term's caches and the API server. The controller itself
 * ('tailscalegateway-services') and the watches that wake it are created in setup.ts with the
 * feature's other controllers.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { TailscaleGatewayStatus } from '../../api/index.ts';
import {
  applyStatus,
  type Clock,
  type EventRecorder,
  type Reconciler,
} from '../../controller-runtime/index.ts';
import {
  type CoordinatorSettings,
  coordinatorTimings,
  createTailnetCoordinators,
  type Identity,
  type TailnetCoordinators,
} from '../../coordination/index.ts';
import type { KubeClient, ResourceInformer } from '../../kube/index.ts';
import type { Informer } from '../../kube/informer.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { ProxyKube } from '../../proxy/kube.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import {
  type CacheLookup,
  createServicesReconciler,
  SERVICES_FIELD_MANAGER,
} from './tailscale-gateway-services.ts';
import { isEnvoyServiceOf } from './tailscale-gateway-upstream.ts';

/**
 * The operator's settings the TailscaleGateway feature reads: the shared-service coordinator's timings
 * and the cluster's DNS domain. Picked from the CLI's Config at the config edge
 * (config/tailscale-gateway-settings.ts), so the feature cannot come to depend on the whole Config.
 */
export type TailscaleGatewaySettings = CoordinatorSettings & { readonly clusterDomain: string };

export interface ServicesTermOptions {
  config: TailscaleGatewaySettings;
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
}

export interface ServicesTerm {
  /** The 'tailscalegateway-services' controller's reconciler (setup.ts creates the controller). */
  reconcile: Reconciler;
  coordinators: TailnetCoordinators;
  /** Stops the coordinators' timers (the controller is stopped with the others). */
  stop(): void;
}

export function createServicesTerm(options: ServicesTermOptions): ServicesTerm {
  const log = options.log.child({ component: 'tailscale-services' });
  const coordinators = createTailnetCoordinators({
    client: options.client,
    identity: options.identity,
    clock: options.clock,
    log,
    timings: coordinatorTimings(options.config),
  });
  const reconcile = createServicesReconciler({
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
  });
  coordinators.start();
  return {
    reconcile,
    coordinators,
    stop() {
      coordinators.stop();
    },
  };
}
