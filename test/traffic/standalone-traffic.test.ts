/**
 * Requests through the real Envoy that Envoy Gateway (EG) starts in its standalone mode, configured by
 * tailscale-gateway standalone (the setup of test/envoy-gateway/standalone.test.ts and
 * site/envoy-gateway.md, on a copy of examples/standalone). A loopback HTTP server stands in for a
 * tailnet service: a TailscaleEndpoints endpoint names it as `externalTarget` (reached directly, as
 * standalone mode reaches every endpoint), and the harness makes its port reachable inside EG's
 * network namespace. What the server sees is the proof:
 *
 * - an HTTPRoute whose backendRef is that TailscaleEndpoints carries `GET /hello` to it;
 * - the generated route `GET /tailscale/<service>/status` arrives as `/status`, with the service's own
 *   name as Host (for an `externalTarget`, its host: here `127.0.0.1`; a tailnet device's is its
 *   `tailscaleFQDN`, which needs a device on a tailnet to show) and the `X-Tailscale-Service`, `-Tailnet` and `-Endpoints` headers site/concepts.md
 *   documents, a client's own `X-Tailscale-Service` overwritten.
 *
 * Run it under `flock /tmp/tsgw-eg.lock`, as every EG test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import {
  loopbackEndpointsYaml,
  type StandaloneStack,
  startStandaloneStack,
} from '../harness/envoy-gateway/standalone-stack.ts';
import { freePort } from '../harness/support/processes.ts';

interface Seen {
  path: string;
  host: string | null;
  headers: Record<string, string>;
}

let stack: StandaloneStack;
let backend: Server<undefined>;
const seen: Seen[] = [];

beforeAll(async () => {
  backend = Bun.serve({
    hostname: '127.0.0.1',
    port: await freePort(),
    fetch(request) {
      const url = new URL(request.url);
      seen.push({
        path: url.pathname + url.search,
        host: request.headers.get('host'),
        headers: Object.fromEntries(request.headers),
      });
      return new Response(`echo ${url.pathname}`);
    },
  });
  const port = backend.port!;
  stack = await startStandaloneStack({
    forward: [port],
    files: {
      'echo.yaml': `${loopbackEndpointsYaml(port)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo, namespace: default }
spec:
  parentRefs: [{ name: eg }]
  hostnames: ["echo.example.com"]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /hello } }]
      backendRefs: [{ group: gateway.tailscale.com, kind: TailscaleEndpoints, name: local }]
`,
    },
  });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  backend?.stop(true);
});

/** GET through Envoy's listener, retried while the route is not there yet (404) or not connected (503). */
async function get(path: string, host: string, headers: Record<string, string> = {}): Promise<Response> {
  const url = `${stack.url}${path}`;
  let last = '';
  for (let i = 0; i < 150; i++) {
    try {
      const response = await fetch(url, {
        headers: { host, ...headers },
        signal: AbortSignal.timeout(5_000),
      });
      if (response.status !== 404 && response.status !== 503) return response;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = String(error);
    }
    await Bun.sleep(200);
  }
  throw new Error(`GET ${path} (Host ${host}) through Envoy never answered: ${last}`);
}

describe('requests through the real Envoy EG runs for tailscale-gateway standalone', () => {
  test('an HTTPRoute with a TailscaleEndpoints backendRef reaches the service', async () => {
    const before = seen.length;
    const response = await get('/hello?x=1', 'echo.example.com');
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('echo /hello');
    const arrived = seen.slice(before);
    expect(arrived.map((s) => s.path)).toEqual(['/hello?x=1']);
  }, 60_000);

  test('GET /tailscale/echo/status arrives as /status with the service’s Host and the X-Tailscale-* headers', async () => {
    const before = seen.length;
    const response = await get('/tailscale/echo/status', 'echo.example.com', {
      'x-tailscale-service': 'forged',
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('echo /status');
    const [request, ...more] = seen.slice(before);
    expect(more).toEqual([]);
    expect(request!.path).toBe('/status');
    expect(request!.host).toBe('127.0.0.1');
    expect(request!.headers['x-tailscale-service']).toBe('echo');
    expect(request!.headers['x-tailscale-tailnet']).toBe('corp');
    expect(request!.headers['x-tailscale-endpoints']).toBe('default/local');
  }, 60_000);

  test('the prefix matches path elements: /tailscale/echoes is not the service', async () => {
    const before = seen.length;
    const response = await fetch(`${stack.url}/tailscale/echoes/status`, {
      headers: { host: 'echo.example.com' },
    });
    expect(response.status).toBe(404);
    expect(seen.slice(before)).toEqual([]);
  }, 30_000);

  test('Envoy rejected nothing along the way', async () => {
    const stats = await stack.eg.envoy.stats('update_rejected$');
    expect([...stats].filter(([, value]) => value !== 0)).toEqual([]);
    expect(stats.size).toBeGreaterThan(0);
  });
});
