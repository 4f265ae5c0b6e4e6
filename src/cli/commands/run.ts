/**
 * `run`: the operator in a cluster. Its settings list is what `run --help` shows and the only flags and
 * `TSGW_*` variables it reads: the operator's own and the serving ones it shares with `standalone`.
 *
 * @module
 */
import { SERVING_SETTINGS } from '../../config/serving.ts';
import { runOperator } from '../../operator/operator.ts';
import type { Command } from '../cli.ts';

export const runCommand: Command = {
  name: 'run',
  summary:
    'Run the operator in a cluster: controllers, the Envoy Gateway extension server and the HTTP surface.',
  settings: [
    'kubeconfig',
    'namespace',
    'leaderElection',
    'leaseDuration',
    'tailscaleApiUrl',
    'clusterDomain',
    'operatorId',
    'clusterId',
    'serviceStaleAfter',
    'serviceReverifyMin',
    'serviceReverifyMax',
    ...SERVING_SETTINGS,
  ],
  run: ({ config, environment }) => runOperator(config, environment),
};
