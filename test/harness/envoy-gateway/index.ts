/**
 * The real Envoy Gateway (EG) as a test client of our extension server: its `envoy-gateway` binary
 * (built from the Go module proxy by build-envoy-gateway.sh) in Kubernetes-provider mode against the
 * test control plane's kube-apiserver, with our extensionManager block, plus an xDS client that reads
 * what EG would send a proxy (xds-client.ts).
 *
 * What EG needs to run outside a cluster, found in its v1.9 source:
 * - Its namespace (`ENVOY_GATEWAY_NAMESPACE`, default `envoy-gateway-system`) and the control-plane
 *   Secrets `envoy-gateway`, `envoy`, `envoy-rate-limit`, `envoy-oidc-hmac`: `envoy-gateway certgen`
 *   (not `--local`) creates them through the API server; `--disable-topology-injector` skips patching
 *   a MutatingWebhookConfiguration that does not exist here.
 * - In Kubernetes mode the xDS server reads its TLS files from the fixed paths `/certs/{tls.crt,tls.key,
 *   ca.crt}` (`internal/xds/runner`), and the Kubernetes provider creates its wasm cache under
 *   `/var/lib/eg/wasm`. So EG runs chrooted (`unshare --root`) in a temp dir holding the binary, its
 *   config, the kubeconfig and `certs/` from the `envoy-gateway` Secret: nothing is written outside it.
 *   EG is a static Go binary and talks only to loopback IPs, so an otherwise empty root is enough.
 * - Fixed ports it always binds, on all interfaces: 18000 (xDS), 18002 (wasm cache), 8081 (health
 *   probes), 8080 (controller-runtime metrics). The admin server takes a free port from the config; EG's
 *   own Prometheus endpoint (fixed 19001) is disabled. Hence one EG per machine at a time.
 * - Leader election off; the topology-injector webhook off (it would want `/certs` on port 9443).
 * - No kubelet: the Envoy Deployment and Service EG creates never run, which the test does not need.
 *
 * EG's admin `/api/config_dump` dumps its *provider resources* (the Kubernetes objects it holds), not
 * xDS; the xDS is read from its xDS server as a proxy would (see xds-client.ts).
 *
 * @module
 */
import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { parseAllDocuments } from 'yaml';
import type { ControlPlane } from '../control-plane/index.ts';
import { freePort, spawnWatchdog } from '../support/processes.ts';
import {
  assertPortsFree,
  captureLines,
  errorLinesOf,
  NETNS_BRIDGE,
  startHostBridge,
  waitForReady,
} from './process.ts';
import { watchXds, type XdsWatch } from './xds-client.ts';

const here = import.meta.dir;

export const EG_NAMESPACE = 'envoy-gateway-system';
export const EG_CONTROLLER_NAME = 'gateway.envoyproxy.io/gatewayclass-controller';
/** Ports EG v1.9 binds whatever its config says. */
export const EG_FIXED_PORTS = { xds: 18000, wasm: 18002, health: 8081, controllerMetrics: 8080 } as const;

// ---------------------------------------------------------------------------------------------------
// Binary and CRDs

export interface EnvoyGatewayBuild {
  dir: string;
  binary: string;
  /** e.g. `v1.9.1`. */
  egVersion: string;
  /** The sigs.k8s.io/gateway-api version EG was built with, e.g. `v1.6.1`. */
  gatewayApiVersion: string;
}

let buildPromise: Promise<EnvoyGatewayBuild> | undefined;

/** The cached EG build, running build-envoy-gateway.sh (instant when cached) to find it. */
export function envoyGatewayBinary(): Promise<EnvoyGatewayBuild> {
  buildPromise ??= (async () => {
    const proc = Bun.spawn(['bash', join(here, 'build-envoy-gateway.sh'), '--cached-only'], {
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    const dir = out.trim().split('\n').at(-1) ?? '';
    const binary = join(dir, 'envoy-gateway');
    if (code !== 0 || !existsSync(binary)) {
      buildPromise = undefined;
      throw new Error(
        `build-envoy-gateway.sh --cached-only (exit ${code}): ${err.trim()}${out.trim().slice(-500)}`,
      );
    }
    const versions = existsSync(join(dir, 'versions.env'))
      ? readFileSync(join(dir, 'versions.env'), 'utf8')
      : '';
    const value = (key: string) => versions.match(new RegExp(`^${key}=(\\S+)$`, 'm'))?.[1];
    return {
      dir,
      binary,
      egVersion: value('EG_VERSION') ?? `v${process.env.TSGW_EG_VERSION ?? '1.9.1'}`,
      gatewayApiVersion: value('GATEWAY_API_VERSION') ?? 'v1.6.1',
    };
  })();
  return buildPromise;
}

/** `go mod download -json module@version` → the module's directory in the Go module cache. */
export async function moduleDir(module: string, version: string): Promise<string> {
  const proc = Bun.spawn(['go', 'mod', 'download', '-json', `${module}@${version}`], {
    cwd: tmpdir(),
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, GOFLAGS: '-mod=mod', GO111MODULE: 'on' },
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const dir = code === 0 ? (JSON.parse(out) as { Dir?: string }).Dir : undefined;
  if (!dir) throw new Error(`go mod download ${module}@${version} failed:\n${err}${out}`);
  return dir;
}

interface Crd {
  kind: string;
  metadata: { name: string };
}

function crdsIn(files: string[]): Crd[] {
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((doc) => doc.toJS() as Crd | null)
      .filter((doc): doc is Crd => doc?.kind === 'CustomResourceDefinition'),
  );
}

const yamlFiles = (dir: string): string[] =>
  existsSync(dir)
    ? [...new Bun.Glob('*.yaml').scanSync({ cwd: dir })].sort().map((name) => join(dir, name))
    : [];

/**
 * The Gateway API CRDs (standard channel, plus each experimental-only CRD) and EG's own CRDs, read
 * from the Go module cache at the versions the EG binary was built with; never committed copies.
 */
export async function envoyGatewayCrds(build?: EnvoyGatewayBuild): Promise<object[]> {
  const { egVersion, gatewayApiVersion } = build ?? (await envoyGatewayBinary());
  const [gwapi, eg] = await Promise.all([
    moduleDir('sigs.k8s.io/gateway-api', gatewayApiVersion),
    moduleDir('github.com/envoyproxy/gateway', egVersion),
  ]);
  const standard = crdsIn(yamlFiles(join(gwapi, 'config/crd/standard')));
  const standardNames = new Set(standard.map((crd) => crd.metadata.name));
  const experimentalOnly = crdsIn(yamlFiles(join(gwapi, 'config/crd/experimental'))).filter(
    (crd) => !standardNames.has(crd.metadata.name),
  );
  // EG ships its CRDs in the gateway-helm chart's crds subchart (EG's own embed.go reads them there).
  const egCrds = crdsIn(yamlFiles(join(eg, 'charts/gateway-helm/charts/crds/crds/generated')));
  if (standard.length === 0 || egCrds.length === 0)
    throw new Error(`no CRDs found under ${gwapi}/config/crd/standard or ${eg}/charts/gateway-helm`);
  return [...standard, ...experimentalOnly, ...egCrds];
}

// ---------------------------------------------------------------------------------------------------
// Config

export interface ExtensionServerAddress {
  host: string;
  port: number;
}

export interface EnvoyGatewayConfigOptions {
  extensionServer: ExtensionServerAddress;
  adminPort: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Replaces the whole extensionManager block when given. */
  extensionManager?: object;
  failOpen?: boolean;
}

/** Our extensionManager block, as in examples/envoy-gateway and kind/envoy-gateway-values.yaml. */
export function extensionManagerBlock(server: ExtensionServerAddress, failOpen = false): object {
  const isIp = /^[0-9.]+$/.test(server.host);
  return {
    backendResources: [{ group: 'gateway.tailscale.com', version: 'v1alpha1', kind: 'TailscaleEndpoints' }],
    policyResources: [{ group: 'gateway.tailscale.com', version: 'v1alpha1', kind: 'TailscaleRoutePolicy' }],
    hooks: {
      xdsTranslator: {
        post: ['Route', 'VirtualHost', 'HTTPListener', 'Cluster', 'Translation'],
        translation: {
          route: { includeAll: true },
          cluster: { includeAll: true },
          secret: { includeAll: true },
        },
      },
    },
    service: isIp
      ? { ip: { address: server.host, port: server.port } }
      : { fqdn: { hostname: server.host, port: server.port } },
    maxMessageSize: '256M',
    failOpen,
  };
}

export function envoyGatewayConfig(options: EnvoyGatewayConfigOptions): object {
  return {
    apiVersion: 'gateway.envoyproxy.io/v1alpha1',
    kind: 'EnvoyGateway',
    gateway: { controllerName: EG_CONTROLLER_NAME },
    provider: {
      type: 'Kubernetes',
      kubernetes: {
        leaderElection: { disable: true },
        proxyTopologyInjector: { disabled: true },
      },
    },
    logging: { level: { default: options.logLevel ?? 'info' } },
    admin: { address: { host: '127.0.0.1', port: options.adminPort } },
    telemetry: { metrics: { prometheus: { disable: true } } },
    extensionManager:
      options.extensionManager ?? extensionManagerBlock(options.extensionServer, options.failOpen ?? false),
  };
}

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping (as in test/harness/control-plane/index.ts: bun test runs no exit handlers)

// ---------------------------------------------------------------------------------------------------
// Start

export interface StartEnvoyGatewayOptions {
  cp: ControlPlane;
  extensionServer: ExtensionServerAddress;
  logLevel?: EnvoyGatewayConfigOptions['logLevel'];
  extensionManager?: object;
  failOpen?: boolean;
  /** How long to wait for EG's readiness probe; default 45 s. */
  readyTimeoutMs?: number;
  /**
   * Run EG in a network namespace of its own, so several run at once (EG binds fixed ports): it
   * reaches the kube-apiserver and the extension server (both on 127.0.0.1) through unix-socket
   * bridges (netns-bridge.ts), and its health, admin and xDS ports come out on free host ports.
   * Needs `ip` (iproute2) to bring the namespace's loopback up.
   */
  netns?: boolean;
}

export interface PemTriple {
  ca: string;
  cert: string;
  key: string;
}

export interface RunningEnvoyGateway {
  build: EnvoyGatewayBuild;
  process: Subprocess;
  /** EG's admin server, e.g. `http://127.0.0.1:PORT` (`/api/config_dump`, `/api/server_info`). */
  adminUrl: string;
  /** EG's xDS server, `127.0.0.1:18000` (another host port with `netns`). */
  xdsAddress: string;
  /** The certgen CA and the proxies' client certificate (Secret `envoy`), for xDS clients. */
  proxyCerts: PemTriple;
  /** Every log line so far (stdout and stderr). */
  lines: string[];
  /** Log lines at level error. */
  errorLines(): string[];
  /** Opens an xDS stream as a proxy of Gateway `<namespace>/<name>` would. */
  watchXds(gateway: { namespace: string; name: string }): Promise<XdsWatch>;
  stop(): Promise<void>;
}

async function ok(response: Response, what: string): Promise<unknown> {
  if (!response.ok) throw new Error(`${what}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function readSecret(cp: ControlPlane, name: string): Promise<Record<string, string>> {
  const secret = (await ok(
    await cp.request(`/api/v1/namespaces/${EG_NAMESPACE}/secrets/${name}`),
    `reading Secret ${EG_NAMESPACE}/${name}`,
  )) as { data?: Record<string, string> };
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

/** Runs `envoy-gateway certgen` against the API server: creates EG's control-plane Secrets once. */
const certgens = new Map<string, Promise<void>>();

/**
 * One certgen per API server: replicas started at once (eg-ha) would otherwise race, and the loser's
 * create of a Secret the winner just made fails with AlreadyExists.
 */
function certgenOnce(build: EnvoyGatewayBuild, kubeconfigPath: string): Promise<void> {
  let run = certgens.get(kubeconfigPath);
  if (run === undefined) {
    run = certgen(build, kubeconfigPath);
    certgens.set(kubeconfigPath, run);
    run.catch(() => certgens.delete(kubeconfigPath));
  }
  return run;
}

async function certgen(build: EnvoyGatewayBuild, kubeconfigPath: string): Promise<void> {
  const proc = Bun.spawn([build.binary, 'certgen', '--disable-topology-injector'], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      PATH: process.env.PATH ?? '',
      KUBECONFIG: kubeconfigPath,
      ENVOY_GATEWAY_NAMESPACE: EG_NAMESPACE,
      HOME: tmpdir(),
    },
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`envoy-gateway certgen failed (exit ${code}):\n${out}${err}`);
}

/**
 * EG's command wrapped in a network namespace of its own (`unshare --net`), with a bridge inside it
 * and one on the host (netns-bridge.ts) joined by unix sockets under `root`: the kube-apiserver and
 * the extension server keep their 127.0.0.1 ports inside, and EG's health, xDS and admin ports come
 * out on host ports. `--kill-child` takes EG down with the namespace's first process, and the inner
 * bridge watches EG's pid, so nothing outlives it.
 */
async function bridgeNamespace(options: {
  root: string;
  egCommand: string[];
  apiServerPort: number;
  extensionServer: ExtensionServerAddress;
  adminPort: number;
  unshareBinary: string;
}): Promise<{ command: string[]; hostBridge: Subprocess; hostPorts: { health: number; xds: number } }> {
  const { root, apiServerPort: api, extensionServer, adminPort } = options;
  if (extensionServer.host !== '127.0.0.1')
    throw new Error(`netns: the extension server must listen on 127.0.0.1, not ${extensionServer.host}`);
  if (!Bun.which('ip')) throw new Error('netns: ip (iproute2) is needed to bring the loopback up');
  const dir = join(root, 'bridge');
  mkdirSync(dir);
  const sock = (name: string) => `unix:${join(dir, `${name}.sock`)}`;
  const tcp = (port: number) => `tcp:127.0.0.1:${port}`;
  const hostPorts = { health: await freePort(), xds: await freePort() };
  const hostBridge = await startHostBridge([
    `${sock('api')}=${tcp(api)}`,
    `${sock('ext')}=${tcp(extensionServer.port)}`,
    `${tcp(hostPorts.health)}=${sock('health')}`,
    `${tcp(hostPorts.xds)}=${sock('xds')}`,
    `${tcp(adminPort)}=${sock('admin')}`,
  ]);
  const inner = [
    process.execPath,
    NETNS_BRIDGE,
    '--watch-pid',
    '$$',
    `${tcp(api)}=${sock('api')}`,
    `${tcp(extensionServer.port)}=${sock('ext')}`,
    `${sock('health')}=${tcp(EG_FIXED_PORTS.health)}`,
    `${sock('xds')}=${tcp(EG_FIXED_PORTS.xds)}`,
    `${sock('admin')}=${tcp(adminPort)}`,
  ];
  const quote = (arg: string) => (arg === '$$' ? arg : `'${arg.replaceAll("'", `'\\''`)}'`);
  const script = [
    'ip link set lo up || exit 97',
    `${inner.map(quote).join(' ')} >/dev/null &`,
    `exec ${options.egCommand.map(quote).join(' ')}`,
  ].join('\n');
  const map = process.getuid?.() === 0 ? [] : ['--map-root-user'];
  return {
    command: [options.unshareBinary, ...map, '--net', '--fork', '--kill-child', 'sh', '-c', script],
    hostBridge,
    hostPorts,
  };
}

export async function startEnvoyGateway(options: StartEnvoyGatewayOptions): Promise<RunningEnvoyGateway> {
  const { cp } = options;
  const build = await envoyGatewayBinary();
  if (!options.netns) await assertPortsFree(EG_FIXED_PORTS);

  const namespace = await cp.request('/api/v1/namespaces', {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: EG_NAMESPACE } },
  });
  if (!namespace.ok && namespace.status !== 409)
    throw new Error(`creating namespace ${EG_NAMESPACE}: ${namespace.status} ${await namespace.text()}`);
  await namespace.body?.cancel();

  await certgenOnce(build, cp.kubeconfigPath);
  const egCerts = await readSecret(cp, 'envoy-gateway');
  const proxy = await readSecret(cp, 'envoy');
  const proxyCerts = { ca: proxy['ca.crt'] ?? '', cert: proxy['tls.crt'] ?? '', key: proxy['tls.key'] ?? '' };

  // The chroot: everything EG reads or writes lives here.
  const root = mkdtempSync(join(tmpdir(), 'tsgw-envoy-gateway-'));
  const watchdogDir = root;
  try {
    mkdirSync(join(root, 'certs'));
    mkdirSync(join(root, 'tmp'));
    for (const file of ['ca.crt', 'tls.crt', 'tls.key'])
      writeFileSync(join(root, 'certs', file), egCerts[file] ?? '', { mode: 0o600 });
    try {
      linkSync(build.binary, join(root, 'envoy-gateway'));
    } catch {
      copyFileSync(build.binary, join(root, 'envoy-gateway'));
    }
    writeFileSync(join(root, 'kubeconfig'), readFileSync(cp.kubeconfigPath), { mode: 0o600 });
    const adminPort = await freePort();
    const config = envoyGatewayConfig({
      extensionServer: options.extensionServer,
      adminPort,
      ...(options.logLevel ? { logLevel: options.logLevel } : {}),
      ...(options.extensionManager ? { extensionManager: options.extensionManager } : {}),
      ...(options.failOpen !== undefined ? { failOpen: options.failOpen } : {}),
    });
    // JSON is YAML.
    writeFileSync(join(root, 'envoy-gateway.yaml'), `${JSON.stringify(config, null, 2)}\n`);

    // As root, a plain chroot; otherwise a user namespace maps us to root inside it so chroot is allowed.
    const unshareBinary = Bun.which('unshare');
    if (!unshareBinary) throw new Error('unshare (util-linux) is needed to run Envoy Gateway chrooted');
    const unshare = [
      unshareBinary,
      ...(process.getuid?.() === 0 ? [] : ['--map-root-user', '--mount']),
      `--root=${root}`,
    ];
    const egCommand = [...unshare, '/envoy-gateway', 'server', '--config-path', '/envoy-gateway.yaml'];
    const hostPorts = { health: EG_FIXED_PORTS.health, xds: EG_FIXED_PORTS.xds };
    let hostBridge: Subprocess | undefined;
    let command = egCommand;
    if (options.netns) {
      const bridged = await bridgeNamespace({
        root,
        egCommand,
        apiServerPort: Number(new URL(cp.server).port),
        extensionServer: options.extensionServer,
        adminPort,
        unshareBinary,
      });
      command = bridged.command;
      hostBridge = bridged.hostBridge;
      Object.assign(hostPorts, bridged.hostPorts);
    }
    const proc = Bun.spawn(command, {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        PATH: options.netns ? (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin') : '/',
        HOME: '/tmp',
        KUBECONFIG: '/kubeconfig',
        ENVOY_GATEWAY_NAMESPACE: EG_NAMESPACE,
      },
    });
    const watchdog = spawnWatchdog(
      [proc.pid, ...(hostBridge ? [hostBridge.pid] : [])],
      watchdogDir,
      'tsgw-eg-watchdog',
    );
    const lines = captureLines(proc, 'envoy-gateway.log');

    let stopped: Promise<void> | undefined;
    const xdsWatches = new Set<XdsWatch>();
    const stop = () => {
      stopped ??= (async () => {
        for (const watch of xdsWatches) watch.close();
        watchdog.kill('SIGKILL');
        try {
          proc.kill('SIGKILL');
        } catch {
          // already gone
        }
        await proc.exited;
        hostBridge?.kill('SIGKILL');
        await hostBridge?.exited;
        rmSync(root, { recursive: true, force: true });
      })();
      return stopped;
    };

    await waitForReady({
      proc,
      lines,
      healthUrl: `http://127.0.0.1:${hostPorts.health}/readyz`,
      timeoutMs: options.readyTimeoutMs ?? 45_000,
      stop,
    });

    return {
      build,
      process: proc,
      adminUrl: `http://127.0.0.1:${adminPort}`,
      xdsAddress: `127.0.0.1:${hostPorts.xds}`,
      proxyCerts,
      lines,
      errorLines: () => errorLinesOf(lines),
      async watchXds(gateway) {
        const watch = await watchXds({
          address: `127.0.0.1:${hostPorts.xds}`,
          ...proxyCerts,
          nodeCluster: `${gateway.namespace}/${gateway.name}`,
        });
        xdsWatches.add(watch);
        return watch;
      },
      stop,
    };
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
