import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OperatorError } from '../errors.ts';
import { buildSnapshot } from '../model/resource-store.ts';
import {
  gatewayRevision,
  REVISION_ANNOTATION,
} from '../resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import {
  checkEnvoyGatewayDirectory,
  ENVOY_GATEWAY_FILE,
  renderEnvoyGatewayResources,
  writeEnvoyGatewayResources,
} from './envoy-gateway-resources.ts';
import { loadResourceDirectory, type ResourceDirectory } from './resource-directory.ts';

const EXAMPLE = join(import.meta.dir, '..', '..', 'examples', 'standalone');

type Doc = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
};

const render = (directory: ResourceDirectory) =>
  renderEnvoyGatewayResources(
    directory,
    buildSnapshot(
      directory.resources.map((r) => r.resource),
      1,
    ),
    'examples/standalone',
  );
const documents = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Doc);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgw-eg-resources-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('renderEnvoyGatewayResources', () => {
  test('holds only kinds Envoy Gateway loads, with the revision annotation on the joined Gateway', async () => {
    const directory = await loadResourceDirectory(EXAMPLE);
    const docs = documents(render(directory));
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      'TailscaleEndpoints/web',
      'TailscaleEndpoints/api',
      'GatewayClass/eg',
      'EnvoyProxy/host',
      'Gateway/eg',
      'HTTPRoute/api',
      'TailscaleRoutePolicy/api-rules',
    ]);
    const gateway = docs.find((d) => d.kind === 'Gateway')!;
    const snapshot = buildSnapshot(
      directory.resources.map((r) => r.resource),
      1,
    );
    expect(gateway.metadata.annotations?.[REVISION_ANNOTATION]).toBe(
      gatewayRevision('default/eg', snapshot)!,
    );
    expect(docs.find((d) => d.kind === 'GatewayClass')!.metadata.annotations).toBeUndefined();
  });

  test('a TailscaleGateway edit changes the Gateway’s annotation and nothing else', async () => {
    await writeFile(join(dir, 'gateway.yaml'), await readFile(join(EXAMPLE, 'gateway.yaml'), 'utf8'));
    await writeFile(
      join(dir, 'envoy-gateway.yaml'),
      await readFile(join(EXAMPLE, 'envoy-gateway.yaml'), 'utf8'),
    );
    await writeFile(join(dir, 'endpoints.yaml'), await readFile(join(EXAMPLE, 'endpoints.yaml'), 'utf8'));
    const before = render(await loadResourceDirectory(dir));
    expect(render(await loadResourceDirectory(dir))).toBe(before);
    const edited = (await readFile(join(dir, 'gateway.yaml'), 'utf8')).replace(
      'pathPrefix: /tailscale/{service}/',
      'pathPrefix: /tailnet/{service}/',
    );
    await writeFile(join(dir, 'gateway.yaml'), edited);
    const after = render(await loadResourceDirectory(dir));
    expect(after).not.toBe(before);
    const revision = (text: string) =>
      documents(text).find((d) => d.kind === 'Gateway')!.metadata.annotations![REVISION_ANNOTATION];
    expect(revision(after)).not.toBe(revision(before));
    const strip = (text: string) => text.replace(/tailscale-gateway-revision: \S+/, '');
    expect(strip(after)).toBe(strip(before));
  });

  test('a Gateway no TailscaleGateway joins loses a stale annotation and keeps its others', async () => {
    await writeFile(
      join(dir, 'gw.yaml'),
      `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: lone
  namespace: default
  annotations:
    ${REVISION_ANNOTATION}: stale
    example.com/keep: "yes"
spec: { gatewayClassName: eg, listeners: [] }
`,
    );
    const [gateway] = documents(render(await loadResourceDirectory(dir)));
    expect(gateway!.metadata.annotations).toEqual({ 'example.com/keep': 'yes' });
  });
});

describe('the rendered file as Envoy Gateway reads it', () => {
  test('no document is empty or comments only, and nothing to write is an empty file', async () => {
    const text = render(await loadResourceDirectory(EXAMPLE));
    // EG splits on `---` lines (k8s.io/apimachinery's YAML reader) and needs an object in each part.
    const parts = text.split(/^---$/m);
    expect(parts).toHaveLength(7);
    for (const part of parts) expect(part.split('\n').some((l) => /^apiVersion: /.test(l))).toBe(true);
    expect(text).toStartWith('# Written by tailscale-gateway standalone from examples/standalone');
    expect(render({ resources: [], problems: [], ignored: [] })).toBe('');
  });
});

describe('writeEnvoyGatewayResources', () => {
  test('writes by rename, leaves no temporary file, and does not rewrite an unchanged file', async () => {
    const target = join(dir, 'eg');
    expect(await writeEnvoyGatewayResources(target, 'a: 1\n')).toBe(true);
    expect(await readFile(join(target, ENVOY_GATEWAY_FILE), 'utf8')).toBe('a: 1\n');
    const written = (await stat(join(target, ENVOY_GATEWAY_FILE))).mtimeMs;
    expect(await writeEnvoyGatewayResources(target, 'a: 1\n')).toBe(false);
    expect((await stat(join(target, ENVOY_GATEWAY_FILE))).mtimeMs).toBe(written);
    expect(await writeEnvoyGatewayResources(target, 'a: 2\n')).toBe(true);
    expect(await readdir(target)).toEqual([ENVOY_GATEWAY_FILE]);
  });
});

describe('checkEnvoyGatewayDirectory', () => {
  test('rejects the resources directory itself or a directory inside it, naming the flag', () => {
    for (const inside of ['res', 'res/eg', './res/sub/eg']) {
      const error = (() => {
        try {
          checkEnvoyGatewayDirectory('res', inside);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(OperatorError);
      expect((error as OperatorError).message).toContain('--envoy-gateway-resources');
    }
    for (const outside of ['eg', 'res-eg', '../res/eg', '/tmp/eg', 'res/../eg'])
      expect(() => checkEnvoyGatewayDirectory('res', outside)).not.toThrow();
  });
});
