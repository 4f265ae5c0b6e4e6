/**
 * The three images a one-node cluster running the chart needs, built from this checkout as OCI
 * archives: the node tools (pause/sandbox, CoreDNS), the operator (the compiled binary) and the
 * tailscale proxy image under the name the operator defaults to, so proxy StatefulSets find it
 * without a registry. Shared by `npm run node:up`, the chart-on-node tests and `npm run bench:node`.
 *
 * @module
 */
import { join } from 'node:path';
import { defaultProxyImage } from '../../../src/proxy/objects.ts';
import { compiledBinary, REPO_ROOT } from '../support/binary.ts';
import { buildImage, operatorImage, proxyImage, toolsImage } from './images.ts';
import { nodeBinaries, TOOLS_IMAGE } from './index.ts';

export interface ClusterImage {
  name: string;
  path: string;
}

/**
 * The tailscale programs' directory from build-tailscale.sh; `cachedOnly` fails instead of building
 * (the tests, which rely on test/prepare.sh having built them).
 */
export function tailscaleBinaries(cachedOnly: boolean): string {
  const r = Bun.spawnSync(
    [
      'bash',
      join(REPO_ROOT, 'test', 'harness', 'tailscale', 'build-tailscale.sh'),
      ...(cachedOnly ? ['--cached-only'] : []),
    ],
    { stdout: 'pipe', stderr: cachedOnly ? 'pipe' : 'inherit' },
  );
  if (r.exitCode !== 0) throw new Error(`build-tailscale.sh failed: ${r.stderr?.toString() ?? ''}`);
  return r.stdout.toString().trim().split('\n').at(-1) ?? '';
}

/** Builds the archives into `dir` (tools.tar, operator.tar, proxy.tar) and names what each holds. */
export async function buildClusterImages(
  dir: string,
  operatorName: string,
  options: { nodeDir?: string; cachedOnly?: boolean } = {},
): Promise<ClusterImage[]> {
  const specs = [
    { spec: toolsImage(options.nodeDir ?? nodeBinaries(), TOOLS_IMAGE), file: 'tools.tar' },
    { spec: operatorImage(await compiledBinary(), operatorName), file: 'operator.tar' },
    {
      spec: proxyImage(tailscaleBinaries(options.cachedOnly ?? true), defaultProxyImage()),
      file: 'proxy.tar',
    },
  ];
  return specs.map(({ spec, file }) => {
    buildImage(spec, join(dir, file));
    return { name: spec.name, path: join(dir, file) };
  });
}
