import { afterEach, beforeEach, expect, test } from 'bun:test';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryResourceStore } from '../model/resource-store.ts';
import { createLogger } from '../observability/logger.ts';
import { createReadiness } from '../observability/readiness.ts';
import { ENVOY_GATEWAY_FILE } from './envoy-gateway-resources.ts';
import { createReloader } from './reloader.ts';

const endpoints = (name: string) => `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata: { name: ${name}, namespace: default }
spec:
  tailnet: corp
  endpoints: [{ name: web, tailscaleFQDN: web.tail1234.ts.net, port: 80 }]
`;

let base: string;
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'tsgw-reloader-'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function setup(envoyGatewayDir?: string) {
  const records: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'debug',
    destination: { write: (line: string) => void records.push(JSON.parse(line)) },
  });
  const readiness = createReadiness();
  const store = createMemoryResourceStore();
  const reloader = createReloader({
    dir: join(base, 'res'),
    envoyGatewayDir,
    store,
    log,
    readiness: readiness.component('resources'),
  });
  return { records, readiness, store, reloader };
}

test('a directory that cannot be read is logged once, its recovery once, and the last state stays', async () => {
  await Bun.write(join(base, 'res', 'a.yaml'), endpoints('a'));
  const { records, store, reloader, readiness } = setup();
  await reloader.reload('start');
  await rename(join(base, 'res'), join(base, 'gone'));
  for (let i = 0; i < 3; i++) await reloader.reload('periodic rescan');
  expect(records.filter((r) => r.level === 'error')).toHaveLength(1);
  expect(store.snapshot().endpoints.map((e) => e.metadata.name)).toEqual(['a']);
  expect(readiness.isReady()).toBe(true);
  await rename(join(base, 'gone'), join(base, 'res'));
  await reloader.reload('periodic rescan');
  await reloader.reload('periodic rescan');
  expect(records.filter((r) => r.msg === 'resources directory readable again')).toHaveLength(1);
});

test('an unchanged re-read replaces nothing and rewrites nothing', async () => {
  await Bun.write(join(base, 'res', 'a.yaml'), endpoints('a'));
  const egDir = join(base, 'eg');
  const { records, store, reloader } = setup(egDir);
  await reloader.reload('start');
  const version = store.snapshot().version;
  const written = await readFile(join(egDir, ENVOY_GATEWAY_FILE), 'utf8');
  await reloader.reload('periodic rescan');
  expect(store.snapshot().version).toBe(version);
  expect(records.filter((r) => r.msg === 'Envoy Gateway resources written')).toHaveLength(1);
  expect(records.filter((r) => r.msg === 'resources unchanged')).toHaveLength(1);
  // Someone deletes or edits EG's file: the next re-read puts it back.
  await writeFile(join(egDir, ENVOY_GATEWAY_FILE), 'edited by hand\n');
  await reloader.reload('periodic rescan');
  expect(await readFile(join(egDir, ENVOY_GATEWAY_FILE), 'utf8')).toBe(written);
});
