import { describe, expect, test } from 'bun:test';
import { backoffDelay, createBackoff, FULL_JITTER } from './backoff.ts';
import { createFakeClock } from './fake-clock.ts';

const policy = { baseMs: 500, capMs: 30_000, jitter: FULL_JITTER };

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

describe('jitter ranges', () => {
  test('none: the exponential step itself', () => {
    const plain = { baseMs: 1_000, capMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6].map((retry) => backoffDelay(retry, plain, () => 0.7))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ]);
  });

  test('50–100 %: never under half the step', () => {
    const half = { baseMs: 1_000, capMs: 60_000, jitter: [0.5, 1] as const };
    expect(backoffDelay(0, half, () => 0)).toBe(500);
    expect(backoffDelay(0, half, () => 0.5)).toBe(750);
    expect(backoffDelay(10, half, () => 0.999999)).toBe(59_999);
  });
});

describe('createBackoff', () => {
  test('counts failures, grows per wait, starts over after reset', () => {
    const backoff = createBackoff({ baseMs: 1_000, capMs: 4_000 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([
      1_000, 2_000, 4_000, 4_000,
    ]);
    expect(backoff.failures).toBe(4);
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(1_000);
  });

  test('wait sleeps the next delay on the clock and ends early, quietly, on abort', async () => {
    const clock = createFakeClock(0);
    const backoff = createBackoff({ baseMs: 1_000, capMs: 60_000 }, { clock });
    let waited: number | undefined;
    void backoff.wait().then((ms) => {
      waited = ms;
    });
    await clock.advance(999);
    expect(waited).toBeUndefined();
    await clock.advance(1);
    expect(waited).toBe(1_000);
    const abort = new AbortController();
    const second = backoff.wait(abort.signal);
    abort.abort();
    expect(await second).toBe(2_000);
    expect(clock.now()).toBe(1_000);
    expect(clock.pendingTimers()).toBe(0);
  });
});
