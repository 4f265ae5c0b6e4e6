import { describe, expect, test } from 'bun:test';
import { parseResource } from '../api/index.ts';
import { ingressHosts, ingressName, ingressServicesOf } from './ingress-generation.ts';

const tsgw = (services: unknown[], status?: unknown) =>
  parseResource({
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleGateway',
    metadata: { name: 'edge', namespace: 'apps' },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          routeGeneration: { ingress: { pathPrefix: '/{tailnet}/' } },
          ingress: { proxyGroup: 'ingress', services },
        },
      ],
    },
    ...(status ? { status } : {}),
  });

describe('ingressServicesOf', () => {
  test('mode HTTP services only, with DNS name from status, expanded patterns and the target', () => {
    const object = tsgw(
      [
        { name: 'gw', target: { name: 'envoy', namespace: 'eg-system' } },
        { name: 'grafana', mode: 'HTTP', target: { name: 'grafana', namespace: 'monitoring', port: 3000 } },
      ],
      {
        services: [
          {
            tailnet: 'corp',
            name: 'grafana',
            service: 'svc:grafana',
            tailscaleTailnet: 'corp',
            state: 'Published',
            dnsName: 'grafana.tail1234.ts.net',
          },
        ],
      },
    );
    const services = ingressServicesOf(object as never, 'cluster.local');
    expect(services).toHaveLength(1);
    const [grafana] = services;
    expect(grafana).toMatchObject({
      name: 'tailscale/apps/edge/ingress/corp/grafana',
      hosts: ['grafana.tail1234.ts.net', 'grafana.corp.gateway.local'],
      pathPrefix: '/corp/',
      targetHost: 'grafana.monitoring.svc.cluster.local',
      targetPort: 3000,
      protocol: 'HTTPS',
    });
  });

  test('without a DNS name the hostPattern is the only domain; an override map wins over status', () => {
    const object = tsgw([{ name: 'grafana', mode: 'HTTP', target: { name: 'grafana', port: 3000 } }]);
    expect(ingressServicesOf(object as never, 'c.local')[0]!.hosts).toEqual(['grafana.corp.gateway.local']);
    expect(ingressServicesOf(object as never, 'c.local')[0]!.targetHost).toBe('grafana.apps.svc.c.local');
    const dns = new Map([['corp/grafana', 'grafana.tailabc.ts.net']]);
    expect(ingressServicesOf(object as never, 'c.local', dns)[0]!.hosts[0]).toBe('grafana.tailabc.ts.net');
  });
});

describe('ingressHosts', () => {
  test('a hostPattern equal to the DNS name is listed once, lower case', () => {
    expect(
      ingressHosts('{service}.tail1234.ts.net', { service: 'web', tailnet: 'corp' }, 'Web.tail1234.ts.net'),
    ).toEqual(['web.tail1234.ts.net']);
  });
});

test('ingress names never equal an endpoints cluster name', () => {
  expect(ingressName('a', 'b', 'c', 'd').split('/')).toHaveLength(6);
});
