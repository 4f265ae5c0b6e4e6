/**
 * The settings of everything `run` and `standalone` both serve: the extension server, the HTTP surface,
 * logging and shutdown. One list, so a new serving flag reaches both commands, and one type, so the
 * shared runtime (`src/app/`) is handed these settings and cannot come to depend on any other.
 *
 * @module
 */
import type { Config, ConfigKey } from './schema.ts';

export const SERVING_SETTINGS = [
  'grpcAddr',
  'grpcTlsCert',
  'grpcTlsKey',
  'grpcClientCa',
  'grpcMaxMessageBytes',
  'grpcInflightBytes',
  'grpcRequestTimeout',
  'httpAddr',
  'logLevel',
  'logFormat',
  'shutdownTimeout',
  'shutdownDelay',
] as const satisfies readonly ConfigKey[];

export type ServingConfig = Pick<Config, (typeof SERVING_SETTINGS)[number]>;
