/**
 * Prometheus families for Tailscale API traffic.
 *
 * A multi-tailnet operator creates one client per tailnet on one registry, so families are looked up on
 * the registry before being created: the second client reuses them instead of failing with "already
 * registered". Labels are bounded by construction: methods, templated endpoints, status codes and a
 * fixed set of retry reasons; never ids, names, tailnets or error text.
 *
 * @module
 */

import { Counter, Histogram, type Registry } from 'prom-client';

/** Why a call was attempted again. */
export type RetryReason = 'rate_limited' | 'server_error' | 'network' | 'timeout' | 'token_refresh';

export interface ApiMetrics {
  /** One finished HTTP exchange; `code` is the status, or `network` / `timeout` when there was none. */
  observe(method: string, endpoint: string, code: string, seconds: number): void;
  retry(reason: RetryReason): void;
}

/** Tailscale API latency buckets in seconds: tens of milliseconds normally, up to the 30 s call timeout. */
const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export function createApiMetrics(registry: Registry | undefined): ApiMetrics {
  if (!registry) return { observe() {}, retry() {} };
  const requests = reuse(
    registry,
    'tsgw_tailscale_api_requests_total',
    () =>
      new Counter({
        name: 'tsgw_tailscale_api_requests_total',
        help: 'Tailscale API HTTP requests, by method, templated endpoint and status code.',
        labelNames: ['method', 'endpoint', 'code'] as const,
        registers: [registry],
      }),
  );
  const duration = reuse(
    registry,
    'tsgw_tailscale_api_request_duration_seconds',
    () =>
      new Histogram({
        name: 'tsgw_tailscale_api_request_duration_seconds',
        help: 'Tailscale API HTTP request latency, by method and templated endpoint.',
        labelNames: ['method', 'endpoint'] as const,
        buckets: DURATION_BUCKETS,
        registers: [registry],
      }),
  );
  const retries = reuse(
    registry,
    'tsgw_tailscale_api_retries_total',
    () =>
      new Counter({
        name: 'tsgw_tailscale_api_retries_total',
        help: 'Tailscale API calls attempted again, by reason.',
        labelNames: ['reason'] as const,
        registers: [registry],
      }),
  );
  return {
    observe(method, endpoint, code, seconds) {
      requests.inc({ method, endpoint, code });
      duration.observe({ method, endpoint }, Math.max(0, seconds));
    },
    retry(reason) {
      retries.inc({ reason });
    },
  };
}
