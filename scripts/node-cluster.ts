/**
 * `npm run node:up` / `node:down`: a real one-node cluster on this machine, without Docker or a
 * registry — the cluster test/node/ runs against (kubelet on containerd, kube-proxy, CoreDNS), with
 * the operator's image and the tailscale proxy image built from this checkout and imported.
 *
 * `up` builds what is missing (node binaries, tailscale programs, the compiled operator; minutes cold,
 * instant warm), starts the cluster detached with its state in {@link STATE_DIR}, prints
 * `export KUBECONFIG=…` and the image names, and exits. `down` runs test/harness/node/teardown.sh, which
 * removes every process, mount, cgroup, iptables rule, the bridge, and restores the sysctls kubelet
 * changed. Needs root and a cgroup v1/hybrid machine (what CI has); the shared control plane of
 * `cluster:up` is separate and can run beside it.
 *
 * @module
 */

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildClusterImages } from '../test/harness/node/cluster-images.ts';
import { BRIDGE, nodeClusterUnavailable, startNodeCluster } from '../test/harness/node/index.ts';

const repo = resolve(import.meta.dir, '..');
/** Outside the repository: containerd's socket path must stay under the 108-byte unix socket limit. */
const STATE_DIR = process.env.TSGW_NODE_STATE ?? '/var/tmp/tsgw-node-cluster';
export const OPERATOR_IMAGE = 'tsgw.local/tailscale-gateway:dev';

function build(script: string): string {
  const r = Bun.spawnSync(['bash', join(repo, script)], { stdout: 'pipe', stderr: 'inherit' });
  if (r.exitCode !== 0) throw new Error(`${script} failed (exit ${r.exitCode})`);
  return r.stdout.toString().trim().split('\n').at(-1) ?? '';
}

async function up(): Promise<void> {
  const unavailable = nodeClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  if (existsSync(`/sys/class/net/${BRIDGE}`)) {
    console.log(
      `a node cluster is running (bridge ${BRIDGE}); export KUBECONFIG=${join(STATE_DIR, 'kubeconfig')}`,
    );
    return;
  }
  const nodeDir = build('test/harness/node/build-node.sh');
  const imageDir = `${STATE_DIR}-images`;
  mkdirSync(imageDir, { recursive: true });
  const images = await buildClusterImages(imageDir, OPERATOR_IMAGE, { nodeDir, cachedOnly: false });
  const cluster = await startNodeCluster({
    stateDir: STATE_DIR,
    detached: true,
    images: images.map((i) => i.path),
  });
  console.log(`node cluster up in ${cluster.startMs} ms; logs in ${join(STATE_DIR, 'logs')}`);
  console.log(`images: ${images.map((i) => i.name).join(', ')} (imagePullPolicy: Never or IfNotPresent)`);
  console.log(`export KUBECONFIG=${cluster.kubeconfigPath}`);
}

function down(): void {
  const r = Bun.spawnSync(['bash', join(repo, 'test/harness/node/teardown.sh'), STATE_DIR], {
    stdout: 'inherit',
    stderr: 'inherit',
  });
  Bun.spawnSync(['rm', '-rf', `${STATE_DIR}-images`]);
  if (r.exitCode !== 0) throw new Error('teardown failed');
  console.log('node cluster down');
}

const command = process.argv[2];
if (command === 'up') await up();
else if (command === 'down') down();
else {
  console.error('usage: bun scripts/node-cluster.ts up|down');
  process.exit(2);
}
process.exit(0);
