/**
 * The TailscaleGateway reconciler (leader only): validates the gatewayRef and the tailnet refs,
 * reports per-tailnet status, the routes it generates and the routes on its Gateway that name
 * TailscaleEndpoints, and the conditions of tailscale-gateway-status.ts. Everything it reads is in the
 * caches (store, index, TailscaleTailnet informer); it writes status only when it changed.
 *
 * It never touches what the hooks read: routeGeneration reaches the next hook call through the store
 * the moment the informer sees the edit (hot reload), reconciled or not.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Checked, TailscaleGateway, TailscaleGatewayStatus } from '../../api/index.ts';
import type { Clock, EventRecorder, ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { recordReadyTransition } from '../../controller-runtime/index.ts';
import { splitKey } from '../../kube/index.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import { joinedGatewayKey, servicesOf } from '../../model/route-generation.ts';
import {
  desiredGatewayStatus,
  type GatewayObservation,
  gatewayStatusEqual,
  type TailnetObservation,
} from './tailscale-gateway-status.ts';
import { gatewayRevision, REVISION_ANNOTATION } from './tailscale-gateway-trigger.ts';

export interface TailscaleGatewayReconcilerOptions {
  getTailscaleGateway(namespace: string, name: string): Checked<TailscaleGateway> | undefined;
  getTailnet(name: string): KubernetesObject | undefined;
  snapshot(): ResourceSnapshot;
  /** Whether the cluster serves the Gateway kind (discovery). */
  gatewayApiServed(): boolean;
  writeStatus(obj: KubernetesObject, status: TailscaleGatewayStatus, signal: AbortSignal): Promise<void>;
  events: EventRecorder;
  clock: Clock;
}

export function createTailscaleGatewayReconciler(options: TailscaleGatewayReconcilerOptions): Reconciler {
  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const checked = options.getTailscaleGateway(namespace, name);
    if (!checked) return undefined;
    if (!checked.ok) {
      log.error({ issues: checked.issues }, 'TailscaleGateway does not match the schema; skipping');
      return undefined;
    }
    const { value: tsgw, raw } = checked;
    const snapshot = options.snapshot();
    const observed = observe(tsgw, snapshot);
    const verdict = desiredGatewayStatus(tsgw, observed, new Date(options.clock.now()));
    if (gatewayStatusEqual(tsgw.status, verdict.status)) return undefined;
    await options.writeStatus(raw, verdict.status, signal);
    recordReadyTransition(options.events, raw, tsgw.status?.conditions, verdict, 'Reconcile');
    log.info({ ready: verdict.ready, reason: verdict.status.conditions?.[0]?.reason }, 'status updated');
    return undefined;
  };

  function observe(tsgw: Parameters<typeof servicesOf>[0], snapshot: ResourceSnapshot): GatewayObservation {
    const index = snapshot.index;
    const gatewayKey = joinedGatewayKey(tsgw);
    const { namespace: gwNamespace = '', name: gwName } = splitKey(gatewayKey ?? '/');
    const gateway = gatewayKey ? index.gateway(gwNamespace, gwName) : undefined;
    const tailnets = new Map<string, TailnetObservation>();
    for (const attachment of tsgw.spec.tailnets) {
      const ref = attachment.tailscaleTailnetRef.name;
      const raw = options.getTailnet(ref) as
        | { status?: { conditions?: { type: string; status: string; reason?: string }[] } }
        | undefined;
      if (!raw) {
        tailnets.set(ref, { state: 'missing' });
        continue;
      }
      const ready = raw.status?.conditions?.find((c) => c.type === 'Ready');
      tailnets.set(ref, {
        state: 'present',
        ready: ready?.status === 'True' ? 'True' : ready?.status === 'False' ? 'False' : 'Unknown',
        ...(ready?.reason ? { reason: ready.reason } : {}),
      });
    }
    const routes = gatewayKey
      ? index
          .routesOfGateway(gwNamespace, gwName)
          .map((route) => ({ route, endpoints: index.endpointsOfRoute(route) }))
          .filter((r) => r.endpoints.length > 0)
      : [];
    return {
      gatewayApi: options.gatewayApiServed(),
      gateway: gateway
        ? { namespace: gwNamespace, name: gwName, revision: gateway.annotations[REVISION_ANNOTATION] }
        : undefined,
      tailnets,
      services: servicesOf(tsgw, snapshot),
      routes,
      revision: gatewayKey ? gatewayRevision(gatewayKey, snapshot) : undefined,
    };
  }
}
