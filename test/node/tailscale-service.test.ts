/**
 * A TailscaleGateway publishes Tailscale Services, hosted by the operator's own ingress proxies (a
 * TailscaleProxyGroup of 2 replicas, real containerboot and tailscaled v1.102.2 in Pods of the one-node
 * cluster), and an untagged tailnet client device (real tailscaled, test/harness/tailscale) reaches
 * them. The Tailscale Service is defined through the fake Tailscale API, which delegates to the tests'
 * control server, so what the operator declared is what control routes: the VIP goes to a replica only
 * while that replica reports the service Active over c2n, as real control does.
 *
 * Envoy Gateway is not on the node here. The proxies' upstream of a mode-HTTP service is "the Service
 * carrying EG's owning-gateway labels for the joined Gateway, on its HTTP listener's port"
 * (src/resources/tailscale-gateway/tailscale-gateway-upstream.ts): the operator finds it by those
 * labels alone and the proxies speak plain HTTP to it. So an echo server Pod behind a Service with
 * those labels stands in for Envoy exactly where the operator and the proxies touch it; what Envoy would
 * do next (route by the Host header the proxies keep) is test/envoy-gateway's business. The echo server
 * answers with the path, Host and headers it got, so the test sees what the proxies forwarded. The
 * Gateway object is there (Gateway API CRDs installed, no controller), because the operator reads its
 * listeners.
 *
 * HTTPS: replica 0 of the group would obtain the certificate from Let's Encrypt into the shared cert
 * Secret the operator pre-creates (src/proxy/objects.ts); here the test writes a certificate of the lab
 * CA into that Secret, as replica 0's kube store would, and the proxy image trusts the lab CA as the
 * real one trusts Let's Encrypt's root.
 *
 * Needs what test/node/tailnet.test.ts needs, plus the Gateway API CRDs from the Go module cache (the
 * versions EG is built with, fetched by `go mod download` as the Envoy Gateway tests do).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { TailscaleGatewayStatus } from '../../src/api/tailscale-gateway.ts';
import { CHART_NAMESPACE } from '../harness/node/chart.ts';
import {
  type ConfigHistory,
  type ConfigVersion,
  recordConfigHistory,
} from '../harness/node/config-history.ts';
import { nodeClusterUnavailable } from '../harness/node/index.ts';
import {
  APPS,
  GROUP,
  startIngressBed,
  startTailnetStack,
  type TailnetStack,
} from '../harness/node/tailnet-stack.ts';
import {
  type EchoAnswer,
  type TailnetDevice,
  tailnetLabUnavailable,
} from '../harness/tailscale/tailnet-devices.ts';

const NS = CHART_NAMESPACE;
const DOMAIN = 'tail-fake.ts.net';
/**
 * How long a change of a config Secret may take to reach the proxies: the kubelet refreshes a
 * Secret volume when it syncs the Pod, every minute by default (`syncFrequency`, kept as in a real
 * cluster), plus its jitter. So "Advertised" in status (what the config Secrets say) can precede what
 * tailscaled does by that long.
 */
const KUBELET_MS = 150_000;
const unavailable = nodeClusterUnavailable() ?? tailnetLabUnavailable();
if (unavailable) console.warn(`skipping Tailscale Service tests on the node: ${unavailable}`);

type Tsgw = { metadata: { finalizers?: string[] }; status?: TailscaleGatewayStatus };

describe.skipIf(unavailable !== undefined)(
  'a TailscaleGateway’s Tailscale Services on the node’s ingress proxies, from a tailnet client',
  () => {
    let stack: TailnetStack;
    let client: TailnetDevice;
    let history: ConfigHistory;
    /** The group's config Secrets, replica 0 and 1. */
    let configs: string[];
    let echoVip = '';
    /** Why the last `answer` got none: in a failure's account. */
    let lastFailure = '';

    const tsgwPath = (name: string) => `/apis/${GROUP}/namespaces/${APPS}/tailscalegateways/${name}`;
    const entryOf = async (tsgw: string, service: string) =>
      (await stack.get<Tsgw>(tsgwPath(tsgw))).status?.services?.find((s) => s.name === service);
    /** What the test's own objects say, beside the stack's account of the operator and the tailnet. */
    const explainServices = async () => {
      const pods = await stack.pods(NS);
      const logs: string[] = [];
      for (const p of pods.filter((x) => x.metadata.name.startsWith('ingress-pool')))
        logs.push(
          `${p.metadata.name}:\n${(await stack.proxyLog(p.metadata.name))
            .split('\n')
            .filter(
              (l) =>
                !/magicsock|disco|RATELIMIT|netmap:|wgengine|dns: |bart table|c2n|answerC2NPing|controlhttp/.test(
                  l,
                ),
            )
            .slice(-60)
            .join('\n')}`,
        );
      const tsgws = await stack.get<{ items: Tsgw[] }>(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`);
      return `last failed request: ${lastFailure}\nTailscaleGateways: ${JSON.stringify(tsgws.items.map((t) => t.status))}\nservices on control: ${JSON.stringify(await stack.admin.services())}\nconfig versions: ${JSON.stringify(history?.versions.slice(-12))}\n${logs.join('\n')}`;
    };
    /** One line over TCP from the client, or undefined when nothing answers. */
    const line = (host: string, port: number, text: string) =>
      client.tcpLine(host, port, text, 3000).catch(() => undefined);
    const answer = async (url: string, servername?: string): Promise<EchoAnswer | undefined> => {
      try {
        const res = url.startsWith('https:')
          ? await client.httpsGet(url, { timeoutMs: 3000, ...(servername ? { servername } : {}) })
          : await client.httpGet(url, 3000);
        if (res.status === 200) return JSON.parse(res.body) as EchoAnswer;
        lastFailure = `${url}: ${res.status} ${res.body.slice(0, 300)}`;
        return undefined;
      } catch (error) {
        lastFailure = `${url}: ${error}`;
        return undefined;
      }
    };

    beforeAll(async () => {
      stack = await startTailnetStack({
        tag: 'tailscale-service',
        gatewayApi: true,
        labCa: true,
        echo: true,
      });
      stack.explainAlso(explainServices);
      // Untagged: a user's device, so serve adds the Tailscale-User-* identity headers for it.
      client = await stack.lab.addDevice({ name: 'client', echo: false });
      history = await recordConfigHistory(stack.cluster, NS);
      configs = await startIngressBed(stack);
      expect(configs).toHaveLength(2);
    }, 300_000);

    afterAll(async () => {
      history?.stop();
      await stack?.stop();
    }, 60_000);

    /**
     * Per replica: `service` got its serve block in an earlier version than its advertisement, and no
     * version advertised it without the serve block.
     */
    const expectServedThenAdvertised = (service: string) => {
      for (const name of configs) {
        const versions = history.of(name);
        const served = versions.findIndex((v) => v.serve.includes(service));
        const advertised = versions.findIndex((v) => v.advertise.includes(service));
        expect({ name, served: served >= 0, advertised: advertised >= 0 }).toEqual({
          name,
          served: true,
          advertised: true,
        });
        expect(served).toBeLessThan(advertised);
        const unserved = (v: ConfigVersion) => v.advertise.includes(service) && !v.serve.includes(service);
        expect(versions.filter(unserved)).toEqual([]);
      }
    };

    test('mode TCP: the replicas serve, then advertise; the client reaches it by VIP and by MagicDNS name', async () => {
      const started = performance.now();
      await stack.apply(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`, {
        apiVersion: GROUP,
        kind: 'TailscaleGateway',
        metadata: { name: 'tcp-services', namespace: APPS },
        spec: {
          gatewayRef: { name: 'eg' },
          tailnets: [
            {
              name: 'corp',
              tailscaleTailnetRef: { name: 'corp' },
              ingress: {
                proxyGroup: 'ingress-pool',
                services: [{ name: 'echo', target: { name: 'upstream' }, ports: [80, 7] }],
              },
            },
          ],
        },
      });
      const entry = await stack.soon(
        'svc:echo Advertised by both replicas',
        async () => {
          const e = await entryOf('tcp-services', 'echo');
          return e?.state === 'Advertised' && e.advertisedBy === 2 ? e : undefined;
        },
        90_000,
      );
      echoVip = entry.addresses?.find((a) => !a.includes(':')) ?? '';
      expect(entry.service).toBe('svc:echo');
      // What the operator declared through the API is what control has.
      const onControl = (await stack.admin.services()).find((s) => s.name === 'svc:echo');
      expect(onControl?.addrs).toEqual(entry.addresses!);
      expect(onControl?.ports?.slice().sort()).toEqual(['tcp:7', 'tcp:80']);
      expect(onControl?.tags).toEqual(['tag:k8s']);

      const echoed = await stack.soon(
        'a line back from upstream through the VIP',
        () => line(echoVip, 7, 'over the tailnet'),
        KUBELET_MS,
      );
      console.log(
        `TailscaleGateway (mode TCP) apply → VIP answering the client in ${Math.round(performance.now() - started)} ms`,
      );
      expect(echoed).toBe('upstream: over the tailnet');
      expect(await line(`echo.${DOMAIN}`, 7, 'by name')).toBe('upstream: by name');
      // Port 80 is forwarded at layer 4 too: the echo server sees the client's own Host header.
      expect(await answer(`http://echo.${DOMAIN}/by-name`)).toMatchObject({
        name: 'upstream',
        path: '/by-name',
        host: `echo.${DOMAIN}`,
      });

      expectServedThenAdvertised('svc:echo');
      // Both replicas report it Active to control over c2n; control routes the VIP to one (the first).
      const devices = (await stack.admin.devices()).filter((d) => d.hostname.startsWith('gw-'));
      expect(devices.map((d) => d.hostname).sort()).toEqual(['gw-0', 'gw-1']);
      const reports = await stack.soon(
        'both replicas reporting svc:echo Active on both ports',
        async () => {
          const all = await Promise.all(devices.map((d) => stack.admin.nodeServices(d.id)));
          const settled = all.every(
            (r) => r.reported?.length === 1 && r.reported[0]?.Active && r.reported[0].Ports?.length === 2,
          );
          return settled ? all : undefined;
        },
        KUBELET_MS,
      );
      for (const r of reports)
        expect(r.reported?.map((x) => ({ ...x, Ports: x.Ports?.slice().sort() }))).toEqual([
          { Name: 'svc:echo', Ports: ['tcp:7', 'tcp:80'], Active: true },
        ]);
      const routed = reports.filter((r) => r.routes?.includes(`${echoVip}/32`));
      expect(routed).toHaveLength(1);
    }, 300_000);

    test('mode HTTP over HTTPS: advertised once the shared certificate is there; the client gets TLS for the name and its identity forwarded', async () => {
      const started = performance.now();
      await stack.apply(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`, {
        apiVersion: GROUP,
        kind: 'TailscaleGateway',
        metadata: { name: 'web-services', namespace: APPS },
        spec: {
          gatewayRef: { name: 'eg' },
          tailnets: [
            {
              name: 'corp',
              tailscaleTailnetRef: { name: 'corp' },
              routeGeneration: { ingress: { protocol: 'HTTPS' } },
              ingress: {
                proxyGroup: 'ingress-pool',
                services: [{ name: 'web', mode: 'HTTP', target: { name: 'upstream', port: 80 } }],
              },
            },
          ],
        },
      });
      const name = `web.${DOMAIN}`;
      const waiting = await stack.soon(
        'svc:web Published, waiting for its certificate',
        async () => {
          const e = await entryOf('web-services', 'web');
          return e?.state === 'Published' && e.message?.includes('waiting for the certificate')
            ? e
            : undefined;
        },
        90_000,
      );
      expect(waiting).toMatchObject({
        dnsName: name,
        upstream: `http://envoy-default-eg.${APPS}.svc.cluster.local:80`,
        advertisedBy: 0,
      });
      // The operator pre-created the shared cert Secret (empty) for replica 0 to fill.
      const certPath = `/api/v1/namespaces/${NS}/secrets/${name}`;
      const empty = await stack.soon(
        `the cert Secret ${name}`,
        async () => {
          const r = await stack.cluster.request(certPath);
          return r.status === 200
            ? ((await r.json()) as { type: string; data?: Record<string, string> })
            : undefined;
        },
        30_000,
      );
      expect(empty.type).toBe('kubernetes.io/tls');
      expect(empty.data?.['tls.crt'] ?? '').toBe('');
      // Served, not advertised: no version of either config Secret advertises it without a certificate.
      await stack.soon(
        'both replicas serving svc:web',
        async () =>
          configs.every((c) => history.of(c).at(-1)?.serve.includes('svc:web')) ? true : undefined,
        30_000,
      );
      expect(history.versions.filter((v) => v.advertise.includes('svc:web'))).toEqual([]);

      // What replica 0's kube store would write once Let's Encrypt answered.
      const issued = stack.lab.issueCertificate(name);
      const placed = await stack.cluster.request(certPath, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: {
          data: {
            'tls.crt': Buffer.from(issued.cert).toString('base64'),
            'tls.key': Buffer.from(issued.key).toString('base64'),
          },
        },
      });
      expect(placed.status).toBe(200);
      const entry = await stack.soon(
        'svc:web Advertised by both replicas',
        async () => {
          const e = await entryOf('web-services', 'web');
          return e?.state === 'Advertised' && e.advertisedBy === 2 ? e : undefined;
        },
        60_000,
      );
      const vip = entry.addresses?.find((a) => !a.includes(':')) ?? '';
      const byName = await stack.soon(
        'an HTTPS answer for web by name',
        () => answer(`https://${name}/tls`),
        KUBELET_MS,
      );
      console.log(
        `TailscaleGateway (mode HTTP, HTTPS) apply → HTTPS answering the client in ${Math.round(performance.now() - started)} ms (certificate placed as soon as its Secret existed)`,
      );
      // TLS checked against the lab CA for the service's name; the proxies kept the Host and added who
      // the caller is (an untagged device: a user).
      expect(byName).toMatchObject({ name: 'upstream', path: '/tls', host: name });
      expect(byName.headers).toHaveProperty('tailscale-user-login');
      expect(await answer(`https://${vip}/by-vip`, name)).toMatchObject({
        name: 'upstream',
        path: '/by-vip',
      });
      // Only on 443: the service is declared on that port alone.
      expect((await stack.admin.services()).find((s) => s.name === 'svc:web')?.ports).toEqual(['tcp:443']);
      expectServedThenAdvertised('svc:web');
    }, 400_000);

    test('removing a service: each replica un-advertises it before its serve block goes, and the VIP stops answering', async () => {
      expect(echoVip).not.toBe('');
      expect(await line(echoVip, 7, 'still here')).toBe('upstream: still here');
      const deleted = await stack.cluster.request(tsgwPath('tcp-services'), { method: 'DELETE' });
      expect(deleted.status).toBeLessThan(300);
      await stack.soon(
        'svc:echo out of both serve configs',
        async () =>
          configs.every((c) => {
            const last = history.of(c).at(-1);
            return last && !last.serve.includes('svc:echo') && !last.advertise.includes('svc:echo');
          })
            ? true
            : undefined,
        60_000,
      );
      for (const name of configs) {
        const versions = history.of(name);
        const lastAdvertised = versions.findLastIndex((v) => v.advertise.includes('svc:echo'));
        const unserved = versions.findIndex((v, i) => i > lastAdvertised && !v.serve.includes('svc:echo'));
        expect(lastAdvertised).toBeGreaterThanOrEqual(0);
        // The version right after the last advertising one still serves it: un-advertised first.
        expect(versions[lastAdvertised + 1]).toMatchObject({ serve: expect.arrayContaining(['svc:echo']) });
        expect(unserved).toBeGreaterThan(lastAdvertised + 1);
      }
      await stack.soon(
        'the VIP of svc:echo silent',
        async () => ((await line(echoVip, 7, 'anyone?')) === undefined ? true : undefined),
        KUBELET_MS,
      );
      // The last consumer left: the Tailscale Service is gone from the API and from control, and the
      // TailscaleGateway with it (its finalizer released).
      await stack.soon(
        'svc:echo deleted and the TailscaleGateway gone',
        async () => {
          const services = await stack.admin.services();
          const gone = (await stack.cluster.request(tsgwPath('tcp-services'))).status === 404;
          return gone && !services.some((s) => s.name === 'svc:echo') ? true : undefined;
        },
        30_000,
      );
      // The other service is untouched.
      expect(await answer(`https://web.${DOMAIN}/after`)).toMatchObject({ name: 'upstream', path: '/after' });
    }, 300_000);
  },
);
