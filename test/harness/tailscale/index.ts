/**
 * Programs built against tailscale.com at the proxy image's version (build-tailscale.sh), for tests:
 * `configCheck` runs tailscale's own parsers over the files the operator writes for a proxy.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const here = import.meta.dir;

let buildPromise: Promise<string> | undefined;

/**
 * The directory of the cached build (`build-tailscale.sh --cached-only`, instant when cached). Tests do
 * not build: a missing or stale binary fails with the script's hint; `bash test/prepare.sh` builds it.
 */
export function tailscaleBuildDir(): Promise<string> {
  buildPromise ??= (async () => {
    const proc = Bun.spawn(['bash', join(here, 'build-tailscale.sh'), '--cached-only'], {
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (code !== 0) {
      buildPromise = undefined;
      throw new Error(
        `build-tailscale.sh --cached-only (exit ${code}): ${err.trim()}${out.trim().slice(-500)}`,
      );
    }
    return out.trim().split('\n').at(-1) ?? '';
  })();
  return buildPromise;
}

export interface ConfigCheckResult {
  /** 0 every file accepted, 1 a file rejected, 2 a file of no known kind. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Writes `files` (relative path → content; the base name is the Secret key, which tells the kind) into
 * a fresh directory and runs config-check over all of them.
 */
export async function configCheck(files: Record<string, string>): Promise<ConfigCheckResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tsgw-config-check-'));
  try {
    const paths = Object.entries(files).map(([path, content]) => {
      const full = join(dir, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
      return full;
    });
    const { code, stdout, stderr } = await runConfigCheck(paths, dir);
    return { code, stdout, stderr: stderr.replaceAll(`${dir}/`, '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What config-check was built against: the tailscale.com version and its capability version. */
export async function configCheckVersion(): Promise<{ tailscale: string; capabilityVersion: number }> {
  const proc = Bun.spawn([join(await tailscaleBuildDir(), 'config-check'), '-version'], { stdout: 'pipe' });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`config-check -version exited ${code}`);
  return JSON.parse(out) as { tailscale: string; capabilityVersion: number };
}

/**
 * Whether tailscaled keeps each `TS_INTERNAL_APP` value as its `Hostinfo.App` (`config-check -app`:
 * tailscale's own `envknob.App`, which drops values off its allow-list without a word).
 */
export function appCheck(values: readonly string[]): Promise<ConfigCheckResult> {
  return runConfigCheck(['-app', ...values]);
}

/** config-check with `args`, its output collected. */
async function runConfigCheck(args: readonly string[], cwd?: string): Promise<ConfigCheckResult> {
  const proc = Bun.spawn([join(await tailscaleBuildDir(), 'config-check'), ...args], {
    ...(cwd ? { cwd } : {}),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
