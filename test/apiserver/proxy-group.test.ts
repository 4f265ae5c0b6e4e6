/**
 * TailscaleProxyGroup end to end (real kube-apiserver, fake control plane, controllers in-process), and
 * the failure paths shared with TailscaleEndpoints: the Tailscale API down while creating, a tailnet
 * that is not Ready, and the proxy's auth-key re-issue request.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1PodDisruptionBudget, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION } from '../../src/api/index.ts';
import { authKeyInConfig } from '../../src/proxy/config.ts';
import { configSecretName, proxyBaseName, stateSecretName } from '../../src/proxy/names.ts';
import { createTailscaleClient } from '../../src/tailscale/index.ts';
import {
  decoded,
  eventually,
  type Harness,
  loggedIn,
  putTailnet,
  startHarness,
} from '../harness/proxy-controllers.ts';

let h: Harness;
const KEYS = { method: 'POST', endpoint: '/tailnet/{tailnet}/keys' };
const DEVICE_DELETE = { method: 'DELETE', endpoint: '/device/{id}' };

beforeAll(async () => {
  h = await startHarness('proxy-pg', { reissueIntervalMs: 60_000 });
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const opNs = () => h.operatorNamespace;
const secretPath = (name: string) => `/api/v1/namespaces/${opNs()}/secrets/${name}`;
const stsPath = (name: string) => `/apis/apps/v1/namespaces/${opNs()}/statefulsets/${name}`;
interface Status {
  metadata: { finalizers?: string[] };
  status?: {
    readyReplicas?: number;
    devices?: { hostname: string; nodeId?: string }[];
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}
const groupPath = (name: string) =>
  `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleproxygroups/${name}`;
const endpointsPath = (name: string) =>
  `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleendpoints/${name}`;
const condition = (s: Status | undefined, type: string) =>
  s?.status?.conditions?.find((c) => c.type === type);

describe('TailscaleProxyGroup', () => {
  const base = () => proxyBaseName(h.appNamespace, 'shared', 'pg');

  test('replicas with <prefix>-<i> hostnames, anti-affinity and a PodDisruptionBudget; one key each; steady state writes nothing', async () => {
    const keysBefore = h.fake.requests.count(KEYS);
    await h.createProxyGroup('shared', {
      type: 'ingress',
      tailnet: 'corp',
      replicas: 3,
      hostnamePrefix: 'gw',
    });
    const sts = await eventually(
      () => h.get<V1StatefulSet>(stsPath(base())),
      (s) => s !== undefined,
    );
    expect(sts!.spec?.replicas).toBe(3);
    expect(sts!.spec?.template.spec?.affinity?.podAntiAffinity).toBeDefined();
    const pdb = await eventually(
      () =>
        h.get<V1PodDisruptionBudget>(`/apis/policy/v1/namespaces/${opNs()}/poddisruptionbudgets/${base()}`),
      (p) => p !== undefined,
    );
    expect(pdb!.spec?.maxUnavailable).toBe(1);
    for (const i of [0, 1, 2]) {
      const config = await eventually(
        () => h.get<V1Secret>(secretPath(configSecretName(base(), i))),
        (s) => s !== undefined,
      );
      expect(JSON.parse(decoded(config)['cap-107.hujson']!).Hostname).toBe(`gw-${i}`);
    }
    await h.settle();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(3);
    expect(await h.reconcileAgain('proxyGroups', `${h.appNamespace}/shared`)).toEqual([]);
  });

  test('devices in status once the proxies report; scale down deletes the last replica’s device then its Secrets', async () => {
    const uids: string[] = [];
    for (const i of [0, 1, 2]) {
      const pod = stateSecretName(base(), i);
      uids.push(await h.createPod(pod, base(), `10.2.0.${i + 1}`));
      h.fake.state.seedDevice({ nodeId: `nPG${i}CNTRL`, hostname: `gw-${i}` });
      await h.playProxy(pod, {
        ...loggedIn(uids[i]!, i, `gw-${i}.tail1234.ts.net`),
        device_id: `nPG${i}CNTRL`,
      });
    }
    const ready = await eventually(
      () => h.get<Status>(groupPath('shared')),
      (g) => condition(g, 'Ready')?.status === 'True',
    );
    expect(ready!.status?.readyReplicas).toBe(3);
    expect(ready!.status?.devices?.map((d) => [d.hostname, d.nodeId])).toEqual([
      ['gw-0', 'nPG0CNTRL'],
      ['gw-1', 'nPG1CNTRL'],
      ['gw-2', 'nPG2CNTRL'],
    ]);
    const deletesBefore = h.fake.requests.count(DEVICE_DELETE);
    await h.request(groupPath('shared'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { replicas: 2 } },
    });
    await eventually(
      () => h.get<V1StatefulSet>(stsPath(base())),
      (s) => s?.spec?.replicas === 2,
    );
    await h.deletePod(stateSecretName(base(), 2)); // the StatefulSet controller's part
    await eventually(
      () => h.get(secretPath(configSecretName(base(), 2))),
      (s) => s === undefined,
    );
    expect(await h.get(secretPath(stateSecretName(base(), 2)))).toBeUndefined();
    expect(h.fake.requests.count(DEVICE_DELETE) - deletesBefore).toBe(1);
    expect(h.fake.state.findDevice('nPG2CNTRL')).toBeUndefined();
    expect(h.fake.state.findDevice('nPG1CNTRL')).toBeDefined();
    const after = await eventually(
      () => h.get<Status>(groupPath('shared')),
      (g) => g?.status?.devices?.length === 2,
    );
    expect(after!.status?.readyReplicas).toBe(2);
  });

  test('delete removes everything and deletes each device once', async () => {
    const deletesBefore = h.fake.requests.count(DEVICE_DELETE);
    await h.request(groupPath('shared'), { method: 'DELETE' });
    await h.playGarbageCollector(base());
    await eventually(
      () => h.get(groupPath('shared')),
      (g) => g === undefined,
    );
    expect(h.fake.requests.count(DEVICE_DELETE) - deletesBefore).toBe(2);
    expect(h.fake.state.findDevice('nPG0CNTRL')).toBeUndefined();
    const secrets = (await h.request(
      `/api/v1/namespaces/${opNs()}/secrets?labelSelector=tailscale.com%2Fmanaged%3Dtrue`,
    )) as {
      items: unknown[];
    };
    expect(secrets.items).toEqual([]);
    expect(
      await h.get(`/apis/policy/v1/namespaces/${opNs()}/poddisruptionbudgets/${base()}`),
    ).toBeUndefined();
  });
});

describe('pod scheduling', () => {
  const scheduling = {
    nodeSelector: { 'kubernetes.io/os': 'linux', pool: 'edge' },
    tolerations: [
      { key: 'edge', operator: 'Exists', effect: 'NoSchedule' },
      {
        key: 'node.kubernetes.io/unreachable',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 30,
      },
    ],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['edge'] }] }],
        },
      },
    },
    priorityClassName: 'system-cluster-critical',
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule' },
    ],
  };

  test('the StatefulSet the API server stores carries nodeSelector, tolerations, affinity, priorityClassName and topologySpreadConstraints', async () => {
    await h.createProxyGroup('edge', { type: 'egress', tailnet: 'corp', replicas: 2, ...scheduling });
    const base = proxyBaseName(h.appNamespace, 'edge', 'pg');
    const sts = await eventually(
      () => h.get<V1StatefulSet>(stsPath(base)),
      (s) => s !== undefined,
    );
    const pod = sts!.spec!.template.spec!;
    expect(pod.nodeSelector).toEqual(scheduling.nodeSelector);
    expect(pod.tolerations).toEqual(scheduling.tolerations as never);
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(pod.affinity?.nodeAffinity).toEqual(scheduling.affinity.nodeAffinity as never);
    expect(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    expect(pod.topologySpreadConstraints).toEqual([
      {
        ...scheduling.topologySpreadConstraints[0]!,
        labelSelector: { matchLabels: { 'tailscale-gateway.tailscale.com/proxy': base } },
      },
    ] as never);
    // An edit reaches the StatefulSet; a second reconcile writes nothing.
    await h.request(groupPath('edge'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { nodeSelector: { pool: 'core' }, priorityClassName: null } },
    });
    const edited = await eventually(
      () => h.get<V1StatefulSet>(stsPath(base)),
      (s) => s?.spec?.template.spec?.nodeSelector?.['pool'] === 'core',
    );
    expect(edited!.spec!.template.spec!.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', pool: 'core' });
    expect(edited!.spec!.template.spec!.priorityClassName).toBeUndefined();
    expect(await h.reconcileAgain('proxyGroups', `${h.appNamespace}/edge`)).toEqual([]);
  });

  test('a bad toleration is refused by the API server naming the field', async () => {
    const response = await h.cp.request(
      `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleproxygroups`,
      {
        method: 'POST',
        body: {
          apiVersion: API_VERSION,
          kind: 'TailscaleProxyGroup',
          metadata: { name: 'bad-toleration' },
          spec: {
            type: 'egress',
            tailnet: 'corp',
            tolerations: [{ key: 'edge', operator: 'Exists', value: 'yes', effect: 'NoSchedule' }],
          },
        },
      },
    );
    expect(response.status).toBe(422);
    const status = (await response.json()) as { message: string };
    expect(status.message).toContain('spec.tolerations[0].value');
    expect(status.message).toContain('value must be empty when operator is Exists');
  });

  test('an affinity the API server refuses for the StatefulSet: ApplyRejected naming the field, and the process keeps going', async () => {
    await h.createProxyGroup('bad-affinity', {
      type: 'egress',
      tailnet: 'corp',
      replicas: 1,
      affinity: {
        nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
      },
    });
    const status = await eventually(
      () => h.get<Status>(groupPath('bad-affinity')),
      (g) => condition(g, 'ProxiesReady')?.reason === 'ApplyRejected',
    );
    const message = condition(status, 'ProxiesReady')!.message;
    expect(message).toContain('StatefulSet');
    expect(message).toContain('nodeSelectorTerms');
    expect(condition(status, 'Ready')?.status).toBe('False');
    // Fixed: the StatefulSet is applied and the condition moves on.
    await h.request(groupPath('bad-affinity'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { affinity: null } },
    });
    await eventually(
      () => h.get<Status>(groupPath('bad-affinity')),
      (g) => condition(g, 'ProxiesReady')?.reason === 'ProxiesStarting',
    );
    expect(await h.get(stsPath(proxyBaseName(h.appNamespace, 'bad-affinity', 'pg')))).toBeDefined();
  });
});

describe('failure paths', () => {
  test('Tailscale API down while creating: a condition, bounded retries, then exactly one key per replica', async () => {
    const keysBefore = h.fake.requests.count(KEYS);
    h.fake.knobs.serverError(12, 503, KEYS);
    await h.createEndpoints('flaky', {
      tailnet: 'corp',
      endpoints: [{ name: 'a', tailscaleIP: '100.64.0.5', port: 80 }],
      proxy: { connectionType: 'ingress', replicas: 2 },
    });
    const failing = await eventually(
      () => h.get<Status>(endpointsPath('flaky')),
      (e) => condition(e, 'ProxiesReady')?.reason === 'AuthKeyFailed',
    );
    expect(condition(failing, 'Ready')?.status).toBe('False');
    const ingress = proxyBaseName(h.appNamespace, 'flaky', 'ingress');
    for (const i of [0, 1])
      await eventually(
        () => h.get<V1Secret>(secretPath(configSecretName(ingress, i))),
        (s) => s !== undefined,
        60_000,
      );
    await h.settle();
    const attempts = h.fake.requests.count(KEYS) - keysBefore;
    const created = h.fake.requests.all.filter(
      (r) => r.method === 'POST' && r.endpoint === KEYS.endpoint && r.status === 200,
    );
    expect(created.length).toBeGreaterThanOrEqual(2);
    // 12 failures + 2 successes; the backoff bounds how many attempts there were.
    expect(attempts).toBe(14);
    expect(h.fake.state.keys.size).toBeGreaterThanOrEqual(2);
    const keys = new Set<string>();
    for (const i of [0, 1])
      keys.add(authKeyInConfig(decoded(await h.get<V1Secret>(secretPath(configSecretName(ingress, i)))))!);
    expect(keys.size).toBe(2);
    expect(await h.reconcileAgain('endpoints', `${h.appNamespace}/flaky`)).toEqual([]);
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(14);
  }, 60_000);

  test('a tailnet that is not Ready: condition, no keys; Ready later: keys minted', async () => {
    h.tailnetReady.value = false;
    const keysBefore = h.fake.requests.count(KEYS);
    await h.createEndpoints('waiting', {
      tailnet: 'corp',
      endpoints: [{ name: 'a', tailscaleIP: '100.64.0.5', port: 80 }],
      proxy: { connectionType: 'ingress', replicas: 1 },
    });
    await eventually(
      () => h.get<Status>(endpointsPath('waiting')),
      (e) => condition(e, 'ProxiesReady')?.reason === 'TailnetNotReady',
    );
    expect(h.fake.requests.count(KEYS)).toBe(keysBefore);
    h.tailnetReady.value = true;
    h.controllers.endpoints.enqueue(`${h.appNamespace}/waiting`); // what the tailnet's status event does
    const ingress = proxyBaseName(h.appNamespace, 'waiting', 'ingress');
    await eventually(
      () => h.get<V1Secret>(secretPath(configSecretName(ingress, 0))),
      (s) => s !== undefined,
    );
    await h.settle();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(1);
  });

  test('a TailscaleTailnet that is not Ready but has a client: TailnetNotReady naming it and its reason, before any API call', async () => {
    // What `run` has while the tailnet's OAuth exchange fails: the TailscaleTailnet controller built a
    // client (TailnetClients.current returns it) and set Ready False. Every call of that client fails.
    const tailnet = `lab-${h.appNamespace.slice(-8)}`;
    let calls = 0;
    const unreachable = createTailscaleClient({
      baseUrl: 'http://127.0.0.1:9',
      clientId: 'id',
      clientSecret: 'secret',
      retry: { maxAttempts: 1 },
      fetch: (async (...args: Parameters<typeof fetch>) => {
        calls++;
        return fetch(...args);
      }) as typeof fetch,
    });
    h.clients.set(tailnet, unreachable);
    await putTailnet(h.cp, tailnet, {
      status: 'False',
      reason: 'APIUnreachable',
      message: 'the Tailscale API could not be reached',
    });
    await h.createEndpoints('lab-endpoints', {
      tailnet,
      endpoints: [{ name: 'a', tailscaleIP: '100.64.0.5', port: 80 }],
      proxy: { connectionType: 'ingress', replicas: 1 },
    });
    await h.createProxyGroup('lab-group', { type: 'egress', tailnet, replicas: 1 });
    for (const path of [endpointsPath('lab-endpoints'), groupPath('lab-group')]) {
      const status = await eventually(
        () => h.get<Status>(path),
        (s) => condition(s, 'ProxiesReady') !== undefined,
      );
      const proxiesReady = condition(status, 'ProxiesReady')!;
      expect(proxiesReady.reason).toBe('TailnetNotReady');
      expect(proxiesReady.message).toContain(`TailscaleTailnet ${tailnet} is not Ready`);
      expect(proxiesReady.message).toContain('APIUnreachable');
      expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'TailnetNotReady' });
    }
    await h.settle();
    expect(calls).toBe(0);
  });

  test('reissue_authkey: the stale device is deleted and a new key written, at most once per interval', async () => {
    const ingress = proxyBaseName(h.appNamespace, 'waiting', 'ingress');
    const pod = stateSecretName(ingress, 0);
    const config = configSecretName(ingress, 0);
    const oldKey = authKeyInConfig(decoded(await h.get<V1Secret>(secretPath(config))))!;
    const uid = await h.createPod(pod, ingress, '10.3.0.1');
    h.fake.state.seedDevice({ nodeId: 'nREISSUECNTRL', hostname: 'waiting' });
    const keysBefore = h.fake.requests.count(KEYS);
    await h.playProxy(pod, { pod_uid: uid, device_id: 'nREISSUECNTRL', reissue_authkey: oldKey });
    const next = await eventually(
      async () => authKeyInConfig(decoded(await h.get<V1Secret>(secretPath(config)))),
      (key) => key !== undefined && key !== oldKey,
    );
    expect(h.fake.state.findDevice('nREISSUECNTRL')).toBeUndefined();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(1);
    // The new key fails too: asking again within the interval gets nothing new yet.
    await h.playProxy(pod, { reissue_authkey: next! });
    await h.settle();
    expect(h.fake.requests.count(KEYS) - keysBefore).toBe(1);
    expect(authKeyInConfig(decoded(await h.get<V1Secret>(secretPath(config))))).toBe(next!);
  });
});
