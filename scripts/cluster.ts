/**
 * `npm run cluster:up` / `cluster:down`: the dev loop without Docker.
 *
 * `up` starts the same etcd + kube-apiserver the integration tests use, detached, with its state
 * (PKI, etcd data, logs, kubeconfig, pids) under `.cluster/` in the repository, applies every CRD in
 * `crds/*.yaml`, prints `export KUBECONFIG=…` and exits. Running `up` again while the control plane is
 * alive only re-applies the CRDs and prints the export line. `down` kills both processes and removes
 * `.cluster/`. There is no scheduler or controller-manager: objects are stored and watched, Pods never run.
 *
 * @module
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { type ControlPlane, installCrds, startControlPlane } from '../test/harness/control-plane/index.ts';

const repo = resolve(import.meta.dir, '..');
const stateDir = join(repo, '.cluster');
const stateFile = join(stateDir, 'state.json');
const crdDir = join(repo, 'crds');

interface State {
  server: string;
  kubeconfigPath: string;
  pids: { etcd: number; apiserver: number };
}

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

/** Alive and still the binary we started: pids get reused after a reboot. A zombie has no cmdline. */
function isOurs(pid: number, binary: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(binary);
  } catch {
    return true; // no procfs (macOS): liveness is the best we can check
  }
}

function controlPlaneFromState(state: State): ControlPlane {
  const pki = join(stateDir, 'pki');
  const ca = readFileSync(join(pki, 'ca.crt'), 'utf8');
  const cert = readFileSync(join(pki, 'admin.crt'), 'utf8');
  const key = readFileSync(join(pki, 'admin.key'), 'utf8');
  return {
    server: state.server,
    kubeconfigPath: state.kubeconfigPath,
    ca,
    cert,
    key,
    async request(path, init = {}) {
      const url = new URL(path, state.server);
      for (const [name, value] of Object.entries(init.query ?? {})) url.searchParams.set(name, value);
      const headers: Record<string, string> = { accept: 'application/json' };
      let body: string | undefined;
      if (init.body !== undefined) {
        body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
        headers['content-type'] = init.contentType ?? 'application/json';
      }
      return await fetch(url, { method: init.method ?? 'GET', headers, body, tls: { ca, cert, key } });
    },
    async stop() {
      await down();
    },
  };
}

function readCrds(): object[] {
  if (!existsSync(crdDir)) return [];
  const docs: object[] = [];
  for (const file of readdirSync(crdDir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`crds/${file}: ${doc.errors[0]?.message}`);
      const value = doc.toJS() as { kind?: string } | null;
      if (value && value.kind === 'CustomResourceDefinition') docs.push(value);
    }
  }
  return docs;
}

async function applyCrds(cp: ControlPlane): Promise<void> {
  const crds = readCrds();
  if (crds.length === 0) return;
  await installCrds(cp, crds);
  console.error(`cluster: applied ${crds.length} CRD(s) from crds/`);
}

async function up(): Promise<void> {
  const state = readState();
  if (state && isOurs(state.pids.apiserver, 'kube-apiserver') && isOurs(state.pids.etcd, 'etcd')) {
    await applyCrds(controlPlaneFromState(state));
    console.log(`export KUBECONFIG=${state.kubeconfigPath}`);
    return;
  }
  if (state) await down(true);
  mkdirSync(stateDir, { recursive: true });
  const cp = await startControlPlane({ stateDir, logDir: stateDir, detached: true });
  const next: State = { server: cp.server, kubeconfigPath: cp.kubeconfigPath, pids: cp.pids };
  writeFileSync(stateFile, `${JSON.stringify(next, null, 2)}\n`);
  console.error(`cluster: kube-apiserver ${cp.server} ready in ${cp.startMs} ms (logs in .cluster/)`);
  try {
    await applyCrds(cp);
  } catch (error) {
    console.error(`cluster: the control plane is up, but applying CRDs failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
  console.log(`export KUBECONFIG=${cp.kubeconfigPath}`);
}

async function down(quiet = false): Promise<void> {
  const state = readState();
  if (state) {
    const targets = [
      [state.pids.apiserver, 'kube-apiserver'],
      [state.pids.etcd, 'etcd'],
    ] as const;
    // SIGKILL straight away: all state is deleted next, and a graceful apiserver shutdown takes seconds.
    for (const [pid, binary] of targets) {
      if (!isOurs(pid, binary)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    const deadline = Date.now() + 5_000;
    while (targets.some(([pid, binary]) => isOurs(pid, binary)) && Date.now() < deadline) await Bun.sleep(50);
  }
  rmSync(stateDir, { recursive: true, force: true });
  if (!quiet) console.error(state ? 'cluster: stopped and removed .cluster/' : 'cluster: nothing running');
}

const command = process.argv[2];
if (command === 'up') await up();
else if (command === 'down') await down();
else {
  console.error('usage: bun scripts/cluster.ts up|down');
  process.exitCode = 2;
}
// Bun keeps the loop alive while the detached children's exit promises are pending.
process.exit(process.exitCode ?? 0);
