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
import { exitProcess, processIo } from './lifecycle/process-io.ts';

const code = await runCli(process.argv.slice(2), processIo, [
  runCommand,
  standaloneCommand,
  crdsCommand,
  versionCommand,
]);
await exitProcess(code);
