/**
 * The operator as users install it on the one-node cluster, joined to a real tailnet: the tailnet lab
 * (tailnet-control on the node IP, where proxy Pods reach it, and real tailscaled devices in network
 * namespaces of the test's), the fake Tailscale API delegating keys, devices and Tailscale Services to
 * control, both behind one origin (the operator derives its proxies' login server from its API URL),
 * the chart with the operator image of this checkout, and a TailscaleTailnet `corp` on tag:k8s.
 * Shared by test/node/tailscale-service.test.ts and `npm run bench:tailnet-service`.
 *
 * Options that only tests of ingress need:
 * - `gatewayApi`: the Gateway API CRDs (the versions EG is built with), installed before the chart so
 *   the operator's discovery finds them at start, for TailscaleGateways of mode HTTP (their upstream is
 *   looked up from a Gateway object). No Gateway controller runs.
 * - `labCa`: the proxy image trusts the lab CA, the stand-in for Let's Encrypt (see proxyImage).
 * - `echo`: the echo server image (ECHO_IMAGE), for backends in Pods.
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultProxyImage } from '../../../src/proxy/objects.ts';
import { envoyGatewayCrds } from '../envoy-gateway/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../fake-tailscale/index.ts';
import { type OneOrigin, startOneOrigin } from '../tailscale/one-origin.ts';
import type { TailnetAdmin } from '../tailscale/tailnet-control.ts';
import { startTailnetLab, type TailnetLab } from '../tailscale/tailnet-devices.ts';
import { CHART_NAMESPACE, installChart, until } from './chart.ts';
import { buildClusterImages, ECHO_IMAGE, tailscaleBinaries } from './cluster-images.ts';
import { buildImage, proxyImage } from './images.ts';
import { NODE_IP, type NodeCluster, startNodeCluster } from './index.ts';

export const GROUP = 'gateway.tailscale.com/v1alpha1';
const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

export interface TailnetStackOptions {
  /** Tag of the operator image `tsgw.local/tailscale-gateway:<tag>`. */
  tag: string;
  gatewayApi?: boolean;
  labCa?: boolean;
  echo?: boolean;
}

export interface TailnetStack {
  cluster: NodeCluster;
  lab: TailnetLab;
  fake: FakeTailscale;
  /** tailnet-control's admin API: what control has (nodes, keys, services, what each node reported). */
  admin: TailnetAdmin;
  /** GET as cluster-admin, parsed; throws on a status ≥ 300 naming the path. */
  get<T>(path: string): Promise<T>;
  /** Server-side apply of `doc` at `<collection path>/<name>` (field manager tsgw-test, forced). */
  apply(
    collection: string,
    doc: { metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<
      string,
      unknown
    >,
  ): Promise<void>;
  /** A Secret's data, decoded. */
  secretData(namespace: string, name: string): Promise<Record<string, string>>;
  /** The proxy container's log without tailscaled's attempts to reach the real log server. */
  proxyLog(pod: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startTailnetStack(options: TailnetStackOptions): Promise<TailnetStack> {
  const imageDir = mkdtempSync(join(tmpdir(), 'tsgw-tailnet-stack-'));
  const stops: (() => Promise<void>)[] = [async () => rmSync(imageDir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const images = await buildClusterImages(imageDir, `tsgw.local/tailscale-gateway:${options.tag}`, {
      ...(options.echo ? { echo: true } : {}),
    });
    const cluster = await startNodeCluster({ images: images.map((i) => i.path) });
    stops.push(() => cluster.stop());
    // Control listens on the node IP, which exists once the node's bridge does.
    const lab = await startTailnetLab({ controlListen: NODE_IP });
    stops.push(() => lab.stop());
    if (options.labCa) {
      // The proxy image again, now with the lab's CA, under the same name: no proxy Pod has started yet.
      const archive = join(imageDir, 'proxy-lab-ca.tar');
      buildImage(proxyImage(tailscaleBinaries(true), defaultProxyImage(), { extraCa: lab.caCert }), archive);
      const r = cluster.ctr('images', 'import', '--no-unpack', archive);
      if (r.exitCode !== 0) throw new Error(`importing the proxy image with the lab CA: ${r.stderr.trim()}`);
    }
    const get = async <T>(path: string): Promise<T> => {
      const r = await cluster.request(path);
      if (r.status >= 300) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    };
    const apply: TailnetStack['apply'] = async (collection, doc) => {
      const r = await cluster.request(
        `${collection}/${doc.metadata.name}?fieldManager=tsgw-test&force=true`,
        { method: 'PATCH', body: doc, contentType: 'application/apply-patch+yaml' },
      );
      if (r.status >= 300)
        throw new Error(`apply ${collection}/${doc.metadata.name}: ${r.status} ${await r.text()}`);
    };
    if (options.gatewayApi) await installGatewayApi(cluster, get);
    const admin = lab.control.admin;
    const fake = startFakeTailscale({ control: admin.url });
    stops.push(() => fake.stop());
    const origin: OneOrigin = await startOneOrigin({
      hostname: NODE_IP,
      api: fake.url,
      control: lab.control.control,
    });
    stops.push(() => origin.stop());
    await installChart(cluster, {
      repository: 'tsgw.local/tailscale-gateway',
      tag: options.tag,
      tailscaleApiUrl: origin.url,
    });
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
    const secretData = async (namespace: string, name: string) => {
      const s = await get<{ data?: Record<string, string> }>(
        `/api/v1/namespaces/${namespace}/secrets/${name}`,
      );
      return Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      );
    };
    const proxyLog = async (pod: string) =>
      (
        await (
          await cluster.request(`/api/v1/namespaces/${CHART_NAMESPACE}/pods/${pod}/log?container=tailscale`)
        ).text()
      )
        .split('\n')
        .filter((l) => !/bootstrapDNS|log\.tailscale|logtail/.test(l))
        .join('\n');
    return { cluster, lab, fake, admin, get, apply, secretData, proxyLog, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The Gateway API CRDs (not EG's own), created and Established. */
async function installGatewayApi(cluster: NodeCluster, get: <T>(path: string) => Promise<T>): Promise<void> {
  const crds = (await envoyGatewayCrds()).filter(
    (crd) => (crd as { spec?: { group?: string } }).spec?.group === GATEWAY_API_GROUP,
  ) as { metadata: { name: string } }[];
  for (const crd of crds) {
    const r = await cluster.request('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      method: 'POST',
      body: crd,
    });
    if (r.status >= 300 && r.status !== 409)
      throw new Error(`create CRD ${crd.metadata.name}: ${r.status} ${await r.text()}`);
  }
  for (const crd of crds)
    await until(`CRD ${crd.metadata.name} Established`, async () => {
      const c = await get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')
        ? true
        : undefined;
    });
}

/**
 * What a TailscaleGateway's ingress needs in namespace `default`, without Envoy Gateway: an echo
 * server Pod `upstream` (ECHO_IMAGE: HTTP on 8080, TCP lines on 7007) behind Service `upstream` (80 and 7,
 * a mode-TCP target), a Service `envoy-default-eg` selecting the same Pod with the labels EG puts on
 * the Envoy Service of Gateway default/eg (port 80: the listener's), the Gateway `eg` (one HTTP
 * listener on 80; no controller accepts it, the operator only reads its listeners), and an ingress
 * TailscaleProxyGroup `ingress-pool` (2 replicas, hostnames gw-0 and gw-1) Ready with both devices.
 * Needs the stack with `echo` and `gatewayApi`. Resolves with the group's config Secrets' names,
 * replica 0 first.
 */
export async function startIngressBed(stack: TailnetStack): Promise<string[]> {
  const APP = 'default';
  const labels = { app: 'upstream' };
  await stack.apply(`/api/v1/namespaces/${APP}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'upstream', namespace: APP, labels },
    spec: {
      containers: [
        {
          name: 'echo',
          image: ECHO_IMAGE,
          imagePullPolicy: 'Never',
          ports: [{ containerPort: 8080 }, { containerPort: 7007 }],
        },
      ],
    },
  });
  await stack.apply(`/api/v1/namespaces/${APP}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'upstream', namespace: APP },
    spec: {
      selector: labels,
      ports: [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'line', port: 7, targetPort: 7007 },
      ],
    },
  });
  await stack.apply(`/api/v1/namespaces/${APP}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'envoy-default-eg',
      namespace: APP,
      labels: {
        'gateway.envoyproxy.io/owning-gateway-name': 'eg',
        'gateway.envoyproxy.io/owning-gateway-namespace': APP,
      },
    },
    spec: { selector: labels, ports: [{ name: 'http-80', port: 80, targetPort: 8080 }] },
  });
  await stack.apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APP}/gateways`, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: APP },
    spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
  });
  await stack.apply(`/apis/${GROUP}/namespaces/${APP}/tailscaleproxygroups`, {
    apiVersion: GROUP,
    kind: 'TailscaleProxyGroup',
    metadata: { name: 'ingress-pool', namespace: APP },
    spec: { type: 'ingress', tailnet: 'corp', replicas: 2, tags: ['tag:k8s'], hostnamePrefix: 'gw' },
  });
  await until(
    'the ingress group Ready with 2 devices',
    async () => {
      const g = await stack.get<{
        status?: { conditions?: { type: string; status: string }[]; devices?: unknown[] };
      }>(`/apis/${GROUP}/namespaces/${APP}/tailscaleproxygroups/ingress-pool`);
      const ready = g.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      return ready && g.status?.devices?.length === 2 ? g : undefined;
    },
    90_000,
  );
  await until('the upstream Pod Running', async () => {
    const p = await stack.get<{ status?: { phase?: string } }>(`/api/v1/namespaces/${APP}/pods/upstream`);
    return p.status?.phase === 'Running' ? true : undefined;
  });
  const secrets = await stack.get<{ items: { metadata: { name: string } }[] }>(
    `/api/v1/namespaces/${CHART_NAMESPACE}/secrets?labelSelector=${encodeURIComponent('tailscale.com/secret-type=config')}`,
  );
  return secrets.items
    .map((s) => s.metadata.name)
    .filter((n) => n.startsWith('ingress-pool-'))
    .sort();
}
