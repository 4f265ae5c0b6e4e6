/**
 * The Helm chart on the one-node cluster with the operator image built from this checkout: the
 * operator Pods start non-root on a read-only root filesystem, pass their probes, elect one leader,
 * serve gRPC and /metrics through the chart's Services, and reconcile a TailscaleTailnet.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helmBinary } from '../helm/index.ts';
import { compiledBinary, REPO_ROOT } from '../support/binary.ts';
import { buildImage, operatorImage, toolsImage } from './images.ts';
import {
  NODE_IP,
  type NodeCluster,
  nodeBinaries,
  nodeClusterUnavailable,
  startNodeCluster,
  TOOLS_IMAGE,
} from './index.ts';

const NS = 'tailscale-gateway';
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping chart-on-node tests: ${unavailable}`);

type PodList = {
  items: {
    metadata: { name: string };
    spec: {
      containers: { securityContext?: Record<string, unknown> }[];
      securityContext?: Record<string, unknown>;
    };
    status: { phase?: string; containerStatuses?: { ready: boolean; restartCount: number }[] };
  }[];
};

describe.skipIf(unavailable !== undefined)('the chart on the one-node cluster', () => {
  let cluster: NodeCluster;
  const archives = [
    join(tmpdir(), `tsgw-chart-tools-${process.pid}.tar`),
    join(tmpdir(), `tsgw-chart-operator-${process.pid}.tar`),
  ];
  let installToReadyMs = 0;

  const get = async <T>(path: string): Promise<T> => (await (await cluster.request(path)).json()) as T;
  const until = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 50_000): Promise<T> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value !== undefined) return value;
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(250);
    }
  };

  beforeAll(async () => {
    buildImage(toolsImage(nodeBinaries(), TOOLS_IMAGE), archives[0]!);
    buildImage(operatorImage(await compiledBinary(), 'tsgw.local/tailscale-gateway:chart'), archives[1]!);
    cluster = await startNodeCluster({ images: archives });
    const helm = await helmBinary();
    const started = performance.now();
    const install = Bun.spawnSync(
      [
        helm,
        'install',
        'tsgw',
        join(REPO_ROOT, 'charts', 'tailscale-gateway'),
        `--kubeconfig=${cluster.kubeconfigPath}`,
        `--namespace=${NS}`,
        '--create-namespace',
        '--set=image.repository=tsgw.local/tailscale-gateway',
        '--set=image.tag=chart',
        '--set=image.pullPolicy=Never',
        // Nothing listens there: the Tailscale API is unreachable, and nothing leaves the machine.
        `--set=operator.tailscaleApiUrl=http://${NODE_IP}:9`,
      ],
      { stdout: 'pipe', stderr: 'pipe' },
    );
    if (install.exitCode !== 0) throw new Error(`helm install failed: ${install.stderr.toString()}`);
    await until('2/2 operator Pods Ready', async () => {
      const pods = await get<PodList>(`/api/v1/namespaces/${NS}/pods`);
      const ready = pods.items.filter((p) => p.status.containerStatuses?.every((c) => c.ready));
      return ready.length === 2 ? true : undefined;
    });
    installToReadyMs = Math.round(performance.now() - started);
    console.log(`helm install → 2/2 operator Pods Ready in ${installToReadyMs} ms`);
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    for (const a of archives) rmSync(a, { force: true });
  });

  test('the operator Pods run as uid 65532 on a read-only root filesystem and pass their probes', async () => {
    const pods = await get<PodList>(`/api/v1/namespaces/${NS}/pods`);
    expect(pods.items.length).toBe(2);
    for (const pod of pods.items) {
      expect(pod.status.phase).toBe('Running');
      expect(pod.status.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
      expect(pod.spec.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    }
    // What the kernel says, not what the spec asks: every operator process on the node runs as 65532.
    const procs = Bun.spawnSync(['pgrep', '-x', 'tailscale-gatew']).stdout.toString().trim().split('\n');
    expect(procs.length).toBe(2);
    for (const pid of procs) {
      expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
      const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/');
      expect(root?.split(' ')[5]).toMatch(/^ro\b/);
    }
  });

  test('one Pod holds the leader Lease', async () => {
    const lease = await until('the leader Lease', async () => {
      const l = await get<{ spec?: { holderIdentity?: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/tailscale-gateway`,
      );
      return l.spec?.holderIdentity ? l : undefined;
    });
    const pods = await get<PodList>(`/api/v1/namespaces/${NS}/pods`);
    const holders = pods.items.filter((p) => lease.spec?.holderIdentity?.startsWith(`${p.metadata.name}_`));
    expect(holders.length).toBe(1);
  });

  test('/metrics answers through the metrics Service', async () => {
    const svc = await get<{ spec: { clusterIP: string } }>(
      `/api/v1/namespaces/${NS}/services/tsgw-tailscale-gateway-metrics`,
    );
    const text = await until('metrics', async () => {
      const r = await fetch(`http://${svc.spec.clusterIP}:8080/metrics`, {
        signal: AbortSignal.timeout(2000),
      });
      return r.ok ? await r.text() : undefined;
    });
    expect(text).toContain('tsgw_build_info{');
  });

  test('the gRPC Service speaks HTTP/2: the server answers the client preface with SETTINGS', async () => {
    const svc = await get<{ spec: { clusterIP: string } }>(
      `/api/v1/namespaces/${NS}/services/tailscale-gateway`,
    );
    const frame = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(5005, svc.spec.clusterIP, () => {
        socket.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
        socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
      });
      socket.setTimeout(5000, () => reject(new Error('no answer from the gRPC Service')));
      socket.once('data', (data: Buffer) => {
        socket.destroy();
        resolve(data);
      });
      socket.once('error', reject);
    });
    expect(frame[3]).toBe(4); // frame type SETTINGS
  });

  test('the leader reconciles a TailscaleTailnet and reports the unreachable API in its conditions', async () => {
    const example = readFileSync(join(REPO_ROOT, 'examples', 'kubernetes', 'tailnet.yaml'), 'utf8');
    const { parseAllDocuments } = await import('yaml');
    for (const doc of parseAllDocuments(example).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    )) {
      const path =
        doc.kind === 'Secret'
          ? `/api/v1/namespaces/${NS}/secrets/${doc.metadata.name}`
          : `/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/${doc.metadata.name}`;
      const r = await cluster.request(`${path}?fieldManager=tsgw-test&force=true`, {
        method: 'PATCH',
        body: doc,
        contentType: 'application/apply-patch+yaml',
      });
      expect(r.status).toBeLessThan(300);
    }
    const conditions = await until('TailscaleTailnet conditions', async () => {
      const t = await get<{ status?: { conditions?: { type: string; status: string; reason: string }[] } }>(
        '/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/corp',
      );
      return t.status?.conditions?.length ? t.status.conditions : undefined;
    });
    expect(conditions.find((c) => c.type === 'Ready')?.status).toBe('False');
  });
});
