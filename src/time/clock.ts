/**
 * Time as a dependency, the one seam every part of the operator waits through: the work queue,
 * informers, controllers, leader election, coordination and the Tailscale client (backoff, Retry-After,
 * token expiry, its write rate limit). Tests drive backoff, delays and lease expiry with the manual clock
 * (`fake-clock.ts`) instead of sleeping, so they stay deterministic and free of wall-clock assertions.
 *
 * Two ways to wait, named apart because callers need both: {@link sleep} resolves early when its signal
 * aborts (loops that re-check their own stop flag), {@link sleepOrCancel} rejects with a `Canceled`
 * OperatorError (a call whose caller must learn that it was cut short).
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

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
    return timer;
  },
  clearTimeout(handle) {
    // A handle this clock made is the runtime's timer object.
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/**
 * Waits `ms` on `clock`; `onAbort` settles the promise instead when `signal` aborts first. The listener
 * goes on before the timer is set, so an abort while the timer is being set still wins.
 */
function wait(
  clock: Clock,
  ms: number,
  signal: AbortSignal | undefined,
  onAbort: (resolve: () => void, reject: (error: unknown) => void) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let timer: TimerHandle | undefined;
    let done = false;
    const aborted = () => {
      if (done) return;
      done = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      onAbort(resolve, reject);
    };
    if (signal?.aborted) {
      aborted();
      return;
    }
    signal?.addEventListener('abort', aborted, { once: true });
    timer = clock.setTimeout(() => {
      if (done) return;
      done = true;
      signal?.removeEventListener('abort', aborted);
      resolve();
    }, ms);
    if (done) clock.clearTimeout(timer);
  });
}

/**
 * Resolves after `ms` on `clock`, or early (without rejecting) when `signal` aborts: for loops that
 * re-check their own stop flag after a sleep, where a rejection would only add noise.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return wait(clock, ms, signal, (resolve) => resolve());
}

/**
 * Resolves after `ms` on `clock`; rejects with a `Canceled` OperatorError (`<what> canceled`) when
 * `signal` aborts first: for a wait inside a call, whose caller must not mistake the abort for success.
 */
export function sleepOrCancel(clock: Clock, ms: number, signal?: AbortSignal, what = 'wait'): Promise<void> {
  return wait(clock, ms, signal, (_, reject) => reject(canceled(signal!, what)));
}

/** The error for a wait or call cut short by the caller's signal. */
export function canceled(signal: AbortSignal, what = 'wait'): OperatorError {
  return new OperatorError('Canceled', `${what} canceled`, { cause: signal.reason });
}
