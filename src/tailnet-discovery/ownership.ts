/**
 * Which `spec.endpoints` entries the discovery owns, read from the object's `managedFields`.
 *
 * `spec.endpoints` is a map list keyed by `name`, so server-side apply tracks every entry on its own:
 * the discovery applies its entries under {@link DISCOVERY_FIELD_MANAGER} and the entries written by
 * people (kubectl, GitOps) stay theirs. The API server's record of who owns what is therefore the
 * one source of truth for "discovered or written by hand"; nothing else needs remembering.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Kind } from '../api/index.ts';
import { withoutManagedFields } from '../kube/index.ts';

/** The field manager discovered endpoints (and the discovery's status) are applied under. */
export const DISCOVERY_FIELD_MANAGER = 'tailscale-gateway-discovery';

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

/** Names of the `spec.endpoints` entries whose key `manager` owns. */
export function endpointNamesOwnedBy(obj: KubernetesObject, manager = DISCOVERY_FIELD_MANAGER): Set<string> {
  const names = new Set<string>();
  const entries = (obj.metadata?.managedFields ?? []) as ManagedFieldsEntry[];
  for (const entry of entries) {
    if (entry.manager !== manager || (entry.subresource ?? '') !== '') continue;
    const spec = entry.fieldsV1?.['f:spec'] as Record<string, unknown> | undefined;
    const list = spec?.['f:endpoints'] as Record<string, unknown> | undefined;
    for (const key of Object.keys(list ?? {})) {
      if (!key.startsWith('k:')) continue;
      try {
        const name = (JSON.parse(key.slice(2)) as { name?: unknown }).name;
        if (typeof name === 'string') names.add(name);
      } catch {
        // not a key we understand; not ours
      }
    }
  }
  return names;
}

/**
 * The TailscaleEndpoints informers' transform: `managedFields` cut down to the entries
 * {@link endpointNamesOwnedBy} reads (the discovery's own, on the main resource), so the cache keeps
 * the ownership it needs and not every other manager's record.
 */
export function keepDiscoveryOwnership<T extends KubernetesObject>(
  manager = DISCOVERY_FIELD_MANAGER,
): (obj: T) => T {
  return withoutManagedFields<T>((entry) => entry.manager === manager && (entry.subresource ?? '') === '');
}

/**
 * The transform an informer of one of our kinds caches with: no managedFields, except the
 * discovery's own record on TailscaleEndpoints, which {@link endpointNamesOwnedBy} reads.
 */
export function cacheTransformFor<T extends KubernetesObject>(kind: Kind): (obj: T) => T {
  return kind === 'TailscaleEndpoints' ? keepDiscoveryOwnership<T>() : withoutManagedFields<T>();
}
