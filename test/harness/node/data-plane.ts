/**
 * The whole data plane on the one-node cluster, for traffic tests that need more than one tailnet
 * device: the cluster with the operator, Envoy and EG images, a tailnet lab with the given devices, the
 * fake Tailscale API and control behind one origin, the operator from its chart, EG from its chart,
 * the OAuth Secret and TailscaleTailnet `corp`, and a Gateway `eg` whose EnvoyProxy names our Envoy
 * image, its Envoy Pod Ready. The same steps test/node/traffic.test.ts takes inline, gathered so that
 * the failover and recovery flows (test/node/failover.test.ts) start from the same place.
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYSTEM_CA_BUNDLE } from '../../../src/extension/xds/clusters.ts';
import { type FakeTailscale, startFakeTailscale } from '../fake-tailscale/index.ts';
import { startOneOrigin } from '../tailscale/one-origin.ts';
import {
  type DeviceOptions,
  startTailnetLab,
  type TailnetDevice,
  type TailnetLab,
} from '../tailscale/tailnet-devices.ts';
import { CHART_NAMESPACE, installChart, until } from './chart.ts';
import { buildClusterImages, buildDataPlaneImages } from './cluster-images.ts';
import { EG_NAMESPACE, installEnvoyGateway } from './envoy-gateway.ts';
import { NODE_IP, type NodeCluster, startNodeCluster } from './index.ts';

export const GROUP = 'gateway.tailscale.com/v1alpha1';
export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
/** Where the tests' TailscaleEndpoints, TailscaleGateway and HTTPRoutes live. */
export const APPS = 'default';

export type Pod = {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { containers: { name: string; image: string }[] };
  status: {
    podIP?: string;
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number }[];
  };
};

export const podReady = (p: Pod) => p.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

export interface DataPlane {
  cluster: NodeCluster;
  lab: TailnetLab;
  /** The devices asked for, by name. */
  devices: Record<string, TailnetDevice>;
  fake: FakeTailscale;
  get<T>(path: string): Promise<T>;
  /** Server-side apply as field manager `tsgw-test`; throws with the apiserver's answer. */
  apply(
    path: string,
    doc: { metadata: { name: string; namespace?: string }; [field: string]: unknown },
  ): Promise<void>;
  pods(namespace: string, selector: string): Promise<Pod[]>;
  /** The Envoy Pods EG runs for Gateway `eg`. */
  envoyPods(): Promise<Pod[]>;
  /** The Envoy Service's ClusterIP (the host's way in; kube-proxy routes it as for a Pod). */
  envoyAddress(): Promise<string>;
  /** `until`, failing with what EG, Envoy, the operator and the proxies logged. */
  soon<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T>;
  /** The admin endpoint `path` (e.g. `/clusters`) of the Gateway's Envoy, read inside its netns. */
  envoyAdmin(path: string): string;
  stop(): Promise<void>;
}

/**
 * Starts everything; `tag` names the operator image (`tsgw.local/tailscale-gateway:<tag>`).
 * `envoyTrustsLabCa`: the Envoy Pod's system CA bundle is the lab CA alone (a ConfigMap mounted over
 * it), as an operator trusting a private CA would do, so that upstream TLS to lab certificates verifies.
 */
export async function startDataPlane(options: {
  tag: string;
  devices: DeviceOptions[];
  envoyTrustsLabCa?: boolean;
}): Promise<DataPlane> {
  const imageDir = mkdtempSync(join(tmpdir(), `tsgw-${options.tag}-images-`));
  const parts: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    for (const p of parts.toReversed()) await p.stop().catch(() => undefined);
    rmSync(imageDir, { recursive: true, force: true });
  };
  try {
    const images = await buildDataPlaneImages();
    const base = await buildClusterImages(imageDir, `tsgw.local/tailscale-gateway:${options.tag}`);
    const cluster = await startNodeCluster({
      images: [...base.map((i) => i.path), images.envoy.path, images.envoyGateway.path],
    });
    parts.push(cluster);
    const lab = await startTailnetLab({ controlListen: NODE_IP });
    parts.push(lab);
    const devices: Record<string, TailnetDevice> = {};
    for (const d of options.devices) devices[d.name] = await lab.addDevice(d);
    const fake = startFakeTailscale({ control: lab.control.admin.url });
    parts.push(fake);
    const origin = await startOneOrigin({ hostname: NODE_IP, api: fake.url, control: lab.control.control });
    parts.push(origin);

    const get = async <T>(path: string): Promise<T> => (await (await cluster.request(path)).json()) as T;
    const apply: DataPlane['apply'] = async (path, doc) => {
      const r = await cluster.request(`${path}/${doc.metadata.name}?fieldManager=tsgw-test&force=true`, {
        method: 'PATCH',
        body: doc,
        contentType: 'application/apply-patch+yaml',
      });
      if (r.status >= 300)
        throw new Error(`apply ${path}/${doc.metadata.name}: ${r.status} ${await r.text()}`);
    };
    const pods = async (namespace: string, selector: string) =>
      (
        await get<{ items: Pod[] }>(
          `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
        )
      ).items;
    const log = async (namespace: string, pod: string, container?: string) =>
      (
        await (
          await cluster.request(
            `/api/v1/namespaces/${namespace}/pods/${pod}/log${container ? `?container=${container}` : ''}`,
          )
        ).text()
      )
        .split('\n')
        .filter((l) => !/bootstrapDNS|log\.tailscale|logtail/.test(l))
        .slice(-40)
        .join('\n');
    const envoyPods = () => pods(EG_NAMESPACE, 'gateway.envoyproxy.io/owning-gateway-name=eg');
    const explain = async (error: unknown) => {
      const out: string[] = [String(error)];
      for (const p of await pods(EG_NAMESPACE, 'control-plane=envoy-gateway'))
        out.push(`--- EG ${p.metadata.name}\n${await log(EG_NAMESPACE, p.metadata.name)}`);
      for (const p of await envoyPods())
        out.push(`--- Envoy ${p.metadata.name}\n${await log(EG_NAMESPACE, p.metadata.name, 'envoy')}`);
      for (const p of (await get<{ items: Pod[] }>(`/api/v1/namespaces/${CHART_NAMESPACE}/pods`)).items)
        out.push(
          `--- ${p.metadata.name}\n${await log(CHART_NAMESPACE, p.metadata.name, p.spec.containers[0]?.name)}`,
        );
      return new Error(out.join('\n'));
    };
    const soon: DataPlane['soon'] = (what, fn, timeoutMs) =>
      until(what, fn, timeoutMs).catch(async (e) => {
        throw await explain(e);
      });
    const envoyAddress = async () => {
      const list = await get<{ items: { spec: { clusterIP: string } }[] }>(
        `/api/v1/namespaces/${EG_NAMESPACE}/services?labelSelector=${encodeURIComponent('gateway.envoyproxy.io/owning-gateway-name=eg')}`,
      );
      const svc = list.items[0];
      if (!svc) throw new Error('no Envoy Service for Gateway eg');
      return svc.spec.clusterIP;
    };
    const envoyAdmin = (path: string) => {
      // The admin listens on the Pod's loopback only: the Envoy process of this cluster's cgroups.
      const pid = Bun.spawnSync(['pgrep', '-x', 'envoy'])
        .stdout.toString()
        .trim()
        .split('\n')
        .find((p) => p && readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${cluster.cgroup}/`));
      if (!pid) throw new Error('no Envoy process in the cluster');
      const r = Bun.spawnSync(
        ['nsenter', '-t', pid, '-n', 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:19000${path}`],
        { stdout: 'pipe', stderr: 'pipe' },
      );
      if (r.exitCode !== 0) throw new Error(`Envoy admin ${path}: exit ${r.exitCode} ${r.stderr.toString()}`);
      return r.stdout.toString();
    };

    // The operator first: its chart brings our CRDs, which EG's extensionManager names.
    await installChart(cluster, {
      repository: 'tsgw.local/tailscale-gateway',
      tag: options.tag,
      tailscaleApiUrl: origin.url,
    });
    await installEnvoyGateway(cluster, { image: images.envoyGateway.name });
    await apply(`/api/v1/namespaces/${CHART_NAMESPACE}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
      stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
    });
    await apply(`/apis/${GROUP}/tailscaletailnets`, {
      apiVersion: GROUP,
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      spec: {
        tailnet: '-',
        oauthSecretRef: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
        tags: ['tag:k8s'],
      },
    });
    if (options.envoyTrustsLabCa)
      await apply(`/api/v1/namespaces/${EG_NAMESPACE}/configmaps`, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'lab-ca', namespace: EG_NAMESPACE },
        data: { 'ca-certificates.crt': lab.caCert },
      });
    const trustLabCa = options.envoyTrustsLabCa
      ? {
          pod: { volumes: [{ name: 'lab-ca', configMap: { name: 'lab-ca' } }] },
          mounts: [
            { name: 'lab-ca', mountPath: SYSTEM_CA_BUNDLE, subPath: 'ca-certificates.crt', readOnly: true },
          ],
        }
      : undefined;
    await apply(`/apis/gateway.envoyproxy.io/v1alpha1/namespaces/${EG_NAMESPACE}/envoyproxies`, {
      apiVersion: 'gateway.envoyproxy.io/v1alpha1',
      kind: 'EnvoyProxy',
      metadata: { name: 'tsgw-node', namespace: EG_NAMESPACE },
      spec: {
        provider: {
          type: 'Kubernetes',
          kubernetes: {
            envoyDeployment: {
              replicas: 1,
              container: {
                image: images.envoy.name,
                ...(trustLabCa ? { volumeMounts: trustLabCa.mounts } : {}),
              },
              ...(trustLabCa ? { pod: trustLabCa.pod } : {}),
            },
            envoyService: { type: 'ClusterIP' },
          },
        },
      },
    });
    await apply('/apis/gateway.networking.k8s.io/v1/gatewayclasses', {
      apiVersion: GATEWAY_API,
      kind: 'GatewayClass',
      metadata: { name: 'eg' },
      spec: {
        controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
        parametersRef: {
          group: 'gateway.envoyproxy.io',
          kind: 'EnvoyProxy',
          name: 'tsgw-node',
          namespace: EG_NAMESPACE,
        },
      },
    });
    await apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/gateways`, {
      apiVersion: GATEWAY_API,
      kind: 'Gateway',
      metadata: { name: 'eg', namespace: APPS },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
    });
    await soon('the Envoy Pod Ready', async () => (await envoyPods()).find(podReady), 120_000);
    return {
      cluster,
      lab,
      devices,
      fake,
      get,
      apply,
      pods,
      envoyPods,
      envoyAddress,
      soon,
      envoyAdmin,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
