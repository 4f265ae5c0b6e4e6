import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { apiPaths, assertServiceName, escapeSegment } from './paths.ts';

describe('escapeSegment', () => {
  test('keeps the colon of svc: names, like Go url.PathEscape', () => {
    expect(escapeSegment('svc:web')).toBe('svc:web');
  });

  test('keeps @ in tailnet names and escapes path-changing characters', () => {
    expect(escapeSegment('user@example.com')).toBe('user@example.com');
    expect(escapeSegment('a/b?c#d e%')).toBe('a%2Fb%3Fc%23d%20e%25');
  });
});

describe('assertServiceName', () => {
  test('accepts svc: + DNS label', () => {
    for (const name of ['svc:a', 'svc:web-1', `svc:${'a'.repeat(63)}`])
      expect(() => assertServiceName(name)).not.toThrow();
  });

  test('rejects anything else with Invalid', () => {
    for (const name of [
      'web',
      'svc:',
      'svc:Web',
      'svc:-a',
      'svc:a-',
      'svc:a/b',
      'svc:../x',
      `svc:${'a'.repeat(64)}`,
    ]) {
      let error: unknown;
      try {
        assertServiceName(name);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OperatorError);
      expect((error as OperatorError).code).toBe('Invalid');
    }
  });
});

describe('apiPaths', () => {
  const paths = apiPaths('-', 'vip-services');

  test('concrete paths and bounded endpoint templates', () => {
    expect(paths.service('svc:web')).toEqual({
      path: '/api/v2/tailnet/-/vip-services/svc:web',
      endpoint: '/tailnet/{tailnet}/vip-services/{name}',
    });
    expect(paths.device('n123CNTRL')).toEqual({ path: '/api/v2/device/n123CNTRL', endpoint: '/device/{id}' });
    expect(paths.key('k1')).toEqual({
      path: '/api/v2/tailnet/-/keys/k1',
      endpoint: '/tailnet/{tailnet}/keys/{id}',
    });
    expect(apiPaths('example.com', 'services').services()).toEqual({
      path: '/api/v2/tailnet/example.com/services',
      endpoint: '/tailnet/{tailnet}/services',
    });
  });
});
