/**
 * Discovery of tailnet devices and Tailscale Services for TailscaleEndpoints (`spec.discovery`): the
 * shared per-tailnet inventory, the pure selection, and who owns which `spec.endpoints` entry. The
 * reconciler is in src/resources/tailscale-endpoints/tailscale-endpoints-discovery.ts. (Named for the
 * tailnet so it is not taken for the API server's discovery, which only the lookup of served Gateway
 * API kinds in src/operator/resource-informers.ts reads.)
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
