/**
 * The pure parts of tailnet discovery: selectors, names, offline marking and the grace period, the
 * endpoint limit, the status core with every DiscoverySynced reason, the shared inventory's call
 * counting, and the spec schema's rules.
 */
import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import {
  API_VERSION,
  Discovery,
  MAX_ENDPOINTS,
  parseResource,
  type TailscaleEndpoints,
  validateResource,
} from '../api/index.ts';
import { createFakeClock } from '../controller-runtime/index.ts';
import {
  CONDITION_DISCOVERY_SYNCED,
  desiredDiscoveryStatus,
  discoveryStatusEqual,
  HEARTBEAT_MS,
} from '../resources/tailscale-endpoints/tailscale-endpoints-discovery-status.ts';
import type { Device, TailscaleApi } from '../tailscale/index.ts';
import {
  createTailnetInventory,
  DISCOVERY_FIELD_MANAGER,
  discoverEndpoints,
  dnsLabelOf,
  endpointNamesOwnedBy,
  type Inventory,
  LAST_SEEN_OFFLINE_MS,
  OFFLINE_PRIORITY,
} from './index.ts';

const NOW = Date.parse('2026-01-10T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

let n = 0;
const device = (hostname: string, tags: string[], extra: Partial<Device> = {}): Device => {
  n += 1;
  return {
    id: String(n),
    nodeId: `n${hostname}${n}CNTRL`,
    name: `${hostname}.tail1234.ts.net`,
    hostname,
    addresses: [`100.64.0.${n % 250}`, `fd7a:115c:a1e0::${n}`],
    tags,
    connectedToControl: true,
    lastSeen: iso(NOW),
    created: iso(NOW - 86_400_000 + n),
    os: 'linux',
    ...extra,
  };
};
const discovery = (spec: Record<string, unknown>) =>
  v.parse(Discovery, { ports: [{ port: 8080 }], ...spec }) as v.InferOutput<typeof Discovery>;
const web = discovery({ devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }] } });
const inv = (devices: Device[], extra: Partial<Inventory> = {}): Inventory => ({ devices, ...extra });

describe('selection', () => {
  test('operators In, NotIn, Exists, DoesNotExist; all selectors must hold; per-selector counts', () => {
    const devices = [
      device('a', ['tag:web', 'tag:prod']),
      device('b', ['tag:web', 'tag:dev']),
      device('c', ['tag:db', 'tag:prod']),
      device('d', ['tag:web', 'tag:prod', 'tag:canary']),
    ];
    const spec = discovery({
      devices: {
        tagSelectors: [
          { operator: 'Exists', tag: 'tag:web' },
          { operator: 'In', values: ['tag:prod', 'tag:staging'] },
          { operator: 'NotIn', values: ['tag:canary'] },
          { operator: 'DoesNotExist', tag: 'tag:dev' },
        ],
      },
    });
    const result = discoverEndpoints(spec, inv(devices), new Set(), NOW);
    expect(result.endpoints.map((e) => e.name)).toEqual(['a']);
    expect(result.selectors).toEqual([
      { selector: 'Exists tag:web', matchedDevices: 3 },
      { selector: 'In [tag:prod, tag:staging]', matchedDevices: 3 },
      { selector: 'NotIn [tag:canary]', matchedDevices: 3 },
      { selector: 'DoesNotExist tag:dev', matchedDevices: 3 },
    ]);
    expect(result.matchedDevices).toBe(1);
  });

  test('hostname pattern and OS filters; unauthorized devices left out', () => {
    const devices = [
      device('web-1', ['tag:web']),
      device('web-2', ['tag:web'], { os: 'windows' }),
      device('api-1', ['tag:web']),
      device('web-3', ['tag:web'], { authorized: false }),
    ];
    const spec = discovery({
      devices: {
        tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }],
        hostnamePattern: '^web-',
        os: ['Linux'],
      },
    });
    expect(discoverEndpoints(spec, inv(devices), new Set(), NOW).endpoints.map((e) => e.name)).toEqual([
      'web-1',
    ]);
  });

  test('an endpoint carries the MagicDNS name, the IPv4 address, the port, protocol, weight, priority and health check', () => {
    const d = device('grafana', ['tag:web']);
    const spec = discovery({
      devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }] },
      ports: [{ port: 3000, protocol: 'HTTPS' }],
      weight: 5,
      priority: 2,
      healthCheck: { path: '/api/health' },
    });
    const [endpoint] = discoverEndpoints(spec, inv([d]), new Set(), NOW).endpoints;
    expect(endpoint).toEqual({
      name: 'grafana',
      tailscaleFQDN: 'grafana.tail1234.ts.net',
      tailscaleIP: d.addresses[0]!,
      port: 3000,
      protocol: 'HTTPS',
      weight: 5,
      priority: 2,
      healthCheck: {
        enabled: true,
        path: '/api/health',
        interval: '10s',
        timeout: '3s',
        healthyThreshold: 2,
        unhealthyThreshold: 3,
      },
    });
  });

  test('names: DNS-label safe, one per port, sorted; clashes get a stable hash suffix and the oldest keeps the plain name', () => {
    expect(dnsLabelOf('My_Laptop (2)', 'x')).toBe('my-laptop-2');
    expect(dnsLabelOf('---', 'device')).toBe('device');
    expect(dnsLabelOf('a'.repeat(80), 'x')).toHaveLength(63);
    const older = device('web', ['tag:web'], { created: '2025-01-01T00:00:00Z', nodeId: 'nZZZ' });
    const newer = device('web', ['tag:web'], { created: '2025-06-01T00:00:00Z', nodeId: 'nAAA' });
    const hand = device('db', ['tag:web']);
    const spec = discovery({
      devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }] },
      ports: [{ port: 80, name: 'http' }, { port: 9090 }],
    });
    const once = discoverEndpoints(spec, inv([newer, hand, older]), new Set(['db-http']), NOW);
    const names = once.endpoints.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    expect(names).toContain('web-http');
    expect(names).toContain('web-9090');
    expect(names).toContain('db-9090');
    // The hand-written db-http keeps its name; the discovered one moves aside.
    expect(names).not.toContain('db-http');
    expect(names.filter((x) => x.startsWith('db-http-'))).toHaveLength(1);
    expect(names.filter((x) => /^web-(http|9090)-[0-9a-f]{6}$/.test(x))).toHaveLength(2);
    expect(once.endpoints.find((e) => e.name === 'web-http')?.tailscaleIP).toBe(older.addresses[0]!);
    // Deterministic: the same input in another order gives the same set.
    const again = discoverEndpoints(spec, inv([older, newer, hand]), new Set(['db-http']), NOW);
    expect(again.endpoints).toEqual(once.endpoints);
  });

  test('offline devices stay at the last tier until the grace period ends; deleted ones go at once', () => {
    const online = device('a', ['tag:web']);
    const disconnected = device('b', ['tag:web'], {
      connectedToControl: false,
      lastSeen: iso(NOW - 60_000),
    });
    const longGone = device('c', ['tag:web'], {
      connectedToControl: false,
      lastSeen: iso(NOW - 16 * 60_000),
    });
    // The API did not say; lastSeen decides.
    const silent = device('d', ['tag:web'], {
      connectedToControl: undefined,
      lastSeen: iso(NOW - LAST_SEEN_OFFLINE_MS - 1),
    });
    // Connected wins over an old lastSeen.
    const connected = device('e', ['tag:web'], { lastSeen: iso(NOW - 3_600_000) });
    const result = discoverEndpoints(
      web,
      inv([online, disconnected, longGone, silent, connected]),
      new Set(),
      NOW,
    );
    const byName = Object.fromEntries(result.endpoints.map((e) => [e.name, e.priority]));
    expect(byName).toEqual({ a: 0, b: OFFLINE_PRIORITY, d: OFFLINE_PRIORITY, e: 0 });
    expect(result.offline).toBe(2);
    expect(result.matchedDevices).toBe(5);
    // Without lastSeen, the grace runs from when the operator first saw the device offline.
    const unknown = device('f', ['tag:web'], { connectedToControl: false, lastSeen: undefined });
    const seenAt = (at: number) => inv([unknown], { offlineObservedAt: () => at });
    expect(discoverEndpoints(web, seenAt(NOW - 60_000), new Set(), NOW).endpoints).toHaveLength(1);
    expect(discoverEndpoints(web, seenAt(NOW - 16 * 60_000), new Set(), NOW).endpoints).toHaveLength(0);
  });

  test('Tailscale Services by name or tag, named svc-<label>, FQDN from the MagicDNS suffix', () => {
    const spec = discovery({ services: { names: ['svc:grafana'], tags: ['tag:shared'] } });
    const services = [
      { name: 'svc:grafana', addrs: ['100.100.0.1', 'fd7a::1'] },
      { name: 'svc:wiki', addrs: ['100.100.0.2'], tags: ['tag:shared'] },
      { name: 'svc:other', addrs: ['100.100.0.3'], tags: ['tag:else'] },
    ];
    const result = discoverEndpoints(
      spec,
      inv([], { services, magicDNSSuffix: 'tail1234.ts.net' }),
      new Set(),
      NOW,
    );
    expect(result.endpoints.map((e) => [e.name, e.tailscaleFQDN, e.tailscaleIP])).toEqual([
      ['svc-grafana', 'grafana.tail1234.ts.net', '100.100.0.1'],
      ['svc-wiki', 'wiki.tail1234.ts.net', '100.100.0.2'],
    ]);
    expect(result.matchedServices).toBe(2);
  });

  test('at most 64 endpoints with the hand-written ones: online first, the rest left out and counted', () => {
    const devices = Array.from({ length: 70 }, (_, i) =>
      device(`h${String(i).padStart(2, '0')}`, ['tag:web'], i < 5 ? { connectedToControl: false } : {}),
    );
    const result = discoverEndpoints(web, inv(devices), new Set(['mine', 'yours']), NOW);
    expect(result.endpoints).toHaveLength(MAX_ENDPOINTS - 2);
    expect(result.truncated).toBe(70 - 62);
    expect(result.offline).toBe(0);
  });
});

describe('DiscoverySynced and status.discovery', () => {
  const object = (status?: TailscaleEndpoints['status']) =>
    parseResource({
      apiVersion: API_VERSION,
      kind: 'TailscaleEndpoints',
      metadata: { name: 'web', namespace: 'default', generation: 3 },
      spec: {
        tailnet: 'corp',
        discovery: {
          devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }] },
          ports: [{ port: 80 }],
        },
      },
      ...(status ? { status } : {}),
    }) as TailscaleEndpoints;
  const synced = discoverEndpoints(web, inv([device('a', ['tag:web'])]), new Set(), NOW);

  test('every reason', () => {
    const reasons = [
      desiredDiscoveryStatus(object(), { kind: 'synced', result: synced }, new Date(NOW)),
      desiredDiscoveryStatus(
        object(),
        { kind: 'synced', result: { ...synced, truncated: 3, found: 4 } },
        new Date(NOW),
      ),
      desiredDiscoveryStatus(object(), { kind: 'tailnet-not-ready', tailnet: 'corp' }, new Date(NOW)),
      desiredDiscoveryStatus(object(), { kind: 'api-error', message: 'HTTP 500' }, new Date(NOW)),
      desiredDiscoveryStatus(object(), { kind: 'invalid', message: 'bad' }, new Date(NOW)),
    ].map((s) => `${s.conditions[0]!.status}/${s.conditions[0]!.reason}`);
    expect(reasons).toEqual([
      'True/Synced',
      'False/TooManyEndpoints',
      'False/TailnetNotReady',
      'False/TailscaleAPIError',
      'False/InvalidSelector',
    ]);
  });

  test('an unchanged sync changes nothing until the heartbeat; a failure keeps the counts', () => {
    const first = desiredDiscoveryStatus(object(), { kind: 'synced', result: synced }, new Date(NOW));
    expect(first.discovery).toMatchObject({ discoveredEndpoints: 1, offlineEndpoints: 0, matchedDevices: 1 });
    const stored = object({ conditions: first.conditions, discovery: first.discovery! });
    for (const later of [30_000, 300_000, HEARTBEAT_MS - 1000]) {
      const next = desiredDiscoveryStatus(stored, { kind: 'synced', result: synced }, new Date(NOW + later));
      expect(discoveryStatusEqual(stored, next)).toBe(true);
    }
    const beat = desiredDiscoveryStatus(
      stored,
      { kind: 'synced', result: synced },
      new Date(NOW + HEARTBEAT_MS),
    );
    expect(discoveryStatusEqual(stored, beat)).toBe(false);
    const failed = desiredDiscoveryStatus(stored, { kind: 'api-error', message: 'x' }, new Date(NOW + 1000));
    expect(failed.discovery).toEqual(first.discovery!);
    expect(failed.conditions[0]).toMatchObject({
      type: CONDITION_DISCOVERY_SYNCED,
      status: 'False',
      observedGeneration: 3,
    });
  });
});

describe('ownership from managedFields', () => {
  test('entries keyed under the discovery manager (not its status) are its own', () => {
    const obj = {
      metadata: {
        managedFields: [
          {
            manager: 'kubectl',
            operation: 'Apply',
            fieldsV1: { 'f:spec': { 'f:endpoints': { 'k:{"name":"mine"}': {} } } },
          },
          {
            manager: DISCOVERY_FIELD_MANAGER,
            operation: 'Apply',
            fieldsV1: {
              'f:spec': { 'f:endpoints': { 'k:{"name":"web-1"}': {}, 'k:{"name":"web-2"}': {}, '.': {} } },
            },
          },
          {
            manager: DISCOVERY_FIELD_MANAGER,
            operation: 'Apply',
            subresource: 'status',
            fieldsV1: { 'f:status': {} },
          },
        ],
      },
    };
    expect([...endpointNamesOwnedBy(obj)].sort()).toEqual(['web-1', 'web-2']);
    expect([...endpointNamesOwnedBy(obj, 'kubectl')]).toEqual(['mine']);
  });
});

describe('shared inventory', () => {
  const fakeApi = (lists: { devices: () => Promise<Device[]> }) =>
    ({
      devices: { list: lists.devices },
      services: { list: async () => [] },
    }) as unknown as TailscaleApi;

  test('one device list per interval for any number of readers; a failure is kept beside the last good list', async () => {
    const clock = createFakeClock(NOW);
    const inventory = createTailnetInventory({ clock });
    let fail = false;
    let calls = 0;
    const api = fakeApi({
      devices: async () => {
        calls += 1;
        await Bun.sleep(1);
        if (fail) throw new Error('HTTP 500');
        return [device('a', ['tag:web'])];
      },
    });
    const read = () => inventory.read('corp', api, { maxAgeMs: 30_000, services: false });
    await Promise.all(Array.from({ length: 50 }, read));
    expect(calls).toBe(1);
    await clock.advance(29_000);
    await Promise.all(Array.from({ length: 50 }, read));
    expect(calls).toBe(1);
    await clock.advance(1_000);
    fail = true;
    const results = await Promise.all(Array.from({ length: 50 }, read));
    expect(calls).toBe(2);
    expect(results[49]!.devices.error?.message).toContain('HTTP 500');
    expect(results[49]!.devices.good?.items).toHaveLength(1);
    expect(inventory.counters).toEqual({ deviceLists: 2, serviceLists: 0 });
    // Services only when asked.
    await inventory.read('corp', api, { maxAgeMs: 30_000, services: true });
    expect(inventory.counters.serviceLists).toBe(1);
  });
});

describe('schema', () => {
  const withSpec = (spec: Record<string, unknown>) =>
    validateResource({ apiVersion: API_VERSION, kind: 'TailscaleEndpoints', metadata: { name: 'x' }, spec });
  test('discovery replaces the need for hand-written endpoints; the interval has a minimum; selectors are well formed', () => {
    const ok = withSpec({
      tailnet: 'corp',
      discovery: { devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:a' }] }, ports: [{ port: 80 }] },
    });
    expect(ok.ok).toBe(true);
    if (ok.ok && ok.resource.kind === 'TailscaleEndpoints') {
      expect(ok.resource.spec.endpoints).toEqual([]);
      expect(ok.resource.spec.discovery?.syncInterval).toBe('30s');
      expect(ok.resource.spec.discovery?.offlineGracePeriod).toBe('15m');
    }
    expect(withSpec({ tailnet: 'corp' }).ok).toBe(false);
    const bad = [
      {
        devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:a' }] },
        ports: [{ port: 80 }],
        syncInterval: '5s',
      },
      { devices: { tagSelectors: [{ operator: 'In', tag: 'tag:a' }] }, ports: [{ port: 80 }] },
      { devices: { tagSelectors: [{ operator: 'Exists', values: ['tag:a'] }] }, ports: [{ port: 80 }] },
      { devices: { tagSelectors: [] }, ports: [{ port: 80 }] },
      { ports: [{ port: 80 }] },
      { services: {}, ports: [{ port: 80 }] },
    ];
    for (const d of bad) expect(withSpec({ tailnet: 'corp', discovery: d }).ok).toBe(false);
  });
});
