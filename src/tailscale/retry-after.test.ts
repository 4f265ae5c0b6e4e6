import { describe, expect, test } from 'bun:test';
import { FULL_JITTER } from '../time/backoff.ts';
import { parseRetryAfter, retryDelay } from './retry-after.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const policy = { baseMs: 500, capMs: 30_000, jitter: FULL_JITTER };

describe('parseRetryAfter', () => {
  test('delta seconds', () => {
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('7', NOW)).toBe(7000);
    expect(parseRetryAfter(' 120 ', NOW)).toBe(120_000);
    expect(parseRetryAfter('1.5', NOW)).toBe(1500);
  });

  test('HTTP date, relative to now', () => {
    expect(parseRetryAfter(new Date(NOW + 42_000).toUTCString(), NOW)).toBe(42_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 12:01:00 GMT', NOW)).toBe(60_000);
  });

  test('a date in the past means no wait', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 11:00:00 GMT', NOW)).toBe(0);
  });

  test('absent or garbage yields undefined', () => {
    for (const value of [null, undefined, '', '  ', 'soon', '-5', '10s', 'not a date, really']) {
      expect(parseRetryAfter(value, NOW)).toBeUndefined();
    }
  });
});

describe('retryDelay', () => {
  test('Retry-After wins when longer than the backoff', () => {
    expect(retryDelay(0, 5000, policy, () => 0.5)).toBe(5000);
  });

  test('backoff wins when longer than Retry-After', () => {
    expect(retryDelay(4, 1000, policy, () => 0.5)).toBe(4000);
  });

  test('no Retry-After: plain backoff', () => {
    expect(retryDelay(1, undefined, policy, () => 0.5)).toBe(500);
  });
});
