/**
 * OAuth access-token cache. Tokens live an hour; fetching one per call would double the request count
 * and hit the token endpoint's own (undocumented) limits, while a token used up to its last second
 * fails calls that were in flight when it expired. So: one token shared by all calls, one fetch in
 * flight at a time, refreshed once 80 % of its lifetime has passed.
 *
 * @module
 */

import type { Clock } from '../time/clock.ts';
import { callCanceled } from './api-errors.ts';

export interface IssuedToken {
  accessToken: string;
  expiresInSeconds: number;
}

/** Share of a token's lifetime after which it is replaced; 80 % of an hour leaves 12 minutes of slack. */
export const REFRESH_AT = 0.8;

export interface TokenCache {
  /** A valid token, fetching one if none is cached or the cached one is due for refresh. */
  get(signal?: AbortSignal): Promise<string>;
  /** Drops `token` if it is still the cached one (a 401 proved it dead); a newer token is kept. */
  invalidate(token: string): void;
  /** Drops whatever is cached (credentials rotated). */
  clear(): void;
}

export function createTokenCache(fetchToken: () => Promise<IssuedToken>, clock: Clock): TokenCache {
  let cached: { token: string; refreshAt: number } | undefined;
  let inflight: Promise<string> | undefined;

  const refresh = () => {
    inflight ??= (async () => {
      try {
        const started = clock.now();
        const issued = await fetchToken();
        cached = {
          token: issued.accessToken,
          refreshAt: started + issued.expiresInSeconds * 1000 * REFRESH_AT,
        };
        return issued.accessToken;
      } finally {
        inflight = undefined;
      }
    })();
    // Every waiter may have been cancelled; a failure nobody awaits must not become an unhandled
    // rejection (which would take the process down).
    inflight.catch(() => undefined);
    return inflight;
  };

  return {
    async get(signal) {
      if (cached && clock.now() < cached.refreshAt) return cached.token;
      // The fetch is shared, so one caller's cancellation must not cancel it for the others: only
      // this caller stops waiting.
      return raceAbort(refresh(), signal);
    },
    invalidate(token) {
      if (cached?.token === token) cached = undefined;
    },
    clear() {
      cached = undefined;
    },
  };
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(callCanceled(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(callCanceled(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
