/**
 * Retry timing for the Tailscale API. Tailscale documents no rate limits (tailscale/tailscale#14328), so
 * the client has to be polite on its own: capped exponential backoff with full jitter spreads out a fleet
 * of reconcilers that all failed at once, and a server's `Retry-After` wins whenever it asks for more.
 *
 * @module
 */

import { type BackoffPolicy, backoffDelay } from '../time/backoff.ts';

const DELTA_SECONDS = /^\s*(\d+(?:\.\d+)?)\s*$/;

/**
 * Milliseconds a `Retry-After` header asks for, or undefined when absent or unparseable. Accepts both
 * forms RFC 9110 allows: delta seconds and an HTTP date (a date in the past means "now", i.e. 0).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const delta = DELTA_SECONDS.exec(value);
  if (delta) return Math.round(Number(delta[1]) * 1000);
  // Date.parse also accepts ISO strings and bare numbers-with-words; only a weekday-style HTTP date is
  // plausible here, so require a comma or "GMT" before trusting it.
  if (!/GMT|,/.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * How long to wait before retry number `retry`: the jittered backoff, or the server's `Retry-After` when
 * that is longer. Jitter never shortens what the server asked for.
 */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  options: BackoffPolicy,
  random: () => number = Math.random,
): number {
  return Math.max(backoffDelay(retry, options, random), retryAfterMs ?? 0);
}
