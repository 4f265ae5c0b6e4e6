/**
 * Two operator processes against one real kube-apiserver: both serve the HTTP surface and the hooks,
 * exactly one reconciles; when the leader dies without releasing its Lease, the other takes over
 * within the lease duration.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';
import { type RunningBinary, startOperator } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

const LEASE_SECONDS = 3;
let cp: StartedControlPlane;
let fake: FakeTailscale;
const operators: RunningBinary[] = [];

interface Readyz {
  leadership?: { leader: boolean; identity: string; holder?: string };
}
const readyz = async (op: RunningBinary) => (await (await fetch(`${op.httpUrl}/readyz`)).json()) as Readyz;
const reconciles = async (op: RunningBinary) => {
  const text = await (await fetch(`${op.httpUrl}/metrics`)).text();
  return [
    ...text.matchAll(
      /^controller_runtime_reconcile_total\{controller="tailscaletailnet",result="[a-z_]+"\} (\d+)/gm,
    ),
  ]
    .map((m) => Number(m[1]))
    .reduce((a, b) => a + b, 0);
};
/** The writes `op` counted on /metrics (`tsgw_kube_api_writes_total`) for `resource`, summed. */
const writes = async (op: RunningBinary, resource: string) => {
  const text = await (await fetch(`${op.httpUrl}/metrics`)).text();
  return [...text.matchAll(/^tsgw_kube_api_writes_total\{([^}]*)\} (\d+)/gm)]
    .filter((m) => m[1]!.includes(`resource="${resource}"`))
    .reduce((sum, m) => sum + Number(m[2]), 0);
};
beforeAll(async () => {
  cp = await startControlPlane();
  await installCrds(cp, renderCrds());
  fake = startFakeTailscale();
  const options = {
    cp,
    namespace: 'default',
    leaderElection: true,
    tailscaleApiUrl: fake.url,
    args: ['--lease-duration', String(LEASE_SECONDS)],
  };
  operators.push(await startOperator({ ...options, env: { POD_NAME: 'operator-a' } }));
  operators.push(await startOperator({ ...options, env: { POD_NAME: 'operator-b' } }));
}, 120_000);

afterAll(async () => {
  for (const op of operators) op.process.kill('SIGKILL');
  await fake?.stop();
  await cp?.stop();
});

test('exactly one of two replicas leads and reconciles; the other takes over when it dies', async () => {
  const states = await eventually(
    () => Promise.all(operators.map(readyz)),
    // One leader, and the other has seen its record.
    (s) => s.filter((r) => r.leadership?.leader).length === 1 && s.every((r) => r.leadership?.holder),
  );
  const leaderIndex = states.findIndex((s) => s.leadership?.leader);
  const leader = operators[leaderIndex]!;
  const follower = operators[1 - leaderIndex]!;
  expect(states[1 - leaderIndex]?.leadership?.holder).toBe(states[leaderIndex]?.leadership?.identity);
  // Each identity is its Pod's name (POD_NAME, read once at the entry point) plus a random suffix.
  expect(states.map((s) => s.leadership?.identity)).toEqual([
    expect.stringMatching(/^operator-a_[0-9a-f]{10}$/),
    expect.stringMatching(/^operator-b_[0-9a-f]{10}$/),
  ]);

  // A TailscaleTailnet is reconciled by the leader alone.
  await cp.request('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets', {
    method: 'POST',
    body: {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      spec: { oauthSecretRef: { name: 'missing', namespace: 'default' } },
    },
  });
  await eventually(
    () => reconciles(leader),
    (n) => n > 0,
  );
  expect(await reconciles(follower)).toBe(0);
  // Every write to the API server is counted: the leader's status of the tailnet, and its Lease,
  // which the follower also tries to take (a write of its own only once the Lease expires).
  expect(
    await eventually(
      () => writes(leader, 'tailscaletailnets.gateway.tailscale.com'),
      (n) => n > 0,
    ),
  ).toBeGreaterThan(0);
  expect(await writes(leader, 'leases.coordination.k8s.io')).toBeGreaterThan(0);
  expect(await writes(follower, 'tailscaletailnets.gateway.tailscale.com')).toBe(0);

  // Both serve while one leads.
  for (const op of operators) expect((await fetch(`${op.httpUrl}/healthz`)).status).toBe(200);

  // The leader dies without releasing the Lease; the follower takes over after it expires.
  leader.process.kill('SIGKILL');
  await leader.process.exited;
  const after = await eventually(
    () => readyz(follower),
    (r) => r.leadership?.leader === true,
  );
  expect(after.leadership?.holder).toBe(after.leadership?.identity);
  await eventually(
    () => reconciles(follower),
    (n) => n > 0,
  );
  expect((await fetch(`${follower.httpUrl}/healthz`)).status).toBe(200);
}, 90_000);
