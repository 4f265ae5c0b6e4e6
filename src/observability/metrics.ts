/**
 * Prometheus metrics for the operator.
 *
 * Everything registers on an injected `Registry`, never prom-client's global one, so tests and several
 * servers in one process do not collide on "metric already registered" (reference §4.1). Hook statistics
 * are recorded once through `recordHookCall` and fan out to both Prometheus and the in-memory health
 * tracker, so `/metrics` and `/health` can never disagree about what happened.
 *
 * Label values are bounded by construction: hook names come from our code and codes from the gRPC code
 * set. Never pass resource names or error text as labels.
 *
 * @module
 */

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Health } from './health.ts';

/**
 * Hook latency buckets in seconds. Hooks sit on Envoy Gateway's translation path and should answer in
 * milliseconds, so resolution is concentrated below 100 ms, with a tail up to the 10 s where Envoy Gateway
 * would long since have given up.
 */
export const DEFAULT_HOOK_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Request size buckets in bytes, ×4 from 256 B to the 256 MiB default message limit: small per-route
 * hooks sit at the bottom, PostTranslateModify of a large Gateway near the top, and a request close to
 * the limit shows up before it starts failing with RESOURCE_EXHAUSTED.
 */
export const DEFAULT_REQUEST_BYTES_BUCKETS = [
  256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456,
];

export interface MetricsOptions {
  /** Registry every family registers on. Default: a fresh `new Registry()`, not the global one. */
  registry?: Registry;
  /** Build version, exported as `tsgw_build_info{version}`. Required so dashboards can tell rollouts apart. */
  version: string;
  /** Health tracker that `recordHookCall` also feeds. Default: none (Prometheus only). */
  health?: Pick<Health, 'recordHookCall'>;
  /**
   * Whether to register prom-client's default `process_*` and `nodejs_*` families. Default true. Under
   * Bun the `nodejs_*` ones report Bun's Node-compatibility values (reference §4.1); the `process_*` ones
   * are accurate.
   */
  defaultMetrics?: boolean;
  /** Bucket bounds for `tsgw_extension_hook_duration_seconds`. Default `DEFAULT_HOOK_DURATION_BUCKETS`. */
  hookDurationBuckets?: number[];
  /** Bucket bounds for `tsgw_extension_request_bytes`. Default `DEFAULT_REQUEST_BYTES_BUCKETS`. */
  requestBytesBuckets?: number[];
}

export interface Metrics {
  /** The registry to serve; its `contentType` goes on the `/metrics` response. */
  registry: Registry;
  /** `tsgw_extension_hook_calls_total{hook,code}`. */
  hookCalls: Counter<'hook' | 'code'>;
  /** `tsgw_extension_hook_duration_seconds{hook}`. */
  hookDuration: Histogram<'hook'>;
  /**
   * Records one finished hook call. `code` is the gRPC status in connect's lower snake case (`ok`,
   * `invalid_argument`, `internal`, …); only `ok` (any case) counts as a success for health.
   */
  recordHookCall(hook: string, code: string, seconds: number): void;
  /** `tsgw_extension_request_bytes{hook}`: size of each hook request message as received. */
  requestBytes: Histogram<'hook'>;
  /** `tsgw_extension_resources_added_total{hook,resource}`: resources a hook added to Envoy Gateway's xDS. */
  resourcesAdded: Counter<'hook' | 'resource'>;
  /** `tsgw_extension_inflight_bytes`: bytes large hook calls hold from the in-flight budget. */
  inflightBytes: Gauge;
  /** `tsgw_extension_waiting_calls`: large hook calls waiting for the in-flight budget. */
  waitingCalls: Gauge;
  /** `tsgw_extension_refused_calls_total{hook}`: calls answered UNAVAILABLE after waiting until their deadline. */
  refusedCalls: Counter<'hook'>;
  /** `tsgw_extension_budget_wait_seconds{hook}`: how long each large call waited for the in-flight budget. */
  budgetWait: Histogram<'hook'>;
}

/**
 * Creates the operator's metric families on a registry.
 *
 * @throws when a family is already registered on the given registry (prom-client's own error), which
 *   means two `createMetrics` calls share a registry by mistake.
 * @example
 * const health = createHealth();
 * const metrics = createMetrics({ version: '0.1.0', health });
 * metrics.recordHookCall('PostRouteModify', 'ok', 0.004);
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const {
    registry = new Registry(),
    version,
    health,
    defaultMetrics = true,
    hookDurationBuckets = DEFAULT_HOOK_DURATION_BUCKETS,
    requestBytesBuckets = DEFAULT_REQUEST_BYTES_BUCKETS,
  } = options;

  if (defaultMetrics) collectDefaultMetrics({ register: registry });

  const buildInfo = new Gauge({
    name: 'tsgw_build_info',
    help: 'Always 1; the labels identify the running build.',
    labelNames: ['version'],
    registers: [registry],
  });
  buildInfo.set({ version }, 1);

  const hookCalls = new Counter({
    name: 'tsgw_extension_hook_calls_total',
    help: 'Envoy Gateway extension hook calls, by hook and gRPC status code.',
    labelNames: ['hook', 'code'] as const,
    registers: [registry],
  });

  const hookDuration = new Histogram({
    name: 'tsgw_extension_hook_duration_seconds',
    help: 'Time spent answering Envoy Gateway extension hook calls.',
    labelNames: ['hook'] as const,
    buckets: hookDurationBuckets,
    registers: [registry],
  });

  const requestBytes = new Histogram({
    name: 'tsgw_extension_request_bytes',
    help: 'Size of Envoy Gateway extension hook requests in bytes, as received (before decompression).',
    labelNames: ['hook'] as const,
    buckets: requestBytesBuckets,
    registers: [registry],
  });

  const resourcesAdded = new Counter({
    name: 'tsgw_extension_resources_added_total',
    help: "xDS resources the extension hooks added to Envoy Gateway's translation, by hook and resource kind.",
    labelNames: ['hook', 'resource'] as const,
    registers: [registry],
  });

  const inflightBytes = new Gauge({
    name: 'tsgw_extension_inflight_bytes',
    help: 'Bytes that large extension hook calls being served hold from the in-flight budget (--grpc-inflight-bytes): twice each request, more when an answer is larger.',
    registers: [registry],
  });

  const waitingCalls = new Gauge({
    name: 'tsgw_extension_waiting_calls',
    help: 'Large extension hook calls waiting for room in the in-flight budget; their clients are held back by HTTP/2 flow control.',
    registers: [registry],
  });

  const refusedCalls = new Counter({
    name: 'tsgw_extension_refused_calls_total',
    help: 'Extension hook calls answered UNAVAILABLE because they waited for the in-flight budget until their deadline; Envoy Gateway retries UNAVAILABLE.',
    labelNames: ['hook'] as const,
    registers: [registry],
  });

  const budgetWait = new Histogram({
    name: 'tsgw_extension_budget_wait_seconds',
    help: 'Time each large extension hook call waited for room in the in-flight budget before its body was read (0 when it fitted at once).',
    labelNames: ['hook'] as const,
    buckets: hookDurationBuckets,
    registers: [registry],
  });

  return {
    registry,
    budgetWait,
    inflightBytes,
    waitingCalls,
    refusedCalls,
    hookCalls,
    hookDuration,
    requestBytes,
    resourcesAdded,
    recordHookCall(hook, code, seconds) {
      const duration = Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
      hookCalls.inc({ hook, code });
      hookDuration.observe({ hook }, duration);
      health?.recordHookCall(hook, code.toLowerCase() === 'ok', duration * 1000);
    },
  };
}
