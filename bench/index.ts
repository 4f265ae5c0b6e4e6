/**
 * `bun run bench`: every benchmark of the project, one after another, figures on stdout.
 */
import { statSync } from 'node:fs';
import { BINARY } from '../test/harness/support/binary.ts';
import { benchExtension } from './extension.ts';
import { benchIngress } from './ingress.ts';
import { benchStartup } from './startup.ts';

await benchStartup(5);
console.log(`binary size: ${(statSync(BINARY).size / 1024 / 1024).toFixed(1)} MiB (${BINARY})`);
await benchExtension();
benchIngress();
