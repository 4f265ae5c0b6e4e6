/**
 * The compiled binary, end to end over real sockets: the CLI contract and the HTTP surface.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import pkg from '../../package.json' with { type: 'json' };
import {
  compiledBinary,
  REPO_ROOT,
  type RunningBinary,
  runBinaryToEnd,
  startBinary,
} from '../harness/support/binary.ts';

beforeAll(async () => {
  await compiledBinary();
}, 120_000);

describe('CLI of the compiled binary', () => {
  test('version prints the package version', async () => {
    const { stdout, code } = await runBinaryToEnd(['version']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^tailscale-gateway \d+\.\d+\.\d+/);
  });

  test('version names the commit the binary was built from and the build date', async () => {
    const { stdout, code } = await runBinaryToEnd(['version']);
    expect(code).toBe(0);
    const match =
      /^tailscale-gateway (\S+) \(commit ([0-9a-f]{12})(\+dirty)?, built (\S+), bun (\S+)\)\n$/.exec(stdout);
    expect(match).not.toBeNull();
    const [, version, commit, , built] = match!;
    expect(version).toBe(pkg.version);
    // The binary may predate HEAD (it is rebuilt only when src/ or gen/ changed): the commit must exist.
    const exists = Bun.spawnSync(['git', 'cat-file', '-e', `${commit}^{commit}`], { cwd: REPO_ROOT });
    expect(exists.exitCode).toBe(0);
    expect(new Date(built!).toISOString().replace('.000Z', 'Z')).toBe(built!);
    expect((await runBinaryToEnd(['--version'])).stdout).toBe(stdout);
  });

  test('crds prints five CustomResourceDefinitions', async () => {
    const { stdout, code } = await runBinaryToEnd(['crds']);
    expect(code).toBe(0);
    expect(stdout.match(/^kind: CustomResourceDefinition$/gm)).toHaveLength(5);
  });

  test('an unknown flag exits 2 naming it', async () => {
    const { stderr, code } = await runBinaryToEnd([
      'standalone',
      '--resources',
      'examples/standalone',
      '--nope',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown flag --nope');
  });

  test('a bad value exits 2 naming the flag and reason', async () => {
    const { stderr, code } = await runBinaryToEnd(['standalone', '--resources', 'examples/standalone'], {
      TSGW_HTTP_ADDR: 'not-an-address',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('--http-addr (from TSGW_HTTP_ADDR)');
  });

  test('a missing resources directory exits 2 naming it', async () => {
    const { stderr, code } = await runBinaryToEnd(['standalone', '--resources', '/nonexistent/dir']);
    expect(code).toBe(2);
    expect(stderr).toContain('/nonexistent/dir');
  });

  test('a negative value after a space is checked as a value, not called missing', async () => {
    const { stderr, code } = await runBinaryToEnd([
      'standalone',
      '--resources',
      'examples/standalone',
      '--shutdown-timeout',
      '-3',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain(
      'invalid value for --shutdown-timeout: expected seconds above 0 and at most 3600',
    );
  });

  test('a certificate file that is not PEM exits 2 naming the flag and the file', async () => {
    const { stderr, code } = await runBinaryToEnd([
      'standalone',
      '--resources',
      'examples/standalone',
      '--http-addr',
      '127.0.0.1:0',
      '--grpc-addr',
      '127.0.0.1:0',
      '--grpc-tls-cert',
      'README.md',
      '--grpc-tls-key',
      'README.md',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('--grpc-tls-cert README.md: no PEM certificate in the file');
    expect(stderr).not.toContain('OPENSSL');
  });

  test.each(['--http-addr', '--grpc-addr'])('a port in use for %s exits 2 naming the flag', async (flag) => {
    const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    try {
      const addresses: Record<string, string> = {
        '--http-addr': '127.0.0.1:0',
        '--grpc-addr': '127.0.0.1:0',
      };
      addresses[flag] = `127.0.0.1:${taken.port}`;
      const { stderr, code } = await runBinaryToEnd([
        'standalone',
        '--resources',
        'examples/standalone',
        ...Object.entries(addresses).flat(),
      ]);
      expect(code).toBe(2);
      expect(stderr).toContain(`cannot listen on 127.0.0.1:${taken.port} (${flag})`);
    } finally {
      taken.stop(true);
    }
  });

  test('every command has --help', async () => {
    for (const command of ['run', 'standalone', 'crds', 'version']) {
      const { stdout, code } = await runBinaryToEnd([command, '--help']);
      expect(code).toBe(0);
      expect(stdout).toContain(`Usage: tailscale-gateway ${command}`);
    }
  });
});

describe('standalone mode over a real socket', () => {
  let running: RunningBinary;

  beforeAll(async () => {
    running = await startBinary([
      'standalone',
      '--resources',
      'examples/standalone',
      '--http-addr',
      '127.0.0.1:0',
      '--grpc-addr',
      '127.0.0.1:0',
    ]);
    await running.waitForLog('resources loaded');
  });

  afterAll(() => {
    running?.process.kill('SIGKILL');
  });

  test('/healthz answers 200', async () => {
    const res = await fetch(`${running.httpUrl}/healthz`);
    expect(res.status).toBe(200);
  });

  test('/readyz is 200 once the resources are loaded, naming the component', async () => {
    const res = await fetch(`${running.httpUrl}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { components: { name: string; ready: boolean }[] };
    expect(body.components).toContainEqual(expect.objectContaining({ name: 'resources', ready: true }));
  });

  test('/metrics serves Prometheus text with process metrics and build info', async () => {
    const res = await fetch(`${running.httpUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toMatch(/tsgw_build_info\{version="\d+\.\d+\.\d+"\} 1/);
  });

  test('the loaded resources are logged with their kinds', async () => {
    const record = await running.waitForLog('resources loaded');
    expect(record.resources).toBeGreaterThan(0);
    expect(record.problems).toBe(0);
  });

  test('SIGTERM: readiness drops, the process shuts down cleanly and exits 0', async () => {
    running.process.kill('SIGTERM');
    expect(await running.process.exited).toBe(0);
    expect(running.lines.join('\n')).toContain('shutdown complete');
  });
});
