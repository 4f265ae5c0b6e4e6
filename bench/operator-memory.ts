/**
 * `bun bench/operator-memory.ts [-- --count 1000 --settle 60 --env K=V …]`: the compiled binary's `run`
 * as a child process against the test kube-apiserver and the fake Tailscale API, N egress
 * TailscaleEndpoints in one TailscaleProxyGroup (bench:node's load, without the node: no kubelet, so no
 * proxy Pod runs, but the operator's caches and writes are the same). Prints the operator's RSS split
 * into anonymous and file-backed pages, and its JS heap, idle, at the peak and settled. A quicker loop
 * than `npm run bench:node` for trying runtime settings (`--env`) one at a time; bench:node is where the
 * figures come from.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { API_VERSION, renderCrds } from '../src/api/index.ts';
import { installCrds, startControlPlane } from '../test/harness/control-plane/index.ts';
import { startFakeTailscale } from '../test/harness/fake-tailscale/index.ts';
import { startBinary } from '../test/harness/support/binary.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    settle: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '16' },
    // An environment variable of the operator (repeatable), e.g. --env BUN_JSC_forceRAMSize=134217728.
    env: { type: 'string', multiple: true, default: [] },
    // Another build of the binary to run (default: dist/tailscale-gateway, rebuilt when stale).
    binary: { type: 'string' },
  },
});
const COUNT = Number(values.count);
const SETTLE_S = Number(values.settle);
const CONCURRENCY = Number(values.concurrency);
const NS = 'default';
const mib = (kib: number) => (kib / 1024).toFixed(0);

function memoryOf(pid: number): { rss: number; anon: number; file: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile'), hwm: field('VmHWM') };
}

const env: Record<string, string> = {};
for (const pair of values.env) {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new Error(`--env ${pair}: expected KEY=VALUE`);
  env[pair.slice(0, eq)] = pair.slice(eq + 1);
}

const cp = await startControlPlane({ serviceCidr: '10.0.0.0/20' });
const fake = startFakeTailscale();
try {
  await installCrds(cp, renderCrds());
  const post = async (path: string, body: object) => {
    const r = await cp.request(path, { method: 'POST', body });
    if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
  };
  await post(`/api/v1/namespaces/${NS}/secrets`, {
    metadata: { name: 'oauth' },
    stringData: { client_id: fake.clientId, client_secret: fake.clientSecret },
  });
  const args = [
    'run',
    '--http-addr',
    '127.0.0.1:0',
    '--grpc-addr',
    '127.0.0.1:0',
    '--namespace',
    NS,
    '--tailscale-api-url',
    fake.url,
  ];
  const operator = await startBinary(
    args,
    { KUBECONFIG: cp.kubeconfigPath, ...env },
    values.binary ? { command: [values.binary, ...args], cwd: process.cwd() } : undefined,
  );
  const pid = operator.process.pid;
  const heap = async () => {
    const text = await (await fetch(`${operator.httpUrl}/metrics`)).text();
    const metric = (name: string) =>
      Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'))?.[1] ?? Number.NaN) / 1048576;
    return `heap used ${metric('nodejs_heap_size_used_bytes').toFixed(0)} of ${metric('nodejs_heap_size_total_bytes').toFixed(0)} MiB`;
  };
  const show = async (label: string) => {
    const m = memoryOf(pid);
    console.log(
      `${label}: RSS ${mib(m.rss)} MiB (anon ${mib(m.anon)} + file ${mib(m.file)}; ${await heap()}; VmHWM ${mib(m.hwm)})`,
    );
  };
  await post(`/apis/${API_VERSION}/tailscaletailnets`, {
    apiVersion: API_VERSION,
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp' },
    spec: { tailnet: '-', oauthSecretRef: { name: 'oauth', namespace: NS }, tags: ['tag:k8s'] },
  });
  for (let i = 0; ; i++) {
    const tn = (await (await cp.request(`/apis/${API_VERSION}/tailscaletailnets/corp`)).json()) as {
      status?: { conditions?: { type: string; status: string }[] };
    };
    if (tn.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) break;
    if (i > 600) throw new Error('TailscaleTailnet not Ready');
    await Bun.sleep(100);
  }
  await Bun.sleep(5000);
  await show(`idle, env ${values.env.join(' ') || '(none)'}`);

  await post(`/apis/${API_VERSION}/namespaces/${NS}/tailscaleproxygroups`, {
    apiVersion: API_VERSION,
    kind: 'TailscaleProxyGroup',
    metadata: { name: 'egress-pool', namespace: NS },
    spec: { type: 'egress', tailnet: 'corp', replicas: 1, tags: ['tag:k8s'] },
  });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, memoryOf(pid).rss);
  }, 500);
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < COUNT; i = next++) {
        const name = `bench-${String(i).padStart(4, '0')}`;
        await post(`/apis/${API_VERSION}/namespaces/${NS}/tailscaleendpoints`, {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name, namespace: NS },
          spec: {
            tailnet: 'corp',
            endpoints: [
              { name: 'svc', tailscaleFQDN: `svc-${i}.tail1234.ts.net`, port: 8080, protocol: 'HTTP' },
            ],
            proxy: { connectionType: 'egress', proxyGroup: 'egress-pool' },
          },
        });
      }
    }),
  );
  for (;;) {
    type Tse = {
      metadata: { generation?: number };
      status?: { conditions?: { type: string; observedGeneration?: number }[] };
    };
    const list = (await (
      await cp.request(`/apis/${API_VERSION}/namespaces/${NS}/tailscaleendpoints`)
    ).json()) as {
      items: Tse[];
    };
    const reconciled = list.items.filter((e) =>
      e.status?.conditions?.some((c) => c.type === 'Ready' && c.observedGeneration === e.metadata.generation),
    ).length;
    const services = (await (
      await cp.request(`/api/v1/namespaces/${NS}/services?labelSelector=tailscale.com/managed%3Dtrue`)
    ).json()) as { items: unknown[] };
    if (reconciled >= COUNT && services.items.length >= COUNT) break;
    if (performance.now() - t > 900_000) throw new Error(`reconciled ${reconciled}/${COUNT} after 900 s`);
    await Bun.sleep(1000);
  }
  console.log(
    `${COUNT} reconciled in ${((performance.now() - t) / 1000).toFixed(0)} s; peak RSS ${mib(peak)} MiB`,
  );
  await show('reconciled');
  for (let s = 0; s < SETTLE_S; s += 20) {
    await Bun.sleep(20_000);
    await show(`settled ${s + 20} s`);
  }
  clearInterval(sampler);
  operator.kill('SIGTERM');
  await operator.process.exited;
} finally {
  await fake.stop();
  await cp.stop();
}
process.exit(0);
