import { describe, expect, test } from 'bun:test';
import type { V1Secret } from '@kubernetes/client-node';
import { type TailscaleGateway, type TailscaleProxyGroup, validateResource } from '../api/index.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from './config.ts';
import {
  advertisedServicesOf,
  appliedServeServicesOf,
  certificateIssued,
  conflictingPorts,
  hostedServices,
  httpsNamesOf,
  namedCertificateDomains,
  planServiceHosting,
  serveServicesOf,
  serviceServeBlock,
  withoutPorts,
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

describe('a port switched between serve types (mode TCP ↔ HTTP)', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const config = (services: Record<string, unknown>, advertise: string[]): V1Secret => ({
    data: {
      [SERVE_CONFIG_KEY]: b64(JSON.stringify({ TCP: {}, Services: services })),
      [CURRENT_CAP_FILE]: b64(JSON.stringify({ AdvertiseServices: advertise })),
    },
  });
  /** A state Secret as tailscaled's kube store writes it: the current profile and its serve config. */
  const state = (services: Record<string, unknown>, profile = 'a1b2'): V1Secret => ({
    data: {
      '_current-profile': b64(`profile-${profile}`),
      [`_serve_${profile}`]: b64(JSON.stringify({ TCP: {}, Services: services })),
    },
  });
  const http = hostedServices(group, [tsgw({ entry: ready })], 'cluster.local');
  const tcp = hostedServices(
    group,
    [tsgw({ mode: 'TCP', entry: { state: 'Published', dnsName: DNS } })],
    'cluster.local',
  );
  const block = (hosted: typeof http) => serviceServeBlock(hosted[0]!);

  /** tailscaled's rule, written out independently: a port both configs serve keeps its handler kind. */
  const kind = (h: { HTTP?: boolean; HTTPS?: boolean }) => (h.HTTP ? 'http' : h.HTTPS ? 'https' : 'tcp');
  const refusal = (applied: Record<string, unknown>, incoming: Record<string, unknown>) => {
    for (const [service, next] of Object.entries(incoming)) {
      const before = (applied[service] as { TCP?: Record<string, object> } | undefined)?.TCP ?? {};
      for (const [port, handler] of Object.entries((next as { TCP: Record<string, object> }).TCP))
        if (before[port] && kind(before[port]) !== kind(handler))
          return `want to serve "${kind(handler)}", but port ${port} is already serving "${kind(before[port])}" for ${service}`;
    }
    return undefined;
  };

  /**
   * Reconciles until a plan writes nothing, each replica's tailscaled applying every config written,
   * and checks each written step: tailscaled takes it, and every advertised
   * service has its block with a port in that config Secret.
   */
  function converge(hosted: typeof http, start: { configs: V1Secret[]; states: V1Secret[] }) {
    let { configs, states } = start;
    const steps: { serve: Record<string, unknown>; advertise: string[][] }[] = [];
    for (let step = 0; step < 10; step++) {
      const plan = planServiceHosting(hosted, configs, () => true, [], states);
      const next = plan.advertise.map((advertise) => config(plan.serveServices, advertise));
      if (JSON.stringify(next) === JSON.stringify(configs)) return { steps, configs, states };
      steps.push({ serve: plan.serveServices, advertise: plan.advertise });
      configs = next;
      for (const written of configs)
        for (const service of advertisedServicesOf(written)) {
          const served = serveServicesOf(written)[service] as { TCP?: object } | undefined;
          expect(Object.keys(served?.TCP ?? {}).length).toBeGreaterThan(0);
        }
      states = states.map((applied, i) => {
        const incoming = serveServicesOf(configs[i]);
        expect(refusal(appliedServeServicesOf(applied), incoming)).toBeUndefined();
        return state(incoming);
      });
    }
    throw new Error('no fixed point in 10 reconciles');
  }

  test("the applied serve config is the current profile's `_serve_<id>` in the state Secret", () => {
    expect(appliedServeServicesOf(state({ 'svc:a': block(tcp) }))).toEqual({ 'svc:a': block(tcp) });
    const other = { data: { ...state({}, 'ffff').data, ...state({ 'svc:a': {} }, 'a1b2').data } };
    other.data['_current-profile'] = b64('profile-ffff');
    expect(appliedServeServicesOf(other)).toEqual({});
    expect(appliedServeServicesOf(undefined)).toEqual({});
    expect(appliedServeServicesOf({ data: { '_current-profile': b64('profile-a1b2') } })).toEqual({});
    const garbled = { data: { '_current-profile': b64('profile-a1b2'), _serve_a1b2: b64('{') } };
    expect(appliedServeServicesOf(garbled)).toEqual({});
  });

  test('conflicting ports are the ones served by both with another serve type; withoutPorts drops them', () => {
    expect(conflictingPorts(block(tcp), block(http))).toEqual([443]);
    expect(conflictingPorts(block(http), block(tcp))).toEqual([443]);
    expect(conflictingPorts(block(tcp), block(tcp))).toEqual([]);
    expect(conflictingPorts({ TCP: { '80': { HTTP: true } } }, block(tcp))).toEqual([80]);
    expect(conflictingPorts(undefined, block(http))).toEqual([]);
    // A handler with nothing set is tailscaled's unknown type: a TCP forward is a change from it.
    expect(conflictingPorts({ TCP: { '443': {} } }, block(tcp))).toEqual([443]);
    expect(conflictingPorts({ TCP: { '443': {} } }, { TCP: { '443': {} } })).toEqual([]);
    expect(
      conflictingPorts({ TCP: { '443': { TCPForward: 'a:1', TerminateTLS: 'x' } } }, block(tcp)),
    ).toEqual([443]);
    expect(withoutPorts(block(http), [443])).toEqual({ TCP: {} });
    expect(withoutPorts(block(tcp), [443])).toEqual({
      TCP: { '80': { TCPForward: 'envoy.apps.svc.cluster.local:80' } },
    });
    expect(withoutPorts(block(http), [80])).toEqual(block(http));
  });

  test('TCP → HTTPS on 443, advertised: un-advertise, drop the port, the new handler, advertise; then write-free', () => {
    const start = {
      configs: [config({ 'svc:grafana': block(tcp) }, ['svc:grafana'])],
      states: [state({ 'svc:grafana': block(tcp) })],
    };
    const { steps, configs, states } = converge(http, start);
    expect(steps).toEqual([
      { serve: { 'svc:grafana': block(tcp) }, advertise: [[]] },
      { serve: { 'svc:grafana': { TCP: {} } }, advertise: [[]] },
      { serve: { 'svc:grafana': block(http) }, advertise: [[]] },
      { serve: { 'svc:grafana': block(http) }, advertise: [['svc:grafana']] },
    ]);
    expect(appliedServeServicesOf(states[0])).toEqual({ 'svc:grafana': block(http) });
    // A second reconcile of the end state writes nothing.
    const again = planServiceHosting(http, configs, () => true, [], states);
    expect(again.advertise.map((a) => config(again.serveServices, a))).toEqual(configs);
  });

  test('HTTPS → TCP, not advertised: two serve config writes, the port dropped first', () => {
    const start = {
      configs: [config({ 'svc:grafana': block(http) }, [])],
      states: [state({ 'svc:grafana': block(http) })],
    };
    const unpublished = tcp.map((h) => ({ ...h, publishable: false }));
    const { steps, states } = converge(unpublished, start);
    expect(steps.map((s) => s.serve['svc:grafana'])).toEqual([
      { TCP: { '80': { TCPForward: 'envoy.apps.svc.cluster.local:80' } } },
      block(tcp),
    ]);
    expect(steps.every((s) => s.advertise.every((a) => a.length === 0))).toBe(true);
    expect(appliedServeServicesOf(states[0])).toEqual({ 'svc:grafana': block(tcp) });
  });

  test('the new handler waits for every replica: one whose tailscaled lags holds the port back', () => {
    const before = { 'svc:grafana': block(tcp) };
    const plan = (configs: V1Secret[], states: V1Secret[]) => {
      const p = planServiceHosting(http, configs, () => true, [], states);
      return p.advertise.map((advertise) => config(p.serveServices, advertise));
    };
    const withheld = plan([config(before, []), config(before, [])], [state(before), state(before)]);
    expect(withheld.map((c) => serveServicesOf(c)['svc:grafana'])).toEqual([{ TCP: {} }, { TCP: {} }]);
    // Replica 0 applied it, replica 1 not yet: the same write again, so nothing is written.
    const lagging = [state({ 'svc:grafana': { TCP: {} } }), state(before)];
    expect(plan(withheld, lagging)).toEqual(withheld);
    const both = [state({ 'svc:grafana': { TCP: {} } }), state({ 'svc:grafana': { TCP: {} } })];
    const switched = plan(withheld, both);
    expect(switched.map((c) => serveServicesOf(c)['svc:grafana'])).toEqual([block(http), block(http)]);
    expect(switched.map(advertisedServicesOf)).toEqual([[], []]);
    expect(plan(switched, both).map(advertisedServicesOf)).toEqual([['svc:grafana'], ['svc:grafana']]);
  });

  test('a proxy stuck on a refused one-step swap (the config asks HTTPS, tailscaled holds TCP) recovers', () => {
    const start = {
      configs: [config({ 'svc:grafana': block(http) }, ['svc:grafana'])],
      states: [state({ 'svc:grafana': block(tcp) })],
    };
    const { steps, states } = converge(http, start);
    // What tailscaled refuses is not kept, even while advertised: the port goes at once.
    expect(steps[0]).toEqual({
      serve: { 'svc:grafana': { TCP: {} } },
      advertise: [[]],
    });
    expect(appliedServeServicesOf(states[0])).toEqual({ 'svc:grafana': block(http) });
  });

  test('without state Secrets nothing is withheld (a replica with no applied config takes any)', () => {
    const plan = planServiceHosting(
      http,
      [config({ 'svc:grafana': block(tcp) }, [])],
      () => true,
      [],
      [undefined],
    );
    expect(plan.serveServices).toEqual({ 'svc:grafana': block(http) });
  });
});
