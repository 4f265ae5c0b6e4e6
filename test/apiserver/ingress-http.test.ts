/**
 * A service of mode HTTP end to end (kube-apiserver, the compiled operator, the fake control plane):
 * Pending until Envoy Gateway's Envoy Service exists and resolved on that Service's event; the
 * Tailscale Service declared on tcp:443; status upstream and hosts; the proxies' config Secrets serve
 * the Web block before they advertise it, and advertise it only once the shared certificate's Secret
 * holds a certificate (the test plays replica 0); no write when reconciled again; Pending
 * NoHTTPListener while the Gateway has no HTTP listener, the certificate kept meanwhile; switched back
 * to TCP (the test playing each replica's tailscaled in its state Secret), un-advertised, 443 dropped
 * until both replicas applied that, then the TCP forwards return and the certificate's Secret goes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { CURRENT_CAP_FILE, SERVE_CONFIG_KEY } from '../../src/proxy/config.ts';
import { configSecretName, proxyBaseName, stateSecretName } from '../../src/proxy/names.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { envoyGatewayCrds } from '../harness/envoy-gateway/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('mode HTTP through the Gateway (kube-apiserver, the compiled operator, the fake control plane)', () => {
  const NS = 'ingress-http';
  const EG_NS = 'envoy-gateway-system';
  const TS = '/apis/gateway.tailscale.com/v1alpha1';
  const GW = '/apis/gateway.networking.k8s.io/v1';
  const SUFFIX = 'tail5678.ts.net';
  const DNS = `grafana.${SUFFIX}`;
  const SERVICE = 'svc:grafana';
  const ENVOY = 'envoy-ingress-http-eg-5f2a9c1b';
  const UPSTREAM = `http://${ENVOY}.${EG_NS}.svc.cluster.local:80`;
  const WEB_BLOCK = {
    TCP: { '443': { HTTPS: true } },
    Web: { [`${DNS}:443`]: { Handlers: { '/': { Proxy: UPSTREAM } } } },
  };
  const SERVICE_API = '/tailnet/{tailnet}/vip-services/{name}';
  const tsgwPath = `${TS}/namespaces/${NS}/tailscalegateways/tsgw`;
  const gatewayPath = `${GW}/namespaces/${NS}/gateways/eg`;
  const base = proxyBaseName(NS, 'ingress', 'pg');
  const configPaths = [0, 1].map((i) => `/api/v1/namespaces/${NS}/secrets/${configSecretName(base, i)}`);
  const statePaths = [0, 1].map((i) => `/api/v1/namespaces/${NS}/secrets/${stateSecretName(base, i)}`);
  const certPath = `/api/v1/namespaces/${NS}/secrets/${DNS}`;
  const CERT = {
    'tls.crt': b64('-----BEGIN CERTIFICATE-----'),
    'tls.key': b64('-----BEGIN PRIVATE KEY-----'),
  };

  interface Entry {
    state: string;
    dnsName?: string;
    upstream?: string;
    hosts?: string[];
    advertisedBy?: number;
    message?: string;
  }
  interface TsgwObject {
    metadata: { resourceVersion: string };
    status?: {
      services?: (Entry & { name: string })[];
      conditions?: { type: string; status: string; reason: string }[];
    };
  }
  interface SecretObject {
    metadata: { resourceVersion: string };
    data?: Record<string, string>;
  }

  let cp: StartedControlPlane;
  let operator: RunningBinary | undefined;
  let fake: FakeTailscale;
  /** Every version of the group's config Secrets, decoded, in watch order. */
  const versions: Record<string, string>[] = [];
  const stopWatch = new AbortController();

  async function ok(res: Response): Promise<unknown> {
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
    return res.status === 204 ? undefined : res.json();
  }
  const apply = async (path: string, body: object) =>
    ok(
      await cp.request(path, {
        method: 'PATCH',
        body,
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: 'ingress-http-test', force: 'true' },
      }),
    );
  const get = async <T>(path: string): Promise<T | undefined> => {
    const res = await cp.request(path);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    return (await ok(res)) as T;
  };
  const decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  const entry = async () =>
    (await get<TsgwObject>(tsgwPath))?.status?.services?.find((s) => s.name === 'grafana');
  const condition = async () =>
    (await get<TsgwObject>(tsgwPath))?.status?.conditions?.find((c) => c.type === 'TailscaleServices');
  const served = (version: Record<string, string> | undefined) =>
    (JSON.parse(version?.[SERVE_CONFIG_KEY] ?? '{}') as { Services?: Record<string, unknown> }).Services ??
    {};
  const advertised = (version: Record<string, string> | undefined): string[] =>
    (JSON.parse(version?.[CURRENT_CAP_FILE] ?? '{}') as { AdvertiseServices?: string[] }).AdvertiseServices ??
    [];
  const config = async (i: number) => {
    const secret = await get<SecretObject>(configPaths[i]!);
    return Object.fromEntries(Object.entries(secret?.data ?? {}).map(([k, v]) => [k, decode(v)]));
  };
  const puts = () => fake.requests.count({ method: 'PUT', endpoint: SERVICE_API });
  const gets = () => fake.requests.count({ method: 'GET', endpoint: SERVICE_API });

  const publish = (service: object) =>
    apply(tsgwPath, {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleGateway',
      metadata: { name: 'tsgw', namespace: NS },
      spec: {
        gatewayRef: { name: 'eg' },
        tailnets: [
          {
            name: 'corp',
            tailscaleTailnetRef: { name: 'corp' },
            ingress: { proxyGroup: 'ingress', services: [{ name: 'grafana', ...service }] },
          },
        ],
      },
    });
  const HTTP_SERVICE = { mode: 'HTTP', target: { name: 'grafana', port: 3000 } };
  const gateway = (listeners: object[]) =>
    apply(gatewayPath, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'eg', namespace: NS },
      spec: { gatewayClassName: 'eg', listeners },
    });
  const HTTP_LISTENER = { name: 'http', protocol: 'HTTP', port: 80 };

  /** Records every version of the config Secrets (from before the operator starts). */
  async function watchConfigSecrets(): Promise<void> {
    const selector = encodeURIComponent('tailscale.com/secret-type=config');
    const res = await fetch(
      `${cp.server}/api/v1/namespaces/${NS}/secrets?watch=1&labelSelector=${selector}`,
      {
        signal: stopWatch.signal,
        tls: { ca: cp.ca, cert: cp.cert, key: cp.key },
      } as RequestInit,
    );
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
            const event = JSON.parse(buffer.slice(0, nl)) as { type: string; object: SecretObject };
            buffer = buffer.slice(nl + 1);
            if (event.type !== 'ADDED' && event.type !== 'MODIFIED') continue;
            versions.push(
              Object.fromEntries(Object.entries(event.object.data ?? {}).map(([k, v]) => [k, decode(v)])),
            );
          }
        }
      } catch {
        // aborted
      }
    })();
  }

  beforeAll(async () => {
    fake = startFakeTailscale();
    fake.state.seedDevice({ name: `laptop.${SUFFIX}` });
    cp = await startControlPlane();
    const gatewayApi = (await envoyGatewayCrds()).filter((crd) =>
      (crd as { metadata: { name: string } }).metadata.name.endsWith('.gateway.networking.k8s.io'),
    );
    await installCrds(cp, [...gatewayApi, ...renderCrds()], 60_000);
    for (const name of [NS, EG_NS])
      await ok(await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name } } }));
    await watchConfigSecrets();
    await ok(
      await cp.request(`/api/v1/namespaces/${NS}/secrets`, {
        method: 'POST',
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'corp-oauth' },
          stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
        },
      }),
    );
    await apply(`${TS}/tailscaletailnets/corp`, {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      spec: { oauthSecretRef: { name: 'corp-oauth', namespace: NS } },
    });
    await apply(`${TS}/namespaces/${NS}/tailscaleproxygroups/ingress`, {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleProxyGroup',
      metadata: { name: 'ingress', namespace: NS },
      spec: { type: 'ingress', tailnet: 'corp', replicas: 2 },
    });
    await gateway([HTTP_LISTENER]);
    operator = await startOperator({ cp, namespace: NS, tailscaleApiUrl: fake.url });
    await eventually(
      () => get<{ status?: { magicDNSSuffix?: string } }>(`${TS}/tailscaletailnets/corp`),
      (t) => t?.status?.magicDNSSuffix === SUFFIX,
    );
  }, 120_000);

  afterAll(async () => {
    stopWatch.abort();
    operator?.process.kill('SIGKILL');
    await cp?.stop();
    await fake?.stop();
  });

  test('no Envoy Service yet: Pending EnvoyServiceNotFound, and no Tailscale Service is created', async () => {
    await publish(HTTP_SERVICE);
    const pending = await eventually(entry, (e) => e?.state === 'Pending');
    expect(pending?.message).toContain('gateway.envoyproxy.io/owning-gateway-name=eg');
    expect(pending?.upstream).toBeUndefined();
    expect(await condition()).toMatchObject({ status: 'False', reason: 'EnvoyServiceNotFound' });
    expect(fake.state.services.has(SERVICE)).toBe(false);
    expect(puts()).toBe(0);
  }, 40_000);

  test('the Envoy Service appears: resolved on its event, declared on tcp:443; served with the Web block, then advertised', async () => {
    // Let the Pending reconcile and what it woke settle; its own retry is 15 s away from then.
    await Bun.sleep(500);
    const created = performance.now();
    await ok(
      await cp.request(`/api/v1/namespaces/${EG_NS}/services`, {
        method: 'POST',
        body: {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: {
            name: ENVOY,
            labels: {
              'app.kubernetes.io/managed-by': 'envoy-gateway',
              'gateway.envoyproxy.io/owning-gateway-namespace': NS,
              'gateway.envoyproxy.io/owning-gateway-name': 'eg',
            },
          },
          spec: { ports: [{ name: 'http-80', protocol: 'TCP', port: 80, targetPort: 10080 }] },
        },
      }),
    );
    const resolved = await eventually(entry, (e) => e?.upstream !== undefined, { timeoutMs: 10_000 });
    // Well inside the 15 s retry of the Pending reconcile: the Service's own event woke the controller.
    expect(performance.now() - created).toBeLessThan(10_000);
    expect(resolved).toMatchObject({
      dnsName: DNS,
      upstream: UPSTREAM,
      hosts: [DNS, 'grafana.corp.gateway.local'],
    });
    expect(fake.state.services.get(SERVICE)?.ports).toEqual(['tcp:443']);
    // Served, but not advertised before replica 0 has the certificate in the Secret made for it.
    const waiting = await eventually(
      entry,
      (e) => e?.message?.includes('waiting for the certificate') ?? false,
      {
        timeoutMs: 30_000,
      },
    );
    expect(waiting).toMatchObject({ state: 'Published', advertisedBy: 0 });
    const cert = await get<SecretObject & { type: string }>(certPath);
    expect(cert).toMatchObject({ type: 'kubernetes.io/tls', data: { 'tls.crt': '', 'tls.key': '' } });
    for (const i of [0, 1]) {
      const secret = await config(i);
      expect(served(secret)[SERVICE]).toEqual(WEB_BLOCK);
      expect(advertised(secret)).toEqual([]);
    }
    await ok(
      await cp.request(certPath, {
        method: 'PATCH',
        contentType: 'application/json-patch+json',
        body: Object.entries(CERT).map(([key, value]) => ({ op: 'add', path: `/data/${key}`, value })),
      }),
    );
    await eventually(entry, (e) => e?.state === 'Advertised' && e.advertisedBy === 2, { timeoutMs: 30_000 });
    expect(await condition()).toMatchObject({ status: 'True', reason: 'Advertised' });
    for (const i of [0, 1]) {
      const secret = await config(i);
      expect(served(secret)[SERVICE]).toEqual(WEB_BLOCK);
      expect(advertised(secret)).toEqual([SERVICE]);
    }
    // Serve before advertise: every version that advertises the service already served the Web block.
    const advertising = versions.filter((v) => advertised(v).includes(SERVICE));
    expect(advertising.length).toBeGreaterThan(0);
    for (const version of advertising) expect(served(version)[SERVICE]).toEqual(WEB_BLOCK);
  }, 60_000);

  test('reconciled twice more with nothing changed: no PUT, no status write, no config Secret write', async () => {
    const putsBefore = puts();
    const secretVersions = await Promise.all(
      [...configPaths, certPath].map(async (p) => (await get<SecretObject>(p))!.metadata.resourceVersion),
    );
    for (const n of [1, 2]) {
      const before = gets();
      const touched = (await ok(
        await cp.request(tsgwPath, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { metadata: { annotations: { 'ingress-http-test/touch': String(n) } } },
        }),
      )) as TsgwObject;
      await eventually(gets, (count) => count > before, { timeoutMs: 10_000 });
      // Give a write, if one were coming, the time to land.
      await Bun.sleep(500);
      expect((await get<TsgwObject>(tsgwPath))!.metadata.resourceVersion).toBe(
        touched.metadata.resourceVersion,
      );
    }
    expect(puts()).toBe(putsBefore);
    const after = await Promise.all(
      [...configPaths, certPath].map(async (p) => (await get<SecretObject>(p))!.metadata.resourceVersion),
    );
    expect(after).toEqual(secretVersions);
  }, 40_000);

  test('the Gateway loses its HTTP listener: Pending NoHTTPListener and un-advertised, the certificate kept; given back, served and advertised again', async () => {
    await gateway([{ name: 'db', protocol: 'TCP', port: 5432 }]);
    await eventually(entry, (e) => e?.state === 'Pending' && e.upstream === undefined, { timeoutMs: 10_000 });
    expect(await condition()).toMatchObject({ status: 'False', reason: 'NoHTTPListener' });
    await eventually(
      async () => [await config(0), await config(1)],
      (secrets) => secrets.every((s) => !advertised(s).includes(SERVICE) && served(s)[SERVICE] === undefined),
      { timeoutMs: 20_000 },
    );
    // Still named by the TailscaleGateway: no new certificate will be needed when it comes back.
    await Bun.sleep(500);
    expect((await get<SecretObject>(certPath))?.data).toEqual(CERT);
    await gateway([HTTP_LISTENER]);
    await eventually(entry, (e) => e?.state === 'Advertised' && e.advertisedBy === 2, { timeoutMs: 30_000 });
    expect((await config(0))[SERVE_CONFIG_KEY]).toContain(`${DNS}:443`);
  }, 60_000);

  test('switched back to mode TCP: 443 dropped until the replicas applied that, then the TCP forwards, declared on tcp:443 and tcp:80, no upstream or hosts; the certificate goes', async () => {
    // The test plays both replicas' tailscaled: each state Secret holds the serve config it applied,
    // under the current profile's key, as tailscaled's kube store writes it.
    const applied = (services: Record<string, unknown>) =>
      Promise.all(
        statePaths.map(async (path) =>
          ok(
            await cp.request(path, {
              method: 'PATCH',
              contentType: 'application/merge-patch+json',
              body: {
                data: {
                  '_current-profile': b64('profile-a1b2'),
                  _serve_a1b2: b64(JSON.stringify({ TCP: {}, Services: services })),
                },
              },
            }),
          ),
        ),
      );
    await applied({ [SERVICE]: WEB_BLOCK });
    const forward = (port: number) => ({ TCPForward: `${ENVOY}.${EG_NS}.svc.cluster.local:${port}` });
    const withheld = { TCP: { '80': forward(80) } };
    const tcp = { TCP: { '80': forward(80), '443': forward(443) } };
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    const from = versions.length;
    await publish({ target: { name: ENVOY, namespace: EG_NS } });
    // tailscaled would refuse TCP on 443 while it serves HTTPS there: un-advertised, then 443 dropped.
    await eventually(
      async () => [await config(0), await config(1)],
      (secrets) => secrets.every((s) => same(served(s)[SERVICE], withheld) && advertised(s).length === 0),
      { timeoutMs: 20_000 },
    );
    await Bun.sleep(1000);
    for (const i of [0, 1]) expect(served(await config(i))[SERVICE]).toEqual(withheld);
    const beforeApplied = versions.slice(from);
    expect(beforeApplied.some((v) => same(served(v)[SERVICE], withheld))).toBe(true);
    for (const version of beforeApplied) {
      expect(served(version)[SERVICE]).not.toEqual(tcp);
      if (same(served(version)[SERVICE], withheld)) expect(advertised(version)).toEqual([]);
    }
    // Only replica 0 applied it: still withheld. Then replica 1 too: the forwards on 443 come.
    await ok(
      await cp.request(statePaths[0]!, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { data: { _serve_a1b2: b64(JSON.stringify({ TCP: {}, Services: { [SERVICE]: withheld } })) } },
      }),
    );
    await Bun.sleep(1000);
    for (const i of [0, 1]) expect(served(await config(i))[SERVICE]).toEqual(withheld);
    await applied({ [SERVICE]: withheld });
    await eventually(
      async () => [await config(0), await config(1)],
      (secrets) => secrets.every((s) => JSON.stringify(served(s)[SERVICE]) === JSON.stringify(tcp)),
      { timeoutMs: 20_000 },
    );
    const settled = await eventually(entry, (e) => e?.state === 'Advertised' && e.upstream === undefined);
    expect(settled?.hosts).toBeUndefined();
    expect(fake.state.services.get(SERVICE)?.ports).toEqual(['tcp:443', 'tcp:80']);
    await eventually(
      () => get(certPath),
      (s) => s === undefined,
      { timeoutMs: 20_000 },
    );
    // No version ever advertised the service without a serve block for it.
    for (const version of versions)
      for (const service of advertised(version)) expect(served(version)[service]).toBeDefined();
  }, 40_000);
});
