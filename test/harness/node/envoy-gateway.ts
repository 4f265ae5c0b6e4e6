/**
 * Envoy Gateway installed on the one-node cluster as users install it: `helm install` of EG's own
 * chart, with the Envoy and EG images of cluster-images.ts and the repository's
 * kind/envoy-gateway-values.yaml (tailscale-gateway as the extension server at its Service's DNS name).
 * EG then runs its certgen Job, its controller Deployment, the topology-injector webhook, and for each
 * Gateway an Envoy Deployment (Envoy plus the shutdown-manager sidecar) and Service.
 *
 * The chart is not pulled (`oci://docker.io/envoyproxy/gateway-helm`: no registry here) but taken from
 * the Go module zip of github.com/envoyproxy/gateway at the version the binary was built from
 * (charts/gateway-helm, with its crds subchart: Gateway API and EG CRDs). That tree holds
 * `values.tmpl.yaml`, from which EG's release renders `values.yaml` by substituting the image and its
 * pull policy, and a placeholder chart version; this does the same two things in a copy, nothing else.
 *
 * @module
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EG_NAMESPACE, envoyGatewayBinary, moduleDir } from '../envoy-gateway/index.ts';
import { helm } from '../helm/index.ts';
import { REPO_ROOT } from '../support/binary.ts';
import { until } from './chart.ts';
import type { NodeCluster } from './index.ts';

export { EG_NAMESPACE };
/** The chart's release name; its objects are named after `eg.fullname` (`eg-gateway-helm-…`). */
export const EG_RELEASE = 'eg';

/**
 * A copy of EG's chart with `values.yaml` rendered as EG's release renders it (`${GatewayImage}`,
 * `${GatewayImagePullPolicy}`) and the chart's version and appVersion set to the EG version.
 * Answers the directory; the caller removes it.
 */
export async function envoyGatewayChart(image: string): Promise<string> {
  const { egVersion } = await envoyGatewayBinary();
  const source = join(await moduleDir('github.com/envoyproxy/gateway', egVersion), 'charts', 'gateway-helm');
  const template = join(source, 'values.tmpl.yaml');
  if (!existsSync(template))
    throw new Error(`${template} is missing: the chart layout of envoyproxy/gateway ${egVersion} changed`);
  const dir = join(mkdtempSync(join(tmpdir(), 'tsgw-eg-chart-')), 'gateway-helm');
  // The module cache is read-only; the copy must not be.
  cpSync(source, dir, { recursive: true });
  Bun.spawnSync(['chmod', '-R', 'u+w', dir]);
  // envsubst's placeholders, `$` + `{Name}`.
  const placeholder = (name: string) => `$${'{'}${name}}`;
  const values = readFileSync(template, 'utf8')
    .replaceAll(placeholder('GatewayImage'), image)
    .replaceAll(placeholder('GatewayImagePullPolicy'), 'IfNotPresent');
  if (/\$\{\w+\}/.test(values)) throw new Error(`values.tmpl.yaml of EG ${egVersion} has a placeholder left`);
  writeFileSync(join(dir, 'values.yaml'), values);
  const chart = readFileSync(join(dir, 'Chart.yaml'), 'utf8')
    .replace(/^version: .*$/m, `version: ${egVersion}`)
    .replace(/^appVersion: .*$/m, `appVersion: "${egVersion}"`);
  writeFileSync(join(dir, 'Chart.yaml'), chart);
  return dir;
}

export interface InstalledEnvoyGateway {
  /** helm install (certgen Job included, as a pre-install hook) → the controller Pod Ready. */
  upMs: number;
  /** The controller Pod's name. */
  pod: string;
}

type PodList = {
  items: {
    metadata: { name: string };
    status: { containerStatuses?: { ready: boolean }[] };
  }[];
};

/**
 * `helm install eg` of {@link envoyGatewayChart} into envoy-gateway-system with
 * kind/envoy-gateway-values.yaml, and the wait until the controller Pod is Ready. The chart's own
 * defaults otherwise: topology injector on, one replica, the shutdown-manager image = EG's image.
 */
export async function installEnvoyGateway(
  cluster: NodeCluster,
  options: { image: string; set?: string[] },
): Promise<InstalledEnvoyGateway> {
  const chart = await envoyGatewayChart(options.image);
  try {
    const started = performance.now();
    await helm([
      'install',
      EG_RELEASE,
      chart,
      `--kubeconfig=${cluster.kubeconfigPath}`,
      `--namespace=${EG_NAMESPACE}`,
      '--create-namespace',
      `--values=${join(REPO_ROOT, 'kind', 'envoy-gateway-values.yaml')}`,
      ...(options.set ?? []).map((s) => `--set=${s}`),
    ]);
    const pod = await until(
      'the Envoy Gateway controller Pod Ready',
      async () => {
        const pods = (await (
          await cluster.request(
            `/api/v1/namespaces/${EG_NAMESPACE}/pods?labelSelector=${encodeURIComponent('control-plane=envoy-gateway')}`,
          )
        ).json()) as PodList;
        return pods.items.find((p) => p.status.containerStatuses?.every((c) => c.ready))?.metadata.name;
      },
      120_000,
    );
    return { upMs: Math.round(performance.now() - started), pod };
  } finally {
    rmSync(join(chart, '..'), { recursive: true, force: true });
  }
}
