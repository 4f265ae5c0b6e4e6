/**
 * The reference index (src/model/resource-index.ts), the store feed that keeps it (src/operator/resource-informers.ts)
 * and PostTranslateModify's attribution of a translation to Gateways. Pure or with in-memory informers.
 */
import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { AnyResource } from '../api/index.ts';
import { attributeTranslation } from '../extension/hooks/post-translate-modify.ts';
import type { Informer, InformerHandlers } from '../kube/informer.ts';
import { typedInformer } from '../kube/resource-informer.ts';
import { createLogger } from '../observability/logger.ts';
import {
  feedStore,
  type GatewayApiInformers,
  servedGatewayApiKinds,
} from '../operator/resource-informers.ts';
import { endpointsObject, gatewayObject } from '../testing/xds-resources.ts';
import { parseRoute } from './gateway-api.ts';
import { createResourceIndex, EMPTY_INDEX, Relation } from './resource-index.ts';
import { buildSnapshot, createMemoryResourceStore } from './resource-store.ts';

const route = (
  kind: string,
  name: string,
  spec: { parents?: Record<string, unknown>[]; backends?: Record<string, unknown>[][] },
  namespace = 'default',
  resourceVersion = '1',
): KubernetesObject =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind,
    metadata: { name, namespace, resourceVersion },
    spec: {
      parentRefs: spec.parents ?? [{ name: 'eg' }],
      rules: (spec.backends ?? []).map((backendRefs) => ({ backendRefs })),
    },
  }) as KubernetesObject;
const ts = (name: string, namespace = 'default') => ({
  group: 'gateway.tailscale.com',
  kind: 'TailscaleEndpoints',
  name,
  ...(namespace === 'default' ? {} : { namespace }),
});
const gateway = (name: string, namespace = 'default', annotations: Record<string, string> = {}) =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace, resourceVersion: '1', annotations },
    spec: {},
  }) as KubernetesObject;

describe('parseRoute', () => {
  test('Gateway API defaults: parent Gateway in the route namespace, backend core Service', () => {
    const parsed = parseRoute(
      route(
        'HTTPRoute',
        'r',
        {
          parents: [{ name: 'eg', sectionName: 'http' }],
          backends: [[{ name: 'svc', port: 80 }], [ts('web')]],
        },
        'apps',
      ),
    )!;
    expect(parsed.parents).toEqual([
      {
        group: 'gateway.networking.k8s.io',
        kind: 'Gateway',
        namespace: 'apps',
        name: 'eg',
        sectionName: 'http',
      },
    ]);
    expect(parsed.backends).toEqual([
      {
        group: '',
        kind: 'Service',
        namespace: 'apps',
        name: 'svc',
        port: 80,
        rule: 0,
        index: 0,
        filtered: false,
      },
      {
        group: 'gateway.tailscale.com',
        kind: 'TailscaleEndpoints',
        namespace: 'apps',
        name: 'web',
        rule: 1,
        index: 0,
        filtered: false,
      },
    ]);
  });

  test("a backendRef's position in its rule counts every entry (Envoy Gateway's backend/<i>); filters are noted", () => {
    const parsed = parseRoute(
      route('HTTPRoute', 'r', {
        backends: [[{ port: 1 }, { ...ts('a'), port: 80 }, { ...ts('b'), filters: [{ type: 'X' }] }]],
      }),
    )!;
    expect(parsed.backends.map((b) => [b.name, b.index, b.port, b.filtered])).toEqual([
      ['a', 1, 80, false],
      ['b', 2, undefined, true],
    ]);
  });

  test('odd shapes are skipped, not thrown', () => {
    const odd = {
      apiVersion: 'x',
      kind: 'TCPRoute',
      metadata: { name: 'r' },
      spec: { parentRefs: 'no', rules: [null, { backendRefs: [{}] }] },
    };
    expect(parseRoute(odd as KubernetesObject)).toMatchObject({ parents: [], backends: [] });
    expect(parseRoute({ kind: 'Service', metadata: { name: 'x' } })).toBeUndefined();
  });
});

describe('Relation', () => {
  test('keeps both directions and replaces the edges of a source', () => {
    const r = new Relation();
    r.set('a', ['x', 'y']);
    r.set('b', ['y']);
    expect(r.sources('y')).toEqual(['a', 'b']);
    r.set('a', ['z']);
    expect(r.sources('y')).toEqual(['b']);
    expect(r.targets('a')).toEqual(['z']);
    r.delete('b');
    expect(r.sources('y')).toEqual([]);
    expect(r.size).toBe(1);
  });
});

describe('resource index', () => {
  const build = () => {
    const index = createResourceIndex();
    index.upsert(gatewayObject({ name: 'joins-eg', gateway: 'eg' }) as unknown as KubernetesObject);
    index.upsert(
      endpointsObject('web', [
        { name: 'httpbin', port: 80, externalTarget: 'h:80' },
      ]) as unknown as KubernetesObject,
    );
    index.upsert(
      endpointsObject('other', [{ name: 'o', port: 80, externalTarget: 'h:80' }], {
        tailnet: 'elsewhere',
      }) as unknown as KubernetesObject,
    );
    index.upsert(gateway('eg'));
    index.upsert(route('HTTPRoute', 'api', { backends: [[ts('api'), { name: 'svc' }]] }));
    index.upsert(route('GRPCRoute', 'rpc', { parents: [{ name: 'l4' }], backends: [[ts('api')]] }));
    return index;
  };

  test('endpoints ↔ routes ↔ Gateways ↔ TailscaleGateways, both ways', () => {
    const index = build();
    expect(index.routesOfEndpoints('default', 'api').map((r) => r.name)).toEqual(['rpc', 'api']);
    expect(index.endpointsOfRoute(index.route('HTTPRoute', 'default', 'api')!)).toEqual(['default/api']);
    expect(index.routesOfGateway('default', 'eg').map((r) => r.name)).toEqual(['api']);
    expect(index.tailscaleGatewaysOfGateway('default', 'eg')).toEqual(['default/joins-eg']);
    expect(index.gatewayOfTailscaleGateway('default', 'joins-eg')).toBe('default/eg');
    // web by tailnet (generated routes), api through the HTTPRoute on eg; other is on another tailnet.
    expect(index.endpointsOfTailscaleGateway('default', 'joins-eg')).toEqual(['default/api', 'default/web']);
    expect(index.tailscaleGatewaysOfEndpoints('default', 'api')).toEqual(['default/joins-eg']);
    expect(index.tailscaleGatewaysOfEndpoints('default', 'other')).toEqual([]);
    expect(index.stats().edges).toMatchObject({ 'route-endpoints': 2, 'route-gateway': 2 });
  });

  test('an update replaces exactly that object’s edges; a delete drops them', () => {
    const index = build();
    const before = index.version;
    index.upsert(route('HTTPRoute', 'api', { backends: [[ts('web')]] }, 'default', '2'));
    expect(index.version).toBeGreaterThan(before);
    expect(index.routesOfEndpoints('default', 'api').map((r) => r.name)).toEqual(['rpc']);
    expect(index.routesOfEndpoints('default', 'web').map((r) => r.name)).toEqual(['api']);
    index.remove(route('GRPCRoute', 'rpc', {}));
    expect(index.routesOfEndpoints('default', 'api')).toEqual([]);
    expect(index.holds(route('HTTPRoute', 'api', {}, 'default', '2'))).toBe(true);
    expect(index.holds(route('HTTPRoute', 'api', {}, 'default', '1'))).toBe(false);
  });

  test('kinds it does not follow are ignored', () => {
    const index = createResourceIndex();
    index.upsert({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'default' } });
    expect(index.version).toBe(0);
    expect(index.held().size).toBe(0);
  });
});

describe('attributeTranslation', () => {
  const setup = (complete = true) => {
    const index = createResourceIndex();
    const joined = gatewayObject({ name: 'joins-eg', gateway: 'eg' });
    index.upsert(joined as unknown as KubernetesObject);
    index.upsert(route('HTTPRoute', 'api', { backends: [[ts('api')]] }));
    index.upsert(route('TCPRoute', 'db', { parents: [{ name: 'l4' }], backends: [[{ name: 'svc' }]] }));
    index.upsert(route('HTTPRoute', 'ls', { parents: [{ kind: 'ListenerSet', name: 'set' }] }));
    index.setServed(['Gateway', 'HTTPRoute', 'TCPRoute'], complete);
    return buildSnapshot([joined as AnyResource], 1, index);
  };

  test('the Gateways of the routes EG’s clusters name', () => {
    expect(attributeTranslation(['httproute/default/api/rule/0', 'tailscale/x', undefined], setup())).toEqual(
      {
        known: true,
        gateways: new Set(['default/eg']),
      },
    );
    expect(attributeTranslation(['tcproute/default/db/rule/-1'], setup())).toEqual({
      known: true,
      gateways: new Set(['default/l4']),
    });
  });

  test('no route cluster: joined Gateways with an HTTP route attached (clusterless routes)', () => {
    expect(attributeTranslation([], setup())).toEqual({ known: true, gateways: new Set(['default/eg']) });
  });

  test('cannot tell: incomplete index, unknown route, ListenerSet parent, no index', () => {
    expect(attributeTranslation(['httproute/default/api/rule/0'], setup(false)).known).toBe(false);
    expect(attributeTranslation(['httproute/default/new/rule/0'], setup()).known).toBe(false);
    expect(attributeTranslation(['httproute/default/ls/rule/0'], setup()).known).toBe(false);
    expect(attributeTranslation(['httproute/default/api/rule/0'], buildSnapshot([], 1)).known).toBe(false);
    expect(EMPTY_INDEX.complete()).toBe(false);
  });
});

/** An informer over a fixed list, whose events tests fire by hand. */
function fakeInformer(kind: string, objects: KubernetesObject[] = [], synced = true) {
  const cache = new Map(objects.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
  const handlers: {
    [E in keyof InformerHandlers<KubernetesObject>]: Set<InformerHandlers<KubernetesObject>[E]>;
  } = {
    add: new Set(),
    update: new Set(),
    delete: new Set(),
    resync: new Set(),
  };
  let isSynced = synced;
  const waiters: (() => void)[] = [];
  const informer = {
    resource: kind,
    start() {},
    hasSynced: () => isSynced,
    waitForSync: () =>
      isSynced ? Promise.resolve(true) : new Promise<boolean>((r) => waiters.push(() => r(true))),
    get: (ns: string | undefined, name: string) => cache.get(`${ns}/${name}`),
    list: () => [...cache.values()],
    keys: () => [...cache.keys()],
    on(event: keyof typeof handlers, handler: never) {
      (handlers[event] as Set<unknown>).add(handler);
      return () => (handlers[event] as Set<unknown>).delete(handler);
    },
    lastResourceVersion: () => '1',
    stop: async () => {},
  } as unknown as Informer;
  return {
    informer,
    add(obj: KubernetesObject, silently = false) {
      cache.set(`${obj.metadata?.namespace}/${obj.metadata?.name}`, obj);
      if (!silently) for (const h of handlers.add) h(obj);
    },
    remove(obj: KubernetesObject, silently = false) {
      cache.delete(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
      if (!silently) for (const h of handlers.delete) h(obj);
    },
    sync() {
      isSynced = true;
      for (const w of waiters.splice(0)) w();
    },
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('feedStore with the index', () => {
  const log = createLogger({ level: 'silent', format: 'json' });

  const gatewayApiOf = (...informers: [string, ReturnType<typeof fakeInformer>][]): GatewayApiInformers => ({
    get: (kind) => informers.find(([k]) => k === kind)?.[1].informer,
    all: () => informers.map(([, f]) => f.informer),
    served: () => informers.map(([k]) => k) as never,
    kindsKnown: () => true,
    onInformer(listener) {
      for (const [kind, f] of informers) listener(kind as never, f.informer);
      return () => {};
    },
    start() {},
    stop: async () => {},
  });

  test('routes reach the index from events; completeness waits for the Gateway API informers only', async () => {
    const endpoints = fakeInformer('tailscaleendpoints', [
      endpointsObject('api', [
        { name: 'a', port: 80, externalTarget: 'h:80' },
      ]) as unknown as KubernetesObject,
    ]);
    const gateways = fakeInformer('tailscalegateways');
    const routes = fakeInformer('httproutes', [], false);
    const store = createMemoryResourceStore();
    const index = createResourceIndex();
    let updates = 0;
    feedStore(
      [
        typedInformer('TailscaleEndpoints', endpoints.informer),
        typedInformer('TailscaleGateway', gateways.informer),
      ],
      store,
      log,
      {
        index,
        gatewayApi: gatewayApiOf(['HTTPRoute', routes]),
        onUpdate: () => updates++,
      },
    );
    await tick();
    // Our kinds listed: the store is filled (readiness) though the routes have not listed yet.
    expect(store.hasSynced()).toBe(true);
    expect(store.snapshot().index.complete()).toBe(false);
    routes.add(route('HTTPRoute', 'r', { backends: [[ts('api')]] }));
    routes.sync();
    await tick();
    expect(store.snapshot().index.complete()).toBe(true);
    expect(
      store
        .snapshot()
        .index.routesOfEndpoints('default', 'api')
        .map((r) => r.name),
    ).toEqual(['r']);
    expect(updates).toBeGreaterThan(0);
  });

  test('verify repairs what events missed, and nothing when they did not', async () => {
    const endpoints = fakeInformer('tailscaleendpoints');
    const routes = fakeInformer('httproutes');
    const store = createMemoryResourceStore();
    const index = createResourceIndex();
    const feed = feedStore([typedInformer('TailscaleEndpoints', endpoints.informer)], store, log, {
      index,
      gatewayApi: gatewayApiOf(['HTTPRoute', routes]),
    });
    routes.add(route('HTTPRoute', 'seen', { backends: [[ts('api')]] }));
    await tick();
    expect(feed.verify()).toBe(0);
    routes.add(route('HTTPRoute', 'missed', { backends: [[ts('api')]] }), true);
    routes.remove(route('HTTPRoute', 'seen', {}), true);
    expect(feed.verify()).toBe(2);
    expect(index.routesOfEndpoints('default', 'api').map((r) => r.name)).toEqual(['missed']);
    expect(feed.verify()).toBe(0);
  });
});

describe('feedStore with route policies', () => {
  const log = createLogger({ level: 'silent', format: 'json' });

  test('a policy whose stored status fails the schema still reaches the hooks (its controller rewrites the status)', async () => {
    const policy = {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleRoutePolicy',
      metadata: { name: 'deny', namespace: 'default', resourceVersion: '3' },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg' }],
        rules: [{ actions: [{ type: 'Deny' }] }],
      },
      // An ancestorRef with a field this schema does not know, as an older schema could have stored it.
      status: {
        ancestors: [{ ancestorRef: { name: 'eg', port: 80 }, controllerName: 'x/y', conditions: [] }],
      },
    } as unknown as KubernetesObject;
    const policies = fakeInformer('tailscaleroutepolicies', [policy]);
    const store = createMemoryResourceStore();
    feedStore([typedInformer('TailscaleRoutePolicy', policies.informer)], store, log);
    await tick();
    expect(store.snapshot().routePolicies.map((p) => p.metadata.name)).toEqual(['deny']);
  });
});

describe('servedGatewayApiKinds', () => {
  const client = (group: unknown, versions: Record<string, { name: string; kind: string }[]>) => ({
    request: async <T>(path: string): Promise<T> => {
      if (path === '/apis/gateway.networking.k8s.io') {
        if (group === 404) throw Object.assign(new Error('not found'), { code: 'NotFound' });
        return group as T;
      }
      const version = path.split('/').at(-1)!;
      return { resources: versions[version] ?? [] } as T;
    },
  });

  test('each kind at the newest version serving it; missing kinds absent', async () => {
    const found = await servedGatewayApiKinds(
      client(
        { versions: [{ version: 'v1alpha2' }, { version: 'v1' }] },
        {
          v1: [
            { name: 'gateways', kind: 'Gateway' },
            { name: 'httproutes', kind: 'HTTPRoute' },
            { name: 'gateways/status', kind: 'Gateway' },
          ],
          v1alpha2: [
            { name: 'tcproutes', kind: 'TCPRoute' },
            { name: 'httproutes', kind: 'HTTPRoute' },
          ],
        },
      ),
    );
    expect([...found]).toEqual([
      ['Gateway', 'v1'],
      ['HTTPRoute', 'v1'],
      ['TCPRoute', 'v1alpha2'],
    ]);
  });

  test('no Gateway API at all', async () => {
    expect((await servedGatewayApiKinds(client(404, {}))).size).toBe(0);
  });
});
