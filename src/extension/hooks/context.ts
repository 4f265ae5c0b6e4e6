/**
 * What every hook gets besides its request: options fixed at start-up and a logger.
 *
 * @module
 */
import { OperatorError } from '../../errors.ts';
import type { EgressTargetOptions } from '../../proxy/egress-target.ts';

/** The part of pino the hooks use, so tests and callers can pass anything shaped like it. */
export interface HookLogger {
  warn(object: object, message: string): void;
  debug(object: object, message: string): void;
}

export interface HookOptions {
  egress: EgressTargetOptions;
  log: HookLogger;
}

const silent: HookLogger = { warn() {}, debug() {} };

export function hookOptions(options: {
  proxies?: boolean;
  clusterDomain?: string;
  log?: HookLogger;
}): HookOptions {
  const egress: EgressTargetOptions = { proxies: options.proxies ?? true };
  if (options.clusterDomain !== undefined) egress.clusterDomain = options.clusterDomain;
  return { egress, log: options.log ?? silent };
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
