/**
 * The discovery reconciler: keeps the discovered entries of a TailscaleEndpoints' `spec.endpoints`
 * equal to what `spec.discovery` selects on the tailnet, and says how that went in status.
 *
 * Why the entries land in the object's own spec: Envoy Gateway re-translates only when the spec of a
 * watched object changes (status, labels and the operator's memory never reach it), and everything
 * downstream — the hooks' clusters, the proxies, the Gateway revision digest — already reads
 * `spec.endpoints`. The entries are written by server-side apply under their own field manager, so
 * they sit beside the hand-written ones without either side overwriting the other; see
 * src/tailnet-discovery/ownership.ts.
 *
 * Level-triggered like the others: a reconcile reads the object from the informer cache, the
 * tailnet's lists from the shared inventory (one call per tailnet per interval), computes the set and
 * the status purely, and writes each only when it differs. It comes back every `syncInterval`.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type Checked,
  type Endpoint,
  parseDuration,
  type TailscaleEndpoints,
  type TailscaleTailnet,
  validHostnamePattern,
} from '../../api/index.ts';
import { canonical } from '../../canonical-json.ts';
import type { Clock, ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { isConditionTrue } from '../../controller-runtime/index.ts';
import { splitKey } from '../../kube/index.ts';
import {
  discoverEndpoints,
  endpointNamesOwnedBy,
  type InventoryRead,
  type TailnetInventory,
} from '../../tailnet-discovery/index.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import { magicDNSSuffixOf } from '../../tailscale/magic-dns.ts';
import {
  type DiscoveryOutcome,
  type DiscoveryStatusPart,
  desiredDiscoveryStatus,
  discoveryStatusEqual,
} from './tailscale-endpoints-discovery-status.ts';

export interface DiscoveryReconcilerOptions {
  /** The TailscaleEndpoints cache (every namespace). */
  getEndpoints(namespace: string, name: string): Checked<TailscaleEndpoints> | undefined;
  /** The TailscaleTailnet cache. */
  getTailnet(name: string): KubernetesObject | undefined;
  /** The client of a tailnet the TailscaleTailnet controller has set up; undefined until then. */
  tailscale(tailnet: string): TailscaleApi | undefined;
  inventory: TailnetInventory;
  /**
   * Applies `endpoints` as the discovery's entries of `spec.endpoints` (server-side apply, the
   * discovery's field manager, forced); returns the object's generation afterwards.
   */
  applyEndpoints(obj: TailscaleEndpoints, endpoints: Endpoint[], signal: AbortSignal): Promise<Written>;
  /** Applies the discovery's status fields under the same field manager. */
  applyStatus(obj: TailscaleEndpoints, status: DiscoveryStatusPart, signal: AbortSignal): Promise<Written>;
  clock: Clock;
  /** Called after every reconcile of an object with discovery (tests and the bench count syncs). */
  onSync?(key: string, outcome: DiscoveryOutcome['kind'], wrote: { spec: boolean; status: boolean }): void;
}

/** What a write left behind, from the object the API server returned. */
export interface Written {
  generation?: number | undefined;
  resourceVersion?: string | undefined;
}

/** Waits after a failed list: the next interval, at most this long. */
const RETRY_MAX_MS = 60_000;

export function createDiscoveryReconciler(options: DiscoveryReconcilerOptions): Reconciler {
  // Versions of each object that predate this reconciler's last writes. Our own spec write wakes the
  // object again, often before the cache holds the status written right after it; deciding from such
  // a stale copy would write the same status twice. The newer version's event is on its way, so a
  // reconcile of a version listed here just waits for it. A write the API server found unchanged
  // returns the version it started from, which is then not listed, so nothing waits forever.
  const stale = new Map<string, Set<string>>();

  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const cached = options.getEndpoints(namespace, name);
    if (!cached) {
      stale.delete(key);
      return undefined;
    }
    const { raw } = cached;
    const version = raw.metadata?.resourceVersion ?? '';
    if (stale.get(key)?.has(version)) return undefined;
    stale.delete(key);
    if (!cached.ok) return undefined;
    const endpoints = cached.value;
    const owned = endpointNamesOwnedBy(raw);
    const discovery = endpoints.spec.discovery;
    const now = options.clock.now();

    const before = new Set([version]);
    let after = version;
    const remember = (written: Written) => {
      before.add(after);
      after = written.resourceVersion ?? after;
      before.delete(after);
      if (before.size > 0) stale.set(key, before);
    };

    if (!discovery) {
      // Discovery turned off (or never on): drop what it left behind, once.
      const wrote = { spec: false, status: false };
      if (owned.size > 0) {
        remember(await options.applyEndpoints(endpoints, [], signal));
        wrote.spec = true;
      }
      const hasStatus =
        endpoints.status?.discovery !== undefined ||
        (endpoints.status?.conditions ?? []).some((c) => c.type === 'DiscoverySynced');
      if (hasStatus) {
        remember(await options.applyStatus(endpoints, { conditions: [] }, signal));
        wrote.status = true;
      }
      if (wrote.spec || wrote.status)
        log.info(wrote, 'discovery turned off; its endpoints and status removed');
      return undefined;
    }

    const intervalMs = parseDuration(discovery.syncInterval);
    const staticNames = new Set(endpoints.spec.endpoints.map((e) => e.name).filter((n) => !owned.has(n)));
    let outcome: DiscoveryOutcome;
    let desired: Endpoint[] | undefined;
    const tailnetObject = options.getTailnet(endpoints.spec.tailnet) as TailscaleTailnet | undefined;
    const client = options.tailscale(endpoints.spec.tailnet);
    const tailnetReady = isConditionTrue(tailnetObject?.status?.conditions, 'Ready');
    if (!client || !tailnetReady) {
      outcome = { kind: 'tailnet-not-ready', tailnet: endpoints.spec.tailnet };
    } else if (
      discovery.devices?.hostnamePattern !== undefined &&
      !validHostnamePattern(discovery.devices.hostnamePattern)
    ) {
      outcome = {
        kind: 'invalid',
        message: `hostnamePattern ${JSON.stringify(discovery.devices.hostnamePattern)} is not a valid regular expression`,
      };
    } else {
      const read = await options.inventory.read(endpoints.spec.tailnet, client, {
        maxAgeMs: intervalMs,
        services: discovery.services !== undefined,
      });
      const failure = read.devices.error ?? read.services?.error;
      if (failure || !read.devices.good || (read.services && !read.services.good)) {
        outcome = { kind: 'api-error', message: failure?.message ?? 'no list yet' };
      } else {
        const result = discoverEndpoints(discovery, inventoryOf(read, tailnetObject), staticNames, now);
        outcome = { kind: 'synced', result };
        desired = result.endpoints;
      }
    }

    const wrote = { spec: false, status: false };
    let generation = endpoints.metadata.generation;
    if (desired !== undefined && !sameEntries(endpoints, owned, desired)) {
      const written = await options.applyEndpoints(endpoints, desired, signal);
      remember(written);
      generation = written.generation ?? generation;
      wrote.spec = true;
      log.info(
        { endpoints: desired.length, before: owned.size },
        'discovered endpoints changed; spec.endpoints updated',
      );
    }
    const status = desiredDiscoveryStatus(endpoints, outcome, new Date(now), generation);
    if (wrote.spec || !discoveryStatusEqual(endpoints, status)) {
      remember(await options.applyStatus(endpoints, status, signal));
      wrote.status = true;
    }
    options.onSync?.(key, outcome.kind, wrote);
    if (outcome.kind === 'synced') return { requeueAfter: intervalMs };
    return { requeueAfter: Math.min(intervalMs, RETRY_MAX_MS) };
  };
}

function inventoryOf(read: InventoryRead, tailnet: TailscaleTailnet | undefined) {
  const devices = read.devices.good?.items ?? [];
  const magicDNSSuffix =
    tailnet?.status?.magicDNSSuffix ?? devices.map((d) => magicDNSSuffixOf(d.name)).find(Boolean);
  return {
    devices,
    services: read.services?.good?.items,
    magicDNSSuffix,
    offlineObservedAt: read.offlineObservedAt,
  };
}

/** Whether the stored entries the discovery owns are exactly `desired`. */
function sameEntries(
  endpoints: TailscaleEndpoints,
  owned: ReadonlySet<string>,
  desired: Endpoint[],
): boolean {
  if (owned.size !== desired.length) return false;
  const stored = new Map(endpoints.spec.endpoints.map((e) => [e.name, e]));
  return desired.every((e) => owned.has(e.name) && canonical(stored.get(e.name)) === canonical(e));
}
