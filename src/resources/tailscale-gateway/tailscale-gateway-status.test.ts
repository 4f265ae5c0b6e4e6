/**
 * The TailscaleGateway-side pure cores: desired status (every reason), the revision digest that makes
 * Envoy Gateway re-translate, the RouteReferences condition on TailscaleEndpoints, and the reconcilers
 * around them with in-memory caches (zero writes when nothing changed).
 */
import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type AnyResource,
  checkResource,
  type TailscaleEndpoints,
  type TailscaleGateway,
} from '../../api/index.ts';
import { createFakeClock } from '../../controller-runtime/index.ts';
import { parseRoute, type RouteInfo } from '../../model/gateway-api.ts';
import { createResourceIndex } from '../../model/resource-index.ts';
import { buildSnapshot } from '../../model/resource-store.ts';
import { servicesOf } from '../../model/route-generation.ts';
import { createLogger } from '../../observability/logger.ts';
import { endpointsObject, gatewayObject, snapshotOf } from '../../testing/xds-resources.ts';
import {
  CONDITION_ROUTE_REFERENCES,
  createEndpointsRoutesReconciler,
  routeReferenceConditions,
} from './tailscale-endpoints-routes.ts';
import { createTailscaleGatewayReconciler } from './tailscale-gateway.ts';
import {
  desiredGatewayStatus,
  type GatewayObservation,
  gatewayStatusEqual,
} from './tailscale-gateway-status.ts';
import {
  createGatewayTriggerReconciler,
  gatewayRevision,
  REVISION_ANNOTATION,
} from './tailscale-gateway-trigger.ts';

const NOW = new Date('2026-01-01T00:00:00Z');
const log = createLogger({ level: 'silent', format: 'json' });
const ctx = { signal: new AbortController().signal, log };

const tsgw = (extra: Parameters<typeof gatewayObject>[0] = {}) => {
  const g = gatewayObject(extra);
  g.metadata.generation = 3;
  return g;
};
const WEB = endpointsObject('web', [{ name: 'httpbin', port: 80, externalTarget: 'httpbin.org:80' }]);
const httpRoute = (name: string, kind = 'HTTPRoute', endpoints = 'web'): RouteInfo =>
  parseRoute({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind,
    metadata: { name, namespace: 'default' },
    spec: {
      parentRefs: [{ name: 'eg' }],
      rules: [
        { backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: endpoints }] },
      ],
    },
  } as KubernetesObject)!;

const observation = (over: Partial<GatewayObservation> = {}): GatewayObservation => ({
  gatewayApi: true,
  gateway: { namespace: 'default', name: 'eg', revision: 'r1' },
  tailnets: new Map([['corp', { state: 'present', ready: 'True' }]]),
  services: servicesOf(tsgw(), snapshotOf(WEB)),
  routes: [],
  revision: 'r1',
  ...over,
});
const conditions = (g: TailscaleGateway, o: GatewayObservation) =>
  Object.fromEntries(
    (desiredGatewayStatus(g, o, NOW).status.conditions ?? []).map((c) => [c.type, [c.status, c.reason]]),
  );

describe('desiredGatewayStatus', () => {
  test('all good: Ready, Accepted, ResolvedRefs, Programmed; generated routes listed per tailnet', () => {
    const { status, ready } = desiredGatewayStatus(tsgw(), observation(), NOW);
    expect(ready).toBe(true);
    expect(conditions(tsgw(), observation())).toEqual({
      Ready: ['True', 'Ready'],
      Accepted: ['True', 'Accepted'],
      ResolvedRefs: ['True', 'ResolvedRefs'],
      Programmed: ['True', 'Programmed'],
    });
    expect(status.conditions?.every((c) => c.observedGeneration === 3)).toBe(true);
    expect(status.tailnets).toEqual([
      {
        name: 'corp',
        tailscaleTailnet: 'corp',
        ready: 'True',
        services: 1,
        routes: [
          { service: 'httpbin', pathPrefix: '/tailscale/httpbin/', cluster: 'tailscale/default/web/httpbin' },
        ],
      },
    ]);
    expect(status.revision).toBe('r1');
  });

  test.each([
    ['no Gateway API', { gatewayApi: false }, 'GatewayAPINotInstalled'],
    ['no Gateway', { gateway: undefined }, 'GatewayNotFound'],
  ] as const)('%s: not Accepted, refs unresolved, NotAccepted', (_, over, reason) => {
    expect(conditions(tsgw(), observation(over))).toEqual({
      Ready: ['False', reason],
      Accepted: ['False', reason],
      ResolvedRefs: ['False', reason],
      Programmed: ['False', 'NotAccepted'],
    });
  });

  test('a gatewayRef that is not a Gateway', () => {
    const g = tsgw();
    g.spec.gatewayRef.kind = 'ListenerSet';
    expect(conditions(g, observation())).toMatchObject({ Accepted: ['False', 'InvalidGatewayRef'] });
  });

  test('tailnets missing or not Ready: ResolvedRefs False, still Programmed', () => {
    expect(conditions(tsgw(), observation({ tailnets: new Map() }))).toEqual({
      Ready: ['False', 'TailnetNotFound'],
      Accepted: ['True', 'Accepted'],
      ResolvedRefs: ['False', 'TailnetNotFound'],
      Programmed: ['True', 'Programmed'],
    });
    const notReady = observation({
      tailnets: new Map([['corp', { state: 'present', ready: 'False', reason: 'SecretNotFound' }]]),
    });
    const verdict = desiredGatewayStatus(tsgw(), notReady, NOW);
    expect(verdict.status.conditions?.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
      reason: 'TailnetNotReady',
      message: 'not Ready: corp (TailscaleTailnet corp): SecretNotFound',
    });
    expect(verdict.status.tailnets?.[0]?.ready).toBe('False');
  });

  test('the Gateway not yet carrying the current revision: Programmed False / Pending', () => {
    expect(conditions(tsgw(), observation({ revision: 'r2' }))).toMatchObject({
      Programmed: ['False', 'Pending'],
      Ready: ['False', 'Pending'],
    });
  });

  test('routes with TailscaleEndpoints backends, unsupported kinds marked and mentioned', () => {
    const o = observation({
      routes: [
        { route: httpRoute('b-grpc', 'GRPCRoute'), endpoints: ['default/web'] },
        { route: httpRoute('a-http'), endpoints: ['default/web'] },
      ],
    });
    const { status } = desiredGatewayStatus(tsgw(), o, NOW);
    expect(status.routes).toEqual([
      {
        kind: 'GRPCRoute',
        namespace: 'default',
        name: 'b-grpc',
        endpoints: ['default/web'],
        supported: false,
      },
      {
        kind: 'HTTPRoute',
        namespace: 'default',
        name: 'a-http',
        endpoints: ['default/web'],
        supported: true,
      },
    ]);
    expect(status.conditions?.[0]?.message).toContain(
      'GRPCRoute default/b-grpc name TailscaleEndpoints directly',
    );
  });

  test('the same observation twice says the same; lastTransitionTime holds while the status does', () => {
    const g = tsgw();
    const first = desiredGatewayStatus(g, observation(), NOW).status;
    g.status = first;
    const later = desiredGatewayStatus(g, observation(), new Date(NOW.getTime() + 60_000)).status;
    expect(gatewayStatusEqual(first, later)).toBe(true);
    expect(
      gatewayStatusEqual(first, desiredGatewayStatus(g, observation({ revision: 'r2' }), NOW).status),
    ).toBe(false);
  });
});

describe('gatewayRevision', () => {
  const base = [tsgw(), WEB] as AnyResource[];

  test('none for a Gateway nobody joins; stable for the same input', () => {
    expect(gatewayRevision('default/other', snapshotOf(...base))).toBeUndefined();
    const a = gatewayRevision('default/eg', snapshotOf(...base));
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(gatewayRevision('default/eg', snapshotOf(...[...base].reverse()))).toBe(a);
  });

  test('changes with a new endpoints object, an endpoints spec edit, a TailscaleGateway edit', () => {
    const a = gatewayRevision('default/eg', snapshotOf(...base));
    const more = endpointsObject('more', [{ name: 'm', port: 80, externalTarget: 'm:80' }]);
    expect(gatewayRevision('default/eg', snapshotOf(...base, more))).not.toBe(a);
    const edited = endpointsObject('web', [
      { name: 'httpbin', port: 8080, externalTarget: 'httpbin.org:80' },
    ]);
    expect(gatewayRevision('default/eg', snapshotOf(tsgw(), edited))).not.toBe(a);
    expect(gatewayRevision('default/eg', snapshotOf(tsgw({ pathPrefix: '/ts/{service}/' }), WEB))).not.toBe(
      a,
    );
  });

  test('ignores what the generated routes do not depend on (another tailnet, another namespace)', () => {
    const a = gatewayRevision('default/eg', snapshotOf(...base));
    const elsewhere = endpointsObject('x', [{ name: 'x', port: 80, externalTarget: 'x:80' }], {
      tailnet: 'other',
    });
    const otherNs = endpointsObject('y', [{ name: 'y', port: 80, externalTarget: 'y:80' }], {
      namespace: 'team',
    });
    expect(gatewayRevision('default/eg', snapshotOf(...base, elsewhere, otherNs))).toBe(a);
  });
});

describe('gatewayRevision and the ports of TailscaleEndpoints backendRefs', () => {
  /** An index holding HTTPRoute `site` on Gateway default/eg naming `web`, at `port` when given. */
  const indexWith = (port?: number, gateway = 'eg') => {
    const index = createResourceIndex();
    index.upsert({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'site', namespace: 'default', resourceVersion: '1' },
      spec: {
        parentRefs: [{ name: gateway }],
        rules: [
          {
            backendRefs: [
              {
                group: 'gateway.tailscale.com',
                kind: 'TailscaleEndpoints',
                name: 'web',
                ...(port === undefined ? {} : { port }),
              },
            ],
          },
        ],
      },
    } as KubernetesObject);
    return index;
  };

  // The hooks read a backendRef's port from the index, which may see a route after Envoy Gateway
  // translated it: the port in the digest makes EG translate again once the index has it.
  test('a port joins the digest (and changes it); a route without ports leaves it as it was', () => {
    const plain = gatewayRevision('default/eg', snapshotOf(tsgw(), WEB));
    expect(gatewayRevision('default/eg', buildSnapshot([tsgw(), WEB], 1, indexWith()))).toBe(plain);
    const at80 = gatewayRevision('default/eg', buildSnapshot([tsgw(), WEB], 1, indexWith(80)));
    const at3000 = gatewayRevision('default/eg', buildSnapshot([tsgw(), WEB], 1, indexWith(3000)));
    expect(at80).not.toBe(plain);
    expect(at3000).not.toBe(at80);
  });

  test('a Gateway no TailscaleGateway joins gets a revision while such a route is on it', () => {
    expect(gatewayRevision('default/eg', buildSnapshot([WEB], 1, indexWith()))).toBeUndefined();
    expect(gatewayRevision('default/eg', buildSnapshot([WEB], 1, indexWith(80)))).toMatch(/^[0-9a-f]{16}$/);
    expect(gatewayRevision('default/other', buildSnapshot([WEB], 1, indexWith(80)))).toBeUndefined();
  });
});

describe('gatewayRevision and published services of mode HTTP', () => {
  /** The base TailscaleGateway publishing `grafana`; `mode` and a status DNS name as given. */
  const publishing = (mode: 'HTTP' | 'TCP', dnsName?: string) => {
    const g = tsgw();
    g.spec.tailnets[0]!.ingress = {
      proxyGroup: 'ingress',
      services: [
        {
          name: 'grafana',
          mode,
          target: { name: 'grafana', port: 3000 },
          ports: [443, 80],
        },
      ],
    };
    if (dnsName !== undefined)
      g.status = {
        conditions: [],
        services: [
          {
            tailnet: 'corp',
            name: 'grafana',
            service: 'svc:grafana',
            tailscaleTailnet: 'corp',
            state: 'Advertised',
            dnsName,
          },
        ],
      };
    return g;
  };

  test('a DNS name appearing in status changes it (a new virtual-host domain); for mode TCP it does not', () => {
    const http = gatewayRevision('default/eg', snapshotOf(publishing('HTTP'), WEB));
    expect(
      gatewayRevision('default/eg', snapshotOf(publishing('HTTP', 'grafana.tail1234.ts.net'), WEB)),
    ).not.toBe(http);
    const tcp = gatewayRevision('default/eg', snapshotOf(publishing('TCP'), WEB));
    expect(gatewayRevision('default/eg', snapshotOf(publishing('TCP', 'grafana.tail1234.ts.net'), WEB))).toBe(
      tcp,
    );
  });

  test('without mode-HTTP services the digest is what it always was', () => {
    // Pinned: the value before published services entered the digest, so existing Gateways are not
    // re-annotated (and re-translated) by an upgrade.
    // An object stored then carries the egress defaults of that time: the hostPattern, and the
    // protocol (deprecated since; the API server keeps what it stored).
    const stored = tsgw({ hostPattern: '{service}.tailscale.local' });
    stored.spec.tailnets[0]!.routeGeneration.egress.protocol = 'HTTP';
    expect(gatewayRevision('default/eg', snapshotOf(stored, WEB))).toBe('a67f4acb64fb804a');
  });
});

describe('the revision reconciler', () => {
  test('writes only a differing annotation, removes it when nobody joins, never for a missing Gateway', async () => {
    const writes: [string, string | undefined][] = [];
    let annotation: string | undefined;
    let snapshot = snapshotOf(tsgw(), WEB);
    let present = true;
    const reconcile = createGatewayTriggerReconciler({
      getGateway: () => (present ? { found: true, revision: annotation } : { found: false }),
      snapshot: () => snapshot,
      setRevision: async (_ns, name, revision) => {
        writes.push([name, revision]);
        annotation = revision;
      },
    });
    await reconcile('default/eg', ctx);
    await reconcile('default/eg', ctx);
    expect(writes).toEqual([['eg', gatewayRevision('default/eg', snapshot)]]);
    snapshot = snapshotOf(WEB);
    await reconcile('default/eg', ctx);
    expect(writes.at(-1)).toEqual(['eg', undefined]);
    present = false;
    snapshot = snapshotOf(tsgw(), WEB);
    await reconcile('default/eg', ctx);
    expect(writes).toHaveLength(2);
    expect(REVISION_ANNOTATION.startsWith('gateway.envoyproxy.io/')).toBe(true);
  });
});

describe('RouteReferences', () => {
  const DB = endpointsObject('db', [
    { name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP' },
    { name: 'ext', port: 5432, protocol: 'TCP', externalTarget: 'db.example.com:5432' },
  ]);

  test('no routes: no condition', () => {
    expect(routeReferenceConditions(DB, [], NOW)).toEqual([]);
  });

  test('HTTPRoutes only: True / Referenced naming them and their rules', () => {
    const [c] = routeReferenceConditions(DB, [httpRoute('api', 'HTTPRoute', 'db')], NOW);
    expect(c).toMatchObject({
      type: CONDITION_ROUTE_REFERENCES,
      status: 'True',
      reason: 'Referenced',
      message: 'backendRef of HTTPRoute default/api (rule 0)',
    });
  });

  test('a TCPRoute: False / UnsupportedRouteKind with the egress Service to use instead', () => {
    const [c] = routeReferenceConditions(
      DB,
      [httpRoute('db', 'TCPRoute', 'db'), httpRoute('api', 'HTTPRoute', 'db')],
      NOW,
    );
    expect(c?.status).toBe('False');
    expect(c?.reason).toBe('UnsupportedRouteKind');
    expect(c?.message).toContain('TCPRoute default/db (rule 0) name this TailscaleEndpoints directly');
    expect(c?.message).toContain('{kind: Service, name: db-db-egress, port: 5432} for db');
    expect(c?.message).toContain('none for ext (no tailnet address');
    expect(c?.message).toContain('used by HTTPRoute default/api (rule 0)');
  });

  test('the reconciler writes once, then not again; removes its condition when no route is left', async () => {
    const index = createResourceIndex();
    const routeObj = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TCPRoute',
      metadata: { name: 'db', namespace: 'default', resourceVersion: '1' },
      spec: {
        parentRefs: [{ name: 'l4' }],
        rules: [
          { backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'db' }] },
        ],
      },
    };
    index.upsert(routeObj);
    let raw: TailscaleEndpoints = structuredClone(DB);
    const writes: unknown[] = [];
    const reconcile = createEndpointsRoutesReconciler({
      getEndpoints: () => checkResource('TailscaleEndpoints', raw as unknown as KubernetesObject),
      snapshot: () => buildSnapshot([raw], 1, index),
      writeConditions: async (_obj, conditions) => {
        writes.push(conditions);
        raw = { ...raw, status: { ...raw.status, conditions } } as TailscaleEndpoints;
      },
      clock: createFakeClock(NOW.getTime()),
    });
    await reconcile('default/db', ctx);
    await reconcile('default/db', ctx);
    expect(writes).toHaveLength(1);
    index.remove(routeObj);
    await reconcile('default/db', ctx);
    expect(writes.at(-1)).toEqual([]);
    await reconcile('default/db', ctx);
    expect(writes).toHaveLength(2);
  });
});

describe('the TailscaleGateway reconciler', () => {
  test('writes status once for an unchanged world; again when a tailnet turns Ready', async () => {
    const index = createResourceIndex();
    index.upsert({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'eg', namespace: 'default', resourceVersion: '1' },
    });
    let raw: TailscaleGateway = tsgw();
    let tailnetReady = 'False';
    const writes: unknown[] = [];
    const reconcile = createTailscaleGatewayReconciler({
      getTailscaleGateway: () => checkResource('TailscaleGateway', raw as unknown as KubernetesObject),
      getTailnet: () =>
        ({ status: { conditions: [{ type: 'Ready', status: tailnetReady, reason: 'X' }] } }) as never,
      snapshot: () => buildSnapshot([raw, WEB], 1, index),
      gatewayApiServed: () => true,
      writeStatus: async (_obj, status) => {
        writes.push(status);
        raw = { ...raw, status } as TailscaleGateway;
      },
      events: { event: async () => {} } as never,
      clock: createFakeClock(NOW.getTime()),
    });
    await reconcile('default/eg-tailnets', ctx);
    await reconcile('default/eg-tailnets', ctx);
    expect(writes).toHaveLength(1);
    // The Gateway carries no revision yet: Pending.
    expect(raw.status?.conditions?.find((c) => c.type === 'Programmed')?.reason).toBe('Pending');
    tailnetReady = 'True';
    await reconcile('default/eg-tailnets', ctx);
    expect(writes).toHaveLength(2);
    expect(raw.status?.conditions?.find((c) => c.type === 'ResolvedRefs')?.status).toBe('True');
  });
});
