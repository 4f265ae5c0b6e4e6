/**
 * Capped exponential backoff, the one policy every retry loop of the operator draws its waits from: the
 * informers' list/watch restarts, waiting for the API server and CRDs at start-up, resolving the
 * operator identity, the lookup of served Gateway API kinds, and the Tailscale client's retries. Each loop keeps its own
 * jitter (full jitter for the Tailscale API, 50–100 % for watches, ±20 % at start-up), so the
 * jitter is part of the policy rather than a copy of the formula per loop.
 *
 * @module
 */

import { type Clock, sleep, systemClock } from './clock.ts';

export interface BackoffPolicy {
  /** The first wait (before jitter), in milliseconds. */
  baseMs: number;
  /** No wait is longer than this (before jitter), in milliseconds. */
  capMs: number;
  /**
   * The range each wait is drawn from, as fractions `[low, high)` of the exponential step: `[0, 1]` is
   * full jitter, `[0.5, 1]` 50–100 %, absent means no jitter. A fleet that failed together (one API
   * outage) then does not retry in step.
   */
  jitter?: readonly [low: number, high: number];
}

/** Full jitter: anywhere from zero up to the step (what AWS's backoff article recommends for APIs). */
export const FULL_JITTER: readonly [number, number] = [0, 1];

/**
 * The wait before retry number `retry` (0 for the first): `min(capMs, baseMs * 2^retry)`, scaled by a
 * factor drawn from the policy's jitter range, in whole milliseconds. `random` returns a number in
 * `[0, 1)`.
 */
export function backoffDelay(
  retry: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  // 2 ** retry overflows to Infinity long before it matters; min() then caps it.
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, retry));
  const [low, high] = policy.jitter ?? [1, 1];
  return Math.floor(step * (low + random() * (high - low)));
}

export interface Backoff {
  /** The next wait: one more failure counted. */
  next(): number;
  /** Sleeps the next wait on the clock, resolving early when `signal` aborts; returns the wait. */
  wait(signal?: AbortSignal): Promise<number>;
  /** Failures counted since the last reset. */
  readonly failures: number;
  /** After a success: the next wait is the first again. */
  reset(): void;
}

/** One retry loop's backoff state over {@link backoffDelay}. */
export function createBackoff(
  policy: BackoffPolicy,
  options: { clock?: Clock; random?: () => number } = {},
): Backoff {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  let failures = 0;
  const next = () => backoffDelay(failures++, policy, random);
  return {
    next,
    async wait(signal) {
      const delay = next();
      await sleep(clock, delay, signal);
      return delay;
    },
    get failures() {
      return failures;
    },
    reset() {
      failures = 0;
    },
  };
}
