/**
 * `npm run bench:tailnet-service`: how long from applying a TailscaleGateway until a tailnet client
 * reaches its Tailscale Service through the operator's own ingress proxies, on the one-node cluster
 * with the real tailnet of test/node/tailscale-service.test.ts (tailnet-control, real tailscaled
 * v1.102.2 in the proxy Pods and in the client device; no Envoy, an echo server stands in for it).
 * Prints figures, asserts nothing. Each round publishes a new service (a new Tailscale Service, a new
 * VIP) and then deletes the TailscaleGateway:
 *
 * - mode TCP: apply → status Advertised by both replicas, → the VIP answers the client (a TCP line);
 *   delete → the VIP silent;
 * - mode HTTP with protocol HTTP (no certificate to wait for): apply → the MagicDNS name answers HTTP.
 *
 * Needs root and what the node tests need; take the node lock like they do:
 *   flock /tmp/tsgw-node.lock npm run bench:tailnet-service [-- --rounds 3]
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { until } from '../test/harness/node/chart.ts';
import { nodeClusterUnavailable } from '../test/harness/node/index.ts';
import { GROUP, startIngressBed, startTailnetStack } from '../test/harness/node/tailnet-stack.ts';
import { tailnetLabUnavailable } from '../test/harness/tailscale/tailnet-devices.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
const APP = 'default';
const DOMAIN = 'tail-fake.ts.net';

const unavailable = nodeClusterUnavailable() ?? tailnetLabUnavailable();
if (unavailable) {
  console.error(`bench:tailnet-service cannot run here: ${unavailable}`);
  process.exit(1);
}

const ms = (since: number) => Math.round(performance.now() - since);
const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return `median ${sorted[Math.floor(sorted.length / 2)]} ms, min ${sorted[0]}, max ${sorted.at(-1)} (n=${xs.length})`;
};

const setup = performance.now();
const stack = await startTailnetStack({ tag: 'bench-service', gatewayApi: true, echo: true });
try {
  const client = await stack.lab.addDevice({ name: 'client', echo: false });
  await startIngressBed(stack);
  console.log(`setup (lab, node, chart, ingress group of 2 Ready): ${ms(setup)} ms`);
  const path = `/apis/${GROUP}/namespaces/${APP}/tailscalegateways`;
  type Entry = { state: string; advertisedBy?: number; addresses?: string[] };
  const entry = async (tsgw: string) =>
    (await stack.get<{ status?: { services?: Entry[] } }>(`${path}/${tsgw}`)).status?.services?.[0];
  const publish = (name: string, service: Record<string, unknown>, protocol: 'HTTP' | 'HTTPS' = 'HTTPS') =>
    stack.apply(path, {
      apiVersion: GROUP,
      kind: 'TailscaleGateway',
      metadata: { name, namespace: APP },
      spec: {
        gatewayRef: { name: 'eg' },
        tailnets: [
          {
            name: 'corp',
            tailscaleTailnetRef: { name: 'corp' },
            routeGeneration: { ingress: { protocol } },
            ingress: { proxyGroup: 'ingress-pool', services: [service] },
          },
        ],
      },
    });
  const advertised = (tsgw: string) =>
    until(
      `${tsgw} Advertised by both replicas`,
      async () => {
        const e = await entry(tsgw);
        return e?.state === 'Advertised' && e.advertisedBy === 2 ? e : undefined;
      },
      120_000,
    );
  const lineBack = (host: string) =>
    client
      .tcpLine(host, 7, 'ping', 3000)
      .then((l) => (l === 'upstream: ping' ? true : undefined))
      .catch(() => undefined);
  const tcpAdvertised: number[] = [];
  const tcpReachable: number[] = [];
  const tcpSilent: number[] = [];
  const httpReachable: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const tcp = `tcp-${round}`;
    let started = performance.now();
    await publish(tcp, { name: `echo-${round}`, target: { name: 'upstream' }, ports: [7] });
    const e = await advertised(tcp);
    tcpAdvertised.push(ms(started));
    const vip = e.addresses?.find((a) => !a.includes(':')) ?? '';
    await until('the VIP answering', () => lineBack(vip), 120_000);
    tcpReachable.push(ms(started));
    started = performance.now();
    await stack.cluster.request(`${path}/${tcp}`, { method: 'DELETE' });
    await until(
      'the VIP silent',
      async () => ((await lineBack(vip)) === undefined ? true : undefined),
      120_000,
    );
    tcpSilent.push(ms(started));

    const http = `http-${round}`;
    started = performance.now();
    await publish(
      http,
      { name: `web-${round}`, mode: 'HTTP', target: { name: 'upstream', port: 80 } },
      'HTTP',
    );
    await until(
      'the name answering HTTP',
      async () => {
        const r = await client.httpGet(`http://web-${round}.${DOMAIN}/`, 3000).catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      120_000,
    );
    httpReachable.push(ms(started));
    await stack.cluster.request(`${path}/${http}`, { method: 'DELETE' });
    await until(
      `${http} gone`,
      async () => ((await stack.cluster.request(`${path}/${http}`)).status === 404 ? true : undefined),
      120_000,
    );
    console.log(
      `round ${round + 1}: TCP advertised ${tcpAdvertised.at(-1)} ms, reachable ${tcpReachable.at(-1)} ms, silent after delete ${tcpSilent.at(-1)} ms; HTTP reachable ${httpReachable.at(-1)} ms`,
    );
  }
  console.log(`TailscaleGateway (mode TCP) apply → Advertised by 2 replicas: ${stats(tcpAdvertised)}`);
  console.log(`TailscaleGateway (mode TCP) apply → VIP reachable from the client: ${stats(tcpReachable)}`);
  console.log(`TailscaleGateway (mode TCP) delete → VIP silent: ${stats(tcpSilent)}`);
  console.log(
    `TailscaleGateway (mode HTTP, protocol HTTP) apply → MagicDNS name answering HTTP: ${stats(httpReachable)}`,
  );
} finally {
  await stack.stop();
}
