/**
 * Turns API-server answers and transport failures into `OperatorError`s.
 *
 * client-node's `ApiException` message embeds the response headers and the whole body; headers can
 * carry cookies or tokens from proxies, and bodies of Secrets carry data. Errors built here hold only
 * the method, the path, the status and the `Status.message` the API server wrote for humans.
 *
 * @module
 */

import { codeForStatus, type ErrorCode, OperatorError } from '../errors.ts';

/** The parts of a `metav1.Status` body worth keeping. */
export interface KubeStatus {
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** Parses a `Status` from an error body; anything else yields undefined (never echoed back). */
export function parseStatus(body: string): KubeStatus | undefined {
  try {
    const parsed = JSON.parse(body) as { kind?: unknown } & KubeStatus;
    return parsed && parsed.kind === 'Status' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The error for a non-2xx answer. `reason` refines the status where the API server overloads it:
 * 409 is both AlreadyExists and Conflict (resourceVersion or field-manager conflicts).
 */
export function errorFromResponse(
  method: string,
  url: string | URL,
  status: number,
  body: string,
  headers?: Headers,
): OperatorError {
  const parsed = parseStatus(body);
  const path = redactedPath(url);
  const detail = parsed?.message ?? `HTTP ${status}`;
  let code: ErrorCode = codeForStatus(status);
  if (status === 409 && parsed?.reason === 'AlreadyExists') code = 'AlreadyExists';
  if (status === 410) code = 'NotFound';
  const retryAfter = headers?.get('retry-after');
  const retryAfterSeconds = retryAfter ? Number(retryAfter) : Number.NaN;
  const field = parsed?.details?.causes?.find((c) => c.field)?.field;
  return new OperatorError(
    code,
    `${method} ${path}: ${status}${parsed?.reason ? ` ${parsed.reason}` : ''}: ${detail}`,
    {
      status,
      ...(Number.isFinite(retryAfterSeconds) ? { retryAfterMs: retryAfterSeconds * 1000 } : {}),
      ...(field ? { field } : {}),
    },
  );
}

const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/**
 * The error for a request that got no HTTP answer. A failed certificate check is `Invalid` (the
 * kubeconfig or the server certificate is wrong; retrying cannot help until one of them changes);
 * everything else at this layer (refused, reset, timed out) is `Transient`.
 */
export function errorFromTransport(method: string, url: string | URL, error: unknown): OperatorError {
  if (error instanceof OperatorError) return error;
  const path = redactedPath(url);
  const name = error instanceof Error ? error.name : '';
  const code =
    typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : '';
  const message = error instanceof Error ? error.message : String(error);
  if (name === 'AbortError')
    return new OperatorError('Canceled', `${method} ${path}: canceled`, { cause: error });
  if (name === 'TimeoutError') {
    return new OperatorError('Transient', `${method} ${path}: timed out (${message})`, { cause: error });
  }
  if (TLS_VERIFY_CODES.has(code) || /certificate|self[- ]signed|issuer/i.test(message)) {
    return new OperatorError(
      'Invalid',
      `${method} ${path}: TLS verification of the API server failed (${code || message}); check the kubeconfig's certificate-authority and tls-server-name`,
      { cause: error },
    );
  }
  return new OperatorError('Transient', `${method} ${path}: ${code ? `${code}: ` : ''}${message}`, {
    cause: error,
  });
}

/** Host and path only: query strings can hold selectors with user data and never matter for triage. */
function redactedPath(url: string | URL): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return String(url).split('?')[0] ?? '';
  }
}
