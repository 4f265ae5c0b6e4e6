import { runStandalone } from '../../standalone/standalone.ts';
import type { Command } from '../cli.ts';

export const standaloneCommand: Command = {
  name: 'standalone',
  summary:
    'Run without a cluster: serve the extension server and HTTP surface from YAML resource files in a directory.',
  settings: [
    'resources',
    'grpcAddr',
    'grpcTlsCert',
    'grpcTlsKey',
    'grpcClientCa',
    'grpcMaxMessageBytes',
    'grpcRequestTimeout',
    'httpAddr',
    'logLevel',
    'logFormat',
    'shutdownTimeout',
    'shutdownDelay',
  ],
  required: ['resources'],
  run: ({ config }) => runStandalone(config),
};
