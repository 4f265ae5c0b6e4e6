import { describe, expect, test } from 'bun:test';
import {
  gatewayOfRouteConfigName,
  gatewayOfVirtualHostName,
  httpRouteRuleOfClusterName,
  httpRouteRuleOfRouteName,
  routeOfClusterName,
} from './envoy-gateway-names.ts';
import { ingressName, isIngressName } from './ingress-generation.ts';

describe("Envoy Gateway's xDS names, read back", () => {
  test('route configurations and virtual hosts name their Gateway and listener, ListenerSets included', () => {
    expect(gatewayOfRouteConfigName('infra/eg/http')).toEqual({
      namespace: 'infra',
      name: 'eg',
      listener: 'http',
    });
    expect(gatewayOfRouteConfigName('infra/eg/apps/set/web')).toEqual({
      namespace: 'infra',
      name: 'eg',
      listener: 'web',
    });
    expect(gatewayOfRouteConfigName('infra/eg')).toBeUndefined();
    expect(gatewayOfVirtualHostName('infra/eg/http/www_example_com')).toEqual({
      namespace: 'infra',
      name: 'eg',
      listener: 'http',
    });
    expect(gatewayOfVirtualHostName('infra/eg/apps/set/web/www_example_com')?.listener).toBe('web');
    expect(gatewayOfVirtualHostName('www_example_com')).toBeUndefined();
  });

  test("an HTTPRoute rule's route and cluster", () => {
    expect(httpRouteRuleOfRouteName('httproute/default/api/rule/2/match/0/www_example_com')).toEqual({
      namespace: 'default',
      name: 'api',
      rule: 2,
    });
    expect(httpRouteRuleOfRouteName('httproute/default/api/rule/x/match/0/h')?.rule).toBeUndefined();
    expect(httpRouteRuleOfRouteName('grpcroute/default/api/rule/0/match/0/h')).toBeUndefined();
    expect(httpRouteRuleOfClusterName('httproute/default/api/rule/1')).toEqual({
      namespace: 'default',
      name: 'api',
      rule: 1,
      backend: undefined,
    });
    expect(httpRouteRuleOfClusterName('httproute/default/api/rule/1/backend/3')?.backend).toBe(3);
    expect(httpRouteRuleOfClusterName('httproute/default/api/rule/1/match/0')).toBeUndefined();
  });

  test("a route's cluster names its kind", () => {
    expect(routeOfClusterName('tcproute/apps/db/rule/0')).toEqual({
      kind: 'TCPRoute',
      namespace: 'apps',
      name: 'db',
    });
    expect(routeOfClusterName('grpcroute/apps/svc')).toEqual({
      kind: 'GRPCRoute',
      namespace: 'apps',
      name: 'svc',
    });
    expect(routeOfClusterName('tailscale/apps/web')).toBeUndefined();
  });

  test('our ingress names are told apart from the six-segment ListenerSet names they resemble', () => {
    expect(isIngressName(ingressName('apps', 'tsgw', 'corp', 'grafana'))).toBe(true);
    expect(isIngressName('infra/eg/apps/set/web/www_example_com')).toBe(false);
    expect(isIngressName('tailscale/apps/web/api')).toBe(false);
  });
});
