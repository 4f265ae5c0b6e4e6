import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, ListWatch, type V1ConfigMap } from '@kubernetes/client-node';
import { OperatorError } from '../../src/errors.ts';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { type ControlPlane, sharedControlPlane } from '../harness/control-plane/index.ts';
import { generatePki } from '../harness/control-plane/pki.ts';
import { waitUntil } from '../harness/support/eventually.ts';

let cp: ControlPlane;
let client: KubeClient;
let tmp: string;
const namespace = `kube-client-${Date.now().toString(36)}`;

beforeAll(async () => {
  cp = await sharedControlPlane();
  client = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  tmp = mkdtempSync(join(tmpdir(), 'tsgw-kube-client-'));
  await client.core.createNamespace({ body: { metadata: { name: namespace } } });
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

async function expectOperatorError(promise: Promise<unknown>): Promise<OperatorError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(OperatorError);
    return error as OperatorError;
  }
  throw new Error('expected the call to fail');
}

describe('typed APIs over the Bun transport', () => {
  test('lists namespaces with the client-certificate kubeconfig', async () => {
    const list = await client.core.listNamespace();
    const names = list.items.map((ns) => ns.metadata?.name);
    expect(names).toContain('default');
    expect(names).toContain(namespace);
  });

  test('creates, reads and deletes a ConfigMap', async () => {
    const created = await client.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'crud' }, data: { greeting: 'hello' } },
    });
    expect(created.metadata?.uid).toBeString();
    const read = await client.core.readNamespacedConfigMap({ namespace, name: 'crud' });
    expect(read.data).toEqual({ greeting: 'hello' });
    await client.core.deleteNamespacedConfigMap({ namespace, name: 'crud' });
    const gone = await expectOperatorError(client.core.readNamespacedConfigMap({ namespace, name: 'crud' }));
    expect(gone.code).toBe('NotFound');
  });

  test('404 is NotFound with the Status message and no headers', async () => {
    const error = await expectOperatorError(
      client.core.readNamespacedConfigMap({ namespace, name: 'missing' }),
    );
    expect(error.code).toBe('NotFound');
    expect(error.status).toBe(404);
    expect(error.message).toContain('configmaps "missing" not found');
    expect(error.message).not.toMatch(/headers|content-type|audit-id/i);
  });

  test('409 on a stale resourceVersion is Conflict; on create of an existing object, AlreadyExists', async () => {
    const body = { metadata: { name: 'conflict' }, data: { n: '1' } };
    const first = await client.core.createNamespacedConfigMap({ namespace, body });
    const duplicate = await expectOperatorError(client.core.createNamespacedConfigMap({ namespace, body }));
    expect(duplicate.status).toBe(409);
    expect(duplicate.code).toBe('AlreadyExists');
    await client.core.replaceNamespacedConfigMap({
      namespace,
      name: 'conflict',
      body: { ...first, data: { n: '2' } },
    });
    const stale = await expectOperatorError(
      client.core.replaceNamespacedConfigMap({
        namespace,
        name: 'conflict',
        body: { ...first, data: { n: '3' } },
      }),
    );
    expect(stale.status).toBe(409);
    expect(stale.code).toBe('Conflict');
  });
});

describe('server-side apply', () => {
  test('creates, then updates, with the field manager in managedFields', async () => {
    const applied = await client.applyObject<V1ConfigMap>({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ssa', namespace },
      data: { a: '1' },
    });
    expect(applied.data).toEqual({ a: '1' });
    const updated = await client.applyObject<V1ConfigMap>({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ssa', namespace, labels: { app: 'tsgw' } },
      data: { a: '2', b: '3' },
    });
    expect(updated.data).toEqual({ a: '2', b: '3' });
    expect(updated.metadata?.labels).toEqual({ app: 'tsgw' });
    const managers = updated.metadata?.managedFields?.map((entry) => `${entry.manager}/${entry.operation}`);
    expect(managers).toEqual(['tailscale-gateway/Apply']);
  });

  test('a field owned by another manager is a Conflict unless forced', async () => {
    const object = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa-owned', namespace } };
    await client.applyObject({ ...object, data: { k: 'mine' } });
    const conflict = await expectOperatorError(
      client.applyObject({ ...object, data: { k: 'theirs' } }, { fieldManager: 'someone-else' }),
    );
    expect(conflict.code).toBe('Conflict');
    expect(conflict.message).toContain('conflict');
    const forced = await client.applyObject<V1ConfigMap>(
      { ...object, data: { k: 'theirs' } },
      { fieldManager: 'someone-else', force: true },
    );
    expect(forced.data).toEqual({ k: 'theirs' });
  });

  test('dry run stores nothing; cluster-scoped kinds and other groups resolve by discovery', async () => {
    await client.applyObject(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry', namespace }, data: { x: '1' } },
      { dryRun: true },
    );
    expect(
      (await expectOperatorError(client.core.readNamespacedConfigMap({ namespace, name: 'dry' }))).code,
    ).toBe('NotFound');
    const role = await client.applyObject<{ apiVersion: string; kind: string; metadata: { name: string } }>({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: `tsgw-test-${namespace}` },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    } as never);
    expect(role.metadata.name).toBe(`tsgw-test-${namespace}`);
    expect(await client.pathFor({ apiVersion: 'apps/v1', kind: 'Deployment', namespace })).toBe(
      `/apis/apps/v1/namespaces/${namespace}/deployments`,
    );
    const unknown = await expectOperatorError(client.pathFor({ apiVersion: 'example.com/v1', kind: 'Nope' }));
    expect(unknown.code).toBe('NotFound');
  });
});

describe('watch', () => {
  test('sees ADDED, MODIFIED and DELETED', async () => {
    const events: string[] = [];
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    const list = await client.core.listNamespacedConfigMap({ namespace });
    const controller = await client.watch.watch(
      path,
      { resourceVersion: list.metadata?.resourceVersion, fieldSelector: 'metadata.name=watched' },
      (type, obj: V1ConfigMap) => events.push(`${type}:${obj.data?.v ?? ''}`),
      () => {},
    );
    try {
      const apply = (v: string) =>
        client.applyObject({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'watched', namespace },
          data: { v },
        });
      await apply('1');
      await apply('2');
      await client.core.deleteNamespacedConfigMap({ namespace, name: 'watched' });
      await waitUntil(() => events.length >= 3, 'three watch events');
      expect(events).toEqual(['ADDED:1', 'MODIFIED:2', 'DELETED:2']);
    } finally {
      controller.abort();
    }
  });

  test('the server accepts the bookmark query and sends the initial-events BOOKMARK', async () => {
    const events: { type: string; annotations?: Record<string, string> }[] = [];
    let doneWith: unknown = 'not yet';
    const controller = await client.watch.watch(
      `/api/v1/namespaces/${namespace}/configmaps`,
      { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan' },
      (type, obj: V1ConfigMap) =>
        events.push({
          type,
          ...(obj.metadata?.annotations ? { annotations: obj.metadata.annotations } : {}),
        }),
      (err) => {
        doneWith = err;
      },
    );
    try {
      await waitUntil(
        () => events.some((e) => e.type === 'BOOKMARK') || doneWith !== 'not yet',
        'a BOOKMARK',
      );
      expect(doneWith).toBe('not yet');
      const bookmark = events.find((e) => e.type === 'BOOKMARK');
      expect(bookmark?.annotations?.['k8s.io/initial-events-end']).toBe('true');
      // Initial events for the ConfigMaps created above arrive before the bookmark.
      expect(events.findIndex((e) => e.type === 'ADDED')).toBeLessThan(
        events.findIndex((e) => e.type === 'BOOKMARK'),
      );
    } finally {
      controller.abort();
    }
    await waitUntil(() => doneWith !== 'not yet', 'done after abort');
    expect(doneWith).toBeNull();
  });

  test("client-node's ListWatch on our Watch keeps a cache in sync", async () => {
    const informer = new ListWatch<V1ConfigMap>(
      `/api/v1/namespaces/${namespace}/configmaps`,
      client.watch,
      () => client.core.listNamespacedConfigMap({ namespace, labelSelector: 'informer=yes' }),
      false,
      'informer=yes',
    );
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    await client.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'lw-before', labels: { informer: 'yes' } }, data: { v: '0' } },
    });
    await informer.start();
    try {
      await waitUntil(() => informer.get('lw-before', namespace) !== undefined, 'the initial list');
      await client.core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: 'lw-after', labels: { informer: 'yes' } }, data: { v: '1' } },
      });
      await waitUntil(() => informer.get('lw-after', namespace) !== undefined, 'the added object');
      await client.core.patchNamespacedConfigMap(
        { namespace, name: 'lw-after', body: [{ op: 'replace', path: '/data/v', value: '2' }] },
        undefined,
      );
      await waitUntil(() => informer.get('lw-after', namespace)?.data?.v === '2', 'the update');
      await client.core.deleteNamespacedConfigMap({ namespace, name: 'lw-before' });
      await waitUntil(() => informer.get('lw-before', namespace) === undefined, 'the delete');
      expect(informer.list(namespace).map((cm) => cm.metadata?.name)).toEqual(['lw-after']);
      expect(errors).toEqual([]);
    } finally {
      await informer.stop();
    }
  });
});

describe('credentials', () => {
  function writeKubeconfig(
    name: string,
    cluster: Record<string, string>,
    user: Record<string, string>,
  ): string {
    const path = join(tmp, name);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cp.server, ...cluster } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return path;
  }
  const b64 = (pem: string) => Buffer.from(pem).toString('base64');

  test('a kubeconfig with the wrong CA fails fast with a TLS error', async () => {
    const otherCa = generatePki(mkdtempSync(join(tmp, 'other-pki-')));
    const kubeconfig = writeKubeconfig(
      'bad-ca.yaml',
      { 'certificate-authority': otherCa.caCert },
      { 'client-certificate-data': b64(cp.cert), 'client-key-data': b64(cp.key) },
    );
    const bad = createKubeClient({ kubeconfig, timeoutMs: 5_000 });
    const started = performance.now();
    const error = await expectOperatorError(bad.core.listNamespace());
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(error.code).toBe('Invalid');
    expect(error.message).toContain('TLS verification');
    // Our fetch must not reuse a pooled connection verified with the right CA.
    const viaWatch = await new Promise<unknown>((resolve) => {
      void bad.watch.watch('/api/v1/namespaces', {}, () => {}, resolve);
    });
    expect((viaWatch as OperatorError).code).toBe('Invalid');
  });

  test('tls-server-name is the name the serving certificate is checked against', async () => {
    const user = { 'client-certificate-data': b64(cp.cert), 'client-key-data': b64(cp.key) };
    const ca = { 'certificate-authority-data': b64(cp.ca) };
    const good = createKubeClient({
      kubeconfig: writeKubeconfig(
        'sni-good.yaml',
        { ...ca, 'tls-server-name': 'kubernetes.default.svc' },
        user,
      ),
    });
    expect((await good.core.readNamespace({ name: 'default' })).metadata?.name).toBe('default');
    const wrong = createKubeClient({
      kubeconfig: writeKubeconfig(
        'sni-wrong.yaml',
        { ...ca, 'tls-server-name': 'not-in-the-cert.example' },
        user,
      ),
      timeoutMs: 5_000,
    });
    const error = await expectOperatorError(wrong.core.readNamespace({ name: 'default' }));
    expect(error.code).toBe('Invalid');
  });

  test('a ServiceAccount token from the TokenRequest API authenticates, and RBAC applies to it', async () => {
    await client.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'reader' } } });
    // Not the built-in `view`: it is an aggregated role, and without a controller-manager it has no rules.
    await client.applyObject({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'configmap-reader', namespace },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
    } as never);
    await client.applyObject({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'reader', namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
    } as never);
    const tokenRequest = await client.core.createNamespacedServiceAccountToken({
      namespace,
      name: 'reader',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = tokenRequest.status?.token;
    expect(token).toBeString();
    const kubeconfig = writeKubeconfig(
      'token.yaml',
      { 'certificate-authority-data': b64(cp.ca) },
      { token: token! },
    );
    const reader = createKubeClient({ kubeconfig });
    const list = await reader.core.listNamespacedConfigMap({ namespace });
    expect(list.items.length).toBeGreaterThan(0);
    const forbidden = await expectOperatorError(reader.core.listNamespace());
    expect(forbidden.status).toBe(403);
    expect(forbidden.code).toBe('Unauthorized');
    expect(forbidden.message).not.toContain(token!);
    // The watch carries the token too.
    const events: string[] = [];
    const controller = await reader.watch.watch(
      `/api/v1/namespaces/${namespace}/configmaps`,
      {},
      (type) => events.push(type),
      () => {},
    );
    await waitUntil(() => events.length > 0, 'watch events as the ServiceAccount');
    controller.abort();
  });

  test('an already-loaded KubeConfig can be passed in', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const viaObject = createKubeClient({ kubeConfig: kc });
    expect(viaObject.server).toBe(cp.server);
    expect((await viaObject.core.readNamespace({ name: namespace })).metadata?.name).toBe(namespace);
  });
});
