/**
 * Time as a dependency. The work queue, informer, controller and leader elector all take a `Clock` so
 * their tests can drive backoff, delays and lease expiry with a fake clock instead of sleeping, which
 * keeps the unit tests deterministic and free of wall-clock assertions.
 *
 * @module
 */

/** An opaque timer handle; only ever passed back to the clock that made it. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds since the epoch (the fake clock starts wherever the test says). */
  now(): number;
  /** Runs `fn` once after `ms`; real timers are unref'd so a pending delay never keeps a process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The wall clock and the runtime's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref?.();
    return timer as unknown as TimerHandle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as unknown as ReturnType<typeof setTimeout>);
  },
};

/**
 * Resolves after `ms` on `clock`, or early (without rejecting) when `signal` aborts: every caller in
 * this package re-checks its own stop flag after a sleep, so a rejection would only add noise.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
