import { afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { V1Lease } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createLeaderElector, type LeaderElector } from '../../src/controller-runtime/leader-election.ts';
import { createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { type ControlPlane, sharedControlPlane } from '../harness/control-plane/index.ts';
import { waitUntil } from '../harness/support/eventually.ts';

let cp: ControlPlane;
let client: KubeClient;
const namespace = `leader-${Date.now().toString(36)}`;
const electors: LeaderElector[] = [];
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  cp = await sharedControlPlane();
  client = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  await client.core.createNamespace({ body: { metadata: { name: namespace } } });
}, 60_000);

afterEach(async () => {
  await Promise.all(electors.splice(0).map((elector) => elector.stop()));
}, 30_000);

/** Short durations so takeovers happen within a test; the ratios match the defaults' spirit. */
function candidate(lease: string, identity: string, registry = new Registry()) {
  const state = {
    leading: false,
    started: 0,
    stopped: 0,
    leaders: [] as string[],
    signal: undefined as AbortSignal | undefined,
  };
  const elector = createLeaderElector({
    client,
    namespace,
    name: lease,
    identity,
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_500,
    retryPeriodMs: 300,
    log,
    registry,
    onStartedLeading: (signal) => {
      state.leading = true;
      state.started++;
      state.signal = signal;
    },
    onStoppedLeading: () => {
      state.leading = false;
      state.stopped++;
    },
    onNewLeader: (id) => state.leaders.push(id),
  });
  electors.push(elector);
  void elector.run();
  return { elector, state, registry };
}

/** The Lease as stored, with its time fields as raw wire strings. */
async function readLeaseRaw(lease: string): Promise<{ spec: Record<string, unknown>; raw: string }> {
  const response = await cp.request(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${lease}`);
  const raw = await response.text();
  return { spec: (JSON.parse(raw) as { spec: Record<string, unknown> }).spec, raw };
}

describe('leader election against a real apiserver', () => {
  test('exactly one of two candidates leads; the lease is created with MicroTime fields', async () => {
    const a = candidate('one-leader', 'a');
    const b = candidate('one-leader', 'b');
    await waitUntil(() => a.state.leading || b.state.leading, 'a leader');
    // Give the follower several retry periods to (wrongly) grab it too.
    for (let i = 0; i < 10; i++) {
      await Bun.sleep(100);
      expect(a.state.leading && b.state.leading).toBe(false);
    }
    const leader = a.state.leading ? a : b;
    const follower = leader === a ? b : a;
    expect(leader.elector.isLeader()).toBe(true);
    expect(follower.elector.isLeader()).toBe(false);
    await waitUntil(
      () => follower.elector.leader() === leader.elector.identity,
      'the follower sees the leader',
    );
    expect(follower.state.leaders).toContain(leader.elector.identity);
    const { spec } = await readLeaseRaw('one-leader');
    expect(spec.holderIdentity).toBe(leader.elector.identity);
    expect(spec.leaseDurationSeconds).toBe(2);
    // Six fractional digits on the wire, as the API server requires for MicroTime.
    expect(String(spec.acquireTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(String(spec.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(await leader.registry.metrics()).toContain('leader_election_master_status{name="one-leader"} 1');
    expect(await follower.registry.metrics()).toContain('leader_election_master_status{name="one-leader"} 0');
  }, 30_000);

  test('renewals move renewTime but keep acquireTime and the transition count', async () => {
    const a = candidate('renewals', 'a');
    await waitUntil(() => a.state.leading, 'leading');
    const first = (await readLeaseRaw('renewals')).spec;
    let later = first;
    const deadline = performance.now() + 10_000;
    while (later.renewTime === first.renewTime && performance.now() < deadline) {
      await Bun.sleep(100);
      later = (await readLeaseRaw('renewals')).spec;
    }
    expect(later.renewTime).not.toBe(first.renewTime);
    expect(later.acquireTime).toBe(first.acquireTime);
    expect(later.leaseTransitions).toBe(first.leaseTransitions);
  }, 30_000);

  test('when the leader dies without releasing, the follower takes over after the lease expires', async () => {
    const a = candidate('crash', 'a');
    await waitUntil(() => a.state.leading, 'a leading');
    const b = candidate('crash', 'b');
    await waitUntil(() => b.elector.leader() === 'a', 'b observing a');
    const before = (await readLeaseRaw('crash')).spec;
    await a.elector.stop({ release: false });
    expect(a.state.stopped).toBe(1);
    expect(a.state.signal?.aborted).toBe(true);
    // Still held by a until b has seen no change for the lease duration.
    expect((await readLeaseRaw('crash')).spec.holderIdentity).toBe('a');
    await waitUntil(() => b.state.leading, 'b taking over', 10_000);
    const after = (await readLeaseRaw('crash')).spec;
    expect(after.holderIdentity).toBe('b');
    expect(after.leaseTransitions).toBe((before.leaseTransitions as number) + 1);
    expect(after.acquireTime).not.toBe(before.acquireTime);
  }, 30_000);

  test('a graceful stop releases the lease, and the follower takes over without waiting it out', async () => {
    const a = candidate('release', 'a');
    await waitUntil(() => a.state.leading, 'a leading');
    const b = candidate('release', 'b');
    await waitUntil(() => b.elector.leader() === 'a', 'b observing a');
    await a.elector.stop();
    const released = (await readLeaseRaw('release')).spec;
    // Either still the released record, or b was already quicker.
    expect(['', 'b', undefined]).toContain(released.holderIdentity as string | undefined);
    await waitUntil(() => b.state.leading, 'b taking over');
    expect(a.state.stopped).toBe(1);
  }, 30_000);

  test('a leader that cannot reach the apiserver stops leading within the renew deadline', async () => {
    let partitioned = false;
    const flaky: Pick<KubeClient, 'request'> = {
      request: ((path: string, init?: Parameters<KubeClient['request']>[1]) =>
        partitioned
          ? Promise.reject(Object.assign(new Error('network unreachable'), { status: 503 }))
          : client.request(path, init)) as KubeClient['request'],
    };
    const state = { leading: false, stopped: 0 };
    const elector = createLeaderElector({
      client: flaky,
      namespace,
      name: 'partition',
      identity: 'partitioned',
      leaseDurationMs: 2_000,
      renewDeadlineMs: 1_500,
      retryPeriodMs: 300,
      log,
      onStartedLeading: () => {
        state.leading = true;
      },
      onStoppedLeading: () => {
        state.leading = false;
        state.stopped++;
      },
    });
    electors.push(elector);
    void elector.run();
    await waitUntil(() => state.leading, 'leading');
    partitioned = true;
    await waitUntil(() => !state.leading, 'demotion after the renew deadline', 10_000);
    expect(state.stopped).toBe(1);
    expect(elector.isLeader()).toBe(false);
    // It campaigns again once the network is back, and wins (nobody else wants the lease).
    partitioned = false;
    await waitUntil(() => state.leading, 're-acquiring', 10_000);
  }, 30_000);

  test('the typed client reads the lease back with the MicroTime fields intact', async () => {
    const a = candidate('typed', 'a');
    await waitUntil(() => a.state.leading, 'leading');
    const lease: V1Lease = await client.coordination.readNamespacedLease({ namespace, name: 'typed' });
    expect(lease.spec?.holderIdentity).toBe('a');
    expect(Number.isNaN(new Date(lease.spec?.renewTime as unknown as string).getTime())).toBe(false);
  });
});
