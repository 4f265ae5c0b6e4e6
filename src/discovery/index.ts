/**
 * Tailnet service discovery for TailscaleEndpoints: the shared per-tailnet inventory, the pure
 * selection, and who owns which `spec.endpoints` entry. The reconciler is in
 * src/resources/tailscale-endpoints/tailscale-endpoints-discovery.ts.
 *
 * @module
 */
export {
  createTailnetInventory,
  type InventoryCounters,
  type InventoryRead,
  type ListState,
  type ReadOptions,
  type TailnetInventory,
} from './inventory.ts';
export {
  cacheTransformFor,
  DISCOVERY_FIELD_MANAGER,
  endpointNamesOwnedBy,
  keepDiscoveryOwnership,
} from './ownership.ts';
export {
  type DiscoveryResult,
  discoverEndpoints,
  dnsLabelOf,
  type Inventory,
  LAST_SEEN_OFFLINE_MS,
  matchesSelector,
  OFFLINE_PRIORITY,
  offlineState,
  type SelectorMatch,
  selectorText,
} from './select.ts';
