/**
 * The informers over our own kinds, and the extension server's resource store fed from them. Every
 * replica runs these (not only the leader): each one serves Envoy Gateway's hooks from its own cache.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { type AnyResource, API_VERSION, validateResource } from '../api/index.ts';
import { createInformer, type Informer, type InformerTransport } from '../kube/informer.ts';
import type { Logger } from '../observability/logger.ts';
import type { MemoryResourceStore } from '../store/resource-store.ts';

export interface ResourceInformers {
  tailnets: Informer;
  endpoints: Informer;
  gateways: Informer;
  routePolicies: Informer;
  all(): Informer[];
}

export interface ResourceInformersOptions {
  client: InformerTransport;
  log: Logger;
  registry?: Registry;
}

const path = (plural: string) => `/apis/${API_VERSION}/${plural}`;

export function createResourceInformers(options: ResourceInformersOptions): ResourceInformers {
  const make = (plural: string) =>
    createInformer({
      client: options.client,
      path: path(plural),
      log: options.log.child({ informer: plural }),
      ...(options.registry ? { registry: options.registry } : {}),
    });
  const informers = {
    tailnets: make('tailscaletailnets'),
    endpoints: make('tailscaleendpoints'),
    gateways: make('tailscalegateways'),
    routePolicies: make('tailscaleroutepolicies'),
  };
  return { ...informers, all: () => Object.values(informers) };
}

/**
 * Keeps `store` equal to what the informers hold, as validated resources. The store is filled only
 * once every informer the hooks read has listed, so the extension server never answers from half a
 * cluster; after that, bursts of events coalesce into one rebuild.
 */
export function feedStore(
  informers: readonly Informer[],
  store: MemoryResourceStore,
  log: Logger,
): { rebuild(): void; stop(): void } {
  let scheduled = false;
  const rejected = new Set<string>();
  const rebuild = () => {
    scheduled = false;
    if (!informers.every((informer) => informer.hasSynced())) return;
    const resources: AnyResource[] = [];
    for (const object of informers.flatMap((informer) => informer.list())) {
      const checked = validateResource(object);
      if (checked.ok) {
        resources.push(checked.resource);
        continue;
      }
      // The CRD should have refused it; log each bad version once rather than on every rebuild.
      const id = `${object.kind}/${object.metadata?.namespace}/${object.metadata?.name}@${object.metadata?.resourceVersion}`;
      if (!rejected.has(id)) {
        rejected.add(id);
        log.warn({ object: id, issues: checked.issues }, 'ignoring an object that does not match the schema');
      }
    }
    store.replace(resources);
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(rebuild);
  };
  const offs = informers.flatMap((informer) =>
    (['add', 'update', 'delete'] as const).map((event) =>
      informer.on(event, schedule as (o: KubernetesObject) => void),
    ),
  );
  // An informer whose list comes back empty fires no event; its sync alone must trigger the first fill.
  for (const informer of informers) void informer.waitForSync().then(schedule);
  return {
    rebuild,
    stop() {
      for (const off of offs) off();
    },
  };
}
