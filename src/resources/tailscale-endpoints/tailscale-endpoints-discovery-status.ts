/**
 * The discovery's part of a TailscaleEndpoints status — the `DiscoverySynced` condition and
 * `status.discovery` — from the outcome of one sync. Pure, so every reason is tested without a
 * cluster, and so the reconciler writes only when the answer differs from what is stored.
 *
 * `lastSyncTime` follows every change but is otherwise refreshed only every {@link HEARTBEAT_MS}: a
 * timestamp written on every sync would make every sync a write (and wake every watcher of the object).
 *
 * @module
 */

import type { DiscoveryStatus, TailscaleEndpoints } from '../../api/index.ts';
import { canonical } from '../../canonical-json.ts';
import {
  type Condition,
  conditionsEqual,
  conditionTime,
  setCondition,
} from '../../controller-runtime/index.ts';
import type { DiscoveryResult } from '../../tailnet-discovery/index.ts';

export const CONDITION_DISCOVERY_SYNCED = 'DiscoverySynced';
/** How stale `status.discovery.lastSyncTime` may get while nothing changes. */
export const HEARTBEAT_MS = 10 * 60_000;

export type DiscoveryOutcome =
  | { kind: 'synced'; result: DiscoveryResult }
  | { kind: 'tailnet-not-ready'; tailnet: string }
  | { kind: 'api-error'; message: string }
  | { kind: 'invalid'; message: string };

/** The status fields the discovery owns (its field manager applies exactly these). */
export interface DiscoveryStatusPart {
  conditions: Condition[];
  discovery?: DiscoveryStatus;
}

export function desiredDiscoveryStatus(
  endpoints: TailscaleEndpoints,
  outcome: DiscoveryOutcome,
  now: Date,
  generation = endpoints.metadata.generation,
): DiscoveryStatusPart {
  const previousCondition = (endpoints.status?.conditions ?? []).filter(
    (c) => c.type === CONDITION_DISCOVERY_SYNCED,
  );
  const previous = endpoints.status?.discovery;
  const set = ({ status, reason, message }: Pick<Condition, 'status' | 'reason' | 'message'>) =>
    setCondition(
      previousCondition,
      {
        type: CONDITION_DISCOVERY_SYNCED,
        status,
        reason,
        message,
        ...(generation === undefined ? {} : { observedGeneration: generation }),
      },
      now,
    );

  switch (outcome.kind) {
    case 'tailnet-not-ready':
      return keep(
        set({
          status: 'False',
          reason: 'TailnetNotReady',
          message: `TailscaleTailnet ${outcome.tailnet} is not Ready; the endpoints discovered last are kept`,
        }),
        previous,
      );
    case 'api-error':
      return keep(
        set({
          status: 'False',
          reason: 'TailscaleAPIError',
          message: `listing the tailnet failed; the endpoints discovered last are kept: ${outcome.message}`,
        }),
        previous,
      );
    case 'invalid':
      return keep(set({ status: 'False', reason: 'InvalidSelector', message: outcome.message }), previous);
    case 'synced': {
      const r = outcome.result;
      const services = r.matchedServices === undefined ? '' : ` and ${r.matchedServices} Tailscale Services`;
      const summary = `${r.endpoints.length} endpoints from ${r.matchedDevices} devices${services}, ${r.offline} offline`;
      const conditions =
        r.truncated > 0
          ? set({
              status: 'False',
              reason: 'TooManyEndpoints',
              message:
                `${r.found} endpoints found, ${r.truncated} left out: an object holds at most 64 endpoints, ` +
                `hand-written ones included; narrow the selectors (kept ${summary})`,
            })
          : set({ status: 'True', reason: 'Synced', message: summary });
      const counts: DiscoveryStatus = {
        discoveredEndpoints: r.endpoints.length,
        offlineEndpoints: r.offline,
        matchedDevices: r.matchedDevices,
        ...(r.matchedServices === undefined ? {} : { matchedServices: r.matchedServices }),
        ...(r.selectors.length > 0 ? { selectors: r.selectors } : {}),
      };
      const unchanged =
        previous !== undefined &&
        sameCounts(previous, counts) &&
        conditionsEqual(previousCondition, conditions) &&
        previous.lastSyncTime !== undefined &&
        now.getTime() - Date.parse(previous.lastSyncTime) < HEARTBEAT_MS;
      const lastSyncTime = unchanged ? previous.lastSyncTime! : conditionTime(now);
      return { conditions, discovery: { ...counts, lastSyncTime } };
    }
  }
}

function keep(conditions: Condition[], previous: DiscoveryStatus | undefined): DiscoveryStatusPart {
  return previous ? { conditions, discovery: previous } : { conditions };
}

function sameCounts(a: DiscoveryStatus, b: DiscoveryStatus): boolean {
  const strip = ({ lastSyncTime: _, ...rest }: DiscoveryStatus) => rest;
  return canonical(strip(a)) === canonical(strip(b));
}

/** True when applying `desired` would change nothing. */
export function discoveryStatusEqual(endpoints: TailscaleEndpoints, desired: DiscoveryStatusPart): boolean {
  const current = (endpoints.status?.conditions ?? []).filter((c) => c.type === CONDITION_DISCOVERY_SYNCED);
  return (
    conditionsEqual(current, desired.conditions) &&
    canonical(endpoints.status?.discovery ?? null) === canonical(desired.discovery ?? null)
  );
}
