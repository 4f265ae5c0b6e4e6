/**
 * The Helm chart on the one-node cluster with the operator image built from this checkout: the
 * operator Pods start non-root on a read-only root filesystem, pass their probes, elect one leader,
 * serve gRPC and /metrics through the chart's Services, and reconcile a TailscaleTailnet.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultProxyImage } from '../../src/proxy/objects.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { CHART_NAMESPACE, installChart, until } from '../harness/node/chart.ts';
import { buildClusterImages } from '../harness/node/cluster-images.ts';
import {
  NODE_IP,
  type NodeCluster,
  nodeClusterUnavailable,
  startNodeCluster,
} from '../harness/node/index.ts';

const NS = CHART_NAMESPACE;
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping chart-on-node tests: ${unavailable}`);

type PodList = {
  items: {
    metadata: { name: string };
    spec: {
      containers: { securityContext?: Record<string, unknown> }[];
      securityContext?: Record<string, unknown>;
    };
    status: { phase?: string; containerStatuses?: { ready: boolean; restartCount: number }[] };
  }[];
};

describe.skipIf(unavailable !== undefined)('the chart on the one-node cluster', () => {
  let cluster: NodeCluster;
  const imageDir = mkdtempSync(join(tmpdir(), 'tsgw-chart-images-'));
  let fake: FakeTailscale;

  const get = async <T>(path: string): Promise<T> => (await (await cluster.request(path)).json()) as T;

  beforeAll(async () => {
    const images = await buildClusterImages(imageDir, 'tsgw.local/tailscale-gateway:chart');
    cluster = await startNodeCluster({ images: images.map((i) => i.path) });
    // The fake Tailscale API on the node IP: the operator Pods reach it, nothing leaves the machine.
    fake = startFakeTailscale({ hostname: NODE_IP });
    const installToReadyMs = await installChart(cluster, {
      repository: 'tsgw.local/tailscale-gateway',
      tag: 'chart',
      tailscaleApiUrl: fake.url,
    });
    console.log(`helm install → 2/2 operator Pods Ready in ${installToReadyMs} ms`);
  }, 120_000);

  afterAll(async () => {
    await fake?.stop();
    await cluster?.stop();
    rmSync(imageDir, { recursive: true, force: true });
  }, 120_000);

  test('the operator Pods run as uid 65532 on a read-only root filesystem and pass their probes', async () => {
    const pods = await get<PodList>(`/api/v1/namespaces/${NS}/pods`);
    expect(pods.items.length).toBe(2);
    for (const pod of pods.items) {
      expect(pod.status.phase).toBe('Running');
      expect(pod.status.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
      expect(pod.spec.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    }
    // What the kernel says, not what the spec asks: every operator process on the node runs as 65532.
    // Only this cluster's (its cgroup tree): other checkouts on the machine may run the binary too.
    const procs = Bun.spawnSync(['pgrep', '-x', 'tailscale-gatew'])
      .stdout.toString()
      .trim()
      .split('\n')
      .filter((pid) => readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${cluster.cgroup}/`));
    expect(procs.length).toBe(2);
    for (const pid of procs) {
      expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
      const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/');
      expect(root?.split(' ')[5]).toMatch(/^ro\b/);
    }
  });

  test('one Pod holds the leader Lease', async () => {
    const lease = await until('the leader Lease', async () => {
      const l = await get<{ spec?: { holderIdentity?: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/tailscale-gateway`,
      );
      return l.spec?.holderIdentity ? l : undefined;
    });
    const pods = await get<PodList>(`/api/v1/namespaces/${NS}/pods`);
    const holders = pods.items.filter((p) => lease.spec?.holderIdentity?.startsWith(`${p.metadata.name}_`));
    expect(holders.length).toBe(1);
  });

  test('/metrics answers through the metrics Service', async () => {
    const svc = await get<{ spec: { clusterIP: string } }>(
      `/api/v1/namespaces/${NS}/services/tsgw-tailscale-gateway-metrics`,
    );
    const text = await until('metrics', async () => {
      const r = await fetch(`http://${svc.spec.clusterIP}:8080/metrics`, {
        signal: AbortSignal.timeout(2000),
      });
      return r.ok ? await r.text() : undefined;
    });
    expect(text).toContain('tsgw_build_info{');
  });

  test('the gRPC Service speaks HTTP/2: the server answers the client preface with SETTINGS', async () => {
    const svc = await get<{ spec: { clusterIP: string } }>(
      `/api/v1/namespaces/${NS}/services/tailscale-gateway`,
    );
    // kube-proxy may not have synced the Service's endpoints yet: connection refused until it has.
    const frame = await until(
      'an HTTP/2 answer on the gRPC Service',
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const socket = connect(5005, svc.spec.clusterIP, () => {
            socket.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
            socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
          });
          socket.setTimeout(5000, () => reject(new Error('no answer from the gRPC Service')));
          socket.once('data', (data: Buffer) => {
            socket.destroy();
            resolve(data);
          });
          socket.once('error', reject);
        }),
    );
    expect(frame[3]).toBe(4); // frame type SETTINGS
  });

  test('the leader reconciles a TailscaleTailnet against the fake Tailscale API: Ready', async () => {
    const apply = async (path: string, doc: object) => {
      const r = await cluster.request(`${path}?fieldManager=tsgw-test&force=true`, {
        method: 'PATCH',
        body: doc,
        contentType: 'application/apply-patch+yaml',
      });
      expect(r.status).toBeLessThan(300);
    };
    await apply(`/api/v1/namespaces/${NS}/secrets/tailscale-oauth`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tailscale-oauth', namespace: NS },
      stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
    });
    await apply('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/corp', {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      spec: { tailnet: '-', oauthSecretRef: { name: 'tailscale-oauth', namespace: NS }, tags: ['tag:k8s'] },
    });
    const ready = await until('TailscaleTailnet Ready', async () => {
      const t = await get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        '/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/corp',
      );
      return t.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
    });
    expect(ready.status).toBe('True');
  });

  test('a TailscaleEndpoints produces a Running proxy Pod from the local proxy image', async () => {
    const started = performance.now();
    const r = await cluster.request(
      '/apis/gateway.tailscale.com/v1alpha1/namespaces/default/tailscaleendpoints/grafana?fieldManager=tsgw-test&force=true',
      {
        method: 'PATCH',
        contentType: 'application/apply-patch+yaml',
        body: {
          apiVersion: 'gateway.tailscale.com/v1alpha1',
          kind: 'TailscaleEndpoints',
          metadata: { name: 'grafana', namespace: 'default' },
          spec: {
            tailnet: 'corp',
            endpoints: [
              { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000, protocol: 'HTTP' },
            ],
            proxy: { connectionType: 'egress', replicas: 1 },
          },
        },
      },
    );
    expect(r.status).toBeLessThan(300);
    type Pods = {
      items: {
        metadata: { name: string; namespace: string };
        spec: { containers: { image: string }[] };
        status: { phase?: string };
      }[];
    };
    const proxy = await until(
      'a Running proxy Pod',
      async () => {
        const pods = await get<Pods>('/api/v1/pods');
        const p = pods.items.find((x) => x.spec.containers.some((c) => c.image === defaultProxyImage()));
        return p?.status.phase === 'Running' ? p : undefined;
      },
      40_000,
    ).catch(async (error) => {
      // What the operator and the cluster said, so a failure here explains itself.
      const tse = await get<{ status?: unknown }>(
        '/apis/gateway.tailscale.com/v1alpha1/namespaces/default/tailscaleendpoints/grafana',
      );
      const events = await get<{
        items: { reason: string; message: string; involvedObject: { kind: string; name: string } }[];
      }>('/api/v1/events');
      const sts = await get<{ items: { metadata: { namespace: string; name: string }; status: unknown }[] }>(
        '/apis/apps/v1/statefulsets',
      );
      const lines = events.items.map(
        (e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`,
      );
      throw new Error(
        `${error}\nTSE status: ${JSON.stringify(tse.status)}\nStatefulSets: ${JSON.stringify(sts.items.map((x) => [x.metadata.namespace, x.metadata.name, x.status]))}\nevents:\n${lines.join('\n')}`,
      );
    });
    console.log(
      `TailscaleEndpoints apply → proxy Pod Running in ${Math.round(performance.now() - started)} ms`,
    );
    expect(proxy.status.phase).toBe('Running');
    // No control server is reachable (the fake serves only the API), so the proxy never logs in; but
    // it started, read its config, ran tailscaled in kernel mode and reports through its state Secret.
    type ProxyPod = {
      metadata: { uid: string };
      status: {
        podIP?: string;
        conditions?: { type: string; status: string }[];
        containerStatuses?: { name: string; ready: boolean; started?: boolean }[];
      };
    };
    const pod = await get<ProxyPod>(`/api/v1/namespaces/${NS}/pods/${proxy.metadata.name}`);
    const state = await until('the proxy state Secret written by containerboot and tailscaled', async () => {
      const secret = await get<{ data?: Record<string, string> }>(
        `/api/v1/namespaces/${NS}/secrets/${proxy.metadata.name}`,
      );
      return secret.data?.pod_uid && secret.data._machinekey ? secret.data : undefined;
    });
    expect(Buffer.from(state.pod_uid!, 'base64').toString()).toBe(pod.metadata.uid);
    expect(Object.keys(state)).toEqual(
      expect.arrayContaining(['_machinekey', 'pod_uid', 'tailscale_capver']),
    );
    const log = await (
      await cluster.request(`/api/v1/namespaces/${NS}/pods/${proxy.metadata.name}/log?container=tailscale`)
    ).text();
    expect(log).toContain('netfilter running in nftables mode');
    // Not on the tailnet, so not ready: containerboot's /healthz on the Pod IP answers 503 and the
    // kubelet, probing it, keeps the Pod Ready=False (without the probe it would be Ready once Running).
    // The log line is tailscaled's, from before containerboot serves /healthz: wait for it to listen.
    const healthz = await until('containerboot serving /healthz', () =>
      fetch(`http://${pod.status.podIP}:9002/healthz`, { signal: AbortSignal.timeout(3000) }),
    );
    expect(healthz.status).toBe(503);
    expect(await healthz.text()).toContain('no tailscale IPs');
    const probed = await until('the kubelet reporting the failed readiness probe', async () => {
      const events = await get<{
        items: { reason: string; message: string; involvedObject: { name: string } }[];
      }>(`/api/v1/namespaces/${NS}/events?fieldSelector=involvedObject.name=${proxy.metadata.name}`);
      // The first probes may come before containerboot listens (connection refused): wait for a 503.
      return events.items.find((e) => e.reason === 'Unhealthy' && e.message.includes('statuscode: 503'));
    });
    expect(probed.message).toContain('Readiness probe failed: HTTP probe failed with statuscode: 503');
    const after = await get<ProxyPod>(`/api/v1/namespaces/${NS}/pods/${proxy.metadata.name}`);
    expect(after.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    expect(after.status.containerStatuses?.find((c) => c.name === 'tailscale')).toMatchObject({
      ready: false,
      started: true,
    });
  }, 100_000);
  test('a TailscaleProxyGroup produces Running proxy Pods from the local proxy image', async () => {
    const r = await cluster.request(
      '/apis/gateway.tailscale.com/v1alpha1/namespaces/default/tailscaleproxygroups/ingress-pool?fieldManager=tsgw-test&force=true',
      {
        method: 'PATCH',
        contentType: 'application/apply-patch+yaml',
        body: {
          apiVersion: 'gateway.tailscale.com/v1alpha1',
          kind: 'TailscaleProxyGroup',
          metadata: { name: 'ingress-pool', namespace: 'default' },
          spec: {
            type: 'ingress',
            tailnet: 'corp',
            replicas: 2,
            tags: ['tag:k8s'],
            hostnamePrefix: 'gw-ingress',
          },
        },
      },
    );
    expect(r.status).toBeLessThan(300);
    type Pods = {
      items: {
        metadata: { name: string };
        spec: { containers: { image: string }[] };
        status: { phase?: string };
      }[];
    };
    const running = await until(
      '2 Running proxy Pods of the group',
      async () => {
        const pods = await get<Pods>(`/api/v1/namespaces/${NS}/pods`);
        const group = pods.items.filter(
          (p) =>
            p.metadata.name.startsWith('ingress-pool') &&
            p.spec.containers.some((c) => c.image === defaultProxyImage()),
        );
        return group.length === 2 && group.every((p) => p.status.phase === 'Running') ? group : undefined;
      },
      60_000,
    );
    expect(running.map((p) => p.metadata.name).sort()).toHaveLength(2);
    // Running but not on the tailnet: the readiness probe keeps both out of the StatefulSet's ready count.
    await Bun.sleep(6000); // more than one probe period (5 s)
    const sts = await get<{ status: { replicas?: number; readyReplicas?: number } }>(
      `/apis/apps/v1/namespaces/${NS}/statefulsets/${running[0]!.metadata.name.replace(/-\d+$/, '')}`,
    );
    expect(sts.status.replicas).toBe(2);
    expect(sts.status.readyReplicas ?? 0).toBe(0);
  }, 70_000);
});
