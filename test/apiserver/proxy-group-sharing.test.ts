/**
 * A TailscaleProxyGroup shared by several TailscaleEndpoints, end to end (real kube-apiserver, fake
 * control plane, controllers in-process): members get no proxies of their own; the group's proxies
 * carry the aggregated serve or egress config; egress Services and EndpointSlices point at the group's
 * Pods; conflicts, a missing group and a group deleted while still referenced show up as conditions;
 * member edits and deletions reach the group; steady state writes nothing; keys are minted per group
 * replica only.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1EndpointSlice, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION, parseResource, type TailscaleEndpoints } from '../../src/api/index.ts';
import { egressTarget } from '../../src/model/egress-target.ts';
import { configSecretName, proxyBaseName, stateSecretName } from '../../src/proxy/names.ts';
import { decoded, eventually, type Harness, loggedIn, startHarness } from '../harness/proxy-controllers.ts';

let h: Harness;
const KEYS = { method: 'POST', endpoint: '/tailnet/{tailnet}/keys' };
const DEVICE_DELETE = { method: 'DELETE', endpoint: '/device/{id}' };

beforeAll(async () => {
  h = await startHarness('proxy-share');
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const ns = () => h.appNamespace;
const opNs = () => h.operatorNamespace;
const secretPath = (name: string) => `/api/v1/namespaces/${opNs()}/secrets/${name}`;
const stsPath = (name: string) => `/apis/apps/v1/namespaces/${opNs()}/statefulsets/${name}`;
const endpointsPath = (name: string) => `/apis/${API_VERSION}/namespaces/${ns()}/tailscaleendpoints/${name}`;
const groupPath = (name: string) => `/apis/${API_VERSION}/namespaces/${ns()}/tailscaleproxygroups/${name}`;
const servicePath = (name: string) => `/api/v1/namespaces/${ns()}/services/${name}`;
const slicePath = (name: string) => `/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices/${name}`;
const groupBase = (name: string) => proxyBaseName(ns(), name, 'pg');

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Endpoints {
  metadata: { finalizers?: string[]; generation: number };
  spec: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    proxies?: unknown[];
    proxyGroup?: { name: string; ready: boolean; replicas?: number; readyReplicas?: number };
  };
}
interface Group {
  metadata: { finalizers?: string[] };
  status?: {
    conditions?: Condition[];
    readyReplicas?: number;
    tailscaleEndpoints?: { name: string; routes: number; conflicts?: string[] }[];
  };
}
const getEndpoints = (name: string) => h.get<Endpoints>(endpointsPath(name));
const getGroup = (name: string) => h.get<Group>(groupPath(name));
const ready = (obj: { status?: { conditions?: Condition[] } } | undefined) =>
  obj?.status?.conditions?.find((c) => c.type === 'Ready');
const patch = (path: string, body: unknown) =>
  h.request(path, { method: 'PATCH', contentType: 'application/merge-patch+json', body });

/**
 * The serve or egress config every replica of a group carries. The replicas' Secrets are written one
 * after another, so a read between two writes sees them differ: read again until they agree (bounded),
 * and fail only if they never do.
 */
async function groupConfig(group: string, key: 'serve-config' | 'egress-services', replicas = 2) {
  let texts = new Set<string>();
  for (let attempt = 0; attempt < 100; attempt++) {
    texts = new Set<string>();
    for (let i = 0; i < replicas; i++) {
      const secret = await h.get<V1Secret>(secretPath(configSecretName(groupBase(group), i)));
      texts.add(decoded(secret)[key] ?? 'missing');
    }
    if (texts.size === 1) break;
    await Bun.sleep(50);
  }
  expect(texts.size).toBe(1);
  return JSON.parse([...texts][0]!) as Record<string, Record<string, { TCPForward?: string }>>;
}

/** Every StatefulSet in the operator namespace: members never get one. */
async function statefulSets() {
  const list = (await h.request(`/apis/apps/v1/namespaces/${opNs()}/statefulsets`)) as {
    items: V1StatefulSet[];
  };
  return list.items.map((s) => s.metadata!.name!).sort();
}

/** Plays containerboot for every replica of a group: Pods, devices, state. */
async function groupComesUp(group: string, prefix: string, n: number, ipBase: string) {
  await eventually(
    () => h.get<V1StatefulSet>(stsPath(groupBase(group))),
    (s) => s !== undefined,
  );
  for (let i = 0; i < 2; i++) {
    const pod = stateSecretName(groupBase(group), i);
    const uid = await h.createPod(pod, groupBase(group), `${ipBase}.${i + 1}`);
    const nodeId = `n${prefix.toUpperCase()}${n + i}CNTRL`;
    h.fake.state.seedDevice({ nodeId, hostname: `${prefix}-${i}` });
    await h.playProxy(pod, { ...loggedIn(uid, n + i, `${prefix}-${i}.tail1234.ts.net`), device_id: nodeId });
  }
  await eventually(
    () => getGroup(group),
    (g) => ready(g)?.status === 'True',
  );
}

describe('spec.proxy.proxyGroup on the API server', () => {
  test('CEL: connectionType must be ingress or egress, and per-object proxy settings are refused', async () => {
    const post = async (proxy: Record<string, unknown>) => {
      const res = await h.cp.request(`/apis/${API_VERSION}/namespaces/${ns()}/tailscaleendpoints`, {
        method: 'POST',
        query: { dryRun: 'All' },
        body: {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name: 'cel' },
          spec: { tailnet: 'corp', endpoints: [{ name: 'a', tailscaleIP: '100.64.0.1', port: 80 }], proxy },
        },
      });
      return { status: res.status, body: await res.text() };
    };
    const defaulted = await post({ proxyGroup: 'pool' });
    expect(defaulted.status).toBe(422);
    expect(defaulted.body).toContain('spec.proxy.connectionType');
    for (const extra of [{ replicas: 2 }, { image: 'x:1' }, { nodeSelector: { a: 'b' } }]) {
      const refused = await post({ connectionType: 'egress', proxyGroup: 'pool', ...extra });
      expect(refused.status).toBe(422);
      expect(refused.body).toContain('spec.proxy.proxyGroup');
    }
    expect((await post({ connectionType: 'egress', proxyGroup: 'pool' })).status).toBe(201);
  });
});

describe('a missing group', () => {
  test('a clear condition, no proxies and no keys; the group appearing later takes the object', async () => {
    const keysBefore = h.fake.requests.count(KEYS);
    await h.createEndpoints('early', {
      tailnet: 'corp',
      endpoints: [{ name: 'a', externalTarget: 'a.example.com:443', port: 443 }],
      proxy: { connectionType: 'ingress', proxyGroup: 'late' },
    });
    const waiting = await eventually(
      () => getEndpoints('early'),
      (e) => ready(e)?.reason === 'ProxyGroupNotFound',
    );
    expect(ready(waiting)?.status).toBe('False');
    expect(ready(waiting)?.message).toContain('TailscaleProxyGroup late does not exist');
    expect(waiting!.status?.proxyGroup).toEqual({ name: 'late', ready: false });
    await h.settle();
    expect(await statefulSets()).toEqual([]);
    expect(h.fake.requests.count(KEYS)).toBe(keysBefore);
    expect(await h.reconcileAgain('endpoints', `${ns()}/early`)).toEqual([]);

    await h.createProxyGroup('late', {
      type: 'ingress',
      tailnet: 'corp',
      replicas: 2,
      hostnamePrefix: 'late',
    });
    const taken = await eventually(
      () => getGroup('late'),
      (g) => g?.status?.tailscaleEndpoints?.[0]?.name === 'early',
    );
    expect(taken!.status?.tailscaleEndpoints).toEqual([{ name: 'early', routes: 1 }]);
    expect((await groupConfig('late', 'serve-config')).TCP).toEqual({
      '443': { TCPForward: 'a.example.com:443' },
    });
    const starting = await eventually(
      () => getEndpoints('early'),
      (e) => ready(e)?.reason === 'ProxyGroupNotReady' && e?.status?.proxyGroup?.replicas === 2,
    );
    expect(starting!.status?.proxyGroup).toEqual({
      name: 'late',
      ready: false,
      replicas: 2,
      readyReplicas: 0,
    });
    await h.settle();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(2);
  });
});

describe('an ingress group shared by three TailscaleEndpoints', () => {
  const keysAtStart = { value: 0 };

  test('one serve config for all members; the later object on a taken port gets PortConflict; members get no proxies; keys only for the group', async () => {
    keysAtStart.value = h.fake.requests.count(KEYS);
    await h.createProxyGroup('ing', { type: 'ingress', tailnet: 'corp', replicas: 2, hostnamePrefix: 'ing' });
    await h.createEndpoints('alpha', {
      tailnet: 'corp',
      endpoints: [
        { name: 'site', externalTarget: 'site.example.com:443', port: 443, protocol: 'HTTPS' },
        { name: 'admin', externalTarget: 'admin.example.com:80', port: 8080 },
      ],
      proxy: { connectionType: 'ingress', proxyGroup: 'ing' },
    });
    await h.createEndpoints('beta', {
      tailnet: 'corp',
      endpoints: [{ name: 'api', tailscaleIP: '100.64.0.3', port: 9000 }],
      proxy: {
        connectionType: 'ingress',
        proxyGroup: 'ing',
        ingressService: { name: 'envoy', namespace: 'envoy-gateway-system', port: 10080 },
      },
    });
    // Created last, so alpha (older) keeps 443.
    await eventually(
      () => getGroup('ing'),
      (g) => g?.status?.tailscaleEndpoints?.length === 2,
    );
    await h.createEndpoints('gamma', {
      tailnet: 'corp',
      endpoints: [
        { name: 'web', externalTarget: 'web.example.com:443', port: 443 },
        { name: 'ssh', externalTarget: 'bastion.example.com:22', port: 2222, protocol: 'TCP' },
      ],
      proxy: { connectionType: 'ingress', proxyGroup: 'ing' },
    });
    const group = await eventually(
      () => getGroup('ing'),
      (g) => g?.status?.tailscaleEndpoints?.length === 3,
    );
    expect(group!.status?.tailscaleEndpoints).toEqual([
      { name: 'alpha', routes: 2 },
      { name: 'beta', routes: 1 },
      {
        name: 'gamma',
        routes: 1,
        conflicts: ['endpoint web: port 443 is already served for TailscaleEndpoints alpha'],
      },
    ]);
    await eventually(
      async () => (await groupConfig('ing', 'serve-config')).TCP,
      (tcp) => Object.keys(tcp ?? {}).length === 4,
    );
    expect((await groupConfig('ing', 'serve-config')).TCP).toEqual({
      '443': { TCPForward: 'site.example.com:443' },
      '2222': { TCPForward: 'bastion.example.com:22' },
      '8080': { TCPForward: 'admin.example.com:80' },
      '9000': { TCPForward: 'envoy.envoy-gateway-system.svc.cluster.local:10080' },
    });
    const gamma = await eventually(
      () => getEndpoints('gamma'),
      (e) => ready(e)?.reason === 'PortConflict',
    );
    expect(ready(gamma)?.message).toContain('port 443 is already served for TailscaleEndpoints alpha');
    await h.settle();
    for (const name of ['alpha', 'beta', 'gamma'])
      for (const type of ['ingress', 'egress'])
        expect(await h.get(stsPath(proxyBaseName(ns(), name, type)))).toBeUndefined();
    expect(await statefulSets()).toEqual([groupBase('ing'), groupBase('late')].sort());
    expect(h.fake.requests.count(KEYS) - keysAtStart.value).toBe(2);
  });

  test('members report the group and its readiness once the proxies are up', async () => {
    await groupComesUp('ing', 'ing', 10, '10.4.0');
    for (const name of ['alpha', 'beta']) {
      const e = await eventually(
        () => getEndpoints(name),
        (x) => ready(x)?.status === 'True',
      );
      expect(ready(e)).toMatchObject({
        reason: 'ProxiesReady',
        message: 'served by TailscaleProxyGroup ing: 2/2 proxies ready',
      });
      expect(e!.status?.proxyGroup).toEqual({ name: 'ing', ready: true, replicas: 2, readyReplicas: 2 });
      expect(e!.status?.conditions?.find((c) => c.type === 'ProxiesReady')?.status).toBe('True');
      expect(e!.status?.proxies).toBeUndefined();
    }
    expect(ready(await getEndpoints('gamma'))?.reason).toBe('PortConflict');
  });

  test('an unchanged second reconcile writes nothing, for the group and every member', async () => {
    const keys = h.fake.requests.count(KEYS);
    expect(await h.reconcileAgain('proxyGroups', `${ns()}/ing`)).toEqual([]);
    for (const name of ['alpha', 'beta', 'gamma'])
      expect(await h.reconcileAgain('endpoints', `${ns()}/${name}`)).toEqual([]);
    expect(h.fake.requests.count(KEYS)).toBe(keys);
  });

  test('a member edit re-enqueues the group: the config follows', async () => {
    await patch(endpointsPath('beta'), {
      spec: { endpoints: [{ name: 'api', tailscaleIP: '100.64.0.3', port: 9001 }] },
    });
    await eventually(
      async () => (await groupConfig('ing', 'serve-config')).TCP,
      (tcp) => tcp?.['9001'] !== undefined && tcp?.['9000'] === undefined,
    );
    await h.settle();
    expect(await h.reconcileAgain('proxyGroups', `${ns()}/ing`)).toEqual([]);
  });

  test('deleting a member removes its config; the port it held goes to the next member, whose conflict clears', async () => {
    const keys = h.fake.requests.count(KEYS);
    await h.request(endpointsPath('alpha'), { method: 'DELETE' });
    await eventually(
      () => getEndpoints('alpha'),
      (e) => e === undefined,
    );
    await eventually(
      async () => (await groupConfig('ing', 'serve-config')).TCP,
      (tcp) => tcp?.['443']?.['TCPForward'] === 'web.example.com:443' && tcp?.['8080'] === undefined,
    );
    const gamma = await eventually(
      () => getEndpoints('gamma'),
      (e) => ready(e)?.status === 'True',
    );
    expect(ready(gamma)?.reason).toBe('ProxiesReady');
    expect((await getGroup('ing'))!.status?.tailscaleEndpoints).toEqual([
      { name: 'beta', routes: 1 },
      { name: 'gamma', routes: 2 },
    ]);
    expect(h.fake.requests.count(KEYS)).toBe(keys);
  });

  test('a member of another type is not served and says why', async () => {
    await h.createEndpoints('wrongway', {
      tailnet: 'corp',
      endpoints: [{ name: 'a', tailscaleIP: '100.64.0.8', port: 80 }],
      proxy: { connectionType: 'egress', proxyGroup: 'ing' },
    });
    const e = await eventually(
      () => getEndpoints('wrongway'),
      (x) => ready(x)?.reason === 'ProxyGroupTypeMismatch',
    );
    expect(ready(e)?.message).toContain('TailscaleProxyGroup ing is of type ingress');
    await h.settle();
    expect((await getGroup('ing'))!.status?.tailscaleEndpoints?.map((m) => m.name)).toEqual([
      'beta',
      'gamma',
    ]);
    expect(await h.get(servicePath('wrongway-a-egress'))).toBeUndefined();
  });
});

describe('an egress group', () => {
  test('egress Services named by egressServiceName, with EndpointSlices on the group Pods; one config for all members', async () => {
    const keysBefore = h.fake.requests.count(KEYS);
    await h.createProxyGroup('egr', { type: 'egress', tailnet: 'corp', replicas: 2, hostnamePrefix: 'egr' });
    const db = {
      tailnet: 'corp',
      endpoints: [
        { name: 'pg', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP' },
        { name: 'cache', tailscaleFQDN: 'redis.tail1234.ts.net', port: 6379, protocol: 'TCP' },
      ],
      proxy: { connectionType: 'egress', proxyGroup: 'egr' },
    };
    const web = {
      tailnet: 'corp',
      endpoints: [{ name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000 }],
      proxy: { connectionType: 'egress', proxyGroup: 'egr' },
    };
    await h.createEndpoints('db', db);
    await h.createEndpoints('web', web);
    await groupComesUp('egr', 'egr', 20, '10.5.0');
    const config = await eventually(
      () => groupConfig('egr', 'egress-services'),
      (c) => Object.keys(c).length === 3,
    );
    expect(Object.keys(config)).toEqual(['db-cache-egress', 'db-pg-egress', 'web-grafana-egress']);
    const matchPorts = new Set<number>();
    for (const [name, spec] of [
      ['db', db],
      ['web', web],
    ] as const) {
      const e = parseResource({
        apiVersion: API_VERSION,
        kind: 'TailscaleEndpoints',
        metadata: { name, namespace: ns() },
        spec,
      }) as TailscaleEndpoints;
      for (const endpoint of e.spec.endpoints) {
        const target = egressTarget(e, endpoint);
        if (target.via !== 'egress-proxy') throw new Error('expected the egress proxy');
        const svc = await eventually(
          () => h.get<V1Service>(servicePath(target.serviceName)),
          (s) => s !== undefined,
        );
        expect(svc!.spec?.ports?.[0]?.port).toBe(target.port);
        const matchPort = Number(svc!.spec?.ports?.[0]?.targetPort);
        matchPorts.add(matchPort);
        const rule = config[target.serviceName] as unknown as {
          ports: { matchPort: number; targetPort: number }[];
        };
        expect(rule.ports[0]).toMatchObject({ matchPort, targetPort: endpoint.port });
        const slice = await eventually(
          () => h.get<V1EndpointSlice>(slicePath(target.serviceName)),
          (s) => (s?.endpoints?.length ?? 0) === 2,
        );
        expect(slice!.ports?.[0]?.port).toBe(matchPort);
        expect(
          (slice!.endpoints ?? []).map((ep) => [ep.addresses[0], ep.targetRef?.name, ep.conditions?.ready]),
        ).toEqual([
          ['10.5.0.1', stateSecretName(groupBase('egr'), 0), true],
          ['10.5.0.2', stateSecretName(groupBase('egr'), 1), true],
        ]);
      }
    }
    expect(matchPorts.size).toBe(3);
    const dbStatus = await eventually(
      () => getEndpoints('db'),
      (e) => ready(e)?.status === 'True',
    );
    expect(dbStatus!.status?.proxyGroup).toEqual({ name: 'egr', ready: true, replicas: 2, readyReplicas: 2 });
    await h.settle();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(2);
    expect(await h.reconcileAgain('proxyGroups', `${ns()}/egr`)).toEqual([]);
    expect(await h.reconcileAgain('endpoints', `${ns()}/db`)).toEqual([]);
  });

  test('a member leaving the group takes its egress Services and EndpointSlices with it', async () => {
    await h.request(endpointsPath('web'), { method: 'DELETE' });
    await eventually(
      () => h.get(servicePath('web-grafana-egress')),
      (s) => s === undefined,
    );
    await eventually(
      () => h.get(slicePath('web-grafana-egress')),
      (s) => s === undefined,
    );
    expect(Object.keys(await groupConfig('egr', 'egress-services'))).toEqual([
      'db-cache-egress',
      'db-pg-egress',
    ]);
    expect(await h.get(servicePath('db-pg-egress'))).toBeDefined();
  });

  test('deleting a group still referenced: a condition on the member, full teardown, no orphans', async () => {
    const deletesBefore = h.fake.requests.count(DEVICE_DELETE);
    await h.request(groupPath('egr'), { method: 'DELETE' });
    await h.playGarbageCollector(groupBase('egr'));
    await eventually(
      () => getGroup('egr'),
      (g) => g === undefined,
    );
    expect(h.fake.requests.count(DEVICE_DELETE) - deletesBefore).toBe(2);
    expect(h.fake.state.findDevice('nEGR20CNTRL')).toBeUndefined();
    expect(h.fake.state.findDevice('nEGR21CNTRL')).toBeUndefined();
    for (const name of ['db-pg-egress', 'db-cache-egress']) {
      expect(await h.get(servicePath(name))).toBeUndefined();
      expect(await h.get(slicePath(name))).toBeUndefined();
    }
    const left = (await h.request(
      `/api/v1/namespaces/${opNs()}/secrets?labelSelector=${encodeURIComponent(
        `tailscale.com/managed=true,tailscale-gateway.tailscale.com/proxy=${groupBase('egr')}`,
      )}`,
    )) as { items: unknown[] };
    expect(left.items).toEqual([]);
    expect(await h.get(stsPath(groupBase('egr')))).toBeUndefined();
    const db = await eventually(
      () => getEndpoints('db'),
      (e) => ready(e)?.reason === 'ProxyGroupNotFound',
    );
    expect(db!.status?.proxyGroup).toEqual({ name: 'egr', ready: false });
    await h.settle();
    expect(await h.reconcileAgain('endpoints', `${ns()}/db`)).toEqual([]);
  });
});

describe('moving between own proxies and a group', () => {
  test('an object that joins a group loses its own proxies, devices and Secrets; the group takes its config', async () => {
    await h.createEndpoints('mover', {
      tailnet: 'corp',
      endpoints: [{ name: 'app', externalTarget: 'app.example.com:443', port: 7443 }],
      proxy: { connectionType: 'ingress', replicas: 1 },
    });
    const own = proxyBaseName(ns(), 'mover', 'ingress');
    await eventually(
      () => h.get<V1StatefulSet>(stsPath(own)),
      (s) => s !== undefined,
    );
    const uid = await h.createPod(stateSecretName(own, 0), own, '10.6.0.1');
    h.fake.state.seedDevice({ nodeId: 'nMOVERCNTRL', hostname: 'mover' });
    await h.playProxy(stateSecretName(own, 0), {
      ...loggedIn(uid, 30, 'mover.tail1234.ts.net'),
      device_id: 'nMOVERCNTRL',
    });
    await eventually(
      () => getEndpoints('mover'),
      (e) => ready(e)?.status === 'True',
    );
    const keys = h.fake.requests.count(KEYS);
    await patch(endpointsPath('mover'), { spec: { proxy: { replicas: null, proxyGroup: 'ing' } } });
    await h.playGarbageCollector(own);
    await eventually(
      () => h.get(secretPath(stateSecretName(own, 0))),
      (s) => s === undefined,
    );
    expect(h.fake.state.findDevice('nMOVERCNTRL')).toBeUndefined();
    // The config Secret goes right after the state Secret, in the same pass: a read between the two
    // deletes still sees it.
    await eventually(
      () => h.get(secretPath(configSecretName(own, 0))),
      (s) => s === undefined,
    );
    await eventually(
      async () => (await groupConfig('ing', 'serve-config')).TCP,
      (tcp) => tcp?.['7443']?.['TCPForward'] === 'app.example.com:443',
    );
    const mover = await eventually(
      () => getEndpoints('mover'),
      (e) => ready(e)?.status === 'True' && e?.status?.proxyGroup?.name === 'ing',
    );
    expect(mover!.status?.proxies).toBeUndefined();
    await h.settle();
    expect(h.fake.requests.count(KEYS)).toBe(keys);
    expect(await h.reconcileAgain('endpoints', `${ns()}/mover`)).toEqual([]);
    expect(await h.reconcileAgain('proxyGroups', `${ns()}/ing`)).toEqual([]);
  });

  test('an object that leaves a group gets its own proxies again and the group drops it', async () => {
    await patch(endpointsPath('mover'), { spec: { proxy: { proxyGroup: null, replicas: 1 } } });
    const own = proxyBaseName(ns(), 'mover', 'ingress');
    await eventually(
      () => h.get<V1StatefulSet>(stsPath(own)),
      (s) => s !== undefined,
    );
    await eventually(
      async () => (await groupConfig('ing', 'serve-config')).TCP,
      (tcp) => tcp?.['7443'] === undefined,
    );
    const e = await eventually(
      () => getEndpoints('mover'),
      (x) => x?.status?.proxyGroup === undefined && (x?.status?.proxies?.length ?? 0) === 1,
    );
    expect(e!.status?.proxies).toHaveLength(1);
  });
});
