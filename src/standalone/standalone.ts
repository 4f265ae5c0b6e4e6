/**
 * Standalone mode: no cluster. The resources come from a directory of YAML files, re-read when a file
 * changes (and every `rescanMs` as a safety net for filesystems without change events), and the
 * extension server and HTTP surface serve them. With `--envoy-gateway-resources`, Envoy Gateway's own
 * standalone mode reads a directory this process writes (envoy-gateway-resources.ts).
 *
 * @module
 */
import { watch } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { startRuntime } from '../app/runtime.ts';
import type { Config } from '../config/schema.ts';
import { OperatorError } from '../errors.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import { createMemoryResourceStore } from '../model/resource-store.ts';
import type { Logger } from '../observability/logger.ts';
import { checkEnvoyGatewayDirectory } from './envoy-gateway-resources.ts';
import { createReloader } from './reloader.ts';
import { listYamlFiles } from './resource-directory.ts';

const RESCAN_MS = 30_000;
const DEBOUNCE_MS = 200;

export async function runStandalone(config: Config): Promise<number> {
  const dir = config.resources!;
  const envoyGatewayDir = config.envoyGatewayResources;
  // Fail before binding any port when a directory is wrong: it is a usage error (exit 2).
  await listYamlFiles(dir);
  if (envoyGatewayDir !== undefined) {
    checkEnvoyGatewayDirectory(dir, envoyGatewayDir);
    // Envoy Gateway skips a configured path that does not exist when it starts, for good.
    await mkdir(envoyGatewayDir, { recursive: true }).catch((cause) => {
      throw new OperatorError(
        'Invalid',
        `--envoy-gateway-resources ${envoyGatewayDir} cannot be created: ${cause.code ?? cause}`,
        { cause, field: 'envoyGatewayResources' },
      );
    });
  }
  const store = createMemoryResourceStore();
  // No cluster, so no proxies: clusters point at externalTarget or the tailnet address directly.
  const hooks = (log: Logger) => createExtensionHooks({ proxies: false, log });
  const runtime = await startRuntime({ config, mode: 'standalone', hooks, store });
  const { log, readiness, health, shutdown } = runtime;
  health.track('resource-index');
  const reloader = createReloader({
    dir,
    envoyGatewayDir,
    store,
    log,
    readiness: readiness.component('resources'),
    onFresh: () => health.markFresh('resource-index'),
  });

  // Watch before the first read, so a change made while it runs is not missed.
  let debounce: ReturnType<typeof setTimeout> | undefined;
  const watcher = watch(dir, { recursive: true }, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reloader.reload('file changed'), DEBOUNCE_MS);
  });
  await reloader.reload('start');
  const rescan = setInterval(() => void reloader.reload('periodic rescan'), RESCAN_MS);
  shutdown.on('stop-work', 'resource-watch', () => {
    watcher.close();
    clearInterval(rescan);
    clearTimeout(debounce);
  });
  return shutdown.done;
}
