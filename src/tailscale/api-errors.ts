/**
 * Turns Tailscale API answers and transport failures into `OperatorError`s.
 *
 * Messages carry what an operator needs to act (method, path, status, the API's own `message`) and
 * nothing a log reader must not see: bodies are never echoed, only their `message` field, and anything
 * shaped like a Tailscale secret is masked even there, because a server may quote what it was sent.
 *
 * @module
 */

import { codeForStatus, type ErrorCode, OperatorError } from '../errors.ts';
import { canceled } from '../time/clock.ts';
import { parseRetryAfter } from './retry-after.ts';

/** What a canceled wait or call of the client says it was (`Tailscale API call canceled`). */
export const CALL = 'Tailscale API call';

/** The error for a call, or a wait inside one, cut short by the caller's signal. */
export function callCanceled(signal: AbortSignal): OperatorError {
  return canceled(signal, CALL);
}

/** `tskey-auth-…`, `tskey-api-…`, `tskey-client-…`: every Tailscale credential has this prefix. */
const TSKEY = /tskey-[A-Za-z0-9_-]+/g;

/** Masks Tailscale credentials and the given literal secrets in text bound for logs or errors. */
export function scrub(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(TSKEY, 'tskey-[REDACTED]');
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}

/** The API's human-readable error text from a `{"message": "..."}` body, if there is one. */
export function apiMessage(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (
      parsed &&
      typeof parsed === 'object' &&
      typeof (parsed as { message?: unknown }).message === 'string'
    ) {
      return (parsed as { message: string }).message;
    }
  } catch {
    // Not JSON (a proxy's HTML error page, an empty body): the status alone has to do.
  }
  return undefined;
}

/**
 * The code for a status. 501 is how the API refuses to delete a device shared in from another tailnet;
 * it is permanent, so unlike other 5xx it must not be retried.
 */
export function codeForApiStatus(status: number): ErrorCode {
  if (status === 501) return 'Invalid';
  return codeForStatus(status);
}

export function errorFromResponse(
  method: string,
  path: string,
  status: number,
  body: string,
  headers: Headers,
  nowMs: number,
  secrets: readonly string[] = [],
): OperatorError {
  const message = apiMessage(body);
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'), nowMs);
  const text = `${method} ${path}: ${status}${message ? ` ${message}` : ''}`;
  return new OperatorError(codeForApiStatus(status), scrub(text, secrets), {
    status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/**
 * Whether retrying the same call later may succeed: rate limiting, 5xx (except 501), network failures
 * and timeouts. Other 4xx, cancellation and response-shape mismatches are final.
 */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof OperatorError)) return false;
  return error.code === 'RateLimited' || error.code === 'Transient';
}
