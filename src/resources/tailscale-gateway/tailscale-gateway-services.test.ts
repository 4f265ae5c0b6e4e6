import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { checkResource, type TailscaleGatewayStatus } from '../../api/index.ts';
import type { ServiceCoordinator, TailnetCoordinators } from '../../coordination/index.ts';
import { buildSnapshot } from '../../model/resource-store.ts';
import { createLogger } from '../../observability/logger.ts';
import { tcpGateway } from '../../testing/tcp-ingress.ts';
import { createFakeClock } from '../../time/fake-clock.ts';
import {
  CACHE_WAIT_MS,
  type CacheLookup,
  createServicesReconciler,
  SERVICES_FINALIZER,
  servicesCondition,
} from './tailscale-gateway-services.ts';
import { OWNING_GATEWAY_NAME_LABEL, OWNING_GATEWAY_NAMESPACE_LABEL } from './tailscale-gateway-upstream.ts';

const SUFFIX = 'tail1234.ts.net';
const UPSTREAM = 'http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:80';

interface Setup {
  mode?: 'TCP' | 'HTTP';
  protocol?: 'HTTP' | 'HTTPS';
  gateway?: CacheLookup<KubernetesObject | undefined>;
  envoyServices?: CacheLookup<KubernetesObject[]>;
  suffix?: string;
}

const gatewayObject = (listeners: object[] = [{ name: 'http', protocol: 'HTTP', port: 80 }]) =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: 'apps' },
    spec: { gatewayClassName: 'eg', listeners },
  }) as KubernetesObject;
const envoyService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 'envoy-apps-eg-1a2b3c4d',
    namespace: 'envoy-gateway-system',
    labels: { [OWNING_GATEWAY_NAMESPACE_LABEL]: 'apps', [OWNING_GATEWAY_NAME_LABEL]: 'eg' },
  },
  spec: { ports: [{ name: 'http-80', protocol: 'TCP', port: 80, targetPort: 10080 }] },
} as KubernetesObject;

/** The reconciler against in-memory objects and a coordinator that records its calls. */
function setup(options: Setup = {}) {
  const calls: { service: string; ports: readonly string[] | undefined }[] = [];
  const writes: Partial<TailscaleGatewayStatus>[] = [];
  const tsgw: KubernetesObject & { status?: Partial<TailscaleGatewayStatus> } = {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleGateway',
    metadata: { name: 'tsgw', namespace: 'apps', generation: 1, finalizers: [SERVICES_FINALIZER] },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ...(options.protocol ? { routeGeneration: { ingress: { protocol: options.protocol } } } : {}),
          ingress: {
            proxyGroup: 'ingress',
            services: [
              options.mode === 'TCP'
                ? { name: 'grafana', target: { name: 'envoy' } }
                : { name: 'grafana', mode: 'HTTP', target: { name: 'grafana', port: 3000 } },
            ],
          },
        },
      ],
    },
  } as KubernetesObject;
  const coordinator = {
    async syncRoutes(service: string, o: { ports?: readonly string[] }) {
      calls.push({ service, ports: o.ports });
      return {
        status: 'ready',
        service,
        addrs: ['100.100.0.2'],
        owner: 'op-a',
        consumers: [{ operatorId: 'op-a', clusterId: 'a' }],
        consumerCount: 1,
        otherOwners: [],
        changed: false,
        created: false,
        mismatches: [],
        warnings: [],
      };
    },
  } as unknown as ServiceCoordinator;
  const coordinators = {
    for: () => coordinator,
    identity: () => ({ operatorId: 'op-a', clusterId: 'a' }),
  } as unknown as TailnetCoordinators;
  const suffix = 'suffix' in options ? options.suffix : SUFFIX;
  const reconcile = createServicesReconciler({
    getTailscaleGateway: () => checkResource('TailscaleGateway', tsgw),
    getTailnet: () =>
      ({ metadata: { name: 'corp' }, status: suffix ? { magicDNSSuffix: suffix } : {} }) as never,
    getProxyGroup: () =>
      ({ metadata: { name: 'ingress' }, spec: { type: 'ingress', tailnet: 'corp' } }) as never,
    getGateway: () => ('gateway' in options ? options.gateway : gatewayObject()),
    getEnvoyServices: () => options.envoyServices ?? [envoyService],
    clusterDomain: 'cluster.local',
    getSecret: () => undefined,
    operatorNamespace: 'tailscale',
    coordinators,
    snapshot: () => buildSnapshot([], 1),
    writeStatus: async (_, status) => {
      writes.push(status);
      tsgw.status = status;
    },
    setFinalizers: async () => {},
    events: { event: async () => {} } as never,
    clock: createFakeClock(Date.UTC(2026, 0, 1)),
  });
  const log = createLogger({ level: 'silent' });
  const run = () => reconcile('apps/tsgw', { signal: new AbortController().signal, log });
  const entry = () => writes.at(-1)?.services?.[0];
  const condition = () => writes.at(-1)?.conditions?.find((c) => c.type === 'TailscaleServices');
  return { run, calls, writes, entry, condition };
}

describe('mode HTTP', () => {
  test('HTTPS: declared on tcp:443, status with the upstream and the virtual-host domains', async () => {
    const s = setup();
    await s.run();
    expect(s.calls).toEqual([{ service: 'svc:grafana', ports: ['tcp:443'] }]);
    expect(s.entry()).toMatchObject({
      state: 'Published',
      dnsName: `grafana.${SUFFIX}`,
      upstream: UPSTREAM,
      hosts: [`grafana.${SUFFIX}`, 'grafana.corp.gateway.local'],
    });
  });

  test('HTTP: declared on tcp:80', async () => {
    const s = setup({ protocol: 'HTTP' });
    await s.run();
    expect(s.calls[0]?.ports).toEqual(['tcp:80']);
  });

  test('reconciled again with nothing changed: no status write', async () => {
    const s = setup();
    await s.run();
    await s.run();
    expect(s.calls.length).toBe(2);
    expect(s.writes.length).toBe(1);
  });

  test('no MagicDNS suffix yet: published, hosts without the DNS name, and the message says why it is not served', async () => {
    const s = setup({ suffix: undefined });
    await s.run();
    expect(s.entry()?.dnsName).toBeUndefined();
    expect(s.entry()?.hosts).toEqual(['grafana.corp.gateway.local']);
    expect(s.entry()?.message).toContain('MagicDNS suffix');
  });

  test.each<[string, Setup]>([
    ['GatewayNotFound', { gateway: undefined }],
    ['NoHTTPListener', { gateway: gatewayObject([{ name: 'https', protocol: 'HTTPS', port: 443 }]) }],
    ['EnvoyServiceNotFound', { envoyServices: [] }],
  ])('%s: Pending before any Tailscale API call, with the reason on the condition', async (reason, o) => {
    const s = setup(o);
    const result = await s.run();
    expect(s.calls).toEqual([]);
    expect(s.entry()).toMatchObject({ state: 'Pending' });
    expect(s.entry()?.upstream).toBeUndefined();
    expect(s.condition()).toMatchObject({ status: 'False', reason });
    expect(result).toEqual({ requeueAfter: 15_000 });
  });

  test('caches not listed yet: nothing written, looked at again shortly', async () => {
    for (const o of [{ gateway: 'unknown' }, { envoyServices: 'unknown' }] as const) {
      const s = setup(o);
      expect(await s.run()).toEqual({ requeueAfter: CACHE_WAIT_MS });
      expect(s.writes).toEqual([]);
      expect(s.calls).toEqual([]);
    }
  });
});

test('mode TCP is unchanged: its ports, no upstream or hosts, and no Gateway lookup needed', async () => {
  const s = setup({ mode: 'TCP', gateway: 'unknown', envoyServices: 'unknown' });
  await s.run();
  expect(s.calls).toEqual([{ service: 'svc:grafana', ports: ['tcp:443', 'tcp:80'] }]);
  expect(s.entry()).toEqual({
    tailnet: 'corp',
    name: 'grafana',
    service: 'svc:grafana',
    tailscaleTailnet: 'corp',
    state: 'Published',
    addresses: ['100.100.0.2'],
    dnsName: `grafana.${SUFFIX}`,
    owner: 'op-a',
    consumers: 1,
    advertisedBy: 0,
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
    servicesCondition(tcpGateway(), [], entries, now)[0]?.reason;
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
  expect(servicesCondition(tcpGateway(), [], [], now)).toEqual([]);
});
