/**
 * The documented standalone stack on a temp copy of examples/standalone: tailscale-gateway standalone
 * (the compiled binary) writing `.envoy-gateway`, and Envoy Gateway standalone (standalone.ts) with the
 * real Envoy, its Gateway listener 8888 reachable from the host. `files` are added to the copy before
 * anything starts (e.g. a TailscaleEndpoints naming a loopback server, whose port goes in `forward`, or
 * a tailnet device, with `host` the namespace of a host on that tailnet). Used by
 * test/traffic/standalone-traffic.test.ts, test/traffic/quickstart-standalone.test.ts and bench/traffic.ts.
 *
 * @module
 */
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, type RunningBinary, startBinary } from '../support/binary.ts';
import { freePort } from '../support/processes.ts';
import {
  makeStandaloneRoot,
  type RunningStandaloneEnvoyGateway,
  removeStandaloneRoot,
  startStandaloneEnvoyGateway,
} from './standalone.ts';

const CONFIG = 'examples/envoy-gateway/standalone.yaml';
/** The example Gateway's listener (examples/standalone/envoy-gateway.yaml). */
export const STANDALONE_LISTENER = 8888;

/**
 * A TailscaleEndpoints `local` with one HTTP endpoint `echo` at a loopback server (an `externalTarget`,
 * which standalone mode reaches directly), standing in for a tailnet service.
 */
export function loopbackEndpointsYaml(port: number): string {
  return `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata: { name: local, namespace: default }
spec:
  tailnet: corp
  endpoints:
    - name: echo
      externalTarget: 127.0.0.1:${port}
      port: ${port}
      protocol: HTTP
`;
}

export interface StandaloneStack {
  ours: RunningBinary;
  eg: RunningStandaloneEnvoyGateway;
  /** The copy of examples/standalone tailscale-gateway serves (edit it to change the config). */
  resources: string;
  /** `http://127.0.0.1:<port>` of the Gateway listener. */
  url: string;
  stop(): Promise<void>;
}

export async function startStandaloneStack(options: {
  files?: Record<string, string>;
  forward?: number[];
  /**
   * `npm start` (from source) in the working directory, which gets the repository's package.json,
   * src/, gen/ and node_modules as links, and the example EG config unchanged (its port 5005 inside
   * EG's namespace leads to the free port `npm start` is given by TSGW_GRPC_ADDR); default the
   * compiled binary with `--grpc-addr` on a free port written into the EG config.
   */
  npmStart?: boolean;
  /**
   * The network namespace (and resolver file) of a host on a tailnet for EG and its Envoy, instead of
   * a namespace holding only a loopback (standalone.ts `host`).
   */
  host?: { netns: string; resolvConf?: string };
}): Promise<StandaloneStack> {
  const root = makeStandaloneRoot();
  const work = join(root, 'work');
  const resources = join(work, 'examples/standalone');
  mkdirSync(join(work, 'examples/envoy-gateway'), { recursive: true });
  cpSync(join(REPO_ROOT, 'examples/standalone'), resources, { recursive: true });
  for (const [name, content] of Object.entries(options.files ?? {}))
    writeFileSync(join(resources, name), content);
  const grpcPort = await freePort();
  const config = readFileSync(join(REPO_ROOT, CONFIG), 'utf8');
  if (!config.includes('      port: 5005\n')) throw new Error(`${CONFIG} no longer names port 5005`);
  if (options.npmStart) {
    writeFileSync(join(work, CONFIG), config);
    for (const name of ['package.json', 'src', 'gen', 'node_modules'])
      symlinkSync(join(REPO_ROOT, name), join(work, name));
  }
  // Else the one change to the example EG config: the extension server on a free port, not 5005.
  else writeFileSync(join(work, CONFIG), config.replace('      port: 5005\n', `      port: ${grpcPort}\n`));

  let ours: RunningBinary | undefined;
  let eg: RunningStandaloneEnvoyGateway | undefined;
  const stop = async () => {
    await eg?.stop();
    ours?.kill('SIGKILL');
    removeStandaloneRoot(root);
  };
  try {
    ours = options.npmStart
      ? await startBinary(
          [],
          { TSGW_GRPC_ADDR: `127.0.0.1:${grpcPort}`, TSGW_HTTP_ADDR: '127.0.0.1:0' },
          { command: ['npm', 'start', '--silent'], cwd: work },
        )
      : await startBinary([
          'standalone',
          '--resources',
          resources,
          '--envoy-gateway-resources',
          join(work, '.envoy-gateway'),
          '--grpc-addr',
          `127.0.0.1:${grpcPort}`,
          '--http-addr',
          '127.0.0.1:0',
        ]);
    await ours.waitForLog('Envoy Gateway resources written');
    const envoyVersion = /envoyVersion: (\S+)/.exec(
      readFileSync(join(resources, 'envoy-gateway.yaml'), 'utf8'),
    )?.[1];
    if (!envoyVersion) throw new Error('examples/standalone/envoy-gateway.yaml pins no envoyVersion');
    eg = await startStandaloneEnvoyGateway({
      root,
      configPath: CONFIG,
      envoyVersion,
      listeners: [STANDALONE_LISTENER],
      ...(options.npmStart ? { extensionServerHostPort: grpcPort } : {}),
      forward: options.forward ?? [],
      ...(options.host ? { host: options.host } : {}),
    });
    await eg.waitForEnvoy(60_000);
    return { ours, eg, resources, url: eg.listenerUrl(STANDALONE_LISTENER), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
