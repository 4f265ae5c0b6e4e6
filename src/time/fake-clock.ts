/**
 * The one manual {@link Clock} for tests, in `src/` so every package's tests (ours and the reconcilers')
 * share one implementation rather than each growing its own. Two modes: by default time moves only
 * when the test calls `advance`, firing what falls due; `instant` fires every timer on the next
 * microtask with time moved forward by its delay, so a retry storm with 30 s waits finishes in
 * microseconds, and `sleeps` records the waits that were asked for.
 *
 * @module
 */

import type { Clock, TimerHandle } from './clock.ts';

interface FakeTimer {
  id: number;
  due: number;
  fn: () => void;
}

export interface FakeClockOptions {
  /**
   * Fire each timer at once (next microtask), moving time forward by its delay when it is set: for code
   * that only sleeps between tries (the Tailscale client's backoff), never for periodic timers, which
   * would then run forever.
   */
  instant?: boolean;
}

export interface FakeClock extends Clock {
  /** The delay of every timer set, in ms, in order (a sleep is a timer). */
  readonly sleeps: number[];
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

export function createFakeClock(start = 1_700_000_000_000, options: FakeClockOptions = {}): FakeClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, FakeTimer>();
  /** Each handle handed out, to its timer's id: the handle is an opaque object, as the Clock promises. */
  const handles = new WeakMap<TimerHandle, number>();
  const sleeps: number[] = [];

  const earliest = (): FakeTimer | undefined => {
    let best: FakeTimer | undefined;
    for (const timer of timers.values()) {
      if (!best || timer.due < best.due || (timer.due === best.due && timer.id < best.id)) best = timer;
    }
    return best;
  };

  return {
    sleeps,
    now: () => now,
    setTimeout(fn, ms) {
      sleeps.push(ms);
      const timer = { id: nextId++, due: now + Math.max(0, ms), fn };
      timers.set(timer.id, timer);
      if (options.instant) {
        now = timer.due;
        queueMicrotask(() => {
          if (timers.delete(timer.id)) timer.fn();
        });
      }
      const handle: TimerHandle = {};
      handles.set(handle, timer.id);
      return handle;
    },
    clearTimeout(handle) {
      const id = handles.get(handle);
      if (id !== undefined) timers.delete(id);
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
