/**
 * The failover and recovery scenario of issue 17 (flows 3 and 5) on a {@link DataPlane}, shared by
 * test/node/failover.test.ts (which asserts where traffic went and how many requests failed) and
 * `npm run bench:failover` (which repeats it and prints the figures).
 *
 * A steady open-loop stream of GETs from the host through the Envoy Service's ClusterIP to an
 * HTTPRoute whose backendRef is a TailscaleEndpoints `web` with two endpoints: `p0` (device web0,
 * priority 0) and `p1` (device web1, priority 1), both with the same active health check. The echo
 * server names the device that answered.
 *
 * What the hooks put on that cluster (src/extension/xds/clusters.ts) decides how traffic moves:
 * - active health checks from the endpoints' `healthCheck` (here: every INTERVAL_MS, TIMEOUT_MS each,
 *   UNHEALTHY consecutive failures take a host out, HEALTHY successes bring it back);
 * - outlier detection: 3 consecutive gateway failures (502/503/504; connect failures and upstream
 *   timeouts count as such) eject a host for 30 s, any share of the hosts may be ejected, and an
 *   ejected host that passes an active check is returned at once (Envoy's default
 *   successful_active_health_check_uneject_host);
 * - no retry policy (neither ours nor EG's default), so a request sent to a dead host fails.
 *
 * P0 is stopped with `tailscale down` on web0: its tailscaled leaves the tailnet, so the egress proxy's
 * packets to it go unanswered — no refusal, nothing fast to notice; only the probes find it. Worst
 * case: the last probe passed just before the stop; the next starts within INTERVAL_MS and the host is
 * out at the end of the UNHEALTHY-th failed probe, each taking TIMEOUT_MS and INTERVAL_MS apart:
 * {@link DETECT_MS} = UNHEALTHY × (INTERVAL_MS + TIMEOUT_MS) after the stop. Every request sent in that
 * window (and the ones in flight at the stop) may go to P0 and fail; none sent after it can. Outlier
 * detection can only shorten it: the client's deadline (3 s) ends a stalled request before Envoy's
 * connect timeout (10 s) could count one as a gateway failure.
 *
 * @module
 */
import type { TailscaleEndpointsStatus } from '../../../src/api/tailscale-endpoints.ts';
import { CHART_NAMESPACE } from './chart.ts';
import type { DataPlane } from './data-plane.ts';
import { type RequestStream, startRequestStream, type Transition, transition } from './request-stream.ts';
import { APPS, GROUP, type Pod, podReady } from './tailnet-stack.ts';

export const HOST = 'web.example.com';
/** The stream's rate: steady and bounded (a few ms per request on the warm path). */
export const RATE = 25;
/** The client's deadline: well above a warm request, well below Envoy's connect timeout (10 s). */
export const CLIENT_TIMEOUT_MS = 3000;
export const INTERVAL_MS = 1000;
export const TIMEOUT_MS = 1000;
export const UNHEALTHY = 2;
export const HEALTHY = 2;
/** The longest a dead P0 can keep receiving requests (see the module comment). */
export const DETECT_MS = UNHEALTHY * (INTERVAL_MS + TIMEOUT_MS);
/** How long every answer must come from one device before traffic counts as settled there. */
export const STEADY_MS = 3000;
export const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${CHART_NAMESPACE}/leases/tailscale-gateway`;

type Tse = { status?: TailscaleEndpointsStatus };
type Lease = { spec: { holderIdentity?: string } };

export interface FailoverScenario {
  stream: RequestStream;
  /** Envoy's hosts of the route's cluster at the start, `address → health_flags`. */
  hostsAtStart: Record<string, string>;
  /** web0 down until every answer comes from web1, then web0 up until every answer is web0's again. */
  failOverAndBack(): Promise<FailoverRound>;
  /** Deletes the egress proxy Pod and waits until every answer is web0's again. */
  deleteProxyPod(): Promise<ProxyRestart>;
  /** Deletes the operator Pod holding the lease; waits for a new leader and 2/2 Pods, then 10 s. */
  deleteLeader(): Promise<LeaderRestart>;
}

export interface FailoverRound {
  /** From `down` being called to it returning: web0 left somewhere in there. */
  downMs: number;
  /** Requests sent from a second before `down` until web0 is up again, seen as a move to web1. */
  moved: Transition;
  /** The most requests the settings allow to fail in `moved`. */
  bound: number;
  /** Failed requests sent more than DETECT_MS after `down` returned (the bound says: none). */
  late: number;
  /** Requests sent from `up` until settled on web0 again. */
  returned: Transition;
}

export interface ProxyRestart {
  readyMs: number;
  resumed: Transition;
  before: { nodeId?: string; tailscaleIPs?: string[] } | undefined;
  after: { nodeId?: string; tailscaleIPs?: string[] } | undefined;
  /** Auth keys the operator minted meanwhile. */
  newKeys: number;
  /** The state Secret's pod_uid is the new Pod's. */
  stateNamesNewPod: boolean;
}

export interface LeaderRestart {
  oldLeader: string;
  newHolder: string;
  leadMs: number;
  sent: number;
  failed: number;
  /** Answers that came from another device than web0. */
  elsewhere: number;
}

/** Applies the objects, waits for both hosts healthy, starts the stream and waits until web0 answers all. */
export async function startFailoverScenario(dp: DataPlane): Promise<FailoverScenario> {
  const { web0, web1 } = dp.devices;
  if (!web0 || !web1) throw new Error('the failover scenario needs devices web0 and web1');
  const healthCheck = {
    path: '/health',
    interval: `${INTERVAL_MS}ms`,
    timeout: `${TIMEOUT_MS}ms`,
    unhealthyThreshold: UNHEALTHY,
    healthyThreshold: HEALTHY,
  };
  await dp.applyEndpoints('web', [
    { name: 'p0', tailscaleFQDN: web0.fqdn, port: 80, protocol: 'HTTP', priority: 0, healthCheck },
    { name: 'p1', tailscaleFQDN: web1.fqdn, port: 80, protocol: 'HTTP', priority: 1, healthCheck },
  ]);
  await dp.joinTailnet();
  await dp.routeToEndpoints('web', { hostname: HOST, pathPrefix: '/hello', backend: 'web' });
  const envoyIp = await dp.envoyAddress();
  /** The route's cluster's hosts in Envoy's /clusters: `address → health_flags`. */
  const hostHealth = (): Record<string, string> =>
    Object.fromEntries(
      dp
        .envoyAdmin('/clusters')
        .split('\n')
        .filter((l) => l.startsWith(`httproute/${APPS}/web/`) && l.includes('::health_flags::'))
        .map((l) => {
          const [, host, , flags] = l.split('::');
          return [host, flags];
        }),
    );
  // P1 must be checked healthy before P0 goes, or there is nowhere to move to.
  const hostsAtStart = await dp.soon(
    'both hosts of the route’s cluster healthy in Envoy',
    async () => {
      const h = hostHealth();
      const flags = Object.values(h);
      return flags.length === 2 && flags.every((f) => f === 'healthy') ? h : undefined;
    },
    180_000,
  );
  const stream = startRequestStream({
    url: () => `http://${envoyIp}/hello`,
    headers: { host: HOST },
    rate: RATE,
    timeoutMs: CLIENT_TIMEOUT_MS,
  });
  /**
   * Every answer from `name` for STEADY_MS, sent after `since`. Only requests past their deadline are
   * read: a younger one may still be waiting on a dead host.
   */
  const settledOn = async (name: string, since: number) => {
    const done = performance.now() - CLIENT_TIMEOUT_MS - 100;
    const recent = stream.between(Math.max(since, done - STEADY_MS), done);
    const spanned = recent.length > 0 && recent.at(-1)!.sentAt - recent[0]!.sentAt >= STEADY_MS - 200;
    return spanned && recent.every((s) => s.status === 200 && s.answeredBy === name) ? true : undefined;
  };
  const started = performance.now();
  await dp.soon('every answer from web0', () => settledOn('web0', started), 60_000);

  const proxyDevice = async () => {
    const tse = await dp.get<Tse>(`/apis/${GROUP}/namespaces/${APPS}/tailscaleendpoints/web`);
    return tse.status?.proxies?.[0]?.devices?.[0];
  };
  const keyPosts = () => dp.fake.requests.count({ method: 'POST', endpoint: '/tailnet/{tailnet}/keys' });
  const operatorPods = async () =>
    (await dp.pods(CHART_NAMESPACE)).filter((p) => p.metadata.name.startsWith('tsgw-'));

  return {
    stream,
    hostsAtStart,
    async failOverAndBack() {
      const downAt = performance.now();
      const down = await web0.tailscale('down');
      const stoppedAt = performance.now();
      if (down.code !== 0) throw new Error(`tailscale down on web0: ${down.stderr}`);
      await dp.soon('every answer from web1', () => settledOn('web1', stoppedAt), 60_000);
      const upAt = performance.now();
      // From a second before `down`: requests in flight when web0 went count too.
      const moved = transition(stream.samples, downAt, upAt, 'web1', 1000);
      const late = stream.between(stoppedAt + DETECT_MS, upAt).filter((s) => s.status !== 200).length;
      const up = await web0.tailscale(
        'up',
        `--login-server=${dp.lab.control.control}`,
        '--hostname=web0',
        '--timeout=30s',
      );
      if (up.code !== 0) throw new Error(`tailscale up on web0: ${up.stderr}`);
      await dp.soon('every answer from web0 again', () => settledOn('web0', upAt), 90_000);
      const returned = transition(stream.samples, upAt, performance.now() - CLIENT_TIMEOUT_MS, 'web0');
      // Requests sent from the stop until DETECT_MS after it, the stop known to within `down`'s own
      // time; two more for the one in flight at the stop and the fencepost.
      const bound = Math.ceil((RATE * (DETECT_MS + (stoppedAt - downAt))) / 1000) + 2;
      return { downMs: stoppedAt - downAt, moved, bound, late, returned };
    },
    async deleteProxyPod() {
      const before = await proxyDevice();
      const podName = before?.podName;
      if (!podName) throw new Error('the TailscaleEndpoints status names no proxy Pod');
      const old = await dp.get<Pod>(`/api/v1/namespaces/${CHART_NAMESPACE}/pods/${podName}`);
      const keys = keyPosts();
      const deletedAt = performance.now();
      const r = await dp.cluster.request(`/api/v1/namespaces/${CHART_NAMESPACE}/pods/${podName}`, {
        method: 'DELETE',
      });
      if (r.status >= 300) throw new Error(`deleting ${podName}: ${r.status} ${await r.text()}`);
      const back = await dp.replacementReady(CHART_NAMESPACE, old, 120_000);
      const readyAt = performance.now();
      await dp.soon(
        'every answer from web0 after the proxy returned',
        () => settledOn('web0', readyAt),
        90_000,
      );
      const resumed = transition(
        stream.samples,
        deletedAt,
        performance.now() - CLIENT_TIMEOUT_MS,
        'web0',
        1000,
      );
      const after = await dp.soon(
        'the status naming the proxy device again',
        async () => {
          const d = await proxyDevice();
          return d?.nodeId ? d : undefined;
        },
        30_000,
      );
      const state = await dp.get<{ data?: Record<string, string> }>(
        `/api/v1/namespaces/${CHART_NAMESPACE}/secrets/${podName}`,
      );
      return {
        readyMs: readyAt - deletedAt,
        resumed,
        before,
        after,
        newKeys: keyPosts() - keys,
        stateNamesNewPod: Buffer.from(state.data?.pod_uid ?? '', 'base64').toString() === back.metadata.uid,
      };
    },
    async deleteLeader() {
      const holder = (await dp.get<Lease>(LEASE_PATH)).spec.holderIdentity;
      // The identity is the Pod name, `_` and 10 hex (src/controller-runtime/leader-election.ts).
      const holds = (pod: string, identity: string | undefined) => identity?.startsWith(`${pod}_`) === true;
      const leader = (await operatorPods()).find((p) => holds(p.metadata.name, holder));
      if (!leader) throw new Error(`no operator Pod holds the lease (holder ${holder})`);
      const name = leader.metadata.name;
      const deletedAt = performance.now();
      const r = await dp.cluster.request(`/api/v1/namespaces/${CHART_NAMESPACE}/pods/${name}`, {
        method: 'DELETE',
      });
      if (r.status >= 300) throw new Error(`deleting ${name}: ${r.status} ${await r.text()}`);
      const newHolder = await dp.soon(
        'another replica holding the lease',
        async () => {
          const h = (await dp.get<Lease>(LEASE_PATH)).spec.holderIdentity;
          return h && !holds(name, h) ? h : undefined;
        },
        120_000,
      );
      const ledAt = performance.now();
      await dp.soon(
        'two operator Pods Ready again',
        async () => ((await operatorPods()).filter(podReady).length === 2 ? true : undefined),
        120_000,
      );
      // The new leader's first reconciles have run by now; the stream goes on a little past them.
      await Bun.sleep(10_000);
      const end = performance.now() - CLIENT_TIMEOUT_MS;
      const window = stream.between(deletedAt, end);
      return {
        oldLeader: name,
        newHolder,
        leadMs: ledAt - deletedAt,
        sent: window.length,
        failed: window.filter((s) => s.status !== 200).length,
        elsewhere: window.filter((s) => s.status === 200 && s.answeredBy !== 'web0').length,
      };
    },
  };
}
