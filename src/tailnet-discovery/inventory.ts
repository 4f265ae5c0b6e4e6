/**
 * One device list (and one Tailscale Service list, only when some object selects services) per tailnet
 * per sync interval, shared by every TailscaleEndpoints on that tailnet.
 *
 * Each object's reconcile asks for the tailnet's lists no older than its own sync interval. The first
 * ask after the lists aged out starts one call; asks arriving while it runs wait for it; later asks
 * within the interval get the stored answer. So 50 objects on one tailnet cost one device list per
 * interval, not 50, and an object's spec edit is recomputed from the stored list without any call.
 *
 * A failed call is stored too (until the next interval), beside the last good list: the objects keep
 * the endpoints that list gave them and report the failure, and the API is not retried by every object.
 *
 * @module
 */
import type { Clock } from '../controller-runtime/index.ts';
import { OperatorError } from '../errors.ts';
import type { Device, TailscaleApi, TailscaleService } from '../tailscale/index.ts';

export interface ListState<T> {
  /** The last list that succeeded, with when it was fetched (ms). */
  good?: { items: readonly T[]; at: number };
  /** The last attempt's failure, when the last attempt failed. */
  error?: OperatorError;
  /** When the last attempt started (ms). */
  attemptedAt?: number;
}

export interface InventoryRead {
  devices: ListState<Device>;
  /** Present when asked for. */
  services?: ListState<TailscaleService>;
  /** When the operator first saw a device offline (for devices whose `lastSeen` is missing). */
  offlineObservedAt(nodeId: string): number | undefined;
}

export interface ReadOptions {
  /** The lists may be this old (ms): the asking object's sync interval. */
  maxAgeMs: number;
  services: boolean;
}

export interface InventoryCounters {
  deviceLists: number;
  serviceLists: number;
}

export interface TailnetInventory {
  read(tailnet: string, client: TailscaleApi, options: ReadOptions): Promise<InventoryRead>;
  /** Forgets a tailnet (deleted, or credentials changed). */
  drop(tailnet: string): void;
  /** Calls made so far, for metrics and tests. */
  readonly counters: InventoryCounters;
}

interface Slot<T> extends ListState<T> {
  inflight?: Promise<void>;
  /** The client the stored answer came from; a new client (rotated credentials) refetches. */
  client?: TailscaleApi;
}

interface TailnetState {
  devices: Slot<Device>;
  services: Slot<TailscaleService>;
  offlineSince: Map<string, number>;
}

export function createTailnetInventory(options: { clock: Clock }): TailnetInventory {
  const { clock } = options;
  const tailnets = new Map<string, TailnetState>();
  const counters: InventoryCounters = { deviceLists: 0, serviceLists: 0 };

  const stateOf = (tailnet: string): TailnetState => {
    let state = tailnets.get(tailnet);
    if (!state) {
      state = { devices: {}, services: {}, offlineSince: new Map() };
      tailnets.set(tailnet, state);
    }
    return state;
  };

  async function refresh<T>(
    slot: Slot<T>,
    client: TailscaleApi,
    maxAgeMs: number,
    fetch: () => Promise<T[]>,
    onGood?: (items: readonly T[], at: number) => void,
  ): Promise<void> {
    if (slot.inflight) return slot.inflight;
    const fresh =
      slot.client === client && slot.attemptedAt !== undefined && clock.now() - slot.attemptedAt < maxAgeMs;
    if (fresh) return;
    const at = clock.now();
    slot.attemptedAt = at;
    slot.client = client;
    slot.inflight = (async () => {
      try {
        const items = await fetch();
        slot.good = { items, at };
        delete slot.error;
        onGood?.(items, at);
      } catch (error) {
        slot.error = OperatorError.from(error);
      } finally {
        delete slot.inflight;
      }
    })();
    return slot.inflight;
  }

  const view = <T>(slot: Slot<T>): ListState<T> => ({
    ...(slot.good ? { good: slot.good } : {}),
    ...(slot.error ? { error: slot.error } : {}),
    ...(slot.attemptedAt !== undefined ? { attemptedAt: slot.attemptedAt } : {}),
  });

  return {
    counters,
    async read(tailnet, client, { maxAgeMs, services }) {
      const state = stateOf(tailnet);
      // No caller's signal: the call is shared by every object waiting for it (as the token fetch is);
      // the client's own per-attempt timeout bounds it.
      await Promise.all([
        refresh(
          state.devices,
          client,
          maxAgeMs,
          () => {
            counters.deviceLists += 1;
            return client.devices.list();
          },
          (devices, at) => {
            const seen = new Set<string>();
            for (const device of devices) {
              seen.add(device.nodeId);
              if (device.connectedToControl === false) {
                if (!state.offlineSince.has(device.nodeId)) state.offlineSince.set(device.nodeId, at);
              } else state.offlineSince.delete(device.nodeId);
            }
            for (const id of state.offlineSince.keys()) if (!seen.has(id)) state.offlineSince.delete(id);
          },
        ),
        services
          ? refresh(state.services, client, maxAgeMs, () => {
              counters.serviceLists += 1;
              return client.services.list();
            })
          : undefined,
      ]);
      return {
        devices: view(state.devices),
        ...(services ? { services: view(state.services) } : {}),
        offlineObservedAt: (nodeId) => state.offlineSince.get(nodeId),
      };
    },
    drop(tailnet) {
      tailnets.delete(tailnet);
    },
  };
}
