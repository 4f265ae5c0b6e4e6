/**
 * Graceful shutdown in the order that keeps traffic flowing: readiness goes false first (so endpoints
 * drop this pod and Envoy Gateway stops choosing it), then background work stops (queues drain, informers
 * stop, the Lease is released), then servers close (in-flight streams finish), then the process exits.
 * A hard deadline bounds the whole sequence so a stuck step cannot outlive terminationGracePeriodSeconds.
 *
 * @module
 */
import type { Logger } from '../observability/logger.ts';

/** Steps run in this order; steps within one phase run concurrently. */
export const SHUTDOWN_PHASES = ['not-ready', 'stop-work', 'close-servers', 'flush'] as const;
export type ShutdownPhase = (typeof SHUTDOWN_PHASES)[number];

export interface ShutdownOptions {
  log: Logger;
  /** Hard deadline for the whole sequence, in milliseconds. */
  timeoutMs: number;
  /** Pause after `not-ready` before stopping work, in milliseconds. Default 0. */
  delayMs?: number;
  /** Called when the sequence ends; `code` is 0 after a clean run, 1 after a failed step or the deadline. */
  exit: (code: number) => void;
  /** Injected for tests. Default: global `setTimeout`. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  /** Milliseconds clock, injected for tests. Default: `performance.now`. */
  now?: () => number;
}

/**
 * A repeat of the first signal within this long is its echo, not a second signal: a parent that
 * forwards signals (npm runs `npm start` so) delivers Ctrl-C a second time, milliseconds after the
 * terminal did. A person pressing Ctrl-C again to force the exit is slower than that.
 */
export const SIGNAL_ECHO_MS = 1_000;

export interface Shutdown {
  /** Registers a step for a phase. */
  on(phase: ShutdownPhase, name: string, step: () => Promise<void> | void): void;
  /** Starts the sequence once; later calls return the same promise. */
  trigger(reason: string): Promise<number>;
  /** Resolves with the exit code once the sequence has finished. */
  readonly done: Promise<number>;
  /**
   * Installs SIGTERM and SIGINT handlers; a second signal during shutdown exits at once, except the
   * same signal within `SIGNAL_ECHO_MS` of the first.
   */
  installSignalHandlers(target?: Pick<NodeJS.Process, 'on' | 'off'>): () => void;
}

export function createShutdown(options: ShutdownOptions): Shutdown {
  const steps = new Map<ShutdownPhase, { name: string; step: () => Promise<void> | void }[]>(
    SHUTDOWN_PHASES.map((phase) => [phase, []]),
  );
  const setTimer = options.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms));
  const now = options.now ?? (() => performance.now());
  let running: Promise<number> | undefined;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });

  const sequence = async (): Promise<number> => {
    let code = 0;
    for (const phase of SHUTDOWN_PHASES) {
      const results = await Promise.allSettled(
        steps.get(phase)!.map(async ({ name, step }) => {
          try {
            await step();
          } catch (err) {
            options.log.error({ err, phase, step: name }, 'shutdown step failed');
            throw err;
          }
        }),
      );
      if (results.some((r) => r.status === 'rejected')) code = 1;
      if (phase === 'not-ready' && (options.delayMs ?? 0) > 0) {
        options.log.info({ delayMs: options.delayMs }, 'waiting before stopping work');
        await new Promise<void>((resolve) => setTimer(resolve, options.delayMs!));
      }
    }
    return code;
  };

  const trigger = (reason: string): Promise<number> => {
    if (running) return running;
    options.log.info({ reason, timeoutMs: options.timeoutMs }, 'shutting down');
    const deadline = new Promise<number>((resolve) => {
      const timer = setTimer(() => {
        options.log.error({ timeoutMs: options.timeoutMs }, 'shutdown deadline passed; exiting now');
        resolve(1);
      }, options.timeoutMs) as { unref?: () => void } | undefined;
      timer?.unref?.();
    });
    running = Promise.race([sequence(), deadline]).then((code) => {
      options.log.info({ code }, 'shutdown complete');
      resolveDone(code);
      options.exit(code);
      return code;
    });
    return running;
  };

  return {
    on(phase, name, step) {
      steps.get(phase)!.push({ name, step });
    },
    trigger,
    done,
    installSignalHandlers(target = process) {
      let first: { signal: NodeJS.Signals; at: number } | undefined;
      const handler = (signal: NodeJS.Signals) => {
        const at = now();
        if (running && first?.signal === signal && at - first.at < SIGNAL_ECHO_MS) {
          options.log.debug({ signal }, 'repeated signal ignored (forwarded by a parent process)');
          return;
        }
        first ??= { signal, at };
        if (running) {
          options.log.warn({ signal }, 'second signal during shutdown; exiting now');
          options.exit(1);
          return;
        }
        void trigger(signal);
      };
      target.on('SIGTERM', handler);
      target.on('SIGINT', handler);
      return () => {
        target.off('SIGTERM', handler);
        target.off('SIGINT', handler);
      };
    },
  };
}
