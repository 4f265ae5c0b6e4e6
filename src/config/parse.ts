/**
 * Turns flags and environment variables into a validated `Config`, once, at start-up.
 * Precedence: flag, then `TSGW_*` environment variable, then the schema default.
 *
 * @module
 */
import * as v from 'valibot';
import { OperatorError } from '../errors.ts';
import { CONFIG_RULES, type Config, type ConfigKey, ConfigSchema, envName, flagName } from './schema.ts';

export interface ParseConfigOptions {
  /** Values from the command line, keyed by setting (already split into flags). */
  flags: Partial<Record<ConfigKey, string>>;
  /** The process environment. */
  env: Record<string, string | undefined>;
  /** Settings this command accepts; others are ignored in the environment. Default: all. */
  keys?: readonly ConfigKey[];
}

/**
 * Throws an `OperatorError('Invalid')` whose message names the flag (and its environment variable when
 * the bad value came from there) and the reason, so the CLI can print it and exit 2. A value bad on its
 * own is quoted as given; a rule between settings names each of them with its value and origin.
 */
export function parseConfig({ flags, env, keys }: ParseConfigOptions): Config {
  const allowed = new Set<string>(keys ?? Object.keys(ConfigSchema.entries));
  const input: Partial<Record<ConfigKey, string>> = {};
  const source: Partial<Record<ConfigKey, string>> = {};
  for (const key of Object.keys(ConfigSchema.entries) as ConfigKey[]) {
    if (!allowed.has(key)) continue;
    const fromFlag = flags[key];
    const fromEnv = env[envName(key)];
    if (fromFlag !== undefined) {
      input[key] = fromFlag;
      source[key] = flagName(key);
    } else if (fromEnv !== undefined && fromEnv !== '') {
      input[key] = fromEnv;
      source[key] = `${flagName(key)} (from ${envName(key)})`;
    }
  }
  const result = v.safeParse(ConfigSchema, input);
  if (!result.success) {
    const issue = result.issues[0];
    const key = issue.path?.[0]?.key as ConfigKey;
    throw new OperatorError(
      'Invalid',
      `invalid value for ${source[key] ?? flagName(key)}: ${issue.message} (got ${JSON.stringify(input[key])})`,
      { field: flagName(key) },
    );
  }
  const config = result.output;
  const name = (key: ConfigKey): string => {
    const value = config[key];
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    return key in input ? `${source[key]} ${shown}` : `${flagName(key)} ${shown} (the default)`;
  };
  for (const rule of CONFIG_RULES) {
    if (!rule.keys.every((key) => allowed.has(key)) || rule.holds(config)) continue;
    const field = rule.field ?? rule.keys.find((key) => key in input) ?? rule.keys[0]!;
    throw new OperatorError('Invalid', rule.message(name), { field: flagName(field) });
  }
  return config;
}
