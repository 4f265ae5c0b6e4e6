import { describe, expect, test } from 'bun:test';
import { clone, create, equals } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { HeaderValueOption_HeaderAppendAction } from '../../../gen/envoy/config/core/v3/base_pb.ts';
import {
  RedirectAction_RedirectResponseCode,
  RedirectActionSchema,
  type Route,
  RouteSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import { PostRouteModifyRequestSchema } from '../../../gen/envoygateway/extension/service_pb.ts';
import type { TailscaleRoutePolicy } from '../../api/index.ts';
import type { OperatorError } from '../../errors.ts';
import { asSent, egRoute, extensionResource, policyObject, snapshotOf } from '../../testing/xds-resources.ts';
import { createExtensionHooks } from './index.ts';

const hooks = createExtensionHooks({ proxies: false });
const request = (route: Route, policies: TailscaleRoutePolicy[] = []) =>
  create(PostRouteModifyRequestSchema, {
    route,
    postRouteContext: { hostnames: ['www.example.com'], extensionPolicies: policies.map(asSent) },
  });

const targeting = (name: string, rules: unknown[], extra: Record<string, unknown> = {}) =>
  policyObject(name, {
    targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'app', ...extra }],
    rules,
  });

const headers = targeting('headers', [
  {
    actions: [
      {
        type: 'RequestHeaderModifier',
        requestHeaderModifier: {
          set: [{ name: 'X-Forwarded-By', value: 'tailscale-gateway' }],
          add: [{ name: 'X-Trace', value: 'on' }],
          remove: ['X-Debug'],
        },
      },
      {
        type: 'ResponseHeaderModifier',
        responseHeaderModifier: { set: [{ name: 'X-Served-By', value: 'tsgw' }] },
      },
    ],
  },
]);

describe('PostRouteModify', () => {
  test('header modifiers from a store policy', () => {
    const route = egRoute('app', '/app');
    const { response, effect } = hooks.postRouteModify(request(route), snapshotOf(headers));
    const expected = clone(RouteSchema, route);
    expected.requestHeadersToAdd = [
      {
        header: { key: 'X-Forwarded-By', value: 'tailscale-gateway' },
        appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
      },
      {
        header: { key: 'X-Trace', value: 'on' },
        appendAction: HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD,
      },
    ].map((init) => create(RouteSchema, { requestHeadersToAdd: [init] }).requestHeadersToAdd[0]!);
    expected.requestHeadersToRemove = ['X-Debug'];
    expected.responseHeadersToAdd = create(RouteSchema, {
      responseHeadersToAdd: [
        {
          header: { key: 'X-Served-By', value: 'tsgw' },
          appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
        },
      ],
    }).responseHeadersToAdd;
    expect(equals(RouteSchema, response.route!, expected)).toBe(true);
    expect(effect).toEqual({ routesModified: 1 });
  });

  test('policies sent by EG (extension_policies) apply too, and count once when also in the store', () => {
    const route = egRoute('app', '/app');
    const fromContext = hooks.postRouteModify(request(route, [headers]), snapshotOf()).response.route!;
    const fromBoth = hooks.postRouteModify(request(route, [headers]), snapshotOf(headers)).response.route!;
    expect(fromContext.requestHeadersToAdd).toHaveLength(2);
    expect(equals(RouteSchema, fromContext, fromBoth)).toBe(true);
  });

  test('a policy as EG 1.9 sends it, with the status it computed in memory, still applies', () => {
    // EG writes status.ancestors before sending; Go's zero time marshals as null, which our CRD schema
    // would refuse. The hook reads only the spec, so that status must not turn into InvalidArgument.
    const sent = create(PostRouteModifyRequestSchema, {
      route: egRoute('app', '/app'),
      postRouteContext: {
        hostnames: ['www.example.com'],
        extensionPolicies: [
          extensionResource({
            ...headers,
            status: {
              ancestors: [
                {
                  ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg' },
                  controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
                  conditions: [
                    { type: 'Accepted', status: 'True', reason: 'Accepted', lastTransitionTime: null },
                  ],
                },
              ],
            },
          }),
        ],
      },
    });
    const { response } = hooks.postRouteModify(sent, snapshotOf());
    expect(response.route?.requestHeadersToRemove).toEqual(['X-Debug']);
  });

  test('is idempotent and leaves the request as received', () => {
    const route = egRoute('app', '/app');
    const before = clone(RouteSchema, route);
    const once = hooks.postRouteModify(request(route), snapshotOf(headers)).response.route!;
    expect(equals(RouteSchema, route, before)).toBe(true);
    const twice = hooks.postRouteModify(request(once), snapshotOf(headers)).response.route!;
    expect(equals(RouteSchema, once, twice)).toBe(true);
  });

  test('redirect', () => {
    const policy = targeting('redirect', [
      {
        actions: [
          {
            type: 'Redirect',
            redirect: {
              scheme: 'https',
              hostname: 'new.example.com',
              port: 8443,
              path: { type: 'ReplaceFullPath', value: '/v2' },
              statusCode: 301,
            },
          },
        ],
      },
    ]);
    const route = hooks.postRouteModify(request(egRoute('app', '/app')), snapshotOf(policy)).response.route!;
    expect(route.action.case).toBe('redirect');
    const expected = create(RedirectActionSchema, {
      schemeRewriteSpecifier: { case: 'schemeRedirect', value: 'https' },
      hostRedirect: 'new.example.com',
      portRedirect: 8443,
      pathRewriteSpecifier: { case: 'pathRedirect', value: '/v2' },
      responseCode: RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY,
    });
    expect(
      route.action.case === 'redirect' && equals(RedirectActionSchema, route.action.value, expected),
    ).toBe(true);
  });

  test('timeouts', () => {
    const policy = targeting('timeouts', [
      {
        actions: [
          {
            type: 'Route',
            route: {
              backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'api' }],
              timeouts: { request: '30s', backendRequest: '10s' },
            },
          },
        ],
      },
    ]);
    const route = hooks.postRouteModify(request(egRoute('app', '/app')), snapshotOf(policy)).response.route!;
    expect(route.action.case).toBe('route');
    if (route.action.case !== 'route') return;
    expect(route.action.value.timeout).toEqual(durationFromMs(30_000));
    expect(route.action.value.retryPolicy?.perTryTimeout).toEqual(durationFromMs(10_000));
    expect(route.action.value.clusterSpecifier).toEqual({
      case: 'cluster',
      value: 'httproute/default/app/rule/0',
    });
  });

  test('deny answers 403; the first deciding action wins', () => {
    const policy = targeting('deny', [
      { actions: [{ type: 'Deny' }] },
      { actions: [{ type: 'Redirect', redirect: { hostname: 'x.example.com' } }] },
    ]);
    const route = hooks.postRouteModify(request(egRoute('app', '/app')), snapshotOf(policy)).response.route!;
    expect(route.action).toMatchObject({ case: 'directResponse', value: { status: 403 } });
  });

  test('rule matches: path-only matches covering the route apply, others do not', () => {
    const rule = (matches: unknown[]) => targeting('m', [{ matches, actions: [{ type: 'Deny' }] }]);
    const decided = (policy: TailscaleRoutePolicy, prefix = '/app/v1') =>
      hooks.postRouteModify(request(egRoute('app', prefix)), snapshotOf(policy)).response.route?.action.case;
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/app' } }]))).toBe('directResponse');
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/app/' } }]))).toBe('directResponse');
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/' } }]))).toBe('directResponse');
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/ap' } }]))).toBeUndefined();
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/app/v1/x' } }]))).toBeUndefined();
    expect(decided(rule([{ path: { type: 'Exact', value: '/app/v1' } }]))).toBeUndefined();
    expect(decided(rule([{ path: { type: 'PathPrefix', value: '/app' }, method: 'GET' }]))).toBeUndefined();
    expect(
      decided(
        rule([{ path: { type: 'PathPrefix', value: '/app' }, headers: [{ name: 'X-Tenant', value: 'a' }] }]),
      ),
    ).toBeUndefined();
  });

  test('targets: other route, other namespace, Gateway and unmatched sectionName leave the route unset', () => {
    const route = egRoute('app', '/app');
    const deny = [{ actions: [{ type: 'Deny' }] }];
    const others = [
      policyObject('a', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'other' }],
        rules: deny,
      }),
      policyObject(
        'b',
        { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'app' }], rules: deny },
        'team',
      ),
      policyObject('c', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg' }],
        rules: deny,
      }),
      targeting('d', deny, { sectionName: 'named-rule' }),
    ];
    const result = hooks.postRouteModify(request(route), snapshotOf(...others));
    expect(result.response.route).toBeUndefined();
    expect(result.effect).toBeUndefined();
  });

  test('sectionName matches the rule name from EG metadata', () => {
    const route = egRoute('app', '/app');
    route.metadata!.filterMetadata['envoy-gateway'] = {
      resources: [{ kind: 'HTTPRoute', name: 'app', namespace: 'default', sectionName: 'named-rule' }],
    };
    const policy = targeting('d', [{ actions: [{ type: 'Deny' }] }], { sectionName: 'named-rule' });
    expect(hooks.postRouteModify(request(route), snapshotOf(policy)).response.route?.action.case).toBe(
      'directResponse',
    );
  });

  test('a malformed extension policy is Invalid', () => {
    const req = create(PostRouteModifyRequestSchema, {
      route: egRoute('app', '/app'),
      postRouteContext: {
        extensionPolicies: [
          extensionResource({
            apiVersion: 'gateway.tailscale.com/v1alpha1',
            kind: 'TailscaleRoutePolicy',
            metadata: { name: 'x', namespace: 'default' },
            spec: { targetRefs: [], rules: [] },
          }),
        ],
      },
    });
    expect(() => hooks.postRouteModify(req, snapshotOf())).toThrow(
      expect.objectContaining({ code: 'Invalid' }) as unknown as OperatorError,
    );
  });
});
