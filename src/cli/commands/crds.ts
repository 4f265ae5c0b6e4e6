/**
 * `crds`: the CustomResourceDefinitions rendered from the schemas in src/api/, so a cluster gets the
 * very CRDs this binary validates against, with no files to keep in step.
 *
 * @module
 */
import { crdsAsYaml } from '../../api/crd.ts';
import { type Command, EXIT_OK } from '../cli.ts';

export const crdsCommand: Command = {
  name: 'crds',
  summary: 'Print the CustomResourceDefinitions as YAML (pipe to kubectl apply --server-side -f -).',
  settings: [],
  async run({ io }) {
    io.stdout(crdsAsYaml());
    return EXIT_OK;
  },
};
