/**
 * The one error type of tailscale-gateway.
 *
 * Every failure that crosses a module boundary is an `OperatorError` with a `code`, so callers branch on
 * the code (retry a `Transient`, report an `Invalid` as a status condition, map to a gRPC code at the
 * edge) instead of parsing messages. `cause` is kept for logs and never sent to a client.
 *
 * @module
 */

/** What went wrong, in the terms a caller acts on. */
export type ErrorCode =
  /** Input is malformed or violates a rule; retrying the same input will fail again. */
  | 'Invalid'
  /** The object or endpoint does not exist. */
  | 'NotFound'
  /** Optimistic-concurrency or field-manager conflict; re-read and retry. */
  | 'Conflict'
  /** The object already exists. */
  | 'AlreadyExists'
  /** Credentials were rejected or lack permission. */
  | 'Unauthorized'
  /** The remote asked us to slow down. */
  | 'RateLimited'
  /** A network failure, timeout or 5xx; retrying later may succeed. */
  | 'Transient'
  /** The operation was cancelled (shutdown, deadline). */
  | 'Canceled'
  /** A bug or an unexpected state. */
  | 'Internal';

export interface OperatorErrorOptions {
  /** The underlying error, kept for logs only. */
  cause?: unknown;
  /** HTTP status of the remote response, when there was one. */
  status?: number;
  /** The field (dotted path) a validation error is about, when known. */
  field?: string;
  /** Milliseconds the remote asked us to wait (Retry-After), when it did. */
  retryAfterMs?: number;
}

export class OperatorError extends Error {
  override readonly name = 'OperatorError';
  readonly code: ErrorCode;
  readonly status: number | undefined;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: OperatorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.field = options.field;
    this.retryAfterMs = options.retryAfterMs;
  }

  /**
   * Normalises anything thrown into an `OperatorError`. HTTP-ish errors (anything with a numeric
   * `status`/`code`/`statusCode`) are classified by status; aborts become `Canceled`.
   */
  static from(error: unknown, fallback: ErrorCode = 'Internal'): OperatorError {
    if (error instanceof OperatorError) return error;
    if (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError')) {
      return new OperatorError(error.name === 'TimeoutError' ? 'Transient' : 'Canceled', error.message, {
        cause: error,
      });
    }
    const status = httpStatusOf(error);
    const message = error instanceof Error ? error.message : String(error);
    if (status !== undefined)
      return new OperatorError(codeForStatus(status), message, { cause: error, status });
    return new OperatorError(fallback, message, { cause: error });
  }
}

/** Maps an HTTP status to the code a caller acts on. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 422) return 'Invalid';
  if (status === 401 || status === 403) return 'Unauthorized';
  if (status === 404 || status === 410) return 'NotFound';
  if (status === 409) return 'Conflict';
  if (status === 429) return 'RateLimited';
  if (status >= 500 || status === 408) return 'Transient';
  return 'Internal';
}

/**
 * The HTTP status an error from a client carries, whichever field its library puts it in (`status`,
 * `statusCode` or `code`); undefined when none holds an HTTP status.
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const record = error as Record<string, unknown>;
  for (const key of ['status', 'statusCode', 'code']) {
    const value = record[key];
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
  }
  return undefined;
}

export const isNotFound = (error: unknown): boolean => OperatorError.from(error).code === 'NotFound';
export const isConflict = (error: unknown): boolean => OperatorError.from(error).code === 'Conflict';
