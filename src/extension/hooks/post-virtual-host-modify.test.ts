import { describe, expect, test } from 'bun:test';
import { create, equals, toJson } from '@bufbuild/protobuf';
import { HeaderValueOption_HeaderAppendAction } from '../../../gen/envoy/config/core/v3/base_pb.ts';
import { RouteSchema, VirtualHostSchema } from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import { PostVirtualHostModifyRequestSchema } from '../../../gen/envoygateway/extension/service_pb.ts';
import { forwardedPath } from '../../testing/envoy-path.ts';
import {
  API,
  egRoute,
  egVirtualHost,
  endpointsObject,
  gatewayObject,
  snapshotOf,
  WEB,
} from '../../testing/xds-resources.ts';
import { createExtensionHooks } from './index.ts';

const hooks = createExtensionHooks({ proxies: false });
const request = (virtualHost = egVirtualHost([])) =>
  create(PostVirtualHostModifyRequestSchema, { virtualHost });

describe('PostVirtualHostModify', () => {
  const snapshot = snapshotOf(WEB(), API(), gatewayObject());

  test('adds one route per HTTP endpoint and one per failover group, named and headed', () => {
    const { response, effect } = hooks.postVirtualHostModify(request(), snapshot);
    const names = response.virtualHost?.routes.map((r) => r.name);
    expect(names).toEqual([
      'tailscale/default/api',
      'tailscale/default/api/api-primary',
      'tailscale/default/api/api-standby',
      'tailscale/default/web/httpbin',
      'tailscale/default/web/grafana',
    ]);
    expect(effect).toEqual({ routesAdded: 5 });
    const httpbin = response.virtualHost!.routes[3]!;
    const expected = create(RouteSchema, {
      name: 'tailscale/default/web/httpbin',
      match: { pathSpecifier: { case: 'pathSeparatedPrefix', value: '/tailscale/httpbin' } },
      action: {
        case: 'route',
        value: {
          clusterSpecifier: { case: 'cluster', value: 'tailscale/default/web/httpbin' },
          regexRewrite: { pattern: { regex: '^/tailscale/httpbin/*' }, substitution: '/' },
          hostRewriteSpecifier: { case: 'autoHostRewrite', value: { value: true } },
        },
      },
      requestHeadersToAdd: [
        ['X-Tailscale-Service', 'httpbin'],
        ['X-Tailscale-Tailnet', 'corp'],
        ['X-Tailscale-Endpoints', 'default/web'],
      ].map(([key, value]) => ({
        header: { key, value },
        appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
      })),
    });
    expect(toJson(RouteSchema, httpbin)).toEqual(toJson(RouteSchema, expected));
    expect(equals(RouteSchema, httpbin, expected)).toBe(true);
    const failover = response.virtualHost!.routes[0]!;
    expect(failover.match?.pathSpecifier).toEqual({ case: 'pathSeparatedPrefix', value: '/tailscale/api' });
    expect(failover.action.case === 'route' && failover.action.value.clusterSpecifier.value).toBe(
      'tailscale/default/api',
    );
  });

  test('matches /tailscale/<service> itself and below it, not a longer name, and forwards it as documented', () => {
    const s = snapshotOf(
      endpointsObject('web', [{ name: 'web-service', tailscaleIP: '100.64.0.1', port: 80 }]),
      gatewayObject(),
    );
    const route = hooks.postVirtualHostModify(request(), s).response.virtualHost!.routes[0]!;
    expect(forwardedPath(route, '/tailscale/web-service')).toBe('/');
    expect(forwardedPath(route, '/tailscale/web-service?q=1')).toBe('/?q=1');
    expect(forwardedPath(route, '/tailscale/web-service/')).toBe('/');
    expect(forwardedPath(route, '/tailscale/web-service/a/b?q=1')).toBe('/a/b?q=1');
    expect(forwardedPath(route, '/tailscale/web-servicex')).toBeUndefined();
    expect(forwardedPath(route, '/tailscale/web-servicex/a')).toBeUndefined();
    expect(forwardedPath(route, '/tailscale/web')).toBeUndefined();
  });

  test('a pattern with regular-expression characters is matched and rewritten literally', () => {
    const s = snapshotOf(
      endpointsObject('web', [{ name: 'svc', tailscaleIP: '100.64.0.1', port: 80 }]),
      gatewayObject({ pathPrefix: '/a.b+(c)/{service}' }),
    );
    const route = hooks.postVirtualHostModify(request(), s).response.virtualHost!.routes[0]!;
    expect(forwardedPath(route, '/a.b+(c)/svc/x')).toBe('/x');
    expect(forwardedPath(route, '/aXb+(c)/svc/x')).toBeUndefined();
  });

  test('inserts before a catch-all and after a more specific user route', () => {
    const vhost = egVirtualHost([egRoute('specific', '/app'), egRoute('all', '/'), egRoute('late', '/late')]);
    const { response } = hooks.postVirtualHostModify(request(vhost), snapshot);
    const names = response.virtualHost!.routes.map((r) => r.name);
    expect(names[0]).toBe('httproute/default/specific/rule/0/match/0/www_example_com');
    expect(names.slice(1, 6).every((n) => n.startsWith('tailscale/'))).toBe(true);
    expect(names.slice(6)).toEqual([
      'httproute/default/all/rule/0/match/0/www_example_com',
      'httproute/default/late/rule/0/match/0/www_example_com',
    ]);
  });

  test.each([
    ['path_separated_prefix /', { case: 'pathSeparatedPrefix', value: '/' }],
    ['empty prefix', { case: 'prefix', value: '' }],
    ['regex .*', { case: 'safeRegex', value: { regex: '.*' } }],
  ] as const)('treats %s as a catch-all', (_, pathSpecifier) => {
    const catchAll = create(RouteSchema, { name: 'user/all', match: { pathSpecifier } });
    const { response } = hooks.postVirtualHostModify(request(egVirtualHost([catchAll])), snapshot);
    expect(response.virtualHost!.routes.at(-1)!.name).toBe('user/all');
  });

  test('appends when there is no catch-all', () => {
    const vhost = egVirtualHost([egRoute('specific', '/app')]);
    const { response } = hooks.postVirtualHostModify(request(vhost), snapshot);
    expect(response.virtualHost!.routes[0]!.name).toStartWith('httproute/');
    expect(response.virtualHost!.routes).toHaveLength(6);
  });

  test('is idempotent: its own output comes back unchanged', () => {
    const vhost = egVirtualHost([egRoute('specific', '/app'), egRoute('all', '/')]);
    const once = hooks.postVirtualHostModify(request(vhost), snapshot).response.virtualHost!;
    const twice = hooks.postVirtualHostModify(request(once), snapshot).response.virtualHost!;
    expect(equals(VirtualHostSchema, once, twice)).toBe(true);
  });

  test('does not modify the request', () => {
    const vhost = egVirtualHost([egRoute('all', '/')]);
    const before = create(VirtualHostSchema, vhost);
    hooks.postVirtualHostModify(request(vhost), snapshot);
    expect(equals(VirtualHostSchema, vhost, before)).toBe(true);
    expect(vhost.routes).toHaveLength(1);
  });

  test('expands {service} and {tailnet}, with or without a trailing slash', () => {
    for (const pathPrefix of ['/{tailnet}/svc/{service}', '/{tailnet}/svc/{service}/']) {
      const s = snapshotOf(WEB(), gatewayObject({ pathPrefix }));
      const { response } = hooks.postVirtualHostModify(request(), s);
      expect(response.virtualHost!.routes.map((r) => r.match?.pathSpecifier.value)).toEqual([
        '/corp/svc/httpbin',
        '/corp/svc/grafana',
      ]);
    }
  });

  test('skips a colliding prefix deterministically and a prefix of "/"', () => {
    const other = endpointsObject('other', [
      { name: 'httpbin', tailscaleFQDN: 'httpbin.tail1234.ts.net', port: 80 },
    ]);
    const warnings: string[] = [];
    const logged = createExtensionHooks({
      proxies: false,
      log: { warn: (_o, m) => warnings.push(m), info() {}, debug() {} },
    });
    const { response } = logged.postVirtualHostModify(request(), snapshotOf(WEB(), other, gatewayObject()));
    const names = response.virtualHost!.routes.map((r) => r.name);
    expect(names).toContain('tailscale/default/other/httpbin');
    expect(names).not.toContain('tailscale/default/web/httpbin');
    expect(warnings.some((w) => w.includes('already used by tailscale/default/other/httpbin'))).toBe(true);
  });

  test('hostPattern: routes only on the virtual hosts it covers', () => {
    const vhost = (name: string, domain: string) =>
      create(VirtualHostSchema, { name: `default/eg/http/${name}`, domains: [domain] });
    const names = (s: ReturnType<typeof snapshotOf>, v: ReturnType<typeof vhost>) =>
      hooks.postVirtualHostModify(request(v), s).response.virtualHost?.routes.map((r) => r.name) ?? [];
    const wildcard = snapshotOf(WEB(), gatewayObject({ hostPattern: '*.internal.example.com' }));
    expect(names(wildcard, vhost('a_internal_example_com', 'a.internal.example.com'))).toEqual([
      'tailscale/default/web/httpbin',
      'tailscale/default/web/grafana',
    ]);
    expect(names(wildcard, vhost('www_example_com', 'www.example.com'))).toEqual([]);
    expect(names(wildcard, vhost('all', '*'))).toEqual([]);
    // Per service: each route only on its own host.
    const perService = snapshotOf(WEB(), gatewayObject({ hostPattern: '{service}.example.com' }));
    expect(names(perService, vhost('grafana_example_com', 'grafana.example.com'))).toEqual([
      'tailscale/default/web/grafana',
    ]);
    // Unset, or the old default: every virtual host, the catch-all one included.
    for (const s of [
      snapshotOf(WEB(), gatewayObject()),
      snapshotOf(WEB(), gatewayObject({ hostPattern: '{service}.tailscale.local' })),
    ])
      expect(names(s, vhost('all', '*'))).toHaveLength(2);
  });

  test('hostPattern: a virtual host it no longer covers loses the routes generated there before', () => {
    const withRoutes = hooks.postVirtualHostModify(request(), snapshotOf(WEB(), gatewayObject())).response
      .virtualHost!;
    const narrowed = snapshotOf(WEB(), gatewayObject({ hostPattern: 'internal.example.com' }));
    const after = hooks.postVirtualHostModify(request(withRoutes), narrowed).response.virtualHost!;
    expect(after.routes.filter((r) => r.name.startsWith('tailscale/'))).toEqual([]);
  });

  test('a skipped route is logged once when it appears and once when it clears, per virtual host', () => {
    const lines: [string, string][] = [];
    const logged = createExtensionHooks({
      proxies: false,
      log: {
        warn: (_o, m) => lines.push(['warn', m]),
        info: (_o, m) => lines.push(['info', m]),
        debug() {},
      },
    });
    const other = endpointsObject('other', [
      { name: 'httpbin', tailscaleFQDN: 'httpbin.tail1234.ts.net', port: 80 },
    ]);
    const colliding = snapshotOf(WEB(), other, gatewayObject());
    const vhostB = egVirtualHost([], 'default/eg/http/b_example_com');
    for (let i = 0; i < 3; i++) logged.postVirtualHostModify(request(), colliding);
    logged.postVirtualHostModify(request(vhostB), colliding);
    expect(lines).toEqual([
      [
        'warn',
        'no route generated: path prefix /tailscale/httpbin/ is already used by tailscale/default/other/httpbin',
      ],
      [
        'warn',
        'no route generated: path prefix /tailscale/httpbin/ is already used by tailscale/default/other/httpbin',
      ],
    ]);
    lines.length = 0;
    for (let i = 0; i < 3; i++) logged.postVirtualHostModify(request(), snapshotOf(WEB(), gatewayObject()));
    expect(lines).toEqual([
      [
        'info',
        'cleared: no route generated: path prefix /tailscale/httpbin/ is already used by tailscale/default/other/httpbin',
      ],
    ]);
  });

  test('never generates a "/" route: it would shadow every user route', () => {
    const s = snapshotOf(WEB(), gatewayObject({ pathPrefix: '/', hostPattern: '{service}.example.com' }));
    const vhost = create(VirtualHostSchema, {
      name: 'default/eg/http/httpbin_example_com',
      domains: ['httpbin.example.com'],
    });
    expect(hooks.postVirtualHostModify(request(vhost), s).response.virtualHost).toBeUndefined();
  });

  test('matches the Gateway by metadata when the vhost has a V2 name', () => {
    const vhost = create(VirtualHostSchema, {
      name: 'www_example_com',
      domains: ['www.example.com'],
      metadata: {
        filterMetadata: {
          'envoy-gateway': { resources: [{ kind: 'Gateway', name: 'eg', namespace: 'default' }] },
        },
      },
    });
    expect(hooks.postVirtualHostModify(request(vhost), snapshot).response.virtualHost?.routes).toHaveLength(
      5,
    );
  });

  test('honours gatewayRef namespace and sectionName', () => {
    const elsewhere = snapshotOf(WEB(), gatewayObject({ gatewayNamespace: 'infra' }));
    expect(hooks.postVirtualHostModify(request(), elsewhere).response.virtualHost).toBeUndefined();
    const infraVhost = egVirtualHost([], 'infra/eg/http/www_example_com');
    expect(hooks.postVirtualHostModify(request(infraVhost), elsewhere).response.virtualHost).toBeDefined();
    const otherListener = snapshotOf(WEB(), gatewayObject({ sectionName: 'https' }));
    expect(hooks.postVirtualHostModify(request(), otherListener).response.virtualHost).toBeUndefined();
  });

  test('leaves the virtual host unset when nothing matches', () => {
    const noMatch = [
      snapshotOf(WEB(), gatewayObject({ gateway: 'other' })),
      snapshotOf(WEB()),
      snapshotOf(
        endpointsObject('web', [{ name: 'a', tailscaleIP: '100.64.0.1', port: 1 }], { namespace: 'team' }),
        gatewayObject(),
      ),
      snapshotOf(
        endpointsObject('udp', [{ name: 'dns', tailscaleIP: '100.64.0.1', port: 53, protocol: 'UDP' }]),
        gatewayObject(),
      ),
    ];
    for (const s of noMatch) {
      const result = hooks.postVirtualHostModify(request(), s);
      expect(result.response.virtualHost).toBeUndefined();
      expect(result.effect).toBeUndefined();
    }
    const readiness = egVirtualHost([], 'ready_route');
    expect(hooks.postVirtualHostModify(request(readiness), snapshot).response.virtualHost).toBeUndefined();
  });
});
