/**
 * The certificate an ingress TailscaleProxyGroup's replicas share for a mode-HTTP service served with
 * HTTPS (real kube-apiserver, controllers in-process, the TailscaleGateway's status.services written by
 * the test in place of the services controller): the Secret is created once, empty, before the serve
 * block reaches the proxies; the group's Role names it; the service is advertised only once "replica 0"
 * (the test, patching the Secret as tailscaled's kube store does) has written a certificate; the
 * operator's own applies never reset it; on removal it goes after un-advertising and after the serve
 * block has left every config Secret; deleting the group removes it. Two groups hosting one name share
 * the one Secret: the older keeps it, and the other re-creates it when the older lets it go.
 *
 * Renewals (src/proxy/certificate-revision.ts): the first certificate is only recorded on the
 * StatefulSet; a different one later (replica 0 renewed) changes the Pod template's revision once, so
 * the Pods roll; a write of the Secret that leaves the certificate as it is writes nothing. No
 * annotation, Event or log line carries the certificate or the key.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { V1Role, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION } from '../../src/api/index.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from '../../src/proxy/config.ts';
import {
  APPLIED_ANNOTATION,
  CERTIFICATES_REVISION_ANNOTATION,
  CERTIFICATES_SEEN_ANNOTATION,
  configSecretName,
  proxyBaseName,
} from '../../src/proxy/names.ts';
import { decoded, eventually, type Harness, startHarness } from '../harness/proxy-controllers.ts';
import { httpsPublisher, publishedStatus } from '../harness/support/published-service.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('proxy-cert', { tailscaleGateways: true, captureLogs: true });
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const DNS = 'grafana.tail1234.ts.net';
const SERVICE = 'svc:grafana';
const UPSTREAM = 'http://envoy-eg.envoy-gateway-system.svc.cluster.local:80';
const CERT = Buffer.from('-----BEGIN CERTIFICATE-----\nnot a real one\n').toString('base64');
const KEY = Buffer.from('-----BEGIN PRIVATE KEY-----\nnot a real one\n').toString('base64');
const RENEWED_CERT = Buffer.from('-----BEGIN CERTIFICATE-----\nthe renewed one\n').toString('base64');
const RENEWED_KEY = Buffer.from('-----BEGIN PRIVATE KEY-----\nthe renewed key\n').toString('base64');

const opNs = () => h.operatorNamespace;
const base = () => proxyBaseName(h.appNamespace, 'https', 'pg');
const certPath = () => `/api/v1/namespaces/${opNs()}/secrets/${DNS}`;
const configPath = (i: number) => `/api/v1/namespaces/${opNs()}/secrets/${configSecretName(base(), i)}`;
const tsgwPath = (name = 'tsgw') =>
  `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscalegateways/${name}`;
const groupPath = (name = 'https') =>
  `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleproxygroups/${name}`;

const config = async (i: number) => decoded(await h.get<V1Secret>(configPath(i)));
const served = (data: Record<string, string>) =>
  (JSON.parse(data[SERVE_CONFIG_KEY] ?? '{}') as { Services?: Record<string, unknown> }).Services ?? {};
const advertised = (data: Record<string, string>): string[] =>
  (JSON.parse(data[CURRENT_CAP_FILE] ?? '{}') as { AdvertiseServices?: string[] }).AdvertiseServices ?? [];
const stsOf = (group = base()) =>
  h.get<V1StatefulSet>(`/apis/apps/v1/namespaces/${opNs()}/statefulsets/${group}`);
const seenOf = (sts: V1StatefulSet | undefined): Record<string, string> =>
  JSON.parse(sts?.metadata?.annotations?.[CERTIFICATES_SEEN_ANNOTATION] ?? '{}');
const revisionOf = (sts: V1StatefulSet | undefined) =>
  sts?.spec?.template.metadata?.annotations?.[CERTIFICATES_REVISION_ANNOTATION];
const certRule = (role: V1Role | undefined) =>
  role?.rules?.find((r) => r.resourceNames?.includes(DNS) && r.resources?.includes('secrets'));

/** A TailscaleGateway publishing grafana (mode HTTP, HTTPS) through a group, "Published" in status. */
async function publish(name = 'tsgw', group = 'https'): Promise<void> {
  await h.request(`/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscalegateways`, {
    method: 'POST',
    body: httpsPublisher({ name, proxyGroup: group }),
  });
  await h.request(`${tsgwPath(name)}/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: publishedStatus(DNS, UPSTREAM),
  });
}

/** What replica 0's tailscaled does once it has (or renewed) the certificate: a JSON patch of the two keys. */
async function playReplicaZero(cert = CERT, key = KEY): Promise<void> {
  await h.request(certPath(), {
    method: 'PATCH',
    contentType: 'application/json-patch+json',
    body: [
      { op: 'add', path: '/data/tls.crt', value: cert },
      { op: 'add', path: '/data/tls.key', value: key },
    ],
  });
}

describe('a shared certificate for an HTTPS service of an ingress TailscaleProxyGroup', () => {
  test('created empty with the Role naming it and the serve block written, not advertised; nothing rewritten when reconciled twice', async () => {
    await h.createProxyGroup('https', { type: 'ingress', tailnet: 'corp', replicas: 2 });
    const sts = await eventually(
      () => h.get<V1StatefulSet>(`/apis/apps/v1/namespaces/${opNs()}/statefulsets/${base()}`),
      (s) => s !== undefined,
    );
    expect(sts!.spec!.template.spec!.containers[0]!.env).toContainEqual({
      name: 'TS_EXPERIMENTAL_CERT_SHARE',
      value: 'true',
    });
    await publish();
    const cert = await eventually(
      () => h.get<V1Secret>(certPath()),
      (s) => s !== undefined,
    );
    expect(cert!.type).toBe('kubernetes.io/tls');
    expect(cert!.data).toEqual({ 'tls.crt': '', 'tls.key': '' });
    expect(cert!.metadata?.labels).toMatchObject({
      'tailscale.com/managed': 'true',
      'tailscale.com/secret-type': 'certs',
      'tailscale.com/proxy-group': base(),
      'tailscale-gateway.tailscale.com/parent-name': 'https',
    });
    const role = await h.get<V1Role>(
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/roles/${base()}`,
    );
    expect(certRule(role)).toEqual({
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: [DNS],
      verbs: ['get', 'list', 'patch', 'update'],
    });
    await eventually(
      async () => [await config(0), await config(1)],
      (secrets) => secrets.every((s) => served(s)[SERVICE] !== undefined),
    );
    await h.settle();
    for (const i of [0, 1]) expect(advertised(await config(i))).toEqual([]);
    const key = `${h.appNamespace}/https`;
    expect(await h.reconcileAgain('proxyGroups', key)).toEqual([]);
    expect(await h.reconcileAgain('proxyGroups', key)).toEqual([]);
  });

  test('advertised once replica 0 wrote the certificate; the operator never resets it, not even when repairing drift', async () => {
    const generation = (await stsOf())!.metadata!.generation;
    await playReplicaZero();
    await eventually(
      async () => [await config(0), await config(1)],
      (secrets) => secrets.every((s) => advertised(s).includes(SERVICE)),
    );
    // The first certificate is recorded on the StatefulSet, not its Pod template: no roll (a replica
    // that had none reads the Secret at its next handshake).
    const sts = await eventually(stsOf, (s) => seenOf(s)[DNS] !== undefined);
    expect(seenOf(sts)).toEqual({ [DNS]: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(revisionOf(sts)).toBeUndefined();
    expect(sts!.metadata!.generation).toBe(generation);
    expect(await h.reconcileAgain('proxyGroups', `${h.appNamespace}/https`)).toEqual([]);
    // Someone edits the operator's annotation: it applies the Secret again, without touching the data.
    await h.request(certPath(), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { [APPLIED_ANNOTATION]: 'edited' } } },
    });
    const repaired = await eventually(
      () => h.get<V1Secret>(certPath()),
      (s) => s?.metadata?.annotations?.[APPLIED_ANNOTATION] !== 'edited',
    );
    expect(repaired!.data).toEqual({ 'tls.crt': CERT, 'tls.key': KEY });
    await h.settle();
    expect((await h.get<V1Secret>(certPath()))!.data).toEqual({ 'tls.crt': CERT, 'tls.key': KEY });
  });

  test('renewed by replica 0: the Pod template changes once, so the Pods roll; reconciled again, nothing is written', async () => {
    const before = (await stsOf())!;
    const firstHash = seenOf(before)[DNS]!;
    await playReplicaZero(RENEWED_CERT, RENEWED_KEY);
    const rolled = await eventually(stsOf, (s) => revisionOf(s) !== undefined);
    await h.settle();
    const after = (await stsOf())!;
    expect(after.metadata!.generation).toBe(before.metadata!.generation! + 1);
    expect(revisionOf(after)).toBe(revisionOf(rolled)!);
    expect(revisionOf(after)).toMatch(/^[0-9a-f]{16}$/);
    expect(seenOf(after)).toEqual({ [DNS]: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(seenOf(after)[DNS]).not.toBe(firstHash);
    // Only the template's annotation changed: the rest of the Pod template is what it was.
    expect({ ...after.spec!.template.metadata, annotations: undefined }).toEqual({
      ...before.spec!.template.metadata,
      annotations: undefined,
    });
    expect(after.spec!.template.spec).toEqual(before.spec!.template.spec);
    expect(h.events.filter((e) => e.reason === 'CertificateRenewed').map((e) => e.message)).toContain(
      `rolling the proxies to serve the renewed certificate of ${DNS}`,
    );
    expect(await h.reconcileAgain('proxyGroups', `${h.appNamespace}/https`)).toEqual([]);
    expect((await stsOf())!.metadata!.generation).toBe(after.metadata!.generation);
  });

  test('a write of the Secret that keeps its certificate (labels only) wakes the group and writes nothing', async () => {
    await h.settle();
    const key = `${h.appNamespace}/https`;
    const generation = (await stsOf())!.metadata!.generation;
    const writesBefore = h.writes.length;
    const syncsBefore = h.syncs.filter((s) => s.key === key).length;
    await h.request(certPath(), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { metadata: { labels: { 'example.com/touched': 'yes' } } },
    });
    await eventually(
      () => h.syncs.filter((s) => s.key === key).length,
      (n) => n > syncsBefore,
    );
    await h.settle();
    expect(h.writes.slice(writesBefore)).toEqual([]);
    expect((await stsOf())!.metadata!.generation).toBe(generation);
    expect((await h.get<V1Secret>(certPath()))!.data).toEqual({
      'tls.crt': RENEWED_CERT,
      'tls.key': RENEWED_KEY,
    });
  });

  test('no annotation, Event or log line carries the certificate or the key', async () => {
    const material = [CERT, KEY, RENEWED_CERT, RENEWED_KEY].flatMap((b64) => {
      const text = Buffer.from(b64, 'base64').toString('utf8');
      return [b64, text, JSON.stringify(text).slice(1, -1), text.split('\n')[1]!];
    });
    const sts = (await stsOf())!;
    const annotations = JSON.stringify([
      sts.metadata?.annotations,
      sts.spec?.template.metadata?.annotations,
      (await h.get<V1Secret>(certPath()))?.metadata?.annotations,
    ]);
    expect(h.logs.length).toBeGreaterThan(0);
    for (const [where, text] of [
      ['annotations', annotations],
      ['events', JSON.stringify(h.events)],
      ['logs', h.logs.join('')],
    ] as const)
      for (const m of material) expect(text.includes(m), `${where} contain ${JSON.stringify(m)}`).toBe(false);
  });

  test('removed: un-advertised, then the serve block goes, then the Secret and its Role rule', async () => {
    const writesBefore = h.writes.length;
    await h.request(tsgwPath(), { method: 'DELETE' });
    await eventually(
      () => h.get(certPath()),
      (s) => s === undefined,
    );
    const writes = h.writes.slice(writesBefore);
    const certDeleted = writes.findIndex((w) => w.verb === 'delete' && w.name === `${opNs()}/${DNS}`);
    const configWrites = writes
      .map((w, i) => ({ ...w, i }))
      .filter((w) => w.verb === 'apply' && w.kind === 'Secret' && w.name.endsWith('-config'));
    // At least two writes of each config Secret (un-advertise, then drop the serve block; a lagging
    // cache can cost one more), all before the delete.
    expect(configWrites.length).toBeGreaterThanOrEqual(4);
    expect(certDeleted).toBeGreaterThan(configWrites.at(-1)!.i);
    for (const i of [0, 1]) {
      const data = await config(i);
      expect(advertised(data)).toEqual([]);
      expect(served(data)).toEqual({});
    }
    const role = await eventually(
      () => h.get<V1Role>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/roles/${base()}`),
      (r) => certRule(r) === undefined,
    );
    expect(role!.rules?.map((r) => r.resources)).toEqual([['secrets'], ['events']]);
  });

  test('deleting the group removes its certificate Secret with everything else', async () => {
    await publish();
    await eventually(
      () => h.get<V1Secret>(certPath()),
      (s) => s !== undefined,
    );
    await h.request(groupPath(), { method: 'DELETE' });
    await h.playGarbageCollector(base());
    await eventually(
      () => h.get(groupPath()),
      (g) => g === undefined,
    );
    expect(await h.get(certPath())).toBeUndefined();
  });
});

describe('two groups hosting one name', () => {
  const first = () => proxyBaseName(h.appNamespace, 'first', 'pg');
  const second = () => proxyBaseName(h.appNamespace, 'second', 'pg');
  const configOf = async (group: string, i: number) =>
    decoded(await h.get<V1Secret>(`/api/v1/namespaces/${opNs()}/secrets/${configSecretName(group, i)}`));
  const roleOf = (group: string) =>
    h.get<V1Role>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${opNs()}/roles/${group}`);

  test("share the older one's Secret; when it lets the Secret go, the other re-creates it", async () => {
    await h.createProxyGroup('first', { type: 'ingress', tailnet: 'corp', replicas: 1 });
    await Bun.sleep(1100); // creationTimestamp has a resolution of a second
    await h.createProxyGroup('second', { type: 'ingress', tailnet: 'corp', replicas: 1 });
    await publish('one', 'first');
    await publish('two', 'second');
    const held = await eventually(
      () => h.get<V1Secret>(certPath()),
      (s) => s !== undefined,
    );
    for (const group of [first(), second()])
      await eventually(
        () => roleOf(group),
        (r) => certRule(r) !== undefined,
      );
    await h.settle();
    expect((await h.get<V1Secret>(certPath()))!.metadata?.labels?.['tailscale.com/proxy-group']).toBe(
      first(),
    );
    expect((await h.get<V1Secret>(certPath()))!.metadata?.resourceVersion).toBe(
      held!.metadata?.resourceVersion,
    );
    await playReplicaZero();
    for (const group of [first(), second()])
      await eventually(
        () => configOf(group, 0),
        (data) => advertised(data).includes(SERVICE),
      );
    // The older group stops hosting it: it deletes the Secret, and the other group makes a new one.
    await h.request(tsgwPath('one'), { method: 'DELETE' });
    const remade = await eventually(
      () => h.get<V1Secret>(certPath()),
      (s) => s !== undefined && s.metadata?.labels?.['tailscale.com/proxy-group'] === second(),
    );
    expect(remade!.data).toEqual({ 'tls.crt': '', 'tls.key': '' });
    await eventually(
      () => configOf(second(), 0),
      (data) => advertised(data).length === 0,
    );
    await playReplicaZero();
    await eventually(
      () => configOf(second(), 0),
      (data) => advertised(data).includes(SERVICE),
    );
    // Both groups recorded the certificate when it was first issued; issued again the same, it rolls
    // neither.
    await h.settle();
    for (const group of [first(), second()]) {
      const sts = await stsOf(group);
      expect(Object.keys(seenOf(sts))).toEqual([DNS]);
      expect(revisionOf(sts)).toBeUndefined();
    }
    for (const name of ['first', 'second']) {
      await h.request(groupPath(name), { method: 'DELETE' });
      await h.playGarbageCollector(proxyBaseName(h.appNamespace, name, 'pg'));
    }
    await eventually(
      () => h.get(certPath()),
      (s) => s === undefined,
    );
  });
});
