/**
 * The one-node cluster: a Node goes Ready, Pods run from an image imported without a registry, a
 * ClusterIP Service routes, the cluster DNS answers, and teardown leaves nothing behind.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultProxyImage } from '../../src/proxy/objects.ts';
import { buildImage, operatorImage, proxyImage, toolsImage } from '../harness/node/images.ts';
import {
  BRIDGE,
  KUBERNETES_SERVICE_IP,
  NODE_NAME,
  type NodeCluster,
  nodeBinaries,
  nodeClusterUnavailable,
  startNodeCluster,
  TOOLS_IMAGE,
} from '../harness/node/index.ts';
import { runPod } from '../harness/node/run-pod.ts';
import { compiledBinary } from '../harness/support/binary.ts';

const OPERATOR_IMAGE = 'tsgw.local/tailscale-gateway:test';
/** The name the operator gives proxies by default, so proxy Pods find the locally built image. */
const PROXY_IMAGE = defaultProxyImage();

function tailscaleBinaries(): string {
  const r = Bun.spawnSync(
    ['bash', join(import.meta.dir, '..', 'harness', 'tailscale', 'build-tailscale.sh'), '--cached-only'],
    {
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  if (r.exitCode !== 0) throw new Error(r.stderr.toString().trim());
  return r.stdout.toString().trim().split('\n').at(-1) ?? '';
}
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping node cluster tests: ${unavailable}`);

/** Whether `pid` is a live process (a zombie waiting for init to reap it is dead). */
function running(pid: string): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

type Pod = { status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] } };

describe.skipIf(unavailable !== undefined)('one-node cluster', () => {
  let cluster: NodeCluster;
  const archive = join(tmpdir(), `tsgw-node-tools-${process.pid}.tar`);
  const operatorArchive = join(tmpdir(), `tsgw-node-operator-${process.pid}.tar`);
  const proxyArchive = join(tmpdir(), `tsgw-node-proxy-${process.pid}.tar`);
  const sysctlsBefore = new Map<string, string>();

  beforeAll(async () => {
    for (const s of ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops']) {
      sysctlsBefore.set(s, readFileSync(`/proc/sys/${s}`, 'utf8'));
    }
    buildImage(toolsImage(nodeBinaries(), TOOLS_IMAGE), archive);
    buildImage(operatorImage(await compiledBinary(), OPERATOR_IMAGE), operatorArchive);
    buildImage(proxyImage(tailscaleBinaries(), PROXY_IMAGE), proxyArchive);
    cluster = await startNodeCluster({ images: [archive, operatorArchive, proxyArchive] });
    console.log(`node cluster up in ${cluster.startMs} ms`);
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    rmSync(archive, { force: true });
    rmSync(operatorArchive, { force: true });
    rmSync(proxyArchive, { force: true });
  }, 120_000);

  const create = async (path: string, body: object) => {
    const res = await cluster.request(path, { method: 'POST', body });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  };
  const pod = async (name: string): Promise<Pod> =>
    (await (await cluster.request(`/api/v1/namespaces/default/pods/${name}`)).json()) as Pod;
  const waitPod = async (name: string, done: (p: Pod) => boolean, timeoutMs = 40_000): Promise<Pod> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const p = await pod(name);
      if (done(p)) return p;
      if (performance.now() > deadline)
        throw new Error(`pod ${name} not there in time: ${JSON.stringify(p.status)}`);
      await Bun.sleep(200);
    }
  };
  /** Runs `/tools args…` in a Pod to completion and returns its log. */
  const runInPod = (name: string, args: string[]) =>
    runPod(cluster, { name, image: TOOLS_IMAGE, command: ['/tools', ...args] });

  test('the Node registers and goes Ready', async () => {
    const node = (await (await cluster.request(`/api/v1/nodes/${NODE_NAME}`)).json()) as {
      status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string } };
    };
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status.nodeInfo.kubeletVersion).toBe('v1.37.2');
  });

  test('a Pod from the imported image runs, is Ready and serves on its Pod IP', async () => {
    await create('/api/v1/namespaces/default/pods', {
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: {
        containers: [
          {
            name: 'web',
            image: TOOLS_IMAGE,
            imagePullPolicy: 'Never',
            command: ['/tools', 'serve', ':8080', 'hello from web'],
            ports: [{ containerPort: 8080 }],
            readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
          },
        ],
      },
    });
    const p = await waitPod(
      'web',
      (x) => x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    );
    expect(p.status?.podIP).toMatch(/^10\.244\.0\./);
    expect(await (await fetch(`http://${p.status?.podIP}:8080/`)).text()).toBe('hello from web');
  });

  test('a ClusterIP Service routes from the host and from a Pod by its DNS name', async () => {
    await create('/api/v1/namespaces/default/services', {
      metadata: { name: 'web' },
      spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    const svc = (await (await cluster.request('/api/v1/namespaces/default/services/web')).json()) as {
      spec: { clusterIP: string };
    };
    // kube-proxy writes its rules asynchronously after the EndpointSlice appears.
    let body = '';
    for (let i = 0; i < 100 && body !== 'hello from web'; i++) {
      body = await fetch(`http://${svc.spec.clusterIP}/`, { signal: AbortSignal.timeout(1000) })
        .then((r) => r.text())
        .catch(() => '');
      if (body !== 'hello from web') await Bun.sleep(200);
    }
    expect(body).toBe('hello from web');
    const fromPod = await runInPod('client', ['get', 'http://web.default.svc.cluster.local/']);
    expect(fromPod).toEqual({ phase: 'Succeeded', log: 'hello from web' });
  });

  test('the cluster DNS resolves kubernetes.default.svc.cluster.local in a Pod', async () => {
    const result = await runInPod('resolve', ['resolve', 'kubernetes.default.svc.cluster.local']);
    expect(result).toEqual({ phase: 'Succeeded', log: KUBERNETES_SERVICE_IP });
  });

  test('a name outside the cluster does not resolve (nothing is forwarded off the machine)', async () => {
    const result = await runInPod('resolve-outside', ['resolve', 'deb.debian.org']);
    expect(result.phase).toBe('Failed');
  });

  test('the operator image runs read-only as non-root 65532 and has no shell', async () => {
    const restricted = {
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    };
    const run = async (name: string, command?: string[]) => {
      await create('/api/v1/namespaces/default/pods', {
        metadata: { name },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'main',
              image: OPERATOR_IMAGE,
              imagePullPolicy: 'Never',
              ...(command ? { command } : { args: ['version'] }),
              securityContext: restricted,
            },
          ],
        },
      });
      return await waitPod(name, (x) => {
        const s = x.status as {
          phase?: string;
          containerStatuses?: { state?: { terminated?: unknown; waiting?: { reason?: string } } }[];
        };
        const state = s?.containerStatuses?.[0]?.state;
        return (
          s?.phase === 'Succeeded' || s?.phase === 'Failed' || state?.waiting?.reason === 'RunContainerError'
        );
      });
    };
    const version = await run('operator-version');
    expect(version.status?.phase).toBe('Succeeded');
    const log = await (await cluster.request('/api/v1/namespaces/default/pods/operator-version/log')).text();
    expect(log).toMatch(/tailscale-gateway/);
    // runAsNonRoot passes only because the image says 65532; the process sees that uid.
    const shell = await run('operator-shell', ['/bin/sh', '-c', 'true']);
    expect(shell.status?.phase).not.toBe('Succeeded');
  });

  test('the proxy image carries tailscale at the default tag and iptables for kernel mode', async () => {
    const run = (name: string, command: string[]) => runPod(cluster, { name, image: PROXY_IMAGE, command });
    const version = await run('proxy-version', ['/usr/local/bin/tailscale', 'version']);
    expect(version.phase).toBe('Succeeded');
    expect(version.log.split('\n')[0]).toBe(PROXY_IMAGE.split(':v')[1]);
    const iptables = await run('proxy-iptables', ['/usr/sbin/iptables', '--version']);
    expect(iptables).toMatchObject({ phase: 'Succeeded', log: expect.stringContaining('nf_tables') });
  });

  test('teardown leaves no process, cgroup, mount, bridge, iptables chain or sysctl change', async () => {
    const pids =
      readFileSync(join(cluster.stateDir, 'teardown.env'), 'utf8')
        .match(/^PIDS='(.*)'$/m)?.[1]
        ?.split(' ') ?? [];
    expect(pids.length).toBeGreaterThan(5);
    await cluster.stop();
    for (const pid of pids) expect(running(pid)).toBe(false);
    expect(existsSync(`/sys/class/net/${BRIDGE}`)).toBe(false);
    for (const c of ['cpu', 'memory', 'freezer', 'pids', 'unified']) {
      expect(existsSync(`/sys/fs/cgroup/${c}/${cluster.cgroup}`)).toBe(false);
    }
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(cluster.stateDir);
    expect(existsSync(cluster.stateDir)).toBe(false);
    // kube-proxy's chains and kubelet's own (KUBE-FIREWALL, KUBE-KUBELET-CANARY), in every table.
    for (const bin of ['iptables', 'ip6tables']) {
      for (const table of ['filter', 'nat', 'mangle']) {
        expect(Bun.spawnSync([bin, '-t', table, '-S']).stdout.toString()).not.toContain('KUBE-');
      }
    }
    expect(Bun.spawnSync(['iptables', '-S', 'FORWARD']).stdout.toString()).not.toContain('tsgw-node');
    for (const [s, v] of sysctlsBefore) expect(readFileSync(`/proc/sys/${s}`, 'utf8')).toBe(v);
  }, 60_000);
});

describe.skipIf(unavailable !== undefined)('one-node cluster whose test process is SIGKILLed', () => {
  test('the watchdog tears it down completely', async () => {
    const archive = join(tmpdir(), `tsgw-node-tools-held-${process.pid}.tar`);
    buildImage(toolsImage(nodeBinaries(), TOOLS_IMAGE), archive);
    const child = Bun.spawn(
      [process.execPath, join(import.meta.dir, '..', 'harness', 'node', 'start-held.ts'), archive],
      {
        stdout: 'pipe',
        stderr: 'pipe',
      },
    );
    try {
      const reader = child.stdout.getReader();
      let out = '';
      while (!out.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`start-held exited: ${await new Response(child.stderr).text()}`);
        out += new TextDecoder().decode(value);
      }
      const { stateDir, cgroup } = JSON.parse(out) as { stateDir: string; cgroup: string };
      expect(existsSync(`/sys/class/net/${BRIDGE}`)).toBe(true);
      const pids =
        readFileSync(join(stateDir, 'teardown.env'), 'utf8')
          .match(/^PIDS='(.*)'$/m)?.[1]
          ?.split(' ') ?? [];
      child.kill('SIGKILL');
      await child.exited;
      for (let i = 0; i < 150 && existsSync(stateDir); i++) await Bun.sleep(100);
      expect(existsSync(stateDir)).toBe(false);
      expect(existsSync(`/sys/class/net/${BRIDGE}`)).toBe(false);
      expect(existsSync(`/sys/fs/cgroup/memory/${cgroup}`)).toBe(false);
      for (const pid of pids) expect(running(pid)).toBe(false);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(stateDir);
    } finally {
      child.kill('SIGKILL');
      rmSync(archive, { force: true });
    }
  }, 90_000);
});
