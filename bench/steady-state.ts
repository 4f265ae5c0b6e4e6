/**
 * `bun bench/steady-state.ts [seconds]`: the operator at rest. A real kube-apiserver, the fake Tailscale
 * control plane, the compiled binary's `run`, and one Ready TailscaleTailnet; then, over the window
 * (default 60 s), how many reconciles, Tailscale API calls and writes the operator makes when nothing
 * changes. Target: no writes but the Lease renewals leader election needs.
 */
import { renderCrds } from '../src/api/index.ts';
import { installCrds, startControlPlane } from '../test/harness/control-plane/index.ts';
import { startFakeTailscale } from '../test/harness/fake-tailscale/index.ts';
import { startBinary } from '../test/harness/support/binary.ts';

const seconds = Number(process.argv[2] ?? 60);
const cp = await startControlPlane();
const fake = startFakeTailscale();
try {
  await installCrds(cp, renderCrds());
  await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: 'tailscale' } } });
  await cp.request('/api/v1/namespaces/tailscale/secrets', {
    method: 'POST',
    body: {
      metadata: { name: 'oauth' },
      stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
    },
  });
  const operator = await startBinary(
    [
      'run',
      '--http-addr',
      '127.0.0.1:0',
      '--grpc-addr',
      '127.0.0.1:0',
      '--namespace',
      'default',
      '--tailscale-api-url',
      fake.url,
    ],
    { KUBECONFIG: cp.kubeconfigPath },
  );
  await cp.request('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets', {
    method: 'POST',
    body: {
      apiVersion: 'gateway.tailscale.com/v1alpha1',
      kind: 'TailscaleTailnet',
      metadata: { name: 'corp' },
      spec: { oauthSecretRef: { name: 'oauth', namespace: 'tailscale' } },
    },
  });
  const tailnet = async () =>
    (await (await cp.request('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/corp')).json()) as {
      metadata: { resourceVersion: string };
      status?: { conditions?: { type: string; status: string }[] };
    };
  for (let i = 0; i < 300; i++) {
    if ((await tailnet()).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) break;
    await Bun.sleep(100);
  }
  const reconciles = async () => {
    const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
    return [...text.matchAll(/^controller_runtime_reconcile_total\{[^}]*\} (\d+)/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
  };
  const leaseVersion = async () =>
    (
      (await (
        await cp.request('/apis/coordination.k8s.io/v1/namespaces/default/leases/tailscale-gateway')
      ).json()) as {
        metadata: { resourceVersion: string };
      }
    ).metadata.resourceVersion;

  const start = {
    reconciles: await reconciles(),
    calls: fake.requests.all.length,
    tailnet: (await tailnet()).metadata.resourceVersion,
  };
  let leaseWrites = 0;
  let lastLease = await leaseVersion();
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    await Bun.sleep(500);
    const version = await leaseVersion();
    if (version !== lastLease) leaseWrites++;
    lastLease = version;
  }
  const end = {
    reconciles: await reconciles(),
    calls: fake.requests.all.length,
    tailnet: (await tailnet()).metadata.resourceVersion,
  };
  console.log(
    `steady state over ${seconds} s, one Ready TailscaleTailnet: ${end.reconciles - start.reconciles} reconciles, ` +
      `${end.calls - start.calls} Tailscale API calls, ${end.tailnet === start.tailnet ? 0 : 'some'} status writes, ` +
      `${leaseWrites} Lease renewals`,
  );
  operator.process.kill('SIGTERM');
  await operator.process.exited;
} finally {
  await fake.stop();
  await cp.stop();
}
