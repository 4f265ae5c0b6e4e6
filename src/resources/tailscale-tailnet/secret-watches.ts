/**
 * Watches exactly the Secrets that resources reference, one small informer per Secret (a field
 * selector on its name), instead of caching every Secret of the cluster: the operator reacts at once
 * when an OAuth Secret is created or rotated, yet holds no other Secret in memory.
 *
 * @module
 */
import type { V1Secret } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createInformer, type Informer, type InformerTransport } from '../../kube/informer.ts';
import { keyOf } from '../../kube/object-key.ts';
import type { Logger } from '../../observability/logger.ts';

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface SecretWatches {
  /**
   * The Secret as last seen (undefined when it does not exist), starting its watch if needed and
   * waiting for the first list.
   */
  get(ref: SecretRef, signal?: AbortSignal): Promise<V1Secret | undefined>;
  /** Stops the watches of Secrets no longer in `inUse`. */
  retain(inUse: readonly SecretRef[]): void;
  /** Number of Secrets watched, for tests and metrics. */
  size(): number;
  stop(): Promise<void>;
}

export interface SecretWatchesOptions {
  client: InformerTransport;
  log: Logger;
  registry?: Registry;
  /** Called when a watched Secret is added, changed or deleted. */
  onChange(ref: SecretRef): void;
}

const refKey = (ref: SecretRef) => keyOf(ref.namespace, ref.name);

export function createSecretWatches(options: SecretWatchesOptions): SecretWatches {
  const watches = new Map<string, Informer<V1Secret>>();
  const start = (ref: SecretRef): Informer<V1Secret> => {
    const informer = createInformer<V1Secret>({
      client: options.client,
      path: `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets`,
      fieldSelector: `metadata.name=${ref.name}`,
      resource: 'secrets',
      log: options.log.child({ secret: refKey(ref) }),
      ...(options.registry ? { registry: options.registry } : {}),
    });
    const changed = () => options.onChange(ref);
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.start();
    watches.set(refKey(ref), informer);
    return informer;
  };
  return {
    async get(ref, signal) {
      const informer = watches.get(refKey(ref)) ?? start(ref);
      await informer.waitForSync(signal);
      return informer.get(ref.namespace, ref.name);
    },
    retain(inUse) {
      const keep = new Set(inUse.map(refKey));
      for (const [key, informer] of watches) {
        if (keep.has(key)) continue;
        watches.delete(key);
        void informer.stop();
      }
    },
    size: () => watches.size,
    async stop() {
      const all = [...watches.values()];
      watches.clear();
      await Promise.all(all.map((informer) => informer.stop()));
    },
  };
}
