/**
 * The delay policy behind `addRateLimited`: the larger of a per-key exponential backoff and a shared
 * token bucket, as client-go's default controller rate limiter.
 *
 * The per-key part keeps one broken object from being retried hot; the bucket caps the total retry rate
 * when many objects fail at once (an outage of the Tailscale API fails every key together), which the
 * per-key part alone would let through as a burst every backoff step.
 *
 * @module
 */

import { type Clock, systemClock } from '../time/clock.ts';

export interface RateLimiter {
  /** How long to wait before retrying `key`; counts as one more failure of `key`. */
  when(key: string): number;
  /** Resets `key`'s failure count after a success. */
  forget(key: string): void;
  /** Failures of `key` since it was last forgotten. */
  numRequeues(key: string): number;
}

export interface RateLimiterOptions {
  /**
   * First per-key retry delay; default 1 s. client-go uses 5 ms, which suits calls that only reach the
   * API server; ours also reach the Tailscale API, which rate-limits per tailnet.
   */
  baseDelayMs?: number;
  /** Per-key delay cap; default 5 min (client-go: 1000 s), so a fixed upstream is noticed soon. */
  maxDelayMs?: number;
  /** Sustained retries per second across all keys; default 10, as client-go. */
  qps?: number;
  /** Retries allowed at once before the bucket throttles; default 100, as client-go. */
  burst?: number;
  /** Default: the system clock. */
  clock?: Clock;
}

/** client-go's `DefaultControllerRateLimiter` with our defaults (see {@link RateLimiterOptions}). */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const {
    baseDelayMs = 1_000,
    maxDelayMs = 5 * 60_000,
    qps = 10,
    burst = 100,
    clock = systemClock,
  } = options;
  const failures = new Map<string, number>();
  let tokens = burst;
  let refilledAt = clock.now();

  /**
   * Reserves a token and returns how long until it is really available: like Go's
   * `rate.Limiter.Reserve().Delay()`, tokens may go negative, so later callers queue behind earlier
   * ones instead of all waking at the same instant.
   */
  const bucketDelay = (): number => {
    if (qps <= 0) return 0;
    const now = clock.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * qps);
    refilledAt = now;
    tokens -= 1;
    return tokens >= 0 ? 0 : Math.ceil((-tokens / qps) * 1000);
  };

  const perKeyDelay = (key: string): number => {
    const exponent = failures.get(key) ?? 0;
    failures.set(key, exponent + 1);
    // 2 ** exponent overflows to Infinity long before it matters; min() then caps it.
    return Math.min(maxDelayMs, baseDelayMs * 2 ** exponent);
  };

  return {
    when: (key) => Math.max(perKeyDelay(key), bucketDelay()),
    forget: (key) => {
      failures.delete(key);
    },
    numRequeues: (key) => failures.get(key) ?? 0,
  };
}
