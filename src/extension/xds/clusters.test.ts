import { describe, expect, test } from 'bun:test';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { endpointsObject } from '../../testing/xds-resources.ts';
import { buildHealthChecks } from './clusters.ts';

const membersOf = (endpoints: ReturnType<typeof endpointsObject>) =>
  endpoints.spec.endpoints.map((endpoint) => ({ endpoints, endpoint }));

describe('buildHealthChecks', () => {
  const failover = endpointsObject('web', [
    {
      name: 'p0',
      tailscaleFQDN: 'web0.tail.ts.net',
      port: 80,
      priority: 0,
      healthCheck: { interval: '1s', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 },
    },
    { name: 'p1', tailscaleFQDN: 'web1.tail.ts.net', port: 80, priority: 1, healthCheck: {} },
  ]);

  test('probes at the endpoint’s interval from the start: no_traffic_interval is the interval, not Envoy’s 60 s', () => {
    const [check] = buildHealthChecks(membersOf(failover));
    expect(check?.interval).toEqual(durationFromMs(1000));
    // A cluster Envoy has just been given has carried no traffic; with the default no_traffic_interval
    // its first probe after the initial one waits 60 s whatever `interval` says.
    expect(check?.noTrafficInterval).toEqual(durationFromMs(1000));
    expect(check?.timeout).toEqual(durationFromMs(500));
    expect(check).toMatchObject({ unhealthyThreshold: 2, healthyThreshold: 2 });
    expect(check?.healthChecker).toMatchObject({ case: 'httpHealthCheck', value: { path: '/health' } });
  });

  test('the defaults (10 s) also probe at 10 s before traffic', () => {
    const [check] = buildHealthChecks(
      membersOf(
        endpointsObject('db', [
          { name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP', healthCheck: {} },
        ]),
      ),
    );
    expect(check?.noTrafficInterval).toEqual(durationFromMs(10_000));
    expect(check?.healthChecker.case).toBe('tcpHealthCheck');
  });

  test('no endpoint asks for checks: none', () => {
    expect(
      buildHealthChecks(
        membersOf(endpointsObject('x', [{ name: 'x', tailscaleIP: '100.64.0.1', port: 80 }])),
      ),
    ).toEqual([]);
  });
});
