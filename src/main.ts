/**
 * The entry point of the one binary: wiring only. Everything it runs lives in a module with its own tests.
 *
 * @module
 */
import { runCli } from './cli/cli.ts';
import { crdsCommand } from './cli/commands/crds.ts';
import { runCommand } from './cli/commands/run.ts';
import { standaloneCommand } from './cli/commands/standalone.ts';
import { versionCommand } from './cli/commands/version.ts';

const code = await runCli(
  process.argv.slice(2),
  {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
  },
  [runCommand, standaloneCommand, crdsCommand, versionCommand],
);
process.exit(code);
