import type { ConfigKey } from '../../config/schema.ts';

/**
 * Settings of everything `run` and `standalone` both serve: the extension server, the HTTP surface,
 * logging and shutdown. One list, so a new serving flag reaches both modes.
 */
export const SERVING_SETTINGS: readonly ConfigKey[] = [
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
];
