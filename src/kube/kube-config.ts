/**
 * Finds and loads the kubeconfig the operator talks to the API server with.
 *
 * The order follows kubectl and client-go with one deliberate change: in-cluster credentials win over
 * `~/.kube/config`, because a Pod whose image happens to contain a home kubeconfig must still use its own
 * ServiceAccount. An explicit path that does not exist is an error rather than a fallback, so a typo in
 * `--kubeconfig` never silently points the operator at another cluster.
 *
 * @module
 */

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** Explicit kubeconfig path (for example `--kubeconfig`); wins over everything else. */
  kubeconfig?: string;
  /**
   * Where `KUBECONFIG` and `KUBERNETES_SERVICE_HOST/PORT` come from. Default: none of them; the entry
   * point hands down the process's, read once in `src/config/environment.ts`.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Home directory for `~/.kube/config`; defaults to `os.homedir()`. */
  homeDir?: string;
  /** Prefix for the in-cluster ServiceAccount files, so tests can fake a Pod filesystem. */
  inClusterRoot?: string;
}

export type KubeConfigSource =
  | { kind: 'explicit'; paths: string[] }
  | { kind: 'env'; paths: string[] }
  | { kind: 'in-cluster'; tokenPath: string }
  | { kind: 'home'; paths: string[] };

/** Which configuration {@link loadKubeConfig} would use, without reading it. */
export function resolveKubeConfigSource(options: LoadKubeConfigOptions = {}): KubeConfigSource {
  const env = options.env ?? {};
  if (options.kubeconfig) return { kind: 'explicit', paths: [options.kubeconfig] };
  const fromEnv = (env.KUBECONFIG ?? '').split(delimiter).filter((path) => path.length > 0);
  if (fromEnv.length > 0) return { kind: 'env', paths: fromEnv };
  const tokenPath = `${options.inClusterRoot ?? ''}${SERVICE_ACCOUNT_DIR}/token`;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(tokenPath)) {
    return { kind: 'in-cluster', tokenPath };
  }
  const home = options.homeDir ?? homedir();
  const homeConfig = join(home, '.kube', 'config');
  if (existsSync(homeConfig)) return { kind: 'home', paths: [homeConfig] };
  throw new OperatorError(
    'Invalid',
    `no Kubernetes configuration found: no --kubeconfig, KUBECONFIG is unset, not in a cluster ` +
      `(KUBERNETES_SERVICE_HOST/PORT or ${tokenPath} missing), and ${homeConfig} does not exist`,
  );
}

/** Human name of a source for error messages and the startup log. */
export function describeSource(source: KubeConfigSource): string {
  switch (source.kind) {
    case 'explicit':
      return `kubeconfig ${source.paths.join(delimiter)} (from --kubeconfig)`;
    case 'env':
      return `kubeconfig ${source.paths.join(delimiter)} (from KUBECONFIG)`;
    case 'in-cluster':
      return `in-cluster ServiceAccount (${source.tokenPath})`;
    case 'home':
      return `kubeconfig ${source.paths.join(delimiter)} (default)`;
  }
}

/**
 * Loads the kubeconfig from the first source that exists and checks it names a cluster with a server,
 * so a broken configuration fails at startup with the source named, not at the first request.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const source = resolveKubeConfigSource(options);
  const env = options.env ?? {};
  const kc = new KubeConfig();
  try {
    if (source.kind === 'in-cluster') {
      withEnv(env, () => kc.loadFromCluster(options.inClusterRoot));
    } else {
      const [first, ...rest] = source.paths;
      if (!first || !existsSync(first)) throw new Error(`${first} does not exist`);
      kc.loadFromFile(first);
      // KUBECONFIG merging as kubectl does it: later files add clusters, users and contexts.
      for (const path of rest) {
        if (!existsSync(path)) continue;
        const next = new KubeConfig();
        next.loadFromFile(path);
        kc.mergeConfig(next, true);
      }
    }
  } catch (error) {
    throw new OperatorError('Invalid', `cannot load ${describeSource(source)}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const context = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new OperatorError(
      'Invalid',
      `${describeSource(source)}: current context ${context ? `"${context}"` : '(none)'} has no cluster with a server`,
    );
  }
  if (!kc.getCurrentUser()) {
    throw new OperatorError('Invalid', `${describeSource(source)}: current context "${context}" has no user`);
  }
  return kc;
}

/**
 * `loadFromCluster` (client-node) reads `process.env` itself, the one read of it below the entry point:
 * the values the caller was given are put there for the call when they differ (tests pass their own),
 * and the process's own put back after.
 */
function withEnv(env: Readonly<Record<string, string | undefined>>, fn: () => void): void {
  const keys = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'] as const;
  if (keys.every((key) => env[key] === process.env[key])) {
    fn();
    return;
  }
  const saved = keys.map((key) => process.env[key]);
  try {
    for (const key of keys) {
      if (env[key] === undefined) delete process.env[key];
      else process.env[key] = env[key];
    }
    fn();
  } finally {
    keys.forEach((key, i) => {
      const value = saved[i];
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
