/**
 * The cost mode-HTTP published services add to PostTranslateModify, in process: EG's RouteConfigurations
 * (many, each with many virtual hosts) go through the hook with and without TailscaleGateways that
 * publish services on one of the Gateways. Only that Gateway's RouteConfigurations are decoded; every
 * other one is read as a summary and passed on as the same bytes, which is what this shows. A benchmark,
 * not a test: it prints, asserts nothing.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { RouteConfigurationSchema } from '../gen/envoy/config/route/v3/route_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../gen/tsgw/extension/v1/raw_pb.ts';
import { API_VERSION, parseResource } from '../src/api/index.ts';
import { createExtensionHooks } from '../src/extension/hooks/index.ts';
import { snapshotOf } from '../src/testing/xds-resources.ts';

const quiet = { warn: () => {}, info: () => {}, debug: () => {} };

/** `gateways` Gateways, each one HTTP RouteConfiguration with `hostsPer` virtual hosts of 4 routes. */
function routeConfigurations(gateways: number, hostsPer: number): Uint8Array[] {
  return Array.from({ length: gateways }, (_, g) =>
    toBinary(
      RouteConfigurationSchema,
      create(RouteConfigurationSchema, {
        name: `default/eg-${g}/http`,
        ignorePortInHostMatching: true,
        virtualHosts: Array.from({ length: hostsPer }, (_, h) => ({
          name: `default/eg-${g}/http/host-${h}_example_com`,
          domains: [`host-${h}.example.com`],
          metadata: {
            filterMetadata: {
              'envoy-gateway': {
                resources: [{ kind: 'Gateway', name: `eg-${g}`, namespace: 'default', sectionName: 'http' }],
              },
            },
          },
          routes: Array.from({ length: 4 }, (_, r) => ({
            name: `httproute/default/route-${h}/rule/${r}/match/0/host-${h}_example_com`,
            match: { pathSpecifier: { case: 'prefix' as const, value: `/r${r}` } },
            action: {
              case: 'route' as const,
              value: {
                clusterSpecifier: {
                  case: 'cluster' as const,
                  value: `httproute/default/route-${h}/rule/${r}`,
                },
              },
            },
          })),
        })),
      }),
    ),
  );
}

/** A TailscaleGateway on `eg-0` publishing `services` services of mode HTTP. */
const publisher = (services: number) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleGateway',
    metadata: { name: 'edge', namespace: 'default' },
    spec: {
      gatewayRef: { name: 'eg-0' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ingress: {
            proxyGroup: 'ingress',
            services: Array.from({ length: services }, (_, i) => ({
              name: `app-${i}`,
              mode: 'HTTP',
              target: { name: `app-${i}`, port: 8080 },
            })),
          },
        },
      ],
    },
  });

function measure(run: () => void, iterations: number): { median: number; p99: number } {
  for (let i = 0; i < 5; i++) run();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    run();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { median: at(0.5), p99: at(0.99) };
}

export function benchIngress(): void {
  const hooks = createExtensionHooks({ proxies: false, log: quiet });
  const rows: string[] = [];
  for (const [gateways, hostsPer] of [
    [10, 100],
    [100, 100],
  ] as const) {
    const routes = routeConfigurations(gateways, hostsPer);
    const request = create(RawPostTranslateModifyRequestSchema, { routes });
    const bytes = routes.reduce((sum, r) => sum + r.byteLength, 0);
    const without = snapshotOf();
    const withServices = snapshotOf(publisher(16) as never);
    const iterations = gateways >= 100 ? 100 : 400;
    const base = measure(() => hooks.postTranslateModify(request, without), iterations);
    const ingress = measure(() => hooks.postTranslateModify(request, withServices), iterations);
    const cell = (f: { median: number; p99: number }) => `${f.median.toFixed(2)} / ${f.p99.toFixed(2)}`;
    rows.push(
      `| ${gateways} × ${hostsPer} | ${(bytes / 1024 / 1024).toFixed(2)} MiB | ${cell(base)} | ${cell(ingress)} |`,
    );
  }
  console.log('\nPostTranslateModify in process, median / p99 ms (16 mode-HTTP services on one Gateway):');
  console.log('| RouteConfigurations × virtual hosts | routes size | no published services | with them |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}

if (import.meta.main) benchIngress();
