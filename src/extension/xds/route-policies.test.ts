/**
 * TailscaleRoutePolicy on xDS, pure: each action, each match kind, each target kind, and the
 * precedence and conflict rules (policy-attachment.ts), through the hooks EG calls.
 */
import { describe, expect, test } from 'bun:test';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type Route,
  RouteMatchSchema,
  type VirtualHost,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import {
  PostRouteModifyRequestSchema,
  PostVirtualHostModifyRequestSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { TailscaleRoutePolicy } from '../../api/index.ts';
import { applicableFor, attachments, comparePolicies, targetsOf } from '../../model/policy-attachment.ts';
import {
  egRoute,
  egVirtualHost,
  gatewayObject,
  policyObject,
  snapshotOf,
  WEB,
} from '../../testing/xds-resources.ts';
import { createExtensionHooks } from '../hooks/index.ts';
import { matchScope, pathHeaderRegex, pathRelation } from './policy-match.ts';
import { unsupportedActions } from './route-policies.ts';

const hooks = createExtensionHooks({ proxies: false });
const GW = 'gateway.networking.k8s.io';

const vhostHook = (vhost: VirtualHost, ...policies: TailscaleRoutePolicy[]) =>
  hooks.postVirtualHostModify(
    create(PostVirtualHostModifyRequestSchema, { virtualHost: vhost }),
    snapshotOf(...policies),
  );

const policy = (
  name: string,
  target: Record<string, unknown>,
  rules: unknown[],
  created?: string,
): TailscaleRoutePolicy =>
  policyObject(name, { targetRefs: [{ group: GW, ...target }], rules }, 'default', created);

const onGateway = (name: string, rules: unknown[], created?: string, sectionName?: string) =>
  policy(name, { kind: 'Gateway', name: 'eg', ...(sectionName ? { sectionName } : {}) }, rules, created);
const onRoute = (name: string, rules: unknown[], created?: string, sectionName?: string) =>
  policy(name, { kind: 'HTTPRoute', name: 'app', ...(sectionName ? { sectionName } : {}) }, rules, created);

const DENY = [{ type: 'Deny' }];
const header = (name: string, value: string) => ({
  type: 'RequestHeaderModifier',
  requestHeaderModifier: { set: [{ name, value }] },
});

const prefixRoute = (prefix: string): Route => egRoute('app', prefix);
const names = (vhost: VirtualHost | undefined) => vhost?.routes.map((r) => r.name) ?? [];
const headerNames = (route: Route) => route.match?.headers.map((h) => h.name) ?? [];

describe('policy matches against a route', () => {
  const match = (spec: MessageInitShape<typeof RouteMatchSchema>) => create(RouteMatchSchema, spec);
  const sep = (value: string) => match({ pathSpecifier: { case: 'pathSeparatedPrefix', value } });
  const plain = (value: string) => match({ pathSpecifier: { case: 'prefix', value } });
  const exact = (value: string) => match({ pathSpecifier: { case: 'path', value } });

  test('PathPrefix is element-wise: covers, overlaps or is disjoint', () => {
    const prefix = (value: string) => ({ type: 'PathPrefix' as const, value });
    expect(pathRelation(prefix('/api'), sep('/api/v1'))).toBe('covers');
    expect(pathRelation(prefix('/api/'), sep('/api'))).toBe('covers');
    expect(pathRelation(prefix('/api/admin'), sep('/api'))).toBe('overlaps');
    expect(pathRelation(prefix('/apix'), sep('/api'))).toBe('disjoint');
    expect(pathRelation(prefix('/admin'), plain('/'))).toBe('overlaps');
    // A plain `/api` prefix also matches `/apix`: not covered by PathPrefix /api.
    expect(pathRelation(prefix('/api'), plain('/api'))).toBe('overlaps');
    expect(pathRelation(prefix('/api'), plain('/api/'))).toBe('covers');
    expect(pathRelation(prefix('/b'), plain('/a'))).toBe('disjoint');
    expect(pathRelation(prefix('/a'), exact('/a/b'))).toBe('covers');
    expect(pathRelation(prefix('/'), exact('/x'))).toBe('covers');
  });

  test('Exact and RegularExpression', () => {
    expect(pathRelation({ type: 'Exact', value: '/a' }, exact('/a'))).toBe('covers');
    expect(pathRelation({ type: 'Exact', value: '/a' }, exact('/b'))).toBe('disjoint');
    expect(pathRelation({ type: 'Exact', value: '/a/b' }, sep('/a'))).toBe('overlaps');
    expect(pathRelation({ type: 'Exact', value: '/ab' }, sep('/a'))).toBe('disjoint');
    expect(pathRelation({ type: 'RegularExpression', value: '/v[0-9]+' }, sep('/a'))).toBe('overlaps');
  });

  test(':path regexes accept the query string and respect element boundaries', () => {
    const re = (path: Parameters<typeof pathHeaderRegex>[0]) => new RegExp(`^(?:${pathHeaderRegex(path)})$`);
    const admin = re({ type: 'PathPrefix', value: '/admin/' });
    expect(['/admin', '/admin/', '/admin/x', '/admin?q=1'].every((p) => admin.test(p))).toBe(true);
    expect(admin.test('/administrator')).toBe(false);
    const exactRe = re({ type: 'Exact', value: '/a.b' });
    expect(exactRe.test('/a.b?x')).toBe(true);
    expect(exactRe.test('/aXb')).toBe(false);
    expect(re({ type: 'RegularExpression', value: '^/v[0-9]+$' }).test('/v2?x=1')).toBe(true);
  });

  test('scope: headers, method and caller narrow even a covering path', () => {
    expect(matchScope({ method: 'POST' }, sep('/a'))).toBe('some');
    expect(matchScope({ caller: { users: ['alice@example.com'] } }, sep('/a'))).toBe('some');
    expect(matchScope({ path: { type: 'PathPrefix', value: '/' } }, sep('/a'))).toBe('whole');
    expect(matchScope({ path: { type: 'PathPrefix', value: '/b' }, method: 'GET' }, sep('/a'))).toBe('none');
  });
});

describe('PostVirtualHostModify: route policies with matches become narrowed copies', () => {
  test('a Gateway policy denying /admin: a 403 copy before every route that can serve it', () => {
    const vhost = egVirtualHost([prefixRoute('/api'), prefixRoute('/')]);
    const deny = onGateway('no-admin', [
      { matches: [{ path: { type: 'PathPrefix', value: '/admin' } }], actions: DENY },
    ]);
    const { response, effect } = vhostHook(vhost, deny);
    const routes = response.virtualHost!.routes;
    // /api cannot serve /admin: no copy there; `/` gets one, placed before it.
    expect(names(response.virtualHost)).toEqual([
      'httproute/default/app/rule/0/match/0/www_example_com',
      'tailscale/policy/default/no-admin/rule/0/match/0/httproute/default/app/rule/0/match/0/www_example_com',
      'httproute/default/app/rule/0/match/0/www_example_com',
    ]);
    const copy = routes[1]!;
    expect(copy.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });
    expect(copy.match?.pathSpecifier).toEqual({ case: 'prefix', value: '/' });
    expect(copy.match?.headers[0]).toMatchObject({
      name: ':path',
      headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex' } } },
    });
    expect(routes[2]!.action.case).toBe('route');
    expect(effect).toEqual({ routesAdded: 1 });
  });

  test('header, method and caller matches; the copy forwards like its route', () => {
    const route = prefixRoute('/');
    if (route.action.case === 'route') route.action.value.prefixRewrite = '/v2/';
    const p = onGateway('who', [
      {
        matches: [
          {
            method: 'POST',
            headers: [{ name: 'X-Tenant', value: 'a' }],
            caller: { users: ['alice@example.com', 'bob@example.com'] },
          },
        ],
        actions: [
          header('X-Caller-Checked', 'yes'),
          {
            type: 'Route',
            route: { backendRefs: [{ kind: 'Service', name: 'x', port: 80 }], timeouts: { request: '5s' } },
          },
        ],
      },
    ]);
    const copy = vhostHook(egVirtualHost([route]), p).response.virtualHost!.routes[0]!;
    expect(headerNames(copy)).toEqual([':method', 'x-tenant', 'tailscale-user-login']);
    expect(copy.match?.headers[2]?.headerMatchSpecifier).toMatchObject({
      case: 'stringMatch',
      value: {
        matchPattern: { case: 'safeRegex', value: { regex: '(?:alice@example\\.com|bob@example\\.com)' } },
      },
    });
    expect(copy.action.case).toBe('route');
    if (copy.action.case !== 'route') return;
    expect(copy.action.value.clusterSpecifier).toEqual({
      case: 'cluster',
      value: 'httproute/default/app/rule/0',
    });
    expect(copy.action.value.prefixRewrite).toBe('/v2/');
    expect(copy.action.value.timeout).toEqual(expect.objectContaining({ seconds: 5n }));
    expect(copy.requestHeadersToAdd.map((h) => h.header?.key)).toEqual(['X-Caller-Checked']);
  });

  test('match-less Gateway rules change every route in place; a redirect replaces the prefix the policy matched', () => {
    const vhost = egVirtualHost([prefixRoute('/')]);
    const p = onGateway('all', [
      { actions: [header('X-Gateway', 'eg')] },
      {
        matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
        actions: [{ type: 'Redirect', redirect: { path: { type: 'ReplacePrefixMatch', value: '/new' } } }],
      },
    ]);
    const routes = vhostHook(vhost, p).response.virtualHost!.routes;
    expect(routes.map((r) => r.action.case)).toEqual(['redirect', 'route']);
    expect(routes[1]!.requestHeadersToAdd.map((h) => h.header?.key)).toEqual(['X-Gateway']);
    // The copy was made after the in-place rule: it carries the header too.
    expect(routes[0]!.requestHeadersToAdd.map((h) => h.header?.key)).toEqual(['X-Gateway']);
    expect(routes[0]!.action.value).toMatchObject({
      pathRewriteSpecifier: {
        case: 'regexRewrite',
        value: { pattern: { regex: '^/old' }, substitution: '/new' },
      },
    });
  });

  test('an HTTPRoute policy with a header match, which PostRouteModify cannot apply, is applied here', () => {
    const p = onRoute('tenant', [
      { matches: [{ headers: [{ name: 'X-Tenant', value: 'blocked' }] }], actions: DENY },
    ]);
    const req = create(PostRouteModifyRequestSchema, { route: prefixRoute('/app') });
    expect(hooks.postRouteModify(req, snapshotOf(p)).response.route).toBeUndefined();
    const routes = vhostHook(egVirtualHost([prefixRoute('/app')]), p).response.virtualHost!.routes;
    expect(routes.map((r) => r.action.case)).toEqual(['directResponse', 'route']);
  });

  test('a listener-scoped Gateway policy applies only on that listener', () => {
    const p = onGateway('l', [{ actions: DENY }], undefined, 'https');
    expect(vhostHook(egVirtualHost([prefixRoute('/')]), p).response.virtualHost).toBeUndefined();
    const https = egVirtualHost([prefixRoute('/')], 'default/eg/https/www_example_com');
    expect(vhostHook(https, p).response.virtualHost?.routes[0]?.action.case).toBe('directResponse');
  });

  test('a TailscaleGateway policy applies to its generated routes only', () => {
    const p = policyObject('tsgw', {
      targetRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleGateway', name: 'eg-tailnets' }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/tailscale/httpbin/admin' } }], actions: DENY },
        { actions: [header('X-Via', 'tailnet')] },
      ],
    });
    const { response } = hooks.postVirtualHostModify(
      create(PostVirtualHostModifyRequestSchema, { virtualHost: egVirtualHost([prefixRoute('/')]) }),
      snapshotOf(WEB(), gatewayObject(), p),
    );
    const routes = response.virtualHost!.routes;
    const byName = new Map(routes.map((r) => [r.name, r]));
    expect(names(response.virtualHost)).toContain(
      'tailscale/policy/default/tsgw/rule/0/match/0/tailscale/default/web/httpbin',
    );
    expect(
      byName.get('tailscale/default/web/httpbin')!.requestHeadersToAdd.map((h) => h.header?.key),
    ).toContain('X-Via');
    // EG's own route is not the TailscaleGateway's.
    expect(routes.at(-1)!.requestHeadersToAdd).toEqual([]);
    // Idempotent: the output fed back gives the same routes.
    const again = hooks.postVirtualHostModify(
      create(PostVirtualHostModifyRequestSchema, { virtualHost: response.virtualHost! }),
      snapshotOf(WEB(), gatewayObject(), p),
    );
    expect(names(again.response.virtualHost)).toEqual(names(response.virtualHost));
  });
});

describe('precedence and conflicts', () => {
  test('on one target the oldest policy wins, then namespace/name; the loser is not applied', () => {
    const older = onRoute(
      'zz-older',
      [{ actions: [{ type: 'Redirect', redirect: { hostname: 'old.example.com' } }] }],
      '2026-01-01T00:00:00Z',
    );
    const newer = onRoute('aa-newer', [{ actions: DENY }], '2026-02-01T00:00:00Z');
    const route = hooks.postRouteModify(
      create(PostRouteModifyRequestSchema, { route: prefixRoute('/app') }),
      snapshotOf(newer, older),
    ).response.route!;
    expect(route.action.case).toBe('redirect');
    // Same age (or none): alphabetical.
    const a = onRoute(
      'a',
      DENY.map(() => ({ actions: DENY })),
    );
    const b = onRoute('b', [{ actions: [header('X', '1')] }]);
    expect(comparePolicies(a, b)).toBeLessThan(0);
    const byTarget = attachments([b, a]);
    expect(byTarget.get('HTTPRoute/default/app')!.map((p) => p.metadata.name)).toEqual(['a', 'b']);
  });

  test('the HTTPRoute beats the Gateway: its Deny or Redirect decides, its header set wins', () => {
    const gateway = onGateway('gw', [{ actions: [header('X-Owner', 'gateway'), ...DENY] }]);
    const route = onRoute('rt', [
      {
        actions: [header('X-Owner', 'route'), { type: 'Redirect', redirect: { hostname: 'r.example.com' } }],
      },
    ]);
    const out = vhostHook(egVirtualHost([prefixRoute('/app')]), gateway, route).response.virtualHost!
      .routes[0]!;
    expect(out.action.case).toBe('redirect');
    expect(out.requestHeadersToAdd.map((h) => `${h.header?.key}=${h.header?.value}`)).toEqual([
      'X-Owner=route',
    ]);
  });

  test('a narrower route rule overrides a Gateway-wide deny for the requests it matches', () => {
    const gateway = onGateway('gw', [{ actions: DENY }]);
    const route = onRoute('rt', [
      {
        matches: [{ method: 'GET' }],
        actions: [{ type: 'Redirect', redirect: { hostname: 'r.example.com' } }],
      },
    ]);
    const routes = vhostHook(egVirtualHost([prefixRoute('/app')]), gateway, route).response.virtualHost!
      .routes;
    expect(routes.map((r) => r.action.case)).toEqual(['redirect', 'directResponse']);
  });

  test('a rule-scoped policy (sectionName) beats the whole-HTTPRoute policy', () => {
    const r = prefixRoute('/app');
    r.metadata!.filterMetadata['envoy-gateway'] = {
      resources: [{ kind: 'HTTPRoute', name: 'app', namespace: 'default', sectionName: 'main' }],
    };
    const whole = onRoute('whole', [{ actions: DENY }], '2020-01-01T00:00:00Z');
    const rule = onRoute(
      'rule',
      [{ actions: [{ type: 'Redirect', redirect: { hostname: 'x.example.com' } }] }],
      '2026-01-01T00:00:00Z',
      'main',
    );
    const out = hooks.postRouteModify(
      create(PostRouteModifyRequestSchema, { route: r }),
      snapshotOf(whole, rule),
    );
    expect(out.response.route?.action.case).toBe('redirect');
    const byTarget = attachments([whole, rule]);
    const applicable = applicableFor(byTarget, [
      { group: GW, kind: 'HTTPRoute', namespace: 'default', name: 'app', sectionName: 'main' },
      { group: GW, kind: 'HTTPRoute', namespace: 'default', name: 'app' },
    ]);
    expect(applicable.map((a) => [a.policy.metadata.name, a.level])).toEqual([
      ['rule', 'HTTPRoute#section'],
      ['whole', 'HTTPRoute'],
    ]);
  });

  test('targets: each once, in the policy namespace', () => {
    const p = policyObject(
      'dup',
      {
        targetRefs: [
          { group: GW, kind: 'Gateway', name: 'eg' },
          { group: GW, kind: 'Gateway', name: 'eg' },
          { group: 'gateway.tailscale.com', kind: 'TailscaleGateway', name: 't' },
        ],
        rules: [{ actions: DENY }],
      },
      'team',
    );
    expect(targetsOf(p).map((t) => `${t.kind}/${t.namespace}/${t.name}`)).toEqual([
      'Gateway/team/eg',
      'TailscaleGateway/team/t',
    ]);
  });

  test('Route actions with backendRefs are reported as not applied', () => {
    const p = onRoute('r', [
      {
        name: 'fwd',
        actions: [{ type: 'Route', route: { backendRefs: [{ kind: 'Service', name: 'x', port: 80 }] } }],
      },
    ]);
    expect(unsupportedActions(p)).toEqual([
      'rule fwd action 0 (Route): backendRefs are not applied, the route keeps its own backends',
    ]);
  });
});
