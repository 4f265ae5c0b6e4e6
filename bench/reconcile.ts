/**
 * Soak: N TailscaleEndpoints (default 500) created at once against a real kube-apiserver and the fake
 * Tailscale control plane, the proxy controllers in-process. Reports the time until every object has
 * its proxy objects and a status, the Tailscale and Kubernetes calls made, the operator's RSS, and
 * that a second pass over every object writes nothing.
 *
 *   bun run bench:reconcile [-- --count 500]
 */
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/index.ts';
import { startHarness } from '../test/harness/proxy-controllers.ts';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '500' } },
});
const count = Number(values.count);
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

const h = await startHarness('bench', {});
const rssBefore = process.memoryUsage().rss;
const path = `/apis/${API_VERSION}/namespaces/${h.appNamespace}/tailscaleendpoints`;
const started = performance.now();
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    for (let attempt = 0; ; attempt++) {
      const res = await h.cp.request(path, {
        method: 'POST',
        body: {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name: `soak-${i}` },
          spec: {
            tailnet: 'corp',
            endpoints: [
              { name: 'svc', tailscaleFQDN: `svc-${i}.tail1234.ts.net`, port: 443, protocol: 'HTTPS' },
            ],
            proxy: { connectionType: 'ingress', replicas: 1 },
          },
        },
      });
      if (res.ok || attempt > 5) {
        await res.body?.cancel();
        return;
      }
      await Bun.sleep(100);
    }
  }),
);
const created = performance.now();

let peakRss = process.memoryUsage().rss;
for (;;) {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const list = (await (await h.cp.request(path)).json()) as {
    items: { status?: { proxies?: unknown[] } }[];
  };
  const done = list.items.filter((e) => (e.status?.proxies?.length ?? 0) > 0).length;
  if (done === count) break;
  if (performance.now() - started > 600_000) throw new Error(`only ${done}/${count} converged in 10 min`);
  await Bun.sleep(250);
}
await h.settle();
const converged = performance.now();
const writes = h.writes.length;
const byVerb: Record<string, number> = {};
for (const w of h.writes) byVerb[w.verb] = (byVerb[w.verb] ?? 0) + 1;
const keys = h.fake.requests.count({ method: 'POST', endpoint: '/tailnet/{tailnet}/keys' });
const tailscaleCalls = h.fake.requests.all.length;

// Second pass: every object reconciled again must write nothing.
const secondStart = performance.now();
const syncsBefore = h.syncs.length;
for (let i = 0; i < count; i++) h.controllers.endpoints.enqueue(`${h.appNamespace}/soak-${i}`);
while (h.syncs.length - syncsBefore < count) await Bun.sleep(50);
await h.settle();
const secondWrites = h.writes.length - writes;
const secondMs = performance.now() - secondStart;
peakRss = Math.max(peakRss, process.memoryUsage().rss);

console.log(
  JSON.stringify(
    {
      objects: count,
      createMs: Math.round(created - started),
      convergeMs: Math.round(converged - started),
      kubeWrites: writes,
      kubeWritesByVerb: byVerb,
      tailscaleCalls,
      authKeysMinted: keys,
      secondPass: { reconciles: count, writes: secondWrites, ms: Math.round(secondMs) },
      rssMB: { before: mb(rssBefore), peak: mb(peakRss), heapUsed: mb(process.memoryUsage().heapUsed) },
      note: 'RSS is the whole bench process: operator controllers + informers + the fake control plane + this driver',
    },
    null,
    2,
  ),
);
await h.stop();
process.exit(0);
