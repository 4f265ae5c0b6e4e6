/**
 * The helm CLI for the chart tests and `npm run manifest`: built once from the Go module proxy by
 * build-helm.sh (Debian has no helm package), then `helm template` over charts/tailscale-gateway.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = join(import.meta.dir, '..', '..', '..');
export const CHART_DIR = join(REPO_ROOT, 'charts', 'tailscale-gateway');
/** The release `npm run manifest` renders and the kind scripts install. */
export const RELEASE = { name: 'tailscale-gateway', namespace: 'tailscale-gateway' } as const;

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

let helmPromise: Promise<string> | undefined;

/** Path of the helm binary, building it via build-helm.sh if needed. */
export function helmBinary(): Promise<string> {
  helmPromise ??= (async () => {
    const proc = Bun.spawn(['bash', join(import.meta.dir, 'build-helm.sh')], {
      stdout: 'pipe',
      stderr: 'inherit',
    });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const helm = join(out.trim().split('\n').at(-1) ?? '', 'helm');
    if (code !== 0 || !existsSync(helm)) {
      helmPromise = undefined;
      throw new Error(`build-helm.sh failed (exit ${code}); output: ${out.trim().slice(-500)}`);
    }
    return helm;
  })();
  return helmPromise;
}

/** Runs helm; rejects with its stderr on a non-zero exit. */
export async function helm(args: string[], env: Record<string, string> = {}): Promise<string> {
  const proc = Bun.spawn([await helmBinary(), ...args], {
    cwd: REPO_ROOT,
    // HOME-less helm still wants writable cache/config dirs; none of these commands fetch anything.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`helm ${args.join(' ')} exited with ${code}:\n${err.trim()}`);
  return out;
}

export interface TemplateOptions {
  release?: { name: string; namespace: string };
  /** `--set-json` pairs: key → any JSON value. */
  values?: Record<string, unknown>;
  /** Extra values files. */
  valuesFiles?: string[];
}

/** `helm template` of the chart as YAML text. */
export async function templateChart(options: TemplateOptions = {}): Promise<string> {
  const release = options.release ?? RELEASE;
  const args = ['template', release.name, CHART_DIR, '--namespace', release.namespace];
  for (const file of options.valuesFiles ?? []) args.push('--values', file);
  for (const [key, value] of Object.entries(options.values ?? {}))
    args.push('--set-json', `${key}=${JSON.stringify(value)}`);
  return helm(args);
}

/** Every non-empty document of a YAML stream, as objects. */
export function parseObjects(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml)
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null && typeof object === 'object');
}

/** `helm template` of the chart as objects. */
export async function renderChart(options: TemplateOptions = {}): Promise<KubeObject[]> {
  return parseObjects(await templateChart(options));
}
