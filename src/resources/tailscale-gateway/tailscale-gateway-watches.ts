/**
 * Which keys of the three TailscaleGateway-side controllers an informer event concerns:
 * - `status` (TailscaleGateway `namespace/name`): its own events, its Gateway's, its tailnets', the
 *   TailscaleEndpoints it generates routes for, and routes attached to its Gateway;
 * - `trigger` (Gateway `namespace/name`): the Gateways those TailscaleGateways join (old and new), and
 *   the parent Gateways of a route naming a TailscaleEndpoints (its backendRef ports are in the digest);
 * - `endpointsRoutes` (TailscaleEndpoints `namespace/name`): the endpoints a route names (before and after),
 *   and those in a changed TailscaleGateway's namespace (whether it generates their failover route).
 *
 * "Before" comes from the index at event time (the feed applies the event to the index a microtask
 * later), "after" from the event's object, and what only the updated index can tell (which
 * TailscaleGateways use an endpoints object now) is resolved when the store publishes the rebuild:
 * keys are collected per event and handed to the controllers from the store's subscription, so no
 * reconcile runs against an index that has not seen the event yet.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { keyOf, namespaceOf, splitKey } from '../../kube/index.ts';
import type { Informer } from '../../kube/informer.ts';
import { fieldsOf, specOf } from '../../kube/object-fields.ts';
import { isEndpointsBackend, isGatewayParent, isRouteKind, parseRoute } from '../../model/gateway-api.ts';
import type { ResourceStore } from '../../model/resource-store.ts';
import { CONDITION_CLUSTERS_CONSISTENT, CONDITION_ROUTE_REFERENCES } from './tailscale-endpoints-routes.ts';
import { REVISION_ANNOTATION } from './tailscale-gateway-trigger.ts';

/** The conditions the endpoints-routes reconciler writes, whose holders it must revisit at a resync. */
const OWN_CONDITIONS = new Set([CONDITION_ROUTE_REFERENCES, CONDITION_CLUSTERS_CONSISTENT]);

export interface GatewayWatchTargets {
  status(key: string): void;
  trigger(key: string): void;
  endpointsRoutes(key: string): void;
}

export interface GatewayWatchesOptions {
  store: ResourceStore;
  tailnets: Informer;
  endpoints: Informer;
  tailscaleGateways: Informer;
  /** Gateway API informers, as discovery starts them. */
  onGatewayApiInformer(listener: (informer: Informer) => void): () => void;
  targets: GatewayWatchTargets;
}

export function watchForTailscaleGateways(options: GatewayWatchesOptions): {
  stop(): void;
  resyncAll(): void;
} {
  const { store, targets } = options;
  const pending = {
    status: new Set<string>(),
    trigger: new Set<string>(),
    endpointsRoutes: new Set<string>(),
  };
  /** Endpoints whose TailscaleGateways must be looked up after the index has the event. */
  const endpointsAfter = new Set<string>();
  const index = () => store.snapshot().index;

  const onRoute = (obj: KubernetesObject) => {
    const now = parseRoute(obj);
    if (!now) return;
    const before = index().route(now.kind, now.namespace, now.name);
    for (const route of [now, before]) {
      if (!route) continue;
      const named = route.backends.filter(isEndpointsBackend);
      for (const backend of named) pending.endpointsRoutes.add(keyOf(backend.namespace, backend.name));
      for (const parent of route.parents.filter(isGatewayParent)) {
        if (named.length > 0) pending.trigger.add(keyOf(parent.namespace, parent.name));
        for (const tsgw of index().tailscaleGatewaysOfGateway(parent.namespace, parent.name))
          pending.status.add(tsgw);
      }
    }
  };
  const onGateway = (obj: KubernetesObject) => {
    const namespace = namespaceOf(obj);
    const name = obj.metadata?.name ?? '';
    pending.trigger.add(keyOf(namespace, name));
    for (const tsgw of index().tailscaleGatewaysOfGateway(namespace, name)) pending.status.add(tsgw);
  };
  const onTailscaleGateway = (obj: KubernetesObject) => {
    const namespace = namespaceOf(obj);
    const name = obj.metadata?.name ?? '';
    pending.status.add(keyOf(namespace, name));
    const before = index().gatewayOfTailscaleGateway(namespace, name);
    if (before) pending.trigger.add(before);
    const ref = fieldsOf(specOf(obj).gatewayRef);
    if (typeof ref.name === 'string' && ref.name)
      pending.trigger.add(keyOf(typeof ref.namespace === 'string' ? ref.namespace : namespace, ref.name));
    for (const endpoints of store.snapshot().endpoints)
      if (namespaceOf(endpoints) === namespace)
        pending.endpointsRoutes.add(keyOf(namespace, endpoints.metadata.name));
  };
  const onEndpoints = (obj: KubernetesObject) => {
    const namespace = namespaceOf(obj);
    const name = obj.metadata?.name ?? '';
    const key = keyOf(namespace, name);
    pending.endpointsRoutes.add(key);
    endpointsAfter.add(key);
    for (const tsgw of index().tailscaleGatewaysOfEndpoints(namespace, name)) pending.status.add(tsgw);
  };
  const onTailnet = (obj: KubernetesObject) => {
    for (const tsgw of store.snapshot().gateways)
      if (tsgw.spec.tailnets.some((t) => t.tailscaleTailnetRef.name === obj.metadata?.name))
        pending.status.add(keyOf(namespaceOf(tsgw), tsgw.metadata.name));
    flush();
  };

  const flush = () => {
    const idx = index();
    for (const key of endpointsAfter) {
      const { namespace = '', name } = splitKey(key);
      for (const tsgw of idx.tailscaleGatewaysOfEndpoints(namespace, name)) pending.status.add(tsgw);
    }
    endpointsAfter.clear();
    for (const tsgw of pending.status) {
      const { namespace = '', name } = splitKey(tsgw);
      const gateway = idx.gatewayOfTailscaleGateway(namespace, name);
      if (gateway) pending.trigger.add(gateway);
    }
    for (const key of pending.status) targets.status(key);
    for (const key of pending.trigger) targets.trigger(key);
    for (const key of pending.endpointsRoutes) targets.endpointsRoutes(key);
    pending.status.clear();
    pending.trigger.clear();
    pending.endpointsRoutes.clear();
  };

  const subscribe = (informer: Informer, handler: (obj: KubernetesObject) => void) => [
    informer.on('add', handler),
    informer.on('update', handler),
    informer.on('delete', handler),
  ];
  const offs = [
    ...subscribe(options.tailscaleGateways, onTailscaleGateway),
    ...subscribe(options.endpoints, onEndpoints),
    ...subscribe(options.tailnets, onTailnet),
    store.subscribe(flush),
  ];
  offs.push(
    options.onGatewayApiInformer((informer) => {
      offs.push(
        ...subscribe(informer, (obj) => {
          if (isRouteKind(obj.kind)) onRoute(obj);
          else if (obj.kind === 'Gateway') onGateway(obj);
        }),
      );
    }),
  );

  return {
    stop() {
      for (const off of offs.splice(0)) off();
    },
    /** Every key each controller could care about: at start, and for a periodic repair. */
    resyncAll() {
      const snapshot = store.snapshot();
      const idx = snapshot.index;
      for (const tsgw of snapshot.gateways) {
        const key = keyOf(namespaceOf(tsgw), tsgw.metadata.name);
        pending.status.add(key);
      }
      for (const route of idx.routes()) {
        const named = route.backends.filter(isEndpointsBackend);
        for (const backend of named) pending.endpointsRoutes.add(keyOf(backend.namespace, backend.name));
        if (named.length > 0)
          for (const parent of route.parents.filter(isGatewayParent))
            pending.trigger.add(keyOf(parent.namespace, parent.name));
      }
      for (const endpoints of snapshot.endpoints)
        if (endpoints.status?.conditions?.some((c) => OWN_CONDITIONS.has(c.type)))
          pending.endpointsRoutes.add(keyOf(namespaceOf(endpoints), endpoints.metadata.name));
      for (const gateway of idx.gateways())
        if (gateway.annotations[REVISION_ANNOTATION] !== undefined)
          pending.trigger.add(keyOf(gateway.namespace, gateway.name));
      flush();
    },
  };
}
