/**
 * Service hosting in mode TCP (the default), pure: serve-then-advertise planning (every advertised
 * service has serve config, in every step, and a lagging replica is advertised later) and which
 * services a proxy group hosts and may advertise.
 */
import { describe, expect, test } from 'bun:test';
import type { V1Secret } from '@kubernetes/client-node';
import type { TailscaleProxyGroup } from '../api/index.ts';
import { ingressGroup, servicesStatus, tcpGateway } from '../testing/tcp-ingress.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from './config.ts';
import {
  advertisedServicesOf,
  type HostedService,
  hostedServices,
  planServiceHosting,
  serveServicesOf,
  serviceServeBlock,
} from './service-hosting.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
/** A config Secret as the proxy group writes it, from a serve config and an advertisement. */
const configSecret = (services: Record<string, unknown>, advertise: string[]): V1Secret => ({
  data: {
    [SERVE_CONFIG_KEY]: b64(JSON.stringify({ TCP: {}, Services: services })),
    [CURRENT_CAP_FILE]: b64(JSON.stringify({ AdvertiseServices: advertise })),
  },
});
const web = (publishable: boolean): HostedService => ({
  service: 'svc:web',
  ports: [443, 80],
  targetHost: 'envoy.eg.svc.cluster.local',
  publishable,
  source: 'ns/tsgw',
});

describe('serve, then advertise', () => {
  /** Applies plans the way the reconciler does, one write per step, checking every written state. */
  function run(hosted: HostedService[], start: V1Secret[], steps = 4): V1Secret[][] {
    const states: V1Secret[][] = [start];
    let observed = start;
    for (let i = 0; i < steps; i++) {
      const plan = planServiceHosting(hosted, observed);
      observed = plan.advertise.map((advertise) => configSecret(plan.serveServices, advertise));
      states.push(observed);
    }
    for (const state of states)
      for (const secret of state) {
        const served = Object.keys(serveServicesOf(secret));
        for (const service of advertisedServicesOf(secret)) expect(served).toContain(service);
      }
    return states;
  }

  test('a new published service: serve config first, the advertisement on the next write', () => {
    const states = run([web(true)], [configSecret({}, []), configSecret({}, [])]);
    expect(advertisedServicesOf(states[1]![0])).toEqual([]);
    expect(Object.keys(serveServicesOf(states[1]![0]))).toEqual(['svc:web']);
    expect(serveServicesOf(states[1]![0])['svc:web']).toEqual({
      TCP: {
        '80': { TCPForward: 'envoy.eg.svc.cluster.local:80' },
        '443': { TCPForward: 'envoy.eg.svc.cluster.local:443' },
      },
    });
    expect(states[2]!.map(advertisedServicesOf)).toEqual([['svc:web'], ['svc:web']]);
  });

  test('not published (pending or refused): served, never advertised', () => {
    const states = run([web(false)], [configSecret({}, [])]);
    expect(states.every((s) => advertisedServicesOf(s[0]).length === 0)).toBe(true);
  });

  test('removed while advertised: un-advertised first with its serve config kept, then the serve config goes', () => {
    const block = { TCP: { '443': { TCPForward: 'old:443' } } };
    const states = run([], [configSecret({ 'svc:web': block }, ['svc:web'])]);
    expect(advertisedServicesOf(states[1]![0])).toEqual([]);
    expect(serveServicesOf(states[1]![0])).toEqual({ 'svc:web': block });
    expect(serveServicesOf(states[2]![0])).toEqual({});
  });

  test('a replica whose Secret lags is advertised later than the others', () => {
    const block = serviceServeBlock(web(true));
    const plan = planServiceHosting([web(true)], [configSecret({ 'svc:web': block }, []), undefined]);
    expect(plan.advertise).toEqual([['svc:web'], []]);
    // A block without every port (one written mid-switch) does not start an advertisement either.
    const partial = planServiceHosting([web(true)], [configSecret({ 'svc:web': { TCP: {} } }, [])]);
    expect(partial.advertise).toEqual([[]]);
  });
});

describe('hosted services', () => {
  test('publishable only in the Published and Advertised states; targets in the cluster domain', () => {
    expect(hostedServices(ingressGroup, [tcpGateway()], 'cluster.local')[0]).toMatchObject({
      service: 'svc:web',
      ports: [443, 80],
      targetHost: 'envoy.ns.svc.cluster.local',
      publishable: false,
    });
    for (const [state, publishable] of [
      ['Pending', false],
      ['Refused', false],
      ['Failed', false],
      ['Published', true],
      ['Advertised', true],
    ] as const)
      expect(
        hostedServices(ingressGroup, [tcpGateway(servicesStatus(state))], 'cluster.local')[0]?.publishable,
      ).toBe(publishable);
  });

  test('a group of another tailnet or type hosts nothing', () => {
    const other = { ...ingressGroup, spec: { ...ingressGroup.spec, tailnet: 'home' } } as TailscaleProxyGroup;
    expect(hostedServices(other, [tcpGateway()], 'cluster.local')).toEqual([]);
    const egress = { ...ingressGroup, spec: { ...ingressGroup.spec, type: 'egress' } } as TailscaleProxyGroup;
    expect(hostedServices(egress, [tcpGateway()], 'cluster.local')).toEqual([]);
  });
});
