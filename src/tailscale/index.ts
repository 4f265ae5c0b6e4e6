/**
 * Tailscale control-plane access for the operator. Import from here, not from the files behind it.
 *
 * @module
 */

export { isRetryable } from './api-errors.ts';
export {
  createTailscaleClient,
  mergeService,
  type RetryOptions,
  type TailscaleClientOptions,
} from './client.ts';
export type { RateLimit } from './rate-limiter.ts';
export { parseRetryAfter, retryDelay } from './retry-after.ts';
export type * from './types.ts';
