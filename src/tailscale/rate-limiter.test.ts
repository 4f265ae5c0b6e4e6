import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { createFakeClock } from '../time/fake-clock.ts';
import { createTokenBucket } from './rate-limiter.ts';

describe('token bucket', () => {
  test('a burst goes through without waiting, then one per interval', async () => {
    const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
    const bucket = createTokenBucket({ perSecond: 2, burst: 3 }, clock);
    for (let i = 0; i < 3; i++) await bucket.acquire();
    expect(clock.sleeps).toEqual([]);
    await bucket.acquire();
    await bucket.acquire();
    expect(clock.sleeps).toEqual([500, 500]);
  });

  test('refills while idle, up to the burst', async () => {
    const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
    const bucket = createTokenBucket({ perSecond: 1, burst: 2 }, clock);
    await bucket.acquire();
    await bucket.acquire();
    await clock.advance(60_000);
    await bucket.acquire();
    await bucket.acquire();
    expect(clock.sleeps).toEqual([]);
    await bucket.acquire();
    expect(clock.sleeps).toEqual([1000]);
  });

  test('concurrent acquirers are served in order', async () => {
    const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
    const bucket = createTokenBucket({ perSecond: 1, burst: 1 }, clock);
    const order: number[] = [];
    await Promise.all([0, 1, 2, 3].map((i) => bucket.acquire().then(() => order.push(i))));
    expect(order).toEqual([0, 1, 2, 3]);
    expect(clock.sleeps.reduce((a, b) => a + b, 0)).toBe(3000);
  });

  test('a cancelled waiter fails with Canceled and does not block the next one', async () => {
    const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
    const bucket = createTokenBucket({ perSecond: 1, burst: 1 }, clock);
    await bucket.acquire();
    const aborted = AbortSignal.abort();
    const error = await bucket.acquire(aborted).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OperatorError);
    expect((error as OperatorError).code).toBe('Canceled');
    await bucket.acquire();
  });

  test('rejects a nonsensical limit', () => {
    expect(() =>
      createTokenBucket({ perSecond: 0, burst: 1 }, createFakeClock(Date.UTC(2026, 0, 1), { instant: true })),
    ).toThrow(RangeError);
    expect(() =>
      createTokenBucket({ perSecond: 1, burst: 0 }, createFakeClock(Date.UTC(2026, 0, 1), { instant: true })),
    ).toThrow(RangeError);
  });
});
