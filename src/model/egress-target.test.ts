import { describe, expect, test } from 'bun:test';
import { API_VERSION, parseResource, type TailscaleEndpoints } from '../api/index.ts';
import { egressServiceName, egressTarget } from './egress-target.ts';

const object = (endpoint: Record<string, unknown>, connectionType?: string, namespace?: string) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleEndpoints',
    metadata: namespace === undefined ? { name: 'web' } : { name: 'web', namespace },
    spec: {
      tailnet: 'corp',
      endpoints: [endpoint],
      ...(connectionType === undefined ? {} : { proxy: { connectionType } }),
    },
  }) as TailscaleEndpoints;
const target =
  (...args: Parameters<typeof object>) =>
  (options?: Parameters<typeof egressTarget>[2]) => {
    const endpoints = object(...args);
    return egressTarget(endpoints, endpoints.spec.endpoints[0]!, options);
  };

const grafana = { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net.', port: 3000 };

describe('egressTarget', () => {
  test('goes to the egress proxy Service by default', () => {
    expect(target(grafana, undefined, 'team')()).toEqual({
      via: 'egress-proxy',
      serviceName: 'web-grafana-egress',
      namespace: 'team',
      host: 'web-grafana-egress.team.svc.cluster.local',
      port: 3000,
    });
  });

  test('uses the cluster domain and the default namespace', () => {
    expect(target(grafana)({ clusterDomain: 'k8s.internal' })).toMatchObject({
      host: 'web-grafana-egress.default.svc.k8s.internal',
    });
  });

  test('egress and bidirectional proxies carry egress traffic; ingress-only ones do not', () => {
    expect(target(grafana, 'egress')().via).toBe('egress-proxy');
    expect(target(grafana, 'bidirectional')().via).toBe('egress-proxy');
    expect(target(grafana, 'ingress')()).toEqual({
      via: 'tailnet',
      host: 'grafana.tail1234.ts.net',
      port: 3000,
    });
  });

  test('without proxies: externalTarget first, then the tailnet IP, then the FQDN', () => {
    const noProxies = { proxies: false };
    expect(target({ ...grafana, externalTarget: 'grafana.example.com:443' })(noProxies)).toEqual({
      via: 'external-target',
      host: 'grafana.example.com',
      port: 443,
    });
    expect(target({ ...grafana, tailscaleIP: '100.64.0.7' })(noProxies)).toEqual({
      via: 'tailnet',
      host: '100.64.0.7',
      port: 3000,
    });
    expect(target(grafana)(noProxies)).toEqual({
      via: 'tailnet',
      host: 'grafana.tail1234.ts.net',
      port: 3000,
    });
  });

  test('ingress-only with an externalTarget goes there', () => {
    expect(target({ ...grafana, externalTarget: '10.0.0.5:8080' }, 'ingress')()).toEqual({
      via: 'external-target',
      host: '10.0.0.5',
      port: 8080,
    });
  });

  test('an endpoint outside the tailnet (externalTarget only) is reached directly even with egress proxies', () => {
    expect(target({ name: 'site', externalTarget: 'site.example.com:443', port: 443 })()).toEqual({
      via: 'external-target',
      host: 'site.example.com',
      port: 443,
    });
  });

  test('an IPv6 externalTarget loses its brackets', () => {
    expect(
      target({ name: 'v6', port: 80, externalTarget: '[fd7a:115c:a1e0::1]:8443' })({ proxies: false }),
    ).toEqual({
      via: 'external-target',
      host: 'fd7a:115c:a1e0::1',
      port: 8443,
    });
  });
});

describe('egressServiceName', () => {
  test('is <endpoints>-<endpoint>-egress when that fits', () => {
    expect(egressServiceName('web', 'grafana')).toBe('web-grafana-egress');
    const exact = egressServiceName('a'.repeat(30), 'b'.repeat(25));
    expect(exact).toBe(`${'a'.repeat(30)}-${'b'.repeat(25)}-egress`);
    expect(exact).toHaveLength(63);
  });

  test('is truncated with a stable hash beyond 63 characters', () => {
    const long = egressServiceName('a'.repeat(40), 'b'.repeat(40));
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^a{40}-b+-[0-9a-f]{8}-egress$/);
    expect(egressServiceName('a'.repeat(40), 'b'.repeat(40))).toBe(long);
    expect(egressServiceName('a'.repeat(40), `${'b'.repeat(39)}c`)).not.toBe(long);
  });

  test('never leaves a dash before the hash', () => {
    // The cut falls right after "x-", which would give "--".
    const name = egressServiceName(`${'x'.repeat(45)}-y`, 'z'.repeat(30));
    expect(name).not.toContain('--');
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});
