import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { formatHostPort, parseListenAddress } from './address.ts';

function errorOf(fn: () => unknown): OperatorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof OperatorError) return error;
    throw error;
  }
  throw new Error('expected an OperatorError');
}

describe('parseListenAddress', () => {
  test.each([
    ['127.0.0.1:8080', '127.0.0.1', 8080],
    ['localhost:0', 'localhost', 0],
    [':8081', '0.0.0.0', 8081],
    ['[::]:8080', '::', 8080],
    ['[::1]:65535', '::1', 65535],
    ['[fe80::1%eth0]:5005', 'fe80::1%eth0', 5005],
    ['metrics.svc.cluster.local:9090', 'metrics.svc.cluster.local', 9090],
  ])('%s', (input, host, port) => {
    expect(parseListenAddress(input)).toEqual({ host, port });
  });

  test('the :port form uses the configured default host', () => {
    expect(parseListenAddress(':5005', { defaultHost: '::' })).toEqual({ host: '::', port: 5005 });
  });

  test.each([
    ['', 'empty'],
    ['8080', 'missing ":port"'],
    ['localhost', 'missing ":port"'],
    ['localhost:', 'port is empty'],
    ['localhost:http', 'not a decimal number'],
    ['localhost:-1', 'not a decimal number'],
    ['localhost:1.5', 'not a decimal number'],
    ['localhost:65536', 'out of range'],
    ['localhost:999999', 'not a decimal number'],
    ['::1:8080', 'must be bracketed'],
    ['[::1]8080', 'missing ":port"'],
    ['[::1:8080', 'without a closing'],
    ['[127.0.0.1]:80', 'only for IPv6'],
    ['[]:80', 'only for IPv6'],
    [' :8080', 'whitespace'],
    ['http://host:80', 'not a URL'],
    ['host/x:80', 'not a URL'],
  ])('%p is rejected (%s)', (input, problem) => {
    const error = errorOf(() => parseListenAddress(input));
    expect(error.code).toBe('Invalid');
    expect(error.message).toContain(problem);
    expect(error.message).toContain(JSON.stringify(input));
  });

  test('names the config field in the message and on the error', () => {
    const error = errorOf(() => parseListenAddress('nope', { field: 'grpcAddress' }));
    expect(error.field).toBe('grpcAddress');
    expect(error.message).toStartWith('grpcAddress "nope"');
  });
});

describe('formatHostPort', () => {
  test('brackets IPv6 only', () => {
    expect(formatHostPort('::1', 80)).toBe('[::1]:80');
    expect(formatHostPort('127.0.0.1', 80)).toBe('127.0.0.1:80');
  });
});
