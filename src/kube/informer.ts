/**
 * A list+watch cache of one resource, with the recovery behaviour client-node's informer lacks.
 *
 * Why our own loop rather than client-node's `ListWatch` over `BunWatch` (reference §2.1): `ListWatch`
 * stops for good on any error but a 410 and leaves restarts to the caller; `start()` resolves when the
 * list failed; a `stop()` that lands during a list or a reconnect delay still opens a new watch
 * afterwards; handler exceptions travel back into the watch and end it; its delays use real timers; and
 * it gives no hook for a sync flag, liveness timestamps or paged lists. Wrapping it would mean
 * re-implementing most of that around it, so the loop is written out here (about the same size) and
 * keeps `ListWatch`'s cache semantics: objects keyed by namespace/name, re-list diffed against the cache.
 *
 * Recovery rules:
 * - any failure (list or watch: connection refused, 5xx, 403, a malformed line) → retry after a capped,
 *   jittered exponential backoff (default 1 s → 60 s), resuming the watch from the last resourceVersion;
 * - 410 Gone (HTTP status or in-stream ERROR) → forget the resourceVersion and re-list at once;
 * - the watch's inactivity timeout → re-watch at once from the same resourceVersion (bookmarks keep a
 *   quiet resource's version fresh, so this rarely costs a re-list).
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { Counter, Gauge, Registry } from 'prom-client';
import { httpStatusOf, OperatorError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { family } from '../observability/metric-families.ts';
import { createBackoff } from '../time/backoff.ts';
import { type Clock, sleep, systemClock, type TimerHandle } from '../time/clock.ts';
import type { KubeClient } from './client.ts';
import { keyOf, objectKey } from './object-key.ts';

/** What the informer needs from the client; tests wrap it to inject failures. */
export type InformerTransport = Pick<KubeClient, 'request' | 'watch'>;

export interface InformerOptions<T extends KubernetesObject = KubernetesObject> {
  client: InformerTransport;
  /** Collection path, e.g. `/api/v1/namespaces/ns/configmaps` or `/apis/apps/v1/deployments`. */
  path: string;
  /** The `resource` label of the metrics; default the plural and group from `path` (`deployments.apps`). */
  resource?: string;
  /** Applied to the list and the watch alike, so the cache and the event stream agree. */
  labelSelector?: string;
  /** Applied to the list and the watch alike. */
  fieldSelector?: string;
  /**
   * Applied to every listed and watched object before it is cached or handed to a handler, so the
   * cache holds only what the readers need (e.g. {@link withoutManagedFields} from ./trim.ts). Must
   * keep `metadata.name`, `namespace`, `uid` and `resourceVersion`. Default: none.
   */
  transform?: (obj: T) => T;
  /** Objects per list page (`limit`); default 500, as client-go's reflector. */
  pageSize?: number;
  /** How often resync handlers see every cached object; default 0 (never). */
  resyncPeriodMs?: number;
  /** First restart delay after a failure; default 1 s. */
  backoffBaseMs?: number;
  /** Restart delay cap; default 60 s. */
  backoffMaxMs?: number;
  /** Source of jitter in [0, 1); default `Math.random`. */
  random?: () => number;
  /** Default: the system clock. */
  clock?: Clock;
  log: Logger;
  /** Registry for the `tsgw_informer_*` families; default a private one. */
  registry?: Registry;
}

export interface InformerHandlers<T> {
  add: (obj: T) => void;
  update: (obj: T, old: T) => void;
  delete: (obj: T) => void;
  resync: (obj: T) => void;
}
export type InformerEvent = keyof InformerHandlers<unknown>;

export interface Informer<T extends KubernetesObject = KubernetesObject> {
  readonly resource: string;
  /** Starts listing and watching in the background; the returned informer is usable at once. */
  start(): void;
  /** True once a list has succeeded; stays true across later re-lists and outages. */
  hasSynced(): boolean;
  /** Resolves `true` once synced, or `false` if `signal` aborts or the informer stops first. */
  waitForSync(signal?: AbortSignal): Promise<boolean>;
  /** The cached object; `namespace` is ignored for cluster-scoped kinds (pass `undefined` or ''). */
  get(namespace: string | undefined, name: string): T | undefined;
  /** Cached objects, of one namespace or all. */
  list(namespace?: string): T[];
  /** Cache keys: `namespace/name`, or `name` for cluster-scoped objects. */
  keys(): string[];
  /**
   * Registers a handler and returns a function that removes it. Handlers run synchronously on the
   * informer's loop and should only enqueue; one that throws is logged and skipped, and never stops
   * the informer or the other handlers.
   */
  on<E extends InformerEvent>(event: E, handler: InformerHandlers<T>[E]): () => void;
  /** The resourceVersion the next watch resumes from ('' when a re-list is due). */
  lastResourceVersion(): string;
  /** Stops the loop and waits for it; the cache stays readable. */
  stop(): Promise<void>;
}

interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** `deployments.apps` for `/apis/apps/v1/namespaces/x/deployments`, `configmaps` for core paths. */
export function resourceLabel(path: string): string {
  const parts = path.split('/').filter(Boolean);
  const plural = parts.at(-1) ?? path;
  return parts[0] === 'apis' && parts[1] ? `${plural}.${parts[1]}` : plural;
}

/** How a watch ended, as far as the loop's next step is concerned. */
type WatchEnd =
  | { kind: 'gone' }
  | { kind: 'timeout' }
  | { kind: 'closed'; sawEvents: boolean }
  | { kind: 'stopped' }
  | { kind: 'error'; error: unknown };

export function createInformer<T extends KubernetesObject = KubernetesObject>(
  options: InformerOptions<T>,
): Informer<T> {
  const {
    client,
    path,
    labelSelector,
    fieldSelector,
    pageSize = 500,
    resyncPeriodMs = 0,
    backoffBaseMs = 1_000,
    backoffMaxMs = 60_000,
    random = Math.random,
    clock = systemClock,
    transform = (obj: T) => obj,
  } = options;
  const resource = options.resource ?? resourceLabel(path);
  const log = options.log.child({ informer: resource });
  const metrics = informerMetrics(options.registry ?? new Registry(), resource);

  const cache = new Map<string, T>();
  const handlers: { [E in InformerEvent]: Set<InformerHandlers<T>[E]> } = {
    add: new Set(),
    update: new Set(),
    delete: new Set(),
    resync: new Set(),
  };
  let resourceVersion = '';
  let synced = false;
  const syncWaiters = new Set<(synced: boolean) => void>();
  let running: Promise<void> | undefined;
  let stopController = new AbortController();
  let currentWatch: AbortController | undefined;
  let resyncTimer: TimerHandle | undefined;

  const selectors = {
    ...(labelSelector ? { labelSelector } : {}),
    ...(fieldSelector ? { fieldSelector } : {}),
  };

  const call = <E extends InformerEvent>(event: E, ...args: Parameters<InformerHandlers<T>[E]>) => {
    for (const handler of handlers[event]) {
      try {
        (handler as (...a: unknown[]) => void)(...args);
      } catch (error) {
        log.error({ err: error, event }, 'informer handler threw; the event was skipped for this handler');
      }
    }
  };

  const upsert = (obj: T) => {
    const key = objectKey(obj);
    const old = cache.get(key);
    cache.set(key, obj);
    if (!old) call('add', obj);
    else if (old.metadata?.uid && obj.metadata?.uid && old.metadata.uid !== obj.metadata.uid) {
      // Deleted and re-created under the same name while we were not watching: two events, not one.
      call('delete', old);
      call('add', obj);
    } else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) call('update', obj, old);
  };

  const remove = (obj: T) => {
    const key = objectKey(obj);
    const old = cache.get(key);
    if (!old) return;
    cache.delete(key);
    call('delete', obj);
  };

  const markSynced = () => {
    if (synced) return;
    synced = true;
    for (const resolve of syncWaiters) resolve(true);
    syncWaiters.clear();
  };

  /** Lists every page, then diffs the result into the cache. */
  const relist = async (signal: AbortSignal) => {
    const items: T[] = [];
    let cont: string | undefined;
    let listVersion = '';
    do {
      const page = await client.request<ObjectList<T>>(path, {
        query: { ...selectors, limit: pageSize, ...(cont ? { continue: cont } : {}) },
        signal,
      });
      // List items carry no apiVersion/kind; fill them in so consumers see the same shape as watch events.
      const itemKind = page.kind?.endsWith('List') ? page.kind.slice(0, -4) : undefined;
      for (const item of page.items ?? []) {
        items.push(
          transform({
            ...item,
            apiVersion: item.apiVersion ?? page.apiVersion,
            kind: item.kind ?? itemKind,
          } as T),
        );
      }
      cont = page.metadata?.continue || undefined;
      listVersion = page.metadata?.resourceVersion ?? '';
    } while (cont);
    if (signal.aborted) return;
    const fresh = new Set<string>();
    for (const item of items) {
      fresh.add(objectKey(item));
      upsert(item);
    }
    for (const [key, old] of cache) {
      if (!fresh.has(key)) {
        cache.delete(key);
        call('delete', old);
      }
    }
    resourceVersion = listVersion;
    metrics.lastRelist.set({ resource }, clock.now() / 1000);
    markSynced();
    log.debug({ objects: cache.size, resourceVersion }, 'listed');
  };

  const watchOnce = (signal: AbortSignal): Promise<WatchEnd> =>
    new Promise<WatchEnd>((resolve) => {
      let sawEvents = false;
      let settled = false;
      const settle = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onStop);
        resolve(end);
      };
      const onStop = () => {
        currentWatch?.abort();
        settle({ kind: 'stopped' });
      };
      signal.addEventListener('abort', onStop, { once: true });
      const onEvent = (type: string, obj: T) => {
        sawEvents = true;
        metrics.lastEvent.set({ resource }, clock.now() / 1000);
        if (type === 'ERROR') {
          const status = watchErrorStatus(obj);
          // Thrown so BunWatch ends the stream and reports it through `done`.
          throw new OperatorError(
            status.code === 410 ? 'NotFound' : 'Transient',
            `watch ${path}: ${status.message ?? 'ERROR event'}`,
            status.code === undefined ? {} : { status: status.code },
          );
        }
        const version = obj.metadata?.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') upsert(transform(obj));
        else if (type === 'DELETED') remove(transform(obj));
        if (version) resourceVersion = version;
      };
      const onDone = (error: unknown) => {
        if (signal.aborted) return settle({ kind: 'stopped' });
        if (error === null || error === undefined) return settle({ kind: 'closed', sawEvents });
        if (httpStatusOf(error) === 410) return settle({ kind: 'gone' });
        // BunWatch's inactivity timeout is a DOMException, which is not an Error subclass everywhere.
        if ((error as { name?: unknown }).name === 'TimeoutError') return settle({ kind: 'timeout' });
        settle({ kind: 'error', error });
      };
      client.watch
        .watch(path, { ...selectors, resourceVersion }, onEvent, onDone)
        .then((controller) => {
          if (signal.aborted || settled) controller.abort();
          else currentWatch = controller;
        })
        .catch((error: unknown) => settle({ kind: 'error', error }));
    });

  const loop = async (signal: AbortSignal) => {
    // Jitter downwards (50–100 %) so a fleet restarted by one apiserver outage does not reconnect in step.
    const restarts = createBackoff(
      { baseMs: backoffBaseMs, capMs: backoffMaxMs, jitter: [0.5, 1] },
      { clock, random },
    );
    const backoff = async (reason: string, error?: unknown) => {
      const delay = restarts.next();
      if (error !== undefined) {
        metrics.restarts.inc({ resource });
        log.warn({ err: error, delayMs: delay, failures: restarts.failures }, `${reason}; retrying`);
      } else log.debug({ delayMs: delay }, `${reason}; retrying`);
      await sleep(clock, delay, signal);
    };

    while (!signal.aborted) {
      if (!resourceVersion) {
        try {
          await relist(signal);
          restarts.reset();
        } catch (error) {
          if (signal.aborted) break;
          await backoff('list failed', error);
          continue;
        }
        if (signal.aborted) break;
      }
      const end = await watchOnce(signal);
      currentWatch = undefined;
      switch (end.kind) {
        case 'stopped':
          return;
        case 'gone':
          log.info({ resourceVersion }, 'watch resourceVersion expired (410); re-listing');
          resourceVersion = '';
          break;
        case 'timeout':
          break;
        case 'closed':
          if (end.sawEvents) restarts.reset();
          // A stream that ends before sending anything, again and again, would otherwise spin.
          else await backoff('watch closed without events');
          break;
        case 'error':
          await backoff('watch failed', end.error);
          break;
      }
    }
  };

  const scheduleResync = () => {
    if (resyncPeriodMs <= 0 || stopController.signal.aborted) return;
    resyncTimer = clock.setTimeout(() => {
      if (synced) for (const obj of [...cache.values()]) call('resync', obj);
      scheduleResync();
    }, resyncPeriodMs);
  };

  return {
    resource,
    start() {
      if (running) return;
      stopController = new AbortController();
      const signal = stopController.signal;
      running = loop(signal).catch((error: unknown) => {
        // The loop catches everything it expects; reaching here is a bug, but must not be unhandled.
        log.error({ err: error }, 'informer loop crashed');
      });
      scheduleResync();
    },
    hasSynced: () => synced,
    waitForSync(signal) {
      if (synced) return Promise.resolve(true);
      if (signal?.aborted) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const done = (value: boolean) => {
          syncWaiters.delete(done);
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        };
        const onAbort = () => done(false);
        syncWaiters.add(done);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    get: (namespace, name) => cache.get(keyOf(namespace, name)),
    list: (namespace) =>
      namespace
        ? [...cache.values()].filter((o) => o.metadata?.namespace === namespace)
        : [...cache.values()],
    keys: () => [...cache.keys()],
    on(event, handler) {
      const set = handlers[event] as Set<typeof handler>;
      set.add(handler);
      return () => set.delete(handler);
    },
    lastResourceVersion: () => resourceVersion,
    async stop() {
      stopController.abort();
      currentWatch?.abort();
      if (resyncTimer !== undefined) clock.clearTimeout(resyncTimer);
      resyncTimer = undefined;
      for (const resolve of syncWaiters) resolve(false);
      syncWaiters.clear();
      await running;
      running = undefined;
    },
  };
}

function informerMetrics(registry: Registry, resource: string) {
  const lastEvent = family(registry, Gauge, {
    name: 'tsgw_informer_last_event_timestamp_seconds',
    help: 'Unix time of the last watch event (bookmarks included); a stale value means a silently dead watch.',
    labelNames: ['resource'],
  }) as Gauge<'resource'>;
  const lastRelist = family(registry, Gauge, {
    name: 'tsgw_informer_last_relist_timestamp_seconds',
    help: 'Unix time of the last successful full list.',
    labelNames: ['resource'],
  }) as Gauge<'resource'>;
  const restarts = family(registry, Counter, {
    name: 'tsgw_informer_restarts_total',
    help: 'List or watch failures the informer recovered from by retrying.',
    labelNames: ['resource'],
  }) as Counter<'resource'>;
  restarts.inc({ resource }, 0);
  return { lastEvent, lastRelist, restarts };
}

/**
 * The Status an ERROR watch event carries in place of an object (410 Gone when the resourceVersion is
 * too old), read field by field: it arrives as the informer's object type but is not one.
 */
function watchErrorStatus(obj: object): { code?: number; message?: string } {
  return {
    code: 'code' in obj && typeof obj.code === 'number' ? obj.code : undefined,
    message: 'message' in obj && typeof obj.message === 'string' ? obj.message : undefined,
  };
}
