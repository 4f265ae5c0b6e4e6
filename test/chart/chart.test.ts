/**
 * The Helm chart (charts/tailscale-gateway) and deploy/install.yaml against a real kube-apiserver with
 * `--authorization-mode=RBAC`:
 *
 * - the generated parts (CRD template, install.yaml) are fresh, and the values reference documents
 *   exactly the keys of values.yaml;
 * - every object the chart renders (defaults, and every option on) is accepted by server-side dry-run;
 * - no Role or ClusterRole rule grants `*`;
 * - the operator's main scenario runs with ONLY the chart's RBAC: the compiled binary, started with the
 *   Deployment's own arguments and a token of the chart's ServiceAccount, makes TailscaleTailnets
 *   Ready (one with an OAuth Secret in another namespace granted by `rbac.oauthSecrets`), holds the
 *   Lease, writes Events, logs no authorization error, and is refused what the chart does not grant;
 * - `helm install` / `upgrade` / `uninstall` work against the API server, including `tailnet.create`
 *   on the very first install, and the CRDs survive uninstall.
 *
 * helm is built once from the Go module proxy by test/harness/helm/build-helm.sh (Debian has no helm package).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { crdTemplate, INSTALL_YAML, installYaml } from '../../scripts/manifest.ts';
import { renderCrds } from '../../src/api/index.ts';
import { runCommand } from '../../src/cli/commands/run.ts';
import { flagName } from '../../src/config/schema.ts';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { LEASE_NAME } from '../../src/operator/operator.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import {
  CHART_DIR,
  helm,
  helmBinary,
  type KubeObject,
  parseObjects,
  REPO_ROOT,
  renderChart,
} from '../harness/helm/index.ts';
import { type RunningBinary, startBinary } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

type Json = Record<string, unknown>;
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
interface Container {
  name: string;
  args?: string[];
}

/** Every option that adds or changes objects, on at once. */
const EVERYTHING = {
  'oauth.clientId': 'id',
  'oauth.clientSecret': 'secret',
  'tailnet.create': true,
  'rbac.oauthSecrets': [{ namespace: 'oauth-elsewhere', name: 'corp-oauth' }],
  'rbac.secretsClusterWide': true,
  'grpc.tls.secretName': 'grpc-tls',
  'grpc.tls.clientCA': true,
  'metrics.serviceMonitor.enabled': true,
  'networkPolicy.metricsFrom': [{ namespaceSelector: { matchLabels: { name: 'monitoring' } } }],
  'operator.extraArgs': ['--log-level=debug'],
  'operator.extraEnv': [{ name: 'TZ', value: 'UTC' }],
  topologySpreadConstraints: [
    { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' },
  ],
};

const byKind = (objects: KubeObject[], kind: string) => objects.filter((o) => o.kind === kind);
const one = (objects: KubeObject[], kind: string, name?: string): KubeObject => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!;
};
const containerOf = (deployment: KubeObject): Container =>
  (deployment as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec
    .containers[0]!;
const rulesOf = (objects: KubeObject[]): { role: string; rule: Rule }[] =>
  objects
    .filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .flatMap((o) =>
      ((o as unknown as { rules?: Rule[] }).rules ?? []).map((rule) => ({
        role: `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`,
        rule,
      })),
    );

/** Leaf paths of values.yaml; maps and lists with content are descended into, except lists. */
function valuePaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0)
    return [prefix];
  return Object.entries(value as Json).flatMap(([key, child]) =>
    valuePaths(child, prefix ? `${prefix}.${key}` : key),
  );
}

describe('chart files', () => {
  test('values.yaml and the values reference in README.md document each other', () => {
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Json;
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Values'));
    const documented = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThan(40);
    expect(new Set(documented).size).toBe(documented.length);
    // A documented key covers itself and everything under it (`resources` covers resources.limits.memory).
    const covered = (path: string) => documented.some((key) => path === key || path.startsWith(`${key}.`));
    const undocumented = valuePaths(values).filter((path) => !covered(path));
    expect(undocumented).toEqual([]);
    const exists = (key: string) =>
      key.split('.').reduce<unknown>((node, part) => (node as Json | undefined)?.[part], values) !==
      undefined;
    expect(documented.filter((key) => !exists(key))).toEqual([]);
  });

  test('helm lint --strict passes', async () => {
    expect(await helm(['lint', '--strict', CHART_DIR])).toContain('0 chart(s) failed');
  });

  test('Chart.yaml follows package.json', () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Json;
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart.version).toBe(pkg.version);
    expect(chart.appVersion).toBe(pkg.version);
  });

  test('the CRD template is generated from crds/ (npm run manifest)', () => {
    const current = readFileSync(join(CHART_DIR, 'templates', 'crds.yaml'), 'utf8');
    if (current !== crdTemplate())
      throw new Error('charts/tailscale-gateway/templates/crds.yaml is stale: run npm run manifest');
  });

  test('deploy/install.yaml is the chart with default values (npm run manifest)', async () => {
    const current = readFileSync(INSTALL_YAML, 'utf8');
    if (current !== (await installYaml()))
      throw new Error('deploy/install.yaml is stale: run npm run manifest');
  });

  test('rendered CRDs are the generated ones, kept on uninstall; installCRDs=false drops them', async () => {
    const crds = byKind(await renderChart(), 'CustomResourceDefinition');
    const expected = renderCrds();
    expect(crds.map((crd) => crd.metadata.name).sort()).toEqual(
      expected.map((crd) => crd.metadata.name).sort(),
    );
    for (const crd of crds) {
      expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
      const { annotations: _, ...metadata } = crd.metadata;
      const want = expected.find((e) => e.metadata.name === crd.metadata.name)!;
      expect({ ...crd, metadata }).toEqual(want as unknown as KubeObject);
    }
    expect(byKind(await renderChart({ values: { installCRDs: false } }), 'CustomResourceDefinition')).toEqual(
      [],
    );
  });

  test('no Role or ClusterRole rule grants "*"', async () => {
    for (const objects of [await renderChart(), await renderChart({ values: EVERYTHING })]) {
      const rules = rulesOf(objects);
      expect(rules.length).toBeGreaterThan(10);
      for (const { role, rule } of rules) {
        const fields = [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames, rule.nonResourceURLs];
        expect({ role, star: fields.flat().some((v) => v?.includes('*')) }).toEqual({ role, star: false });
        expect(rule.nonResourceURLs).toBeUndefined();
        expect(rule.verbs).not.toContain('escalate');
        expect(rule.verbs).not.toContain('bind');
        expect(rule.verbs).not.toContain('impersonate');
      }
      // Secrets cluster-wide only on request; the CRD read only for our own CRDs.
      const clusterWide = rulesOf(objects.filter((o) => o.kind === 'ClusterRole'));
      const crdRule = clusterWide.find(({ rule }) => rule.resources?.includes('customresourcedefinitions'));
      expect(crdRule?.rule.resourceNames?.sort()).toEqual(
        renderCrds()
          .map((c) => c.metadata.name)
          .sort(),
      );
      expect(crdRule?.rule.verbs).toEqual(['get']);
    }
    const secretsEverywhere = (objects: KubeObject[]) =>
      rulesOf(objects.filter((o) => o.kind === 'ClusterRole')).some(({ rule }) =>
        rule.resources?.includes('secrets'),
      );
    expect(secretsEverywhere(await renderChart())).toBe(false);
    expect(secretsEverywhere(await renderChart({ values: { 'rbac.secretsClusterWide': true } }))).toBe(true);
  });

  test('the Deployment: 2 replicas, hardening, probes, and only flags `run` has', async () => {
    const objects = await renderChart({ values: EVERYTHING });
    const deployment = one(objects, 'Deployment') as unknown as {
      spec: { replicas: number; template: { spec: Json } };
    };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec as {
      terminationGracePeriodSeconds: number;
      securityContext: Json;
      affinity: Json;
      containers: (Container & Json)[];
    };
    const container = pod.containers[0]!;
    const flags = new Set(runCommand.settings.map((key) => flagName(key)));
    const args = container.args ?? [];
    expect(args[0]).toBe('run');
    for (const arg of args.slice(1)) {
      expect(arg).toMatch(/^--[a-z-]+=/);
      expect({ arg, known: flags.has(arg.slice(0, arg.indexOf('='))) }).toEqual({ arg, known: true });
    }
    expect(args).toContain('--leader-election=true');
    const timeout = Number(args.find((a) => a.startsWith('--shutdown-timeout='))!.split('=')[1]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(timeout);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      runAsUser: 65532,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'http' } });
    expect(container.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' } });
    expect((container.env as { name: string }[]).map((e) => e.name)).toEqual(
      expect.arrayContaining(['POD_NAME', 'POD_NAMESPACE']),
    );
    expect(container.ports).toEqual([
      { name: 'grpc', containerPort: 5005, protocol: 'TCP' },
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
    ]);
    expect(JSON.stringify(pod.affinity)).toContain('podAntiAffinity');
    expect(one(objects, 'PodDisruptionBudget')).toMatchObject({ spec: { maxUnavailable: 1 } });
  });

  test('the JavaScript engine sizes its GC by operator.gcMemoryBytes (64 MiB by default); 0 leaves it alone', async () => {
    const envOf = async (values: Record<string, unknown>) => {
      const deployment = one(await renderChart({ values }), 'Deployment') as unknown as {
        spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
      };
      return deployment.spec.template.spec.containers[0]!.env;
    };
    expect((await envOf({})).find((e) => e.name === 'BUN_JSC_forceRAMSize')).toEqual({
      name: 'BUN_JSC_forceRAMSize',
      value: '67108864',
    });
    expect((await envOf({ 'operator.gcMemoryBytes': 0 })).map((e) => e.name)).not.toContain(
      'BUN_JSC_forceRAMSize',
    );
  });

  test('contradictory values fail rendering with a message', async () => {
    const fails = async (values: Record<string, unknown>, message: string) => {
      const error = await renderChart({ values }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(error)).toContain(message);
    };
    await fails({ terminationGracePeriodSeconds: 20 }, 'must exceed operator.shutdownTimeout');
    await fails({ 'tailnet.create': true }, 'tailnet.create needs');
    await fails({ 'oauth.clientId': 'x' }, 'go together');
    await fails(
      { 'oauth.existingSecret': 'a', 'oauth.clientId': 'x', 'oauth.clientSecret': 'y' },
      'not both',
    );
    await fails({ 'operator.leaderElection': false }, 'replicaCount: 1');
    await fails({ 'grpc.tls.clientCA': true }, 'needs grpc.tls.secretName');
    await fails({ 'rbac.oauthSecrets': [{ namespace: 'tailscale-gateway', name: 'x' }] }, 'readable already');
  });

  test('the gRPC Service is the one Envoy Gateway dials; the NetworkPolicy admits only Envoy Gateway to it', async () => {
    const objects = await renderChart();
    const service = one(objects, 'Service', 'tailscale-gateway') as unknown as {
      metadata: { namespace: string };
      spec: { ports: Json[]; selector: Json };
    };
    expect(service.metadata.namespace).toBe('tailscale-gateway');
    expect(service.spec.ports).toEqual([
      { name: 'grpc', port: 5005, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' },
    ]);
    const podLabels = (one(objects, 'Deployment') as unknown as { spec: { template: { metadata: Json } } })
      .spec.template.metadata.labels as Json;
    expect(podLabels).toMatchObject(service.spec.selector);

    // kind/envoy-gateway-values.yaml (Envoy Gateway's side) names this Service.
    const egValues = join(REPO_ROOT, 'kind', 'envoy-gateway-values.yaml');
    if (existsSync(egValues)) {
      const eg = parse(readFileSync(egValues, 'utf8')) as {
        config: { envoyGateway: { extensionManager: { service: { fqdn: Json } } } };
      };
      expect(eg.config.envoyGateway.extensionManager.service.fqdn).toEqual({
        hostname: 'tailscale-gateway.tailscale-gateway.svc.cluster.local',
        port: 5005,
      });
    } else console.warn('kind/envoy-gateway-values.yaml is missing: skipped comparing its extension address');

    const policy = one(objects, 'NetworkPolicy') as unknown as {
      spec: { policyTypes: string[]; ingress: { from?: Json[]; ports: Json[] }[] };
    };
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const grpcRules = policy.spec.ingress.filter((rule) => rule.ports.some((p) => p.port === 5005));
    expect(grpcRules).toEqual([
      {
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'envoy-gateway-system' } },
            podSelector: { matchLabels: { 'control-plane': 'envoy-gateway' } },
          },
        ],
        ports: [{ port: 5005, protocol: 'TCP' }],
      },
    ]);
  });

  test('Envoy Gateway may read TailscaleEndpoints and TailscaleRoutePolicies and update the policies’ status', async () => {
    const objects = await renderChart({
      values: { 'envoyGateway.namespace': 'eg', 'envoyGateway.serviceAccountName': 'eg-sa' },
    });
    const role = one(objects, 'ClusterRole', 'tailscale-gateway-envoy-gateway') as unknown as {
      rules: Rule[];
    };
    expect(role.rules).toEqual([
      {
        apiGroups: ['gateway.tailscale.com'],
        resources: ['tailscaleendpoints', 'tailscaleroutepolicies'],
        verbs: ['get', 'list', 'watch'],
      },
      {
        apiGroups: ['gateway.tailscale.com'],
        resources: ['tailscaleroutepolicies/status'],
        verbs: ['update'],
      },
    ]);
    const binding = one(objects, 'ClusterRoleBinding', 'tailscale-gateway-envoy-gateway') as unknown as {
      subjects: Json[];
    };
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'eg-sa', namespace: 'eg' }]);
    expect(
      (await renderChart({ values: { 'envoyGateway.rbac': false } })).filter((o) =>
        o.metadata.name.endsWith('-envoy-gateway'),
      ),
    ).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Against the API server

let cp: StartedControlPlane;
let admin: KubeClient;

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}
const ensureNamespace = async (name: string) => {
  const res = await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name } } });
  if (!res.ok && res.status !== 409) throw new Error(`namespace ${name}: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
};

/** Server-side apply of every object (dry run or for real); returns what the API server refused. */
async function applyAll(objects: KubeObject[], dryRun: boolean): Promise<string[]> {
  const refused: string[] = [];
  for (const object of objects) {
    try {
      await admin.applyObject(object as never, { dryRun, fieldManager: 'chart-test', force: true });
    } catch (error) {
      refused.push(`${object.kind}/${object.metadata.name}: ${String(error).slice(0, 400)}`);
    }
  }
  return refused;
}

beforeAll(async () => {
  // Built before the API server starts, so a cold build does not count against its start timeout.
  await helmBinary();
  cp = await startControlPlane();
  admin = createKubeClient({ kubeconfig: cp.kubeconfigPath });
}, 600_000);

afterAll(async () => {
  await cp?.stop();
});

describe('on the API server', () => {
  test('helm install with tailnet.create on a fresh cluster, upgrade adopts the tailnet, uninstall keeps the CRDs', async () => {
    // Runs first, on an API server without our CRDs. A release of its own: other names, another namespace.
    const env = { KUBECONFIG: cp.kubeconfigPath };
    const release = ['tsgw-helm', CHART_DIR, '--namespace', 'tsgw-helm'];
    const values = (tags: string[]) => [
      '--set',
      'oauth.clientId=id',
      '--set',
      'oauth.clientSecret=secret',
      '--set',
      'tailnet.create=true',
      '--set',
      'tailnet.name=helm',
      '--set',
      'envoyGateway.rbac=false',
      '--set-json',
      `tailnet.tags=${JSON.stringify(tags)}`,
    ];
    const tagsOf = async () =>
      (
        (await ok(await cp.request('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/helm'))) as {
          spec: { tags: string[] };
        }
      ).spec.tags;
    // First on this API server: Helm creates the CRDs itself, then maps the tailnet in a post-install hook.
    const installed = await helm(['install', ...release, '--create-namespace', ...values(['tag:a'])], env);
    expect(await tagsOf()).toEqual(['tag:a']);
    // NOTES name the Service Envoy Gateway must dial.
    expect(installed).toContain('hostname: tailscale-gateway.tsgw-helm.svc.cluster.local');
    await helm(['upgrade', ...release, ...values(['tag:b'])], env);
    await helm(['upgrade', ...release, ...values(['tag:c'])], env);
    expect(await tagsOf()).toEqual(['tag:c']);
    await helm(['uninstall', 'tsgw-helm', '--namespace', 'tsgw-helm'], env);
    const gone = await cp.request('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/helm');
    await gone.body?.cancel();
    expect(gone.status).toBe(404);
    for (const crd of renderCrds()) {
      const res = await cp.request(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      await res.body?.cancel();
      expect(res.status).toBe(200);
    }
  }, 120_000);

  test('every rendered object is accepted by server-side dry-run (defaults, everything on, install.yaml, kind/)', async () => {
    const defaults = await renderChart();
    await installCrds(cp, byKind(defaults, 'CustomResourceDefinition'));
    for (const namespace of ['tailscale-gateway', 'oauth-elsewhere']) await ensureNamespace(namespace);
    const everything = await renderChart({ values: EVERYTHING });
    const install = parseObjects(readFileSync(INSTALL_YAML, 'utf8'));
    const notServed = ['ServiceMonitor']; // Prometheus Operator's CRD is not on this API server
    for (const objects of [defaults, everything, install]) {
      const served = objects.filter((o) => !notServed.includes(o.kind));
      expect(await applyAll(served, true)).toEqual([]);
    }
    expect(byKind(everything, 'ServiceMonitor')).toHaveLength(1);
    expect(install.map((o) => o.kind)).toContain('Namespace');

    // kind/: the Gateway the examples use, when Gateway API's CRDs are at hand (Envoy Gateway's module).
    const gatewayCrds = await gatewayApiCrds();
    if (gatewayCrds) {
      await installCrds(cp, gatewayCrds);
      await ensureNamespace('envoy-gateway-system');
      expect(
        await applyAll(parseObjects(readFileSync(join(REPO_ROOT, 'kind', 'gateway.yaml'), 'utf8')), true),
      ).toEqual([]);
    } else
      console.warn('Gateway API CRDs not in the Go module cache: skipped the dry-run of kind/gateway.yaml');
    const cluster = parse(readFileSync(join(REPO_ROOT, 'kind', 'cluster.yaml'), 'utf8')) as Json;
    expect(cluster).toMatchObject({ kind: 'Cluster', apiVersion: 'kind.x-k8s.io/v1alpha4' });
    expect((cluster.nodes as Json[]).filter((n) => n.role === 'worker').length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  describe('the operator with only the chart RBAC', () => {
    const namespace = 'tailscale-gateway';
    let fake: FakeTailscale;
    let operator: RunningBinary | undefined;
    let token: string;
    let tmp: string;

    const asOperator = (path: string, init: { method?: string; body?: unknown } = {}) =>
      fetch(new URL(path, cp.server), {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(init.body ? { 'content-type': 'application/json' } : {}),
        },
        ...(init.body ? { body: JSON.stringify(init.body) } : {}),
        tls: { ca: cp.ca },
      });

    beforeAll(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'tsgw-chart-'));
      fake = await startFakeTailscale();
      fake.state.seedDevice({ name: 'web.tail1234.ts.net' });
      for (const ns of [namespace, 'oauth-elsewhere']) await ensureNamespace(ns);
      const objects = await renderChart({
        values: {
          'oauth.clientId': fake.clientId,
          'oauth.clientSecret': fake.clientSecret,
          'tailnet.create': true,
          'tailnet.name': 'chart',
          'rbac.oauthSecrets': [{ namespace: 'oauth-elsewhere', name: 'corp-oauth' }],
        },
      });
      await installCrds(cp, byKind(objects, 'CustomResourceDefinition'));
      // Everything for real, the tailnet last (it needs its CRD); no controller runs the Deployment.
      const tailnet = one(objects, 'TailscaleTailnet');
      expect(
        await applyAll(
          objects.filter((o) => o.kind !== 'CustomResourceDefinition' && o !== tailnet),
          false,
        ),
      ).toEqual([]);
      // A tailnet whose OAuth Secret lives outside the release namespace, as admin would create it.
      await admin.applyObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'corp-oauth', namespace: 'oauth-elsewhere' },
        stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
      } as never);
      await admin.applyObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'not-referenced', namespace: 'oauth-elsewhere' },
        stringData: { password: 'hunter2' },
      } as never);

      const serviceAccount = one(objects, 'ServiceAccount').metadata.name;
      const tokenRequest = (await ok(
        await cp.request(`/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
          method: 'POST',
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { expirationSeconds: 3600 },
          },
        }),
      )) as { status: { token: string } };
      token = tokenRequest.status.token;
      const kubeconfig = join(tmp, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'c',
              cluster: {
                server: cp.server,
                'certificate-authority-data': Buffer.from(cp.ca).toString('base64'),
              },
            },
          ],
          users: [{ name: serviceAccount, user: { token } }],
          contexts: [{ name: 'x', context: { cluster: 'c', user: serviceAccount } }],
          'current-context': 'x',
        }),
        { mode: 0o600 },
      );

      // The Deployment's own arguments, with loopback addresses and the fake Tailscale API last (the
      // last occurrence of a flag wins).
      const args = (containerOf(one(objects, 'Deployment')).args ?? []).map((arg) =>
        arg.replace('$(POD_NAMESPACE)', namespace),
      );
      operator = await startBinary(
        [
          ...args,
          '--grpc-addr=127.0.0.1:0',
          '--http-addr=127.0.0.1:0',
          `--tailscale-api-url=${fake.url}`,
          '--log-format=json',
          '--shutdown-delay=0',
        ],
        { KUBECONFIG: kubeconfig, POD_NAME: 'tailscale-gateway-0', POD_NAMESPACE: namespace },
      );
      await operator.waitForLog(/leading: starting controllers/, 30_000);
      await admin.applyObject(tailnet as never, { fieldManager: 'chart-test', force: true });
      await admin.applyObject({
        apiVersion: 'gateway.tailscale.com/v1alpha1',
        kind: 'TailscaleTailnet',
        metadata: { name: 'elsewhere' },
        spec: { oauthSecretRef: { name: 'corp-oauth', namespace: 'oauth-elsewhere' } },
      } as never);
    }, 120_000);

    afterAll(async () => {
      operator?.process.kill('SIGKILL');
      await fake?.stop();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    const readyOf = async (name: string) => {
      const tailnet = (await ok(
        await cp.request(`/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/${name}`),
      )) as { status?: { conditions?: { type: string; status: string; reason: string }[] } };
      return tailnet.status?.conditions?.find((c) => c.type === 'Ready');
    };

    test('TailscaleTailnets become Ready: OAuth Secret in the release namespace, and one granted by rbac.oauthSecrets', async () => {
      for (const name of ['chart', 'elsewhere'])
        expect(
          (
            await eventually(
              () => readyOf(name),
              (r) => r?.status === 'True',
            )
          )?.reason,
        ).toBe('Ready');
    });

    test('the Lease is held, Events are written, and nothing was refused', async () => {
      const lease = (await ok(
        await cp.request(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${LEASE_NAME}`),
      )) as { spec: { holderIdentity?: string } };
      expect(lease.spec.holderIdentity).toBeString();
      expect(lease.spec.holderIdentity).not.toBe('');
      // Cluster-scoped objects' Events go to `default`.
      const events = await eventually(
        async () =>
          (
            (await ok(await cp.request('/apis/events.k8s.io/v1/namespaces/default/events'))) as {
              items: { regarding: { name: string }; reason: string; reportingController: string }[];
            }
          ).items.filter((e) => e.reportingController === 'gateway.tailscale.com/tailscale-gateway'),
        (items) => ['chart', 'elsewhere'].every((name) => items.some((e) => e.regarding.name === name)),
      );
      expect(events.every((e) => e.reason === 'Ready')).toBe(true);
      const refused = operator!.lines.filter((line) => /forbidden|\b403\b|Unauthorized/i.test(line));
      expect(refused).toEqual([]);
    });

    test('what the chart does not grant is refused', async () => {
      // The granted Secret by name, and its field-selected list (what the operator's watch does).
      expect((await asOperator('/api/v1/namespaces/oauth-elsewhere/secrets/corp-oauth')).status).toBe(200);
      expect(
        (
          await asOperator(
            '/api/v1/namespaces/oauth-elsewhere/secrets?fieldSelector=metadata.name%3Dcorp-oauth',
          )
        ).status,
      ).toBe(200);
      const refused: [string, { method?: string; body?: unknown }][] = [
        ['/api/v1/namespaces/oauth-elsewhere/secrets/not-referenced', {}],
        ['/api/v1/namespaces/oauth-elsewhere/secrets', {}],
        ['/api/v1/namespaces/kube-system/secrets', {}],
        ['/api/v1/secrets', {}],
        [
          '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tailscaletailnets.gateway.tailscale.com',
          { method: 'DELETE' },
        ],
        ['/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {}],
        ['/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/chart', { method: 'DELETE' }],
        [
          '/apis/rbac.authorization.k8s.io/v1/clusterroles',
          {
            method: 'POST',
            body: {
              metadata: { name: 'mine' },
              rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
            },
          },
        ],
        ['/apis/coordination.k8s.io/v1/namespaces/default/leases', {}],
        ['/apis/apps/v1/namespaces/default/statefulsets', {}],
        ['/api/v1/nodes', {}],
      ];
      const statuses = await Promise.all(
        refused.map(async ([path, init]) => {
          const res = await asOperator(path, init);
          await res.body?.cancel();
          return [`${init.method ?? 'GET'} ${path}`, res.status];
        }),
      );
      expect(statuses).toEqual(refused.map(([path, init]) => [`${init.method ?? 'GET'} ${path}`, 403]));
    });

    test('SIGTERM: exits 0 and releases the Lease (the grace period covers the shutdown)', async () => {
      operator!.process.kill('SIGTERM');
      expect(await operator!.process.exited).toBe(0);
      const lease = (await ok(
        await cp.request(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${LEASE_NAME}`),
      )) as { spec: { holderIdentity?: string } };
      expect(lease.spec.holderIdentity ?? '').toBe('');
    });
  });
});

/** Gateway API's standard CRDs from Envoy Gateway's Go module, when it is in the module cache. */
async function gatewayApiCrds(): Promise<KubeObject[] | undefined> {
  const go = Bun.spawn(['go', 'env', 'GOMODCACHE'], { stdout: 'pipe', stderr: 'ignore' });
  const cache = (await new Response(go.stdout).text()).trim();
  if ((await go.exited) !== 0 || !cache) return undefined;
  const file = join(
    cache,
    'github.com/envoyproxy/gateway@v1.9.1/charts/gateway-crds-helm/templates/standard-gatewayapi-crds.yaml',
  );
  if (!existsSync(file)) return undefined;
  // The file is a Helm template: drop the {{ if }} lines around it.
  const text = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('{{'))
    .join('\n');
  return parseObjects(text).filter((o) => o.kind === 'CustomResourceDefinition');
}
