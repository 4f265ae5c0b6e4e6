/**
 * Writes crds/<plural>.gateway.tailscale.com.yaml from the valibot schemas. The files are committed so
 * that `kubectl apply -f crds/` and Helm work without Bun; `test/apiserver/crds.test.ts` fails when they are stale.
 *
 * Usage: bun scripts/generate-crds.ts
 */

import { join } from 'node:path';
import { crdAsYaml, crdFileName, renderCrds } from '../src/api/crd.ts';

const root = join(import.meta.dir, '..');
for (const crd of renderCrds()) {
  const file = crdFileName(crd);
  await Bun.write(join(root, file), crdAsYaml(crd));
  console.log(`wrote ${file}`);
}
