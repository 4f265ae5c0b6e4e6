/**
 * TailscaleEndpoints in `run`, per leadership term: tailnet service discovery (`spec.discovery` fills
 * `spec.endpoints`). Its proxies are set up with TailscaleProxyGroup's (`../proxy-parents.ts`), since
 * the two wake each other.
 *
 * @module
 */
import type { Term } from '../../controller-runtime/index.ts';
import {
  createDiscoveryController,
  type DiscoveryControllerOptions,
} from './tailscale-endpoints-discovery.ts';

export function setupTailscaleEndpointsDiscovery(options: DiscoveryControllerOptions, term: Term): void {
  term.addControllers(createDiscoveryController(options));
}
