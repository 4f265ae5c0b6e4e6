import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { parseConfig } from './parse.ts';
import { describeSetting, envName, flagName } from './schema.ts';

const parse = (flags: Record<string, string> = {}, env: Record<string, string> = {}) =>
  parseConfig({ flags, env });

const failure = (fn: () => unknown): OperatorError => {
  try {
    fn();
  } catch (err) {
    return err as OperatorError;
  }
  throw new Error('expected a failure');
};

describe('parseConfig', () => {
  test('defaults documented in the schema apply when nothing is given', () => {
    expect(parse()).toMatchObject({
      grpcAddr: '0.0.0.0:5005',
      httpAddr: '0.0.0.0:8080',
      logLevel: 'info',
      logFormat: 'json',
      shutdownTimeout: 25,
      shutdownDelay: 0,
    });
    expect(parse().kubeconfig).toBeUndefined();
  });

  test('a flag beats its TSGW_ variable, which beats the default', () => {
    expect(parse({}, { TSGW_LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
    expect(parse({ logLevel: 'warn' }, { TSGW_LOG_LEVEL: 'debug' }).logLevel).toBe('warn');
    expect(parse({}, { TSGW_GRPC_ADDR: '127.0.0.1:9000' }).grpcAddr).toBe('127.0.0.1:9000');
    expect(parse({}, { TSGW_SHUTDOWN_TIMEOUT: '5' }).shutdownTimeout).toBe(5);
  });

  test('an empty environment variable counts as unset', () => {
    expect(parse({}, { TSGW_LOG_FORMAT: '' }).logFormat).toBe('json');
  });

  test('a bad value names the flag and the reason', () => {
    const error = failure(() => parse({ grpcAddr: 'localhost' }));
    expect(error).toBeInstanceOf(OperatorError);
    expect(error.code).toBe('Invalid');
    expect(error.field).toBe('--grpc-addr');
    expect(error.message).toContain('--grpc-addr');
    expect(error.message).toContain('host:port');
    expect(error.message).toContain('"localhost"');
  });

  test('a bad value from the environment names the variable too', () => {
    const error = failure(() => parse({}, { TSGW_LOG_FORMAT: 'xml' }));
    expect(error.message).toContain('--log-format (from TSGW_LOG_FORMAT)');
    expect(error.message).toContain('json or text');
  });

  test.each([
    ['httpAddr', '0.0.0.0:70000', '--http-addr'],
    ['logLevel', 'loud', '--log-level'],
    ['shutdownTimeout', 'soon', '--shutdown-timeout'],
    ['shutdownTimeout', '0', '--shutdown-timeout'],
    ['shutdownDelay', '-1', '--shutdown-delay'],
  ])('rejects %s=%s', (key, value, flag) => {
    expect(failure(() => parse({ [key]: value })).message).toContain(flag);
  });

  test('settings a command does not accept are not read from the environment', () => {
    const config = parseConfig({ flags: {}, env: { TSGW_RESOURCES: '/tmp/x' }, keys: ['grpcAddr'] });
    expect(config.resources).toBeUndefined();
  });
});

describe('setting names', () => {
  test('flags are kebab-case and variables TSGW_ upper snake case', () => {
    expect(flagName('grpcAddr')).toBe('--grpc-addr');
    expect(envName('shutdownTimeout')).toBe('TSGW_SHUTDOWN_TIMEOUT');
  });

  test('every setting has a description for --help', () => {
    const setting = describeSetting('grpcAddr');
    expect(setting).toEqual({
      flag: '--grpc-addr',
      env: 'TSGW_GRPC_ADDR',
      description: expect.stringContaining('extension server'),
      default: '0.0.0.0:5005',
    });
  });
});
