/**
 * The operator identity against a real kube-apiserver: created once in the ConfigMap, the same after a
 * restart (a new client, and the compiled binary started twice), agreed on by replicas starting
 * together, flags winning, never written when both flags are set.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import {
  IDENTITY_CONFIGMAP,
  resolveOperatorIdentity,
  startIdentityResolution,
} from '../../src/resources/tailscale-gateway/identity.ts';
import { type ControlPlane, sharedControlPlane } from '../harness/control-plane/index.ts';
import { type RunningBinary, startBinary } from '../harness/support/binary.ts';

const log = { debug: () => {}, info: () => {}, warn: () => {} };
let cp: ControlPlane;
let kube: KubeClient;
let kubeSystemUid: string;
const running: RunningBinary[] = [];
let counter = 0;

async function freshNamespace(): Promise<string> {
  const name = `identity-${Date.now().toString(36)}-${counter++}`;
  await kube.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const configMap = (namespace: string) =>
  kube.request<{ data?: Record<string, string> }>(
    `/api/v1/namespaces/${namespace}/configmaps/${IDENTITY_CONFIGMAP}`,
  );

beforeAll(async () => {
  cp = await sharedControlPlane();
  kube = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  kubeSystemUid = (await kube.request<{ metadata: { uid: string } }>('/api/v1/namespaces/kube-system'))
    .metadata.uid;
}, 60_000);

afterAll(() => {
  for (const op of running) op.process.kill('SIGKILL');
});

test('first start creates the identity; a restart (new client) reads the same one', async () => {
  const namespace = await freshNamespace();
  const first = await resolveOperatorIdentity({ kube, namespace, log });
  expect(first.operatorId).toMatch(/^tsgw-[0-9a-f]{16}$/);
  expect(first.clusterId).toBe(kubeSystemUid);
  expect(first.source).toEqual({ operatorId: 'configmap', clusterId: 'configmap' });
  expect((await configMap(namespace)).data).toEqual({
    operatorId: first.operatorId,
    clusterId: kubeSystemUid,
  });

  const restarted = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  expect(await resolveOperatorIdentity({ kube: restarted, namespace, log })).toEqual(first);
});

test('replicas starting together agree on one identity', async () => {
  const namespace = await freshNamespace();
  const clients = Array.from({ length: 5 }, () => createKubeClient({ kubeconfig: cp.kubeconfigPath }));
  const identities = await Promise.all(
    clients.map((client) => resolveOperatorIdentity({ kube: client, namespace, log })),
  );
  expect(new Set(identities.map((i) => i.operatorId)).size).toBe(1);
  expect(identities[0]!.operatorId).toBe((await configMap(namespace)).data!['operatorId']!);
});

test('flags win; with both set, nothing is written', async () => {
  const namespace = await freshNamespace();
  const persisted = await resolveOperatorIdentity({ kube, namespace, log });
  expect(await resolveOperatorIdentity({ kube, namespace, log, operatorId: 'east-1' })).toEqual({
    operatorId: 'east-1',
    clusterId: persisted.clusterId,
    source: { operatorId: 'flag', clusterId: 'configmap' },
  });

  const untouched = await freshNamespace();
  expect(
    await resolveOperatorIdentity({ kube, namespace: untouched, log, operatorId: 'a', clusterId: 'b' }),
  ).toEqual({
    operatorId: 'a',
    clusterId: 'b',
    source: { operatorId: 'flag', clusterId: 'flag' },
  });
  await expect(configMap(untouched)).rejects.toMatchObject({ code: 'NotFound' });
});

test('a ConfigMap missing a key is completed, keeping the other', async () => {
  const namespace = await freshNamespace();
  await kube.request(`/api/v1/namespaces/${namespace}/configmaps`, {
    method: 'POST',
    body: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: IDENTITY_CONFIGMAP },
      data: { operatorId: 'kept' },
    },
  });
  const identity = await resolveOperatorIdentity({ kube, namespace, log });
  expect(identity).toMatchObject({ operatorId: 'kept', clusterId: kubeSystemUid });
  expect((await configMap(namespace)).data).toEqual({ operatorId: 'kept', clusterId: kubeSystemUid });
});

test('the background resolution retries until the API answers, then reports the identity', async () => {
  const namespace = await freshNamespace();
  let calls = 0;
  const flaky: Pick<KubeClient, 'request'> = {
    request: async (path, init) => {
      calls += 1;
      if (calls <= 2) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return kube.request(path, init) as never;
    },
  };
  const resolution = startIdentityResolution({ kube: flaky, namespace, log, minDelayMs: 1, maxDelayMs: 2 });
  const identity = await resolution.ready;
  expect(resolution.current()).toEqual(identity);
  expect(identity.operatorId).toBe((await configMap(namespace)).data!['operatorId']!);
});

test('the operator binary logs the same identity across a restart', async () => {
  const namespace = await freshNamespace();
  const args = [
    'run',
    '--http-addr=127.0.0.1:0',
    '--grpc-addr=127.0.0.1:0',
    `--namespace=${namespace}`,
    '--leader-election=false',
    '--tailscale-api-url=http://127.0.0.1:9',
    '--log-format=json',
  ];
  const env = { KUBECONFIG: cp.kubeconfigPath, POD_NAME: 'identity-test' };
  const ids: unknown[] = [];
  for (let run = 0; run < 2; run++) {
    const op = await startBinary(args, env);
    running.push(op);
    const record = await op.waitForLog('operator identity', 30_000);
    ids.push([record['operatorId'], record['clusterId']]);
    op.process.kill('SIGKILL');
    await op.process.exited;
  }
  expect(ids[0]).toEqual(ids[1]);
  expect(ids[0]).toEqual([(await configMap(namespace)).data!['operatorId'], kubeSystemUid]);
}, 120_000);
