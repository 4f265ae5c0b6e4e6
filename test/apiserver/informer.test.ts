import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createInformer, type Informer, type InformerTransport } from '../../src/kube/informer.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createFakeClock } from '../../src/time/fake-clock.ts';
import { type ControlPlane, sharedControlPlane } from '../harness/control-plane/index.ts';
import { waitUntil } from '../harness/support/eventually.ts';

let cp: ControlPlane;
let client: KubeClient;
const namespace = `informer-${Date.now().toString(36)}`;
const path = `/api/v1/namespaces/${namespace}/configmaps`;
const informers: Informer[] = [];

beforeAll(async () => {
  cp = await sharedControlPlane();
  client = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  await client.core.createNamespace({ body: { metadata: { name: namespace } } });
}, 60_000);

afterAll(async () => {
  await Promise.all(informers.map((informer) => informer.stop()));
});

function captureLog() {
  const lines: { level: string; msg: string; [key: string]: unknown }[] = [];
  const log = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  return { log, lines };
}

function track(informer: Informer<V1ConfigMap>) {
  informers.push(informer as Informer);
  const events: string[] = [];
  informer.on('add', (cm) => events.push(`add:${cm.metadata?.name}:${cm.data?.v ?? ''}`));
  informer.on('update', (cm, old) =>
    events.push(`update:${cm.metadata?.name}:${old.data?.v ?? ''}->${cm.data?.v ?? ''}`),
  );
  informer.on('delete', (cm) => events.push(`delete:${cm.metadata?.name}`));
  return events;
}

const put = (name: string, v: string, labels?: Record<string, string>) =>
  client.applyObject<V1ConfigMap>({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    data: { v },
  });
const remove = (name: string) => client.core.deleteNamespacedConfigMap({ namespace, name });

describe('informer against a real apiserver', () => {
  test('lists, then watches: adds, updates and deletes reach the cache and the handlers', async () => {
    await put('lw-1', 'a', { suite: 'basic' });
    const registry = new Registry();
    const { log } = captureLog();
    const informer = createInformer<V1ConfigMap>({
      client,
      path,
      labelSelector: 'suite=basic',
      log,
      registry,
    });
    const events = track(informer);
    expect(informer.hasSynced()).toBe(false);
    informer.start();
    expect(await informer.waitForSync()).toBe(true);
    expect(informer.get(namespace, 'lw-1')?.data?.v).toBe('a');
    expect(informer.get(namespace, 'lw-1')?.kind).toBe('ConfigMap');
    await put('lw-2', 'b', { suite: 'basic' });
    await put('lw-1', 'c', { suite: 'basic' });
    await remove('lw-2');
    await waitUntil(() => events.length >= 4, 'four events');
    expect(events).toEqual(['add:lw-1:a', 'add:lw-2:b', 'update:lw-1:a->c', 'delete:lw-2']);
    expect(informer.keys()).toEqual([`${namespace}/lw-1`]);
    expect(informer.list(namespace).map((cm) => cm.data?.v)).toEqual(['c']);
    expect(informer.list('elsewhere')).toEqual([]);
    const text = await registry.metrics();
    expect(text).toMatch(/tsgw_informer_last_event_timestamp_seconds\{resource="configmaps"\} \d+/);
    expect(text).toMatch(/tsgw_informer_last_relist_timestamp_seconds\{resource="configmaps"\} \d+/);
    expect(text).toContain('tsgw_informer_restarts_total{resource="configmaps"} 0');
    await informer.stop();
    // Stopped: the cache stays readable but no longer changes.
    await put('lw-1', 'd', { suite: 'basic' });
    await Bun.sleep(200);
    expect(informer.get(namespace, 'lw-1')?.data?.v).toBe('c');
  });

  test('label and field selectors apply to the list and to the watch', async () => {
    await put('sel-in', '1', { suite: 'sel' });
    await put('sel-out', '1', { suite: 'other' });
    await put('field-in', '1');
    await put('field-out', '1');
    const { log } = captureLog();
    const byLabel = createInformer<V1ConfigMap>({ client, path, labelSelector: 'suite=sel', log });
    const byField = createInformer<V1ConfigMap>({
      client,
      path,
      fieldSelector: 'metadata.name=field-in',
      log,
    });
    const labelEvents = track(byLabel);
    const fieldEvents = track(byField);
    byLabel.start();
    byField.start();
    await Promise.all([byLabel.waitForSync(), byField.waitForSync()]);
    expect(byLabel.keys()).toEqual([`${namespace}/sel-in`]);
    expect(byField.keys()).toEqual([`${namespace}/field-in`]);
    await put('sel-out', '2', { suite: 'other' });
    await put('field-out', '2');
    await put('sel-in', '2', { suite: 'sel' });
    await put('field-in', '2');
    await waitUntil(
      () => labelEvents.length >= 2 && fieldEvents.length >= 2,
      'updates of the selected objects',
    );
    // Leaving the selector looks like a delete to the watch.
    await put('sel-in', '3', { suite: 'gone' });
    await waitUntil(() => labelEvents.length >= 3, 'the delete when the label changes');
    expect(labelEvents).toEqual(['add:sel-in:1', 'update:sel-in:1->2', 'delete:sel-in']);
    expect(fieldEvents).toEqual(['add:field-in:1', 'update:field-in:1->2']);
  });

  test('hasSynced stays false while the list fails, and the informer keeps retrying', async () => {
    let failuresLeft = 3;
    let lists = 0;
    const flaky: InformerTransport = {
      watch: client.watch,
      request: (async (p: string, init?: Parameters<KubeClient['request']>[1]) => {
        if (!init?.method || init.method === 'GET') {
          lists++;
          if (failuresLeft-- > 0) throw Object.assign(new Error('injected list failure'), { status: 503 });
        }
        return client.request(p, init);
      }) as KubeClient['request'],
    };
    const registry = new Registry();
    const { log, lines } = captureLog();
    const informer = createInformer<V1ConfigMap>({
      client: flaky,
      path,
      backoffBaseMs: 20,
      log,
      registry,
    });
    informers.push(informer);
    informer.start();
    await waitUntil(() => lists >= 2, 'a retried list');
    expect(informer.hasSynced()).toBe(false);
    expect(await informer.waitForSync()).toBe(true);
    expect(lists).toBe(4);
    expect(informer.get(namespace, 'lw-1')).toBeDefined();
    expect(await registry.metrics()).toContain('tsgw_informer_restarts_total{resource="configmaps"} 3');
    expect(lines.filter((l) => l.msg.startsWith('list failed')).length).toBe(3);
  });

  test('a throwing handler is logged and neither stops the informer nor starves other handlers', async () => {
    const { log, lines } = captureLog();
    const informer = createInformer<V1ConfigMap>({ client, path, labelSelector: 'suite=throw', log });
    informer.on('add', () => {
      throw new Error('handler bug');
    });
    informer.on('update', () => {
      throw new Error('handler bug');
    });
    const events = track(informer);
    informer.start();
    await informer.waitForSync();
    await put('thrower', '1', { suite: 'throw' });
    await put('thrower', '2', { suite: 'throw' });
    await put('thrower-2', '1', { suite: 'throw' });
    await waitUntil(() => events.length >= 3, 'events after the handler threw');
    expect(events).toEqual(['add:thrower:1', 'update:thrower:1->2', 'add:thrower-2:1']);
    expect(lines.filter((l) => l.level === 'error' && l.msg.includes('handler threw')).length).toBe(3);
    // The watch was never restarted because of the handler.
    expect(lines.some((l) => l.msg.startsWith('watch failed'))).toBe(false);
  });

  test('resync hands every cached object to resync handlers on the period', async () => {
    await put('resync-1', '1', { suite: 'resync' });
    await put('resync-2', '1', { suite: 'resync' });
    const clock = createFakeClock();
    const { log } = captureLog();
    const informer = createInformer<V1ConfigMap>({
      client,
      path,
      labelSelector: 'suite=resync',
      resyncPeriodMs: 60_000,
      clock,
      log,
    });
    informers.push(informer);
    const resynced: string[] = [];
    informer.on('resync', (cm) => resynced.push(cm.metadata?.name ?? ''));
    informer.start();
    await informer.waitForSync();
    await clock.advance(59_999);
    expect(resynced).toEqual([]);
    await clock.advance(1);
    expect(resynced.sort()).toEqual(['resync-1', 'resync-2']);
    await clock.advance(60_000);
    expect(resynced.length).toBe(4);
  });
});
