/**
 * The real Envoy Gateway (EG) in its own standalone mode — file provider, Host infrastructure, no
 * Kubernetes — run the way site/envoy-gateway.md ("Standalone") tells a person to: `envoy-gateway
 * certgen --local`, then `envoy-gateway server --config-path examples/envoy-gateway/standalone.yaml`
 * from a working directory that holds the example files and the directory tailscale-gateway writes.
 *
 * What EG v1.9.1 needs for that, found in its source:
 * - Host mode keeps its files under XDG-style homes derived from the user's home directory
 *   (internal/infrastructure/host/paths.go): certificates in `~/.config/envoy-gateway/certs/<component>`
 *   (what `certgen --local` writes and the xDS server reads), Envoy binaries in
 *   `~/.local/share/envoy-gateway/envoy-versions/<version>/bin/envoy`. Its static (cgo-less) build
 *   takes the home directory from /etc/passwd when it can and from `$HOME` (with `$USER`) otherwise.
 *   So EG runs chrooted (`unshare --root`, as in index.ts) in a temp dir with no /etc/passwd and
 *   `HOME=/home`: everything it writes stays in that dir, and the documented commands run unchanged.
 * - When a Gateway appears, the Host infrastructure runs Envoy through func-e, which downloads the
 *   requested Envoy unless `envoy-versions/<version>/bin/envoy` exists (func-e
 *   internal/envoy/install.go). The version must be pinned (the example's EnvoyProxy): EG v1.9.1
 *   cannot parse it from its default image reference, which carries a digest, and then func-e looks
 *   up the latest release online. There is no network here, and these tests read EG's xDS, not an
 *   Envoy: a stand-in `envoy` (a static Go program that waits for a signal) is put at the pinned
 *   version's path. func-e starts it with Pdeathsig SIGKILL, so it dies with EG.
 * - Fixed ports, all interfaces unless noted: 18000 (xDS), 8081 (the file provider's health probes),
 *   18002 (wasm cache), 19000 (admin, loopback) and 19001 (EG's metrics) by default; not 8080, so
 *   tailscale-gateway's default HTTP address does not collide. One EG per machine: callers hold
 *   `flock /tmp/tsgw-eg.lock`.
 * - xDS is mTLS with the `envoy` certificates certgen wrote (xds-client.ts).
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
import { dirname, join } from 'node:path';
import type { Subprocess } from 'bun';
import { spawnWatchdog } from '../support/processes.ts';
import { type EnvoyGatewayBuild, envoyGatewayBinary } from './index.ts';
import { assertPortsFree, captureLines, errorLinesOf, waitForReady } from './process.ts';
import { watchXds, type XdsWatch } from './xds-client.ts';

/** Ports EG binds in standalone mode with the example configuration. */
export const EG_STANDALONE_PORTS = {
  xds: 18000,
  health: 8081,
  wasm: 18002,
  admin: 19000,
  metrics: 19001,
} as const;

const STAND_IN_SOURCE = `// A stand-in for Envoy: Envoy Gateway's Host infrastructure starts it, and it waits to be stopped.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
`;

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

/** The stand-in Envoy, built once (a static binary, so it runs in the empty chroot) beside EG's build. */
async function standInEnvoy(build: EnvoyGatewayBuild): Promise<string> {
  const dir = join(dirname(build.dir), 'stand-in-envoy');
  const binary = join(dir, 'envoy');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.go'), STAND_IN_SOURCE);
  await run(['go', 'build', '-trimpath', '-o', `${binary}.tmp`, 'main.go'], {
    cwd: dir,
    env: { CGO_ENABLED: '0', GO111MODULE: 'off' },
  });
  await run(['mv', `${binary}.tmp`, binary]);
  return binary;
}

export interface StandaloneEnvoyGatewayOptions {
  /**
   * The chroot, created by the caller: `<root>/work` is EG's working directory (the repository root of
   * the documented commands), holding the config at `configPath` and the resource paths it names.
   */
  root: string;
  /** Relative to `<root>/work`, e.g. `examples/envoy-gateway/standalone.yaml`. */
  configPath: string;
  /** The Envoy version the resources pin (EnvoyProxy `spec.provider.host.envoyVersion`): the stand-in's place. */
  envoyVersion: string;
  /** How long to wait for EG's readiness probe; default 45 s. */
  readyTimeoutMs?: number;
}

export interface RunningStandaloneEnvoyGateway {
  build: EnvoyGatewayBuild;
  process: Subprocess;
  /** Every log line so far (stdout and stderr). */
  lines: string[];
  /** Log lines at level error. */
  errorLines(): string[];
  /** Opens an xDS stream as a proxy of Gateway `<namespace>/<name>` would. */
  watchXds(gateway: { namespace: string; name: string }): Promise<XdsWatch>;
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
 * Envoy's stdin, and a user namespace may not create device nodes); the bind goes with the namespace.
 */
const CHROOT_SCRIPT = `set -e
root=$1; shift
mkdir -p "$root/dev"
: > "$root/dev/null"
mount --bind /dev/null "$root/dev/null"
exec env -i PATH=/ HOME=/home USER=root TMPDIR=/tmp "$UNSHARE" --root="$root" --wd=/work "$@"`;

function chrooted(root: string): string[] {
  const unshare = Bun.which('unshare');
  if (!unshare) throw new Error('unshare (util-linux) is needed to run Envoy Gateway chrooted');
  return [
    unshare,
    ...(process.getuid?.() === 0 ? [] : ['--map-root-user']),
    '--mount',
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

/**
 * `certgen --local` then `server --config-path <configPath>`, chrooted in `root`. Resolves once EG's
 * file provider is ready and its xDS server started.
 */
export async function startStandaloneEnvoyGateway(
  options: StandaloneEnvoyGatewayOptions,
): Promise<RunningStandaloneEnvoyGateway> {
  const { root } = options;
  const build = await envoyGatewayBinary();
  await assertPortsFree(EG_STANDALONE_PORTS);

  const standIn = await standInEnvoy(build);
  const { envoyVersion } = options;
  mkdirSync(join(root, 'tmp'), { recursive: true });
  mkdirSync(join(root, 'home'), { recursive: true });
  try {
    linkSync(build.binary, join(root, 'envoy-gateway'));
  } catch {
    copyFileSync(build.binary, join(root, 'envoy-gateway'));
  }
  const envoyDir = join(root, 'home/.local/share/envoy-gateway/envoy-versions', envoyVersion, 'bin');
  mkdirSync(envoyDir, { recursive: true });
  copyFileSync(standIn, join(envoyDir, 'envoy'));

  // The documented one-time step: EG's certificates under ~/.config/envoy-gateway/certs.
  await run([...chrooted(root), '/envoy-gateway', 'certgen', '--local'], { env: CHROOT_ENV });
  const certs = join(root, 'home/.config/envoy-gateway/certs');
  const proxyCerts = {
    ca: readFileSync(join(certs, 'envoy/ca.crt'), 'utf8'),
    cert: readFileSync(join(certs, 'envoy/tls.crt'), 'utf8'),
    key: readFileSync(join(certs, 'envoy/tls.key'), 'utf8'),
  };

  const proc = Bun.spawn(
    [...chrooted(root), '/envoy-gateway', 'server', '--config-path', options.configPath],
    {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: CHROOT_ENV,
    },
  );
  const watchdog = spawnWatchdog([proc.pid], root, 'tsgw-eg-standalone-watchdog');
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
    })();
    return stopped;
  };

  await waitForReady({
    proc,
    lines,
    healthUrl: `http://127.0.0.1:${EG_STANDALONE_PORTS.health}/readyz`,
    timeoutMs: options.readyTimeoutMs ?? 45_000,
    stop,
  });

  return {
    build,
    process: proc,
    lines,
    errorLines: () => errorLinesOf(lines),
    async watchXds(gateway) {
      const watch = await watchXds({
        address: `127.0.0.1:${EG_STANDALONE_PORTS.xds}`,
        ...proxyCerts,
        nodeCluster: `${gateway.namespace}/${gateway.name}`,
      });
      xdsWatches.add(watch);
      return watch;
    },
    stop,
  };
}

/** Removes a root made by makeStandaloneRoot (after stop). */
export function removeStandaloneRoot(root: string): void {
  rmSync(root, { recursive: true, force: true });
}
