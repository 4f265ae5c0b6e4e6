/**
 * The compiled binary under test: `dist/tailscale-gateway`, built on demand so `npm test` works on a
 * fresh clone, a helper that starts it and waits for its HTTP surface, and one that runs it (or any
 * program) to its end and collects what it printed.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dir, '..', '..', '..');
export const BINARY = join(REPO_ROOT, 'dist', 'tailscale-gateway');

export interface FinishedRun {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs `argv` to its end (from the repository root unless told) and returns what it printed and its exit status. */
export async function runToEnd(
  argv: string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<FinishedRun> {
  const child = Bun.spawn(argv, {
    cwd: options.cwd ?? REPO_ROOT,
    ...(options.env ? { env: options.env } : {}),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { stdout, stderr, code };
}

/** The compiled binary run to its end with only PATH and `env` in its environment. */
export async function runBinaryToEnd(args: string[], env: Record<string, string> = {}): Promise<FinishedRun> {
  return runToEnd([await compiledBinary(), ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
}

let building: Promise<string> | undefined;

/** Path of the compiled binary; runs `npm run build` once if it is missing. */
export function compiledBinary(): Promise<string> {
  building ??= (async () => {
    if (existsSync(BINARY) && !sourcesNewerThan(statSync(BINARY).mtimeMs)) return BINARY;
    const build = Bun.spawn(['npm', 'run', 'build'], { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe' });
    if ((await build.exited) !== 0) {
      throw new Error(`npm run build failed:\n${await new Response(build.stderr).text()}`);
    }
    return BINARY;
  })();
  return building;
}

export interface RunningBinary {
  process: Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Base URL of the HTTP surface, read from the binary's own log line. */
  httpUrl: string;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolves with the first log record whose `msg` matches. */
  waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  /**
   * Signals what was started: a `launch` command's whole process group, because `npm start` forks the
   * binary and killing npm alone left it running after the test.
   */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts the binary with `args` and resolves once it logs where its HTTP surface listens. `launch`
 * runs another command instead (`npm start` in a directory of the caller's), read the same way.
 */
export async function startBinary(
  args: string[],
  env: Record<string, string> = {},
  launch?: { command: string[]; cwd: string },
): Promise<RunningBinary> {
  const argv = launch ? launch.command : [await compiledBinary(), ...args];
  const child = Bun.spawn(argv, {
    cwd: launch?.cwd ?? REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: Boolean(launch),
  });
  const kill = (signal: NodeJS.Signals = 'SIGKILL') => {
    try {
      if (launch) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // already gone
    }
  };
  const lines: string[] = [];
  const waiters: { match: string | RegExp; resolve: (r: Record<string, unknown>) => void }[] = [];
  const records: Record<string, unknown>[] = [];
  const matches = (record: Record<string, unknown>, match: string | RegExp) =>
    typeof match === 'string' ? record.msg === match : match.test(String(record.msg));
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        lines.push(line);
        try {
          const record = JSON.parse(line) as Record<string, unknown>;
          records.push(record);
          for (const waiter of waiters.filter((w) => matches(record, w.match))) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(record);
          }
        } catch {
          // not JSON (text format); kept in `lines`
        }
        newline = buffer.indexOf('\n');
      }
    }
  })();
  const waitForLog = (match: string | RegExp, timeoutMs = 15_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = records.find((r) => matches(r, match));
      if (found) return resolve(found);
      const timer = setTimeout(
        () => reject(new Error(`no log line matching ${match} within ${timeoutMs} ms:\n${lines.join('\n')}`)),
        timeoutMs,
      );
      waiters.push({
        match,
        resolve: (record) => {
          clearTimeout(timer);
          resolve(record);
        },
      });
    });
  const listening = await Promise.race([
    waitForLog(/HTTP surface listening/),
    child.exited.then(async (code) => {
      throw new Error(
        `binary exited with ${code} before listening:\n${await new Response(child.stderr).text()}`,
      );
    }),
  ]);
  return { process: child, httpUrl: String(listening.url), lines, waitForLog, kill };
}

/**
 * True when a file under src/ or gen/, the build script or package.json (the version) changed after the
 * binary was built, so tests never run a stale one.
 */
function sourcesNewerThan(mtimeMs: number): boolean {
  for (const file of ['package.json', 'scripts/build.ts']) {
    const path = join(REPO_ROOT, file);
    if (existsSync(path) && statSync(path).mtimeMs > mtimeMs) return true;
  }
  for (const dir of ['src', 'gen']) {
    const root = join(REPO_ROOT, dir);
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && statSync(join(entry.parentPath, entry.name)).mtimeMs > mtimeMs) return true;
    }
  }
  return false;
}

export interface StartOperatorOptions {
  /** The API server to run against (its admin kubeconfig). */
  cp: { kubeconfigPath: string };
  /** `--namespace`: the operator's namespace (Lease, proxies). */
  namespace: string;
  /** `--tailscale-api-url`; default an address nothing listens on, for tests that need no Tailscale API. */
  tailscaleApiUrl?: string;
  /** `--leader-election`; default false (one operator per test unless a test says otherwise). */
  leaderElection?: boolean;
  /** More flags, e.g. `['--operator-id', 'a']`. */
  args?: string[];
  /** More environment, e.g. `{ POD_NAME: 'operator-a' }`. */
  env?: Record<string, string>;
}

/**
 * The compiled binary's `run` against a test API server on loopback ports (read back from its logs),
 * resolved once its extension server listens.
 */
export async function startOperator(options: StartOperatorOptions): Promise<RunningBinary> {
  const running = await startBinary(
    [
      'run',
      '--http-addr',
      '127.0.0.1:0',
      '--grpc-addr',
      '127.0.0.1:0',
      '--namespace',
      options.namespace,
      '--leader-election',
      String(options.leaderElection ?? false),
      '--tailscale-api-url',
      options.tailscaleApiUrl ?? 'http://127.0.0.1:9',
      ...(options.args ?? []),
    ],
    { KUBECONFIG: options.cp.kubeconfigPath, ...options.env },
  );
  await running.waitForLog(/extension server listening/, 30_000);
  return running;
}
