/**
 * The reconcile loop: informer events become keys on a {@link WorkQueue}, and workers call `reconcile`
 * with a key, never with an event. Reconcilers therefore re-read the object from the informer cache and
 * act on the current state (level-triggered), so a missed, duplicated or stale event cannot matter.
 *
 * Result handling follows controller-runtime:
 * - throw → retry after the rate limiter's delay (per-key backoff, global bucket);
 * - `{ requeue: true }` → the same, without counting an error;
 * - `{ requeueAfter: ms }` → forget the backoff and come back after `ms` (polling an external API);
 * - anything else → forget the backoff.
 *
 * A controller runs once: `stop()` shuts its queue down for good. Losing and regaining the lease means
 * building a new controller, which a fresh leader should do anyway (its caches are the same informers).
 *
 * @module
 */

import { randomUUID } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { OperatorError } from '../errors.ts';
import type { Informer } from '../kube/informer.ts';
import { objectKey, splitKey } from '../kube/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import {
  Counter,
  family,
  Gauge,
  Histogram,
  RECONCILE_TIME_BUCKETS,
} from '../observability/metric-families.ts';
import { type Clock, systemClock, type TimerHandle } from '../time/clock.ts';
import { createWorkQueue, type WorkQueue, type WorkQueueOptions } from './work-queue.ts';

export interface ReconcileContext {
  /** Aborted when the controller stops and its drain deadline passed, or it lost leadership. */
  signal: AbortSignal;
  /** Carries `controller`, `namespace`, `name` and `reconcileID`, as controller-runtime's does. */
  log: Logger;
}

export interface ReconcileResult {
  requeueAfter?: number;
  requeue?: boolean;
}

/** Returning nothing (or `{}`) means success. */
export type Reconciler = (
  key: string,
  context: ReconcileContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: an async reconciler that returns nothing is Promise<void>.
) => Promise<ReconcileResult | undefined | void>;

export interface ControllerOptions {
  /** The `controller` label and the queue's `name`; keep it stable, dashboards key on it. */
  name: string;
  reconcile: Reconciler;
  /** Concurrent reconciles; default 1 (controller-runtime's `MaxConcurrentReconciles`). Never two on one key. */
  workers?: number;
  /** Backoff and bucket settings of the queue (defaults: 1 s → 5 min per key, 10 qps, burst 100). */
  queue?: Omit<WorkQueueOptions, 'name' | 'registry' | 'clock'>;
  /** How often every key of the primary informer is enqueued to repair drift; default 10 min, 0 = never. */
  resyncPeriodMs?: number;
  log: Logger;
  /** Registry for `controller_runtime_*` and `workqueue_*`; default a private one. */
  registry?: Registry;
  /** Default: the system clock. */
  clock?: Clock;
}

export interface Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  /**
   * Sets the primary informer: its objects' own keys are enqueued, and the periodic resync walks it.
   * Events before `start()` are queued, not lost.
   */
  for<T extends KubernetesObject>(informer: Informer<T>): Controller;
  /**
   * Enqueues the keys `mapToKeys` returns for every add, update and delete of `informer`'s objects
   * (see `enqueueOwner` and `enqueueForParent` in parent-labels.ts). A throwing mapper is logged.
   */
  watch<T extends KubernetesObject>(informer: Informer<T>, mapToKeys: (obj: T) => string[]): Controller;
  enqueue(key: string): void;
  /**
   * Waits until every watched informer has synced (reconciling from a partial cache would act on
   * objects it thinks are missing), then starts the workers. Resolves `false` if `signal` aborts first.
   */
  start(signal?: AbortSignal): Promise<boolean>;
  /**
   * Stops taking keys, lets in-flight reconciles finish for up to `drainTimeoutMs` (default 30 s), then
   * aborts their signal and waits for the workers to return. `stop(0)` is "stop at once", for a lost lease.
   */
  stop(drainTimeoutMs?: number): Promise<void>;
  /** Reconciles running right now. */
  activeWorkers(): number;
}

/** Queue keys are object keys; re-exported where reconcilers look for it. */
export { splitKey } from '../kube/object-key.ts';

export function createController(options: ControllerOptions): Controller {
  const { name, reconcile, workers = 1, resyncPeriodMs = 10 * 60_000, clock = systemClock } = options;
  const registry = options.registry ?? new Registry();
  const log = options.log.child({ controller: name });
  const queue = createWorkQueue({ ...options.queue, name, registry, clock });
  const metrics = controllerMetrics(registry, name);
  // Only what does not depend on an informer's object type is kept, so informers of any kind fit.
  const informers: Pick<Informer, 'waitForSync'>[] = [];
  const unsubscribe: (() => void)[] = [];
  let primary: Pick<Informer, 'keys'> | undefined;
  const abort = new AbortController();
  let running: Promise<void>[] = [];
  let active = 0;
  let resyncTimer: TimerHandle | undefined;
  let started = false;

  const subscribe = <T extends KubernetesObject>(informer: Informer<T>, map: (obj: T) => string[]) => {
    const enqueueAll = (obj: T) => {
      let keys: string[];
      try {
        keys = map(obj);
      } catch (error) {
        log.error({ err: error, object: objectKey(obj) }, 'mapping an event to keys threw; event dropped');
        return;
      }
      for (const key of keys) queue.add(key);
    };
    informers.push(informer);
    unsubscribe.push(
      informer.on('add', enqueueAll),
      informer.on('update', (obj) => enqueueAll(obj)),
      informer.on('delete', enqueueAll),
    );
  };

  const processOne = async (key: string) => {
    const { namespace, name: objectName } = splitKey(key);
    const reconcileLog = log.child({
      ...(namespace ? { namespace } : {}),
      name: objectName,
      reconcileID: randomUUID(),
    });
    const startedAt = clock.now();
    let result: 'success' | 'error' | 'requeue' | 'requeue_after';
    try {
      const outcome = await reconcile(key, { signal: abort.signal, log: reconcileLog });
      if (outcome?.requeue) {
        result = 'requeue';
        queue.addRateLimited(key);
      } else if (outcome?.requeueAfter !== undefined && outcome.requeueAfter > 0) {
        result = 'requeue_after';
        queue.forget(key);
        queue.addAfter(key, outcome.requeueAfter);
      } else {
        result = 'success';
        queue.forget(key);
      }
    } catch (error) {
      result = 'error';
      metrics.errors.inc({ controller: name });
      // A rate-limited Tailscale call says when to come back (Retry-After); retrying sooner only earns
      // another 429.
      queue.addRateLimited(key, OperatorError.from(error).retryAfterMs ?? 0);
      reconcileLog.error({ err: error, retries: queue.numRequeues(key) }, 'reconcile failed; will retry');
    } finally {
      metrics.time.observe({ controller: name }, (clock.now() - startedAt) / 1000);
    }
    metrics.total.inc({ controller: name, result });
  };

  const worker = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      active++;
      metrics.active.set({ controller: name }, active);
      try {
        await processOne(key);
      } finally {
        active--;
        metrics.active.set({ controller: name }, active);
        queue.done(key);
      }
    }
  };

  const scheduleResync = () => {
    if (resyncPeriodMs <= 0 || queue.isShuttingDown()) return;
    resyncTimer = clock.setTimeout(() => {
      if (primary) for (const key of primary.keys()) queue.add(key);
      scheduleResync();
    }, resyncPeriodMs);
  };

  const controller: Controller = {
    name,
    queue,
    for(informer) {
      primary = informer;
      subscribe(informer, (obj) => [objectKey(obj)]);
      return controller;
    },
    watch(informer, mapToKeys) {
      subscribe(informer, mapToKeys);
      return controller;
    },
    enqueue: (key) => queue.add(key),
    async start(signal) {
      if (started) throw new Error(`controller ${name}: start() called twice`);
      started = true;
      const synced = await Promise.all(informers.map((informer) => informer.waitForSync(signal)));
      if (synced.includes(false) || queue.isShuttingDown()) return false;
      // Objects listed before this controller subscribed produced no event for it (a new leader joins
      // informers that have run all along): enqueue them all, as client-go replays adds to a new handler.
      if (primary) for (const key of primary.keys()) queue.add(key);
      running = Array.from({ length: Math.max(1, workers) }, worker);
      scheduleResync();
      log.info({ workers }, 'controller started');
      return true;
    },
    async stop(drainTimeoutMs = 30_000) {
      for (const off of unsubscribe.splice(0)) off();
      if (resyncTimer !== undefined) clock.clearTimeout(resyncTimer);
      resyncTimer = undefined;
      const drained = drainTimeoutMs > 0 ? await queue.shutDownWithDrain(drainTimeoutMs) : false;
      if (!drained) {
        queue.shutDown();
        abort.abort(new Error(`controller ${name} stopped`));
      }
      await Promise.all(running);
      running = [];
      if (!drained && drainTimeoutMs > 0)
        log.warn('reconciles did not finish within the drain timeout; aborted');
      log.info('controller stopped');
    },
    activeWorkers: () => active,
  };
  return controller;
}

function controllerMetrics(registry: Registry, name: string) {
  const total = family(registry, Counter, {
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'],
  }) as Counter<'controller' | 'result'>;
  const errors = family(registry, Counter, {
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller',
    labelNames: ['controller'],
  }) as Counter<'controller'>;
  const time = family(registry, Histogram, {
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'],
    buckets: RECONCILE_TIME_BUCKETS,
  }) as Histogram<'controller'>;
  const active = family(registry, Gauge, {
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller',
    labelNames: ['controller'],
  }) as Gauge<'controller'>;
  for (const result of ['success', 'error', 'requeue', 'requeue_after'])
    total.inc({ controller: name, result }, 0);
  errors.inc({ controller: name }, 0);
  active.set({ controller: name }, 0);
  return { total, errors, time, active };
}
