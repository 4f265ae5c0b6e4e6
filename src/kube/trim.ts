/**
 * Trimming what an informer caches. The API server sends every object with `metadata.managedFields`,
 * server-side apply's record of which manager owns which field: often the largest part of a small
 * object, and read by almost nothing here. An operator with 1,000 TailscaleEndpoints caches them and
 * as many egress Services and EndpointSlices, on every replica, for its whole life; client-go's
 * answer is the same (an informer transform that drops managedFields).
 *
 * @module
 */
import type { KubernetesObject, V1ManagedFieldsEntry } from '@kubernetes/client-node';

/**
 * An informer transform that drops `metadata.managedFields`, keeping only the entries `keep` accepts
 * (none by default). The object is rebuilt rather than mutated: deleting a property would turn a
 * JSC object into a slower dictionary-mode one, and a caller may still hold the original.
 */
export function withoutManagedFields<T extends KubernetesObject>(
  keep: (entry: V1ManagedFieldsEntry) => boolean = () => false,
): (obj: T) => T {
  return (obj) => {
    const metadata = obj.metadata;
    if (!metadata?.managedFields) return obj;
    const { managedFields, ...rest } = metadata;
    const kept = managedFields.filter(keep);
    return { ...obj, metadata: kept.length > 0 ? { ...rest, managedFields: kept } : rest };
  };
}
