/**
 * Flow 4, tailnet → cluster, through the real data plane on the one-node cluster: a TailscaleGateway
 * publishes Tailscale Services on Gateway `eg` (EG from its chart, the Envoy Pod running PyPI's Envoy),
 * hosted by the operator's ingress TailscaleProxyGroup (real containerboot and tailscaled); two
 * untagged tailnet devices, alice and bob (real tailscaled, each its own user on the tests' control
 * server), are the callers. test/node/tailscale-service.test.ts proves the proxies' side (serve before
 * advertise, certificates, un-advertising) with an echo server standing in for Envoy; here Envoy is
 * real, so what is proven is the whole path the docs draw (site/concepts.md, "Generated ingress routes"):
 *
 *   client ──http://web.<suffix>──▶ ingress proxy (serve, HTTP; Tailscale-User-* set)
 *     ──▶ Envoy (EG's Service, found by its labels) ──virtual host web.<suffix>──▶ Service upstream
 *
 * - mode HTTP through the generated virtual host, the backend seeing Envoy as its caller and the
 *   caller's login in `Tailscale-User-Login`;
 * - a TailscaleRoutePolicy on the TailscaleGateway whose `caller.users` rules deny bob and admit alice
 *   (with a header of its own), which a forged `Tailscale-User-Login` cannot get around;
 * - mode HTTP where an HTTPRoute of the user's claims the service's MagicDNS name (the HTTPRoute's
 *   rules apply, the generated virtual host steps aside, the TailscaleGateway's policy does not reach it);
 * - mode TCP, forwarded by the proxies straight to its target Service (not through Envoy).
 *
 * Protocol HTTP on port 80 keeps certificates out of it (HTTPS on 443 with the shared certificate is
 * tailscale-service.test.ts's); serve sets the identity headers on both. Needs what
 * test/node/traffic.test.ts needs. Run under `flock /tmp/tsgw-node.lock`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { TailscaleGatewayStatus } from '../../src/api/tailscale-gateway.ts';
import { type DataPlane, startDataPlane } from '../harness/node/data-plane.ts';
import { nodeClusterUnavailable } from '../harness/node/index.ts';
import { APPS, GATEWAY_API, GROUP, startIngressGroup, startUpstream } from '../harness/node/tailnet-stack.ts';
import {
  type EchoAnswer,
  type TailnetDevice,
  tailnetLabUnavailable,
} from '../harness/tailscale/tailnet-devices.ts';

const DOMAIN = 'tail-fake.ts.net';
const WEB = `web.${DOMAIN}`;
const API = `api.${DOMAIN}`;
/** A Secret volume's change reaches the proxies at the kubelet's next Pod sync (every minute, plus jitter). */
const KUBELET_MS = 150_000;
const TSGW = 'eg-tailnets';
const WEB_CLUSTER = `tailscale/${APPS}/${TSGW}/ingress/corp/web`;

const unavailable = nodeClusterUnavailable() ?? tailnetLabUnavailable();
if (unavailable) console.warn(`skipping tailnet → cluster traffic tests: ${unavailable}`);

type Answer = EchoAnswer & { headers: Record<string, string>; remote: string };

describe.skipIf(unavailable !== undefined)(
  'flow 4: tailnet → cluster through a TailscaleGateway’s services and real Envoy',
  () => {
    let dp: DataPlane;
    let alice: TailnetDevice;
    let bob: TailnetDevice;
    let aliceLogin = '';
    let bobLogin = '';
    let lastFailure = '';

    /** The login control gave an untagged device's user, from its own status. */
    const loginOf = async (device: TailnetDevice) => {
      const s = await device.status();
      const login = s.User?.[String(s.Self.UserID)]?.LoginName;
      if (!login) throw new Error(`${device.name} has no user login in its status`);
      return login;
    };
    /** GET from `device`: the status and, for a 200, the echo server's answer. */
    const get = async (device: TailnetDevice, url: string, headers: Record<string, string> = {}) => {
      try {
        const r = await device.httpGet(url, 5000, headers);
        if (r.status !== 200) lastFailure = `${device.name} ${url}: ${r.status} ${r.body.slice(0, 200)}`;
        return { status: r.status, answer: r.status === 200 ? (JSON.parse(r.body) as Answer) : undefined };
      } catch (error) {
        lastFailure = `${device.name} ${url}: ${error}`;
        return { status: 0, answer: undefined };
      }
    };
    const entryOf = async (service: string) =>
      (
        await dp.get<{ status?: TailscaleGatewayStatus }>(
          `/apis/${GROUP}/namespaces/${APPS}/tailscalegateways/${TSGW}`,
        )
      ).status?.services?.find((s) => s.name === service);

    beforeAll(async () => {
      dp = await startDataPlane({
        tag: 'ingress-traffic',
        echo: true,
        // Untagged: users' devices, so serve sends who they are.
        devices: [
          { name: 'alice', echo: false },
          { name: 'bob', echo: false },
        ],
      });
      alice = dp.devices.alice!;
      bob = dp.devices.bob!;
      aliceLogin = await loginOf(alice);
      bobLogin = await loginOf(bob);
      dp.explainAlso(async () => {
        const tsgw = await dp.get<{ status?: unknown }>(
          `/apis/${GROUP}/namespaces/${APPS}/tailscalegateways/${TSGW}`,
        );
        return `last failed request: ${lastFailure}\nTailscaleGateway status: ${JSON.stringify(tsgw.status)}`;
      });
      await startUpstream(dp);
      await startIngressGroup(dp, 1);
    }, 600_000);

    afterAll(async () => {
      await dp?.stop();
    }, 120_000);

    test('mode HTTP: serve → Envoy → the generated virtual host → the backend, with the caller’s login', async () => {
      expect(aliceLogin).not.toBe(bobLogin);
      const started = performance.now();
      await dp.apply(`/apis/${GROUP}/namespaces/${APPS}/tailscalegateways`, {
        apiVersion: GROUP,
        kind: 'TailscaleGateway',
        metadata: { name: TSGW, namespace: APPS },
        spec: {
          gatewayRef: { name: 'eg' },
          tailnets: [
            {
              name: 'corp',
              tailscaleTailnetRef: { name: 'corp' },
              routeGeneration: { ingress: { protocol: 'HTTP' } },
              ingress: {
                proxyGroup: 'ingress-pool',
                services: [
                  { name: 'web', mode: 'HTTP', target: { name: 'upstream', port: 80 } },
                  { name: 'api', mode: 'HTTP', target: { name: 'upstream', port: 80 } },
                  { name: 'line', target: { name: 'upstream' }, ports: [7] },
                ],
              },
            },
          ],
        },
      });
      // The user's own route for the api service's MagicDNS name, marking what it forwards.
      await dp.apply(`/apis/gateway.networking.k8s.io/v1/namespaces/${APPS}/httproutes`, {
        apiVersion: GATEWAY_API,
        kind: 'HTTPRoute',
        metadata: { name: 'api', namespace: APPS },
        spec: {
          parentRefs: [{ name: 'eg' }],
          hostnames: [API],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/v1' } }],
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { set: [{ name: 'x-route', value: 'httproute-api' }] },
                },
              ],
              backendRefs: [{ name: 'upstream', port: 80 }],
            },
          ],
        },
      });
      await dp.apply(`/apis/${GROUP}/namespaces/${APPS}/tailscaleroutepolicies`, {
        apiVersion: GROUP,
        kind: 'TailscaleRoutePolicy',
        metadata: { name: 'callers', namespace: APPS },
        spec: {
          targetRefs: [{ group: 'gateway.tailscale.com', kind: 'TailscaleGateway', name: TSGW }],
          rules: [
            { name: 'not-bob', matches: [{ caller: { users: [bobLogin] } }], actions: [{ type: 'Deny' }] },
            {
              name: 'alice',
              matches: [{ caller: { users: [aliceLogin] } }],
              actions: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { set: [{ name: 'x-admitted', value: 'alice' }] },
                },
              ],
            },
          ],
        },
      });
      const entry = await dp.soon(
        'svc:web Advertised by the ingress replica',
        async () => {
          const e = await entryOf('web');
          return e?.state === 'Advertised' && e.advertisedBy === 1 ? e : undefined;
        },
        120_000,
      );
      // The proxies' upstream is EG's Envoy Service of Gateway eg, found by its labels.
      const [envoyService] = (
        await dp.get<{ items: { metadata: { name: string; namespace: string } }[] }>(
          `/api/v1/services?labelSelector=${encodeURIComponent('gateway.envoyproxy.io/owning-gateway-name=eg')}`,
        )
      ).items;
      expect(entry.upstream).toBe(
        `http://${envoyService!.metadata.name}.${envoyService!.metadata.namespace}.svc.cluster.local:80`,
      );
      expect(entry.hosts).toContain(WEB);

      const answer = await dp.soon(
        'an answer for alice from web',
        async () => (await get(alice, `http://${WEB}/hello?x=1`)).answer,
        KUBELET_MS,
      );
      console.log(
        `TailscaleGateway (mode HTTP) + HTTPRoute + policy apply → alice answered through Envoy in ${Math.round(performance.now() - started)} ms`,
      );
      // The generated route: prefix / to the target, the client's Host kept.
      expect(answer).toMatchObject({ name: 'upstream', method: 'GET', path: '/hello?x=1', host: WEB });
      // Who the caller is, as serve said, reached the backend through Envoy.
      expect(answer.headers['tailscale-user-login']).toBe(aliceLogin);
      // It went through Envoy (the proxies send no request id; Envoy's connection manager adds one).
      // The caller address says nothing here: kube-proxy masquerades Service traffic to the node IP.
      expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      // Envoy counts it on the service's cluster (one member: the upstream Service's address).
      const served = dp
        .envoyAdmin('/clusters')
        .split('\n')
        .find((l) => l.startsWith(`${WEB_CLUSTER}::`) && l.includes('::rq_success::'));
      expect(Number(served?.split('::').at(-1))).toBeGreaterThan(0);
    }, 400_000);

    test('caller identity: the policy denies bob and admits alice, and a forged Tailscale-User-Login changes neither', async () => {
      const admitted = await dp.soon(
        'alice admitted by the policy',
        async () => {
          const a = (await get(alice, `http://${WEB}/in`)).answer;
          return a?.headers['x-admitted'] === 'alice' ? a : undefined;
        },
        60_000,
      );
      expect(admitted.path).toBe('/in');
      const denied = await dp.soon(
        'bob denied',
        async () => {
          const r = await get(bob, `http://${WEB}/in`);
          return r.status === 403 ? r : undefined;
        },
        60_000,
      );
      expect(denied.answer).toBeUndefined();
      // serve replaces whatever login the client sent with the one control knows.
      const aliceAsBob = await get(alice, `http://${WEB}/forged`, { 'Tailscale-User-Login': bobLogin });
      expect(aliceAsBob.status).toBe(200);
      expect(aliceAsBob.answer?.headers['tailscale-user-login']).toBe(aliceLogin);
      expect(aliceAsBob.answer?.headers['x-admitted']).toBe('alice');
      const bobAsAlice = await get(bob, `http://${WEB}/forged`, { 'Tailscale-User-Login': aliceLogin });
      expect(bobAsAlice.status).toBe(403);
      // The policy reports itself programmed on its target.
      const policy = await dp.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/${GROUP}/namespaces/${APPS}/tailscaleroutepolicies/callers`,
      );
      expect(policy.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }, 180_000);

    test('an HTTPRoute claiming the service’s MagicDNS name takes its requests; the generated virtual host steps aside', async () => {
      const viaRoute = await dp.soon(
        'the api service answering through the HTTPRoute',
        async () => (await get(alice, `http://${API}/v1/items`)).answer,
        KUBELET_MS,
      );
      // The user's route: its filter, no rewrite (its own prefix kept), the caller's login still there.
      expect(viaRoute).toMatchObject({ name: 'upstream', path: '/v1/items', host: API });
      expect(viaRoute.headers['x-route']).toBe('httproute-api');
      expect(viaRoute.headers['tailscale-user-login']).toBe(aliceLogin);
      // The TailscaleGateway's policy covers the routes it generates, not the user's: bob gets through.
      expect((await get(bob, `http://${API}/v1/items`)).status).toBe(200);
      // The name is the HTTPRoute's alone: a path it does not route gets Envoy's 404, not the target.
      expect((await get(alice, `http://${API}/elsewhere`)).status).toBe(404);
    }, 200_000);

    test('mode TCP: the proxies forward straight to the target Service', async () => {
      const echoed = await dp.soon(
        'a line back from upstream through svc:line',
        () => alice.tcpLine(`line.${DOMAIN}`, 7, 'over the tailnet', 3000).catch(() => undefined),
        KUBELET_MS,
      );
      expect(echoed).toBe('upstream: over the tailnet');
      // Both users: a TCP service carries no caller, and the policy's routes are HTTP.
      expect(await bob.tcpLine(`line.${DOMAIN}`, 7, 'me too', 3000)).toBe('upstream: me too');
    }, 200_000);
  },
);
