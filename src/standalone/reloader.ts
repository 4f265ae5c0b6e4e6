/**
 * One re-read of the resources directory and everything that follows from it: the store the hooks
 * read, Envoy Gateway's directory, readiness, and the log. Standalone re-reads on every file event and
 * every 30 s, and a person reads the log to learn what changed, so the log says only that: each
 * problem once when it appears and once when it clears, and `resources loaded` only when what is
 * served (or the problem list) changed; a re-read that changes nothing logs at debug.
 *
 * Problems do not make the process not-ready: the valid documents are served (and an invalid edit
 * keeps its last good version), so taking the extension server away from Envoy Gateway, which calls it
 * fail-closed, would turn one bad document into an outage. Instead `/readyz` lists every problem under
 * the `resources` component.
 *
 * @module
 */
import { OperatorError } from '../errors.ts';
import type { MemoryResourceStore } from '../model/resource-store.ts';
import type { Logger } from '../observability/logger.ts';
import type { ComponentHandle } from '../observability/readiness.ts';
import { renderEnvoyGatewayResources, writeEnvoyGatewayResources } from './envoy-gateway-resources.ts';
import {
  formatProblem,
  loadResourceDirectory,
  plural,
  type ResourceDirectory,
  type ResourceProblem,
} from './resource-directory.ts';

export interface ReloaderOptions {
  dir: string;
  /** Where Envoy Gateway's file provider reads from; nothing is written when omitted. */
  envoyGatewayDir?: string | undefined;
  store: MemoryResourceStore;
  log: Logger;
  /** The `resources` readiness component. */
  readiness: ComponentHandle;
  /** Called after every successful re-read (the resource index is fresh). */
  onFresh?: () => void;
}

export interface Reloader {
  /** Re-reads now, or once more right after the re-read in progress. */
  reload(reason: string): Promise<void>;
  /** The last good read, if any. */
  current(): ResourceDirectory | undefined;
}

/** What is served, for telling a re-read that changed something from one that did not. */
function servedDigest(directory: ResourceDirectory): string {
  return JSON.stringify([
    directory.resources.map((r) => [r.file, r.document, r.resource]),
    directory.ignored.map((r) => [r.file, r.document, r.object]),
  ]);
}

export function createReloader(options: ReloaderOptions): Reloader {
  const { dir, envoyGatewayDir, store, log, readiness } = options;
  let current: ResourceDirectory | undefined;
  let currentDigest: string | undefined;
  let reported = new Map<string, ResourceProblem>();
  let envoyGatewayError: string | undefined;
  let readError: string | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const reportProblems = (next: ResourceDirectory): boolean => {
    const lines = new Map(next.problems.map((p) => [formatProblem(p), p]));
    let changed = false;
    for (const [line, problem] of lines) {
      if (reported.has(line)) continue;
      changed = true;
      const { file, document, kind, namespace, name, field } = problem;
      log.warn({ file, document, kind, namespace, name, field }, line);
    }
    for (const [line, problem] of reported) {
      if (lines.has(line)) continue;
      changed = true;
      log.info({ file: problem.file, problem: line }, 'resource problem cleared');
    }
    reported = lines;
    return changed;
  };

  const writeEnvoyGateway = async (next: ResourceDirectory) => {
    if (envoyGatewayDir === undefined) return;
    try {
      const text = renderEnvoyGatewayResources(next, store.snapshot(), dir);
      if (await writeEnvoyGatewayResources(envoyGatewayDir, text))
        log.info({ dir: envoyGatewayDir }, 'Envoy Gateway resources written');
      if (envoyGatewayError !== undefined)
        log.info({ dir: envoyGatewayDir }, 'Envoy Gateway resources directory writable again');
      envoyGatewayError = undefined;
    } catch (err) {
      const error = OperatorError.from(err);
      if (error.message !== envoyGatewayError)
        log.error(
          { err: error, dir: envoyGatewayDir },
          'cannot write Envoy Gateway resources; retrying on the next change or rescan',
        );
      envoyGatewayError = error.message;
    }
  };

  const once = async (reason: string) => {
    const next = await loadResourceDirectory(dir, current);
    const digest = servedDigest(next);
    const problemsChanged = reportProblems(next);
    const initial = current === undefined;
    const servedChanged = digest !== currentDigest;
    current = next;
    currentDigest = digest;
    // Replace before writing Envoy Gateway's file: the translation the new file starts calls our hooks,
    // which must already see the new state.
    if (servedChanged) store.replace(next.resources.map(({ resource }) => resource));
    await writeEnvoyGateway(next);
    options.onFresh?.();
    readiness.set(
      true,
      `${plural(next.resources.length, 'resource')}, ${plural(next.problems.length, 'problem')}`,
      next.problems.map(formatProblem),
    );
    const kinds: Record<string, number> = {};
    for (const { resource } of next.resources) kinds[resource.kind] = (kinds[resource.kind] ?? 0) + 1;
    const summary = {
      dir,
      reason,
      resources: next.resources.length,
      kinds,
      problems: next.problems.length,
      ignored: next.ignored.length,
      initial,
    };
    if (initial || servedChanged || problemsChanged) log.info(summary, 'resources loaded');
    else log.debug(summary, 'resources unchanged');
  };

  const loop = async (reason: string) => {
    try {
      let why = reason;
      do {
        again = false;
        await once(why);
        why = 'changed during the previous read';
      } while (again);
      if (readError !== undefined) log.info({ dir }, 'resources directory readable again');
      readError = undefined;
    } catch (err) {
      const error = OperatorError.from(err);
      // Once per distinct failure, like problems: a missing directory would otherwise repeat every rescan.
      if (error.message !== readError)
        log.error({ err: error, dir }, 'cannot read resources directory; keeping the last good state');
      readError = error.message;
      if (!current) readiness.set(false, error.message);
    } finally {
      running = undefined;
    }
  };

  return {
    reload(reason) {
      if (running) {
        again = true;
        return running;
      }
      running = loop(reason);
      return running;
    },
    current: () => current,
  };
}
