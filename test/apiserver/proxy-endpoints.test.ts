/**
 * TailscaleEndpoints proxies end to end: the controllers in-process with real informers against a real
 * kube-apiserver and the fake Tailscale control plane. There is no kubelet or controller-manager, so
 * the tests create the proxy Pods, play containerboot (state Secret keys) and the garbage collector
 * (finishing foreground deletions) themselves. Waits are bounded polls, never sleeps.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1EndpointSlice, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION } from '../../src/api/index.ts';
import { authKeyInConfig } from '../../src/proxy/config.ts';
import { configSecretName, proxyBaseName, stateSecretName } from '../../src/proxy/names.ts';
import { claimOf } from '../../src/proxy/sync.ts';
import { decoded, eventually, type Harness, loggedIn, startHarness } from '../harness/proxy-controllers.ts';

let h: Harness;
const KEYS = { method: 'POST', endpoint: '/tailnet/{tailnet}/keys' };
const DEVICE_DELETE = { method: 'DELETE', endpoint: '/device/{id}' };

beforeAll(async () => {
  h = await startHarness('proxy-ep', { reissueIntervalMs: 60_000 });
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const ns = () => h.appNamespace;
const opNs = () => h.operatorNamespace;
const secretPath = (name: string) => `/api/v1/namespaces/${opNs()}/secrets/${name}`;
const stsPath = (name: string) => `/apis/apps/v1/namespaces/${opNs()}/statefulsets/${name}`;
const endpointsPath = (name: string) => `/apis/${API_VERSION}/namespaces/${ns()}/tailscaleendpoints/${name}`;
interface Endpoints {
  metadata: { finalizers?: string[]; resourceVersion: string; generation: number };
  status?: {
    conditions?: { type: string; status: string; reason: string; message: string }[];
    proxies?: {
      statefulSetName: string;
      readyReplicas?: number;
      devices?: {
        hostname: string;
        nodeId?: string;
        tailscaleIPs?: string[];
        podName?: string;
        fqdn?: string;
      }[];
    }[];
  };
}
const getEndpoints = (name: string) => h.get<Endpoints>(endpointsPath(name));
const condition = (e: Endpoints | undefined, type: string) =>
  e?.status?.conditions?.find((c) => c.type === type);
const configKey = async (name: string) => authKeyInConfig(decoded(await h.get<V1Secret>(secretPath(name))));

describe('TailscaleEndpoints proxies', () => {
  test('bidirectional: ingress and egress StatefulSets, Secrets, RBAC, egress Services; one key per replica; a second reconcile writes nothing', async () => {
    const keysBefore = h.fake.requests.count(KEYS);
    await h.createEndpoints('web', {
      tailnet: 'corp',
      endpoints: [
        { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000 },
        { name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP' },
        { name: 'site', externalTarget: 'site.example.com:443', port: 443, protocol: 'HTTPS' },
      ],
      proxy: { replicas: 2 },
    });
    const ingress = proxyBaseName(ns(), 'web', 'ingress');
    const egress = proxyBaseName(ns(), 'web', 'egress');
    for (const base of [ingress, egress]) {
      const sts = await eventually(
        () => h.get<V1StatefulSet>(stsPath(base)),
        (s) => s !== undefined,
      );
      expect(sts!.spec?.replicas).toBe(2);
      expect(sts!.spec?.template.spec?.containers[0]?.name).toBe('tailscale');
      for (const i of [0, 1]) {
        await eventually(
          () => h.get<V1Secret>(secretPath(configSecretName(base, i))),
          (s) => s !== undefined,
        );
        expect(await configKey(configSecretName(base, i))).toMatch(/^tskey-auth-/);
      }
    }
    // site is known only by its externalTarget: outside the tailnet, reached directly, no egress Service.
    for (const name of ['web-grafana-egress', 'web-db-egress']) {
      const svc = await eventually(
        () => h.get<V1Service>(`/api/v1/namespaces/${ns()}/services/${name}`),
        (s) => s !== undefined,
      );
      expect(svc!.spec?.ports?.[0]?.port).toBeGreaterThan(0);
    }
    await h.settle();
    expect(await h.get<V1Service>(`/api/v1/namespaces/${ns()}/services/web-site-egress`)).toBeUndefined();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(4);
    const e = await getEndpoints('web');
    expect(e?.metadata.finalizers).toContain('tailscale-gateway.tailscale.com/proxies');
    expect(condition(e, 'ProxiesReady')?.reason).toBe('ProxiesStarting');
    expect(condition(e, 'Ready')?.status).toBe('False');

    const again = await h.reconcileAgain('endpoints', `${ns()}/web`);
    expect(again).toEqual([]);
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(4);
  });

  test('play the proxy: status follows the state Secrets; a stale pod_uid is ignored; the key is dropped once the device exists', async () => {
    const ingress = proxyBaseName(ns(), 'web', 'ingress');
    const egress = proxyBaseName(ns(), 'web', 'egress');
    let n = 0;
    const uids: Record<string, string> = {};
    for (const base of [ingress, egress]) {
      for (const i of [0, 1]) {
        n++;
        const pod = stateSecretName(base, i);
        uids[pod] = await h.createPod(pod, base, `10.1.0.${n}`);
        await h.playProxy(pod, loggedIn(uids[pod]!, n, `${pod}.tail1234.ts.net`));
      }
    }
    const ready = await eventually(
      () => getEndpoints('web'),
      (e) => condition(e, 'Ready')?.status === 'True',
    );
    expect(condition(ready, 'ProxiesReady')?.message).toContain('4/4 proxies ready');
    const ingressStatus = ready!.status!.proxies!.find((p) => p.statefulSetName === ingress)!;
    expect(ingressStatus.readyReplicas).toBe(2);
    expect(ingressStatus.devices?.[0]).toEqual({
      hostname: `${ns()}-web-ingress-0`,
      fqdn: `${ingress}-0.tail1234.ts.net`,
      nodeId: 'nPROXY1CNTRL',
      tailscaleIPs: ['100.64.1.1', 'fd7a:115c:a1e0::1:1'],
      podName: `${ingress}-0`,
    });
    // The auth key goes once the device exists.
    for (const base of [ingress, egress])
      await eventually(
        () => configKey(configSecretName(base, 0)),
        (key) => key === undefined,
      );
    // Egress Services get the proxy Pods as endpoints.
    const slice = await eventually(
      () =>
        h.get<V1EndpointSlice>(`/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices/web-db-egress`),
      (s) => (s?.endpoints?.length ?? 0) === 2,
    );
    expect(slice!.endpoints!.map((e) => e.addresses[0]!).sort()).toEqual(['10.1.0.3', '10.1.0.4']);

    // A restarted Pod: new UID, the Secret still holds the old Pod's data → not ready until it writes.
    const pod0 = stateSecretName(ingress, 0);
    await h.deletePod(pod0);
    const newUid = await h.createPod(pod0, ingress, '10.1.0.9');
    const stale = await eventually(
      () => getEndpoints('web'),
      (e) => condition(e, 'Ready')?.status === 'False',
    );
    expect(condition(stale, 'ProxiesReady')?.message).toContain(`${pod0} (stale)`);
    expect(stale!.status!.proxies!.find((p) => p.statefulSetName === ingress)!.readyReplicas).toBe(1);
    await h.playProxy(pod0, { pod_uid: newUid });
    await eventually(
      () => getEndpoints('web'),
      (e) => condition(e, 'Ready')?.status === 'True',
    );
    await h.settle();
    expect(await h.reconcileAgain('endpoints', `${ns()}/web`)).toEqual([]);
  });

  test('a config Secret deleted by hand is recreated without a new key or device', async () => {
    const ingress = proxyBaseName(ns(), 'web', 'ingress');
    const keysBefore = h.fake.requests.count(KEYS);
    await h.request(secretPath(configSecretName(ingress, 1)), { method: 'DELETE' });
    const back = await eventually(
      () => h.get<V1Secret>(secretPath(configSecretName(ingress, 1))),
      (s) => s !== undefined,
    );
    expect(authKeyInConfig(decoded(back))).toBeUndefined();
    // The state Secret too: the status still knows the device.
    await h.request(secretPath(stateSecretName(ingress, 1)), { method: 'DELETE' });
    await eventually(
      () => h.get<V1Secret>(secretPath(stateSecretName(ingress, 1))),
      (s) => s !== undefined,
    );
    await h.settle();
    expect(h.fake.requests.count(KEYS)).toBe(keysBefore);
  });

  test("kube-controller-manager's EndpointSlices of a proxy Service (its labels copied) are left alone", async () => {
    // The EndpointSlice controller copies a selector Service's labels, tailscale.com/managed and the
    // parent's included, onto the slices it makes; the operator used to take them for unwanted children
    // and delete them, and the controller made them again, twice a second.
    const egress = proxyBaseName(ns(), 'web', 'egress');
    const svc = await eventually(
      () => h.get<V1Service>(`/api/v1/namespaces/${opNs()}/services/${egress}`),
      (s) => s !== undefined,
    );
    const slicePath = `/apis/discovery.k8s.io/v1/namespaces/${opNs()}/endpointslices`;
    await h.request(slicePath, {
      method: 'POST',
      body: {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${egress}-kcm01`,
          labels: {
            ...svc!.metadata?.labels,
            'kubernetes.io/service-name': egress,
            'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
          },
        },
        addressType: 'IPv4',
        endpoints: [],
      },
    });
    await h.settle();
    expect(await h.get<V1EndpointSlice>(`${slicePath}/${egress}-kcm01`)).toBeDefined();
    await h.request(`${slicePath}/${egress}-kcm01`, { method: 'DELETE' });
  });

  test('spec edits roll out: image, replicas, ports', async () => {
    const egress = proxyBaseName(ns(), 'web', 'egress');
    const current = (await getEndpoints('web')) as unknown as { spec: Record<string, unknown> };
    const spec = current.spec as {
      endpoints: { name: string; port: number }[];
      proxy: Record<string, unknown>;
    };
    spec.endpoints = spec.endpoints.map((e) => (e.name === 'db' ? { ...e, port: 6432 } : e));
    spec.proxy = { ...spec.proxy, image: 'registry.example/tailscale:v9', replicas: 3 };
    await h.request(endpointsPath('web'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec },
    });
    const sts = await eventually(
      () => h.get<V1StatefulSet>(stsPath(egress)),
      (s) => s?.spec?.replicas === 3,
    );
    expect(sts!.spec?.template.spec?.containers[0]?.image).toBe('registry.example/tailscale:v9');
    const svc = await eventually(
      () => h.get<V1Service>(`/api/v1/namespaces/${ns()}/services/web-db-egress`),
      (s) => s?.spec?.ports?.[0]?.port === 6432,
    );
    expect(svc!.spec?.ports?.length).toBe(1);
    const config = await eventually(
      () => h.get<V1Secret>(secretPath(configSecretName(egress, 2))),
      (s) => s !== undefined,
    );
    expect(JSON.parse(decoded(config)['egress-services']!)['web-db-egress'].ports[0].targetPort).toBe(6432);
  });

  test('scale down deletes the removed replicas’ devices (once their Pods are gone), then their Secrets', async () => {
    const egress = proxyBaseName(ns(), 'web', 'egress');
    // Replica 2 joined: give it a real device in the fake tailnet.
    const uid = await h.createPod(stateSecretName(egress, 2), egress, '10.1.0.20');
    h.fake.state.seedDevice({ nodeId: 'nPROXY99CNTRL', hostname: 'egress-2' });
    await h.playProxy(stateSecretName(egress, 2), loggedIn(uid, 99, 'egress-2.tail1234.ts.net'));
    await h.settle();
    const deletesBefore = h.fake.requests.count(DEVICE_DELETE);
    await h.request(endpointsPath('web'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { proxy: { replicas: 2 } } },
    });
    await eventually(
      () => h.get<V1StatefulSet>(stsPath(egress)),
      (s) => s?.spec?.replicas === 2,
    );
    await h.settle();
    // The Pod still runs: nothing is deleted yet.
    expect(await h.get(secretPath(stateSecretName(egress, 2)))).toBeDefined();
    expect(h.fake.requests.count(DEVICE_DELETE)).toBe(deletesBefore);
    await h.deletePod(stateSecretName(egress, 2));
    await eventually(
      () => h.get(secretPath(configSecretName(egress, 2))),
      (s) => s === undefined,
    );
    expect(await h.get(secretPath(stateSecretName(egress, 2)))).toBeUndefined();
    expect(h.fake.requests.count(DEVICE_DELETE) - deletesBefore).toBe(1);
    expect(h.fake.state.findDevice('nPROXY99CNTRL')).toBeUndefined();
    expect(h.fake.state.findDevice('nPROXY1CNTRL')).toBeUndefined(); // never seeded; untouched either way
  });

  test('delete: StatefulSets (foreground) → devices once each → Secrets, Services, RBAC → finalizer; objects that only carry its labels are left alone', async () => {
    const deletesBefore = h.fake.requests.count(DEVICE_DELETE);
    const ingress = proxyBaseName(ns(), 'web', 'ingress');
    const egress = proxyBaseName(ns(), 'web', 'egress');
    // One object of every child kind the operator caches, carrying the proxy's labels (parent labels,
    // tailscale.com/managed, the proxy's) as a controller that copies labels would make it, but not
    // written by the operator: prune must leave each alone and teardown must not wait for it.
    const svc = await h.get<V1Service>(`/api/v1/namespaces/${opNs()}/services/${egress}`);
    const labels = svc!.metadata!.labels!;
    const copies: [string, object][] = [
      [`/api/v1/namespaces/${opNs()}/secrets`, { apiVersion: 'v1', kind: 'Secret' }],
      [`/api/v1/namespaces/${opNs()}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount' }],
      [
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/roles`,
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', rules: [] },
      ],
      [
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/rolebindings`,
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'copy-web' },
          subjects: [],
        },
      ],
      [
        `/api/v1/namespaces/${opNs()}/services`,
        { apiVersion: 'v1', kind: 'Service', spec: { ports: [{ port: 80 }] } },
      ],
      [
        `/api/v1/namespaces/${ns()}/services`,
        { apiVersion: 'v1', kind: 'Service', spec: { ports: [{ port: 80 }] } },
      ],
      [
        `/apis/policy/v1/namespaces/${opNs()}/poddisruptionbudgets`,
        {
          apiVersion: 'policy/v1',
          kind: 'PodDisruptionBudget',
          spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'copy-web' } } },
        },
      ],
      [
        `/apis/apps/v1/namespaces/${opNs()}/statefulsets`,
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          spec: {
            selector: { matchLabels: { app: 'copy-web' } },
            serviceName: 'copy-web',
            template: {
              metadata: { labels: { app: 'copy-web' } },
              spec: { containers: [{ name: 'main', image: 'example/app' }] },
            },
          },
        },
      ],
      [
        `/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices`,
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          addressType: 'IPv4',
          endpoints: [],
          extraLabels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
        },
      ],
    ];
    for (const [path, body] of copies) {
      const { extraLabels, ...rest } = body as { extraLabels?: Record<string, string> };
      await h.request(path, {
        method: 'POST',
        body: { ...rest, metadata: { name: 'copy-web', labels: { ...labels, ...extraLabels } } },
      });
    }
    await h.request(endpointsPath('web'), { method: 'DELETE' });
    // Devices are not touched while the StatefulSets exist.
    await h.settle();
    expect(h.fake.requests.count(DEVICE_DELETE)).toBe(deletesBefore);
    expect(await h.get(secretPath(stateSecretName(ingress, 0)))).toBeDefined();
    await h.playGarbageCollector(ingress);
    await h.playGarbageCollector(egress);
    await eventually(
      () => getEndpoints('web'),
      (e) => e === undefined,
    );
    // 4 replicas with a device (ingress 0/1, egress 0/1); each device deleted exactly once.
    expect(h.fake.requests.count(DEVICE_DELETE) - deletesBefore).toBe(4);
    // Every copy is still there; nothing else with the label is.
    for (const [path] of copies) expect(await h.get(`${path}/copy-web`)).toBeDefined();
    const left = async (path: string) =>
      (
        (await h.request(`${path}?labelSelector=tailscale.com%2Fmanaged%3Dtrue`)) as {
          items: { metadata: { name: string } }[];
        }
      ).items.filter((item) => item.metadata.name !== 'copy-web').length;
    expect(await left(`/api/v1/namespaces/${opNs()}/secrets`)).toBe(0);
    expect(await left(`/api/v1/namespaces/${opNs()}/services`)).toBe(0);
    expect(await left(`/api/v1/namespaces/${ns()}/services`)).toBe(0);
    expect(await left(`/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices`)).toBe(0);
    expect(await left(`/api/v1/namespaces/${opNs()}/serviceaccounts`)).toBe(0);
    expect(await left(`/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/roles`)).toBe(0);
    expect(await left(`/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/rolebindings`)).toBe(0);
    expect(await left(`/apis/apps/v1/namespaces/${opNs()}/statefulsets`)).toBe(0);
    expect(await left(`/apis/policy/v1/namespaces/${opNs()}/poddisruptionbudgets`)).toBe(0);
    for (const [path] of copies) await h.request(`${path}/copy-web`, { method: 'DELETE' });
  });
});

describe('egress Service name conflicts', () => {
  const servicePath = (name: string) => `/api/v1/namespaces/${ns()}/services/${name}`;
  const slicePath = (name: string) => `/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices/${name}`;
  const PARENT_NAME = 'tailscale-gateway.tailscale.com/parent-name';
  const SERVICE = 'a-b-c-egress';
  const egressOnly = (endpoint: string, ip: string) => ({
    tailnet: 'corp',
    endpoints: [{ name: endpoint, tailscaleIP: ip, port: 8080 }],
    proxy: { connectionType: 'egress', replicas: 1 },
  });
  const removeEndpoints = async (name: string) => {
    await h.request(endpointsPath(name), { method: 'DELETE' });
    await h.playGarbageCollector(proxyBaseName(ns(), name, 'egress'));
    await eventually(
      () => getEndpoints(name),
      (e) => e === undefined,
    );
  };

  test('claimOf: absent or own objects are ours; of another owner, the older (then the lower key) keeps it', () => {
    const TSE = 'tailscaleendpoints.gateway.tailscale.com';
    const PG = 'tailscaleproxygroup.gateway.tailscale.com';
    const labelled = (type: string, name: string) => ({
      metadata: {
        name: 'a-b-c-egress',
        namespace: 'app',
        labels: {
          'tailscale-gateway.tailscale.com/parent-resource-type': type,
          'tailscale-gateway.tailscale.com/parent-name': name,
          'tailscale-gateway.tailscale.com/parent-namespace': 'app',
        },
      },
    });
    const created: Record<string, number> = {
      [`${TSE}/app/a-b`]: 1000,
      [`${TSE}/app/a`]: 2000,
      [`${PG}/app/g`]: 1000,
    };
    const as = (parentKey: string, parentType = TSE) => ({
      parentType,
      parentKey,
      createdOf: (type: string, key: string) => created[`${type}/${key}`],
    });
    expect(claimOf(as('app/a'), undefined)).toEqual({});
    expect(claimOf(as('app/a'), labelled(TSE, 'a'))).toEqual({});
    expect(claimOf(as('app/a'), labelled(TSE, 'a-b'))).toEqual({ holder: 'TailscaleEndpoints app/a-b' });
    // The older takes it from a newer holder (which then reports the conflict).
    expect(claimOf(as('app/a-b'), labelled(TSE, 'a'))).toEqual({});
    // A tie goes by type and key; an owner not cached keeps what it has.
    expect(claimOf(as('app/a-b'), labelled(PG, 'g'))).toEqual({});
    expect(claimOf(as('app/g', PG), labelled(TSE, 'a-b'))).toEqual({ holder: 'TailscaleEndpoints app/a-b' });
    expect(claimOf(as('app/a-b'), labelled(TSE, 'gone'))).toEqual({ holder: 'TailscaleEndpoints app/gone' });
  });

  test('a-b/c and a/b-c: the older keeps a-b-c-egress, the newer reports EgressServiceConflict without flapping, and takes it once the older is gone', async () => {
    await h.createEndpoints('a-b', egressOnly('c', '100.64.0.21'));
    const first = await eventually(
      () => h.get<V1Service>(servicePath(SERVICE)),
      (s) => s !== undefined,
    );
    expect(first!.metadata?.labels?.[PARENT_NAME]).toBe('a-b');
    // creationTimestamp has second resolution: make `a` strictly newer (on a tie `a` would win by name).
    const olderCreated = Date.parse(
      String((await h.get<V1Service>(endpointsPath('a-b')))!.metadata!.creationTimestamp),
    );
    await eventually(
      () => Date.now(),
      (now) => now >= olderCreated + 1100,
      5_000,
    );
    await h.createEndpoints('a', egressOnly('b-c', '100.64.0.22'));
    const loser = await eventually(
      () => getEndpoints('a'),
      (e) => condition(e, 'Ready')?.reason === 'EgressServiceConflict',
    );
    const ready = condition(loser, 'Ready')!;
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(`TailscaleEndpoints ${ns()}/a-b`);
    expect(ready.message).toContain('extension hooks');
    expect(condition(await getEndpoints('a-b'), 'Ready')?.reason).not.toBe('EgressServiceConflict');

    await h.settle();
    const service = (await h.get<V1Service>(servicePath(SERVICE)))!;
    const slice = (await h.get<V1EndpointSlice>(slicePath(SERVICE)))!;
    expect(service.metadata?.labels?.[PARENT_NAME]).toBe('a-b');
    expect(slice.metadata?.labels?.[PARENT_NAME]).toBe('a-b');
    // No flapping: two more reconciles of both leave the Service and its EndpointSlice as they are.
    for (let round = 0; round < 2; round++) {
      for (const name of ['a-b', 'a']) {
        const writes = await h.reconcileAgain('endpoints', `${ns()}/${name}`);
        expect(writes.filter((w) => w.name === `${ns()}/${SERVICE}`)).toEqual([]);
      }
    }
    await h.settle();
    expect((await h.get<V1Service>(servicePath(SERVICE)))!.metadata?.resourceVersion).toBe(
      service.metadata?.resourceVersion,
    );
    expect((await h.get<V1EndpointSlice>(slicePath(SERVICE)))!.metadata?.resourceVersion).toBe(
      slice.metadata?.resourceVersion,
    );

    // The holder goes: the Service's delete event wakes `a`, which takes the name over.
    await removeEndpoints('a-b');
    const taken = await eventually(
      () => h.get<V1Service>(servicePath(SERVICE)),
      (s) => s?.metadata?.labels?.[PARENT_NAME] === 'a',
    );
    expect(taken!.spec?.ports?.[0]?.name).toBe('b-c');
    await eventually(
      () => h.get<V1EndpointSlice>(slicePath(SERVICE)),
      (s) => s?.metadata?.labels?.[PARENT_NAME] === 'a',
    );
    await eventually(
      () => getEndpoints('a'),
      (e) => condition(e, 'Ready')?.reason !== 'EgressServiceConflict',
    );

    await removeEndpoints('a');
    expect(await h.get(servicePath(SERVICE))).toBeUndefined();
  });
});
