/**
 * kind/ cannot run here (no Docker), so it is checked statically: the scripts are shellcheck-clean,
 * everything they reference exists, the chart renders with kind's values, and the package.json
 * scripts call them. The Gateway in kind/gateway.yaml is dry-run on a real API server by chart.test.ts.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT, renderChart } from '../harness/helm/index.ts';

const KIND = join(REPO_ROOT, 'kind');
const SCRIPTS = ['kind/up.sh', 'kind/down.sh', 'test/harness/helm/build-helm.sh'];

describe('kind/', () => {
  test('the scripts are shellcheck-clean', async () => {
    const shellcheck = Bun.which('shellcheck');
    if (!shellcheck) {
      console.warn(
        'shellcheck is not installed (apt-get install -y shellcheck): skipped the shellcheck check',
      );
      return;
    }
    const proc = Bun.spawn([shellcheck, '--severity=style', ...SCRIPTS], {
      cwd: REPO_ROOT,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(out).toBe('');
    expect(code).toBe(0);
  });

  test('the scripts are strict bash and reference only files that exist', () => {
    const up = readFileSync(join(KIND, 'up.sh'), 'utf8');
    for (const script of SCRIPTS) {
      const text = readFileSync(join(REPO_ROOT, script), 'utf8');
      expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
      expect(text).toContain('set -euo pipefail');
    }
    const referenced = [...up.matchAll(/(?:^|\s)((?:kind|examples|charts|test)\/[\w./-]*[\w/])/gm)].map(
      (m) => m[1]!,
    );
    expect(referenced).toEqual(
      expect.arrayContaining([
        'kind/cluster.yaml',
        'kind/envoy-gateway-values.yaml',
        'kind/gateway.yaml',
        'kind/tailscale-gateway-values.yaml',
        'charts/tailscale-gateway',
        'examples/kubernetes/',
      ]),
    );
    for (const path of referenced)
      expect({ path, exists: existsSync(join(REPO_ROOT, path)) }).toEqual({ path, exists: true });
    expect(existsSync(join(REPO_ROOT, 'Dockerfile'))).toBe(true);
  });

  test('package.json runs them', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['kind:up']).toBe('bash kind/up.sh');
    expect(pkg.scripts['kind:down']).toBe('bash kind/down.sh');
    expect(pkg.scripts.manifest).toBe('bun scripts/manifest.ts');
  });

  test('the cluster has a control plane and two workers (one per operator replica)', () => {
    const cluster = parse(readFileSync(join(KIND, 'cluster.yaml'), 'utf8')) as {
      kind: string;
      apiVersion: string;
      nodes: { role: string }[];
    };
    expect(cluster.kind).toBe('Cluster');
    expect(cluster.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
    expect(cluster.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
  });

  test('the chart renders with kind/tailscale-gateway-values.yaml and the image kind/up.sh loads', async () => {
    const objects = await renderChart({
      valuesFiles: [join(KIND, 'tailscale-gateway-values.yaml')],
      values: { 'image.repository': 'tailscale-gateway', 'image.tag': 'dev-1', 'image.pullPolicy': 'Never' },
    });
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: {
        template: { spec: { containers: { image: string; imagePullPolicy: string; args: string[] }[] } };
      };
    };
    const container = deployment.spec.template.spec.containers[0]!;
    expect(container.image).toBe('tailscale-gateway:dev-1');
    expect(container.imagePullPolicy).toBe('Never');
    expect(container.args).toContain('--log-format=text');
    // Every key kind sets is a chart value (helm would silently ignore a misspelt one).
    const chartValues = parse(readFileSync(join(REPO_ROOT, 'charts/tailscale-gateway/values.yaml'), 'utf8'));
    const kindValues = parse(readFileSync(join(KIND, 'tailscale-gateway-values.yaml'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    for (const [section, entries] of Object.entries(kindValues))
      for (const key of Object.keys(entries)) expect(chartValues[section]).toHaveProperty(key);
  });
});
