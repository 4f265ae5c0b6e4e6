import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { OperatorError } from '../errors.ts';
import { parseConfig } from './parse.ts';
import { type ConfigKey, ConfigSchema, describeSetting, envName, flagName } from './schema.ts';

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

/** Every setting that takes a number, with a value outside any range it could have. */
const NUMERIC: ConfigKey[] = (Object.keys(ConfigSchema.entries) as ConfigKey[]).filter(
  (key) => typeof describeSetting(key).default === 'number',
);

describe('error messages agree with the checks they report', () => {
  test('there are numeric settings to audit', () => {
    expect(NUMERIC).toContain('leaseDuration');
    expect(NUMERIC).toContain('shutdownTimeout');
    expect(NUMERIC).toContain('grpcMaxMessageBytes');
  });

  // The message of an out-of-range value names the range; both ends it names as included must be
  // accepted and the ends it names as excluded rejected, so "between 0 and 3600" cannot reject 0.
  test.each(NUMERIC)('%s: the range in the message is the range checked', (key) => {
    const message = failure(() => parse({ [key]: '99999999999' })).message;
    const range = /between (\d+) and (\d+)|above (\d+) and at most (\d+)/.exec(message);
    expect(range).not.toBeNull();
    const [, low, high, openLow, closedHigh] = range!;
    // The setting's own schema: other settings' rules (minimum below maximum) are not this check.
    const accepts = (value: string) => v.safeParse(ConfigSchema.entries[key], value).success;
    if (low !== undefined) {
      expect(accepts(low)).toBe(true);
      expect(accepts(high!)).toBe(true);
    } else {
      expect(accepts(openLow!)).toBe(false);
      expect(accepts(closedHigh!)).toBe(true);
    }
  });

  test.each(NUMERIC)('%s: a negative value is out of range, not "not a number"', (key) => {
    const message = failure(() => parse({ [key]: '-3' })).message;
    expect(message).toContain(flagName(key));
    expect(message).toContain('"-3"');
  });

  test('a certificate without a key names both flags and no undefined value', () => {
    const error = failure(() => parse({ grpcTlsCert: '/tls/tls.crt' }));
    expect(error.message).toBe('--grpc-tls-cert "/tls/tls.crt" needs --grpc-tls-key, which is not set');
    expect(error.field).toBe('--grpc-tls-key');
  });

  test('a key without a certificate names where the key came from', () => {
    const error = failure(() => parse({}, { TSGW_GRPC_TLS_KEY: '/tls/tls.key' }));
    expect(error.message).toBe(
      '--grpc-tls-key (from TSGW_GRPC_TLS_KEY) "/tls/tls.key" needs --grpc-tls-cert, which is not set',
    );
  });

  test('a minimum above the default maximum names both values and which one is a default', () => {
    const error = failure(() => parse({ serviceReverifyMin: '700' }));
    expect(error.message).toBe(
      '--service-reverify-min 700 must not exceed --service-reverify-max 600 (the default)',
    );
    expect(error.message).not.toContain('undefined');
    expect(error.field).toBe('--service-reverify-min');
  });

  test('a shutdown delay that the shutdown deadline would cut short is rejected', () => {
    const error = failure(() => parse({ shutdownDelay: '30' }));
    expect(error.message).toBe(
      '--shutdown-delay 30 must be less than --shutdown-timeout 25 (the default): the deadline includes the delay',
    );
    expect(() => parse({ shutdownDelay: '5', shutdownTimeout: '25' })).not.toThrow();
  });

  test('no cross-flag error reads "got undefined"', () => {
    const cases: Record<string, string>[] = [
      { grpcTlsCert: 'c' },
      { grpcTlsKey: 'k' },
      { grpcClientCa: 'ca' },
      { serviceReverifyMin: '700' },
      { serviceReverifyMax: '200' },
      { shutdownDelay: '600' },
    ];
    for (const flags of cases) expect(failure(() => parse(flags)).message).not.toContain('undefined');
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
