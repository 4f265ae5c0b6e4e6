import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { type Clock, sleep, sleepOrCancel } from './clock.ts';
import { createFakeClock } from './fake-clock.ts';

describe('the two sleeps', () => {
  test('both wait for the clock', async () => {
    const clock = createFakeClock(0);
    let slept = 0;
    void sleep(clock, 1_000).then(() => slept++);
    void sleepOrCancel(clock, 1_000).then(() => slept++);
    await clock.advance(999);
    expect(slept).toBe(0);
    await clock.advance(1);
    expect(slept).toBe(2);
  });

  test('an abort ends sleep quietly, and sleepOrCancel with Canceled naming what was waiting', async () => {
    const clock = createFakeClock(0);
    const abort = new AbortController();
    const quiet = sleep(clock, 60_000, abort.signal);
    const loud = sleepOrCancel(clock, 60_000, abort.signal, 'Tailscale API call').catch((e: unknown) => e);
    abort.abort();
    expect(await quiet).toBeUndefined();
    const error = (await loud) as OperatorError;
    expect(error).toBeInstanceOf(OperatorError);
    expect(error.code).toBe('Canceled');
    expect(error.message).toBe('Tailscale API call canceled');
    expect(clock.pendingTimers()).toBe(0);
  });

  test('an already aborted signal sets no timer', async () => {
    const clock = createFakeClock(0);
    const signal = AbortSignal.abort();
    await sleep(clock, 5, signal);
    expect(((await sleepOrCancel(clock, 5, signal).catch((e: unknown) => e)) as OperatorError).code).toBe(
      'Canceled',
    );
    expect(clock.sleeps).toEqual([]);
  });

  test('an abort while the timer is being set still wins', async () => {
    const inner = createFakeClock(0, { instant: true });
    const abort = new AbortController();
    const clock: Clock = {
      now: inner.now,
      setTimeout: (fn, ms) => {
        abort.abort();
        return inner.setTimeout(fn, ms);
      },
      clearTimeout: inner.clearTimeout,
    };
    const error = (await sleepOrCancel(clock, 5, abort.signal).catch((e: unknown) => e)) as OperatorError;
    expect(error.code).toBe('Canceled');
  });
});

describe('the manual clock in instant mode', () => {
  test('fires each timer at once, moving time by its delay, and records the delays', async () => {
    const clock = createFakeClock(1_000, { instant: true });
    await sleepOrCancel(clock, 250);
    await sleep(clock, 500);
    expect(clock.now()).toBe(1_750);
    expect(clock.sleeps).toEqual([250, 500]);
  });
});
