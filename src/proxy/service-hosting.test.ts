import { describe, expect, test } from 'bun:test';
import type { V1Secret } from '@kubernetes/client-node';
import { type TailscaleGateway, type TailscaleProxyGroup, validateResource } from '../api/index.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from './config.ts';
import {
  advertisedServicesOf,
  certificateIssued,
  hostedServices,
  httpsNamesOf,
  namedCertificateDomains,
  planServiceHosting,
  serveServicesOf,
  serviceServeBlock,
} from './service-hosting.ts';

const UPSTREAM = 'http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:80';
const DNS = 'grafana.tail1234.ts.net';

function valid<T>(raw: object): T {
  const checked = validateResource(raw);
  if (!checked.ok) throw new Error(JSON.stringify(checked.issues));
  return checked.resource as T;
}

const group = valid<TailscaleProxyGroup>({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleProxyGroup',
  metadata: { name: 'ingress', namespace: 'apps' },
  spec: { type: 'ingress', tailnet: 'corp' },
});

interface Options {
  name?: string;
  created?: string;
  protocol?: 'HTTP' | 'HTTPS';
  mode?: 'TCP' | 'HTTP';
  entry?: object;
}
const tsgw = ({ name = 'tsgw', created = '2026-01-01T00:00:00Z', protocol, mode = 'HTTP', entry }: Options) =>
  valid<TailscaleGateway>({
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleGateway',
    metadata: { name, namespace: 'apps', creationTimestamp: created },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ...(protocol ? { routeGeneration: { ingress: { protocol } } } : {}),
          ingress: {
            proxyGroup: 'ingress',
            services: [
              mode === 'HTTP'
                ? { name: 'grafana', mode, target: { name: 'grafana', port: 3000 } }
                : { name: 'grafana', target: { name: 'envoy' } },
            ],
          },
        },
      ],
    },
    ...(entry
      ? {
          status: {
            services: [
              {
                tailnet: 'corp',
                name: 'grafana',
                service: 'svc:grafana',
                tailscaleTailnet: 'corp',
                ...entry,
              },
            ],
          },
        }
      : {}),
  });
const ready = { state: 'Published', dnsName: DNS, upstream: UPSTREAM, hosts: [DNS] };

describe('mode HTTP serve block', () => {
  test('HTTPS (the default protocol): serve terminates TLS on 443 for the DNS name and proxies to Envoy', () => {
    const [hosted] = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
    expect(hosted).toEqual({
      service: 'svc:grafana',
      ports: [443],
      targetHost: 'envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local',
      http: { dnsName: DNS, upstream: UPSTREAM, protocol: 'HTTPS' },
      publishable: true,
      source: 'apps/tsgw',
    });
    expect(JSON.stringify(serviceServeBlock(hosted!))).toBe(
      '{"TCP":{"443":{"HTTPS":true}},"Web":{"grafana.tail1234.ts.net:443":{"Handlers":{"/":{"Proxy":"http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:80"}}}}}',
    );
  });

  test('HTTP: plain HTTP on 80', () => {
    const [hosted] = hostedServices(group, [tsgw({ protocol: 'HTTP', entry: ready })], 'cluster.local');
    expect(hosted?.ports).toEqual([80]);
    expect(JSON.stringify(serviceServeBlock(hosted!))).toBe(
      '{"TCP":{"80":{"HTTP":true}},"Web":{"grafana.tail1234.ts.net:80":{"Handlers":{"/":{"Proxy":"http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:80"}}}}}',
    );
  });

  test('not hosted until the status entry has both the DNS name and the upstream', () => {
    for (const entry of [
      undefined,
      { state: 'Pending' },
      { state: 'Published', upstream: UPSTREAM },
      { state: 'Published', dnsName: DNS },
    ])
      expect(hostedServices(group, [tsgw(entry ? { entry } : {})], 'cluster.local')).toEqual([]);
    // A failed API call keeps it served (not advertised), as in mode TCP.
    const [failed] = hostedServices(group, [tsgw({ entry: { ...ready, state: 'Failed' } })], 'cluster.local');
    expect(failed?.publishable).toBe(false);
  });

  test('an older TailscaleGateway still waiting keeps the name: a younger one does not host it meanwhile', () => {
    const older = tsgw({ name: 'a-old', created: '2026-01-01T00:00:00Z' });
    const younger = tsgw({ name: 'b-young', created: '2026-02-01T00:00:00Z', mode: 'TCP' });
    expect(hostedServices(group, [younger, older], 'cluster.local')).toEqual([]);
  });

  test('mode TCP is unchanged: a forward of each port, no Web block', () => {
    const [hosted] = hostedServices(
      group,
      [tsgw({ mode: 'TCP', entry: { state: 'Published', dnsName: DNS } })],
      'cluster.local',
    );
    expect(hosted).toEqual({
      service: 'svc:grafana',
      ports: [443, 80],
      targetHost: 'envoy.apps.svc.cluster.local',
      publishable: true,
      source: 'apps/tsgw',
    });
    expect(serviceServeBlock(hosted!)).toEqual({
      TCP: {
        '80': { TCPForward: 'envoy.apps.svc.cluster.local:80' },
        '443': { TCPForward: 'envoy.apps.svc.cluster.local:443' },
      },
    });
  });
});

describe('serve, then advertise, in mode HTTP', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const secret = (services: Record<string, unknown>, advertise: string[]): V1Secret => ({
    data: {
      [SERVE_CONFIG_KEY]: b64(JSON.stringify({ TCP: {}, Services: services })),
      [CURRENT_CAP_FILE]: b64(JSON.stringify({ AdvertiseServices: advertise })),
    },
  });
  const write = (plan: ReturnType<typeof planServiceHosting>) =>
    plan.advertise.map((advertise) => secret(plan.serveServices, advertise));

  const issued = () => true;

  test('the Web block first, the advertisement on the next write; losing the upstream un-advertises first', () => {
    const hosted = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
    const first = write(planServiceHosting(hosted, [secret({}, [])], issued));
    expect(advertisedServicesOf(first[0])).toEqual([]);
    expect(serveServicesOf(first[0])['svc:grafana']).toEqual(serviceServeBlock(hosted[0]!));
    const second = write(planServiceHosting(hosted, first, issued));
    expect(advertisedServicesOf(second[0])).toEqual(['svc:grafana']);
    // The Envoy Service went away: the entry is Pending without an upstream.
    const gone = hostedServices(group, [tsgw({ entry: { state: 'Pending' } })], 'cluster.local');
    const third = write(planServiceHosting(gone, second, issued));
    expect(advertisedServicesOf(third[0])).toEqual([]);
    expect(Object.keys(serveServicesOf(third[0]))).toEqual(['svc:grafana']);
    const fourth = write(planServiceHosting(gone, third, issued));
    expect(serveServicesOf(fourth[0])).toEqual({});
  });

  test('HTTPS: advertised only once the shared certificate is issued, un-advertised if it goes', () => {
    const hosted = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
    let certificate = false;
    const plan = (observed: V1Secret[]) =>
      planServiceHosting(hosted, observed, (name) => name === DNS && certificate);
    const served = write(plan([secret({}, []), secret({}, [])]));
    expect(plan(served).advertise).toEqual([[], []]);
    // Never told: no certificate.
    expect(planServiceHosting(hosted, served).advertise).toEqual([[], []]);
    certificate = true;
    const advertised = write(plan(served));
    expect(advertised.map(advertisedServicesOf)).toEqual([['svc:grafana'], ['svc:grafana']]);
    certificate = false;
    expect(plan(advertised).advertise).toEqual([[], []]);
  });

  test('HTTP needs no certificate', () => {
    const hosted = hostedServices(group, [tsgw({ protocol: 'HTTP', entry: ready })], 'cluster.local');
    const served = write(planServiceHosting(hosted, [secret({}, [])]));
    expect(planServiceHosting(hosted, served).advertise).toEqual([['svc:grafana']]);
    expect(planServiceHosting(hosted, served).certDomains).toEqual([]);
  });

  test('the certificate Secret is wanted from the first serve block until no config Secret serves the name', () => {
    const hosted = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
    const first = planServiceHosting(hosted, [secret({}, [])], issued);
    expect(first.certDomains).toEqual([DNS]);
    const advertised = write(planServiceHosting(hosted, write(first), issued));
    // Removed: un-advertised (serve block kept), then the serve block goes, then the Secret.
    const unAdvertise = planServiceHosting([], advertised, issued);
    expect(unAdvertise.certDomains).toEqual([DNS]);
    const unServe = planServiceHosting([], write(unAdvertise), issued);
    expect(unServe.serveServices).toEqual({});
    expect(unServe.certDomains).toEqual([DNS]); // the config Secrets still serve it
    expect(planServiceHosting([], write(unServe), issued).certDomains).toEqual([]);
  });
  test('switching back to TCP replaces the Web block with the TCP forwards', () => {
    const http = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
    const served = write(planServiceHosting(http, [secret({}, [])]));
    const tcp = hostedServices(
      group,
      [tsgw({ mode: 'TCP', entry: { state: 'Published', dnsName: DNS } })],
      'cluster.local',
    );
    const next = write(planServiceHosting(tcp, served));
    expect(serveServicesOf(next[0])['svc:grafana']).toEqual({
      TCP: {
        '80': { TCPForward: 'envoy.apps.svc.cluster.local:80' },
        '443': { TCPForward: 'envoy.apps.svc.cluster.local:443' },
      },
    });
  });
});

describe('shared certificates', () => {
  test('names are the HTTPS Web hosts on 443 that can name a Secret', () => {
    expect(
      httpsNamesOf({
        'svc:a': { TCP: { '443': { HTTPS: true } }, Web: { 'a.tail1234.ts.net:443': {} } },
        'svc:b': { TCP: { '80': { HTTP: true } }, Web: { 'b.tail1234.ts.net:80': {} } },
        'svc:c': { TCP: { '443': { TCPForward: 'x:443' } } },
        'svc:d': { TCP: { '443': { HTTPS: true } }, Web: { 'Not_A_Name:443': {} } },
        'svc:e': { TCP: { '443': { HTTPS: true } }, Web: { 'a.tail1234.ts.net:443': {} } },
      }),
    ).toEqual(['a.tail1234.ts.net']);
  });

  test('kept while a TailscaleGateway names the HTTPS service, hosted or not', () => {
    const waiting = tsgw({ entry: { state: 'Pending' } });
    expect(hostedServices(group, [waiting], 'cluster.local')).toEqual([]);
    expect(namedCertificateDomains(group, [waiting], 'tail1234.ts.net')).toEqual([DNS]);
    expect(namedCertificateDomains(group, [waiting], undefined)).toEqual([]);
    for (const other of [tsgw({ protocol: 'HTTP' }), tsgw({ mode: 'TCP' })])
      expect(namedCertificateDomains(group, [other], 'tail1234.ts.net')).toEqual([]);
    const egress = { ...group, spec: { ...group.spec, type: 'egress' } } as TailscaleProxyGroup;
    expect(namedCertificateDomains(egress, [waiting], 'tail1234.ts.net')).toEqual([]);
    // Unhosted and no longer served anywhere, yet named: the plan keeps its Secret.
    expect(planServiceHosting([], [undefined], () => false, [DNS]).certDomains).toEqual([DNS]);
  });

  test('issued: both tls.crt and tls.key hold something', () => {
    const tls = (crt: string, key: string): V1Secret => ({ data: { 'tls.crt': crt, 'tls.key': key } });
    expect(certificateIssued(tls('', ''))).toBe(false);
    expect(certificateIssued(tls('Y3J0', ''))).toBe(false);
    expect(certificateIssued(tls('Y3J0', 'a2V5'))).toBe(true);
    expect(certificateIssued(undefined)).toBe(false);
  });
});
