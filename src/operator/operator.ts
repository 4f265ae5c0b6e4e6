/**
 * `run`: the operator in a cluster. Today it connects to the API server, checks that our CRDs are
 * installed and Established, and serves the HTTP surface; the controllers and the extension server
 * join here as their issues land.
 *
 * @module
 */
import { renderCrds } from '../api/index.ts';
import { startRuntime } from '../app/runtime.ts';
import type { Config } from '../config/schema.ts';
import { OperatorError } from '../errors.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import { createKubeClient, type KubeClient } from '../kube/index.ts';
import type { Logger } from '../observability/logger.ts';
import type { ComponentHandle } from '../observability/readiness.ts';
import { createMemoryResourceStore } from '../store/resource-store.ts';

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export async function runOperator(config: Config): Promise<number> {
  // A kubeconfig that cannot be loaded is a usage error; report it before binding any port.
  const kube = createKubeClient(config.kubeconfig ? { kubeconfig: config.kubeconfig } : {});
  // Placeholder until the informers fill the store: an empty, synced store keeps readiness as it was.
  const store = createMemoryResourceStore();
  store.replace([]);
  const runtime = await startRuntime({
    config,
    mode: 'run',
    hooks: (log) => createExtensionHooks({ log }),
    store,
  });
  const { log, readiness, shutdown } = runtime;
  const stop = new AbortController();
  shutdown.on('stop-work', 'api-check', () => stop.abort());
  void waitForApi(
    kube,
    readiness.component('kubernetes'),
    log.child({ component: 'kubernetes' }),
    stop.signal,
  );
  return shutdown.done;
}

/**
 * Retries with capped exponential backoff until the API server answers and every CRD is Established,
 * so a pod started before its CRDs were applied becomes ready by itself once they are.
 */
async function waitForApi(
  kube: KubeClient,
  ready: ComponentHandle,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  let delay = RETRY_MIN_MS;
  while (!signal.aborted) {
    try {
      const version = await kube.request<{ gitVersion?: string }>('/version', { signal });
      const missing = await missingCrds(kube, signal);
      if (missing.length === 0) {
        ready.set(true, `API server ${version.gitVersion ?? 'unknown version'}; CRDs established`);
        log.info(
          { server: kube.server, version: version.gitVersion },
          'connected to the API server; CRDs established',
        );
        return;
      }
      ready.set(false, `CRDs not established: ${missing.join(', ')}`);
      log.warn(
        { missing },
        'CRDs not installed or not established; install them with `tailscale-gateway crds | kubectl apply --server-side -f -`',
      );
    } catch (err) {
      if (signal.aborted) return;
      const error = OperatorError.from(err);
      ready.set(false, error.message);
      log.warn(
        { err: { code: error.code, message: error.message }, retryInMs: delay },
        'API server not reachable',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delay * (0.8 + Math.random() * 0.4)));
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

async function missingCrds(kube: KubeClient, signal: AbortSignal): Promise<string[]> {
  const names = renderCrds().map((crd) => crd.metadata.name);
  const missing: string[] = [];
  for (const name of names) {
    try {
      const crd = await kube.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
        { signal },
      );
      const established = crd.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      if (!established) missing.push(name);
    } catch (err) {
      if (OperatorError.from(err).code !== 'NotFound') throw err;
      missing.push(name);
    }
  }
  return missing;
}
