/**
 * `tailscale-gateway run` against a real kube-apiserver: the compiled binary connects with a
 * client-certificate kubeconfig (the path client-node alone cannot take under Bun), stays unready while
 * our CRDs are missing, and becomes ready by itself once they are installed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { renderCrds } from '../../src/api/index.ts';
import { installCrds, type StartedControlPlane, startControlPlane } from '../harness/control-plane/index.ts';
import { compiledBinary, REPO_ROOT, type RunningBinary, startBinary } from '../harness/support/binary.ts';
import { eventually } from '../harness/support/eventually.ts';

interface Readyz {
  status: string;
  components: { name: string; ready: boolean; message?: string }[];
}

async function readyz(url: string): Promise<{ status: number; body: Readyz }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Readyz };
}

describe('run against a real API server', () => {
  let cp: StartedControlPlane;
  let running: RunningBinary;

  beforeAll(async () => {
    // A control plane of its own: this test needs one where the CRDs are not installed yet.
    cp = await startControlPlane();
    running = await startBinary(['run', '--http-addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'], {
      KUBECONFIG: cp.kubeconfigPath,
    });
  });

  afterAll(async () => {
    running?.process.kill('SIGKILL');
    await cp?.stop();
  });

  test('is live but not ready while the CRDs are missing, naming them', async () => {
    expect((await fetch(`${running.httpUrl}/healthz`)).status).toBe(200);
    const { status, body } = await eventually(
      () => readyz(running.httpUrl),
      (r) => r.body.components.some((c) => c.name === 'kubernetes' && (c.message ?? '').includes('CRDs')),
    );
    expect(status).toBe(503);
    const kubernetes = body.components.find((c) => c.name === 'kubernetes')!;
    expect(kubernetes.ready).toBe(false);
    expect(kubernetes.message).toContain('tailscaleendpoints.gateway.tailscale.com');
  });

  test('becomes ready once the CRDs are installed, without a restart', async () => {
    await installCrds(cp, renderCrds());
    const { status, body } = await eventually(
      () => readyz(running.httpUrl),
      (r) => r.status === 200,
    );
    expect(status).toBe(200);
    expect(body.components.find((c) => c.name === 'kubernetes')?.message).toContain('CRDs established');
    await running.waitForLog('connected to the API server; CRDs established');
  });

  test('shuts down cleanly on SIGTERM', async () => {
    running.process.kill('SIGTERM');
    expect(await running.process.exited).toBe(0);
  });
});

test('run with an unreadable kubeconfig exits 2 naming it', async () => {
  const child = Bun.spawn([await compiledBinary(), 'run', '--kubeconfig', '/nonexistent/kubeconfig'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '' },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  expect(await child.exited).toBe(2);
  expect(await new Response(child.stderr).text()).toContain('/nonexistent/kubeconfig');
});
