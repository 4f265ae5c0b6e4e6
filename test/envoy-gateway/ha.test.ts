/**
 * Two Envoy Gateway replicas translating one large config at once (issue 18). EG runs its translator
 * in every replica, so an HA install calls the extension server from each replica after every change,
 * each PostTranslateModify carrying the whole translation; with failOpen false (EG's default) a failed
 * call fails that replica's translation.
 *
 * Each EG runs in a network namespace of its own (EG binds fixed ports; `netns: true` in
 * ./envoy-gateway/index.ts bridges the kube-apiserver and our gRPC port in through unix sockets), both
 * against one test control plane and one operator (the compiled binary's `run`). The config: a Gateway
 * joined to a tailnet, 300 HTTPRoutes of 10 rules each with TailscaleEndpoints backends, so every
 * translation is 3,000 rule clusters our PostClusterModify fills, 3,000 routes, and a PostTranslateModify
 * of megabytes. The operator's in-flight budget is set to 1 byte, so each large call runs alone and the
 * other replica's waits (HTTP/2 flow control on EG's grpc-go client) — the path a busy server takes;
 * the operator is held still (SIGSTOP) while both replicas start each translation, so they run in step.
 *
 * Asserted: both replicas publish the complete xDS, twice (start-up, then a change both re-translate),
 * EG logs no extension error and skips no snapshot, and every hook call we answered was OK, none
 * refused. No timing is asserted; figures are printed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import {
  EG_CONTROLLER_NAME,
  envoyGatewayCrds,
  type RunningEnvoyGateway,
  startEnvoyGateway,
} from '../harness/envoy-gateway/index.ts';
import type { XdsState, XdsWatch } from '../harness/envoy-gateway/xds-client.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';

const NS = 'ha';
const GATEWAY = 'eg';
const ROUTES = 300;
const RULES = 10;
const BACKENDS = 20;

let cp: StartedControlPlane;
let operator: RunningBinary;
const egs: RunningEnvoyGateway[] = [];
const watches: XdsWatch[] = [];

async function ok(response: Response, what: string): Promise<unknown> {
  if (!response.ok) throw new Error(`${what}: ${response.status} ${await response.text()}`);
  return response.json();
}

const PLURALS: Record<string, string> = {
  GatewayClass: 'gatewayclasses',
  Gateway: 'gateways',
  HTTPRoute: 'httproutes',
  TailscaleGateway: 'tailscalegateways',
  TailscaleEndpoints: 'tailscaleendpoints',
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: unknown;
}

/** Server-side apply, like `kubectl apply --server-side`. */
async function apply(object: Manifest): Promise<void> {
  const base = `/apis/${object.apiVersion}`;
  const ns = object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  await ok(
    await cp.request(`${base}${ns}/${PLURALS[object.kind]}/${object.metadata.name}`, {
      method: 'PATCH',
      body: object,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'tsgw-eg-ha', force: 'true' },
    }),
    `applying ${object.kind} ${object.metadata.name}`,
  );
}

const gateway = (annotations: Record<string, string> = {}): Manifest => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: GATEWAY, namespace: NS, annotations },
  spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 8888 }] },
});

const backend = (i: number): Manifest => ({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
  metadata: { name: `backend-${i}`, namespace: NS },
  spec: {
    tailnet: 'corp',
    endpoints: [
      {
        name: `svc-${i}`,
        tailscaleIP: `100.64.${Math.floor(i / 250)}.${(i % 250) + 1}`,
        port: 8080,
        protocol: 'HTTP',
        healthCheck: { path: '/healthz' },
      },
    ],
    proxy: { connectionType: 'egress' },
  },
});

const route = (i: number): Manifest => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: `app-${i}`, namespace: NS },
  spec: {
    parentRefs: [{ name: GATEWAY }],
    hostnames: [`app-${i}.example.com`],
    rules: Array.from({ length: RULES }, (_, r) => ({
      matches: [{ path: { type: 'PathPrefix', value: `/path-${r}` } }],
      backendRefs: [
        {
          group: 'gateway.tailscale.com',
          kind: 'TailscaleEndpoints',
          name: `backend-${(i * RULES + r) % BACKENDS}`,
        },
      ],
    })),
  },
});

/** Applies `objects` a few at a time. */
async function applyAll(objects: Manifest[], parallel = 16): Promise<void> {
  for (let i = 0; i < objects.length; i += parallel)
    await Promise.all(objects.slice(i, i + parallel).map(apply));
}

/** Every rule cluster of every route is there with the endpoints our PostClusterModify put in. */
const complete = (state: XdsState): boolean => {
  for (let i = 0; i < ROUTES; i++)
    for (let r = 0; r < RULES; r++)
      if (
        (state.clusters.get(`httproute/${NS}/app-${i}/rule/${r}`)?.loadAssignment?.endpoints.length ?? 0) ===
        0
      )
        return false;
  return true;
};

/** `tsgw_extension_hook_calls_total` by hook and code, the refused-call count, PostTranslateModify's mean size. */
async function hookCalls(): Promise<{
  calls: Map<string, number>;
  refused: number;
  translateBytes: number;
  /** PostTranslateModify calls that waited for the budget (over 0.5 ms). */
  waitedCalls: number;
}> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  const series = (suffix: string) =>
    Number(
      new RegExp(`^tsgw_extension_request_bytes_${suffix}\\{hook="PostTranslateModify"\\} (\\S+)$`, 'm').exec(
        text,
      )?.[1] ?? Number.NaN,
    );
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^tsgw_extension_hook_calls_total\{hook="([^"]+)",code="([^"]+)"\} (\S+)$/gm))
    calls.set(`${m[1]} ${m[2]}`, Number(m[3]));
  let refused = 0;
  for (const m of text.matchAll(/^tsgw_extension_refused_calls_total\{[^}]*\} (\S+)$/gm))
    refused += Number(m[1]);
  const waited = (bucket: string) =>
    Number(
      new RegExp(
        `^tsgw_extension_budget_wait_seconds_${bucket}\\{(?:le="0.0005",)?hook="PostTranslateModify"\\} (\\S+)$`,
        'm',
      ).exec(text)?.[1] ?? 0,
    );
  return {
    calls,
    refused,
    translateBytes: series('sum') / series('count'),
    waitedCalls: waited('count') - waited('bucket'),
  };
}

async function gauge(name: string): Promise<number> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

/** Samples the waiting-calls gauge until `until` settles; the most seen. */
async function peakWaiting<T>(until: Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = 0;
  let settled = false;
  const sampling = (async () => {
    while (!settled) {
      peak = Math.max(peak, await gauge('tsgw_extension_waiting_calls'));
      await Bun.sleep(20);
    }
  })();
  try {
    return { value: await until, peak };
  } finally {
    settled = true;
    await sampling;
  }
}

/**
 * Runs `start` (which sets both replicas translating) with the operator stopped (SIGSTOP), and lets it
 * go on a moment later: both replicas then wait on their first hook call and resume together, so
 * their translations, with the same work, reach PostTranslateModify close together. Staging, not a
 * timing assert.
 */
async function inStep<T>(start: () => Promise<T>): Promise<T> {
  operator.process.kill('SIGSTOP');
  try {
    const value = await start();
    await Bun.sleep(2_000);
    return value;
  } finally {
    operator.process.kill('SIGCONT');
  }
}

/** EG's error lines about hooks (`rpc error: …` from the extension client, or translation skipped). */
const extensionErrors = (eg: RunningEnvoyGateway): string[] =>
  eg.errorLines().filter((line) => /rpc error|extension|skipped publishing/i.test(line));

beforeAll(async () => {
  cp = await startControlPlane();
  await installCrds(cp, [...(await envoyGatewayCrds()), ...renderCrds()], 60_000);
  await ok(
    await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: NS } } }),
    'creating namespace',
  );
  // One byte: every large call runs alone, so the two replicas' PostTranslateModify calls queue.
  operator = await startOperator({ cp, namespace: NS, args: ['--grpc-inflight-bytes', '1'] });
}, 180_000);

afterAll(async () => {
  for (const watch of watches) watch.close();
  await Promise.all(egs.map((eg) => eg.stop()));
  operator?.process.kill('SIGKILL');
  await cp?.stop();
});

describe('two Envoy Gateway replicas translating one large config at once', () => {
  test('both publish the complete xDS at start-up and after a change; no hook call fails', async () => {
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'eg' },
      spec: { controllerName: EG_CONTROLLER_NAME },
    });
    await apply(gateway());
    await apply({
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleGateway',
      metadata: { name: 'eg-tailnets', namespace: NS },
      spec: {
        gatewayRef: { name: GATEWAY },
        tailnets: [
          {
            name: 'corp',
            tailscaleTailnetRef: { name: 'corp' },
            routeGeneration: { egress: { pathPrefix: '/tailscale/{service}/' } },
          },
        ],
      },
    });
    const applied = performance.now();
    await applyAll(Array.from({ length: BACKENDS }, (_, i) => backend(i)));
    await applyAll(Array.from({ length: ROUTES }, (_, i) => route(i)));
    console.log(
      `applied ${BACKENDS} TailscaleEndpoints and ${ROUTES} HTTPRoutes in ${(performance.now() - applied).toFixed(0)} ms`,
    );

    // Both replicas start together with the whole config present: their first translations overlap.
    const grpcPort = Number(
      new URL(String((await operator.waitForLog('extension server listening')).url)).port,
    );
    const started = performance.now();
    egs.push(
      ...(await inStep(() =>
        Promise.all(
          [0, 1].map(() =>
            startEnvoyGateway({
              cp,
              extensionServer: { host: '127.0.0.1', port: grpcPort },
              netns: true,
              readyTimeoutMs: 120_000,
            }),
          ),
        ),
      )),
    );
    watches.push(...(await Promise.all(egs.map((eg) => eg.watchXds({ namespace: NS, name: GATEWAY })))));
    const first = await peakWaiting(
      Promise.all(
        watches.map((w, i) => w.waitFor(complete, 240_000, `replica ${i}: every rule cluster filled`)),
      ),
    );
    const translatedMs = performance.now() - started;
    const before = await hookCalls();

    // A change both replicas re-translate at once (EG honours gateway.envoyproxy.io/ annotations).
    const versions = first.value.map((s) => s.versions.cluster);
    const changed = performance.now();
    await inStep(() => apply(gateway({ 'gateway.envoyproxy.io/eg-ha-nudge': '1' })));
    const second = await peakWaiting(
      Promise.all(
        watches.map((w, i) =>
          w.waitFor(
            (s) => s.versions.cluster !== versions[i] && complete(s),
            240_000,
            `replica ${i}: a new complete translation after the change`,
          ),
        ),
      ),
    );
    const retranslatedMs = performance.now() - changed;
    const after = await hookCalls();

    const translate = (m: Map<string, number>) => m.get('PostTranslateModify ok') ?? 0;
    console.log(
      `two EG replicas, ${ROUTES * RULES} rule clusters each, PostTranslateModify ${(after.translateBytes / 1024 / 1024).toFixed(2)} MiB: both complete ${translatedMs.toFixed(0)} ms after start ` +
        `(peak ${first.peak} large calls waiting), again ${retranslatedMs.toFixed(0)} ms after a change ` +
        `(peak ${second.peak} waiting); PostTranslateModify OK ${translate(before.calls)} then ${translate(after.calls)}, ` +
        `${after.waitedCalls} of them waited for the other replica's`,
    );
    console.log(`hook calls by code: ${JSON.stringify(Object.fromEntries(after.calls))}`);

    for (const eg of egs) expect(extensionErrors(eg)).toEqual([]);
    const failed = [...after.calls].filter(([key, count]) => !key.endsWith(' ok') && count > 0);
    expect(failed).toEqual([]);
    expect(after.refused).toBe(0);
    // Both replicas called PostTranslateModify for the change.
    expect(translate(after.calls) - translate(before.calls)).toBeGreaterThanOrEqual(2);
  }, 600_000);
});
