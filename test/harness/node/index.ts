/**
 * A real one-node Kubernetes cluster for tests and the Docker-free dev loop: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubelet on Debian's containerd + runc, bridge CNI on a
 * bridge private to the machine, kube-proxy (iptables) and CoreDNS.
 *
 * Why a separate cluster from test/control-plane: a controller-manager finalizes namespaces and
 * garbage-collects orphans, which the shared control plane's tests assume never happens.
 *
 * The machine's quirks this works around are in /work/shared/reference/real-node.md (cgroup v1 hybrid,
 * no CAP_SYS_RESOURCE, kubelet's VM-wide sysctls, hard-coded host paths). Everything a run creates on
 * the host is recorded in `<state>/teardown.env` before it is created, so `teardown.sh` can undo it —
 * from {@link NodeCluster.stop}, or from a watchdog when the test process dies without running
 * anything.
 *
 * Network safety: Pods sit on {@link BRIDGE}, which has no uplink; Pods get no default route (only the
 * Service range through the host), the host forwards only packets that arrive on the bridge and an
 * iptables rule drops any of those headed anywhere but the bridge. `ip_forward` stays as it was.
 *
 * @module
 */

import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { controlPlaneBinaries } from '../control-plane/index.ts';
import { freePort } from '../support/processes.ts';
import { generateNodePki } from './pki.ts';

export const NODE_NAME = 'tsgw-node';
export const BRIDGE = 'tsgwnode0';
export const NODE_IP = '10.244.0.1';
export const POD_CIDR = '10.244.0.0/24';
/** 4,094 ClusterIPs: `npm run bench:node` runs 1,000 egress TailscaleEndpoints, one Service each. */
export const SERVICE_CIDR = '10.96.0.0/20';
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
export const DNS_SERVICE_IP = '10.96.0.10';
/** The image holding test/node/tools at `/tools`; also containerd's sandbox (pause) image. */
export const TOOLS_IMAGE = 'tsgw.local/node-tools:v1';
const APISERVER_PORT = 6443;

/** Sysctls kubelet or kube-proxy write VM-wide; restored at teardown. */
const SYSCTLS = [
  'vm/overcommit_memory',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/conf/all/route_localnet',
  'net/ipv4/ip_forward',
  'net/netfilter/nf_conntrack_max',
];
/** Host paths kubelet, containerd and CNI use whatever their configuration says. */
const HARD_CODED_PATHS = [
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/var/lib/cni',
  '/run/containerd',
  '/run/netns',
  '/usr/libexec/kubernetes',
];
const V1_CONTROLLERS = [
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'blkio',
  'pids',
  'systemd',
];

const here = import.meta.dir;

export interface NodeCluster {
  server: string;
  kubeconfigPath: string;
  stateDir: string;
  binDir: string;
  /** Raw request as cluster-admin; object bodies are JSON-encoded. */
  request(path: string, init?: { method?: string; body?: unknown; contentType?: string }): Promise<Response>;
  /** Runs a command on the host with this cluster's kubeconfig and binaries at hand (crictl, ctr). */
  ctr(...args: string[]): { exitCode: number; stdout: string; stderr: string };
  /** Milliseconds from the first spawn until the Node was Ready and CoreDNS answered. */
  startMs: number;
  /** The cgroup (relative to each hierarchy) every process of this run lives in. */
  cgroup: string;
  stop(): Promise<void>;
}

/** Why this machine cannot run the node cluster, or undefined when it can. */
export function nodeClusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the node cluster needs root (network, mounts, cgroups)';
  if (process.platform !== 'linux') return 'the node cluster needs Linux';
  for (const c of ['cpu', 'memory', 'freezer', 'pids']) {
    if (!existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`)) {
      return `no cgroup v1 ${c} hierarchy at /sys/fs/cgroup/${c} (this harness drives cgroup v1/hybrid machines)`;
    }
  }
  for (const bin of ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'iptables', 'ip']) {
    if (Bun.which(bin) === null)
      return `${bin} is not installed (apt-get install containerd runc iptables iproute2)`;
  }
  if (!existsSync('/usr/lib/cni/bridge'))
    return 'no CNI plugins at /usr/lib/cni (apt-get install containernetworking-plugins)';
  return undefined;
}

/** Directory with the node binaries; throws a hint when they are not built (never builds in a test). */
export function nodeBinaries(): string {
  const result = Bun.spawnSync(['bash', join(here, 'build-node.sh'), '--cached-only'], {
    stdout: 'pipe',
    stderr: 'pipe',
  });
  if (result.exitCode !== 0) throw new Error(result.stderr.toString().trim());
  return result.stdout.toString().trim().split('\n').at(-1) ?? '';
}

function sh(cmd: string[], allowFail = false): string {
  const result = Bun.spawnSync(cmd, { stdout: 'pipe', stderr: 'pipe' });
  if (result.exitCode !== 0 && !allowFail) {
    throw new Error(`${cmd.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.toString().trim()}`);
  }
  return result.stdout.toString();
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function kubeconfig(server: string, ca: string, cert: string, key: string): string {
  const b64 = (path: string) => Buffer.from(readFileSync(path)).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(ca)}
users:
- name: user
  user:
    client-certificate-data: ${b64(cert)}
    client-key-data: ${b64(key)}
contexts:
- name: node
  context: {cluster: node, user: user}
current-context: node
`;
}

export interface StartNodeOptions {
  /** Keep state here and leave processes running past this process (`cluster:up`). */
  stateDir?: string;
  detached?: boolean;
  /** OCI archives (from test/harness/node/images.ts) to import into containerd before the node registers. */
  images?: string[];
  readyTimeoutMs?: number;
}

/** Starts the one-node cluster. Throws (after tearing down what it started) when a part fails. */
export async function startNodeCluster(options: StartNodeOptions = {}): Promise<NodeCluster> {
  const unavailable = nodeClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  if (existsSync(`/sys/class/net/${BRIDGE}`)) {
    throw new Error(
      `bridge ${BRIDGE} exists: another node cluster runs on this machine (or one leaked; bash test/harness/node/teardown.sh <its state dir>, or ip link del ${BRIDGE})`,
    );
  }
  const started = performance.now();
  const binDir = nodeBinaries();
  const cpDir = await controlPlaneBinaries();
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'tsgw-node-'));
  mkdirSync(stateDir, { recursive: true });
  const id = stateDir
    .split('/')
    .at(-1)!
    .replace(/[^a-zA-Z0-9_-]/g, '');
  const cgroup = `tsgw-node-${id}`;

  // Record everything teardown must undo before creating any of it.
  const sysctls = SYSCTLS.filter((s) => existsSync(`/proc/sys/${s}`)).map(
    (s) => `${s}=${readFileSync(`/proc/sys/${s}`, 'utf8').trim()}`,
  );
  const created = HARD_CODED_PATHS.filter((p) => !existsSync(p));
  const netnsBefore = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  const envLines = [
    `CGROUP='${cgroup}'`,
    `BRIDGE='${BRIDGE}'`,
    `SERVICE_CIDR='${SERVICE_CIDR}'`,
    `KUBE_PROXY='${join(binDir, 'kube-proxy')}'`,
    `SYSCTLS='${sysctls.join(' ')}'`,
    `CREATED_PATHS='${created.join(' ')}'`,
    `NETNS_BEFORE='${netnsBefore.join(' ')}'`,
  ];
  writeFileSync(join(stateDir, 'teardown.env'), `${envLines.join('\n')}\n`);
  const procs: Subprocess[] = [];
  const recordPids = () => {
    writeFileSync(
      join(stateDir, 'teardown.env'),
      `${envLines.join('\n')}\nPIDS='${procs.map((p) => p.pid).join(' ')}'\n`,
    );
  };
  let watchdog: Subprocess | undefined;
  if (!options.detached) {
    // bun test runs no exit handlers and a SIGKILLed test runs nothing: a detached shell polls for
    // this process and runs the teardown once it is gone.
    watchdog = Bun.spawn(
      [
        'sh',
        '-c',
        'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec bash "$2" "$3"',
        'tsgw-node-watchdog',
        String(process.pid),
        join(here, 'teardown.sh'),
        stateDir,
      ],
      { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', detached: true },
    );
    watchdog.unref();
  }
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      watchdog?.kill('SIGKILL');
      const proc = Bun.spawn(['bash', join(here, 'teardown.sh'), stateDir], {
        stdout: 'inherit',
        stderr: 'inherit',
      });
      await proc.exited;
    })();
    return stopped;
  };

  try {
    // cgroups: one tree per run in every v1 hierarchy (and the unified one); daemons in <tree>/host,
    // Pods under <tree>/kubepods through kubelet's cgroupRoot.
    for (const c of [...V1_CONTROLLERS, 'unified']) {
      const base = `/sys/fs/cgroup/${c}`;
      if (!existsSync(base)) continue;
      for (const dir of [`${base}/${cgroup}`, `${base}/${cgroup}/host`]) {
        mkdirSync(dir, { recursive: true });
        if (c === 'cpuset') {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            writeFileSync(`${dir}/${f}`, readFileSync(`${base}/${f}`, 'utf8'));
          }
        }
      }
    }
    const procsFiles = [...V1_CONTROLLERS, 'unified']
      .map((c) => `/sys/fs/cgroup/${c}/${cgroup}/host/cgroup.procs`)
      .filter((f) => existsSync(f));

    // Network: the private bridge holds the node IP; Services route on it, nothing leaves it.
    sh(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
    sh(['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', BRIDGE]);
    sh(['ip', 'link', 'set', BRIDGE, 'up']);
    sh(['ip', 'route', 'add', SERVICE_CIDR, 'dev', BRIDGE]);
    sh([
      'iptables',
      '-I',
      'FORWARD',
      '-i',
      BRIDGE,
      '!',
      '-o',
      BRIDGE,
      '-m',
      'comment',
      '--comment',
      'tsgw-node',
      '-j',
      'DROP',
    ]);
    // Pod → ClusterIP → Pod is routed by the host after kube-proxy's DNAT: forwarding only for packets
    // that arrive on the bridge (the rule above keeps them on it), ip_forward untouched.
    writeFileSync(`/proc/sys/net/ipv4/conf/${BRIDGE}/forwarding`, '1');

    const pkiDir = join(stateDir, 'pki');
    mkdirSync(pkiDir);
    const pki = generateNodePki(pkiDir, NODE_NAME, NODE_IP, KUBERNETES_SERVICE_IP);
    const server = `https://${NODE_IP}:${APISERVER_PORT}`;
    const adminKubeconfig = join(stateDir, 'kubeconfig');
    writeFileSync(adminKubeconfig, kubeconfig(server, pki.caCert, pki.adminCert, pki.adminKey), {
      mode: 0o600,
    });
    const kubeletKubeconfig = join(stateDir, 'kubelet.kubeconfig');
    writeFileSync(kubeletKubeconfig, kubeconfig(server, pki.caCert, pki.kubeletCert, pki.kubeletKey), {
      mode: 0o600,
    });

    const logDir = process.env.TSGW_NODE_LOGS ?? join(stateDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const spawn = (name: string, cmd: string[]): { proc: Subprocess; log: string } => {
      const log = join(logDir, `${name}.log`);
      const fd = openSync(log, 'w');
      try {
        // Join the run's cgroup before exec, so the process and everything it forks is in the tree.
        const proc = Bun.spawn(
          ['sh', '-c', 'for f in $CGROUP_PROCS; do echo $$ > "$f"; done; exec "$@"', name, ...cmd],
          {
            stdin: 'ignore',
            stdout: fd,
            stderr: fd,
            detached: options.detached === true,
            env: { ...process.env, CGROUP_PROCS: procsFiles.join(' ') },
          },
        );
        if (options.detached) proc.unref();
        procs.push(proc);
        recordPids();
        return { proc, log };
      } finally {
        closeSync(fd);
      }
    };
    const failIfExited = (parts: { name: string; proc: Subprocess; log: string }[]) => {
      for (const part of parts) {
        if (part.proc.exitCode !== null) {
          throw new Error(`${part.name} exited with ${part.proc.exitCode}:\n${tail(part.log)}`);
        }
      }
    };
    const tls = {
      ca: readFileSync(pki.caCert, 'utf8'),
      cert: readFileSync(pki.adminCert, 'utf8'),
      key: readFileSync(pki.adminKey, 'utf8'),
    };
    const request: NodeCluster['request'] = async (path, init = {}) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      let body: string | undefined;
      if (init.body !== undefined) {
        body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
        headers['content-type'] = init.contentType ?? 'application/json';
      }
      return await fetch(new URL(path, server), { method: init.method ?? 'GET', headers, body, tls });
    };
    const waitFor = async (
      what: string,
      parts: { name: string; proc: Subprocess; log: string }[],
      check: () => Promise<boolean>,
    ) => {
      const deadline = performance.now() + (options.readyTimeoutMs ?? 50_000);
      for (;;) {
        failIfExited(parts);
        try {
          if (await check()) return;
        } catch {
          // not yet
        }
        if (performance.now() > deadline) {
          throw new Error(
            `timed out waiting for ${what}:\n${parts.map((p) => `--- ${p.name}\n${tail(p.log, 15)}`).join('\n')}`,
          );
        }
        await Bun.sleep(100);
      }
    };

    // etcd + apiserver
    const etcdPort = await freePort();
    const peerPort = await freePort();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = spawn('etcd', [
      join(cpDir, 'etcd'),
      '--name=default',
      `--data-dir=${join(stateDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const apiserver = spawn('kube-apiserver', [
      join(cpDir, 'kube-apiserver'),
      `--etcd-servers=${etcdUrl}`,
      `--advertise-address=${NODE_IP}`,
      `--bind-address=${NODE_IP}`,
      `--secure-port=${APISERVER_PORT}`,
      `--cert-dir=${join(stateDir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--kubelet-client-certificate=${pki.apiserverKubeletCert}`,
      `--kubelet-client-key=${pki.apiserverKubeletKey}`,
      `--kubelet-certificate-authority=${pki.caCert}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true',
      '--v=1',
    ]);
    const cp = [
      { name: 'etcd', ...etcd },
      { name: 'kube-apiserver', ...apiserver },
    ];
    await waitFor('kube-apiserver /readyz', cp, async () => (await request('/readyz')).ok);

    // controller-manager, scheduler
    const cm = spawn('kube-controller-manager', [
      join(binDir, 'kube-controller-manager'),
      `--kubeconfig=${adminKubeconfig}`,
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      `--flex-volume-plugin-dir=${join(stateDir, 'flex')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--use-service-account-credentials=false',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      '--v=1',
    ]);
    const scheduler = spawn('kube-scheduler', [
      join(binDir, 'kube-scheduler'),
      `--kubeconfig=${adminKubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      '--v=1',
    ]);

    // containerd with its own root, state, socket and CNI config
    const cdDir = join(stateDir, 'containerd');
    const cniConf = join(stateDir, 'cni');
    mkdirSync(cniConf, { recursive: true });
    writeFileSync(
      join(cniConf, '10-tsgw-node.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'tsgw-node',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            isGateway: true,
            isDefaultGateway: false,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              dataDir: join(stateDir, 'cni-ipam'),
              ranges: [
                [{ subnet: POD_CIDR, rangeStart: '10.244.0.10', rangeEnd: '10.244.0.250', gateway: NODE_IP }],
              ],
              // No default route: a Pod reaches other Pods and, through the host, the Service range only.
              routes: [{ dst: SERVICE_CIDR }],
            },
          },
        ],
      }),
    );
    const socket = join(cdDir, 'containerd.sock');
    const cdConfig = join(stateDir, 'containerd.toml');
    writeFileSync(
      cdConfig,
      `version = 2
root = "${cdDir}/root"
state = "${cdDir}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.grpc.v1.cri.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${TOOLS_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConf}"
`,
    );
    const containerd = spawn('containerd', ['containerd', `--config=${cdConfig}`, '--log-level=warn']);
    const ctr = (...args: string[]) => {
      const r = Bun.spawnSync(['ctr', `--address=${socket}`, '-n', 'k8s.io', ...args], {
        stdout: 'pipe',
        stderr: 'pipe',
      });
      return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    };
    await waitFor(
      'containerd',
      [{ name: 'containerd', ...containerd }],
      async () => ctr('version').exitCode === 0,
    );
    for (const image of options.images ?? []) {
      const r = ctr('images', 'import', '--no-unpack', image);
      if (r.exitCode !== 0) throw new Error(`importing ${image} into containerd failed: ${r.stderr.trim()}`);
    }

    // kubelet
    const kubeletDir = join(stateDir, 'kubelet');
    mkdirSync(kubeletDir, { recursive: true });
    const resolvConf = join(stateDir, 'resolv.conf');
    // Pods with dnsPolicy Default get this: the cluster DNS again, never the machine's resolvers.
    writeFileSync(resolvConf, `nameserver ${NODE_IP}\n`);
    const hardNoFile = Number(sh(['sh', '-c', 'ulimit -Hn']).trim()) || 65536;
    const kubeletConfig = join(stateDir, 'kubelet.yaml');
    writeFileSync(
      kubeletConfig,
      `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${cgroup}
oomScoreAdj: 0
maxOpenFiles: ${Math.min(hardNoFile, 1_000_000)}
failSwapOn: false
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzPort: 0
tlsCertFile: ${pki.kubeletServingCert}
tlsPrivateKeyFile: ${pki.kubeletServingKey}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${pki.caCert}}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
clusterDNS: [${DNS_SERVICE_IP}]
resolvConf: ${resolvConf}
containerRuntimeEndpoint: unix://${socket}
podLogsDir: ${join(stateDir, 'pod-logs')}
volumePluginDir: ${join(stateDir, 'volume-plugins')}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
`,
    );
    const kubelet = spawn('kubelet', [
      join(binDir, 'kubelet'),
      `--config=${kubeletConfig}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${kubeletDir}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ]);

    // kube-proxy: masquerade-all so Pod → ClusterIP → Pod on one bridge works without br_netfilter;
    // conntrack and localhost-NodePort sysctls left alone.
    const proxy = spawn('kube-proxy', [
      join(binDir, 'kube-proxy'),
      `--kubeconfig=${adminKubeconfig}`,
      `--hostname-override=${NODE_NAME}`,
      `--cluster-cidr=${POD_CIDR}`,
      '--proxy-mode=iptables',
      '--masquerade-all',
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      `--nodeport-addresses=${NODE_IP}/32`,
      `--metrics-bind-address=127.0.0.1:${await freePort()}`,
      `--healthz-bind-address=127.0.0.1:${await freePort()}`,
      // No CAP_SYS_RESOURCE here: lowering oom_score_adj fails.
      '--oom-score-adj=0',
      '--v=1',
    ]);

    // CoreDNS on the host at the node IP, behind the kube-dns Service (an EndpointSlice by hand).
    const corefile = join(stateDir, 'Corefile');
    writeFileSync(
      corefile,
      `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${adminKubeconfig} node
        pods insecure
    }
}
# Every other name: NXDOMAIN here, never forwarded off the machine.
.:53 {
    bind ${NODE_IP}
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`,
    );
    const coredns = spawn('coredns', [join(binDir, 'coredns'), '-conf', corefile]);

    const all = [
      ...cp,
      { name: 'kube-controller-manager', ...cm },
      { name: 'kube-scheduler', ...scheduler },
      { name: 'containerd', ...containerd },
      { name: 'kubelet', ...kubelet },
      { name: 'kube-proxy', ...proxy },
      { name: 'coredns', ...coredns },
    ];
    await applyDnsService(request);
    await waitFor('Node Ready', all, async () => {
      const node = (await (await request(`/api/v1/nodes/${NODE_NAME}`)).json()) as {
        status?: { conditions?: { type: string; status: string }[] };
      };
      return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    });
    await waitFor(
      'default ServiceAccount',
      all,
      async () => (await request('/api/v1/namespaces/default/serviceaccounts/default')).ok,
    );
    const startMs = Math.round(performance.now() - started);
    return { server, kubeconfigPath: adminKubeconfig, stateDir, binDir, request, ctr, startMs, cgroup, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function applyDnsService(request: NodeCluster['request']): Promise<void> {
  const apply = async (path: string, body: object) => {
    const res = await request(`${path}?fieldManager=tsgw-node&force=true`, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
    });
    if (!res.ok) throw new Error(`applying ${path}: ${res.status} ${await res.text()}`);
  };
  await apply('/api/v1/namespaces/kube-system/services/kube-dns', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kube-dns', namespace: 'kube-system' },
    spec: {
      clusterIP: DNS_SERVICE_IP,
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  });
  await apply('/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-host', {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'kube-dns-host',
      namespace: 'kube-system',
      labels: { 'kubernetes.io/service-name': 'kube-dns' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [NODE_IP], conditions: { ready: true } }],
    ports: [
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, protocol: 'TCP' },
    ],
  });
}
