/**
 * The command line: subcommands, `--help` on each, unknown flags rejected by name, and configuration
 * parsed once through the config schema. Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
 *
 * @module
 */
import { type ProcessEnvironment, readEnvironment } from '../config/environment.ts';
import { parseConfig } from '../config/parse.ts';
import { type Config, type ConfigKey, describeSetting, envName, flagName } from '../config/schema.ts';
import { OperatorError } from '../errors.ts';

/** What a command can touch of the outside world; injected so tests run the CLI in-process. */
import type { CliIo } from '../lifecycle/process-io.ts';

export type { CliIo };

export interface CommandContext {
  config: Config;
  /** The variables besides `TSGW_*` that the modes read (the Pod's name and namespace, the kube client's). */
  environment: ProcessEnvironment;
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

  let parsed: ParsedFlags;
  try {
    parsed = parseFlags(rest, command, commands);
  } catch (err) {
    io.stderr(
      `${PROGRAM} ${command.name}: ${(err as Error).message}\nRun '${PROGRAM} ${command.name} --help' for usage.\n`,
    );
    return EXIT_USAGE;
  }
  if (parsed.help) {
    io.stdout(commandHelp(command));
    return EXIT_OK;
  }
  const flags = parsed.flags;

  let config: Config;
  try {
    config = parseConfig({ flags, env: io.env, keys: command.settings });
    for (const key of command.required ?? []) {
      if (config[key] === undefined) {
        throw new OperatorError('Invalid', `missing required flag ${flagName(key)} (or $${envName(key)})`, {
          field: flagName(key),
        });
      }
    }
  } catch (err) {
    io.stderr(`${PROGRAM} ${command.name}: ${OperatorError.from(err).message}\n`);
    return EXIT_USAGE;
  }
  try {
    return await command.run({ config, environment: readEnvironment(io.env), io });
  } catch (err) {
    // A command that fails before it starts serving (bad resources directory, unreadable kubeconfig)
    // is a usage problem when the input was invalid, and a runtime failure otherwise.
    const error = OperatorError.from(err);
    io.stderr(`${PROGRAM} ${command.name}: ${error.message}\n`);
    return error.code === 'Invalid' ? EXIT_USAGE : EXIT_FAILURE;
  }
}

interface ParsedFlags {
  help: boolean;
  flags: Partial<Record<ConfigKey, string>>;
}

/**
 * Splits a command's arguments into its flags: `--flag value`, `--flag=value`, `-h`/`--help`; the last
 * of a repeated flag wins. Written out rather than node:util's parseArgs, whose messages contradict the
 * input: it calls `--shutdown-timeout -3` a missing value and `--help=x` a flag needing one. A value may
 * start with one "-" (a negative number) after a space; a token starting with "--" is never taken as a
 * value, so a forgotten value before the next flag is reported as such.
 */
function parseFlags(args: readonly string[], command: Command, commands: readonly Command[]): ParsedFlags {
  const keys = new Map(command.settings.map((key) => [flagName(key), key]));
  const result: ParsedFlags = { help: false, flags: {} };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') {
      result.help = true;
      continue;
    }
    if (arg === '--') {
      if (i + 1 < args.length) throw new Error(`unexpected argument ${args[i + 1]}`);
      break;
    }
    if (!arg.startsWith('--')) {
      throw new Error(
        arg.startsWith('-') && arg !== '-' ? `unknown flag ${arg}` : `unexpected argument ${arg}`,
      );
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg : arg.slice(0, equals);
    if (name === '--help') throw new Error('flag --help takes no value');
    const key = keys.get(name);
    if (key === undefined) {
      const owners = commands.filter((c) => c.settings.some((k) => flagName(k) === name)).map((c) => c.name);
      throw new Error(`unknown flag ${name}${owners.length > 0 ? ` (a flag of ${owners.join(', ')})` : ''}`);
    }
    if (equals !== -1) {
      result.flags[key] = arg.slice(equals + 1);
      continue;
    }
    const value = args[i + 1];
    if (value === undefined || value.startsWith('--') || value === '-h') {
      throw new Error(`flag ${name} needs a value`);
    }
    result.flags[key] = value;
    i++;
  }
  return result;
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
