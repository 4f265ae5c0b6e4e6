/**
 * What `kubectl get tailscaleendpoints` shows: the ENDPOINTS and HEALTHY columns read
 * status.totalEndpoints and status.healthyEndpoints, which the TailscaleEndpoints proxy reconciler
 * writes with each endpoint's health (status.endpoints). Read through the Table API of a real
 * kube-apiserver, as kubectl does, with the controllers in-process (test/harness/proxy-controllers.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION } from '../../src/api/index.ts';
import { proxyBaseName, stateSecretName } from '../../src/proxy/names.ts';
import { DISCOVERY_FIELD_MANAGER, OFFLINE_PRIORITY } from '../../src/tailnet-discovery/index.ts';
import { eventually, type Harness, loggedIn, startHarness } from '../harness/proxy-controllers.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('tse-health');
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

interface Health {
  name: string;
  health: string;
  message?: string;
  lastTransitionTime?: string;
}
interface Endpoints {
  status?: { totalEndpoints?: number; healthyEndpoints?: number; endpoints?: Health[] };
}
const endpointsPath = (name: string) =>
  `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleendpoints/${name}`;
const getEndpoints = (name: string) => h.get<Endpoints>(endpointsPath(name));
const healthOf = (e: Endpoints | undefined) =>
  Object.fromEntries((e?.status?.endpoints ?? []).map((x) => [x.name, x.health]));

/** The row of `name` in the Table the API server serves kubectl, by column name. */
async function tableRow(name: string): Promise<Record<string, unknown>> {
  const url = new URL(`${h.cp.server}/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleendpoints`);
  const response = await fetch(url, {
    headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    tls: { ca: h.cp.ca, cert: h.cp.cert, key: h.cp.key },
  });
  if (!response.ok) throw new Error(`Table: ${response.status} ${await response.text()}`);
  const table = (await response.json()) as {
    columnDefinitions: { name: string }[];
    rows: { cells: unknown[] }[];
  };
  const row = table.rows.find((r) => r.cells[0] === name);
  if (!row) throw new Error(`no row ${name}`);
  return Object.fromEntries(table.columnDefinitions.map((c, i) => [c.name, row.cells[i]]));
}

/** Plays every replica of a proxy StatefulSet as logged in. */
async function proxiesUp(base: string, replicas: number, first: number): Promise<void> {
  for (let i = 0; i < replicas; i++) {
    const pod = stateSecretName(base, i);
    const uid = await h.createPod(pod, base, `10.2.0.${first + i}`);
    await h.playProxy(pod, loggedIn(uid, first + i, `${pod}.tail1234.ts.net`));
  }
}

describe('kubectl get tailscaleendpoints: ENDPOINTS and HEALTHY', () => {
  test('egress: endpoints carried by a ready egress proxy are Healthy, one reached directly is Unknown', async () => {
    await h.createEndpoints('web', {
      tailnet: 'corp',
      endpoints: [
        { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000 },
        { name: 'db', tailscaleIP: '100.64.0.9', port: 5432, protocol: 'TCP' },
        { name: 'site', externalTarget: 'site.example.com:443', port: 443, protocol: 'HTTPS' },
      ],
      proxy: { connectionType: 'egress', replicas: 1 },
    });
    // Before the proxy runs: nothing carries the tailnet endpoints yet.
    const starting = await eventually(
      () => getEndpoints('web'),
      (e) => e?.status?.totalEndpoints === 3,
    );
    expect(healthOf(starting)).toEqual({ db: 'Unhealthy', grafana: 'Unhealthy', site: 'Unknown' });
    expect(starting!.status!.endpoints!.find((e) => e.name === 'db')?.message).toContain(
      'has no replica ready',
    );
    expect(await tableRow('web')).toMatchObject({
      Tailnet: 'corp',
      Endpoints: 3,
      Healthy: 0,
      Ready: 'False',
    });

    const egress = proxyBaseName(h.appNamespace, 'web', 'egress');
    await proxiesUp(egress, 1, 1);
    const up = await eventually(
      () => getEndpoints('web'),
      (e) => e?.status?.healthyEndpoints === 2,
    );
    expect(healthOf(up)).toEqual({ db: 'Healthy', grafana: 'Healthy', site: 'Unknown' });
    expect(up!.status!.endpoints!.find((e) => e.name === 'site')?.message).toContain(
      'site.example.com:443 directly',
    );
    expect(await tableRow('web')).toMatchObject({ Endpoints: 3, Healthy: 2, Ready: 'True' });
    // Steady: a second reconcile writes nothing.
    expect(await h.reconcileAgain('endpoints', `${h.appNamespace}/web`)).toEqual([]);
  });

  test('a discovered endpoint whose device is offline is Unhealthy; back online, Healthy again', async () => {
    await h.createEndpoints('found', {
      tailnet: 'corp',
      endpoints: [{ name: 'mine', tailscaleIP: '100.64.0.30', port: 80 }],
      proxy: { connectionType: 'egress', replicas: 1 },
    });
    const egress = proxyBaseName(h.appNamespace, 'found', 'egress');
    await eventually(
      () => h.get(`/apis/apps/v1/namespaces/${h.operatorNamespace}/statefulsets/${egress}`),
      (s) => s !== undefined,
    );
    await proxiesUp(egress, 1, 11);
    // What the discovery controller writes for an offline device: its entry, under its own field
    // manager, at the last priority tier.
    const discovered = (priority: number) =>
      h.kube.applyObject(
        {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name: 'found', namespace: h.appNamespace },
          spec: {
            endpoints: [
              {
                name: 'web-1',
                tailscaleFQDN: 'web-1.tail1234.ts.net',
                tailscaleIP: '100.64.0.31',
                port: 80,
                priority,
              },
            ],
          },
        } as KubernetesObject,
        { fieldManager: DISCOVERY_FIELD_MANAGER, force: true },
      );
    await discovered(OFFLINE_PRIORITY);
    const offline = await eventually(
      () => getEndpoints('found'),
      (e) => e?.status?.totalEndpoints === 2 && e.status.healthyEndpoints === 1,
    );
    expect(healthOf(offline)).toEqual({ mine: 'Healthy', 'web-1': 'Unhealthy' });
    expect(offline!.status!.endpoints!.find((e) => e.name === 'web-1')?.message).toContain('offline');
    expect(await tableRow('found')).toMatchObject({ Endpoints: 2, Healthy: 1 });
    // A hand-written entry at priority 10 is not a discovered one: only the proxies decide its health.
    const mine = offline!.status!.endpoints!.find((e) => e.name === 'mine')!;

    await discovered(0);
    const online = await eventually(
      () => getEndpoints('found'),
      (e) => e?.status?.healthyEndpoints === 2,
    );
    expect(healthOf(online)).toEqual({ mine: 'Healthy', 'web-1': 'Healthy' });
    // An endpoint whose health did not change keeps its lastTransitionTime.
    expect(online!.status!.endpoints!.find((e) => e.name === 'mine')?.lastTransitionTime).toBe(
      mine.lastTransitionTime!,
    );
  });

  test('served by a TailscaleProxyGroup: Healthy once the group has a ready replica and carries the endpoint', async () => {
    await h.createProxyGroup('pool', { type: 'egress', tailnet: 'corp', replicas: 1 });
    await h.createEndpoints('member', {
      tailnet: 'corp',
      endpoints: [{ name: 'api', tailscaleIP: '100.64.0.40', port: 8080 }],
      proxy: { connectionType: 'egress', proxyGroup: 'pool' },
    });
    await eventually(
      () => getEndpoints('member'),
      (e) => e?.status?.totalEndpoints === 1,
    );
    expect(await tableRow('member')).toMatchObject({ Endpoints: 1, Healthy: 0 });
    const base = proxyBaseName(h.appNamespace, 'pool', 'pg');
    await eventually(
      () => h.get(`/apis/apps/v1/namespaces/${h.operatorNamespace}/statefulsets/${base}`),
      (s) => s !== undefined,
    );
    await proxiesUp(base, 1, 21);
    const served = await eventually(
      () => getEndpoints('member'),
      (e) => e?.status?.healthyEndpoints === 1,
    );
    expect(served!.status!.endpoints![0]).toMatchObject({
      name: 'api',
      health: 'Healthy',
      message: 'carried by TailscaleProxyGroup pool',
    });
    expect(await tableRow('member')).toMatchObject({ Endpoints: 1, Healthy: 1, Ready: 'True' });
  });
});
