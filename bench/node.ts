/**
 * `npm run bench:node`: the operator as users run it, on the one-node cluster (kubelet, containerd,
 * kube-proxy, CoreDNS; test/harness/node/), with the chart and images built from this checkout and
 * the fake Tailscale API on the node IP. Prints figures, asserts nothing:
 *
 * - node up (first spawn → Node Ready and DNS answering) and down (teardown) times;
 * - idle memory of the node's processes (RSS per program, from /proc of every process in the run's
 *   cgroup tree);
 * - `helm install` → 2/2 operator Pods Ready;
 * - TailscaleEndpoints apply → its proxy Pod Running;
 * - N (default 1,000) egress TailscaleEndpoints sharing one TailscaleProxyGroup: time to create them,
 *   time until every one is reconciled (its `Ready` condition observed at its generation and its egress
 *   Service created), and the leader operator Pod's RSS meanwhile (peak, and settled after a quiet
 *   minute), with its JS heap from its own /metrics; and the other replica's RSS at the end.
 *
 * Needs root and the machine the node tests need; take the node lock like they do:
 *   flock /tmp/tsgw-node.lock npm run bench:node [-- --count 1000 --settle 60]
 *
 * @module
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/index.ts';
import { defaultProxyImage } from '../src/proxy/objects.ts';
import { type FakeTailscale, startFakeTailscale } from '../test/harness/fake-tailscale/index.ts';
import { CHART_NAMESPACE, installChart, until } from '../test/harness/node/chart.ts';
import { buildClusterImages } from '../test/harness/node/cluster-images.ts';
import {
  NODE_IP,
  type NodeCluster,
  nodeClusterUnavailable,
  startNodeCluster,
} from '../test/harness/node/index.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    settle: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '16' },
    // A chart value for this run (repeatable), e.g. --set operator.gcMemoryBytes=0.
    set: { type: 'string', multiple: true, default: [] },
  },
});
const COUNT = Number(values.count);
const SETTLE_S = Number(values.settle);
const CONCURRENCY = Number(values.concurrency);
const APP_NS = 'default';
const mib = (kib: number) => (kib / 1024).toFixed(0);

const unavailable = nodeClusterUnavailable();
if (unavailable) {
  console.error(`bench:node cannot run here: ${unavailable}`);
  process.exit(1);
}

/** Every pid in a cgroup v1 memory subtree. */
function pidsIn(dir: string): number[] {
  const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) pids.push(...pidsIn(join(dir, entry.name)));
  }
  return pids;
}

/** VmRSS and VmHWM (peak RSS) of a process in KiB; undefined once it is gone. */
function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * Where a process's memory is: resident anonymous (heap, allocator, JIT) and file-backed (the mapped
 * executable, shared by every process of the image) pages from /proc, and its container's working set
 * as kubelet, metrics-server and the OOM killer's accounting see it (cgroup v1 memory.usage_in_bytes
 * less total_inactive_file, cAdvisor's definition), which counts page cache charged to the container
 * and not the executable's pages another cgroup faulted in first.
 */
function breakdownOf(pid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes('memory'));
    const dir = `/sys/fs/cgroup/memory${line?.split(':')[2] ?? ''}`;
    const usage = Number(readFileSync(join(dir, 'memory.usage_in_bytes'), 'utf8')) / 1024;
    const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
    const inactiveFile = Number(stat.match(/^total_inactive_file (\d+)$/m)?.[1] ?? 0) / 1024;
    const statRss = Number(stat.match(/^total_rss (\d+)$/m)?.[1] ?? 0) / 1024;
    return `anon ${mib(field('RssAnon'))} + file ${mib(field('RssFile'))} MiB; container working set ${mib(usage - inactiveFile)} MiB (cgroup rss ${mib(statRss)})`;
  } catch (error) {
    return `breakdown unavailable: ${(error as Error).message}`;
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** RSS per program of every process in the run's cgroup tree; Pods' processes are summed apart. */
function nodeMemory(cluster: NodeCluster): { byProgram: Map<string, number>; pods: number; total: number } {
  const root = `/sys/fs/cgroup/memory/${cluster.cgroup}`;
  const podPids = new Set(pidsIn(join(root, 'kubepods')));
  const byProgram = new Map<string, number>();
  let pods = 0;
  let total = 0;
  for (const pid of pidsIn(root)) {
    const rss = memoryOf(pid)?.rss ?? 0;
    total += rss;
    if (podPids.has(pid)) {
      pods += rss;
      continue;
    }
    const name = commOf(pid).startsWith('containerd-shim') ? 'containerd-shim (all)' : commOf(pid);
    byProgram.set(name, (byProgram.get(name) ?? 0) + rss);
  }
  return { byProgram, pods, total };
}

function printMemory(label: string, m: ReturnType<typeof nodeMemory>): void {
  const parts = [...m.byProgram.entries()].sort((a, b) => b[1] - a[1]).map(([n, kib]) => `${n} ${mib(kib)}`);
  console.log(
    `${label}: ${mib(m.total)} MiB RSS in the run's cgroups — ${parts.join(', ')}; Pods' processes ${mib(m.pods)}`,
  );
}

const images = mkdtempSync(join(tmpdir(), 'tsgw-bench-node-'));
let cluster: NodeCluster | undefined;
let fake: FakeTailscale | undefined;
try {
  let t = performance.now();
  const built = await buildClusterImages(images, 'tsgw.local/tailscale-gateway:bench');
  console.log(`images built (warm caches): ${Math.round(performance.now() - t)} ms`);

  t = performance.now();
  cluster = await startNodeCluster({ images: built.map((i) => i.path) });
  const node = cluster;
  // The fake Tailscale API on the node IP (which exists once the bridge does): nothing leaves the machine.
  fake = startFakeTailscale({ hostname: NODE_IP });
  const api = fake;
  console.log(
    `node up: ${Math.round(performance.now() - t)} ms wall (${node.startMs} ms from first spawn to Node Ready + DNS; 3 images imported)`,
  );
  const get = async <T>(path: string): Promise<T> => (await (await node.request(path)).json()) as T;
  const apply = async (path: string, doc: object) => {
    const r = await node.request(`${path}?fieldManager=bench&force=true`, {
      method: 'PATCH',
      body: doc,
      contentType: 'application/apply-patch+yaml',
    });
    if (!r.ok) throw new Error(`apply ${path}: ${r.status} ${await r.text()}`);
  };

  await Bun.sleep(10_000);
  printMemory('idle node (10 s after up)', nodeMemory(node));

  const installMs = await installChart(node, {
    repository: 'tsgw.local/tailscale-gateway',
    tag: 'bench',
    tailscaleApiUrl: api.url,
    set: values.set,
  });
  if (values.set.length > 0) console.log(`chart values: ${values.set.join(' ')}`);
  console.log(`helm install → 2/2 operator Pods Ready: ${installMs} ms`);

  await apply(`/api/v1/namespaces/${CHART_NAMESPACE}/secrets/tailscale-oauth`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
    stringData: { client_id: api.clientId, client_secret: api.clientSecret },
  });
  await apply(`/apis/${API_VERSION}/tailscaletailnets/corp`, {
    apiVersion: API_VERSION,
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp' },
    spec: {
      tailnet: '-',
      oauthSecretRef: { name: 'tailscale-oauth', namespace: CHART_NAMESPACE },
      tags: ['tag:k8s'],
    },
  });
  await until('TailscaleTailnet Ready', async () => {
    const tn = await get<{ status?: { conditions?: { type: string; status: string }[] } }>(
      `/apis/${API_VERSION}/tailscaletailnets/corp`,
    );
    return tn.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
  });

  // The leader: the Lease holder's Pod, its process found by the Pod UID in its cgroup path.
  type Pod = { metadata: { name: string; uid: string }; status: { podIP?: string } };
  const lease = await get<{ spec?: { holderIdentity?: string } }>(
    `/apis/coordination.k8s.io/v1/namespaces/${CHART_NAMESPACE}/leases/tailscale-gateway`,
  );
  const pods = await get<{ items: Pod[] }>(`/api/v1/namespaces/${CHART_NAMESPACE}/pods`);
  const leader = pods.items.find((p) => lease.spec?.holderIdentity?.startsWith(`${p.metadata.name}_`));
  if (!leader) throw new Error(`no Pod holds the Lease (${lease.spec?.holderIdentity})`);
  const pidOf = (pod: Pod) =>
    Bun.spawnSync(['pgrep', '-x', 'tailscale-gatew'])
      .stdout.toString()
      .trim()
      .split('\n')
      .map(Number)
      .find((pid) => readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(pod.metadata.uid));
  const leaderPid = pidOf(leader);
  if (!leaderPid) throw new Error(`no process of leader Pod ${leader.metadata.name}`);
  // The other replica caches the same objects (it serves the hooks) but runs no controller.
  const follower = pods.items.find((p) => p !== leader);
  const followerPid = follower ? pidOf(follower) : undefined;
  const followerRss = () =>
    followerPid
      ? `; the other replica ${mib(memoryOf(followerPid)?.rss ?? 0)} MiB (peak ${mib(memoryOf(followerPid)?.hwm ?? 0)}; ${breakdownOf(followerPid)})`
      : '';
  const heap = async () => {
    const text = await (await fetch(`http://${leader.status.podIP}:8080/metrics`)).text();
    const metric = (name: string) =>
      Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'))?.[1] ?? Number.NaN) /
      1024 /
      1024;
    return `heap used ${metric('nodejs_heap_size_used_bytes').toFixed(0)} MiB of ${metric('nodejs_heap_size_total_bytes').toFixed(0)}, external ${metric('nodejs_external_memory_bytes').toFixed(0)}`;
  };
  console.log(
    `leader ${leader.metadata.name} (pid ${leaderPid}) with one Ready TailscaleTailnet: RSS ${mib(memoryOf(leaderPid)!.rss)} MiB (${breakdownOf(leaderPid)}; ${await heap()})`,
  );

  t = performance.now();
  await apply(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleendpoints/grafana`, {
    apiVersion: API_VERSION,
    kind: 'TailscaleEndpoints',
    metadata: { name: 'grafana', namespace: APP_NS },
    spec: {
      tailnet: 'corp',
      endpoints: [
        { name: 'grafana', tailscaleFQDN: 'grafana.tail1234.ts.net', port: 3000, protocol: 'HTTP' },
      ],
      proxy: { connectionType: 'egress', replicas: 1 },
    },
  });
  type Pods = { items: { spec: { containers: { image: string }[] }; status: { phase?: string } }[] };
  await until('a Running proxy Pod', async () => {
    const all = await get<Pods>(`/api/v1/namespaces/${CHART_NAMESPACE}/pods`);
    const p = all.items.find((x) => x.spec.containers.some((c) => c.image === defaultProxyImage()));
    return p?.status.phase === 'Running' ? true : undefined;
  });
  console.log(`TailscaleEndpoints apply → proxy Pod Running: ${Math.round(performance.now() - t)} ms`);

  // N egress TailscaleEndpoints sharing one group: one proxy Pod, N egress Services and EndpointSlices.
  await apply(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleproxygroups/egress-pool`, {
    apiVersion: API_VERSION,
    kind: 'TailscaleProxyGroup',
    metadata: { name: 'egress-pool', namespace: APP_NS },
    spec: { type: 'egress', tailnet: 'corp', replicas: 1, tags: ['tag:k8s'] },
  });
  const samples: number[] = [];
  const sampler = setInterval(() => {
    const m = memoryOf(leaderPid);
    if (m) samples.push(m.rss);
  }, 1000);
  t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < COUNT; i = next++) {
        const name = `bench-${String(i).padStart(4, '0')}`;
        await apply(`/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleendpoints/${name}`, {
          apiVersion: API_VERSION,
          kind: 'TailscaleEndpoints',
          metadata: { name, namespace: APP_NS },
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
  const createdMs = performance.now() - t;
  console.log(`${COUNT} TailscaleEndpoints (one shared egress group) created: ${Math.round(createdMs)} ms`);

  type Tse = {
    metadata: { name: string; generation?: number };
    status?: { conditions?: { type: string; observedGeneration?: number }[] };
  };
  let lastLog = performance.now();
  await until(
    `${COUNT} TailscaleEndpoints reconciled`,
    async () => {
      const list = await get<{ items: Tse[] }>(
        `/apis/${API_VERSION}/namespaces/${APP_NS}/tailscaleendpoints`,
      );
      const reconciled = list.items.filter(
        (e) =>
          e.metadata.name.startsWith('bench-') &&
          e.status?.conditions?.some(
            (c) => c.type === 'Ready' && c.observedGeneration === e.metadata.generation,
          ),
      ).length;
      const services = await get<{ items: { metadata: { name: string } }[] }>(
        `/api/v1/namespaces/${APP_NS}/services?labelSelector=tailscale.com/managed%3Dtrue`,
      );
      const egress = services.items.filter((s) => s.metadata.name.startsWith('bench-')).length;
      if (performance.now() - lastLog > 15_000) {
        lastLog = performance.now();
        console.log(
          `  … ${Math.round((lastLog - t) / 1000)} s: reconciled ${reconciled}/${COUNT}, egress Services ${egress}/${COUNT}, leader RSS ${mib(memoryOf(leaderPid)?.rss ?? 0)} MiB`,
        );
      }
      return reconciled === COUNT && egress === COUNT ? true : undefined;
    },
    900_000,
  );
  const reconciledMs = performance.now() - t;
  const peakWhile = Math.max(...samples);
  console.log(
    `${COUNT} TailscaleEndpoints reconciled ${Math.round(reconciledMs / 1000)} s after the first create (${(COUNT / (reconciledMs / 1000)).toFixed(1)}/s); leader RSS peak ${mib(peakWhile)} MiB (VmHWM ${mib(memoryOf(leaderPid)!.hwm)}), now ${mib(memoryOf(leaderPid)!.rss)} MiB (${await heap()})`,
  );
  await Bun.sleep(SETTLE_S * 1000);
  clearInterval(sampler);
  console.log(
    `leader RSS with ${COUNT} TailscaleEndpoints, settled ${SETTLE_S} s later: ${mib(memoryOf(leaderPid)!.rss)} MiB (${breakdownOf(leaderPid)}; ${await heap()}); peak over the run ${mib(Math.max(...samples))} MiB${followerRss()}`,
  );
  printMemory(`node with the chart and ${COUNT} TailscaleEndpoints`, nodeMemory(node));
} finally {
  await fake?.stop();
  if (cluster) {
    const t = performance.now();
    await cluster.stop();
    console.log(`node down: ${Math.round(performance.now() - t)} ms`);
  }
  rmSync(images, { recursive: true, force: true });
}
process.exit(0);
