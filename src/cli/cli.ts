/**
 * The command line: subcommands, `--help` on each, unknown flags rejected by name, and configuration
 * parsed once through the config schema. Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { parseConfig } from '../config/parse.ts';
import { type Config, type ConfigKey, describeSetting, flagName } from '../config/schema.ts';
import { OperatorError } from '../errors.ts';

/** What a command can touch of the outside world; injected so tests run the CLI in-process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

export interface CommandContext {
  config: Config;
  io: CliIo;
}

export interface Command {
  name: string;
  summary: string;
  /** Settings this command accepts as flags (and `TSGW_*` variables). */
  settings: readonly ConfigKey[];
  /** Settings that must be given. */
  required?: readonly ConfigKey[];
  /** Resolves with the exit code. Long-running commands resolve when they have shut down. */
  run(context: CommandContext): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const PROGRAM = 'tailscale-gateway';

export async function runCli(
  argv: readonly string[],
  io: CliIo,
  commands: readonly Command[],
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(programHelp(commands));
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version') return runCli(['version', ...rest], io, commands);
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.stderr(`${PROGRAM}: unknown command "${name}"; commands: ${commands.map((c) => c.name).join(', ')}\n`);
    return EXIT_USAGE;
  }

  let values: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
      help: { type: 'boolean', short: 'h' },
    };
    for (const key of command.settings) options[flagName(key).slice(2)] = { type: 'string' };
    ({ values } = parseArgs({ args: [...rest], options, strict: true, allowPositionals: false }));
  } catch (err) {
    io.stderr(
      `${PROGRAM} ${command.name}: ${usageProblem(err)}\nRun '${PROGRAM} ${command.name} --help' for usage.\n`,
    );
    return EXIT_USAGE;
  }
  if (values.help) {
    io.stdout(commandHelp(command));
    return EXIT_OK;
  }

  const flags: Partial<Record<ConfigKey, string>> = {};
  for (const key of command.settings) {
    const value = values[flagName(key).slice(2)];
    if (typeof value === 'string') flags[key] = value;
  }
  let config: Config;
  try {
    config = parseConfig({ flags, env: io.env, keys: command.settings });
    for (const key of command.required ?? []) {
      if (config[key] === undefined) {
        throw new OperatorError('Invalid', `missing required flag ${flagName(key)}`, {
          field: flagName(key),
        });
      }
    }
  } catch (err) {
    io.stderr(`${PROGRAM} ${command.name}: ${OperatorError.from(err).message}\n`);
    return EXIT_USAGE;
  }
  try {
    return await command.run({ config, io });
  } catch (err) {
    // A command that fails before it starts serving (bad resources directory, unreadable kubeconfig)
    // is a usage problem when the input was invalid, and a runtime failure otherwise.
    const error = OperatorError.from(err);
    io.stderr(`${PROGRAM} ${command.name}: ${error.message}\n`);
    return error.code === 'Invalid' ? EXIT_USAGE : EXIT_FAILURE;
  }
}

/** Rewrites node:util's parse errors into one line naming the flag. */
function usageProblem(err: unknown): string {
  const error = err as { code?: string; message?: string };
  const flag = /'(-{1,2}[^'\s]+)/.exec(error.message ?? '')?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']+)'/.exec(error.message ?? '')?.[1] ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `flag ${flag ?? ''} needs a value`.replace('  ', ' ');
    default:
      return error.message ?? String(err);
  }
}

function programHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `${PROGRAM} joins Tailscale tailnets to Envoy Gateway.`,
    '',
    `Usage: ${PROGRAM} <command> [flags]`,
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run '${PROGRAM} <command> --help' for a command's flags.`,
    '',
  ].join('\n');
}

function commandHelp(command: Command): string {
  const lines = [`Usage: ${PROGRAM} ${command.name} [flags]`, '', command.summary, ''];
  if (command.settings.length > 0) {
    lines.push('Flags (each also read from its environment variable):');
    for (const key of command.settings) {
      const setting = describeSetting(key);
      const required = command.required?.includes(key) ? ' (required)' : '';
      const fallback = setting.default === undefined ? '' : ` (default ${JSON.stringify(setting.default)})`;
      lines.push(`  ${setting.flag} <value>, $${setting.env}${required}`);
      lines.push(`      ${setting.description}${fallback}`);
    }
    lines.push('');
  }
  lines.push('  -h, --help  Show this help.', '');
  return lines.join('\n');
}
