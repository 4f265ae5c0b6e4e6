/**
 * `npm run generate`: every generator of the repository, in order. Generated trees (crds/, gen/, the
 * chart's CRD template, deploy/install.yaml, site/generated/) are
 * committed so a build needs no code generation, and tests fail when they are stale.
 *
 * @module
 */
import { join } from 'node:path';

const steps: { name: string; command: string[] }[] = [
  { name: 'crds/ from src/api', command: [process.execPath, join(import.meta.dir, 'generate-crds.ts')] },
  { name: 'gen/ from proto/', command: [process.execPath, join(import.meta.dir, 'generate-proto.ts')] },
  // The chart's CRD template and deploy/install.yaml are built from crds/, so they come after it.
  {
    name: 'chart CRDs and deploy/install.yaml',
    command: [process.execPath, join(import.meta.dir, 'manifest.ts')],
  },
  // The docs' field references, CLI page and metric list are built from the schemas and the source.
  { name: 'site/generated/', command: [process.execPath, join(import.meta.dir, 'docs-generate.ts')] },
];

for (const step of steps) {
  console.log(`generate: ${step.name}`);
  const child = Bun.spawn(step.command, { stdout: 'inherit', stderr: 'inherit' });
  const code = await child.exited;
  if (code !== 0) {
    console.error(`generate: ${step.name} failed with exit code ${code}`);
    process.exit(code);
  }
}
