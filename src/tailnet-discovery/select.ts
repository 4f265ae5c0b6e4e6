/**
 * The endpoint set a TailscaleEndpoints object's `spec.discovery` selects from a tailnet's devices and
 * Tailscale Services. Pure and deterministic: the same inventory, spec and time always give the same
 * endpoints in the same order, so the reconciler can compare them with what is stored and write only
 * when they differ.
 *
 * Names. A device's endpoints are named after the first label of its MagicDNS name (unique in the
 * tailnet, derived from the hostname), falling back to the hostname; a Tailscale Service's after its
 * label with `svc-` in front. Names are made DNS-label safe; with several ports each gets `-<port name
 * or number>`. A name that clashes with an endpoint written by hand, or with another candidate, gets a
 * suffix from a hash of the device's stable node id; among candidates the oldest device (then the
 * smallest id) keeps the plain name, so a newcomer never renames a device already routed to.
 *
 * Offline devices stay, at priority {@link OFFLINE_PRIORITY} (the last failover tier), until they have
 * been offline longer than the grace period; deleted devices go at once.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import {
  type Discovery,
  type Endpoint,
  FQDN,
  MAX_ENDPOINTS,
  parseDuration,
  type TagSelector,
} from '../api/index.ts';
import type { Device, TailscaleService } from '../tailscale/index.ts';

/** Priority of the endpoints of offline devices: the last tier the API allows. */
export const OFFLINE_PRIORITY = 10;
/**
 * When the API does not say whether a device is connected, one not seen for this long counts as
 * offline. A device that reports `connectedToControl: true` is online whatever its `lastSeen` says.
 */
export const LAST_SEEN_OFFLINE_MS = 5 * 60_000;

const MAX_NAME = 63;

/** What one list of a tailnet holds, as the discovery needs it. */
export interface Inventory {
  devices: readonly Device[];
  /** Undefined when services were not listed (no selector asks for them). */
  services?: readonly TailscaleService[] | undefined;
  /** `tail1234.ts.net`, for Tailscale Service FQDNs; unknown → services get no FQDN. */
  magicDNSSuffix?: string | undefined;
  /** When the operator first saw a device offline, for devices whose `lastSeen` is missing. */
  offlineObservedAt?(nodeId: string): number | undefined;
}

export interface SelectorMatch {
  selector: string;
  matchedDevices: number;
}

export interface DiscoveryResult {
  /** Sorted by name, every defaulted field set, as they should be stored. */
  endpoints: Endpoint[];
  /** Endpoints of offline devices among `endpoints`. */
  offline: number;
  /** Devices matching every selector and filter (offline ones past the grace period included). */
  matchedDevices: number;
  /** Tailscale Services selected; undefined when the spec selects none. */
  matchedServices: number | undefined;
  selectors: SelectorMatch[];
  /** Candidates left out because the object would exceed MAX_ENDPOINTS; 0 normally. */
  truncated: number;
  /** Candidates before truncation. */
  found: number;
}

/** `In [tag:a, tag:b]`, `Exists tag:web`: a selector as status shows it. */
export function selectorText(selector: TagSelector): string {
  return selector.values
    ? `${selector.operator} [${selector.values.join(', ')}]`
    : `${selector.operator} ${selector.tag}`;
}

export function matchesSelector(tags: readonly string[], selector: TagSelector): boolean {
  switch (selector.operator) {
    case 'Exists':
      return tags.includes(selector.tag ?? '');
    case 'DoesNotExist':
      return !tags.includes(selector.tag ?? '');
    case 'In':
      return (selector.values ?? []).some((tag) => tags.includes(tag));
    case 'NotIn':
      return !(selector.values ?? []).some((tag) => tags.includes(tag));
  }
}

/** A DNS label from free text: lower case, other characters as `-`, no `-` at either end. */
export function dnsLabelOf(text: string, fallback: string): string {
  const label = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_NAME)
    .replace(/-+$/, '');
  return label === '' ? fallback : label;
}

const shortHash = (id: string, length: number) =>
  createHash('sha256').update(id).digest('hex').slice(0, length);

/** `name` with `-suffix`, shortened so the whole stays a DNS label. */
function withSuffix(name: string, suffix: string): string {
  const room = MAX_NAME - suffix.length - 1;
  return `${name.slice(0, room).replace(/-+$/, '')}-${suffix}`;
}

/** Whether the device is offline now, and since when (ms). */
export function offlineState(
  device: Device,
  now: number,
  observedAt?: (nodeId: string) => number | undefined,
): { offline: false } | { offline: true; since: number } {
  const lastSeen = device.lastSeen ? Date.parse(device.lastSeen) : Number.NaN;
  const seen = Number.isNaN(lastSeen) ? undefined : lastSeen;
  let offline: boolean;
  if (device.connectedToControl === true) offline = false;
  else if (device.connectedToControl === false) offline = true;
  else offline = seen !== undefined && now - seen > LAST_SEEN_OFFLINE_MS;
  if (!offline) return { offline: false };
  return { offline: true, since: seen ?? observedAt?.(device.nodeId) ?? now };
}

interface Candidate {
  /** Node id or service name: what the hash suffix is made from. */
  id: string;
  /** Sort key among clashing names: the oldest keeps the plain name. */
  age: string;
  name: string;
  endpoint: Omit<Endpoint, 'name'>;
  offline: boolean;
}

/** The IPv4 address (what most clients reach first), else the IPv6 one; never something that is not an IP. */
const firstIP = (addresses: readonly string[] | undefined) =>
  addresses?.find((a) => isIPv4(a)) ?? addresses?.find((a) => isIP(a) !== 0);

const fqdnOf = (name: string | undefined): string | undefined => {
  const trimmed = name?.toLowerCase().replace(/\.$/, '');
  return trimmed && FQDN.test(trimmed) ? trimmed : undefined;
};

/**
 * Computes the discovered endpoints of one object.
 *
 * @param staticNames names of the endpoints written by hand (not the operator's), which discovered
 *   names must avoid; their count also lowers the room left under MAX_ENDPOINTS.
 */
export function discoverEndpoints(
  discovery: Discovery,
  inventory: Inventory,
  staticNames: ReadonlySet<string>,
  now: number,
): DiscoveryResult {
  const graceMs = parseDuration(discovery.offlineGracePeriod);
  const ports = discovery.ports;
  const several = ports.length > 1;
  const template = (offline: boolean) => ({
    weight: discovery.weight,
    priority: offline ? OFFLINE_PRIORITY : discovery.priority,
    ...(discovery.healthCheck ? { healthCheck: { ...discovery.healthCheck } } : {}),
  });
  const candidates: Candidate[] = [];
  const perPort = (
    base: string,
    id: string,
    age: string,
    offline: boolean,
    address: Omit<Endpoint, 'name' | 'port' | 'protocol' | 'weight' | 'priority'>,
  ) => {
    for (const port of ports) {
      candidates.push({
        id,
        age,
        offline,
        name: several ? withSuffix(base, port.name ?? String(port.port)) : base,
        endpoint: { ...address, port: port.port, protocol: port.protocol, ...template(offline) },
      });
    }
  };

  // Devices.
  const devices = discovery.devices;
  const selectors: SelectorMatch[] = [];
  let matchedDevices = 0;
  if (devices) {
    const pattern = devices.hostnamePattern === undefined ? undefined : new RegExp(devices.hostnamePattern);
    const systems = devices.os?.map((os) => os.toLowerCase());
    const counts = devices.tagSelectors.map(() => 0);
    for (const device of inventory.devices) {
      const tags = device.tags ?? [];
      let all = true;
      devices.tagSelectors.forEach((selector, i) => {
        if (matchesSelector(tags, selector)) counts[i]! += 1;
        else all = false;
      });
      if (!all) continue;
      if (pattern && !pattern.test(device.hostname)) continue;
      if (systems && !systems.includes((device.os ?? '').toLowerCase())) continue;
      // A device waiting for approval cannot be reached.
      if (device.authorized === false) continue;
      matchedDevices += 1;
      const state = offlineState(device, now, inventory.offlineObservedAt);
      if (state.offline && now - state.since > graceMs) continue;
      const fqdn = fqdnOf(device.name);
      const ip = firstIP(device.addresses);
      if (fqdn === undefined && ip === undefined) continue;
      const base = dnsLabelOf(fqdn?.split('.')[0] ?? device.hostname, 'device');
      perPort(base, device.nodeId || device.id, device.created ?? '', state.offline, {
        ...(fqdn ? { tailscaleFQDN: fqdn } : {}),
        ...(ip ? { tailscaleIP: ip } : {}),
      });
    }
    devices.tagSelectors.forEach((selector, i) => {
      selectors.push({ selector: selectorText(selector), matchedDevices: counts[i]! });
    });
  }

  // Tailscale Services.
  let matchedServices: number | undefined;
  const services = discovery.services;
  if (services) {
    matchedServices = 0;
    for (const service of inventory.services ?? []) {
      const named = services.names?.includes(service.name) ?? false;
      const tagged = services.tags?.some((tag) => service.tags?.includes(tag)) ?? false;
      if (!named && !tagged) continue;
      matchedServices += 1;
      const label = service.name.replace(/^svc:/, '');
      const fqdn = inventory.magicDNSSuffix ? fqdnOf(`${label}.${inventory.magicDNSSuffix}`) : undefined;
      const ip = firstIP(service.addrs);
      if (fqdn === undefined && ip === undefined) continue;
      perPort(dnsLabelOf(`svc-${label}`, 'svc'), service.name, '', false, {
        ...(fqdn ? { tailscaleFQDN: fqdn } : {}),
        ...(ip ? { tailscaleIP: ip } : {}),
      });
    }
  }

  const named = resolveNames(candidates, staticNames);
  // Over the limit: online before offline, then by name, so the cut is deterministic and keeps what serves.
  const room = Math.max(0, MAX_ENDPOINTS - staticNames.size);
  const kept = [...named]
    .sort((a, b) => Number(a.offline) - Number(b.offline) || a.name.localeCompare(b.name))
    .slice(0, room)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    endpoints: kept.map((c) => ({ name: c.name, ...c.endpoint }) as Endpoint),
    offline: kept.filter((c) => c.offline).length,
    matchedDevices,
    matchedServices,
    selectors,
    truncated: named.length - kept.length,
    found: named.length,
  };
}

/** Makes every name unique and distinct from the hand-written ones (see the module comment). */
function resolveNames(candidates: Candidate[], staticNames: ReadonlySet<string>): Candidate[] {
  const groups = new Map<string, Candidate[]>();
  for (const c of candidates) groups.set(c.name, [...(groups.get(c.name) ?? []), c]);
  const out: Candidate[] = [];
  const taken = new Set(staticNames);
  const renamed: Candidate[] = [];
  for (const [name, group] of groups) {
    group.sort((a, b) => a.age.localeCompare(b.age) || a.id.localeCompare(b.id));
    const [first, ...rest] = group;
    if (!staticNames.has(name)) {
      out.push(first!);
      taken.add(name);
    } else renamed.push(first!);
    renamed.push(...rest);
  }
  for (const c of renamed.sort((a, b) => a.id.localeCompare(b.id) || a.name.localeCompare(b.name))) {
    let length = 6;
    let name = withSuffix(c.name, shortHash(c.id, length));
    while (taken.has(name) && length < 64) name = withSuffix(c.name, shortHash(c.id, ++length));
    taken.add(name);
    out.push({ ...c, name });
  }
  return out;
}
