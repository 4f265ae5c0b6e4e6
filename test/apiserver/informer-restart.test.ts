/**
 * The informer across apiserver outages, on a dedicated control plane (other files share theirs, and
 * this one kills its apiserver).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createInformer, type Informer } from '../../src/kube/informer.ts';
import { createLogger } from '../../src/observability/logger.ts';
import {
  type ControlPlane,
  compactEtcd,
  restartApiServer,
  type StartedControlPlane,
  startControlPlane,
} from '../harness/control-plane/index.ts';
import { waitUntil } from '../harness/support/eventually.ts';

let cp: StartedControlPlane;
let client: KubeClient;
const informers: Informer[] = [];

beforeAll(async () => {
  cp = await startControlPlane();
  client = createKubeClient({ kubeconfig: cp.kubeconfigPath });
}, 60_000);

afterAll(async () => {
  await Promise.all(informers.map((informer) => informer.stop()));
  await cp?.stop();
});

function captureLog() {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  return { log, lines };
}

/** Writes through the side-door apiserver, which the informer cannot reach. */
async function sideWrite(
  side: Pick<ControlPlane, 'request'>,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  const response = await side.request(path, {
    method,
    ...(body === undefined ? {} : { body }),
    ...(method === 'PATCH'
      ? { contentType: 'application/apply-patch+yaml', query: { fieldManager: 'tailscale-gateway' } }
      : {}),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
}

async function scenario(namespace: string, compact: boolean) {
  await client.core.createNamespace({ body: { metadata: { name: namespace } } });
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const put = (name: string, v: string) =>
    client.applyObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { v } });
  await put('kept', '1');
  await put('removed', '1');
  const registry = new Registry();
  const { log, lines } = captureLog();
  const informer = createInformer<V1ConfigMap>({ client, path, log, registry, backoffBaseMs: 100 });
  informers.push(informer);
  const events: string[] = [];
  informer.on('add', (cm) => events.push(`add:${cm.metadata?.name}`));
  informer.on('update', (cm) => events.push(`update:${cm.metadata?.name}:${cm.data?.v}`));
  informer.on('delete', (cm) => events.push(`delete:${cm.metadata?.name}`));
  informer.start();
  expect(await informer.waitForSync()).toBe(true);
  await waitUntil(() => events.length === 2, 'the initial adds');

  await restartApiServer(cp, {
    whileDown: async (side) => {
      const cmPath = (name: string) => `${path}/${name}`;
      const body = (name: string, v: string) => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace },
        data: { v },
      });
      await sideWrite(side, 'PATCH', cmPath('kept'), body('kept', '2'));
      await sideWrite(side, 'DELETE', cmPath('removed'));
      await sideWrite(side, 'PATCH', cmPath('created'), body('created', '1'));
      if (compact) await compactEtcd(cp);
    },
  });

  await waitUntil(() => events.length >= 5, 'the changes made during the outage');
  expect(events.slice(2).sort()).toEqual(['add:created', 'delete:removed', 'update:kept:2']);
  expect(
    informer
      .list()
      .map((cm) => `${cm.metadata?.name}=${cm.data?.v}`)
      .sort(),
  ).toEqual(['created=1', 'kept=2']);
  // And the informer is live again afterwards.
  await put('after', '1');
  await waitUntil(() => events.includes('add:after'), 'an event after the outage');
  return { lines, metrics: await registry.metrics() };
}

describe('informer across apiserver restarts', () => {
  test('changes made while the apiserver was down are all delivered after it comes back', async () => {
    const { lines, metrics } = await scenario('outage', false);
    expect(lines.some((l) => l.msg.startsWith('watch failed'))).toBe(true);
    expect(metrics).toMatch(/tsgw_informer_restarts_total\{resource="configmaps"\} [1-9]/);
  }, 120_000);

  test('a real 410 after etcd compaction triggers a re-list whose diff delivers adds, updates and deletes', async () => {
    const { lines } = await scenario('compacted', true);
    expect(lines.some((l) => l.msg.includes('expired (410)'))).toBe(true);
  }, 120_000);
});
