import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { createFakeClock } from '../time/fake-clock.ts';
import { createTokenCache } from './token-cache.ts';

function setup(expiresInSeconds = 3600) {
  const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
  let issued = 0;
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  const cache = createTokenCache(async () => {
    issued += 1;
    const n = issued;
    if (gate) await gate;
    return { accessToken: `token-${n}`, expiresInSeconds };
  }, clock);
  return {
    clock,
    cache,
    issued: () => issued,
    hold() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release?.(),
  };
}

describe('token cache', () => {
  test('one fetch serves many calls', async () => {
    const { cache, issued } = setup();
    for (let i = 0; i < 10; i++) expect(await cache.get()).toBe('token-1');
    expect(issued()).toBe(1);
  });

  test('concurrent callers share one in-flight fetch', async () => {
    const t = setup();
    t.hold();
    const all = Promise.all([t.cache.get(), t.cache.get(), t.cache.get()]);
    t.release();
    expect(await all).toEqual(['token-1', 'token-1', 'token-1']);
    expect(t.issued()).toBe(1);
  });

  test('refreshed once 80 % of the lifetime has passed', async () => {
    const { cache, clock, issued } = setup(3600);
    await cache.get();
    await clock.advance(2879_000);
    expect(await cache.get()).toBe('token-1');
    await clock.advance(1000);
    expect(await cache.get()).toBe('token-2');
    expect(issued()).toBe(2);
  });

  test('invalidate drops only the token it names', async () => {
    const { cache } = setup();
    await cache.get();
    cache.invalidate('some-older-token');
    expect(await cache.get()).toBe('token-1');
    cache.invalidate('token-1');
    expect(await cache.get()).toBe('token-2');
    cache.clear();
    expect(await cache.get()).toBe('token-3');
  });

  test('a cancelled waiter stops waiting without cancelling the shared fetch', async () => {
    const t = setup();
    t.hold();
    const controller = new AbortController();
    const mine = t.cache.get(controller.signal).catch((e: unknown) => e);
    const other = t.cache.get();
    controller.abort();
    expect(((await mine) as OperatorError).code).toBe('Canceled');
    t.release();
    expect(await other).toBe('token-1');
  });

  test('a failed fetch is not cached', async () => {
    const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
    let calls = 0;
    const cache = createTokenCache(async () => {
      calls += 1;
      if (calls === 1) throw new OperatorError('Transient', 'down');
      return { accessToken: 'ok', expiresInSeconds: 60 };
    }, clock);
    await expect(cache.get()).rejects.toThrow('down');
    expect(await cache.get()).toBe('ok');
  });
});

test('a fetch that fails after its only waiter left is not an unhandled rejection', async () => {
  const clock = createFakeClock(Date.UTC(2026, 0, 1), { instant: true });
  let fail: ((error: Error) => void) | undefined;
  const cache = createTokenCache(
    () =>
      new Promise((_, reject) => {
        fail = reject;
      }),
    clock,
  );
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const waiter = cache.get(AbortSignal.abort()).catch((e: unknown) => e);
    const controller = new AbortController();
    const second = cache.get(controller.signal).catch((e: unknown) => e);
    controller.abort();
    await Promise.all([waiter, second]);
    fail?.(new OperatorError('Transient', 'down'));
    await Bun.sleep(0);
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
