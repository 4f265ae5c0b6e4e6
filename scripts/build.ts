/**
 * `npm run build`: compiles src/main.ts into the one executable, dist/tailscale-gateway, with the commit
 * and the build date baked in (`TSGW_BUILD`, read by src/version.ts) so `tailscale-gateway version` says
 * exactly which source a binary came from.
 *
 * The commit is `git rev-parse` of the checkout, `+dirty` when tracked files differ from it; without a
 * git checkout (a Docker build context has no .git) it is `$TSGW_BUILD_COMMIT`, else `unknown`. The date
 * is now, or `$SOURCE_DATE_EPOCH` (seconds) for a reproducible build.
 *
 * @module
 */
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..');

function git(...args: string[]): string | undefined {
  try {
    const result = Bun.spawnSync(['git', ...args], { cwd: ROOT, stdout: 'pipe', stderr: 'ignore' });
    return result.exitCode === 0 ? result.stdout.toString().trim() : undefined;
  } catch {
    return undefined; // no git installed
  }
}

function commit(): string {
  const head = git('rev-parse', '--short=12', 'HEAD');
  if (head === undefined) return process.env.TSGW_BUILD_COMMIT?.trim() || 'unknown';
  const dirty = git('status', '--porcelain', '--untracked-files=no');
  return dirty === undefined || dirty === '' ? head : `${head}+dirty`;
}

function buildDate(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const date = epoch !== undefined && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date();
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const build = { commit: commit(), date: buildDate() };
const child = Bun.spawn(
  [
    process.execPath,
    'build',
    'src/main.ts',
    '--compile',
    '--minify',
    '--bytecode',
    '--format=esm',
    '--no-compile-autoload-dotenv',
    '--no-compile-autoload-bunfig',
    '--define',
    `TSGW_BUILD=${JSON.stringify(build)}`,
    '--outfile',
    'dist/tailscale-gateway',
  ],
  { cwd: ROOT, stdout: 'inherit', stderr: 'inherit' },
);
const code = await child.exited;
if (code === 0) console.log(`build: dist/tailscale-gateway, commit ${build.commit}, built ${build.date}`);
process.exit(code);
