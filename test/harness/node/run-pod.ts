/**
 * A Pod run to completion on the one-node cluster: how the node tests look from inside the cluster
 * (a request from a Pod, the cluster DNS, what an image holds). One container, `restartPolicy: Never`,
 * the image as imported on the node (`imagePullPolicy: Never`: there is no registry).
 *
 * @module
 */
import { until } from './chart.ts';
import type { NodeCluster } from './index.ts';

export interface PodRun {
  /** `Succeeded` or `Failed`. */
  phase: string;
  /** The container's log, trimmed. */
  log: string;
}

type PodStatus = { status?: { phase?: string } };

/** Creates Pod `name` running `command` in `image` and resolves once it has Succeeded or Failed. */
export async function runPod(
  cluster: NodeCluster,
  pod: { name: string; image: string; command: string[]; namespace?: string; timeoutMs?: number },
): Promise<PodRun> {
  const namespace = pod.namespace ?? 'default';
  const path = `/api/v1/namespaces/${namespace}/pods`;
  const created = await cluster.request(path, {
    method: 'POST',
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace },
      spec: {
        restartPolicy: 'Never',
        containers: [{ name: 'main', image: pod.image, imagePullPolicy: 'Never', command: pod.command }],
      },
    },
  });
  if (!created.ok) throw new Error(`POST ${path} (${pod.name}): ${created.status} ${await created.text()}`);
  let last: PodStatus = {};
  const done = await until(
    `Pod ${pod.name} done`,
    async () => {
      last = (await (await cluster.request(`${path}/${pod.name}`)).json()) as PodStatus;
      const phase = last.status?.phase;
      return phase === 'Succeeded' || phase === 'Failed' ? phase : undefined;
    },
    pod.timeoutMs ?? 40_000,
  ).catch((error) => {
    throw new Error(`${error}: ${JSON.stringify(last.status)}`);
  });
  const log = await (await cluster.request(`${path}/${pod.name}/log`)).text();
  return { phase: done, log: log.trim() };
}
