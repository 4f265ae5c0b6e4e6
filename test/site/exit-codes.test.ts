/**
 * The exit codes the docs promise, checked against the compiled binary: every row of the
 * troubleshooting page's "The binary does not start" table is reproduced here, and the binary must exit
 * with the status the row names and print the message it quotes. A row without a reproduction, or a
 * reproduction without a row, fails too, so the table and the binary cannot drift apart.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, runBinaryToEnd, startBinary } from '../harness/support/binary.ts';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');

/** Rows of the table under `## The binary does not start`: the status and the quoted message, if any. */
function documentedRows(): { status: number; message: string; row: string }[] {
  const page = read('site/troubleshooting.md');
  const section = page.split(/^## /m).find((chunk) => chunk.startsWith('The binary does not start\n'));
  if (!section) throw new Error('site/troubleshooting.md has no section "The binary does not start"');
  const rows: { status: number; message: string; row: string }[] = [];
  for (const line of section.split('\n')) {
    const match = /^\| Exit status (\d+)(?: and `([^`]+)`)?/.exec(line);
    if (match) rows.push({ status: Number(match[1]), message: match[2] ?? '', row: line });
  }
  return rows;
}

/** Runs the binary to its end with only the environment given; the output as one text. */
async function runToEnd(args: string[], env: Record<string, string> = {}) {
  const { stdout, stderr, code } = await runBinaryToEnd(args, env);
  return { code, output: `${stderr}\n${stdout}` };
}

/** A loopback port something else already listens on. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return { port: address.port, server };
}

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups) cleanup();
});

const STANDALONE = ['standalone', '--resources', 'examples/standalone', '--log-format', 'json'];
const LOOPBACK = ['--grpc-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0'];

/**
 * How to reproduce each documented row, keyed by the message the row quotes (`…` stands for the rest
 * of the line); the row with no message is keyed by ''.
 */
const REPRODUCTIONS: Record<string, () => Promise<{ code: number; output: string }>> = {
  'invalid value for --grpc-addr: …': () => runToEnd([...STANDALONE, '--grpc-addr', 'localhost']),
  'unknown flag --…': () => runToEnd([...STANDALONE, '--kubeconfig', 'x']),
  'missing required flag --resources': () => runToEnd(['standalone', ...LOOPBACK]),
  'no Kubernetes configuration found': () => {
    const home = mkdtempSync(join(tmpdir(), 'tsgw-home-'));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    return runToEnd(['run', ...LOOPBACK], { HOME: home });
  },
  'cannot listen on …': async () => {
    const { port, server } = await occupiedPort();
    try {
      const grpc = await runToEnd([
        ...STANDALONE,
        '--grpc-addr',
        `127.0.0.1:${port}`,
        '--http-addr',
        '127.0.0.1:0',
      ]);
      const http = await runToEnd([
        ...STANDALONE,
        '--grpc-addr',
        '127.0.0.1:0',
        '--http-addr',
        `127.0.0.1:${port}`,
      ]);
      // Both listeners fail the same way; report the first that does not.
      expect(http.code).toBe(grpc.code);
      expect(http.output).toContain(`cannot listen on 127.0.0.1:${port}`);
      return grpc;
    } finally {
      server.close();
    }
  },
  '--grpc-tls-cert …: no PEM certificate in the file': () =>
    runToEnd([...STANDALONE, ...LOOPBACK, '--grpc-tls-cert', 'README.md', '--grpc-tls-key', 'README.md']),
  // A second signal during shutdown, the one runtime failure a test can cause on purpose. The other
  // signal, so that it is not read as the echo of the first (npm forwards the terminal's Ctrl-C).
  '': async () => {
    const running = await startBinary([
      ...STANDALONE,
      ...LOOPBACK,
      '--shutdown-delay',
      '60',
      '--shutdown-timeout',
      '120',
    ]);
    running.process.kill('SIGTERM');
    await running.waitForLog('waiting before stopping work');
    running.process.kill('SIGINT');
    const code = await running.process.exited;
    return { code, output: running.lines.join('\n') };
  },
};

describe('exit codes on the troubleshooting page', () => {
  const rows = documentedRows();

  test('the table has a row per reproduction and a reproduction per row', () => {
    expect(rows.map((row) => row.message).sort()).toEqual(Object.keys(REPRODUCTIONS).sort());
    // A port in use is the `cannot listen on` row's (exit 2); no other row may claim it.
    expect(rows.filter((row) => /in use/.test(row.row) && !row.message.startsWith('cannot listen'))).toEqual(
      [],
    );
  });

  test.each(rows.map((row) => [row.message || '(no message)', row] as const))(
    'exit status and message as documented: %s',
    async (_, row) => {
      const reproduce = REPRODUCTIONS[row.message];
      expect(reproduce, `no reproduction for: ${row.row}`).toBeDefined();
      const { code, output } = await reproduce!();
      expect(code, `${row.row}\n${output}`).toBe(row.status);
      expect(output).toContain(row.message.split('…')[0]!.trim());
    },
    120_000,
  );

  test('the CLI page puts a listen address in use under exit code 2, as the binary does', () => {
    const sentence = /Exit codes:[^\n]*(?:\n[^\n]+)*/.exec(read('site/cli.md'))?.[0] ?? '';
    const two = sentence.slice(sentence.indexOf('`2`'));
    expect(sentence).toContain('`0`');
    expect(two).toContain('already in use');
    expect(sentence.slice(sentence.indexOf('`1`'), sentence.indexOf('`2`'))).not.toContain('in use');
  });
});
