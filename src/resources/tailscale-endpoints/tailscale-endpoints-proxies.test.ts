import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  API_VERSION,
  parseResource,
  type TailscaleEndpoints,
  type TailscaleProxyGroup,
} from '../../api/index.ts';
import { conflictEndpointOf, tailnetNotReady } from '../../proxy/parents.ts';
import type { ProxySetStatus } from '../../proxy/status.ts';
import { aggregateMembers } from '../tailscale-proxy-group/tailscale-proxy-group-proxies.ts';
import {
  type CarrierState,
  endpointHealth,
  groupCarrier,
  healthStatus,
  ownCarriers,
} from './tailscale-endpoints-proxies.ts';

const endpoints = (proxy: Record<string, unknown>, list?: Record<string, unknown>[]) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleEndpoints',
    metadata: { name: 'web', namespace: 'team' },
    spec: {
      tailnet: 'corp',
      endpoints: list ?? [
        { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000 },
        { name: 'dns', tailscaleIP: '100.64.0.10', port: 53, protocol: 'UDP' },
        { name: 'site', externalTarget: 'site.example.com:443', port: 443 },
      ],
      proxy,
    },
  }) as TailscaleEndpoints;

const set = (connectionType: 'ingress' | 'egress', readyReplicas: number): ProxySetStatus => ({
  statefulSetName: `web-${connectionType}`,
  connectionType,
  replicas: 2,
  readyReplicas,
  devices: [],
  phases: [],
});

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:05:00Z');
const health = (e: TailscaleEndpoints, carriers: CarrierState[], discovered: string[] = [], now = T0) =>
  endpointHealth({ endpoints: e, carriers, discovered: new Set(discovered), now }, e.status?.endpoints);
const byName = (list: { name: string; health: string }[]) =>
  Object.fromEntries(list.map((e) => [e.name, e.health]));

describe('endpoint health', () => {
  test('egress carries the endpoints with a tailnet address; the others are reached directly: Unknown', () => {
    const e = endpoints({ connectionType: 'egress' });
    const carriers = ownCarriers(e, [set('egress', 1)], 'cluster.local', []);
    const result = health(e, carriers);
    expect(byName(result)).toEqual({ dns: 'Healthy', grafana: 'Healthy', site: 'Unknown' });
    expect(result.find((x) => x.name === 'site')?.message).toBe(
      'no proxy of the operator carries it; traffic goes to site.example.com:443 directly',
    );
    expect(healthStatus(result)).toMatchObject({ totalEndpoints: 3, healthyEndpoints: 2 });
  });

  test('no ready replica: Unhealthy, naming the proxy', () => {
    const e = endpoints({ connectionType: 'egress' });
    const result = health(e, ownCarriers(e, [set('egress', 0)], 'cluster.local', []));
    expect(result.find((x) => x.name === 'grafana')).toMatchObject({
      health: 'Unhealthy',
      message: 'egress proxy web-egress has no replica ready',
    });
  });

  test('bidirectional: every direction that should carry it must; ingress leaves out UDP and no-target endpoints', () => {
    const e = endpoints({ connectionType: 'bidirectional' });
    const result = health(e, ownCarriers(e, [set('ingress', 2), set('egress', 1)], 'cluster.local', []));
    expect(byName(result)).toEqual({ dns: 'Unhealthy', grafana: 'Unhealthy', site: 'Healthy' });
    expect(result.find((x) => x.name === 'dns')?.message).toBe(
      'ingress proxy web-ingress leaves it out: UDP cannot be served to the tailnet',
    );
    expect(result.find((x) => x.name === 'site')?.message).toBe('carried by ingress proxy web-ingress');
  });

  test('an egress Service another object holds leaves its endpoint out', () => {
    const e = endpoints({ connectionType: 'egress' });
    const result = health(
      e,
      ownCarriers(e, [set('egress', 1)], 'cluster.local', ['team/web-grafana-egress']),
    );
    expect(result.find((x) => x.name === 'grafana')).toMatchObject({ health: 'Unhealthy' });
    expect(result.find((x) => x.name === 'grafana')?.message).toContain('web-grafana-egress');
  });

  test('a discovered endpoint at the offline tier is Unhealthy; a hand-written one there is not', () => {
    const e = endpoints({ connectionType: 'egress' }, [
      { name: 'web-1', tailscaleIP: '100.64.0.1', port: 80, priority: 10 },
      { name: 'mine', tailscaleIP: '100.64.0.2', port: 80, priority: 10 },
    ]);
    const result = health(e, ownCarriers(e, [set('egress', 1)], 'cluster.local', []), ['web-1']);
    expect(byName(result)).toEqual({ mine: 'Healthy', 'web-1': 'Unhealthy' });
  });

  test('lastTransitionTime changes only with the health', () => {
    const e = endpoints({ connectionType: 'egress' });
    const first = health(e, ownCarriers(e, [set('egress', 0)], 'cluster.local', []));
    const withStatus = { ...e, status: { endpoints: first } } as TailscaleEndpoints;
    const later = health(withStatus, ownCarriers(e, [set('egress', 1)], 'cluster.local', []), [], T1);
    expect(later.find((x) => x.name === 'grafana')?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
    expect(later.find((x) => x.name === 'site')?.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
  });

  test('served by a group: its ready replicas count, its conflicts leave endpoints out, a group that does not serve the object leaves all', () => {
    const e = endpoints({ connectionType: 'egress', proxyGroup: 'pool' });
    const group = parseResource({
      apiVersion: API_VERSION,
      kind: 'TailscaleProxyGroup',
      metadata: { name: 'pool', namespace: 'team' },
      spec: { type: 'egress', tailnet: 'corp', replicas: 2 },
      status: {
        readyReplicas: 1,
        tailscaleEndpoints: [
          {
            name: 'web',
            routes: 1,
            conflicts: [
              'endpoint dns: egress Service web-dns-egress is already used by TailscaleEndpoints a',
            ],
          },
        ],
      },
    }) as TailscaleProxyGroup;
    const served = health(e, [groupCarrier(e, { group }, 'cluster.local', undefined)]);
    expect(byName(served)).toEqual({ dns: 'Unhealthy', grafana: 'Healthy', site: 'Unknown' });
    expect(served.find((x) => x.name === 'dns')?.message).toBe(
      'TailscaleProxyGroup pool leaves it out: egress Service web-dns-egress is already used by TailscaleEndpoints a',
    );
    const missing = health(e, [
      groupCarrier(e, { group: undefined }, 'cluster.local', 'TailscaleProxyGroup pool does not exist'),
    ]);
    expect(missing.find((x) => x.name === 'grafana')).toMatchObject({
      health: 'Unhealthy',
      message: 'TailscaleProxyGroup pool does not exist',
    });
  });

  test('conflicts as the group writes them name their endpoint', () => {
    const group = parseResource({
      apiVersion: API_VERSION,
      kind: 'TailscaleProxyGroup',
      metadata: { name: 'pool', namespace: 'team' },
      spec: { type: 'ingress', tailnet: 'corp' },
    }) as TailscaleProxyGroup;
    const member = (name: string, created: string) =>
      parseResource({
        apiVersion: API_VERSION,
        kind: 'TailscaleEndpoints',
        metadata: { name, namespace: 'team', creationTimestamp: created },
        spec: {
          tailnet: 'corp',
          endpoints: [{ name: 'site-a', externalTarget: 'a.b:1', port: 443 }],
          proxy: { connectionType: 'ingress', proxyGroup: 'pool' },
        },
      }) as TailscaleEndpoints;
    const { members } = aggregateMembers(
      group,
      [member('old', '2026-01-01T00:00:00Z'), member('new', '2026-01-02T00:00:00Z')],
      'cluster.local',
    );
    const conflict = members.find((m) => m.name === 'new')!.conflicts[0]!;
    expect(conflictEndpointOf(conflict)).toEqual({
      name: 'site-a',
      reason: 'port 443 is already served for TailscaleEndpoints old',
    });
    expect(conflictEndpointOf('something else')).toBeUndefined();
  });
});

describe('tailnetNotReady', () => {
  const tailnet = (conditions?: Record<string, unknown>[]) =>
    ({
      apiVersion: API_VERSION,
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      ...(conditions ? { status: { conditions } } : {}),
    }) as KubernetesObject;
  test('Ready: nothing to say', () => {
    expect(tailnetNotReady('corp', tailnet([{ type: 'Ready', status: 'True', reason: 'Ready' }]))).toBe(
      undefined,
    );
  });
  test('names the tailnet and its own reason and message', () => {
    expect(
      tailnetNotReady(
        'corp',
        tailnet([{ type: 'Ready', status: 'False', reason: 'APIUnreachable', message: 'connect refused' }]),
      ),
    ).toBe('TailscaleTailnet corp is not Ready (APIUnreachable: connect refused)');
    expect(tailnetNotReady('corp', tailnet())).toBe('TailscaleTailnet corp is not Ready (not checked yet)');
    expect(tailnetNotReady('corp', undefined)).toBe('TailscaleTailnet corp does not exist');
  });
});
