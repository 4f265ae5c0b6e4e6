/**
 * What every hook gets besides its request: options fixed at start-up and a logger.
 *
 * @module
 */
import { OperatorError } from '../../errors.ts';
import type { EgressTargetOptions } from '../../model/egress-target.ts';

/** The part of pino the hooks use, so tests and callers can pass anything shaped like it. */
export interface HookLogger {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
  debug(object: object, message: string): void;
}

/** Something a hook could not do as the resources say, keyed so the next call can tell it is the same. */
export interface HookProblem {
  key: string;
  fields: object;
  message: string;
}

/**
 * Problems logged once when they appear and once when they clear, not on every call: Envoy Gateway
 * calls the hooks for every virtual host and cluster of every translation, so a problem that lasts
 * would otherwise repeat thousands of times and bury everything else. A scope (a virtual host, a
 * cluster) reports its full set of problems on each call; only scopes with problems are remembered.
 */
export interface ProblemLog {
  report(scope: string, problems: readonly HookProblem[]): void;
}

/** Scopes remembered at most; past it the oldest is forgotten (its problems would be logged again). */
const MAX_SCOPES = 10_000;

export function createProblemLog(log: HookLogger): ProblemLog {
  const current = new Map<string, Map<string, HookProblem>>();
  return {
    report(scope, problems) {
      const before = current.get(scope);
      const now = new Map(problems.map((p) => [p.key, p]));
      for (const [key, problem] of now)
        if (!before?.has(key)) log.warn({ ...problem.fields }, problem.message);
      for (const [key, problem] of before ?? [])
        if (!now.has(key)) log.info({ ...problem.fields }, `cleared: ${problem.message}`);
      current.delete(scope);
      if (now.size === 0) return;
      current.set(scope, now);
      if (current.size > MAX_SCOPES) current.delete(current.keys().next().value!);
    },
  };
}

export interface HookOptions {
  egress: EgressTargetOptions;
  log: HookLogger;
  problems: ProblemLog;
}

const silent: HookLogger = { warn() {}, info() {}, debug() {} };

export function hookOptions(options: {
  proxies?: boolean;
  clusterDomain?: string;
  log?: HookLogger;
}): HookOptions {
  const egress: EgressTargetOptions = { proxies: options.proxies ?? true };
  if (options.clusterDomain !== undefined) egress.clusterDomain = options.clusterDomain;
  const log = options.log ?? silent;
  return { egress, log, problems: createProblemLog(log) };
}

/**
 * Runs a hook body so that anything but an `OperatorError` leaves it as `Internal`, and an `Invalid`
 * keeps its message: the server maps codes to gRPC statuses and must not guess.
 */
export function guarded<T>(hook: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    if (error instanceof OperatorError) throw error;
    throw new OperatorError(
      'Internal',
      `${hook}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
}
