/**
 * The extension server's settings: defaults, parsing, and the rules that tie the TLS flags together,
 * each failure naming the flag to fix.
 */
import { describe, expect, test } from 'bun:test';
import type { OperatorError } from '../errors.ts';
import { parseConfig } from './parse.ts';

const parse = (flags: Record<string, string> = {}, env: Record<string, string> = {}) =>
  parseConfig({ flags, env });
const failure = (fn: () => unknown): OperatorError => {
  try {
    fn();
  } catch (error) {
    return error as OperatorError;
  }
  throw new Error('expected a failure');
};

describe('extension server settings', () => {
  test('defaults: cleartext, 256 MiB messages, 30 s per call', () => {
    const config = parse();
    expect(config.grpcMaxMessageBytes).toBe(268_435_456);
    expect(config.grpcRequestTimeout).toBe(30);
    expect(config.grpcInflightBytes).toBe(33_554_432);
    expect(config.grpcTlsCert).toBeUndefined();
    expect(config.grpcTlsKey).toBeUndefined();
    expect(config.grpcClientCa).toBeUndefined();
  });

  test('values from flags and TSGW_ variables', () => {
    const config = parse(
      { grpcTlsCert: '/tls/tls.crt', grpcTlsKey: '/tls/tls.key', grpcMaxMessageBytes: '1048576' },
      { TSGW_GRPC_CLIENT_CA: '/tls/ca.crt', TSGW_GRPC_REQUEST_TIMEOUT: '2.5' },
    );
    expect(config).toMatchObject({
      grpcTlsCert: '/tls/tls.crt',
      grpcTlsKey: '/tls/tls.key',
      grpcClientCa: '/tls/ca.crt',
      grpcMaxMessageBytes: 1_048_576,
      grpcRequestTimeout: 2.5,
    });
  });

  test('certificate and key come together', () => {
    const noKey = failure(() => parse({ grpcTlsCert: '/tls/tls.crt' }));
    expect(noKey.code).toBe('Invalid');
    expect(noKey.message).toContain('--grpc-tls-cert "/tls/tls.crt" needs --grpc-tls-key');
    const noCert = failure(() => parse({ grpcTlsKey: '/tls/tls.key' }));
    expect(noCert.message).toContain('--grpc-tls-key "/tls/tls.key" needs --grpc-tls-cert');
  });

  test('a client CA needs the server certificate', () => {
    const error = failure(() => parse({}, { TSGW_GRPC_CLIENT_CA: '/tls/ca.crt' }));
    expect(error.message).toContain('--grpc-client-ca (from TSGW_GRPC_CLIENT_CA)');
    expect(error.message).toContain('needs --grpc-tls-cert and --grpc-tls-key');
  });

  test('message size and timeout are range-checked', () => {
    expect(failure(() => parse({ grpcMaxMessageBytes: '0' })).message).toContain('--grpc-max-message-bytes');
    expect(failure(() => parse({ grpcMaxMessageBytes: '1.5' })).message).toContain('whole number of bytes');
    expect(failure(() => parse({ grpcMaxMessageBytes: '4294967296' })).message).toContain('4294967295');
    expect(failure(() => parse({ grpcRequestTimeout: '0' })).message).toContain('--grpc-request-timeout');
    expect(failure(() => parse({ grpcInflightBytes: '0' })).message).toContain('--grpc-inflight-bytes');
    expect(parse({ grpcInflightBytes: '1048576' }).grpcInflightBytes).toBe(1_048_576);
    expect(failure(() => parse({ grpcTlsCert: ' ', grpcTlsKey: 'k' })).message).toContain('--grpc-tls-cert');
  });
});
