/**
 * What the TailscaleEndpoints and TailscaleProxyGroup controllers share: their primary informers, the
 * TailscaleTailnet and TailscaleGateway caches, the common reconciler options, and the watch mappers
 * both use (the egress Service claimants, the objects using a tailnet). Each controller, with its own
 * watches, is created in its feature's setup (`tailscale-endpoints/setup.ts`,
 * `tailscale-proxy-group/setup.ts`); `run`, the tests and the benchmark build both from this, so all
 * three run the same thing.
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
  type EventRecorder,
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
import { specOf } from '../kube/object-fields.ts';
import { egressServiceName } from '../model/egress-target.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProxyInformers } from '../proxy/informers.ts';
import type { ProxyKube } from '../proxy/kube.ts';
import { ENDPOINTS_PARENT_TYPE, PROXY_GROUP_PARENT_TYPE } from '../proxy/parent-types.ts';
import { type ProxyParentsShared, proxyGroupKeyOf } from '../proxy/parents.ts';
import type { SyncResult } from '../proxy/sync.ts';
import { cacheTransformFor } from '../tailnet-discovery/index.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import { createTailscaleEndpointsController } from './tailscale-endpoints/setup.ts';
import { createTailscaleProxyGroupController } from './tailscale-proxy-group/setup.ts';

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

/** What both parents' setups share, plus the informers made for them here. */
export interface ProxyParents extends ProxyParentsShared {
  /** Informers made here (not the shared ones): start them, and stop them at shutdown. */
  ownInformers: Informer[];
}

/**
 * The caches, reconciler options and watch mappers both proxy parents share; each parent's setup
 * (`tailscale-endpoints/setup.ts`, `tailscale-proxy-group/setup.ts`) creates its controller from them.
 */
export function createProxyParents(options: ProxyControllersOptions): ProxyParents {
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
  const reconciler = {
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
  const usingTailnet = (informer: Informer) => (tailnet: KubernetesObject) =>
    informer
      .list()
      .filter((o) => specOf(o).tailnet === tailnet.metadata?.name)
      .map(objectKey);
  // An egress Service or EndpointSlice (its name is the Service's) wakes every parent that claims the
  // name, so the loser of an EgressServiceConflict takes the Service once its holder lets it go.
  const egressClaimants = (forGroups: boolean) => (child: KubernetesObject) => {
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
  return {
    endpoints,
    proxyGroups,
    tailnets,
    ...(tailscaleGateways ? { tailscaleGateways } : {}),
    children: options.children,
    reconciler,
    controller: {
      log: options.log,
      clock: options.clock,
      ...(options.workers ? { workers: options.workers } : {}),
      ...(options.registry ? { registry: options.registry } : {}),
    },
    egressClaimants,
    usingTailnet,
    ownInformers: own,
  };
}

/** Both proxy-parent controllers, created (not started), for the tests and the benchmark. */
export function createProxyControllers(options: ProxyControllersOptions): ProxyControllers {
  const parents = createProxyParents(options);
  return {
    endpoints: createTailscaleEndpointsController(parents),
    proxyGroups: createTailscaleProxyGroupController(parents),
    ownInformers: parents.ownInformers,
    proxyGroupInformer: parents.proxyGroups,
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
    const list = specOf(tse).endpoints;
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
 * `run`'s leadership term: what the two proxy parents share, with the informers made for them started
 * and stopped with the term. The entry point then calls each parent's setup with it.
 */
export function startProxyParents(options: ProxyControllersOptions, term: Term): ProxyParents {
  const parents = createProxyParents(options);
  for (const informer of parents.ownInformers) informer.start();
  term.addInformers(...parents.ownInformers);
  return parents;
}
