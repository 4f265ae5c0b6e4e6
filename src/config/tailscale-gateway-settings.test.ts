/** The TailscaleGateway feature's settings, as runOperator hands them over: those four, parsed, nothing else. */
import { expect, test } from 'bun:test';
import { parseConfig } from './parse.ts';
import { tailscaleGatewaySettingsOf } from './tailscale-gateway-settings.ts';

test('picks the coordinator timings and the cluster domain from flags and environment, nothing else', () => {
  const config = parseConfig({
    flags: { serviceStaleAfter: '7200', serviceReverifyMin: '60' },
    env: { TSGW_SERVICE_REVERIFY_MAX: '90', TSGW_CLUSTER_DOMAIN: 'corp.example' },
  });
  expect(tailscaleGatewaySettingsOf(config)).toEqual({
    serviceStaleAfter: 7200,
    serviceReverifyMin: 60,
    serviceReverifyMax: 90,
    clusterDomain: 'corp.example',
  });
});

test('defaults when unset', () => {
  expect(tailscaleGatewaySettingsOf(parseConfig({ flags: {}, env: {} }))).toEqual({
    serviceStaleAfter: 1800,
    serviceReverifyMin: 300,
    serviceReverifyMax: 600,
    clusterDomain: 'cluster.local',
  });
});
