/** Status apply and Events against the real apiserver: the server is the judge of wire formats. */
import { beforeAll, describe, expect, test } from 'bun:test';
import { setCondition } from '../../src/controller-runtime/conditions.ts';
import { createEventRecorder, kubeEventSink } from '../../src/controller-runtime/events.ts';
import { applyStatus } from '../../src/controller-runtime/status.ts';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { type ControlPlane, installCrds, sharedControlPlane } from '../harness/control-plane/index.ts';

let cp: ControlPlane;
let client: KubeClient;
const namespace = `controller-status-${Date.now().toString(36)}`;
const group = 'controller-status.tailscale-gateway.test';

interface Widget {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    generation?: number;
    managedFields?: { manager: string; subresource?: string }[];
  };
  spec?: { size?: number };
  status?: { phase?: string; other?: string; conditions?: unknown[] };
}

beforeAll(async () => {
  cp = await sharedControlPlane();
  client = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  await client.core.createNamespace({ body: { metadata: { name: namespace } } });
  await installCrds(cp, [
    {
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: { type: 'object', properties: { size: { type: 'integer' } } },
                  status: {
                    type: 'object',
                    properties: {
                      phase: { type: 'string' },
                      other: { type: 'string' },
                      conditions: {
                        type: 'array',
                        'x-kubernetes-list-type': 'map',
                        'x-kubernetes-list-map-keys': ['type'],
                        items: {
                          type: 'object',
                          required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
                          properties: {
                            type: { type: 'string' },
                            status: { type: 'string' },
                            reason: { type: 'string' },
                            message: { type: 'string' },
                            observedGeneration: { type: 'integer' },
                            lastTransitionTime: { type: 'string', format: 'date-time' },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        ],
      },
    },
  ]);
}, 60_000);

describe('applyStatus', () => {
  test('writes only our status fields through /status, leaving spec and other managers alone', async () => {
    const ref = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w', namespace } };
    await client.applyObject({ ...ref, spec: { size: 3 } } as never, { fieldManager: 'user' });
    // Another controller owns status.other.
    await client.applyObject({ ...ref, status: { other: 'theirs' } } as never, {
      fieldManager: 'someone-else',
      subresource: 'status',
    });
    const conditions = setCondition(
      [],
      { type: 'Ready', status: 'True', reason: 'Ready', observedGeneration: 1 },
      new Date(),
    );
    const applied = await applyStatus<Widget>(client, ref, { phase: 'Running', conditions });
    expect(applied.spec).toEqual({ size: 3 });
    expect(applied.status).toMatchObject({ phase: 'Running', other: 'theirs' });
    expect(applied.status?.conditions).toEqual(conditions);
    const ours = applied.metadata.managedFields?.find((f) => f.manager === 'tailscale-gateway');
    expect(ours?.subresource).toBe('status');
    // Dropping a field we own removes it; the other manager's field stays.
    const second = await applyStatus<Widget>(client, ref, { conditions });
    expect(second.status?.phase).toBeUndefined();
    expect(second.status?.other).toBe('theirs');
    // Taking another manager's field is a Conflict unless forced.
    await expect(applyStatus(client, ref, { other: 'mine' })).rejects.toMatchObject({ code: 'Conflict' });
    const forced = await applyStatus<Widget>(client, ref, { other: 'mine' }, { force: true });
    expect(forced.status?.other).toBe('mine');
  });

  test('a resourceVersion makes the apply a compare-and-swap: a stale one is a Conflict, a fresh one writes', async () => {
    const ref = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'cas', namespace } };
    const created = await client.applyObject<Widget & { metadata: { resourceVersion?: string } }>(
      { ...ref, spec: { size: 1 } } as never,
      { fieldManager: 'user' },
    );
    const read = created.metadata.resourceVersion!;
    // Someone writes after our read: our apply with the read resourceVersion must not land.
    await client.applyObject({ ...ref, spec: { size: 2 } } as never, { fieldManager: 'user' });
    await expect(
      applyStatus(client, ref, { phase: 'Stale' }, { force: true, resourceVersion: read }),
    ).rejects.toMatchObject({ code: 'Conflict' });
    const fresh = await client.applyObject<Widget & { metadata: { resourceVersion?: string } }>(
      { ...ref, spec: { size: 2 } } as never,
      { fieldManager: 'user' },
    );
    const applied = await applyStatus<Widget>(
      client,
      ref,
      { phase: 'Fresh' },
      { force: true, resourceVersion: fresh.metadata.resourceVersion! },
    );
    expect(applied.status?.phase).toBe('Fresh');
  });

  test('refuses objects without identity', async () => {
    await expect(applyStatus(client, { kind: 'Widget', metadata: { name: 'x' } }, {})).rejects.toMatchObject({
      code: 'Invalid',
    });
  });
});

describe('events against the apiserver', () => {
  test('the API server accepts our Event and a series update', async () => {
    const warnings: string[] = [];
    const recorder = createEventRecorder({
      sink: kubeEventSink(client),
      reportingInstance: 'test-pod',
      log: createLogger({ level: 'warn', destination: { write: (l: string) => warnings.push(l) } }),
    });
    const cm = await client.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'regarding' } },
    });
    const regarding = { apiVersion: 'v1', kind: 'ConfigMap', metadata: cm.metadata };
    await recorder.event(regarding, 'Warning', 'ProbeFailed', 'first');
    await recorder.event(regarding, 'Warning', 'ProbeFailed', 'first');
    await recorder.event(regarding, 'Warning', 'ProbeFailed', 'first');
    expect(warnings).toEqual([]);
    const response = await cp.request(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
    const list = (await response.json()) as {
      items: { reason: string; eventTime: string; series?: { count: number }; reportingController: string }[];
    };
    expect(list.items.length).toBe(1);
    expect(list.items[0]).toMatchObject({
      reason: 'ProbeFailed',
      reportingController: 'gateway.tailscale.com/tailscale-gateway',
      series: { count: 3 },
    });
    expect(list.items[0]?.eventTime).toMatch(/\.\d{6}Z$/);
  });
});
