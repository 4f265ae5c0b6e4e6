import { VERSION } from '../../version.ts';
import { type Command, EXIT_OK } from '../cli.ts';

export const versionCommand: Command = {
  name: 'version',
  summary: 'Print the version.',
  settings: [],
  async run({ io }) {
    io.stdout(`tailscale-gateway ${VERSION} (bun ${Bun.version})\n`);
    return EXIT_OK;
  },
};
