/**
 * The one place the extension hooks read resources from. Standalone mode fills it from files; the
 * operator fills it from informers. Hooks never list from the API server: Envoy Gateway calls them
 * thousands of times per translation and expects quick answers.
 *
 * Readers get immutable snapshots, so one hook call sees one consistent state even while the store is
 * being replaced underneath it.
 *
 * @module
 */
import type {
  AnyResource,
  TailscaleEndpoints,
  TailscaleGateway,
  TailscaleRoutePolicy,
} from '../api/index.ts';
import { DEFAULT_NAMESPACE, keyOf, namespaceOf } from '../kube/object-key.ts';
import { type RemoteMember, type RemoteMembers, remoteMembersByEndpoints } from './remote-endpoints.ts';
import { EMPTY_INDEX, type ResourceIndex } from './resource-index.ts';

/** A consistent, immutable view of every resource the hooks use. */
export interface ResourceSnapshot {
  /** Increases with every change; lets callers cache work derived from a snapshot. */
  readonly version: number;
  readonly endpoints: readonly TailscaleEndpoints[];
  readonly gateways: readonly TailscaleGateway[];
  readonly routePolicies: readonly TailscaleRoutePolicy[];
  /** The TailscaleEndpoints `namespace/name`, if present. */
  getEndpoints(namespace: string, name: string): TailscaleEndpoints | undefined;
  /**
   * Cross-cluster failover members by TailscaleEndpoints `namespace/name` (src/model/remote-endpoints.ts),
   * from the TailscaleGateways above. A field of the snapshot rather than of the objects, so a copy of
   * an object (structuredClone, a spread) never silently loses them.
   */
  readonly remoteMembersByEndpoints: RemoteMembers;
  /**
   * Who references whom (routes, Gateways, TailscaleGateways, TailscaleEndpoints), kept from informer
   * events. Live rather than copied (see src/model/resource-index.ts); file-fed stores carry an empty
   * index that says it cannot tell (`complete()` false).
   */
  readonly index: ResourceIndex;
}

export interface ResourceStore {
  snapshot(): ResourceSnapshot;
  /** True once the store holds a complete first state (files read, informers listed). */
  hasSynced(): boolean;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: (snapshot: ResourceSnapshot) => void): () => void;
}

export interface MemoryResourceStore extends ResourceStore {
  /** Replaces the whole content at once and marks the store synced. */
  replace(resources: readonly AnyResource[], index?: ResourceIndex): void;
}

/** Namespace used for namespaced objects that carry none, as Envoy Gateway's file provider does. */
export { DEFAULT_NAMESPACE };

export function createMemoryResourceStore(): MemoryResourceStore {
  let current = buildSnapshot([], 0);
  let synced = false;
  const listeners = new Set<(snapshot: ResourceSnapshot) => void>();
  return {
    snapshot: () => current,
    hasSynced: () => synced,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    replace(resources, index) {
      current = buildSnapshot(resources, current.version + 1, index);
      synced = true;
      for (const listener of listeners) listener(current);
    },
  };
}

const byNamespaceAndName = <T extends AnyResource>(a: T, b: T) =>
  (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
  a.metadata.name.localeCompare(b.metadata.name);

/** Sorted so that everything derived from a snapshot (route order, cluster order) is deterministic. */
export function buildSnapshot(
  resources: readonly AnyResource[],
  version: number,
  index: ResourceIndex = EMPTY_INDEX,
): ResourceSnapshot {
  const endpoints: TailscaleEndpoints[] = [];
  const gateways: TailscaleGateway[] = [];
  const routePolicies: TailscaleRoutePolicy[] = [];
  for (const resource of resources) {
    if (resource.kind === 'TailscaleEndpoints') endpoints.push(resource);
    else if (resource.kind === 'TailscaleGateway') gateways.push(resource);
    else if (resource.kind === 'TailscaleRoutePolicy') routePolicies.push(resource);
  }
  gateways.sort(byNamespaceAndName);
  routePolicies.sort(byNamespaceAndName);
  const remote = new Map<string, readonly RemoteMember[]>();
  for (const [key, members] of remoteMembersByEndpoints(gateways)) remote.set(key, Object.freeze(members));
  endpoints.sort(byNamespaceAndName);
  const byKey = new Map(endpoints.map((e) => [keyOf(namespaceOf(e), e.metadata.name), e]));
  return Object.freeze({
    version,
    endpoints: Object.freeze(endpoints),
    gateways: Object.freeze(gateways),
    routePolicies: Object.freeze(routePolicies),
    getEndpoints: (namespace: string, name: string) => byKey.get(keyOf(namespace, name)),
    remoteMembersByEndpoints: remote,
    index,
  });
}
