/**
 * Wiring of the TailscaleEndpoints and TailscaleProxyGroup controllers: their primary informers (with
 * status-only updates filtered out), the children informers mapped back to the parent by its labels,
 * and TailscaleTailnet changes mapped to the objects using the tailnet. Shared by `run`, the tests and
 * the benchmark so all three run the same thing.
 *
 * Sharing a TailscaleProxyGroup: a spec change (or deletion) of a TailscaleEndpoints enqueues the group
 * it names and the one it named before, so the group re-aggregates its members; any change of a group
 * (its status included: readiness, members, conflicts) enqueues the TailscaleEndpoints that name it,
 * whose status reports it. Neither side's status writes wake itself.
 *
 * Egress Service names are computed (`<endpoints>-<endpoint>-egress`), so two parents can claim one; the
 * older keeps it (`claimOf` in sync.ts), and any event of such a Service or its EndpointSlice wakes every
 * claimant, so the other takes the name over as soon as the holder lets it go. Certificate Secrets,
 * named after DNS names, are shared the same way between ingress groups.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Kind } from '../api/index.ts';
import {
  type Clock,
  type Controller,
  createController,
  type EventRecorder,
  enqueueForParent,
  splitKey,
  type Term,
} from '../controller-runtime/index.ts';
import {
  createdMs,
  createResourceInformer,
  type Informer,
  type InformerTransport,
  objectKey,
  typedInformer,
} from '../kube/index.ts';
import { egressServiceName } from '../model/egress-target.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProxyInformers } from '../proxy/informers.ts';
import type { ProxyKube } from '../proxy/kube.ts';
import { CERT_SECRET_TYPE, SECRET_TYPE_LABEL } from '../proxy/names.ts';
import { ENDPOINTS_PARENT_TYPE, PROXY_GROUP_PARENT_TYPE } from '../proxy/parent-types.ts';
import { proxyGroupKeyOf } from '../proxy/parents.ts';
import { filterUpdates, specChanged, withPreviousOnUpdate } from '../proxy/predicates.ts';
import { ingressProxyGroupsOf } from '../proxy/service-hosting.ts';
import type { SyncResult } from '../proxy/sync.ts';
import { cacheTransformFor } from '../tailnet-discovery/index.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import { createTailscaleEndpointsReconciler } from './tailscale-endpoints/tailscale-endpoints.ts';
import { createTailscaleProxyGroupReconciler } from './tailscale-proxy-group/tailscale-proxy-group.ts';

export interface ProxyControllersOptions {
  client: InformerTransport;
  kube: ProxyKube;
  /** Shared TailscaleEndpoints informer (the store's); a private one is made when absent. */
  endpoints?: Informer;
  /** Shared TailscaleTailnet informer; a private one is made when absent. */
  tailnets?: Informer;
  /** TailscaleProxyGroup informer (tests pass one restricted to a namespace); a private one when absent. */
  proxyGroups?: Informer;
  /**
   * TailscaleGateway informer: ingress groups host the Tailscale Services their `spec.tailnets[].ingress`
   * names. Without it no group hosts any.
   */
  tailscaleGateways?: Informer;
  children: ProxyInformers;
  tailscale(tailnet: string): TailscaleApi | undefined;
  operatorNamespace: string;
  image?: string;
  serverUrl?: string;
  clusterDomain?: string;
  clock: Clock;
  events?: EventRecorder;
  log: Logger;
  registry?: Registry;
  workers?: number;
  reissueIntervalMs?: number;
  onSync?: (key: string, result: SyncResult) => void;
}

export interface ProxyControllers {
  endpoints: Controller;
  proxyGroups: Controller;
  /** Informers made here (not the shared ones): start them, and stop them at shutdown. */
  ownInformers: Informer[];
  /** The TailscaleProxyGroup informer in use (given or made here). */
  proxyGroupInformer: Informer;
}

export function createProxyControllers(options: ProxyControllersOptions): ProxyControllers {
  const own: Informer[] = [];
  const make = <K extends Kind>(kind: K) => {
    const informer = createResourceInformer(kind, {
      client: options.client,
      transform: cacheTransformFor(kind),
      log: options.log,
      ...(options.registry ? { registry: options.registry } : {}),
    });
    own.push(informer);
    return informer;
  };
  // Typed here if given plain (one already typed is shared as it is, with its memo).
  const endpoints = options.endpoints
    ? typedInformer('TailscaleEndpoints', options.endpoints)
    : make('TailscaleEndpoints');
  const tailnets = options.tailnets ?? make('TailscaleTailnet');
  const proxyGroups = options.proxyGroups
    ? typedInformer('TailscaleProxyGroup', options.proxyGroups)
    : make('TailscaleProxyGroup');
  const tailscaleGateways =
    options.tailscaleGateways && typedInformer('TailscaleGateway', options.tailscaleGateways);
  const common = {
    getTailnet: (name: string) => tailnets.get(undefined, name),
    cache: options.children.cache,
    kube: options.kube,
    tailscale: options.tailscale,
    operatorNamespace: options.operatorNamespace,
    clock: options.clock,
    ...(options.image ? { image: options.image } : {}),
    ...(options.serverUrl ? { serverUrl: options.serverUrl } : {}),
    ...(options.clusterDomain ? { clusterDomain: options.clusterDomain } : {}),
    ...(options.events ? { events: options.events } : {}),
    ...(options.reissueIntervalMs !== undefined ? { reissueIntervalMs: options.reissueIntervalMs } : {}),
    ...(options.onSync ? { onSync: options.onSync } : {}),
    createdOf: (parentType: string, parentKey: string) => {
      const informer =
        parentType === ENDPOINTS_PARENT_TYPE
          ? endpoints
          : parentType === PROXY_GROUP_PARENT_TYPE
            ? proxyGroups
            : undefined;
      const { namespace, name } = splitKey(parentKey);
      return createdMs(informer?.get(namespace, name));
    },
  };
  const controller = (name: string, reconcile: ReturnType<typeof createTailscaleEndpointsReconciler>) =>
    createController({
      name,
      log: options.log,
      reconcile,
      clock: options.clock,
      ...(options.workers ? { workers: options.workers } : {}),
      ...(options.registry ? { registry: options.registry } : {}),
    });
  const usingTailnet = (informer: Informer) => (tailnet: KubernetesObject) =>
    informer
      .list()
      .filter((o) => (o as { spec?: { tailnet?: string } }).spec?.tailnet === tailnet.metadata?.name)
      .map(objectKey);

  const endpointsController = controller(
    'tailscaleendpoints',
    createTailscaleEndpointsReconciler({
      ...common,
      getEndpoints: (namespace, name) => endpoints.checked(namespace, name),
      getProxyGroup: (namespace, name) => proxyGroups.checked(namespace, name),
    }),
  ).for(filterUpdates(endpoints));
  const groupController = controller(
    'tailscaleproxygroup',
    createTailscaleProxyGroupReconciler({
      ...common,
      getProxyGroup: (namespace, name) => proxyGroups.checked(namespace, name),
      listEndpoints: () => endpoints.list(),
      checkEndpoints: (raw) => endpoints.check(raw),
      ...(tailscaleGateways ? { listTailscaleGateways: () => tailscaleGateways.valid() } : {}),
    }),
  ).for(filterUpdates(proxyGroups));
  for (const informer of options.children.all()) {
    endpointsController.watch(informer, enqueueForParent(ENDPOINTS_PARENT_TYPE));
    groupController.watch(informer, enqueueForParent(PROXY_GROUP_PARENT_TYPE));
  }
  // An egress Service or EndpointSlice (its name is the Service's) wakes every parent that claims the
  // name, so the loser of an EgressServiceConflict takes the Service once its holder lets it go.
  const claimantsOf = (forGroups: boolean) => (child: KubernetesObject) => {
    const namespace = child.metadata?.namespace;
    const name = child.metadata?.name;
    if (!namespace || !name) return [];
    const keys = new Set<string>();
    for (const tse of endpoints.list()) {
      if (tse.metadata?.namespace !== namespace || !claimsEgressService(tse, name)) continue;
      const group = proxyGroupKeyOf(tse);
      if (forGroups && group) keys.add(group);
      if (!forGroups && !group) keys.add(objectKey(tse));
    }
    return [...keys];
  };
  for (const kind of ['Service', 'EndpointSlice'] as const) {
    endpointsController.watch(options.children.informers[kind], claimantsOf(false));
    groupController.watch(options.children.informers[kind], claimantsOf(true));
  }
  // A certificate's Secret is named after its DNS name, so another ingress group hosting the name shares
  // it: any event of one wakes every ingress group (rare: created, issued, renewed, deleted), so a sharer
  // re-creates it when its holder lets it go, advertises once it is issued, and rolls its Pods when it
  // is renewed (src/proxy/certificate-revision.ts). Every update counts, not only label or spec changes:
  // a renewal changes nothing but `data`.
  groupController.watch(options.children.informers.Secret, (secret) =>
    secret.metadata?.labels?.[SECRET_TYPE_LABEL] === CERT_SECRET_TYPE
      ? proxyGroups
          .list()
          .filter((group) => (group as { spec?: { type?: string } }).spec?.type === 'ingress')
          .map(objectKey)
      : [],
  );
  endpointsController.watch(tailnets, usingTailnet(endpoints));
  groupController.watch(tailnets, usingTailnet(proxyGroups));
  groupController.watch(withPreviousOnUpdate(endpoints), (tse) => {
    const group = proxyGroupKeyOf(tse);
    return group ? [group] : [];
  });
  if (options.tailscaleGateways) {
    // Spec edits and the published state of its services (status.services, written by the leader's
    // services controller): the groups named before and after.
    const servicesChanged = (obj: KubernetesObject, old: KubernetesObject) =>
      specChanged(obj, old) ||
      JSON.stringify((obj as { status?: { services?: unknown } }).status?.services ?? null) !==
        JSON.stringify((old as { status?: { services?: unknown } }).status?.services ?? null);
    groupController.watch(
      withPreviousOnUpdate(options.tailscaleGateways, servicesChanged),
      ingressProxyGroupsOf,
    );
  }
  endpointsController.watch(proxyGroups, (group) => {
    const key = objectKey(group);
    return endpoints
      .list()
      .filter((tse) => proxyGroupKeyOf(tse) === key)
      .map(objectKey);
  });
  return {
    endpoints: endpointsController,
    proxyGroups: groupController,
    ownInformers: own,
    proxyGroupInformer: proxyGroups,
  };
}

const claimedNames = new WeakMap<KubernetesObject, ReadonlySet<string>>();

/**
 * Whether a (cached, unvalidated) TailscaleEndpoints computes the egress Service name `name`. Every
 * egress Service and EndpointSlice event asks it of every TailscaleEndpoints, so each cached object's
 * names are computed once (an informer replaces an object on change, never mutates it). Keyed by object
 * identity safely: it is a memo of a function of the object alone, so a copy merely misses it and
 * computes the same names (unlike data kept beside an object, which a copy would silently lack).
 */
function claimsEgressService(tse: KubernetesObject, name: string): boolean {
  let names = claimedNames.get(tse);
  if (!names) {
    const list = (tse as { spec?: { endpoints?: unknown } }).spec?.endpoints;
    const tseName = tse.metadata?.name;
    names = new Set(
      Array.isArray(list) && tseName
        ? list
            .filter((e: { name?: unknown }) => typeof e?.name === 'string')
            .map((e: { name: string }) => egressServiceName(tseName, e.name))
        : [],
    );
    claimedNames.set(tse, names);
  }
  return names.has(name);
}

/**
 * `run`'s leadership term: the two proxy-parent controllers, with the informers made for them started
 * and stopped with the term.
 */
export function setupProxyParents(options: ProxyControllersOptions, term: Term): ProxyControllers {
  const proxies = createProxyControllers(options);
  for (const informer of proxies.ownInformers) informer.start();
  term.addInformers(...proxies.ownInformers);
  term.addControllers(proxies.endpoints, proxies.proxyGroups);
  return proxies;
}
