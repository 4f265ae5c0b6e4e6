/**
 * TailscaleTailnet end to end: the compiled binary's `run` against a real kube-apiserver, talking to the
 * fake Tailscale control plane. Good credentials become Ready; a wrong secret gets a clear condition
 * without a hot loop; fixing the Secret makes it Ready without a restart; a missing key is named.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Tailnet {
  metadata: { name: string; resourceVersion: string };
  status?: { conditions?: Condition[]; magicDNSSuffix?: string };
}

let cp: StartedControlPlane;
let fake: FakeTailscale;
let operator: RunningBinary;

const TAILNETS = '/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets';
const SECRETS = '/api/v1/namespaces/tailscale/secrets';

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}
const b64 = (s: string) => Buffer.from(s).toString('base64');
const putSecret = async (name: string, data: Record<string, string>) => {
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'tailscale' },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
  const existing = await cp.request(`${SECRETS}/${name}`);
  if (existing.status === 404) return ok(await cp.request(SECRETS, { method: 'POST', body }));
  return ok(await cp.request(`${SECRETS}/${name}`, { method: 'PUT', body }));
};
const createTailnet = (name: string, secret: string) =>
  cp
    .request(TAILNETS, {
      method: 'POST',
      body: {
        apiVersion: 'gateway.tailscale.com/v1alpha1',
        kind: 'TailscaleTailnet',
        metadata: { name },
        spec: { oauthSecretRef: { name: secret, namespace: 'tailscale' } },
      },
    })
    .then(ok);
const getTailnet = async (name: string) => (await ok(await cp.request(`${TAILNETS}/${name}`))) as Tailnet;
const ready = (t: Tailnet) => t.status?.conditions?.find((c) => c.type === 'Ready');

async function reconcileCount(): Promise<number> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  return [
    ...text.matchAll(
      /^controller_runtime_reconcile_total\{controller="tailscaletailnet",result="[a-z_]+"\} (\d+)/gm,
    ),
  ]
    .map((m) => Number(m[1]))
    .reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  cp = await startControlPlane();
  await installCrds(cp, renderCrds());
  await ok(
    await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: 'tailscale' } } }),
  );
  fake = await startFakeTailscale();
  fake.state.seedDevice({ name: 'web.tail1234.ts.net' });
  operator = await startOperator({
    cp,
    namespace: 'default',
    leaderElection: true,
    tailscaleApiUrl: fake.url,
  });
  await operator.waitForLog(/leading: starting controllers/, 30_000);
}, 120_000);

afterAll(async () => {
  operator?.process.kill('SIGKILL');
  await fake?.stop();
  await cp?.stop();
});

describe('TailscaleTailnet', () => {
  test('good credentials: Ready, every scope granted, MagicDNS suffix learnt', async () => {
    await putSecret('good', { client_id: fake.clientId, client_secret: fake.clientSecret });
    await createTailnet('corp', 'good');
    const tailnet = await eventually(
      () => getTailnet('corp'),
      (t) => ready(t)?.status === 'True',
    );
    expect(tailnet.status?.conditions?.map((c) => [c.type, c.status])).toEqual([
      ['Ready', 'True'],
      ['Authenticated', 'True'],
      ['DevicesAccess', 'True'],
      ['AuthKeysAccess', 'True'],
      ['ServicesAccess', 'True'],
    ]);
    expect(tailnet.status?.magicDNSSuffix).toBe('tail1234.ts.net');
    // `kubectl get tstn`: the tailnet as named in API paths ("-": the OAuth client's) and its DNS name.
    const table = (await (
      await fetch(new URL(`${cp.server}${TAILNETS}`), {
        headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
        tls: { ca: cp.ca, cert: cp.cert, key: cp.key },
      })
    ).json()) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    const row = table.rows.find((r) => r.cells[0] === 'corp')!;
    expect(Object.fromEntries(table.columnDefinitions.map((c, i) => [c.name, row.cells[i]]))).toMatchObject({
      Tailnet: '-',
      MagicDNS: 'tail1234.ts.net',
      Ready: 'True',
    });
  });

  test('a missing key is named in the condition', async () => {
    await putSecret('half', { client_id: fake.clientId });
    await createTailnet('half', 'half');
    const tailnet = await eventually(
      () => getTailnet('half'),
      (t) => ready(t)?.reason === 'SecretKeyMissing',
    );
    expect(ready(tailnet)?.message).toContain('"client_secret"');
  });

  test('a wrong secret: clear condition, and no hot loop over 30 s', async () => {
    await putSecret('wrong', { client_id: fake.clientId, client_secret: 'tskey-client-wrong' });
    await createTailnet('wrong', 'wrong');
    const tailnet = await eventually(
      () => getTailnet('wrong'),
      (t) => ready(t)?.reason === 'InvalidCredentials',
    );
    expect(ready(tailnet)?.status).toBe('False');
    expect(JSON.stringify(tailnet.status)).not.toContain('tskey-client-wrong');

    const reconcilesBefore = await reconcileCount();
    const callsBefore = fake.requests.all.length;
    const versionBefore = (await getTailnet('wrong')).metadata.resourceVersion;
    const goodVersionBefore = (await getTailnet('corp')).metadata.resourceVersion;
    await Bun.sleep(30_000);
    const reconciles = (await reconcileCount()) - reconcilesBefore;
    const calls = fake.requests.all.length - callsBefore;
    console.log(`30 s with a wrong secret: ${reconciles} reconciles, ${calls} Tailscale API calls`);
    expect(reconciles).toBeLessThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(10);
    // Nothing changed, so nothing was written: neither the failing nor the healthy tailnet.
    expect((await getTailnet('wrong')).metadata.resourceVersion).toBe(versionBefore);
    expect((await getTailnet('corp')).metadata.resourceVersion).toBe(goodVersionBefore);
  }, 90_000);

  test('fixing the Secret makes it Ready without a restart', async () => {
    await putSecret('wrong', { client_id: fake.clientId, client_secret: fake.clientSecret });
    const tailnet = await eventually(
      () => getTailnet('wrong'),
      (t) => ready(t)?.status === 'True',
    );
    expect(ready(tailnet)?.reason).toBe('Ready');
  });

  test('/readyz reports leadership beside readiness', async () => {
    const body = (await (await fetch(`${operator.httpUrl}/readyz`)).json()) as {
      leadership?: { leader: boolean; identity: string };
    };
    expect(body.leadership?.leader).toBe(true);
  });

  test('the leader releases its Lease on SIGTERM', async () => {
    operator.process.kill('SIGTERM');
    expect(await operator.process.exited).toBe(0);
    const lease = (await ok(
      await cp.request('/apis/coordination.k8s.io/v1/namespaces/default/leases/tailscale-gateway'),
    )) as { spec: { holderIdentity?: string } };
    expect(lease.spec.holderIdentity ?? '').toBe('');
  });
});
