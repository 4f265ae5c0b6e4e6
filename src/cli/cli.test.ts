import { describe, expect, test } from 'bun:test';
import { type Command, type CommandContext, EXIT_USAGE, runCli } from './cli.ts';

function harness(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: CommandContext[] = [];
  const command: Command = {
    name: 'serve',
    summary: 'Serve things.',
    settings: ['grpcAddr', 'resources', 'shutdownTimeout'],
    required: ['resources'],
    async run(context) {
      calls.push(context);
      return 0;
    },
  };
  const failing: Command = {
    name: 'explode',
    summary: 'Fails.',
    settings: ['kubeconfig'],
    async run() {
      throw new Error('boom');
    },
  };
  const run = (...argv: string[]) =>
    runCli(argv, { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env }, [command, failing]);
  return { run, out, err, calls };
}

describe('runCli', () => {
  test('dispatches to the command with parsed config', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'dir', '--grpc-addr=127.0.0.1:1')).toBe(0);
    expect(h.calls[0]?.config.resources).toBe('dir');
    expect(h.calls[0]?.config.grpcAddr).toBe('127.0.0.1:1');
  });

  test('rejects an unknown flag by name with exit 2', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '--bogus', 'x')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('unknown flag --bogus');
    expect(h.calls).toHaveLength(0);
  });

  test('rejects a flag of another command', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '--kubeconfig', 'k')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('--kubeconfig');
  });

  test('a missing required flag names it', async () => {
    const h = harness();
    expect(await h.run('serve')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('missing required flag --resources');
  });

  test('a required flag can come from its environment variable', async () => {
    const h = harness({ TSGW_RESOURCES: '/srv' });
    expect(await h.run('serve')).toBe(0);
    expect(h.calls[0]?.config.resources).toBe('/srv');
  });

  test('a bad value exits 2 naming the flag and reason', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '--grpc-addr', 'nope')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toMatch(/--grpc-addr: expected host:port/);
  });

  test('--help on a command lists its flags, variables and defaults', async () => {
    const h = harness();
    expect(await h.run('serve', '--help')).toBe(0);
    const help = h.out.join('');
    expect(help).toContain('--grpc-addr <value>, $TSGW_GRPC_ADDR');
    expect(help).toContain('(default "0.0.0.0:5005")');
    expect(help).toContain('--resources <value>, $TSGW_RESOURCES (required)');
    expect(h.calls).toHaveLength(0);
  });

  test('program help lists the commands; no command is a usage error', async () => {
    const h = harness();
    expect(await h.run()).toBe(EXIT_USAGE);
    expect(h.out.join('')).toContain('serve');
    expect(await h.run('--help')).toBe(0);
  });

  test('an unknown command names itself and the known ones', async () => {
    const h = harness();
    expect(await h.run('frobnicate')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('unknown command "frobnicate"; commands: serve, explode');
  });

  test('positional arguments are rejected', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', 'extra')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('unexpected argument extra');
  });

  test('a command that throws exits 1 with its message', async () => {
    const h = harness();
    expect(await h.run('explode')).toBe(1);
    expect(h.err.join('')).toContain('boom');
  });

  test('a negative value after a space is the value, checked by the schema, not a missing value', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '--shutdown-timeout', '-3')).toBe(EXIT_USAGE);
    const message = h.err.join('');
    expect(message).toContain('invalid value for --shutdown-timeout');
    expect(message).toContain('"-3"');
    expect(message).not.toContain('needs a value');
  });

  test('a flag without its value says so, at the end or before another flag', async () => {
    const atEnd = harness();
    expect(await atEnd.run('serve', '--resources')).toBe(EXIT_USAGE);
    expect(atEnd.err.join('')).toContain('flag --resources needs a value');
    const beforeFlag = harness();
    expect(await beforeFlag.run('serve', '--resources', '--grpc-addr', '127.0.0.1:1')).toBe(EXIT_USAGE);
    expect(beforeFlag.err.join('')).toContain('flag --resources needs a value');
  });

  test('--help with a value says it takes none', async () => {
    const h = harness();
    expect(await h.run('serve', '--help=yes')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('flag --help takes no value');
    expect(h.err.join('')).not.toContain('needs a value');
  });

  test('an unknown short flag is named whole', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '-hx')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('unknown flag -hx');
  });

  test('a flag of another command names that command', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources', 'd', '--kubeconfig=k')).toBe(EXIT_USAGE);
    expect(h.err.join('')).toContain('unknown flag --kubeconfig (a flag of explode)');
  });

  test('--flag=value, --flag value and a value starting with "-" all reach the command', async () => {
    const h = harness();
    expect(await h.run('serve', '--resources=-dir', '--grpc-addr', '127.0.0.1:1')).toBe(0);
    expect(h.calls[0]?.config.resources).toBe('-dir');
    expect(h.calls[0]?.config.grpcAddr).toBe('127.0.0.1:1');
  });
});
