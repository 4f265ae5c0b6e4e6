/**
 * TailscaleGateway in `run`, per leadership term: the Tailscale Services it publishes (with the Envoy
 * Service informer only that controller reads; its reconciler and ServiceCoordinators per term come from
 * tailscale-services-controller.ts), its status, the Gateway revision annotation that makes Envoy
 * Gateway re-translate, and the endpoints-routes conditions on TailscaleEndpoints (RouteReferences,
 * ClustersConsistent); the watches that wake them, and a periodic resync of every key to repair
 * anything missed.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { TailscaleGatewayStatus } from '../../api/index.ts';
import {
  applyStatus,
  type Controller,
  createController,
  type FeatureDeps,
  parentKeyOf,
  type Term,
} from '../../controller-runtime/index.ts';
import { type Informer, keyOf, namespaceOf, type ResourceInformer, splitKey } from '../../kube/index.ts';
import { fieldsOf, listOf, specOf } from '../../kube/object-fields.ts';
import type { GatewayApiView } from '../../model/gateway-api.ts';
import type { ResourceStore } from '../../model/resource-store.ts';
import type { ProxyKube } from '../../proxy/kube.ts';
import { PROXY_GROUP_PARENT_TYPE } from '../../proxy/parent-types.ts';
import { filterUpdates, specChanged, withPreviousOnUpdate } from '../../proxy/predicates.ts';
import { ingressProxyGroupsOf } from '../../proxy/service-hosting.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import type { IdentityResolution } from './identity.ts';
import {
  createEndpointsRoutesReconciler,
  ENDPOINTS_ROUTES_FIELD_MANAGER,
} from './tailscale-endpoints-routes.ts';
import { createTailscaleGatewayReconciler } from './tailscale-gateway.ts';
import { createGatewayTriggerReconciler, REVISION_ANNOTATION } from './tailscale-gateway-trigger.ts';
import { gatewayOfEnvoyService } from './tailscale-gateway-upstream.ts';
import { watchForTailscaleGateways } from './tailscale-gateway-watches.ts';
import {
  createServicesTerm,
  type ServicesTerm,
  type TailscaleGatewaySettings,
} from './tailscale-services-controller.ts';

export type { TailscaleGatewaySettings };

/** How often the TailscaleGateway-side controllers get every key again, to repair anything missed. */
const GATEWAY_RESYNC_MS = 10 * 60_000;

export interface TailscaleGatewaySetupOptions extends FeatureDeps {
  settings: TailscaleGatewaySettings;
  proxyKube: ProxyKube;
  store: ResourceStore;
  tailscaleGateways: ResourceInformer<'TailscaleGateway'>;
  tailnets: ResourceInformer<'TailscaleTailnet'>;
  endpoints: ResourceInformer<'TailscaleEndpoints'>;
  /** The proxy children's Secret informer (operator namespace). */
  secrets: Informer;
  /** The TailscaleProxyGroup informer the proxy controllers use. */
  proxyGroups: Informer;
  gatewayApi: GatewayApiView;
  /** Makes (and starts) the term's Envoy Service informer; only the services controller reads it. */
  envoyServices(): Informer;
  operatorNamespace: string;
  client(tailnet: string): TailscaleApi | undefined;
  identity: IdentityResolution;
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

/**
 * The Tailscale Services controller, keyed by TailscaleGateway. It is woken by its TailscaleGateway's
 * spec, finalizer and annotation changes (not its own status writes), by whatever the TailscaleGateway
 * status controller is woken by (`enqueue`, fed from the reference index: an HTTPRoute attached to its
 * Gateway changes its routes on the service, and a Gateway's listeners decide a mode-HTTP service's
 * upstream), by the config Secrets of the proxy groups hosting its services (an advertisement landing
 * changes the service's state), and by the Envoy Services of the Gateways it joins (a mode-HTTP
 * service's upstream: it waits Pending for EG to create one and follows its ports).
 */
function createServicesController(
  options: TailscaleGatewaySetupOptions,
  services: ServicesTerm,
  envoyServices: Informer,
): Controller {
  const { tailscaleGateways, store } = options;
  const controller = createController({
    name: 'tailscalegateway-services',
    log: options.log,
    registry: options.registry,
    reconcile: services.reconcile,
  }).for(filterUpdates(tailscaleGateways, annotationsOrSpecChanged));
  const usersOfGroup = (groupKey: string) =>
    tailscaleGateways
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
  controller.watch(withPreviousOnUpdate(envoyServices, envoyServiceChanged), (service) => {
    const gateway = gatewayOfEnvoyService(service);
    if (!gateway) return [];
    const { namespace = '', name } = splitKey(gateway);
    return store
      .snapshot()
      .index.tailscaleGatewaysOfGateway(namespace, name)
      .filter((key) => {
        const { namespace: ns = '', name: n } = splitKey(key);
        return hasHttpService(tailscaleGateways.get(ns, n));
      });
  });
  return controller;
}

export function setupTailscaleGateway(options: TailscaleGatewaySetupOptions, term: Term): void {
  const { kube, store, gatewayApi, tailscaleGateways, log, registry, events, clock } = options;
  const envoyServices = options.envoyServices();
  term.addInformers(envoyServices);
  const services = createServicesTerm({
    config: options.settings,
    kube,
    proxyKube: options.proxyKube,
    tailscaleGateways,
    tailnets: options.tailnets,
    secrets: options.secrets,
    proxyGroups: options.proxyGroups,
    envoyServices,
    getGateway: (namespace, name) => {
      if (!gatewayApi.kindsKnown()) return 'unknown';
      const gateways = gatewayApi.get('Gateway');
      if (!gateways) return undefined;
      return gateways.hasSynced() ? gateways.get(namespace, name) : 'unknown';
    },
    operatorNamespace: options.operatorNamespace,
    client: options.client,
    identity: () => options.identity.current(),
    snapshot: () => store.snapshot(),
    events,
    clock,
    log,
  });
  term.onEnd(() => services.stop());
  const servicesController = createServicesController(options, services, envoyServices);
  const status = createController({
    name: 'tailscalegateway',
    log,
    registry,
    reconcile: createTailscaleGatewayReconciler({
      getTailscaleGateway: (namespace, name) => tailscaleGateways.checked(namespace, name),
      getTailnet: (name) => options.tailnets.get(undefined, name),
      snapshot: () => store.snapshot(),
      gatewayApiServed: () => gatewayApi.get('Gateway') !== undefined,
      writeStatus: async (obj, status: TailscaleGatewayStatus, abort) => {
        await applyStatus(kube, obj, status, { signal: abort });
      },
      events,
      clock,
    }),
  }).for(tailscaleGateways);
  const trigger = createController({
    name: 'tailscalegateway-revision',
    log,
    registry,
    reconcile: createGatewayTriggerReconciler({
      getGateway: (namespace, name) => {
        const gateway = gatewayApi.get('Gateway')?.get(namespace, name);
        return gateway
          ? { found: true, revision: gateway.metadata?.annotations?.[REVISION_ANNOTATION] }
          : { found: false };
      },
      snapshot: () => store.snapshot(),
      setRevision: async (namespace, name, revision, abort) => {
        const gateway = gatewayApi.get('Gateway')?.get(namespace, name);
        if (!gateway?.apiVersion) return;
        const path = await kube.pathFor({
          apiVersion: gateway.apiVersion,
          kind: 'Gateway',
          namespace,
          name,
        });
        await kube.request(path, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { metadata: { annotations: { [REVISION_ANNOTATION]: revision ?? null } } },
          signal: abort,
        });
      },
    }),
  });
  const endpointsRoutes = createController({
    name: 'tailscaleendpoints-routes',
    log,
    registry,
    reconcile: createEndpointsRoutesReconciler({
      getEndpoints: (namespace, name) => options.endpoints.checked(namespace, name),
      snapshot: () => store.snapshot(),
      writeConditions: async (obj, conditions, abort) => {
        await applyStatus(
          kube,
          obj,
          { conditions },
          { fieldManager: ENDPOINTS_ROUTES_FIELD_MANAGER, signal: abort },
        );
      },
      clock,
    }),
  });
  const watches = watchForTailscaleGateways({
    store,
    tailnets: options.tailnets,
    endpoints: options.endpoints,
    tailscaleGateways,
    onGatewayApiInformer: (listener) => gatewayApi.onInformer((_, informer) => listener(informer)),
    targets: {
      status: (key) => {
        status.enqueue(key);
        servicesController.enqueue(key);
      },
      trigger: (key) => trigger.enqueue(key),
      endpointsRoutes: (key) => endpointsRoutes.enqueue(key),
    },
  });
  term.onEnd(() => watches.stop());
  watches.resyncAll();
  const resync = setInterval(() => watches.resyncAll(), GATEWAY_RESYNC_MS);
  term.onEnd(() => clearInterval(resync));
  term.addControllers(status, trigger, endpointsRoutes, servicesController);
}
