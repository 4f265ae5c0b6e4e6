import { describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { createLogger } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  return { lines, destination };
}

describe('createLogger', () => {
  test('writes one JSON object per line with ISO time and a string level', () => {
    const { lines, destination } = capture();
    createLogger({ destination }).info({ controller: 'tailnet' }, 'reconciled');
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: 'info', msg: 'reconciled', controller: 'tailnet' });
    expect(new Date(record.time).toISOString()).toBe(record.time);
  });

  test('never writes secrets, even inside logged objects', () => {
    const { lines, destination } = capture();
    createLogger({ destination }).info(
      {
        oauth: { clientId: 'id-1', clientSecret: 'tskey-client-SECRET' },
        response: { authKey: 'tskey-auth-SECRET', access_token: 'tok-SECRET' },
        request: { headers: { authorization: 'Bearer SECRET' } },
        secret: { stringData: { client_secret: 'SECRET' } },
      },
      'calling the API',
    );
    expect(lines.join('\n')).not.toContain('SECRET');
    expect(lines.join('\n')).toContain('id-1');
  });

  test('honours the level', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'warn', destination });
    log.info('hidden');
    log.warn('shown');
    expect(lines).toHaveLength(1);
  });

  test('text format is readable by people and still redacts', () => {
    const { lines, destination } = capture();
    createLogger({ format: 'text', destination }).info({ token: 'SECRET', name: 'web' }, 'hello');
    const text = lines.join('\n');
    expect(text).toContain('INFO');
    expect(text).toContain('hello');
    expect(text).not.toContain('SECRET');
    expect(() => JSON.parse(lines[0]!)).toThrow();
  });
});
