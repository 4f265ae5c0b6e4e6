/**
 * Everything a command writes reaches a pipe whole, however slowly the other end reads: the output of
 * `crds` (about 100 KiB, more than a pipe holds) must not be cut when the process exits before the
 * reader has drained it. The reader is a shell, so nothing in this process reads the pipe early; it sleeps
 * before reading, as `kubectl apply -f -` does while it starts up. Runs the compiled binary and the
 * source, since each buffers stdout its own way.
 */
import { beforeAll, describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compiledBinary, REPO_ROOT } from '../harness/support/binary.ts';

const RUNS = 8;

/** The five CRD files, each as `crds` prints it: a `---` line and the file. */
const expectedCrds = readdirSync(join(REPO_ROOT, 'crds'))
  .filter((file) => file.endsWith('.yaml'))
  .map((file) => `---\n${readFileSync(join(REPO_ROOT, 'crds', file), 'utf8')}`)
  .sort();

/** Runs `command` with its stdout into a reader that sleeps first; returns what the reader got. */
async function throughSlowPipe(command: string[]): Promise<{ stdout: string; code: number }> {
  const quoted = command.map((part) => `'${part.replaceAll("'", `'\\''`)}'`).join(' ');
  const shell = Bun.spawn(['bash', '-o', 'pipefail', '-c', `${quoted} | (sleep 0.5; cat)`], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const [stdout, code] = await Promise.all([new Response(shell.stdout).text(), shell.exited]);
  return { stdout, code };
}

/** Splits `crds` output into its documents, each with its `---` line, in file order. */
const documents = (yaml: string): string[] =>
  yaml
    .split(/^(?=---\n)/m)
    .filter((doc) => doc !== '')
    .sort();

const commands: [string, () => Promise<string[]>][] = [
  ['the compiled binary', async () => [await compiledBinary()]],
  ['the source (bun src/main.ts)', async () => [process.execPath, join(REPO_ROOT, 'src', 'main.ts')]],
];

beforeAll(async () => {
  await compiledBinary();
}, 120_000);

describe.each(commands)('%s through a pipe read slowly', (_name, program) => {
  test(`crds arrives whole, ${RUNS} runs out of ${RUNS}`, async () => {
    const base = await program();
    const runs = await Promise.all(Array.from({ length: RUNS }, () => throughSlowPipe([...base, 'crds'])));
    for (const { stdout, code } of runs) {
      expect(code).toBe(0);
      expect(stdout.length).toBe(expectedCrds.join('').length);
      expect(documents(stdout)).toEqual(expectedCrds);
    }
  }, 120_000);

  test('help and version arrive whole', async () => {
    const base = await program();
    const help = await throughSlowPipe([...base, 'standalone', '--help']);
    expect(help.stdout).toContain('Usage: tailscale-gateway standalone');
    expect(help.stdout).toEndWith('  -h, --help  Show this help.\n');
    const version = await throughSlowPipe([...base, 'version']);
    expect(version.stdout).toStartWith('tailscale-gateway ');
    expect(version.stdout).toEndWith('\n');
  });
});
