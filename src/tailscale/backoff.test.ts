import { describe, expect, test } from 'bun:test';
import { backoffDelay, parseRetryAfter, retryDelay } from './backoff.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const policy = { baseMs: 500, capMs: 30_000 };

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

describe('backoffDelay', () => {
  test('upper bound doubles per retry', () => {
    const max = () => 0.999999;
    expect(backoffDelay(0, policy, max)).toBe(499);
    expect(backoffDelay(1, policy, max)).toBe(999);
    expect(backoffDelay(2, policy, max)).toBe(1999);
    expect(backoffDelay(5, policy, max)).toBe(15_999);
  });

  test('capped', () => {
    const max = () => 0.999999;
    expect(backoffDelay(6, policy, max)).toBe(29_999);
    expect(backoffDelay(60, policy, max)).toBe(29_999);
  });

  test('full jitter: anywhere from zero', () => {
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(2000);
  });

  test('with the default random source, stays in range', () => {
    for (let retry = 0; retry < 10; retry++) {
      const delay = backoffDelay(retry, policy);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(policy.capMs, policy.baseMs * 2 ** retry));
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
