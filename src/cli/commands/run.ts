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
