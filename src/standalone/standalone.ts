/**
 * Standalone mode: no cluster. The resources come from a directory of YAML files, re-read when a file
 * changes (and every `rescanMs` as a safety net for filesystems without change events), and the
 * extension server and HTTP surface serve them.
 *
 * @module
 */
import { watch } from 'node:fs';
import { startRuntime } from '../app/runtime.ts';
import type { Config } from '../config/schema.ts';
import { OperatorError } from '../errors.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import type { Logger } from '../observability/logger.ts';
import { createMemoryResourceStore } from '../store/resource-store.ts';
import {
  formatProblem,
  listYamlFiles,
  loadResourceDirectory,
  type ResourceDirectory,
} from './resource-directory.ts';

const RESCAN_MS = 30_000;
const DEBOUNCE_MS = 200;

export async function runStandalone(config: Config): Promise<number> {
  const dir = config.resources!;
  // Fail before binding any port when the directory is wrong: it is a usage error (exit 2).
  await listYamlFiles(dir);
  const store = createMemoryResourceStore();
  // No cluster, so no proxies: clusters point at externalTarget or the tailnet address directly.
  const hooks = (log: Logger) => createExtensionHooks({ proxies: false, log });
  const runtime = await startRuntime({ config, mode: 'standalone', hooks, store });
  const { log, readiness, health, shutdown } = runtime;
  const resourcesReady = readiness.component('resources');
  health.track('resource-index');

  let current: ResourceDirectory | undefined;
  let reloading = false;
  let again = false;
  const reload = async (reason: string) => {
    if (reloading) {
      again = true;
      return;
    }
    reloading = true;
    try {
      do {
        again = false;
        const next = await loadResourceDirectory(dir, current);
        report(next, current, reason);
        current = next;
        store.replace(next.resources.map(({ resource }) => resource));
        health.markFresh('resource-index');
        resourcesReady.set(true, `${next.resources.length} resources, ${next.problems.length} problems`);
      } while (again);
    } catch (err) {
      const error = OperatorError.from(err);
      log.error({ err: error, dir }, 'cannot read resources directory; keeping the last good state');
      if (!current) resourcesReady.set(false, error.message);
    } finally {
      reloading = false;
    }
  };

  const report = (next: ResourceDirectory, previous: ResourceDirectory | undefined, reason: string) => {
    for (const problem of next.problems)
      log.warn(
        { file: problem.file, document: problem.document, field: problem.field },
        formatProblem(problem),
      );
    const kinds: Record<string, number> = {};
    for (const { resource } of next.resources) kinds[resource.kind] = (kinds[resource.kind] ?? 0) + 1;
    log.info(
      {
        dir,
        reason,
        resources: next.resources.length,
        kinds,
        problems: next.problems.length,
        ignored: next.ignored.length,
        initial: previous === undefined,
      },
      'resources loaded',
    );
  };

  await reload('start');

  let debounce: ReturnType<typeof setTimeout> | undefined;
  const watcher = watch(dir, { recursive: true }, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reload('file changed'), DEBOUNCE_MS);
  });
  const rescan = setInterval(() => void reload('periodic rescan'), RESCAN_MS);
  shutdown.on('stop-work', 'resource-watch', () => {
    watcher.close();
    clearInterval(rescan);
    clearTimeout(debounce);
  });
  return shutdown.done;
}
