/**
 * Client-side token bucket for writes. The control plane's write limits are undocumented; a reconcile
 * storm after an operator restart (hundreds of services re-PUT at once) is exactly when a shared tailnet
 * would start answering 429 to every client on it, including humans in the admin console. Limiting
 * ourselves keeps the operator a good neighbour and makes 429s the exception.
 *
 * @module
 */

import { type Clock, sleepOrCancel } from '../time/clock.ts';
import { CALL } from './api-errors.ts';

export interface RateLimit {
  /** Sustained rate, in tokens per second. */
  perSecond: number;
  /** Bucket size: how many calls may go out back to back after a quiet period. */
  burst: number;
}

export interface TokenBucket {
  /** Waits (through the clock) until a token is available and takes it. Callers are served in order. */
  acquire(signal?: AbortSignal): Promise<void>;
}

export function createTokenBucket(limit: RateLimit, clock: Clock): TokenBucket {
  if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
    throw new RangeError(`rate limit needs perSecond > 0 and burst >= 1, got ${JSON.stringify(limit)}`);
  }
  let tokens = limit.burst;
  let updated = clock.now();
  // A FIFO chain: each acquirer waits for the one before it, so a steady stream of writers cannot
  // starve an earlier one that is sleeping for its token.
  let tail: Promise<void> = Promise.resolve();

  const refill = () => {
    const now = clock.now();
    tokens = Math.min(limit.burst, tokens + ((now - updated) / 1000) * limit.perSecond);
    updated = now;
  };

  const take = async (signal?: AbortSignal) => {
    for (;;) {
      refill();
      if (tokens >= 1) {
        tokens -= 1;
        return;
      }
      await sleepOrCancel(clock, Math.ceil(((1 - tokens) / limit.perSecond) * 1000), signal, CALL);
    }
  };

  return {
    acquire(signal) {
      const mine = tail.then(() => take(signal));
      tail = mine.catch(() => undefined);
      return mine;
    },
  };
}
