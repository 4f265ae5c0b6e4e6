import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { OperatorError } from '../errors.ts';
import type { Informer, InformerEvent, InformerHandlers } from '../kube/informer.ts';
import { createLogger } from '../observability/logger.ts';
import { createFakeClock } from '../time/fake-clock.ts';
import { createController, splitKey } from './controller.ts';
import {
  enqueueForParent,
  enqueueOwner,
  PARENT_NAME_LABEL,
  PARENT_NAMESPACE_LABEL,
  PARENT_RESOURCE_TYPE_LABEL,
  parentKeyOf,
  parentLabels,
  parentResourceType,
  parentSelector,
} from './parent-labels.ts';

/** An in-memory stand-in for an informer: the controller only uses its handlers, keys and sync. */
function fakeInformer(synced = true) {
  const objects = new Map<string, KubernetesObject>();
  const handlers = { add: new Set(), update: new Set(), delete: new Set(), resync: new Set() } as {
    [E in InformerEvent]: Set<InformerHandlers<KubernetesObject>[E]>;
  };
  let isSynced = synced;
  const syncWaiters: (() => void)[] = [];
  const key = (obj: KubernetesObject) =>
    obj.metadata?.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : (obj.metadata?.name ?? '');
  const informer: Informer = {
    resource: 'fakes',
    start() {},
    hasSynced: () => isSynced,
    waitForSync: () =>
      isSynced ? Promise.resolve(true) : new Promise((resolve) => syncWaiters.push(() => resolve(true))),
    get: (ns, name) => objects.get(ns ? `${ns}/${name}` : name),
    list: () => [...objects.values()],
    keys: () => [...objects.keys()],
    on(event, handler) {
      const set = handlers[event] as Set<typeof handler>;
      set.add(handler);
      return () => set.delete(handler);
    },
    lastResourceVersion: () => '',
    stop: async () => {},
  };
  return {
    informer,
    put(obj: KubernetesObject) {
      const old = objects.get(key(obj));
      objects.set(key(obj), obj);
      if (old) for (const h of handlers.update) h(obj, old);
      else for (const h of handlers.add) h(obj);
    },
    remove(obj: KubernetesObject) {
      objects.delete(key(obj));
      for (const h of handlers.delete) h(obj);
    },
    sync() {
      isSynced = true;
      for (const resolve of syncWaiters.splice(0)) resolve();
    },
  };
}

const silent = () => createLogger({ level: 'silent' });
const cm = (namespace: string, name: string, extra: Partial<KubernetesObject['metadata']> = {}) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { namespace, name, ...extra },
});

describe('controller', () => {
  test('an error retries with growing backoff; success forgets the key', async () => {
    const clock = createFakeClock();
    const registry = new Registry();
    const calls: number[] = [];
    let failuresLeft = 3;
    const { informer, put } = fakeInformer();
    const controller = createController({
      name: 'retry',
      clock,
      registry,
      log: silent(),
      reconcile: async () => {
        calls.push(clock.now());
        if (failuresLeft-- > 0) throw new Error('tailscale API down');
      },
    }).for(informer);
    expect(await controller.start()).toBe(true);
    put(cm('ns', 'a'));
    await clock.flush();
    expect(calls.length).toBe(1);
    expect(controller.queue.numRequeues('ns/a')).toBe(1);
    await clock.advance(999);
    expect(calls.length).toBe(1);
    await clock.advance(1);
    expect(calls.length).toBe(2);
    await clock.advance(2_000);
    expect(calls.length).toBe(3);
    await clock.advance(4_000);
    expect(calls.length).toBe(4);
    // The fourth attempt succeeded: the backoff is forgotten and nothing more is scheduled.
    expect(controller.queue.numRequeues('ns/a')).toBe(0);
    await clock.advance(60_000);
    expect(calls.length).toBe(4);
    expect(calls.map((t) => t - calls[0]!)).toEqual([0, 1_000, 3_000, 7_000]);
    const text = await registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_total{controller="retry",result="error"} 3');
    expect(text).toContain('controller_runtime_reconcile_total{controller="retry",result="success"} 1');
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="retry"} 3');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_count{controller="retry"} 4');
    expect(text).toContain('workqueue_retries_total{name="retry"} 3');
    await controller.stop();
  });

  test('requeueAfter comes back after the delay without backoff; requeue counts as a rate-limited retry', async () => {
    const clock = createFakeClock();
    const registry = new Registry();
    const seen: string[] = [];
    const controller = createController({
      name: 'requeue',
      clock,
      registry,
      log: silent(),
      reconcile: async (key) => {
        seen.push(`${key}@${clock.now() - start}`);
        if (key === 'poll') return { requeueAfter: 30_000 };
        if (key === 'again' && seen.filter((s) => s.startsWith('again')).length === 1)
          return { requeue: true };
        return undefined;
      },
    });
    const start = clock.now();
    await controller.start();
    controller.enqueue('poll');
    controller.enqueue('again');
    await clock.advance(30_000);
    expect(seen).toEqual(['poll@0', 'again@0', 'again@1000', 'poll@30000']);
    expect(controller.queue.numRequeues('poll')).toBe(0);
    const text = await registry.metrics();
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="requeue",result="requeue_after"} 2',
    );
    expect(text).toContain('controller_runtime_reconcile_total{controller="requeue",result="requeue"} 1');
    await controller.stop();
  });

  test('start waits for the informers to sync; events before start are kept', async () => {
    const clock = createFakeClock();
    const reconciled: string[] = [];
    const fake = fakeInformer(false);
    const controller = createController({
      name: 'sync',
      clock,
      log: silent(),
      reconcile: async (key) => {
        reconciled.push(key);
      },
    }).for(fake.informer);
    fake.put(cm('ns', 'early'));
    let started: boolean | undefined;
    void controller.start().then((s) => {
      started = s;
    });
    await clock.flush();
    expect(started).toBeUndefined();
    expect(reconciled).toEqual([]);
    fake.sync();
    await clock.flush();
    expect(started).toBe(true);
    expect(reconciled).toEqual(['ns/early']);
    await controller.stop();
  });

  test("an error carrying the remote's Retry-After waits at least that long", async () => {
    const clock = createFakeClock();
    const calls: number[] = [];
    let failures = 1;
    const { informer, put } = fakeInformer();
    const controller = createController({
      name: 'throttled',
      clock,
      registry: new Registry(),
      log: silent(),
      reconcile: async () => {
        calls.push(clock.now());
        if (failures-- > 0) {
          throw new OperatorError('RateLimited', 'POST /api/v2/tailnet/-/keys: 429', {
            retryAfterMs: 45_000,
          });
        }
      },
    }).for(informer);
    expect(await controller.start()).toBe(true);
    put(cm('ns', 'a'));
    await clock.flush();
    expect(calls).toHaveLength(1);
    // The per-key backoff alone would retry after 1 s; the API asked for 45 s.
    await clock.advance(44_999);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls).toHaveLength(2);
    expect(calls[1]! - calls[0]!).toBe(45_000);
    await controller.stop();
  });

  test('objects cached before the controller existed are reconciled when it starts (a new leader)', async () => {
    const clock = createFakeClock();
    const seen: string[] = [];
    const { informer, put } = fakeInformer();
    put(cm('ns', 'listed-long-ago'));
    put(cm('ns', 'also-old'));
    const controller = createController({
      name: 'late',
      clock,
      registry: new Registry(),
      log: silent(),
      reconcile: async (key) => {
        seen.push(key);
      },
    }).for(informer);
    expect(await controller.start()).toBe(true);
    await clock.flush();
    expect(seen.sort()).toEqual(['ns/also-old', 'ns/listed-long-ago']);
    await controller.stop();
  });

  test('watched children enqueue their owner and their labelled parent', async () => {
    const clock = createFakeClock();
    const reconciled: string[] = [];
    const parents = fakeInformer();
    const owned = fakeInformer();
    const labelled = fakeInformer();
    const controller = createController({
      name: 'children',
      clock,
      log: silent(),
      reconcile: async (key) => {
        reconciled.push(key);
      },
    })
      .for(parents.informer)
      .watch(owned.informer, enqueueOwner({ kind: 'Gateway', group: 'gateway.networking.k8s.io' }))
      .watch(labelled.informer, enqueueForParent('gateway.gateway.networking.k8s.io'));
    await controller.start();
    const gateway = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { namespace: 'apps', name: 'web' },
    };
    owned.put(
      cm('apps', 'child', {
        ownerReferences: [
          { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'web', uid: '1' },
          { apiVersion: 'other.example/v1', kind: 'Gateway', name: 'not-ours', uid: '2' },
        ],
      }),
    );
    await clock.flush();
    labelled.put(cm('operator-ns', 'proxy-secret', { labels: parentLabels(gateway) }));
    await clock.flush();
    labelled.put(cm('operator-ns', 'unrelated', { labels: { app: 'x' } }));
    await clock.flush();
    labelled.remove(cm('operator-ns', 'proxy-secret', { labels: parentLabels(gateway) }));
    await clock.flush();
    expect(reconciled).toEqual(['apps/web', 'apps/web', 'apps/web']);
    await controller.stop();
  });

  test('periodic resync enqueues every key of the primary informer', async () => {
    const clock = createFakeClock();
    const reconciled: string[] = [];
    const fake = fakeInformer();
    const controller = createController({
      name: 'resync',
      clock,
      resyncPeriodMs: 60_000,
      log: silent(),
      reconcile: async (key) => {
        reconciled.push(key);
      },
    }).for(fake.informer);
    fake.put(cm('a', '1'));
    fake.put(cm('b', '2'));
    await controller.start();
    await clock.flush();
    expect(reconciled.length).toBe(2);
    await clock.advance(60_000);
    expect(reconciled.sort()).toEqual(['a/1', 'a/1', 'b/2', 'b/2']);
    await controller.stop();
  });

  test('never runs one key twice at once, even with several workers', async () => {
    const clock = createFakeClock();
    const running = new Set<string>();
    let overlap = false;
    let maxParallel = 0;
    let calls = 0;
    const gates: (() => void)[] = [];
    const controller = createController({
      name: 'exclusive',
      clock,
      workers: 4,
      log: silent(),
      reconcile: async (key) => {
        calls++;
        if (running.has(key)) overlap = true;
        running.add(key);
        maxParallel = Math.max(maxParallel, running.size);
        await new Promise<void>((resolve) => gates.push(resolve));
        running.delete(key);
      },
    });
    await controller.start();
    for (const key of ['a', 'b', 'a', 'c', 'a']) controller.enqueue(key);
    await clock.flush();
    expect(controller.activeWorkers()).toBe(3);
    controller.enqueue('a'); // while a is in flight: queued again for after
    for (let i = 0; i < 10 && gates.length > 0; i++) {
      for (const open of gates.splice(0)) open();
      await clock.flush();
    }
    expect(overlap).toBe(false);
    expect(maxParallel).toBe(3);
    expect(calls).toBe(4);
    await controller.stop();
  });

  test('stop drains in-flight reconciles; stop(0) aborts them at once', async () => {
    const clock = createFakeClock();
    let finished = false;
    let release: () => void = () => {};
    const graceful = createController({
      name: 'drain',
      clock,
      log: silent(),
      reconcile: async () => {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        finished = true;
      },
    });
    await graceful.start();
    graceful.enqueue('k');
    await clock.flush();
    const stopping = graceful.stop(10_000);
    await clock.flush();
    expect(finished).toBe(false);
    release();
    await stopping;
    expect(finished).toBe(true);

    let aborted = false;
    const hard = createController({
      name: 'abort',
      clock,
      log: silent(),
      reconcile: (_key, { signal }) =>
        new Promise<undefined>((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve(undefined);
          });
        }),
    });
    await hard.start();
    hard.enqueue('k');
    await clock.flush();
    await hard.stop(0);
    expect(aborted).toBe(true);
    expect(hard.queue.isShuttingDown()).toBe(true);
  });

  test('splitKey', () => {
    expect(splitKey('ns/name')).toEqual({ namespace: 'ns', name: 'name' });
    expect(splitKey('cluster-scoped')).toEqual({ name: 'cluster-scoped' });
  });
});

describe('parent labels', () => {
  test('stamp type, name and namespace; map a child back to its parent key', () => {
    const gateway = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { namespace: 'apps', name: 'web' },
    };
    expect(parentResourceType(gateway)).toBe('gateway.gateway.networking.k8s.io');
    expect(parentResourceType({ apiVersion: 'v1', kind: 'Service' })).toBe('service');
    const labels = parentLabels(gateway);
    expect(labels).toEqual({
      [PARENT_RESOURCE_TYPE_LABEL]: 'gateway.gateway.networking.k8s.io',
      [PARENT_NAME_LABEL]: 'web',
      [PARENT_NAMESPACE_LABEL]: 'apps',
    });
    expect(PARENT_NAME_LABEL).toBe('tailscale-gateway.tailscale.com/parent-name');
    expect(parentKeyOf({ metadata: { labels } }, 'gateway.gateway.networking.k8s.io')).toBe('apps/web');
    expect(parentKeyOf({ metadata: { labels } }, 'service')).toBeUndefined();
    expect(parentSelector(gateway)).toBe(
      'tailscale-gateway.tailscale.com/parent-resource-type=gateway.gateway.networking.k8s.io,' +
        'tailscale-gateway.tailscale.com/parent-name=web,tailscale-gateway.tailscale.com/parent-namespace=apps',
    );
  });

  test('cluster-scoped parents have no namespace label; over-long values are refused', () => {
    const cluster = { apiVersion: 'example.com/v1', kind: 'Tailnet', metadata: { name: 'main' } };
    const labels = parentLabels(cluster);
    expect(labels[PARENT_NAMESPACE_LABEL]).toBeUndefined();
    expect(parentKeyOf({ metadata: { labels } }, 'tailnet.example.com')).toBe('main');
    expect(() => parentLabels({ ...cluster, metadata: { name: 'x'.repeat(64) } })).toThrow(/longer/);
    expect(() => parentLabels({ metadata: { name: 'no-kind' } })).toThrow(/kind and name/);
  });

  test('enqueueOwner filters by kind, group and controller flag', () => {
    const child = {
      metadata: {
        namespace: 'ns',
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: '1' },
          { apiVersion: 'example.com/v1', kind: 'Deployment', name: 'e', uid: '2', controller: true },
        ],
      },
    };
    expect(enqueueOwner({ kind: 'Deployment' })(child)).toEqual(['ns/d', 'ns/e']);
    expect(enqueueOwner({ kind: 'Deployment', group: 'apps' })(child)).toEqual(['ns/d']);
    expect(enqueueOwner({ kind: 'Deployment', controllerOnly: true })(child)).toEqual(['ns/e']);
  });
});
