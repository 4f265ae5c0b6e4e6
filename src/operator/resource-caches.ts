/**
 * What every replica caches and the hooks read: informers over our kinds feeding the store, and with
 * the Gateway API informers (the kinds the cluster serves, as looked up) the reference index,
 * checked against the caches periodically; readiness follows the store's first state, /health the
 * index's freshness.
 *
 * @module
 */
import type { Registry } from 'prom-client';
import type { KubeClient } from '../kube/index.ts';
import { indexMetrics } from '../model/index-metrics.ts';
import { createResourceIndex } from '../model/resource-index.ts';
import type { MemoryResourceStore } from '../model/resource-store.ts';
import type { createHealth } from '../observability/health.ts';
import type { Logger } from '../observability/logger.ts';
import type { Readiness } from '../observability/readiness.ts';
import {
  createGatewayApiInformers,
  createResourceInformers,
  feedStore,
  type GatewayApiInformers,
  type ResourceInformers,
} from './resource-informers.ts';

/** How often the resource index is checked against the informer caches (and so marked fresh). */
const INDEX_CHECK_MS = 60_000;
/** The /health check and metric name of the resource index. */
export const RESOURCE_INDEX_CHECK = 'resource-index';

export interface ResourceCachesOptions {
  kube: KubeClient;
  log: Logger;
  registry: Registry;
  store: MemoryResourceStore;
  health: ReturnType<typeof createHealth>;
  readiness: Readiness;
}

export interface ResourceCaches {
  informers: ResourceInformers;
  gatewayApi: GatewayApiInformers;
  /** Stops the index check and the store feed; the informers are stopped by the caller. */
  stopFeed(): void;
}

/** Starts the informers, the store feed and the index check. */
export function startResourceCaches(options: ResourceCachesOptions): ResourceCaches {
  const { kube, log, registry, store, health, readiness } = options;
  // Every replica: informers over our kinds feed the extension server's store; they and the Gateway
  // API informers (the kinds the cluster serves, as looked up) feed the reference index.
  const informers = createResourceInformers({ client: kube, log, registry });
  const gatewayApi = createGatewayApiInformers({ client: kube, log, registry });
  const index = createResourceIndex();
  index.setServed([], false);
  const freshness = indexMetrics(registry);
  health.track(RESOURCE_INDEX_CHECK);
  const markIndexFresh = () => {
    // An index that cannot list every served route kind is not fresh: /health degrades after 10 min.
    if (!index.complete()) return;
    health.markFresh(RESOURCE_INDEX_CHECK);
    freshness.markFresh(index, Date.now());
  };
  const storeReady = readiness.component('resources');
  storeReady.set(
    false,
    'waiting for the first list of TailscaleEndpoints, TailscaleGateways, TailscaleRoutePolicies',
  );
  const feed = feedStore([informers.endpoints, informers.gateways, informers.routePolicies], store, log, {
    index,
    gatewayApi,
    onUpdate: markIndexFresh,
  });
  const indexCheck = setInterval(() => {
    freshness.repaired(feed.verify());
    markIndexFresh();
  }, INDEX_CHECK_MS);
  store.subscribe((snapshot) =>
    storeReady.set(
      true,
      `${snapshot.endpoints.length} endpoints, ${snapshot.gateways.length} gateways, ${snapshot.routePolicies.length} route policies`,
    ),
  );
  gatewayApi.start();
  for (const informer of informers.all()) informer.start();
  return {
    informers,
    gatewayApi,
    stopFeed: () => {
      clearInterval(indexCheck);
      feed.stop();
    },
  };
}
