import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OperatorError } from '../errors.ts';
import { loadKubeConfig, resolveKubeConfigSource, SERVICE_ACCOUNT_DIR } from './kube-config.ts';

let root: string;
const kubeconfig = (server: string, extra = '') => `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${server}
users:
- name: u
  user:
    token: t0ken
contexts:
- name: ctx
  context: { cluster: c, user: u }
current-context: ctx
${extra}`;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'tsgw-kubeconfig-'));
  mkdirSync(join(root, 'home', '.kube'), { recursive: true });
  writeFileSync(join(root, 'home', '.kube', 'config'), kubeconfig('https://home.example:6443'));
  writeFileSync(join(root, 'explicit.yaml'), kubeconfig('https://explicit.example:6443'));
  writeFileSync(join(root, 'env.yaml'), kubeconfig('https://env.example:6443'));
  writeFileSync(
    join(root, 'no-context.yaml'),
    'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n',
  );
  mkdirSync(join(root, 'pod', SERVICE_ACCOUNT_DIR), { recursive: true });
  writeFileSync(join(root, 'pod', SERVICE_ACCOUNT_DIR, 'token'), 'sa-token');
  writeFileSync(join(root, 'pod', SERVICE_ACCOUNT_DIR, 'ca.crt'), 'not a real CA');
  writeFileSync(join(root, 'pod', SERVICE_ACCOUNT_DIR, 'namespace'), 'tailscale-gateway');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };

describe('resolveKubeConfigSource', () => {
  test('explicit path beats KUBECONFIG, in-cluster and home', () => {
    const source = resolveKubeConfigSource({
      kubeconfig: join(root, 'explicit.yaml'),
      env: { ...inCluster, KUBECONFIG: join(root, 'env.yaml') },
      homeDir: join(root, 'home'),
      inClusterRoot: join(root, 'pod'),
    });
    expect(source).toEqual({ kind: 'explicit', paths: [join(root, 'explicit.yaml')] });
  });

  test('KUBECONFIG beats in-cluster; empty entries are skipped', () => {
    const source = resolveKubeConfigSource({
      env: { ...inCluster, KUBECONFIG: `:${join(root, 'env.yaml')}:` },
      homeDir: join(root, 'home'),
      inClusterRoot: join(root, 'pod'),
    });
    expect(source).toEqual({ kind: 'env', paths: [join(root, 'env.yaml')] });
  });

  test('in-cluster beats ~/.kube/config, but only with the service env and the token file', () => {
    const base = { homeDir: join(root, 'home'), inClusterRoot: join(root, 'pod') };
    expect(resolveKubeConfigSource({ ...base, env: inCluster }).kind).toBe('in-cluster');
    expect(resolveKubeConfigSource({ ...base, env: {} }).kind).toBe('home');
    expect(
      resolveKubeConfigSource({ ...base, env: inCluster, inClusterRoot: join(root, 'nowhere') }).kind,
    ).toBe('home');
  });

  test('nothing found is Invalid and lists what was tried', () => {
    try {
      resolveKubeConfigSource({
        env: {},
        homeDir: join(root, 'nohome'),
        inClusterRoot: join(root, 'nowhere'),
      });
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(OperatorError);
      expect((error as OperatorError).code).toBe('Invalid');
      expect((error as OperatorError).message).toContain('KUBECONFIG is unset');
      expect((error as OperatorError).message).toContain(join(root, 'nohome', '.kube', 'config'));
    }
  });
});

describe('loadKubeConfig', () => {
  test('loads each source', () => {
    const env = { KUBECONFIG: join(root, 'env.yaml') };
    expect(loadKubeConfig({ kubeconfig: join(root, 'explicit.yaml'), env }).getCurrentCluster()?.server).toBe(
      'https://explicit.example:6443',
    );
    expect(loadKubeConfig({ env }).getCurrentCluster()?.server).toBe('https://env.example:6443');
    expect(loadKubeConfig({ env: {}, homeDir: join(root, 'home') }).getCurrentCluster()?.server).toBe(
      'https://home.example:6443',
    );
    const pod = loadKubeConfig({
      env: inCluster,
      homeDir: join(root, 'home'),
      inClusterRoot: join(root, 'pod'),
    });
    expect(pod.getCurrentCluster()?.server).toBe('https://10.0.0.1:443');
    expect(pod.getContextObject(pod.getCurrentContext())?.namespace).toBe('tailscale-gateway');
  });

  test('a missing explicit file is an error naming it, not a fallback', () => {
    expect(() =>
      loadKubeConfig({ kubeconfig: join(root, 'typo.yaml'), homeDir: join(root, 'home') }),
    ).toThrow(/typo\.yaml \(from --kubeconfig\).*does not exist/);
  });

  test('a kubeconfig without a usable context is Invalid and names the source', () => {
    expect(() => loadKubeConfig({ env: { KUBECONFIG: join(root, 'no-context.yaml') } })).toThrow(
      /no-context\.yaml \(from KUBECONFIG\).*no cluster with a server/,
    );
  });
});
