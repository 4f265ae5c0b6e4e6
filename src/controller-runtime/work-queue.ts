/**
 * A work queue of string keys with client-go's semantics, which is what makes level-triggered
 * reconciliation safe:
 *
 * - **dedup**: a key added while it waits is queued once (the `dirty` set), so a burst of events for
 *   one object costs one reconcile;
 * - **exclusivity**: a key being processed is never handed to a second worker (the `processing` set);
 *   if it is added meanwhile it is queued again when the first worker calls `done`, so the change is
 *   not lost and the two reconciles never overlap;
 * - **delays**: `addAfter` keeps the earliest due time per key; `addRateLimited` delays by the
 *   {@link RateLimiter}.
 *
 * One deliberate difference: client-go's `ShutDown` keeps handing out already-queued keys. Here,
 * shutting down drops them (in-flight keys still finish), because shutdown means the process is exiting
 * or lost the lease, and whoever leads next lists everything and reconciles it anyway.
 *
 * @module
 */

import { Registry } from 'prom-client';
import {
  Counter,
  DURATION_BUCKETS,
  family,
  Gauge,
  Histogram,
  scrapeGauge,
} from '../observability/metric-families.ts';
import { type Clock, systemClock, type TimerHandle } from '../time/clock.ts';
import { createRateLimiter, type RateLimiter, type RateLimiterOptions } from './rate-limiter.ts';

export interface WorkQueueOptions extends RateLimiterOptions {
  /** The `name` label of the queue's metrics; default `default`. Use the controller name. */
  name?: string;
  /** Registry for the `workqueue_*` families; default none (metrics are kept on a private registry). */
  registry?: Registry;
  /** Replaces the default limiter built from the {@link RateLimiterOptions}. */
  rateLimiter?: RateLimiter;
  /** Default: the system clock. */
  clock?: Clock;
}

export interface WorkQueue {
  /** Queues `key` unless it is already waiting; ignored after shutdown. */
  add(key: string): void;
  /** Queues `key` after `ms`; when it is already scheduled, the earlier due time wins. */
  addAfter(key: string, ms: number): void;
  /** Queues `key` after the rate limiter's delay, or `atLeastMs` when longer, counting a retry. */
  addRateLimited(key: string, atLeastMs?: number): void;
  /** Clears `key`'s retry history; call after it reconciled successfully. */
  forget(key: string): void;
  /** Retries of `key` since it was last forgotten. */
  numRequeues(key: string): number;
  /**
   * The next key, marked as processing; waits while the queue is empty. `undefined` once the queue is
   * shut down. Every key received must be passed to `done`.
   */
  get(): Promise<string | undefined>;
  /** Ends processing of `key`; if it was added meanwhile it is queued again. */
  done(key: string): void;
  /** Keys waiting to be handed out (not counting delayed or in-flight ones). */
  len(): number;
  /** Keys currently being processed. */
  processing(): number;
  /** Stops accepting keys, drops queued and delayed ones, and wakes every waiting `get` with `undefined`. */
  shutDown(): void;
  /**
   * {@link shutDown}, then waits until every in-flight key is `done` or `timeoutMs` passes; resolves
   * `true` when everything finished in time.
   */
  shutDownWithDrain(timeoutMs: number): Promise<boolean>;
  isShuttingDown(): boolean;
}

/** A min-heap entry; stale entries (a key rescheduled earlier) are skipped when popped. */
interface Delayed {
  due: number;
  key: string;
}

export function createWorkQueue(options: WorkQueueOptions = {}): WorkQueue {
  const name = options.name ?? 'default';
  const clock = options.clock ?? systemClock;
  const limiter = options.rateLimiter ?? createRateLimiter({ ...options, clock });
  const metrics = queueMetrics(options.registry, name, clock, () => startedAt);

  // FIFO with a moving head, so `get` is O(1) without Array#shift's copying.
  let items: string[] = [];
  let head = 0;
  const dirty = new Set<string>();
  const inFlight = new Set<string>();
  const addedAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const getters: ((key: string | undefined) => void)[] = [];
  const drainers = new Set<() => void>();
  let shuttingDown = false;

  const delayedDue = new Map<string, number>();
  const heap: Delayed[] = [];
  let timer: { handle: TimerHandle; due: number } | undefined;

  const length = () => items.length - head;
  const updateDepth = () => metrics.depth.set({ name }, length());

  const push = (key: string) => {
    items.push(key);
    updateDepth();
    const getter = getters.shift();
    if (getter) getter(take());
  };

  /** Moves the head key to processing; the caller knows the queue is not empty. */
  const take = (): string => {
    const key = items[head]!;
    head++;
    if (head > 1024 && head * 2 > items.length) {
      items = items.slice(head);
      head = 0;
    }
    dirty.delete(key);
    inFlight.add(key);
    const now = clock.now();
    const since = addedAt.get(key);
    addedAt.delete(key);
    if (since !== undefined) metrics.queueDuration.observe({ name }, (now - since) / 1000);
    startedAt.set(key, now);
    updateDepth();
    return key;
  };

  const add = (key: string) => {
    if (shuttingDown || dirty.has(key)) return;
    metrics.adds.inc({ name });
    dirty.add(key);
    addedAt.set(key, clock.now());
    if (!inFlight.has(key)) push(key);
  };

  const heapPush = (entry: Delayed) => {
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.due <= heap[i]!.due) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  };
  const heapPop = (): Delayed | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < heap.length && heap[l]!.due < heap[smallest]!.due) smallest = l;
        if (r < heap.length && heap[r]!.due < heap[smallest]!.due) smallest = r;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
        i = smallest;
      }
    }
    return top;
  };

  const schedule = () => {
    while (heap.length > 0 && delayedDue.get(heap[0]!.key) !== heap[0]!.due) heapPop();
    const next = heap[0];
    if (!next) {
      if (timer) clock.clearTimeout(timer.handle);
      timer = undefined;
      return;
    }
    if (timer && timer.due <= next.due) return;
    if (timer) clock.clearTimeout(timer.handle);
    timer = { due: next.due, handle: clock.setTimeout(fire, next.due - clock.now()) };
  };

  const fire = () => {
    timer = undefined;
    const now = clock.now();
    while (heap.length > 0 && heap[0]!.due <= now) {
      const entry = heapPop()!;
      if (delayedDue.get(entry.key) !== entry.due) continue;
      delayedDue.delete(entry.key);
      add(entry.key);
    }
    schedule();
  };

  const addAfter = (key: string, ms: number) => {
    if (shuttingDown) return;
    if (!(ms > 0)) {
      add(key);
      return;
    }
    const due = clock.now() + ms;
    const current = delayedDue.get(key);
    if (current !== undefined && current <= due) return;
    delayedDue.set(key, due);
    heapPush({ due, key });
    schedule();
  };

  const shutDown = () => {
    if (shuttingDown) return;
    shuttingDown = true;
    if (timer) clock.clearTimeout(timer.handle);
    timer = undefined;
    heap.length = 0;
    delayedDue.clear();
    items = [];
    head = 0;
    dirty.clear();
    addedAt.clear();
    updateDepth();
    for (const getter of getters.splice(0)) getter(undefined);
    finishIfDrained();
  };

  /** Once shut down and idle, the scrape-time gauges go too, so a replaced queue leaves no series. */
  const finishIfDrained = () => {
    if (!shuttingDown || inFlight.size > 0) return;
    metrics.remove();
    for (const drained of drainers) drained();
  };

  return {
    add,
    addAfter,
    addRateLimited(key, atLeastMs = 0) {
      if (shuttingDown) return;
      metrics.retries.inc({ name });
      // The backoff still grows, but a remote's own Retry-After is never undercut.
      addAfter(key, Math.max(limiter.when(key), atLeastMs));
    },
    forget: (key) => limiter.forget(key),
    numRequeues: (key) => limiter.numRequeues(key),
    get() {
      if (length() > 0) return Promise.resolve(take());
      if (shuttingDown) return Promise.resolve(undefined);
      return new Promise((resolve) => getters.push(resolve));
    },
    done(key) {
      if (!inFlight.delete(key)) return;
      const since = startedAt.get(key);
      startedAt.delete(key);
      if (since !== undefined) metrics.workDuration.observe({ name }, (clock.now() - since) / 1000);
      if (shuttingDown) {
        finishIfDrained();
        return;
      }
      if (dirty.has(key)) push(key);
    },
    len: length,
    processing: () => inFlight.size,
    shutDown,
    async shutDownWithDrain(timeoutMs) {
      shutDown();
      if (inFlight.size === 0) return true;
      return await new Promise<boolean>((resolve) => {
        const finish = (drained: boolean) => {
          drainers.delete(onDrained);
          clock.clearTimeout(deadline);
          resolve(drained);
        };
        const onDrained = () => finish(true);
        drainers.add(onDrained);
        const deadline = clock.setTimeout(() => finish(false), timeoutMs);
      });
    },
    isShuttingDown: () => shuttingDown,
  };
}

function queueMetrics(
  registry: Registry | undefined,
  name: string,
  clock: Clock,
  startedAt: () => Map<string, number>,
) {
  // Without a registry the metrics still need somewhere to go; a throwaway one costs a few objects.
  const reg = registry ?? new Registry();
  const depth = family(reg, Gauge, {
    name: 'workqueue_depth',
    help: 'Current depth of workqueue',
    labelNames: ['name'],
  }) as Gauge<'name'>;
  const adds = family(reg, Counter, {
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by workqueue',
    labelNames: ['name'],
  }) as Counter<'name'>;
  const retries = family(reg, Counter, {
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by workqueue',
    labelNames: ['name'],
  }) as Counter<'name'>;
  const queueDuration = family(reg, Histogram, {
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in workqueue before being requested',
    labelNames: ['name'],
    buckets: DURATION_BUCKETS,
  }) as Histogram<'name'>;
  const workDuration = family(reg, Histogram, {
    name: 'workqueue_work_duration_seconds',
    help: 'How long in seconds processing an item from workqueue takes',
    labelNames: ['name'],
    buckets: DURATION_BUCKETS,
  }) as Histogram<'name'>;
  // Initialise the counters so the series exist (at 0) before the first add, as client-go does.
  depth.set({ name }, 0);
  adds.inc({ name }, 0);
  retries.inc({ name }, 0);
  const longest = scrapeGauge(
    reg,
    {
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running',
      labelNames: ['name'],
    },
    () => {
      const now = clock.now();
      let oldest = now;
      for (const since of startedAt().values()) oldest = Math.min(oldest, since);
      return [{ name }, (now - oldest) / 1000];
    },
  );
  const unfinished = scrapeGauge(
    reg,
    {
      name: 'workqueue_unfinished_work_seconds',
      help: 'How many seconds of work has been done that is in progress and has not been observed by work_duration',
      labelNames: ['name'],
    },
    () => {
      const now = clock.now();
      let total = 0;
      for (const since of startedAt().values()) total += now - since;
      return [{ name }, total / 1000];
    },
  );
  return {
    depth,
    adds,
    retries,
    queueDuration,
    workDuration,
    remove() {
      longest.remove();
      unfinished.remove();
    },
  };
}
