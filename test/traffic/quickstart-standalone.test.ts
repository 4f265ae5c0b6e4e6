/**
 * Flow 6 of issue 17, the quickstart's standalone path as site/quickstart.md and site/envoy-gateway.md
 * give it: `npm start` (from source, in a working directory holding the examples), `curl
 * localhost:8080/readyz`, `envoy-gateway certgen --local`, `envoy-gateway server --config-path
 * examples/envoy-gateway/standalone.yaml` with that config unchanged, and a request through the Envoy
 * it starts (the real one, PyPI's) to a service. Two departures, both for a shared test machine: the
 * ports `npm start` binds come from TSGW_GRPC_ADDR/TSGW_HTTP_ADDR (free ones; inside EG's network
 * namespace the config's 127.0.0.1:5005 leads to that gRPC port), and the service is a loopback server
 * named by a TailscaleEndpoints `externalTarget` added to the examples, standing in for a tailnet
 * device (standalone mode reaches a device only from a host on the tailnet).
 *
 * Run it under `flock /tmp/tsgw-eg.lock`, as every EG test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'bun';
import {
  loopbackEndpointsYaml,
  type StandaloneStack,
  startStandaloneStack,
} from '../harness/envoy-gateway/standalone-stack.ts';
import { REPO_ROOT } from '../harness/support/binary.ts';
import { freePort } from '../harness/support/processes.ts';

let stack: StandaloneStack;
let backend: Server<undefined>;
const seen: string[] = [];

beforeAll(async () => {
  backend = Bun.serve({
    hostname: '127.0.0.1',
    port: await freePort(),
    fetch(request) {
      seen.push(new URL(request.url).pathname);
      return new Response('device says hi');
    },
  });
  stack = await startStandaloneStack({
    npmStart: true,
    forward: [backend.port!],
    files: { 'echo.yaml': loopbackEndpointsYaml(backend.port!) },
  });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  backend?.stop(true);
});

describe('the quickstart, standalone, for real', () => {
  test('the pages give the steps this test takes', () => {
    const quickstart = readFileSync(join(REPO_ROOT, 'site/quickstart.md'), 'utf8');
    expect(quickstart).toContain('\nnpm ci && npm start\n');
    expect(quickstart).toContain('curl -s localhost:8080/readyz');
    expect(quickstart).toContain('./envoy-gateway.md#standalone-no-kubernetes');
    const page = readFileSync(join(REPO_ROOT, 'site/envoy-gateway.md'), 'utf8');
    expect(page).toContain('\nenvoy-gateway certgen --local ');
    expect(page).toContain('\nenvoy-gateway server --config-path examples/envoy-gateway/standalone.yaml');
    // The EG config EG ran with is the repository's, byte for byte.
    const config = 'examples/envoy-gateway/standalone.yaml';
    expect(readFileSync(join(stack.resources, '../..', config), 'utf8')).toBe(
      readFileSync(join(REPO_ROOT, config), 'utf8'),
    );
  });

  test('npm start is up and ready: /readyz', async () => {
    expect(stack.ours.lines.some((line) => line.includes('"starting tailscale-gateway"'))).toBe(true);
    const response = await fetch(`${stack.ours.httpUrl}/readyz`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { status: string }).status).toBe('ready');
  });

  test('a request through the Envoy EG started reaches the service on its generated route', async () => {
    let response: Response | undefined;
    for (let i = 0; i < 150; i++) {
      response = await fetch(`${stack.url}/tailscale/echo/status`, { headers: { host: 'api.example.com' } });
      if (response.status === 200) break;
      await Bun.sleep(200);
    }
    expect(response?.status).toBe(200);
    expect(await response!.text()).toBe('device says hi');
    expect(seen.at(-1)).toBe('/status');
  }, 60_000);
});
