/**
 * The settings the TailscaleGateway feature reads (`run` only), picked from the CLI's Config at the
 * config edge: runOperator hands the feature these and nothing else, so it cannot come to depend on the
 * whole Config, and a setting the feature gains is a type error here rather than a line to remember in
 * the entry point.
 *
 * @module
 */
import type { TailscaleGatewaySettings } from '../resources/tailscale-gateway/setup.ts';
import type { Config } from './schema.ts';

export function tailscaleGatewaySettingsOf(
  config: Pick<Config, keyof TailscaleGatewaySettings>,
): TailscaleGatewaySettings {
  const { serviceStaleAfter, serviceReverifyMin, serviceReverifyMax, clusterDomain } = config;
  return { serviceStaleAfter, serviceReverifyMin, serviceReverifyMax, clusterDomain };
}
