/**
 * Reading a proxy's state Secret as containerboot and tailscaled write it (reference tailscale.md
 * §2.1): device keys, the stale-data guard (`pod_uid`), the re-issue request, and the consistency rule.
 *
 * @module
 */
import type { V1Secret } from '@kubernetes/client-node';

export const STATE_KEYS = {
  deviceId: 'device_id',
  deviceFqdn: 'device_fqdn',
  deviceIps: 'device_ips',
  podUid: 'pod_uid',
  reissueAuthKey: 'reissue_authkey',
  currentProfile: '_current-profile',
  profiles: '_profiles',
  machineKey: '_machinekey',
} as const;

/** A Secret's value as text; empty values count as absent. */
export function secretText(secret: V1Secret | undefined, key: string): string | undefined {
  const encoded = secret?.data?.[key];
  if (encoded === undefined || encoded === '') return undefined;
  const text = Buffer.from(encoded, 'base64').toString('utf8');
  return text === '' ? undefined : text;
}

/** Every value of a Secret, decoded. */
export function secretTexts(secret: V1Secret | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(secret?.data ?? {})) {
    const text = secretText(secret, key);
    if (text !== undefined) out[key] = text;
  }
  return out;
}

/**
 * `hasConsistentState`: all of `_current-profile`, `_profiles`, `_machinekey` and exactly one
 * `profile-*`, or none of them. Anything in between is a half-written first login.
 */
export function hasConsistentState(secret: V1Secret | undefined): boolean {
  const data = secret?.data ?? {};
  const has = (key: string) => data[key] !== undefined;
  const profiles = Object.keys(data).filter((key) => key.startsWith('profile-')).length;
  const all =
    has(STATE_KEYS.currentProfile) &&
    has(STATE_KEYS.profiles) &&
    has(STATE_KEYS.machineKey) &&
    profiles === 1;
  const none =
    !has(STATE_KEYS.currentProfile) &&
    !has(STATE_KEYS.profiles) &&
    !has(STATE_KEYS.machineKey) &&
    profiles === 0;
  return all || none;
}

/**
 * The device id a state Secret records (kept across Pod restarts, so it is trusted for cleanup):
 * containerboot's `device_id`, else the node id of tailscaled's current login profile. tailscaled
 * stores the profile at login, a moment before containerboot copies the id to `device_id`: a replica
 * removed in between (a scale-down right after a scale-up, a Pod killed while logging in) would leave
 * its device on the tailnet if only `device_id` counted (seen on the real proxy, test/node/tailnet.test.ts).
 */
export const deviceIdOf = (secret: V1Secret | undefined) =>
  secretText(secret, STATE_KEYS.deviceId) ?? profileNodeIdOf(secret);

/**
 * `_profiles` (JSON map of profile id → `ipn.LoginProfile`) entry whose `Key` is `_current-profile`'s
 * value: its `NodeID`, once control has assigned one.
 */
function profileNodeIdOf(secret: V1Secret | undefined): string | undefined {
  const current = secretText(secret, STATE_KEYS.currentProfile);
  const profiles = secretText(secret, STATE_KEYS.profiles);
  if (!current || !profiles) return undefined;
  try {
    const parsed = JSON.parse(profiles) as unknown;
    if (!parsed || typeof parsed !== 'object') return undefined;
    for (const profile of Object.values(parsed as Record<string, unknown>)) {
      const p = profile as { Key?: unknown; NodeID?: unknown } | null;
      if (p?.Key === current && typeof p.NodeID === 'string' && p.NodeID !== '') return p.NodeID;
    }
  } catch {
    // not tailscaled's format: no id from it
  }
  return undefined;
}

export interface ReplicaDevice {
  nodeId: string;
  /** MagicDNS name without the trailing dot. */
  fqdn?: string;
  ips: string[];
}

export type ReplicaState =
  /** No Pod, or the Secret's data was written by an earlier Pod: nothing about it is trusted. */
  | { phase: 'stale' }
  /** The running Pod has not logged in (or has not finished setting up routing) yet. */
  | { phase: 'starting' }
  /** Half-written tailscaled state. */
  | { phase: 'inconsistent' }
  | { phase: 'ready'; device: ReplicaDevice };

/**
 * What the live Pod says about its device. Only data whose `pod_uid` is the Pod's UID counts
 * (containerboot resets `pod_uid` on start and keeps `device_*` from before); `device_fqdn` is written
 * after routing is set up, so it doubles as readiness.
 */
export function replicaState(secret: V1Secret | undefined, podUid: string | undefined): ReplicaState {
  if (!secret || !podUid || secretText(secret, STATE_KEYS.podUid) !== podUid) return { phase: 'stale' };
  if (!hasConsistentState(secret)) return { phase: 'inconsistent' };
  const nodeId = secretText(secret, STATE_KEYS.deviceId);
  const fqdn = secretText(secret, STATE_KEYS.deviceFqdn)?.replace(/\.$/, '');
  if (!nodeId || !fqdn) return { phase: 'starting' };
  let ips: string[] = [];
  try {
    const parsed = JSON.parse(secretText(secret, STATE_KEYS.deviceIps) ?? '[]') as unknown;
    if (Array.isArray(parsed)) ips = parsed.filter((ip): ip is string => typeof ip === 'string').slice(0, 4);
  } catch {
    // a malformed list: report the device without addresses
  }
  return { phase: 'ready', device: { nodeId, fqdn, ips } };
}

/** The proxy's re-issue request (`reissue_authkey`: the failed key, or `no-authkey`), if any. */
export const reissueRequestOf = (secret: V1Secret | undefined) =>
  secretText(secret, STATE_KEYS.reissueAuthKey);
