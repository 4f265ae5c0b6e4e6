/**
 * A manually advanced {@link Clock} for unit tests, in `src/` so every package's tests (ours and the
 * reconcilers') share one implementation rather than each growing its own.
 *
 * @module
 */

import type { Clock, TimerHandle } from './clock.ts';

interface FakeTimer {
  id: number;
  due: number;
  fn: () => void;
}

export interface FakeClock extends Clock {
  /**
   * Moves time forward by `ms`, firing every timer that falls due in order of due time, and lets
   * promise callbacks settle after each one so chains of timers (retry after retry) behave as in real
   * time.
   */
  advance(ms: number): Promise<void>;
  /** Lets pending promise callbacks run without moving time. */
  flush(): Promise<void>;
  /** Number of timers not yet fired or cleared. */
  pendingTimers(): number;
  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined;
}

/** Lets queued microtasks and immediates run; a few rounds, because awaits nest. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export function createFakeClock(start = 1_700_000_000_000): FakeClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, FakeTimer>();

  const earliest = (): FakeTimer | undefined => {
    let best: FakeTimer | undefined;
    for (const timer of timers.values()) {
      if (!best || timer.due < best.due || (timer.due === best.due && timer.id < best.id)) best = timer;
    }
    return best;
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const timer = { id: nextId++, due: now + Math.max(0, ms), fn };
      timers.set(timer.id, timer);
      return { id: timer.id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      timers.delete((handle as unknown as { id: number }).id);
    },
    async advance(ms) {
      const target = now + ms;
      await settle();
      for (;;) {
        const timer = earliest();
        if (!timer || timer.due > target) break;
        timers.delete(timer.id);
        now = Math.max(now, timer.due);
        timer.fn();
        await settle();
      }
      now = target;
      await settle();
    },
    flush: settle,
    pendingTimers: () => timers.size,
    nextDue: () => earliest()?.due,
  };
}
