/**
 * `version`: the build as `describeBuild` states it (version, commit, build date, Bun), so a report from a
 * running operator names the exact build.
 *
 * @module
 */
import { describeBuild } from '../../version.ts';
import { type Command, EXIT_OK } from '../cli.ts';

export const versionCommand: Command = {
  name: 'version',
  summary: 'Print the version, the commit it was built from and the build date.',
  settings: [],
  async run({ io }) {
    io.stdout(`tailscale-gateway ${describeBuild()}\n`);
    return EXIT_OK;
  },
};
