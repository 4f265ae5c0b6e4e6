/**
 * TailscaleRoutePolicy in `run`, per leadership term: the status controller (our ancestor entries
 * beside Envoy Gateway's) and the watches that wake it on policy, TailscaleGateway and Gateway API
 * changes.
 *
 * @module
 */
import { createController, type FeatureDeps, type Term } from '../../controller-runtime/index.ts';
import type { Informer, ResourceInformer } from '../../kube/index.ts';
import type { GatewayApiView } from '../../model/gateway-api.ts';
import {
  applyPolicyStatus,
  createRoutePolicyReconciler,
  watchForRoutePolicies,
} from './tailscale-route-policy.ts';

export interface TailscaleRoutePolicySetupOptions extends FeatureDeps {
  routePolicies: ResourceInformer<'TailscaleRoutePolicy'>;
  tailscaleGateways: Informer;
  gatewayApi: GatewayApiView;
}

export function setupTailscaleRoutePolicy(options: TailscaleRoutePolicySetupOptions, term: Term): void {
  const { kube, routePolicies, tailscaleGateways, gatewayApi } = options;
  const policies = createController({
    name: 'tailscaleroutepolicy',
    log: options.log,
    registry: options.registry,
    reconcile: createRoutePolicyReconciler({
      getPolicy: (namespace, name) => routePolicies.checked(namespace, name),
      listPolicies: (namespace) => routePolicies.valid(namespace),
      getTarget: (kind, namespace, name) => {
        if (kind === 'TailscaleGateway') return tailscaleGateways.get(namespace, name);
        if (!gatewayApi.kindsKnown()) return 'unknown';
        const informer = gatewayApi.get(kind);
        if (!informer) return 'not-served';
        return informer.hasSynced() ? informer.get(namespace, name) : 'unknown';
      },
      writeStatus: (obj, status, abort) => applyPolicyStatus(kube, obj, status, abort),
      events: options.events,
      clock: options.clock,
    }),
  }).for(routePolicies);
  term.onEnd(
    watchForRoutePolicies(policies, {
      policies: routePolicies,
      tailscaleGateways,
      onGatewayApiInformer: (listener) => gatewayApi.onInformer(listener),
    }),
  );
  term.addControllers(policies);
}
