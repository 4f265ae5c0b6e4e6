/**
 * `helm install` of charts/tailscale-gateway on the one-node cluster with the operator image built
 * from this checkout, pointed at a Tailscale API on the node IP (the fake), and the wait until both
 * operator Pods are Ready. Shared by the chart-on-node tests and `npm run bench:node`.
 *
 * @module
 */
import { join } from 'node:path';
import { helm } from '../helm/index.ts';
import { REPO_ROOT } from '../support/binary.ts';
import type { NodeCluster } from './index.ts';

export const CHART_NAMESPACE = 'tailscale-gateway';

type PodList = { items: { status: { containerStatuses?: { ready: boolean }[] } }[] };

/** Polls `fn` every 250 ms until it returns a value; throws naming `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 50_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(250);
  }
}

/** Installs the chart as release `tsgw` and resolves with the milliseconds until 2/2 Pods are Ready. */
export async function installChart(
  cluster: NodeCluster,
  options: { repository: string; tag: string; tailscaleApiUrl: string; set?: string[] },
): Promise<number> {
  const started = performance.now();
  await helm([
    'install',
    'tsgw',
    join(REPO_ROOT, 'charts', 'tailscale-gateway'),
    `--kubeconfig=${cluster.kubeconfigPath}`,
    `--namespace=${CHART_NAMESPACE}`,
    '--create-namespace',
    `--set=image.repository=${options.repository}`,
    `--set=image.tag=${options.tag}`,
    '--set=image.pullPolicy=Never',
    `--set=operator.tailscaleApiUrl=${options.tailscaleApiUrl}`,
    ...(options.set ?? []).map((s) => `--set=${s}`),
  ]);
  await until(
    '2/2 operator Pods Ready',
    async () => {
      const pods = (await (
        await cluster.request(`/api/v1/namespaces/${CHART_NAMESPACE}/pods`)
      ).json()) as PodList;
      const ready = pods.items.filter((p) => p.status.containerStatuses?.every((c) => c.ready));
      return ready.length === 2 ? true : undefined;
    },
    90_000,
  );
  return Math.round(performance.now() - started);
}
