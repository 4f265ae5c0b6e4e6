/**
 * Time as the Tailscale client sees it. Backoff, Retry-After, token expiry and the write rate limit all
 * read and wait through this one seam, so tests run a 429 storm or an hour of token lifetime instantly
 * and assert on the waits that were asked for instead of on wall-clock time.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with a `Canceled` OperatorError when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real time. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms, signal) {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(canceled(signal));
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(canceled(signal!));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
};

/** The error for a wait or call cut short by the caller's signal. */
export function canceled(signal: AbortSignal): OperatorError {
  return new OperatorError('Canceled', 'Tailscale API call canceled', { cause: signal.reason });
}

export interface ManualClock extends Clock {
  /** Every wait asked for, in ms, in order. */
  readonly sleeps: number[];
  advance(ms: number): void;
}

/**
 * A clock for tests: `sleep` returns at once after moving time forward by the requested amount, so a
 * retry storm with 30 s waits finishes in microseconds and the requested waits can be asserted.
 */
export function manualClock(start = Date.UTC(2026, 0, 1)): ManualClock {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance(ms) {
      now += ms;
    },
    async sleep(ms, signal) {
      if (signal?.aborted) throw canceled(signal);
      sleeps.push(ms);
      now += ms;
    },
  };
}
