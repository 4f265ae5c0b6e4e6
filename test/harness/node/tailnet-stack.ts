/**
 * The operator as users install it on the one-node cluster, joined to a real tailnet: the tailnet lab
 * (tailnet-control on the node IP, where proxy Pods reach it, and real tailscaled devices in network
 * namespaces of the test's), the fake Tailscale API delegating keys, devices and Tailscale Services to
 * control, both behind one origin (the operator derives its proxies' login server from its API URL),
 * the chart with the operator image of this checkout, and a TailscaleTailnet `corp` on tag:k8s.
 * The base every node test of the tailnet starts from: test/node/tailnet.test.ts and
 * tailscale-service.test.ts, `npm run bench:tailnet-service`, and test/harness/node/data-plane.ts,
 * which adds Envoy Gateway, Envoy and a Gateway on top.
 *
 * Options that only some need:
 * - `devices`: lab devices, added before the operator starts (so the first netmaps hold them).
 * - `gatewayApi`: the Gateway API CRDs (the versions EG is built with), installed before the chart so
 *   the operator's discovery finds them at start, for TailscaleGateways of mode HTTP (their upstream is
 *   looked up from a Gateway object). No Gateway controller runs.
 * - `labCa`: the proxy image trusts the lab CA, the stand-in for Let's Encrypt (see proxyImage).
 * - `echo`: the echo server image (ECHO_IMAGE), for backends in Pods.
 * - `images`, `beforeChart`, `afterChart`: what an extension (data-plane.ts) loads onto the node and
 *   installs around the chart.
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
import {
  type DeviceOptions,
  startTailnetLab,
  type TailnetDevice,
  type TailnetLab,
} from '../tailscale/tailnet-devices.ts';
import { CHART_NAMESPACE, installChart, until } from './chart.ts';
import { buildClusterImages, ECHO_IMAGE, tailscaleBinaries } from './cluster-images.ts';
import { buildImage, proxyImage } from './images.ts';
import { NODE_IP, type NodeCluster, startNodeCluster } from './index.ts';

export const GROUP = 'gateway.tailscale.com/v1alpha1';
export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
/** Where the tests' TailscaleEndpoints, TailscaleGateways, HTTPRoutes and backends live. */
export const APPS = 'default';

/** The fields of a Pod the node tests read. */
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

/** A document to server-side apply: its name (and namespace) say where. */
export type Applied = {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
};

export interface TailnetStackOptions {
  /** Tag of the operator image `tsgw.local/tailscale-gateway:<tag>`. */
  tag: string;
  devices?: DeviceOptions[];
  gatewayApi?: boolean;
  labCa?: boolean;
  echo?: boolean;
  /** More image archives to import on the node. */
  images?: string[];
  /** Run with the lab, fake API and origin up, before the chart installs. */
  beforeChart?(stack: TailnetStack): Promise<void>;
  /** Run once the chart's Pods are Ready, before the OAuth Secret and TailscaleTailnet. */
  afterChart?(stack: TailnetStack): Promise<void>;
}

export interface TailnetStack {
  cluster: NodeCluster;
  lab: TailnetLab;
  /** The devices asked for, by name. */
  devices: Record<string, TailnetDevice>;
  fake: FakeTailscale;
  /** tailnet-control's admin API: what control has (nodes, keys, services, what each node reported). */
  admin: TailnetAdmin;
  /** The operator's Tailscale API URL: the fake and control behind one origin on the node IP. */
  apiUrl: string;
  /** GET as cluster-admin, parsed; throws on a status ≥ 300 naming the path. */
  get<T>(path: string): Promise<T>;
  /** Server-side apply of `doc` at `<collection path>/<name>` (field manager tsgw-test, forced). */
  apply(collection: string, doc: Applied): Promise<void>;
  /** The Pods of `namespace`, those matching the label `selector` when given. */
  pods(namespace: string, selector?: string): Promise<Pod[]>;
  /** A container's log without tailscaled's attempts to reach the real log server. */
  podLog(namespace: string, pod: string, container?: string): Promise<string>;
  /** A Secret's data, decoded. */
  secretData(namespace: string, name: string): Promise<Record<string, string>>;
  /** The proxy container's log (podLog of container `tailscale` in the chart's namespace). */
  proxyLog(pod: string): Promise<string>;
  /**
   * Adds a section to every failure's account: the tests' and extensions' own view (what EG said,
   * the last request that failed). Read only when something failed.
   */
  explainAlso(section: () => Promise<string> | string): void;
  /** `error`, with what the operator and proxies logged, the tailnet's view and every added section. */
  explain(error: unknown): Promise<Error>;
  /** `until`, failing with {@link explain}'s account. */
  soon<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T>;
  /**
   * {@link soon} a Pod of the same name as `old` (in `namespace`) with another uid is Ready: how a
   * StatefulSet's Pod comes back after it was deleted.
   */
  replacementReady(namespace: string, old: Pod, timeoutMs: number): Promise<Pod>;
  /** Runs `fn` first at {@link stop} (what an extension started goes before the cluster does). */
  onStop(fn: () => Promise<void>): void;
  stop(): Promise<void>;
}

/** How much of each Pod's log a failure's account shows. */
const LOG_LINES = 40;

export async function startTailnetStack(options: TailnetStackOptions): Promise<TailnetStack> {
  const imageDir = mkdtempSync(join(tmpdir(), `tsgw-${options.tag}-images-`));
  const stops: (() => Promise<void>)[] = [async () => rmSync(imageDir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const images = await buildClusterImages(imageDir, `tsgw.local/tailscale-gateway:${options.tag}`, {
      ...(options.echo ? { echo: true } : {}),
    });
    const cluster = await startNodeCluster({
      images: [...images.map((i) => i.path), ...(options.images ?? [])],
    });
    stops.push(() => cluster.stop());
    // Control listens on the node IP, which exists once the node's bridge does.
    const lab = await startTailnetLab({ controlListen: NODE_IP });
    stops.push(() => lab.stop());
    const devices: Record<string, TailnetDevice> = {};
    for (const d of options.devices ?? []) devices[d.name] = await lab.addDevice(d);
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
    const pods: TailnetStack['pods'] = async (namespace, selector) =>
      (
        await get<{ items: Pod[] }>(
          `/api/v1/namespaces/${namespace}/pods${selector ? `?labelSelector=${encodeURIComponent(selector)}` : ''}`,
        )
      ).items;
    const podLog: TailnetStack['podLog'] = async (namespace, pod, container) =>
      (
        await (
          await cluster.request(
            `/api/v1/namespaces/${namespace}/pods/${pod}/log${container ? `?container=${container}` : ''}`,
          )
        ).text()
      )
        .split('\n')
        .filter((l) => !/bootstrapDNS|log\.tailscale|logtail/.test(l))
        .join('\n');
    const secretData = async (namespace: string, name: string) => {
      const s = await get<{ data?: Record<string, string> }>(
        `/api/v1/namespaces/${namespace}/secrets/${name}`,
      );
      return Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      );
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

    const sections: (() => Promise<string> | string)[] = [];
    const explain = async (error: unknown) => {
      const out: string[] = [String(error)];
      const unavailable = (e: unknown) => `(unavailable: ${e})`;
      for (const p of await pods(CHART_NAMESPACE).catch(() => []))
        out.push(
          `--- ${p.metadata.name}\n${await podLog(
            CHART_NAMESPACE,
            p.metadata.name,
            p.spec.containers[0]?.name,
          )
            .then((l) => l.split('\n').slice(-LOG_LINES).join('\n'))
            .catch(unavailable)}`,
        );
      // A proxy that never hears from a lab device (open-conn-track … lastRecv=never): which side
      // holds a stale view of the other, and what the DERP relay dropped.
      out.push(
        `--- tailnet: netmap disagreements\n${await lab
          .netmapDisagreements()
          .then((d) => d.join('\n') || 'none')
          .catch(unavailable)}`,
      );
      out.push(
        `--- tailnet: DERP relay\n${await admin
          .derpStats()
          .then((s) => JSON.stringify(s))
          .catch(unavailable)}`,
      );
      const requests = fake.requests.all.map((r) => `${r.method} ${r.rawPath} ${r.status}`);
      out.push(`--- Tailscale API requests (last 30)\n${requests.slice(-30).join('\n')}`);
      for (const section of sections) out.push(await Promise.resolve(section()).catch(unavailable));
      return new Error(out.join('\n'));
    };
    const soon: TailnetStack['soon'] = (what, fn, timeoutMs) =>
      until(what, fn, timeoutMs).catch(async (e) => {
        throw await explain(e);
      });
    const stack: TailnetStack = {
      cluster,
      lab,
      devices,
      fake,
      admin,
      apiUrl: origin.url,
      get,
      apply,
      pods,
      podLog,
      secretData,
      proxyLog: (pod) => podLog(CHART_NAMESPACE, pod, 'tailscale'),
      explainAlso: (section) => {
        sections.push(section);
      },
      explain,
      soon,
      replacementReady: (namespace, old, timeoutMs) =>
        soon(
          `a new Pod ${old.metadata.name} Ready`,
          async () => {
            const p = await get<Pod>(`/api/v1/namespaces/${namespace}/pods/${old.metadata.name}`);
            return p.metadata.uid !== old.metadata.uid && podReady(p) ? p : undefined;
          },
          timeoutMs,
        ),
      onStop: (fn) => {
        stops.push(fn);
      },
      stop,
    };

    await options.beforeChart?.(stack);
    await installChart(cluster, {
      repository: 'tsgw.local/tailscale-gateway',
      tag: options.tag,
      tailscaleApiUrl: origin.url,
    });
    await options.afterChart?.(stack);
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
    return stack;
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
 * The backend of the ingress tests in namespace `default`: an echo server Pod `upstream` (ECHO_IMAGE:
 * HTTP on 8080, TCP lines on 7007) behind Service `upstream` (80 and 7, a mode-TCP target), Running.
 * Needs the stack with `echo`.
 */
export async function startUpstream(stack: TailnetStack): Promise<void> {
  const labels = { app: 'upstream' };
  await stack.apply(`/api/v1/namespaces/${APPS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'upstream', namespace: APPS, labels },
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
  await stack.apply(`/api/v1/namespaces/${APPS}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'upstream', namespace: APPS },
    spec: {
      selector: labels,
      ports: [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'line', port: 7, targetPort: 7007 },
      ],
    },
  });
  await stack.soon(
    'the upstream Pod Running',
    async () => {
      const p = await stack.get<Pod>(`/api/v1/namespaces/${APPS}/pods/upstream`);
      return p.status.phase === 'Running' ? true : undefined;
    },
    50_000,
  );
}

/**
 * An ingress TailscaleProxyGroup `ingress-pool` in namespace `default` (`replicas`, hostnames gw-0 …)
 * Ready with every device. Resolves with the group's config Secrets' names, replica 0 first.
 */
export async function startIngressGroup(stack: TailnetStack, replicas: number): Promise<string[]> {
  await stack.apply(`/apis/${GROUP}/namespaces/${APPS}/tailscaleproxygroups`, {
    apiVersion: GROUP,
    kind: 'TailscaleProxyGroup',
    metadata: { name: 'ingress-pool', namespace: APPS },
    spec: { type: 'ingress', tailnet: 'corp', replicas, tags: ['tag:k8s'], hostnamePrefix: 'gw' },
  });
  await stack.soon(
    `the ingress group Ready with ${replicas} devices`,
    async () => {
      const g = await stack.get<{
        status?: { conditions?: { type: string; status: string }[]; devices?: unknown[] };
      }>(`/apis/${GROUP}/namespaces/${APPS}/tailscaleproxygroups/ingress-pool`);
      const ready = g.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      return ready && g.status?.devices?.length === replicas ? g : undefined;
    },
    90_000,
  );
  const secrets = await stack.get<{ items: { metadata: { name: string } }[] }>(
    `/api/v1/namespaces/${CHART_NAMESPACE}/secrets?labelSelector=${encodeURIComponent('tailscale.com/secret-type=config')}`,
  );
  return secrets.items
    .map((s) => s.metadata.name)
    .filter((n) => n.startsWith('ingress-pool-'))
    .sort();
}

/**
 * What a TailscaleGateway's ingress needs in namespace `default`, without Envoy Gateway: the
 * {@link startUpstream} backend, a Service `envoy-default-eg` selecting the same Pod with the labels EG
 * puts on the Envoy Service of Gateway default/eg (port 80: the listener's), the Gateway `eg` (one HTTP
 * listener on 80; no controller accepts it, the operator only reads its listeners), and the
 * {@link startIngressGroup} of 2 replicas. Needs the stack with `echo` and `gatewayApi`. Resolves with
 * the group's config Secrets' names, replica 0 first.
 */
export async function startIngressBed(stack: TailnetStack): Promise<string[]> {
  await startUpstream(stack);
  await stack.apply(`/api/v1/namespaces/${APPS}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'envoy-default-eg',
      namespace: APPS,
      labels: {
        'gateway.envoyproxy.io/owning-gateway-name': 'eg',
        'gateway.envoyproxy.io/owning-gateway-namespace': APPS,
      },
    },
    spec: { selector: { app: 'upstream' }, ports: [{ name: 'http-80', port: 80, targetPort: 8080 }] },
  });
  await stack.apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/gateways`, {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: APPS },
    spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
  });
  return startIngressGroup(stack, 2);
}
