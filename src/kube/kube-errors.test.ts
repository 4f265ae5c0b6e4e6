import { describe, expect, test } from 'bun:test';
import { errorFromResponse, errorFromTransport } from './kube-errors.ts';

describe('errorFromResponse', () => {
  const status = (code: number, reason: string, message: string, extra: object = {}) =>
    JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, ...extra });

  test('keeps method, path, status, reason and message; drops the query string', () => {
    const error = errorFromResponse(
      'GET',
      'https://k8s:6443/api/v1/namespaces/a/secrets/s?labelSelector=team%3Dx',
      404,
      status(404, 'NotFound', 'secrets "s" not found'),
    );
    expect(error.code).toBe('NotFound');
    expect(error.status).toBe(404);
    expect(error.message).toBe(
      'GET https://k8s:6443/api/v1/namespaces/a/secrets/s: 404 NotFound: secrets "s" not found',
    );
  });

  test('409 AlreadyExists is told apart from 409 Conflict', () => {
    expect(errorFromResponse('POST', 'https://k/x', 409, status(409, 'AlreadyExists', 'exists')).code).toBe(
      'AlreadyExists',
    );
    expect(errorFromResponse('PUT', 'https://k/x', 409, status(409, 'Conflict', 'modified')).code).toBe(
      'Conflict',
    );
  });

  test('a body that is not a Status is never echoed', () => {
    const error = errorFromResponse('GET', 'https://k/x', 500, '{"data":{"password":"hunter2"}}');
    expect(error.code).toBe('Transient');
    expect(error.message).not.toContain('hunter2');
  });

  test('Retry-After and the first field cause are kept', () => {
    const throttled = errorFromResponse('GET', 'https://k/x', 429, '', new Headers({ 'retry-after': '3' }));
    expect(throttled.code).toBe('RateLimited');
    expect(throttled.retryAfterMs).toBe(3000);
    const invalid = errorFromResponse(
      'POST',
      'https://k/x',
      422,
      status(422, 'Invalid', 'bad', { details: { causes: [{ field: 'spec.port', message: 'too big' }] } }),
    );
    expect(invalid.code).toBe('Invalid');
    expect(invalid.field).toBe('spec.port');
  });
});

describe('errorFromTransport', () => {
  test('certificate failures are Invalid and point at the kubeconfig', () => {
    const cause = Object.assign(new Error('self signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    const error = errorFromTransport('GET', 'https://k/api', cause);
    expect(error.code).toBe('Invalid');
    expect(error.message).toContain('certificate-authority');
  });

  test('refused connections and timeouts are Transient; aborts are Canceled', () => {
    const refused = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });
    expect(errorFromTransport('GET', 'https://k/api', refused).code).toBe('Transient');
    expect(errorFromTransport('GET', 'https://k/api', new DOMException('t', 'TimeoutError')).code).toBe(
      'Transient',
    );
    expect(errorFromTransport('GET', 'https://k/api', new DOMException('a', 'AbortError')).code).toBe(
      'Canceled',
    );
  });
});
