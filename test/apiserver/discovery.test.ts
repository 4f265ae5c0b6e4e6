/**
 * Tailnet discovery end to end: the discovery controller in-process with real informers against a
 * real kube-apiserver and the fake Tailscale control plane, time moved by a fake clock. Devices
 * appear, change tags, go offline and are deleted; the stored spec.endpoints follows, and so do what
 * is built from it: the clusters the hooks produce (PostClusterModify with the store), the egress
 * proxies' forwarding rules and the Gateway revision digest that makes Envoy Gateway re-translate.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { create } from '@bufbuild/protobuf';
import { PostClusterModifyRequestSchema } from '../../gen/envoygateway/extension/service_pb.ts';
import { API_VERSION, parseResource, type TailscaleEndpoints } from '../../src/api/index.ts';
import { createExtensionHooks } from '../../src/extension/hooks/index.ts';
import { buildSnapshot } from '../../src/model/resource-store.ts';
import { egressRoutes } from '../../src/proxy/config.ts';
import { gatewayRevision } from '../../src/resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { DISCOVERY_FIELD_MANAGER, OFFLINE_PRIORITY } from '../../src/tailnet-discovery/index.ts';
import { asSent, egCustomBackendCluster, gatewayObject } from '../../src/testing/xds-resources.ts';
import { DEVICES, type DiscoveryHarness, SERVICES, startDiscoveryHarness } from '../harness/discovery.ts';
import { eventually } from '../harness/support/eventually.ts';

let h: DiscoveryHarness;
beforeAll(async () => {
  h = await startDiscoveryHarness('disc');
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

const hooks = createExtensionHooks({ proxies: false });
const names = (e: TailscaleEndpoints) => e.spec.endpoints.map((x) => x.name).sort();
const condition = (e: TailscaleEndpoints) => e.status?.conditions?.find((c) => c.type === 'DiscoverySynced');
const stored = async (name: string) => parseResource(await h.get(name)) as TailscaleEndpoints;

/**
 * What Envoy gets: the hooks' cluster for a route to `name` without a port, built from the
 * informer-fed store. The hand-written and the discovered endpoints serve port 8080: one service.
 */
function clusterHosts(name: string) {
  const snapshot = buildSnapshot(h.cached(), 1);
  const obj = snapshot.getEndpoints(h.namespace, name)!;
  const { response } = hooks.postClusterModify(
    create(PostClusterModifyRequestSchema, {
      cluster: egCustomBackendCluster(`httproute/${h.namespace}/r/rule/0`),
      postClusterContext: { backendExtensionResources: [asSent(obj)] },
    }),
    snapshot,
  );
  return (response.cluster?.loadAssignment?.endpoints ?? [])
    .map((l) => {
      const endpoint = l.lbEndpoints[0]!.hostIdentifier.value as {
        address?: { address: { value?: { address: string } } };
      };
      return `${l.locality?.subZone?.split('/')[1]}@${endpoint.address?.address.value?.address}:p${l.priority}`;
    })
    .sort();
}

/** The Gateway revision a TailscaleGateway on this tailnet would give the Gateway. */
function revision() {
  const gateway = gatewayObject({ namespace: h.namespace, tailnet: h.tailnet, gateway: 'eg' });
  return gatewayRevision(`${h.namespace}/eg`, buildSnapshot([...h.cached(), gateway], 1));
}

const ipOf = (hostname: string) =>
  [...h.fake.state.devices.values()].find((d) => d.hostname === hostname)!.addresses[0]!;
const deviceNamed = (hostname: string) =>
  [...h.fake.state.devices.values()].find((d) => d.hostname === hostname)!;

describe('discovery', () => {
  test('first sync: matching devices become spec.endpoints beside the hand-written one; status and clusters follow', async () => {
    for (const host of ['web-1', 'web-2']) h.fake.state.seedDevice({ hostname: host, tags: ['tag:web'] });
    h.fake.state.seedDevice({ hostname: 'db-1', tags: ['tag:db'] });
    const revisionBefore = revision();
    await h.create('web', {
      tailnet: h.tailnet,
      endpoints: [{ name: 'manual', tailscaleIP: '100.64.9.9', port: 8080 }],
      discovery: {
        devices: { tagSelectors: [{ operator: 'Exists', tag: 'tag:web' }] },
        ports: [{ port: 8080 }],
      },
    });
    const e = await eventually(
      () => stored('web'),
      (x) => names(x).length === 3 && condition(x)?.status === 'True',
    );
    expect(names(e)).toEqual(['manual', 'web-1', 'web-2']);
    expect(e.spec.endpoints.find((x) => x.name === 'web-1')).toEqual({
      name: 'web-1',
      tailscaleFQDN: 'web-1.tail-fake.ts.net',
      tailscaleIP: ipOf('web-1'),
      port: 8080,
      protocol: 'HTTP',
      weight: 1,
      priority: 0,
    });
    expect(condition(e)).toMatchObject({ reason: 'Synced', observedGeneration: e.metadata.generation });
    expect(e.status?.discovery).toMatchObject({
      discoveredEndpoints: 2,
      offlineEndpoints: 0,
      matchedDevices: 2,
      selectors: [{ selector: 'Exists tag:web', matchedDevices: 2 }],
    });
    expect(e.status?.discovery?.lastSyncTime).toBeDefined();
    // The API server records who owns which entry: the hand-written one is not the discovery's.
    const raw = await h.get('web');
    const ours = (raw.metadata.managedFields as { manager: string; fieldsV1?: object }[]).find(
      (m) => m.manager === DISCOVERY_FIELD_MANAGER && JSON.stringify(m.fieldsV1).includes('f:endpoints'),
    );
    expect(JSON.stringify(ours?.fieldsV1)).toContain('web-1');
    expect(JSON.stringify(ours?.fieldsV1)).not.toContain('manual');

    await h.settle();
    expect(clusterHosts('web')).toEqual([
      'manual@100.64.9.9:p0',
      `web-1@${ipOf('web-1')}:p0`,
      `web-2@${ipOf('web-2')}:p0`,
    ]);
    expect(egressRoutes('web', e.spec.endpoints).map((r) => r.serviceName)).toEqual([
      'web-manual-egress',
      'web-web-1-egress',
      'web-web-2-egress',
    ]);
    expect(revision()).not.toBe(revisionBefore);
  });

  test('no write on an unchanged sync: 10 syncs, 10 device lists, 0 writes', async () => {
    await h.settle();
    const writes = h.writes.length;
    const lists = h.fake.requests.count(DEVICES);
    const version = (await h.get('web')).metadata.resourceVersion;
    for (let i = 0; i < 10; i++) await h.tick();
    expect(h.writes.length - writes).toBe(0);
    expect(h.fake.requests.count(DEVICES) - lists).toBe(10);
    expect(h.fake.requests.count(SERVICES)).toBe(0);
    expect((await h.get('web')).metadata.resourceVersion).toBe(version);
  });

  test('a device appears: one spec write, one status write; the clusters and the revision follow', async () => {
    const before = revision();
    const writes = h.writes.length;
    h.fake.state.seedDevice({ hostname: 'web-3', tags: ['tag:web'] });
    await h.tick();
    const e = await stored('web');
    expect(names(e)).toEqual(['manual', 'web-1', 'web-2', 'web-3']);
    expect(h.writes.slice(writes).map((w) => w.what)).toEqual(['spec', 'status']);
    expect(clusterHosts('web')).toContain(`web-3@${ipOf('web-3')}:p0`);
    expect(revision()).not.toBe(before);
  });

  test('tags change: a device joins, another leaves', async () => {
    deviceNamed('db-1').tags = ['tag:db', 'tag:web'];
    deviceNamed('web-2').tags = ['tag:other'];
    await h.tick();
    const e = await stored('web');
    expect(names(e)).toEqual(['db-1', 'manual', 'web-1', 'web-3']);
    expect(clusterHosts('web').map((x) => x.split('@')[0])).toEqual(['db-1', 'manual', 'web-1', 'web-3']);
  });

  test('a device goes offline: kept at the last priority (Envoy’s last tier), removed after the grace period', async () => {
    const web1 = deviceNamed('web-1');
    web1.connectedToControl = false;
    web1.lastSeen = new Date(h.clock.now()).toISOString();
    await h.tick();
    let e = await stored('web');
    expect(e.spec.endpoints.find((x) => x.name === 'web-1')?.priority).toBe(OFFLINE_PRIORITY);
    expect(e.status?.discovery?.offlineEndpoints).toBe(1);
    // Envoy priorities are dense: everything else at 0, the offline device at 1, tried last.
    expect(clusterHosts('web')).toContain(`web-1@${ipOf('web-1')}:p1`);
    expect(clusterHosts('web').filter((x) => x.endsWith(':p0'))).toHaveLength(3);
    // Back online before the grace period ends: back to tier 0.
    web1.connectedToControl = true;
    await h.tick();
    e = await stored('web');
    expect(e.spec.endpoints.find((x) => x.name === 'web-1')?.priority).toBe(0);
    // Offline for longer than the grace period (15m): gone.
    web1.connectedToControl = false;
    web1.lastSeen = new Date(h.clock.now()).toISOString();
    await h.tick();
    await h.tick(16 * 60_000);
    e = await stored('web');
    expect(names(e)).toEqual(['db-1', 'manual', 'web-3']);
    expect(e.status?.discovery?.offlineEndpoints).toBe(0);
  });

  test('a device is deleted: its endpoint goes at the next sync', async () => {
    h.fake.state.devices.delete(deviceNamed('web-3').id);
    await h.tick();
    expect(names(await stored('web'))).toEqual(['db-1', 'manual']);
    expect(clusterHosts('web').map((x) => x.split('@')[0])).toEqual(['db-1', 'manual']);
  });

  test('API failure mid-sync: the last good set is kept and DiscoverySynced says why; the next sync recovers', async () => {
    await h.settle();
    const spec = (await stored('web')).spec.endpoints;
    h.fake.state.seedDevice({ hostname: 'web-4', tags: ['tag:web'] });
    h.fake.knobs.serverError(1, 500, DEVICES);
    await h.tick();
    const failed = await stored('web');
    expect(failed.spec.endpoints).toEqual(spec);
    expect(condition(failed)).toMatchObject({ status: 'False', reason: 'TailscaleAPIError' });
    expect(condition(failed)?.message).toContain('500');
    expect(failed.status?.discovery?.discoveredEndpoints).toBe(1);
    expect(clusterHosts('web').map((x) => x.split('@')[0])).toEqual(['db-1', 'manual']);
    await h.tick();
    const recovered = await stored('web');
    expect(names(recovered)).toEqual(['db-1', 'manual', 'web-4']);
    expect(condition(recovered)).toMatchObject({ status: 'True', reason: 'Synced' });
  });

  test('hand-written endpoints added by server-side apply stay; a device named like one gets a suffixed name', async () => {
    await h.request(h.path('web'), {
      method: 'PATCH',
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'someone', force: 'true' },
      body: {
        apiVersion: API_VERSION,
        kind: 'TailscaleEndpoints',
        metadata: { name: 'web' },
        spec: {
          tailnet: h.tailnet,
          endpoints: [
            { name: 'manual', tailscaleIP: '100.64.9.9', port: 80 },
            { name: 'extra', tailscaleIP: '100.64.9.10', port: 81 },
          ],
        },
      },
    });
    await h.tick();
    let e = await stored('web');
    expect(names(e)).toEqual(['db-1', 'extra', 'manual', 'web-4']);
    // Someone else writes an entry called web-5 by hand; then a device web-5 appears: the
    // hand-written entry keeps its name, the discovered one takes a hashed suffix.
    await h.request(h.path('web'), {
      method: 'PATCH',
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'someone-else' },
      body: {
        apiVersion: API_VERSION,
        kind: 'TailscaleEndpoints',
        metadata: { name: 'web' },
        spec: { tailnet: h.tailnet, endpoints: [{ name: 'web-5', tailscaleIP: '100.64.9.11', port: 82 }] },
      },
    });
    h.fake.state.seedDevice({ hostname: 'web-5', tags: ['tag:web'] });
    await h.tick();
    e = await stored('web');
    const after = names(e);
    expect(after.slice(0, 5)).toEqual(['db-1', 'extra', 'manual', 'web-4', 'web-5']);
    expect(after[5]).toMatch(/^web-5-[0-9a-f]{6}$/);
    expect(e.spec.endpoints.find((x) => x.name === 'web-5')?.tailscaleIP).toBe('100.64.9.11');
    expect(e.spec.endpoints.find((x) => x.name === after[5])?.tailscaleIP).toBe(ipOf('web-5'));
  });

  test('services: one list only while an object selects them', async () => {
    h.fake.state.services.set('svc:grafana', {
      name: 'svc:grafana',
      addrs: ['100.100.1.1'],
      tags: ['tag:ui'],
    });
    await h.create('svc', {
      tailnet: h.tailnet,
      discovery: { services: { tags: ['tag:ui'] }, ports: [{ port: 443, protocol: 'HTTPS' }] },
    });
    const e = await eventually(
      () => stored('svc'),
      (x) => names(x).length === 1,
    );
    expect(e.spec.endpoints[0]).toMatchObject({
      name: 'svc-grafana',
      tailscaleFQDN: 'grafana.tail-fake.ts.net',
      tailscaleIP: '100.100.1.1',
    });
    expect(e.status?.discovery?.matchedServices).toBe(1);
    const lists = h.fake.requests.count(SERVICES);
    const devices = h.fake.requests.count(DEVICES);
    await h.tick();
    expect(h.fake.requests.count(SERVICES) - lists).toBe(1);
    expect(h.fake.requests.count(DEVICES) - devices).toBe(1);
    await h.request(h.path('svc'), { method: 'DELETE' });
  });

  test('discovery removed: its entries and its status go, the hand-written ones stay', async () => {
    await h.request(h.path('web'), {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { discovery: null } },
    });
    const e = await eventually(
      () => stored('web'),
      (x) => names(x).length === 3 && x.status?.discovery === undefined,
    );
    expect(names(e)).toEqual(['extra', 'manual', 'web-5']);
    expect(condition(e)).toBeUndefined();
    await h.request(h.path('web'), { method: 'DELETE' });
  });

  test('1,000 devices and 50 objects on one tailnet: one device list per interval; no writes once settled', async () => {
    for (let i = 0; i < 1000; i++)
      h.fake.state.seedDevice({ hostname: `node-${i}`, tags: ['tag:fleet', `tag:team-${i % 50}`] });
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        h.create(`team-${i}`, {
          tailnet: h.tailnet,
          discovery: {
            devices: {
              tagSelectors: [
                { operator: 'Exists', tag: 'tag:fleet' },
                { operator: 'In', values: [`tag:team-${i}`] },
              ],
            },
            ports: [{ port: 9100, protocol: 'TCP' }],
          },
        }),
      ),
    );
    await h.tick();
    const all = await h.request<{ items: TailscaleEndpoints[] }>(h.path());
    const teams = all.items.filter((e) => e.metadata.name.startsWith('team-'));
    expect(teams).toHaveLength(50);
    for (const team of teams) expect(team.spec.endpoints).toHaveLength(20);
    const lists = h.fake.requests.count(DEVICES);
    const writes = h.writes.length;
    for (let i = 0; i < 3; i++) await h.tick();
    expect(h.fake.requests.count(DEVICES) - lists).toBe(3);
    expect(h.writes.length - writes).toBe(0);
  }, 120_000);
});
