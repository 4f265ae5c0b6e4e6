/**
 * The index's metric families: how fresh it is, whether it is complete, and how many edges it holds.
 *
 * @module
 */
import { Counter, type Registry } from 'prom-client';
import { family, Gauge } from '../observability/metric-families.ts';
import type { ResourceIndex } from './resource-index.ts';

export interface IndexMetrics {
  /** After every applied change and every successful check against the informer caches. */
  markFresh(index: ResourceIndex, nowMs: number): void;
  repaired(count: number): void;
}

export function indexMetrics(registry: Registry): IndexMetrics {
  const fresh = family(registry, Gauge, {
    name: 'tsgw_resource_index_last_fresh_timestamp_seconds',
    help: 'Unix time the resource index last applied an informer event or was checked equal to the informer caches; /health degrades when it is older than 10 minutes.',
  }) as Gauge;
  const complete = family(registry, Gauge, {
    name: 'tsgw_resource_index_complete',
    help: '1 once every Gateway API route kind the cluster serves has been listed into the index; 0 while the hooks cannot rely on it to leave clusters out.',
  }) as Gauge;
  const edges = family(registry, Gauge, {
    name: 'tsgw_resource_index_edges',
    help: 'References the index holds, by relation (route-endpoints, route-gateway, tailscalegateway-gateway, tailscalegateway-tailnet, endpoints-tailnet).',
    labelNames: ['relation'],
  }) as Gauge<'relation'>;
  const repairs = family(registry, Counter, {
    name: 'tsgw_resource_index_repairs_total',
    help: 'Objects the periodic check found missing, stale or extra in the index and repaired (should stay 0).',
  }) as Counter;
  repairs.inc(0);
  return {
    markFresh(index, nowMs) {
      fresh.set(nowMs / 1000);
      complete.set(index.complete() ? 1 : 0);
      for (const [relation, n] of Object.entries(index.stats().edges)) edges.set({ relation }, n);
    },
    repaired(count) {
      if (count > 0) repairs.inc(count);
    },
  };
}
