/**
 * The whole data plane on the one-node cluster: the tailnet stack (test/harness/node/tailnet-stack.ts:
 * cluster, tailnet lab with the given devices, fake Tailscale API and control behind one origin, the
 * operator from its chart, the OAuth Secret and TailscaleTailnet `corp`) with the Envoy and EG images
 * on the node, EG from its chart, and a Gateway `eg` whose EnvoyProxy names our Envoy image, its Envoy
 * Pod Ready. Where every cluster → tailnet traffic test starts: test/node/traffic.test.ts,
 * https-upstream.test.ts, failover.test.ts, `npm run bench:failover`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { SYSTEM_CA_BUNDLE } from '../../../src/extension/xds/clusters.ts';
import type { DeviceOptions } from '../tailscale/tailnet-devices.ts';
import { buildDataPlaneImages, type DataPlaneImages } from './cluster-images.ts';
import { EG_NAMESPACE, installEnvoyGateway } from './envoy-gateway.ts';
import {
  APPS,
  GATEWAY_API,
  GROUP,
  type Pod,
  podReady,
  startTailnetStack,
  type TailnetStack,
} from './tailnet-stack.ts';

/** The label EG puts on the Envoy Deployment, Pods and Service of a Gateway. */
const OWNED_BY_EG = 'gateway.envoyproxy.io/owning-gateway-name=eg';

export interface DataPlane extends TailnetStack {
  /** The Envoy and EG images on the node (names, sizes, whether built this run). */
  images: DataPlaneImages;
  /** `helm install` of EG → its controller Ready. */
  egUpMs: number;
  /** Gateway `eg` applied → its Envoy Pod Ready. */
  envoyUpMs: number;
  /** The Envoy Pods EG runs for Gateway `eg`. */
  envoyPods(): Promise<Pod[]>;
  /** The Envoy Service's ClusterIP (the host's way in; kube-proxy routes it as for a Pod). */
  envoyAddress(): Promise<string>;
  /** The pids of the Envoy processes in this cluster's cgroups (other checkouts may run Envoy too). */
  envoyPids(): string[];
  /** The admin endpoint `path` (e.g. `/clusters`) of the Gateway's Envoy, read inside its netns. */
  envoyAdmin(path: string): string;
  /** TailscaleEndpoints `name` in APPS: `endpoints` on tailnet `corp`, through an egress proxy of its own. */
  applyEndpoints(name: string, endpoints: Record<string, unknown>[]): Promise<void>;
  /**
   * TailscaleGateway `eg-tailnets`: Gateway `eg` joined to tailnet `corp`; with `pathPrefix`, an egress
   * route generated for every endpoint under it (e.g. `/tailscale/{service}/`).
   */
  joinTailnet(pathPrefix?: string): Promise<void>;
  /** HTTPRoute `name` on Gateway `eg`: requests for `hostname` under `pathPrefix` go to TailscaleEndpoints `backend`. */
  routeToEndpoints(
    name: string,
    route: { hostname: string; pathPrefix: string; backend: string },
  ): Promise<void>;
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
  /** The echo server image on the node, for backends in Pods (test/harness/node/tailnet-stack.ts). */
  echo?: boolean;
}): Promise<DataPlane> {
  const images = await buildDataPlaneImages();
  let egUpMs = 0;
  const stack = await startTailnetStack({
    tag: options.tag,
    devices: options.devices,
    ...(options.echo ? { echo: true } : {}),
    images: [images.envoy.path, images.envoyGateway.path],
    // The operator first: its chart brings our CRDs, which EG's extensionManager names.
    afterChart: async ({ cluster }) => {
      egUpMs = (await installEnvoyGateway(cluster, { image: images.envoyGateway.name })).upMs;
    },
  });
  try {
    const { cluster, apply, get, pods, podLog } = stack;
    const envoyPods = () => pods(EG_NAMESPACE, OWNED_BY_EG);
    stack.explainAlso(async () => {
      const out: string[] = [];
      const tail = (log: string) => log.split('\n').slice(-40).join('\n');
      for (const p of await pods(EG_NAMESPACE, 'control-plane=envoy-gateway'))
        out.push(`--- EG ${p.metadata.name}\n${tail(await podLog(EG_NAMESPACE, p.metadata.name))}`);
      for (const p of await envoyPods())
        out.push(
          `--- Envoy ${p.metadata.name}\n${tail(await podLog(EG_NAMESPACE, p.metadata.name, 'envoy'))}`,
        );
      return out.join('\n');
    });
    const envoyAddress = async () => {
      const list = await get<{ items: { spec: { clusterIP: string } }[] }>(
        `/api/v1/namespaces/${EG_NAMESPACE}/services?labelSelector=${encodeURIComponent(OWNED_BY_EG)}`,
      );
      const svc = list.items[0];
      if (!svc) throw new Error('no Envoy Service for Gateway eg');
      return svc.spec.clusterIP;
    };
    const envoyPids = () =>
      Bun.spawnSync(['pgrep', '-x', 'envoy'])
        .stdout.toString()
        .trim()
        .split('\n')
        .filter((p) => p && readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${cluster.cgroup}/`));
    const envoyAdmin = (path: string) => {
      // The admin listens on the Pod's loopback only: enter the network namespace of the Envoy process.
      const pid = envoyPids()[0];
      if (!pid) throw new Error('no Envoy process in the cluster');
      const r = Bun.spawnSync(
        ['nsenter', '-t', pid, '-n', 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:19000${path}`],
        { stdout: 'pipe', stderr: 'pipe' },
      );
      if (r.exitCode !== 0) throw new Error(`Envoy admin ${path}: exit ${r.exitCode} ${r.stderr.toString()}`);
      return r.stdout.toString();
    };

    if (options.envoyTrustsLabCa)
      await apply(`/api/v1/namespaces/${EG_NAMESPACE}/configmaps`, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'lab-ca', namespace: EG_NAMESPACE },
        data: { 'ca-certificates.crt': stack.lab.caCert },
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
            // No load balancer on the node: the Service's ClusterIP is the way in.
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
    const gatewayAt = performance.now();
    await apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/gateways`, {
      apiVersion: GATEWAY_API,
      kind: 'Gateway',
      metadata: { name: 'eg', namespace: APPS },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
    });
    await stack.soon('the Envoy Pod Ready', async () => (await envoyPods()).find(podReady), 120_000);
    const envoyUpMs = Math.round(performance.now() - gatewayAt);

    const applyEndpoints: DataPlane['applyEndpoints'] = (name, endpoints) =>
      apply(`/apis/${GROUP}/namespaces/${APPS}/tailscaleendpoints`, {
        apiVersion: GROUP,
        kind: 'TailscaleEndpoints',
        metadata: { name, namespace: APPS },
        spec: { tailnet: 'corp', endpoints, proxy: { connectionType: 'egress', replicas: 1 } },
      });
    const joinTailnet: DataPlane['joinTailnet'] = (pathPrefix) =>
      apply(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`, {
        apiVersion: GROUP,
        kind: 'TailscaleGateway',
        metadata: { name: 'eg-tailnets', namespace: APPS },
        spec: {
          gatewayRef: { name: 'eg' },
          tailnets: [
            {
              name: 'corp',
              tailscaleTailnetRef: { name: 'corp' },
              ...(pathPrefix ? { routeGeneration: { egress: { pathPrefix } } } : {}),
            },
          ],
        },
      });
    const routeToEndpoints: DataPlane['routeToEndpoints'] = (name, route) =>
      apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/httproutes`, {
        apiVersion: GATEWAY_API,
        kind: 'HTTPRoute',
        metadata: { name, namespace: APPS },
        spec: {
          parentRefs: [{ name: 'eg' }],
          hostnames: [route.hostname],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: route.pathPrefix } }],
              backendRefs: [
                { group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: route.backend },
              ],
            },
          ],
        },
      });
    return Object.assign(stack, {
      images,
      egUpMs,
      envoyUpMs,
      envoyPods,
      envoyAddress,
      envoyPids,
      envoyAdmin,
      applyEndpoints,
      joinTailnet,
      routeToEndpoints,
    });
  } catch (error) {
    await stack.stop();
    throw error;
  }
}
