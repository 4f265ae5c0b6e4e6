/**
 * `standalone`: the extension server and HTTP surface without a cluster, from YAML files. It takes the
 * serving settings `run` takes and the directories it reads resources from, and no cluster settings.
 *
 * @module
 */
import { SERVING_SETTINGS } from '../../config/serving.ts';
import { runStandalone } from '../../standalone/standalone.ts';
import type { Command } from '../cli.ts';

export const standaloneCommand: Command = {
  name: 'standalone',
  summary:
    'Run without a cluster: serve the extension server and HTTP surface from YAML resource files in a directory.',
  settings: ['resources', 'envoyGatewayResources', ...SERVING_SETTINGS],
  required: ['resources'],
  run: ({ config }) => runStandalone(config),
};
