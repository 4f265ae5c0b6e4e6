/**
 * The TailscaleRoutePolicy status controller end to end: the compiled binary's `run` against a real
 * kube-apiserver with the Gateway API CRDs. Ancestor entries per target (Accepted, TargetNotFound,
 * Conflicted), UnsupportedActions, Envoy Gateway's way of writing (an update of the whole status with
 * only its own entries) answered by our entries coming back with EG's kept, and zero writes once
 * settled.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { POLICY_CONTROLLER_NAME, renderCrds } from '../../src/api/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { envoyGatewayCrds } from '../harness/envoy-gateway/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

const NS = 'tsrp-it';
const GW = '/apis/gateway.networking.k8s.io/v1';
const TS = '/apis/gateway.tailscale.com/v1alpha1';
const EG = 'gateway.envoyproxy.io/gatewayclass-controller';
let cp: StartedControlPlane;
let operator: RunningBinary;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime?: string;
}
interface Ancestor {
  ancestorRef: { kind?: string; name: string; sectionName?: string };
  controllerName: string;
  conditions?: Condition[];
}
interface Policy {
  metadata: { resourceVersion: string };
  status?: { conditions?: Condition[]; ancestors?: Ancestor[] };
}

async function ok(res: Response): Promise<unknown> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}
const apply = async (path: string, body: object) =>
  ok(
    await cp.request(path, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'tsrp-it', force: 'true' },
    }),
  );
const policyPath = (name: string) => `${TS}/namespaces/${NS}/tailscaleroutepolicies/${name}`;
const getPolicy = async (name: string) => (await ok(await cp.request(policyPath(name)))) as Policy;
const applyPolicy = (
  name: string,
  targetRefs: object[],
  rules: object[] = [{ actions: [{ type: 'Deny' }] }],
) =>
  apply(policyPath(name), {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleRoutePolicy',
    metadata: { name, namespace: NS },
    spec: { targetRefs, rules },
  });
const ours = (p: Policy) =>
  (p.status?.ancestors ?? [])
    .filter((a) => a.controllerName === POLICY_CONTROLLER_NAME)
    .map(
      (a) =>
        `${a.ancestorRef.kind}/${a.ancestorRef.name}${a.ancestorRef.sectionName ? `#${a.ancestorRef.sectionName}` : ''}=${a.conditions?.find((c) => c.type === 'Accepted')?.reason}`,
    );
const cond = (p: Policy, type: string) => p.status?.conditions?.find((c) => c.type === type);

async function reconciles(): Promise<number> {
  const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
  return [...text.matchAll(/^controller_runtime_reconcile_total\{([^}]*)\} (\S+)$/gm)]
    .filter((m) => m[1]!.includes('controller="tailscaleroutepolicy"'))
    .reduce((sum, m) => sum + Number(m[2]), 0);
}

beforeAll(async () => {
  cp = await startControlPlane();
  const gatewayApi = (await envoyGatewayCrds()).filter((crd) =>
    (crd as { metadata: { name: string } }).metadata.name.endsWith('.gateway.networking.k8s.io'),
  );
  await installCrds(cp, [...gatewayApi, ...renderCrds()], 60_000);
  await ok(await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: NS } } }));
  await apply(`${GW}/namespaces/${NS}/gateways/eg`, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: NS },
    spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
  });
  await apply(`${GW}/namespaces/${NS}/httproutes/app`, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'app', namespace: NS },
    spec: {
      parentRefs: [{ name: 'eg' }],
      rules: [{ name: 'main', backendRefs: [{ name: 'app', port: 80 }] }],
    },
  });
  operator = await startOperator({ cp, namespace: NS });
}, 180_000);

afterAll(async () => {
  operator?.process.kill('SIGKILL');
  await cp?.stop();
});

describe('TailscaleRoutePolicy status against a real API server', () => {
  test('one ancestor entry per target: Accepted, TargetNotFound for a missing route and listener', async () => {
    await applyPolicy('alpha', [
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'app', sectionName: 'main' },
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg', sectionName: 'https' },
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'ghost' },
    ]);
    const p = await eventually(
      () => getPolicy('alpha'),
      (x) => ours(x).includes('HTTPRoute/app#main=Accepted'),
    );
    expect(ours(p)).toEqual([
      'HTTPRoute/app#main=Accepted',
      'Gateway/eg#https=TargetNotFound',
      'HTTPRoute/ghost=TargetNotFound',
    ]);
    expect(cond(p, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(cond(p, 'Ready')).toMatchObject({ status: 'False', reason: 'TargetNotFound' });
    // The missing route appears: that entry turns Accepted.
    await apply(`${GW}/namespaces/${NS}/httproutes/ghost`, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'ghost', namespace: NS },
      spec: { parentRefs: [{ name: 'eg' }], rules: [{ backendRefs: [{ name: 'app', port: 80 }] }] },
    });
    await eventually(
      () => getPolicy('alpha'),
      (x) => ours(x).includes('HTTPRoute/ghost=Accepted'),
    );
  });

  test('a second policy on the same target: Conflicted, naming the winner; Route backendRefs reported', async () => {
    await applyPolicy(
      'beta',
      [
        { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'app', sectionName: 'main' },
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg' },
      ],
      [
        {
          name: 'fwd',
          actions: [{ type: 'Route', route: { backendRefs: [{ kind: 'Service', name: 'x', port: 80 }] } }],
        },
      ],
    );
    const p = await eventually(
      () => getPolicy('beta'),
      (x) => ours(x).length === 2,
    );
    expect(ours(p)).toEqual(['HTTPRoute/app#main=Conflicted', 'Gateway/eg=Accepted']);
    const conflicted = p.status!.ancestors!.find((a) => a.ancestorRef.kind === 'HTTPRoute')!;
    expect(conflicted.conditions![0]!.message).toContain(`TailscaleRoutePolicy ${NS}/alpha`);
    expect(cond(p, 'RulesSupported')).toMatchObject({ status: 'False', reason: 'UnsupportedActions' });
  });

  test("Envoy Gateway's whole-status update: our entries come back, EG's are kept", async () => {
    const before = await getPolicy('alpha');
    // What EG 1.9's status updater does: an update of the status holding only its own entries.
    const egStatus = {
      ancestors: [
        {
          ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: NS, name: 'eg' },
          controllerName: EG,
          conditions: [
            {
              type: 'Accepted',
              status: 'True',
              reason: 'Accepted',
              message: 'Policy has been accepted.',
              lastTransitionTime: '2026-01-01T00:00:00Z',
              observedGeneration: 1,
            },
          ],
        },
      ],
    };
    await ok(
      await cp.request(`${policyPath('alpha')}/status`, {
        method: 'PUT',
        body: {
          apiVersion: 'gateway.tailscale.com/v1alpha1',
          kind: 'TailscaleRoutePolicy',
          metadata: { name: 'alpha', namespace: NS, resourceVersion: before.metadata.resourceVersion },
          status: egStatus,
        },
        query: { fieldManager: 'envoy-gateway' },
      }),
    );
    const after = await eventually(
      () => getPolicy('alpha'),
      (x) => ours(x).length === 3 && (x.status?.ancestors ?? []).some((a) => a.controllerName === EG),
    );
    expect(after.status!.ancestors![0]).toEqual(egStatus.ancestors[0] as unknown as Ancestor);
    expect(ours(after)).toEqual(ours(before));
    expect(cond(after, 'Ready')).toBeDefined();
  });

  test('settled: reconciles write nothing (resourceVersions stay)', async () => {
    await eventually(
      () => getPolicy('alpha'),
      (x) => ours(x).length === 3 && (x.status?.ancestors?.length ?? 0) === 4,
    );
    const names = ['alpha', 'beta'];
    const versions = await Promise.all(names.map(async (n) => (await getPolicy(n)).metadata.resourceVersion));
    const before = await reconciles();
    // A label on the HTTPRoute maps to every policy of the namespace and changes no outcome.
    await ok(
      await cp.request(`${GW}/namespaces/${NS}/httproutes/app`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { metadata: { labels: { touched: 'yes' } } },
      }),
    );
    await eventually(reconciles, (n) => n >= before + names.length);
    expect(await Promise.all(names.map(async (n) => (await getPolicy(n)).metadata.resourceVersion))).toEqual(
      versions,
    );
  });
});
