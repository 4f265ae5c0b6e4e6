/**
 * Tailnet discovery at scale: 1,000 devices and 50 TailscaleEndpoints on one tailnet (20 devices per
 * object, selected by tag), the discovery controller in-process against a real kube-apiserver and the
 * fake Tailscale control plane, time moved by a fake clock one sync interval at a time. Reports, per
 * phase, the wall time of a sync round (every object reconciled and everything quiet), the device list
 * calls and the writes (spec and status).
 *
 *   bun run bench:discovery [-- --devices 1000 --objects 50 --rounds 5]
 */
import { parseArgs } from 'node:util';
import type { TailscaleEndpoints } from '../src/api/index.ts';
import { DEVICES, startDiscoveryHarness } from '../test/harness/discovery.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    objects: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
  },
});
const deviceCount = Number(values.devices);
const objectCount = Number(values.objects);
const rounds = Number(values.rounds);

const h = await startDiscoveryHarness('bench-disc');
const fleet = Array.from({ length: deviceCount }, (_, i) =>
  h.fake.state.seedDevice({ hostname: `node-${i}`, tags: ['tag:fleet', `tag:team-${i % objectCount}`] }),
);

interface Phase {
  phase: string;
  /** Wall time from the sync interval elapsing to the last object's sync (writes included). */
  syncMs: number;
  deviceLists: number;
  specWrites: number;
  statusWrites: number;
}
const phases: Phase[] = [];
async function measure(phase: string, run: () => Promise<number>): Promise<void> {
  const lists = h.fake.requests.count(DEVICES);
  const writes = h.writes.length;
  const syncMs = await run();
  const done = h.writes.slice(writes);
  phases.push({
    phase,
    syncMs,
    deviceLists: h.fake.requests.count(DEVICES) - lists,
    specWrites: done.filter((w) => w.what === 'spec').length,
    statusWrites: done.filter((w) => w.what === 'status').length,
  });
}

await measure(`create ${objectCount} objects, first sync`, async () => {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: objectCount }, (_, i) =>
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
  for (;;) {
    const list = await h.request<{ items: TailscaleEndpoints[] }>(h.path());
    if (list.items.filter((e) => e.spec.endpoints.length > 0).length === objectCount) break;
    await Bun.sleep(20);
  }
  const ms = Math.round(performance.now() - started);
  await h.settle();
  return ms;
});
const tick = async () => (await h.tick()).syncMs;
for (let i = 1; i <= rounds; i++) await measure(`unchanged sync ${i}`, tick);
await measure(`one device per object goes offline (${objectCount} devices)`, async () => {
  for (let i = 0; i < objectCount; i++) fleet[i]!.connectedToControl = false;
  return tick();
});
await measure('unchanged sync after the change', tick);
await measure(`${objectCount} devices deleted`, async () => {
  for (let i = 0; i < objectCount; i++) h.fake.state.devices.delete(fleet[i]!.id);
  return tick();
});

const list = await h.request<{ items: TailscaleEndpoints[] }>(h.path());
const endpoints = list.items.reduce((sum, e) => sum + e.spec.endpoints.length, 0);
console.log(`discovery: ${deviceCount} devices, ${objectCount} TailscaleEndpoints on one tailnet`);
console.table(phases);
console.log(
  JSON.stringify({ devices: deviceCount, objects: objectCount, endpointsStored: endpoints, phases }, null, 2),
);
await h.stop();
process.exit(0);
