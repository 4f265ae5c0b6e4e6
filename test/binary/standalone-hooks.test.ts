/**
 * The main job, end to end: the compiled binary in standalone mode serving examples/standalone, called
 * the way Envoy Gateway calls it by an independent gRPC client (grpc-js + proto-loader over the same
 * .proto files, none of our generated code), and the routes and clusters that come back.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, type RunningBinary, startBinary } from '../harness/support/binary.ts';
import { loadProtoPackage } from '../harness/support/proto-package.ts';

// biome-ignore lint/suspicious/noExplicitAny: proto-loader hands back untyped objects; the assertions check their shape.
type Message = Record<string, any>;
type Callback = (error: grpc.ServiceError | null, response?: Message) => void;
type Client = grpc.Client & Record<string, (request: unknown, callback: Callback) => void>;

let running: RunningBinary;
let client: Client;

const call = (method: string, request: unknown) =>
  new Promise<Message>((resolve, reject) =>
    client[method]!(request, (error, response) => (error ? reject(error) : resolve(response ?? {}))),
  );

/** An example object as Envoy Gateway sends it: the whole object as JSON bytes. */
function exampleObject(file: string, name: string): Buffer {
  const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'examples', 'standalone', file), 'utf8'));
  const object = docs.map((d) => d.toJS()).find((o) => o?.metadata?.name === name);
  if (!object) throw new Error(`${name} not in ${file}`);
  return Buffer.from(JSON.stringify(object));
}

beforeAll(async () => {
  running = await startBinary([
    'standalone',
    '--resources',
    'examples/standalone',
    '--http-addr',
    '127.0.0.1:0',
    '--grpc-addr',
    '127.0.0.1:0',
  ]);
  const listening = await running.waitForLog('extension server listening');
  // The sizing the docs state, with the defaults: the 32 MiB budget, and 2 × 256 MiB for one call alone.
  expect(listening).toMatchObject({
    inflightBytes: 33_554_432,
    memoryBoundBytes: 2 * (268_435_456 + 5) + 100 * 196_607,
  });
  await running.waitForLog('resources loaded');
  const pkg = (await loadProtoPackage(['envoygateway/extension/service.proto'])) as Message;
  const Service = pkg.envoygateway.extension.EnvoyGatewayExtension as grpc.ServiceClientConstructor;
  client = new Service(
    String(listening.url).replace(/^http:\/\//, ''),
    grpc.credentials.createInsecure(),
  ) as unknown as Client;
}, 120_000);

afterAll(() => {
  client?.close();
  running?.process.kill('SIGKILL');
});

describe('standalone mode serves the example resources to Envoy Gateway', () => {
  test('PostVirtualHostModify adds a route per tailnet service before the catch-all', async () => {
    const response = await call('PostVirtualHostModify', {
      virtualHost: {
        name: 'default/eg/http/www_example_com',
        domains: ['www.example.com'],
        routes: [
          {
            name: 'httproute/default/site/rule/0/match/0/www_example_com',
            match: { prefix: '/' },
            route: { cluster: 'httproute/default/site/rule/0' },
          },
        ],
      },
      postVirtualHostContext: {},
    });
    const routes = response.virtualHost.routes as Message[];
    const names = routes.map((r) => r.name);
    expect(names.at(-1)).toBe('httproute/default/site/rule/0/match/0/www_example_com');
    expect(names).toContain('tailscale/default/web/httpbin');
    expect(names).toContain('tailscale/default/web/grafana');
    // api has a primary and a standby at two priorities: one failover route for the whole object.
    expect(names).toContain('tailscale/default/api');
    const httpbin = routes.find((r) => r.name === 'tailscale/default/web/httpbin')!;
    // /tailscale/httpbin itself and everything below it, reaching httpbin as / and /…
    expect(httpbin.match.pathSeparatedPrefix).toBe('/tailscale/httpbin');
    expect(httpbin.route.regexRewrite).toMatchObject({
      pattern: { regex: '^/tailscale/httpbin/*' },
      substitution: '/',
    });
    expect(httpbin.route.cluster).toBe('tailscale/default/web/httpbin');
    const headers = (httpbin.requestHeadersToAdd as Message[]).map((h) => h.header.key);
    expect(headers).toEqual(expect.arrayContaining(['X-Tailscale-Service', 'X-Tailscale-Tailnet']));
  });

  test('PostVirtualHostModify leaves a virtual host of another Gateway unchanged', async () => {
    const response = await call('PostVirtualHostModify', {
      virtualHost: { name: 'default/other/http/x', domains: ['x'], routes: [] },
      postVirtualHostContext: {},
    });
    expect(response.virtualHost).toBeUndefined();
  });

  test('PostTranslateModify adds the clusters and returns Envoy Gateway’s own untouched, secrets included', async () => {
    const secret = {
      name: 'default/eg-tls',
      tlsCertificate: {
        certificateChain: {
          inlineBytes: Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'),
        },
        privateKey: {
          inlineBytes: Buffer.from('-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n'),
        },
      },
    };
    const response = await call('PostTranslateModify', {
      postTranslateContext: {},
      clusters: [{ name: 'httproute/default/site/rule/0', type: 'EDS', connectTimeout: { seconds: '10' } }],
      secrets: [secret],
    });
    const clusters = response.clusters as Message[];
    const byName = new Map(clusters.map((c) => [c.name, c]));
    expect(byName.get('httproute/default/site/rule/0')?.type).toBe('EDS');
    // Standalone mode has no proxies: httpbin is reached at its externalTarget by DNS, the primary API by IP.
    const httpbin = byName.get('tailscale/default/web/httpbin')!;
    expect(httpbin.type).toBe('STRICT_DNS');
    const address = httpbin.loadAssignment.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress;
    expect(address).toMatchObject({ address: 'httpbin.org', portValue: 80 });
    expect(byName.get('tailscale/default/api/api-primary')?.type).toBe('STATIC');
    const failover = byName.get('tailscale/default/api')!;
    expect(failover.loadAssignment.endpoints.map((l: Message) => l.priority ?? 0)).toEqual([0, 1]);
    expect(failover.outlierDetection).toBeDefined();
    expect(response.secrets).toHaveLength(1);
    expect(response.secrets[0].name).toBe('default/eg-tls');
    expect(Buffer.from(response.secrets[0].tlsCertificate.privateKey.inlineBytes).toString()).toContain(
      'MIIE',
    );
  });

  test('PostClusterModify turns Envoy Gateway’s empty custom-backend cluster into a failover cluster', async () => {
    const response = await call('PostClusterModify', {
      cluster: {
        name: 'httproute/default/api/rule/0',
        type: 'EDS',
        edsClusterConfig: { edsConfig: { ads: {} }, serviceName: 'httproute/default/api/rule/0' },
        connectTimeout: { seconds: '10' },
      },
      postClusterContext: {
        backendExtensionResources: [{ unstructuredBytes: exampleObject('endpoints.yaml', 'api') }],
      },
    });
    const cluster = response.cluster;
    expect(cluster.name).toBe('httproute/default/api/rule/0');
    expect(cluster.edsClusterConfig).toBeUndefined();
    expect(cluster.loadAssignment.clusterName).toBe('httproute/default/api/rule/0');
    expect(cluster.loadAssignment.endpoints.map((l: Message) => l.priority ?? 0)).toEqual([0, 1]);
    expect(cluster.healthChecks?.length).toBeGreaterThan(0);
  });

  test('PostRouteModify applies the TailscaleRoutePolicy that targets the HTTPRoute', async () => {
    const response = await call('PostRouteModify', {
      route: {
        name: 'httproute/default/api/rule/0/match/0/api_example_com',
        match: { prefix: '/' },
        route: { cluster: 'httproute/default/api/rule/0' },
      },
      postRouteContext: {
        hostnames: ['api.example.com'],
        extensionResources: [{ unstructuredBytes: exampleObject('endpoints.yaml', 'api') }],
      },
    });
    const route = response.route;
    expect(route.requestHeadersToAdd.map((h: Message) => h.header.key)).toContain('X-Forwarded-By');
    expect(route.requestHeadersToRemove).toContain('X-Debug');
    expect(route.route.timeout).toMatchObject({ seconds: '30' });
  });

  test('a malformed extension resource is InvalidArgument and the server keeps serving', async () => {
    const error = await call('PostClusterModify', {
      cluster: { name: 'httproute/default/api/rule/0', type: 'EDS' },
      postClusterContext: { backendExtensionResources: [{ unstructuredBytes: Buffer.from('{not json') }] },
    }).catch((e: grpc.ServiceError) => e);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const health = await fetch(`${running.httpUrl}/readyz`);
    expect(health.status).toBe(200);
  });
});
