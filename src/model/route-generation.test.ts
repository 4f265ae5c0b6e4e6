import { describe, expect, test } from 'bun:test';
import { create } from '@bufbuild/protobuf';
import { RouteSchema, VirtualHostSchema } from '../../gen/envoy/config/route/v3/route_components_pb.ts';
import { isCatchAll, placeRoutes } from '../extension/xds/routes.ts';
import { API, endpointsObject, gatewayObject, snapshotOf, WEB } from '../testing/xds-resources.ts';
import { clusterName, isGeneratedName, routeName } from './names.ts';
import {
  allServices,
  expandPattern,
  gatewaysOfVirtualHost,
  hostCovers,
  normalizePrefix,
  selectsVirtualHost,
  servicesOf,
} from './route-generation.ts';

describe('names', () => {
  test('route and cluster share one scheme under the tailscale/ prefix', () => {
    expect(clusterName('ns', 'api')).toBe('tailscale/ns/api');
    expect(clusterName('ns', 'api', 'primary')).toBe('tailscale/ns/api/primary');
    expect(routeName('ns', 'api', 'primary')).toBe(clusterName('ns', 'api', 'primary'));
    expect(isGeneratedName('tailscale/ns/api')).toBe(true);
    expect(isGeneratedName('httproute/ns/tailscale/rule/0')).toBe(false);
  });
});

describe('patterns', () => {
  test('expands every placeholder occurrence', () => {
    expect(expandPattern('/{tailnet}/{service}/{service}', { service: 's', tailnet: 't' })).toBe('/t/s/s');
  });
  test('prefixes end in one slash', () => {
    expect(normalizePrefix('/a/b')).toBe('/a/b/');
    expect(normalizePrefix('/a/b/')).toBe('/a/b/');
    expect(normalizePrefix('/a/b//')).toBe('/a/b/');
    expect(normalizePrefix('//')).toBe('/');
  });
});

describe('egress hostPattern', () => {
  test.each([
    ['internal.example.com', 'internal.example.com', true],
    ['internal.example.com', 'INTERNAL.example.com.', true],
    ['internal.example.com', 'internal.example.com:8080', true],
    ['internal.example.com', 'other.example.com', false],
    ['internal.example.com', '*.example.com', false],
    ['internal.example.com', '*', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', '*.example.com', true],
    ['*.example.com', '*.a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'aexample.com', false],
    ['*.example.com', '*', false],
    ['*.a.example.com', '*.example.com', false],
  ] as const)('%s covers %s: %p', (pattern, domain, expected) => {
    expect(hostCovers(pattern, domain)).toBe(expected);
  });

  test('a virtual host is selected when every domain is covered; unset selects all', () => {
    expect(selectsVirtualHost(undefined, ['*'])).toBe(true);
    expect(selectsVirtualHost('*.example.com', ['a.example.com', 'b.example.com'])).toBe(true);
    expect(selectsVirtualHost('*.example.com', ['a.example.com', 'a.example.org'])).toBe(false);
    expect(selectsVirtualHost('*.example.com', [])).toBe(false);
  });

  test('placeholders are expanded per service and tailnet; the legacy default counts as unset', () => {
    const [service] = servicesOf(
      gatewayObject({ hostPattern: '{service}.{tailnet}.example.com' }),
      snapshotOf(WEB()),
    );
    expect(service?.hostPattern).toBe('httpbin.corp.example.com');
    const [legacy] = servicesOf(
      gatewayObject({ hostPattern: '{service}.tailscale.local' }),
      snapshotOf(WEB()),
    );
    expect(legacy?.hostPattern).toBeUndefined();
  });
});

describe('services', () => {
  test('a failover group comes first, then endpoints in spec order', () => {
    const services = servicesOf(gatewayObject(), snapshotOf(API(), WEB()));
    expect(services.map((s) => [s.name, s.pathPrefix, s.members.length])).toEqual([
      ['tailscale/default/api', '/tailscale/api/', 2],
      ['tailscale/default/api/api-primary', '/tailscale/api-primary/', 1],
      ['tailscale/default/api/api-standby', '/tailscale/api-standby/', 1],
      ['tailscale/default/web/httpbin', '/tailscale/httpbin/', 1],
      ['tailscale/default/web/grafana', '/tailscale/grafana/', 1],
    ]);
  });

  test('the deprecated egress.protocol changes nothing: each endpoint keeps its own protocol', () => {
    const withProtocol = (protocol: 'HTTP' | 'HTTPS' | undefined) => {
      const gateway = structuredClone(gatewayObject());
      const egress = gateway.spec.tailnets[0]!.routeGeneration.egress;
      expect(egress.protocol).toBeUndefined(); // no default is stored any more
      if (protocol !== undefined) egress.protocol = protocol;
      const vault = endpointsObject('vault', [
        { name: 'vault', tailscaleFQDN: 'vault.tail1234.ts.net', port: 443, protocol: 'HTTPS' },
      ]);
      return servicesOf(gateway, snapshotOf(API(), WEB(), vault));
    };
    const unset = withProtocol(undefined);
    expect(withProtocol('HTTP')).toEqual(unset);
    expect(withProtocol('HTTPS')).toEqual(unset);
    expect(new Set(unset.flatMap((s) => s.members.map((m) => m.endpoint.protocol)))).toEqual(
      new Set(['HTTP', 'HTTPS']),
    );
  });

  test('allServices names each cluster once across gateways', () => {
    const snapshot = snapshotOf(
      WEB(),
      gatewayObject({ name: 'a' }),
      gatewayObject({ name: 'b', pathPrefix: '/x/{service}/' }),
    );
    expect(allServices(snapshot).map((s) => s.name)).toEqual([
      'tailscale/default/web/httpbin',
      'tailscale/default/web/grafana',
    ]);
  });
});

describe('gatewaysOfVirtualHost', () => {
  test('reads legacy Gateway and ListenerSet names', () => {
    const vhost = (name: string) => create(VirtualHostSchema, { name });
    expect(gatewaysOfVirtualHost(vhost('infra/eg/http/www_example_com'))).toEqual([
      { namespace: 'infra', name: 'eg', listener: 'http' },
    ]);
    expect(gatewaysOfVirtualHost(vhost('infra/eg/apps/ls/https/www_example_com'))).toEqual([
      { namespace: 'infra', name: 'eg', listener: 'https' },
    ]);
    expect(gatewaysOfVirtualHost(vhost('www_example_com'))).toEqual([]);
  });
});

describe('placeRoutes', () => {
  const route = (name: string, prefix: string) =>
    create(RouteSchema, { name, match: { pathSpecifier: { case: 'prefix', value: prefix } } });

  test('replaces earlier generated routes and goes before the first catch-all', () => {
    const existing = [
      route('a', '/a'),
      route('tailscale/old', '/tailscale/old/'),
      route('all', '/'),
      route('b', '/b'),
    ];
    const placed = placeRoutes(existing, [route('tailscale/new', '/tailscale/new/')]);
    expect(placed.map((r) => r.name)).toEqual(['a', 'tailscale/new', 'all', 'b']);
  });

  test('a route without a match is not a catch-all', () => {
    expect(isCatchAll(create(RouteSchema, { name: 'x' }))).toBe(false);
    expect(isCatchAll(route('x', '/x'))).toBe(false);
  });
});
