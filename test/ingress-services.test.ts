/**
 * The pure parts of publishing Tailscale Services, and the coordinator calls the services controller
 * makes: serve-then-advertise planning (every advertised service has serve config, in every step),
 * publishability gating, remote members in the clusters the hooks build and in the revision digest,
 * the TailscaleServices condition, and `syncRoutes`/`release` against the fake control plane
 * (including routes recorded before a restart).
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import type { V1Secret } from '@kubernetes/client-node';
import {
  type AnyResource,
  type TailscaleEndpoints,
  type TailscaleGateway,
  type TailscaleProxyGroup,
  validateResource,
} from '../src/api/index.ts';
import { createFakeClock } from '../src/controller/fake-clock.ts';
import {
  createServiceCoordinator,
  createTailnetCoordinators,
  REGISTRY_ANNOTATION,
  readRegistry,
} from '../src/coordination/index.ts';
import { buildCluster } from '../src/extension/xds/clusters.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from '../src/proxy/config.ts';
import {
  advertisedServicesOf,
  type HostedService,
  hostedServices,
  planServiceHosting,
  serveServicesOf,
} from '../src/proxy/service-hosting.ts';
import { servicesCondition } from '../src/reconcilers/tailscale-gateway-services.ts';
import { gatewayRevision } from '../src/reconcilers/tailscale-gateway-trigger.ts';
import { remoteMembersOf } from '../src/store/remote-endpoints.ts';
import { buildSnapshot } from '../src/store/resource-store.ts';
import { createTailscaleClient } from '../src/tailscale/index.ts';
import { type FakeTailscale, startFakeTailscale } from './fake-tailscale/index.ts';

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

function valid<T extends AnyResource>(raw: object): T {
  const checked = validateResource(raw);
  if (!checked.ok) throw new Error(JSON.stringify(checked.issues));
  return checked.resource as T;
}

const tsgw = (status?: object) =>
  valid<TailscaleGateway>({
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleGateway',
    metadata: { name: 'tsgw', namespace: 'ns', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ingress: {
            proxyGroup: 'ingress',
            services: [{ name: 'web', target: { name: 'envoy' }, tailscaleEndpoints: 'web' }],
          },
        },
      ],
    },
    ...(status ? { status } : {}),
  });
const published = (state: string, extra: object = {}) => ({
  conditions: [],
  services: [
    {
      tailnet: 'corp',
      name: 'web',
      service: 'svc:web',
      tailscaleTailnet: 'corp',
      state,
      addresses: ['100.100.0.2', 'fd7a:115c:a1e0:ab12::1'],
      ...extra,
    },
  ],
});
const endpoints = valid<TailscaleEndpoints>({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
  metadata: { name: 'web', namespace: 'ns' },
  spec: {
    tailnet: 'corp',
    endpoints: [{ name: 'local', externalTarget: 'web.app.svc.cluster.local:80', port: 80 }],
    proxy: { connectionType: 'ingress' },
  },
});
const group = valid<TailscaleProxyGroup>({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleProxyGroup',
  metadata: { name: 'ingress', namespace: 'ns' },
  spec: { type: 'ingress', tailnet: 'corp' },
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
    const plan = planServiceHosting([web(true)], [configSecret({ 'svc:web': {} }, []), undefined]);
    expect(plan.advertise).toEqual([['svc:web'], []]);
  });
});

describe('hosted services', () => {
  test('publishable only in the Published and Advertised states; targets in the cluster domain', () => {
    expect(hostedServices(group, [tsgw()], 'cluster.local')[0]).toMatchObject({
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
      expect(hostedServices(group, [tsgw(published(state))], 'cluster.local')[0]?.publishable).toBe(
        publishable,
      );
  });

  test('a group of another tailnet or type hosts nothing', () => {
    const other = { ...group, spec: { ...group.spec, tailnet: 'home' } } as TailscaleProxyGroup;
    expect(hostedServices(other, [tsgw()], 'cluster.local')).toEqual([]);
    const egress = { ...group, spec: { ...group.spec, type: 'egress' } } as TailscaleProxyGroup;
    expect(hostedServices(egress, [tsgw()], 'cluster.local')).toEqual([]);
  });
});

describe('remote members', () => {
  const withRemote = tsgw(published('Advertised', { remoteClusters: ['cluster-b'] }));

  test('another cluster attached: the VIP joins the named TailscaleEndpoints at the next priority', () => {
    const snapshot = buildSnapshot([withRemote, endpoints], 1);
    const copy = snapshot.getEndpoints('ns', 'web')!;
    expect(remoteMembersOf(copy)).toEqual([
      {
        service: 'svc:web',
        address: '100.100.0.2',
        ports: [443, 80],
        clusters: ['cluster-b'],
      },
    ]);
    expect(remoteMembersOf(endpoints)).toEqual([]);
    const cluster = buildCluster(
      'c',
      copy.spec.endpoints.map((endpoint) => ({ endpoints: copy, endpoint })),
      {},
    );
    const localities = cluster.loadAssignment!.endpoints;
    expect(localities.map((l) => l.priority)).toEqual([0, 1]);
    const address = (i: number) => {
      const host = localities[i]!.lbEndpoints[0]!.hostIdentifier;
      if (host.case !== 'endpoint') throw new Error('no endpoint');
      const socket = host.value.address!.address;
      if (socket.case !== 'socketAddress') throw new Error('no socket address');
      return [socket.value.address, socket.value.portSpecifier.value, host.value.hostname];
    };
    expect(address(0)).toEqual(['web.app.svc.cluster.local', 80, 'web.app.svc.cluster.local']);
    expect(address(1)).toEqual(['100.100.0.2', 80, 'web.app.svc.cluster.local']);
  });

  test('no other cluster, no address, or not published: no remote member', () => {
    for (const status of [
      published('Advertised'),
      published('Refused', { remoteClusters: ['cluster-b'] }),
      { services: [{ ...published('Published').services[0], addresses: [], remoteClusters: ['b'] }] },
    ]) {
      const snapshot = buildSnapshot([tsgw(status), endpoints], 1);
      expect(remoteMembersOf(snapshot.getEndpoints('ns', 'web')!)).toEqual([]);
    }
  });

  test('the Gateway revision changes when a remote member appears, and only then', () => {
    const none = gatewayRevision('ns/eg', buildSnapshot([tsgw(), endpoints], 1));
    expect(gatewayRevision('ns/eg', buildSnapshot([tsgw(published('Advertised')), endpoints], 2))).toBe(none);
    expect(gatewayRevision('ns/eg', buildSnapshot([withRemote, endpoints], 3))).not.toBe(none);
  });
});

test('TailscaleServices condition: the worst entry decides', () => {
  const entry = (state: string, problem?: { reason: string; message: string }) => ({
    tailnet: 'corp',
    name: state.toLowerCase(),
    service: `svc:${state.toLowerCase()}`,
    tailscaleTailnet: 'corp',
    state: state as 'Pending',
    ...(problem ? { problem } : {}),
  });
  const now = new Date(0);
  const reason = (entries: ReturnType<typeof entry>[]) =>
    servicesCondition(tsgw(), [], entries, now)[0]?.reason;
  expect(reason([entry('Advertised')])).toBe('Advertised');
  expect(reason([entry('Advertised'), entry('Published')])).toBe('AwaitingAdvertisement');
  expect(reason([entry('Published'), entry('Pending', { reason: 'ProxyGroupNotFound', message: 'x' })])).toBe(
    'ProxyGroupNotFound',
  );
  expect(
    reason([
      entry('Failed', { reason: 'TailscaleAPIError', message: 'x' }),
      entry('Refused', { reason: 'NotManaged', message: 'y' }),
    ]),
  ).toBe('NotManaged');
  expect(servicesCondition(tsgw(), [], [], now)).toEqual([]);
});

describe('syncRoutes and release against the fake control plane', () => {
  let fake: FakeTailscale;
  const clock = createFakeClock(Date.UTC(2026, 0, 1));
  const log = { debug: () => {}, info: () => {}, warn: () => {} };
  beforeEach(() => {
    fake = startFakeTailscale();
  });
  afterEach(async () => {
    await fake.stop();
  });
  const client = () =>
    createTailscaleClient({
      baseUrl: fake.url,
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      writeRateLimit: { perSecond: 10_000, burst: 10_000 },
    });
  const routes = () => {
    const read = readRegistry(fake.state.services.get('svc:web')?.annotations);
    return read.kind === 'ok' ? read.registry.consumers.a?.routes : undefined;
  };

  test('the route set is exact, also across a restart; release drops the consumer and deletes the last', async () => {
    const first = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    const ready = await first.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t', 'ns/HTTPRoute/r'],
      ports: ['tcp:443'],
    });
    expect(ready.status).toBe('ready');
    expect(routes()).toEqual(['ns/HTTPRoute/r', 'ns/TailscaleGateway/t']);
    first.stop();
    // A new process (restart) knows only the route it wants now: the other recorded one goes.
    const second = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    const puts = fake.requests.count({ method: 'PUT', endpoint: '/tailnet/{tailnet}/vip-services/{name}' });
    await second.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t'],
      ports: ['tcp:443'],
    });
    expect(routes()).toEqual(['ns/TailscaleGateway/t']);
    await second.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t'],
      ports: ['tcp:443'],
    });
    expect(fake.requests.count({ method: 'PUT', endpoint: '/tailnet/{tailnet}/vip-services/{name}' })).toBe(
      puts + 1,
    );
    expect(second.wanted()).toEqual([{ service: 'svc:web', routes: ['ns/TailscaleGateway/t'] }]);
    second.stop();
    // Released by a third process that never wanted it (a deletion seen after a restart).
    const third = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    expect(await third.release('svc:web')).toEqual({ status: 'deleted', service: 'svc:web' });
    expect(fake.state.services.has('svc:web')).toBe(false);
    third.stop();
  });

  test('per-tailnet coordinators: none until identity and client exist; stop cancels every timer', async () => {
    let identity: { operatorId: string; clusterId: string } | undefined;
    let api: ReturnType<typeof client> | undefined;
    const coordinators = createTailnetCoordinators({
      client: () => api,
      identity: () => identity,
      clock,
      log,
    });
    coordinators.start();
    expect(coordinators.for('corp')).toBeUndefined();
    identity = { operatorId: 'a', clusterId: 'ca' };
    expect(coordinators.for('corp')).toBeUndefined();
    api = client();
    const coordinator = coordinators.for('corp')!;
    expect(coordinators.for('corp')).toBe(coordinator);
    await coordinator.syncRoutes('svc:web', { backend: 'web', routes: ['r'] });
    expect(coordinator.scheduled().length).toBe(1);
    expect(
      JSON.parse(fake.state.services.get('svc:web')!.annotations![REGISTRY_ANNOTATION]!).consumers.a
        .clusterId,
    ).toBe('ca');
    coordinators.stop();
    expect(coordinator.scheduled()).toEqual([]);
    // The client is looked up per call: without one the call fails instead of using a stale client.
    api = undefined;
    await expect(coordinator.syncRoutes('svc:web', { backend: 'web', routes: ['r'] })).rejects.toThrow(
      /no API client/,
    );
  });
});
