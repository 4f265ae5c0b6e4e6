import { describe, expect, test } from 'bun:test';
import { Registry } from 'prom-client';
import { createFakeClock } from '../time/fake-clock.ts';
import { createRateLimiter } from './rate-limiter.ts';
import { createWorkQueue } from './work-queue.ts';

/** Takes whatever is immediately available without waiting. */
async function drainNow(queue: ReturnType<typeof createWorkQueue>): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) keys.push((await queue.get())!);
  return keys;
}

describe('work queue', () => {
  test('dedups a key added while it waits, and keeps FIFO order', async () => {
    const queue = createWorkQueue({ clock: createFakeClock() });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('c');
    queue.add('b');
    expect(queue.len()).toBe(3);
    expect(await drainNow(queue)).toEqual(['a', 'b', 'c']);
  });

  test('a key added while processing is queued again only after done', async () => {
    const queue = createWorkQueue({ clock: createFakeClock() });
    queue.add('a');
    const key = await queue.get();
    expect(key).toBe('a');
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(0);
    queue.done('a');
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe('a');
    queue.done('a');
    expect(queue.len()).toBe(0);
  });

  test('concurrent workers never hold the same key at once, and no add is lost', async () => {
    const queue = createWorkQueue({ clock: createFakeClock() });
    const active = new Set<string>();
    const processed: string[] = [];
    let overlaps = 0;
    const worker = async () => {
      for (;;) {
        const key = await queue.get();
        if (key === undefined) return;
        if (active.has(key)) overlaps++;
        active.add(key);
        await new Promise((resolve) => setImmediate(resolve));
        // Re-adding during processing must not hand the key to another worker.
        if (processed.length < 40) queue.add(key);
        processed.push(key);
        active.delete(key);
        queue.done(key);
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    for (const key of ['x', 'y', 'x', 'z', 'x', 'y']) queue.add(key);
    for (let i = 0; i < 200 && (queue.len() > 0 || queue.processing() > 0); i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    queue.shutDown();
    await Promise.all(workers);
    expect(overlaps).toBe(0);
    expect(new Set(processed)).toEqual(new Set(['x', 'y', 'z']));
    expect(processed.length).toBeGreaterThanOrEqual(40);
  });

  test('get waits for an add, and returns undefined after shutDown', async () => {
    const queue = createWorkQueue({ clock: createFakeClock() });
    const pending = queue.get();
    queue.add('later');
    expect(await pending).toBe('later');
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('ignored');
    expect(queue.len()).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });

  test('addAfter fires in due order and the earliest due time wins', async () => {
    const clock = createFakeClock();
    const queue = createWorkQueue({ clock });
    queue.addAfter('slow', 3_000);
    queue.addAfter('fast', 1_000);
    queue.addAfter('slow', 5_000); // later: ignored
    queue.addAfter('mid', 4_000);
    queue.addAfter('mid', 2_000); // earlier: wins
    await clock.advance(999);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(await drainNow(queue)).toEqual(['fast']);
    await clock.advance(1_000);
    expect(await drainNow(queue)).toEqual(['mid']);
    await clock.advance(1_000);
    expect(await drainNow(queue)).toEqual(['slow']);
    await clock.advance(10_000);
    expect(queue.len()).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  test('addAfter with no delay adds at once; delayed keys are dropped on shutdown', async () => {
    const clock = createFakeClock();
    const queue = createWorkQueue({ clock });
    queue.addAfter('now', 0);
    expect(queue.len()).toBe(1);
    queue.addAfter('never', 1_000);
    queue.shutDown();
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(2_000);
    expect(queue.len()).toBe(0);
  });

  test('per-key backoff doubles from the base up to the cap; forget resets it', async () => {
    const clock = createFakeClock();
    const limiter = createRateLimiter({ baseDelayMs: 1_000, maxDelayMs: 10_000, clock });
    expect([1, 2, 3, 4, 5, 6].map(() => limiter.when('k'))).toEqual([
      1_000, 2_000, 4_000, 8_000, 10_000, 10_000,
    ]);
    expect(limiter.numRequeues('k')).toBe(6);
    expect(limiter.when('other')).toBe(1_000);
    limiter.forget('k');
    expect(limiter.numRequeues('k')).toBe(0);
    expect(limiter.when('k')).toBe(1_000);
  });

  test('defaults: 1 s base, 5 min cap', () => {
    const limiter = createRateLimiter({ clock: createFakeClock(), qps: 0 });
    const delays = Array.from({ length: 12 }, () => limiter.when('k'));
    expect(delays[0]).toBe(1_000);
    expect(delays.at(-1)).toBe(300_000);
  });

  test('the token bucket allows a burst, then spaces retries at qps, refilling over time', async () => {
    const clock = createFakeClock();
    const limiter = createRateLimiter({ baseDelayMs: 1, maxDelayMs: 1, qps: 10, burst: 3, clock });
    expect(['a', 'b', 'c'].map((k) => limiter.when(k))).toEqual([1, 1, 1]);
    expect(limiter.when('d')).toBe(100);
    expect(limiter.when('e')).toBe(200);
    await clock.advance(1_000);
    // 1 s at 10 qps refills 10 tokens, capped at the burst of 3, minus the 2 owed.
    expect(limiter.when('f')).toBe(1);
  });

  test('addRateLimited delays by the backoff and counts retries; forget resets', async () => {
    const clock = createFakeClock();
    const registry = new Registry();
    const queue = createWorkQueue({ clock, registry, name: 'test', baseDelayMs: 1_000 });
    queue.addRateLimited('k');
    expect(queue.numRequeues('k')).toBe(1);
    await clock.advance(999);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    const key = (await queue.get())!;
    queue.done(key);
    queue.addRateLimited('k');
    await clock.advance(1_999);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    queue.forget('k');
    expect(queue.numRequeues('k')).toBe(0);
    const text = await registry.metrics();
    expect(text).toContain('workqueue_retries_total{name="test"} 2');
    expect(text).toContain('workqueue_adds_total{name="test"} 2');
    expect(text).toContain('workqueue_depth{name="test"} 1');
  });

  test('shutDownWithDrain waits for in-flight keys and reports whether they finished', async () => {
    const clock = createFakeClock();
    const queue = createWorkQueue({ clock });
    queue.add('a');
    queue.add('b');
    const a = (await queue.get())!;
    const draining = queue.shutDownWithDrain(5_000);
    let result: boolean | undefined;
    void draining.then((r) => {
      result = r;
    });
    await clock.flush();
    expect(result).toBeUndefined();
    // Queued but not started: dropped.
    expect(await queue.get()).toBeUndefined();
    queue.done(a);
    expect(await draining).toBe(true);

    const stuck = createWorkQueue({ clock });
    stuck.add('z');
    await stuck.get();
    const timedOut = stuck.shutDownWithDrain(1_000);
    await clock.advance(1_000);
    expect(await timedOut).toBe(false);
  });

  test('time-based gauges follow in-flight work and disappear after shutdown', async () => {
    const clock = createFakeClock();
    const registry = new Registry();
    const queue = createWorkQueue({ clock, registry, name: 'gauges' });
    queue.add('a');
    queue.add('b');
    await queue.get();
    await clock.advance(2_000);
    await queue.get();
    await clock.advance(1_000);
    let text = await registry.metrics();
    expect(text).toContain('workqueue_longest_running_processor_seconds{name="gauges"} 3');
    expect(text).toContain('workqueue_unfinished_work_seconds{name="gauges"} 4');
    queue.done('a');
    queue.done('b');
    expect(await queue.shutDownWithDrain(1_000)).toBe(true);
    text = await registry.metrics();
    expect(text).not.toContain('workqueue_longest_running_processor_seconds{name="gauges"}');
    expect(text).toMatch(/workqueue_work_duration_seconds_count\{name="gauges"\} 2/);
    expect(text).toMatch(/workqueue_queue_duration_seconds_count\{name="gauges"\} 2/);
  });

  test('two queues share one registry under different names', () => {
    const registry = new Registry();
    createWorkQueue({ registry, name: 'one', clock: createFakeClock() }).add('x');
    createWorkQueue({ registry, name: 'two', clock: createFakeClock() });
    expect(registry.getSingleMetric('workqueue_depth')).toBeDefined();
  });
});
