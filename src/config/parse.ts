/**
 * Turns flags and environment variables into a validated `Config`, once, at start-up.
 * Precedence: flag, then `TSGW_*` environment variable, then the schema default.
 *
 * @module
 */
import * as v from 'valibot';
import { OperatorError } from '../errors.ts';
import { type Config, type ConfigKey, ConfigSchema, envName, flagName } from './schema.ts';

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
 * the bad value came from there) and the reason, so the CLI can print it and exit 2.
 */
export function parseConfig({ flags, env, keys }: ParseConfigOptions): Config {
  const allowed = new Set<string>(keys ?? Object.keys(ConfigSchema.entries));
  const input: Record<string, string> = {};
  const source: Record<string, string> = {};
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
  if (result.success) return result.output;
  const issue = result.issues[0];
  const key = issue.path?.[0]?.key as ConfigKey | undefined;
  const where = key === undefined ? 'configuration' : (source[key] ?? flagName(key));
  const got = key === undefined ? '' : ` (got ${JSON.stringify(input[key])})`;
  throw new OperatorError('Invalid', `invalid value for ${where}: ${issue.message}${got}`, {
    field: key === undefined ? undefined : flagName(key),
  });
}
