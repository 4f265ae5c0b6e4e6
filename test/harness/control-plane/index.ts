/**
 * A real etcd + kube-apiserver on loopback for integration tests and the Docker-free dev loop.
 *
 * Why not a fake server: the operator's correctness depends on API-server behaviour that fakes get
 * wrong (server-side apply field ownership, watch bookmarks and 410s, RBAC, CRD establishment), and the
 * binaries start in a few seconds. There is no controller-manager or scheduler, so Pods never run,
 * namespaces are never finalized, and ServiceAccount tokens are not auto-created (the ServiceAccount
 * admission plugin is disabled for that reason).
 *
 * Children are killed synchronously from a process `exit` handler (and on SIGINT/SIGTERM) where the
 * runtime runs one, and otherwise by a watchdog process that notices the parent is gone within half a
 * second: `bun test` 1.4 runs no `exit` handlers, and a SIGKILLed test process runs nothing.
 *
 * @module
 */

import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { freePort, spawnWatchdog } from '../support/processes.ts';
import { generatePki } from './pki.ts';

export interface ControlPlane {
  server: string; // https://127.0.0.1:PORT
  kubeconfigPath: string;
  ca: string;
  cert: string;
  key: string; // PEM: cluster CA, admin client cert+key
  /** Raw request to the API server as cluster-admin, via Bun fetch with tls. body objects are JSON-encoded. */
  request(
    path: string,
    init?: { method?: string; body?: unknown; contentType?: string; query?: Record<string, string> },
  ): Promise<Response>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Directory with `kube-apiserver` and `etcd`; defaults to {@link controlPlaneBinaries}. */
  binDir?: string;
  /** Where `etcd.log` and `kube-apiserver.log` go; defaults to `$TSGW_CONTROL_PLANE_LOGS`, else the state dir. */
  logDir?: string;
  /**
   * Keep PKI, etcd data and kubeconfig here instead of a temp dir, and leave it in place on `stop()`.
   * Used by `scripts/cluster.ts`.
   */
  stateDir?: string;
  /**
   * Start the processes in their own process group and do not kill them when this process exits, so
   * they outlive it (`cluster:up`). The caller owns their lifetime through {@link StartedControlPlane.pids}.
   */
  detached?: boolean;
  /** How long to wait for `/readyz`; default 50 s, under the 60 s test timeout. */
  readyTimeoutMs?: number;
  /**
   * The Service ClusterIP range; default `10.0.0.0/24` (254 Services). A run with one egress Service
   * per TailscaleEndpoints beyond that needs a wider one, e.g. `10.0.0.0/20`.
   */
  serviceCidr?: string;
}

export interface StartedControlPlane extends ControlPlane {
  pids: { etcd: number; apiserver: number };
  /** Milliseconds from spawning etcd until `/readyz` answered ok. */
  startMs: number;
  stateDir: string;
}

const here = import.meta.dir;
const FIELD_MANAGER = 'tailscale-gateway-tests';

// ---------------------------------------------------------------------------------------------------
// Binaries

let binariesPromise: Promise<string> | undefined;

/** Directory with kube-apiserver and etcd, building them via build-binaries.sh if needed. */
export function controlPlaneBinaries(): Promise<string> {
  binariesPromise ??= (async () => {
    // The script answers instantly when the cache (or $KUBEBUILDER_ASSETS) already has both binaries.
    const proc = Bun.spawn(['bash', join(here, 'build-binaries.sh')], { stdout: 'pipe', stderr: 'inherit' });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const dir = out.trim().split('\n').at(-1) ?? '';
    if (code !== 0 || !existsSync(join(dir, 'kube-apiserver')) || !existsSync(join(dir, 'etcd'))) {
      binariesPromise = undefined;
      throw new Error(`build-binaries.sh failed (exit ${code}); output: ${out.trim().slice(-500)}`);
    }
    return dir;
  })();
  return binariesPromise;
}

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping

interface Owned {
  procs: Set<Subprocess>;
  dirs: Set<string>;
}
const owned: Owned = { procs: new Set(), dirs: new Set() };
let exitHooksInstalled = false;

function killOwnedSync(): void {
  for (const proc of owned.procs) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  owned.procs.clear();
  for (const dir of owned.dirs) rmSync(dir, { recursive: true, force: true });
  owned.dirs.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killOwnedSync);
  // Signals do not run 'exit' handlers by default; re-raise the conventional exit status after cleanup.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      killOwnedSync();
      process.exit(code);
    });
  }
}

function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------------
// Start

export async function startControlPlane(options: StartOptions = {}): Promise<StartedControlPlane> {
  const binDir = options.binDir ?? (await controlPlaneBinaries());
  const ownsDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'tsgw-control-plane-'));
  mkdirSync(stateDir, { recursive: true });
  if (!options.detached) {
    installExitHooks();
    if (ownsDir) owned.dirs.add(stateDir);
  }
  try {
    // Free ports are found by bind-and-close, so another process can grab one in between; an early
    // "address already in use" exit is retried with new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce(binDir, stateDir, ownsDir, options);
      } catch (error) {
        if (attempt >= 3 || !(error instanceof PortInUseError)) throw error;
      }
    }
  } catch (error) {
    if (ownsDir) {
      rmSync(stateDir, { recursive: true, force: true });
      owned.dirs.delete(stateDir);
    }
    throw error;
  }
}

class PortInUseError extends Error {}

async function startOnce(
  binDir: string,
  stateDir: string,
  ownsDir: boolean,
  options: StartOptions,
): Promise<StartedControlPlane> {
  const started = performance.now();
  const pkiDir = join(stateDir, 'pki');
  rmSync(pkiDir, { recursive: true, force: true });
  mkdirSync(pkiDir, { recursive: true });
  const pki = generatePki(pkiDir);
  // TSGW_CONTROL_PLANE_LOGS keeps the logs of a test run that otherwise vanish with its temp dir.
  const logDir = options.logDir ?? process.env.TSGW_CONTROL_PLANE_LOGS ?? stateDir;
  mkdirSync(logDir, { recursive: true });
  const etcdLog = join(logDir, 'etcd.log');
  const apiserverLog = join(logDir, 'kube-apiserver.log');
  const etcdData = join(stateDir, 'etcd-data');
  rmSync(etcdData, { recursive: true, force: true });

  const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;

  const spawnLogged = (cmd: string[], log: string): Subprocess => {
    const fd = openSync(log, 'w');
    try {
      const proc = Bun.spawn(cmd, {
        stdin: 'ignore',
        stdout: fd,
        stderr: fd,
        detached: options.detached === true,
      });
      if (options.detached) proc.unref();
      else owned.procs.add(proc);
      return proc;
    } finally {
      closeSync(fd);
    }
  };

  const etcd = spawnLogged(
    [
      join(binDir, 'etcd'),
      '--name=default',
      `--data-dir=${etcdData}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    etcdLog,
  );

  const apiserverCommand = (port: number): string[] => [
    join(binDir, 'kube-apiserver'),
    `--etcd-servers=${etcdUrl}`,
    '--advertise-address=127.0.0.1',
    // The lease reconciler refuses loopback advertise addresses, and nothing here needs the
    // `kubernetes` Service's endpoints.
    '--endpoint-reconciler-type=none',
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(stateDir, 'apiserver-certs')}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    `--service-cluster-ip-range=${options.serviceCidr ?? '10.0.0.0/24'}`,
    '--authorization-mode=RBAC',
    '--disable-admission-plugins=ServiceAccount',
    '--allow-privileged=true',
    '--storage-backend=etcd3',
    '--v=1',
  ];

  let apiserver: Subprocess;
  try {
    apiserver = spawnLogged(apiserverCommand(securePort), apiserverLog);
  } catch (error) {
    etcd.kill('SIGKILL');
    owned.procs.delete(etcd);
    throw error;
  }

  const procs = [etcd, apiserver];
  let watchdog = options.detached
    ? undefined
    : spawnWatchdog([etcd.pid, apiserver.pid], ownsDir ? stateDir : '');
  const killBoth = async () => {
    watchdog?.kill('SIGKILL');
    for (const proc of procs) {
      try {
        proc.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all(procs.map((proc) => proc.exited));
    for (const proc of procs) owned.procs.delete(proc);
  };

  const server = `https://127.0.0.1:${securePort}`;
  const ca = readFileSync(pki.caCert, 'utf8');
  const cert = readFileSync(pki.adminCert, 'utf8');
  const key = readFileSync(pki.adminKey, 'utf8');
  const tls = { ca, cert, key };

  const requestTo =
    (base: string): ControlPlane['request'] =>
    async (path, init = {}) => {
      const url = new URL(path, base);
      for (const [name, value] of Object.entries(init.query ?? {})) url.searchParams.set(name, value);
      const headers: Record<string, string> = { accept: 'application/json' };
      let body: string | Uint8Array | undefined;
      if (init.body !== undefined) {
        body =
          typeof init.body === 'string' || init.body instanceof Uint8Array
            ? init.body
            : JSON.stringify(init.body);
        headers['content-type'] = init.contentType ?? 'application/json';
      }
      return await fetch(url, { method: init.method ?? 'GET', headers, body, tls });
    };
  const request = requestTo(server);

  try {
    await waitReady({
      request,
      timeoutMs: options.readyTimeoutMs ?? 50_000,
      exited: [
        { name: 'etcd', proc: etcd, log: etcdLog },
        { name: 'kube-apiserver', proc: apiserver, log: apiserverLog },
      ],
      apiserverLog,
    });
  } catch (error) {
    await killBoth();
    throw error;
  }
  const startMs = Math.round(performance.now() - started);

  const kubeconfigPath = join(stateDir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server, ca, cert, key), { mode: 0o600 });

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await killBoth();
      if (ownsDir) {
        rmSync(stateDir, { recursive: true, force: true });
        owned.dirs.delete(stateDir);
      }
    })();
    return stopped;
  };

  const controlPlane: StartedControlPlane = {
    server,
    kubeconfigPath,
    ca,
    cert,
    key,
    request,
    stop,
    pids: { etcd: etcd.pid, apiserver: apiserver.pid },
    startMs,
    stateDir,
  };

  internals.set(controlPlane, {
    etcdUrl,
    restart: async (restart) => {
      const current = procs[1]!;
      current.kill('SIGKILL');
      await current.exited;
      owned.procs.delete(current);
      if (restart.whileDown) {
        const sidePort = await freePort();
        const sideLog = join(logDir, 'kube-apiserver-side.log');
        const side = spawnLogged(apiserverCommand(sidePort), sideLog);
        const sideWatchdog = options.detached ? undefined : spawnWatchdog([side.pid], '');
        const sideServer = `https://127.0.0.1:${sidePort}`;
        const sideRequest = requestTo(sideServer);
        try {
          await waitReady({
            request: sideRequest,
            timeoutMs: options.readyTimeoutMs ?? 50_000,
            exited: [{ name: 'kube-apiserver (side)', proc: side, log: sideLog }],
            apiserverLog: sideLog,
          });
          await restart.whileDown({ server: sideServer, request: sideRequest });
        } finally {
          sideWatchdog?.kill('SIGKILL');
          side.kill('SIGKILL');
          await side.exited;
          owned.procs.delete(side);
        }
      }
      const next = spawnLogged(apiserverCommand(securePort), apiserverLog);
      procs[1] = next;
      controlPlane.pids.apiserver = next.pid;
      if (watchdog) {
        watchdog.kill('SIGKILL');
        watchdog = spawnWatchdog([etcd.pid, next.pid], ownsDir ? stateDir : '');
      }
      await waitReady({
        request,
        timeoutMs: options.readyTimeoutMs ?? 50_000,
        exited: [{ name: 'kube-apiserver', proc: next, log: apiserverLog }],
        apiserverLog,
      });
    },
  });

  return controlPlane;
}

// ---------------------------------------------------------------------------------------------------
// Restart

export interface RestartApiServerOptions {
  /**
   * Runs while the control plane's own apiserver is down, against a second apiserver on the same etcd
   * at another port: changes made here happen while clients of {@link ControlPlane.server} cannot be
   * connected, which is what "no event lost across an outage" tests need.
   */
  whileDown?: (side: Pick<ControlPlane, 'server' | 'request'>) => Promise<void>;
}

interface Internals {
  etcdUrl: string;
  restart: (options: RestartApiServerOptions) => Promise<void>;
}
const internals = new WeakMap<StartedControlPlane, Internals>();

function internalsOf(cp: StartedControlPlane, caller: string): Internals {
  const found = internals.get(cp);
  if (!found) throw new Error(`${caller}: not a control plane started by startControlPlane()`);
  return found;
}

/**
 * Kills the kube-apiserver (SIGKILL, so watches break without a goodbye) and starts a new one on the same
 * port and etcd; resolves once it is ready again. Only for a dedicated {@link startControlPlane}
 * instance: other test files share {@link sharedControlPlane}.
 */
export async function restartApiServer(
  cp: StartedControlPlane,
  options: RestartApiServerOptions = {},
): Promise<void> {
  await internalsOf(cp, 'restartApiServer').restart(options);
}

/**
 * Compacts etcd's history up to its current revision and returns that revision. A running apiserver
 * still answers old resourceVersions from its watch cache; after {@link restartApiServer} they are a
 * real `410 Gone` ("too old resource version").
 */
export async function compactEtcd(cp: StartedControlPlane): Promise<number> {
  const { etcdUrl } = internalsOf(cp, 'compactEtcd');
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`etcd ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { header?: { revision?: string } };
  };
  // Any range read returns the current revision in its header; etcd's JSON gateway wants base64 keys.
  const revision = Number((await post('/v3/kv/range', { key: btoa('/') })).header?.revision);
  if (!Number.isFinite(revision)) throw new Error('etcd: no revision in the range response');
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}

async function waitReady(args: {
  request: ControlPlane['request'];
  timeoutMs: number;
  exited: { name: string; proc: Subprocess; log: string }[];
  apiserverLog: string;
}): Promise<void> {
  const deadline = performance.now() + args.timeoutMs;
  let last = 'no answer yet';
  while (performance.now() < deadline) {
    for (const { name, proc, log } of args.exited) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const logTail = tail(log);
        const message = `${name} exited (${proc.exitCode ?? proc.signalCode}) before the API server became ready:\n${logTail}`;
        throw /address already in use/i.test(logTail) ? new PortInUseError(message) : new Error(message);
      }
    }
    try {
      const response = await Promise.race([
        args.request('/readyz'),
        Bun.sleep(2_000).then(() => {
          throw new Error('/readyz did not answer within 2 s');
        }),
      ]);
      const text = await response.text();
      if (response.ok) return;
      last = `${response.status}: ${text.slice(-300)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await Bun.sleep(100);
  }
  throw new Error(
    `kube-apiserver not ready after ${args.timeoutMs} ms (last /readyz: ${last}); log tail:\n${tail(args.apiserverLog)}`,
  );
}

function kubeconfigYaml(server: string, ca: string, cert: string, key: string): string {
  const b64 = (pem: string) => Buffer.from(pem).toString('base64');
  // JSON is YAML, and it avoids a yaml dependency in the harness.
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tsgw-test', cluster: { server, 'certificate-authority-data': b64(ca) } }],
      users: [{ name: 'admin', user: { 'client-certificate-data': b64(cert), 'client-key-data': b64(key) } }],
      contexts: [
        { name: 'tsgw-test', context: { cluster: 'tsgw-test', user: 'admin', namespace: 'default' } },
      ],
      'current-context': 'tsgw-test',
    },
    null,
    2,
  )}\n`;
}

// ---------------------------------------------------------------------------------------------------
// Shared instance

let shared: Promise<ControlPlane> | undefined;

/** Started once per test process (bun test runs all files in one process), stopped at process exit. */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= startControlPlane().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

// ---------------------------------------------------------------------------------------------------
// CRDs

interface CrdLike {
  metadata?: { name?: string };
  spec?: { group?: string; names?: { plural?: string }; versions?: { name?: string; served?: boolean }[] };
}

/** Server-side applies CRD objects (fieldManager tailscale-gateway-tests) and waits until each is Established. */
export async function installCrds(cp: ControlPlane, crds: object[], timeoutMs = 30_000): Promise<void> {
  const names: { name: string; resourcePath?: string }[] = [];
  for (const crd of crds as CrdLike[]) {
    const name = crd.metadata?.name;
    if (!name) throw new Error('installCrds: a CRD without metadata.name');
    const response = await cp.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`, {
      method: 'PATCH',
      body: { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', ...crd },
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
    });
    if (!response.ok)
      throw new Error(`installCrds: applying ${name}: ${response.status} ${await response.text()}`);
    const version = crd.spec?.versions?.find((v) => v.served !== false)?.name;
    const group = crd.spec?.group;
    const plural = crd.spec?.names?.plural;
    names.push({
      name,
      ...(version && group && plural ? { resourcePath: `/apis/${group}/${version}/${plural}` } : {}),
    });
  }
  const deadline = performance.now() + timeoutMs;
  for (const { name, resourcePath } of names) {
    let state = 'not established';
    for (;;) {
      const response = await cp.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      if (response.ok) {
        const crd = (await response.json()) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        const established = crd.status?.conditions?.some(
          (c) => c.type === 'Established' && c.status === 'True',
        );
        // Established can precede the REST handler being routable by a moment; a list proves it is.
        if (established) {
          if (!resourcePath) break;
          const list = await cp.request(resourcePath, { query: { limit: '1' } });
          await list.body?.cancel();
          if (list.ok) break;
          state = `established, but ${resourcePath} answered ${list.status}`;
        }
      } else {
        state = `GET answered ${response.status}`;
        await response.body?.cancel();
      }
      if (performance.now() > deadline)
        throw new Error(`installCrds: ${name} ${state} after ${timeoutMs} ms`);
      await Bun.sleep(50);
    }
  }
}
