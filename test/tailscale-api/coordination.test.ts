/**
 * The ServiceCoordinator against the fake control plane (real HTTP, the real Tailscale client), with a
 * fake clock for lastSeen, re-verify and the stale sweep: races between two operators, detach order,
 * crash and sweep, interop with the official operator's owner references, person-made services,
 * restarts and unknown registry schemas.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import {
  createServiceCoordinator,
  describeRefusal,
  OWNER_REFERENCES_ANNOTATION,
  REGISTRY_ANNOTATION,
  readOwnerRefs,
  readRegistry,
  type ServiceCoordinator,
  type ServiceCoordinatorOptions,
  type ServiceReady,
  serviceNameFor,
} from '../../src/coordination/index.ts';
import { createTailscaleClient } from '../../src/tailscale/index.ts';
import { createFakeClock, type FakeClock } from '../../src/time/fake-clock.ts';
import { type FakeService, type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';

const MINUTE = 60_000;
const SERVICE = '/tailnet/{tailnet}/vip-services/{name}';
const log = { debug: () => {}, info: () => {}, warn: () => {} };

let fake: FakeTailscale;
let clock: FakeClock;
const coordinators: ServiceCoordinator[] = [];

beforeEach(() => {
  fake = startFakeTailscale();
  clock = createFakeClock(Date.UTC(2026, 0, 1));
});

afterEach(async () => {
  for (const c of coordinators.splice(0)) c.stop();
  await fake.stop();
});

function coordinator(
  operatorId: string,
  clusterId = `cluster-${operatorId}`,
  extra: Partial<ServiceCoordinatorOptions> = {},
): ServiceCoordinator {
  const client = createTailscaleClient({
    baseUrl: fake.url,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    writeRateLimit: { perSecond: 10_000, burst: 10_000 },
  });
  const c = createServiceCoordinator({ client, operatorId, clusterId, clock, log, ...extra });
  coordinators.push(c);
  return c;
}

const puts = () => fake.requests.count({ method: 'PUT', endpoint: SERVICE });
const deletes = () => fake.requests.count({ method: 'DELETE', endpoint: SERVICE });
const stored = (name: string): FakeService | undefined => fake.state.services.get(name);
const registryOf = (name: string) => {
  const read = readRegistry(stored(name)?.annotations);
  if (read.kind !== 'ok') throw new Error(`no registry on ${name}: ${read.kind}`);
  return read.registry;
};
const ownerIds = (name: string) => {
  const read = readOwnerRefs(stored(name)?.annotations);
  return read.kind === 'ok' ? read.refs.map((r) => r.operatorId) : [];
};
const consumersOf = (name: string) => Object.keys(registryOf(name).consumers).sort();

/** Fires every timer due within `ms` and waits for the work they started. */
async function advance(ms: number) {
  await clock.advance(ms);
  await Promise.all(coordinators.map((c) => c.settled()));
}

const WEB = {
  backend: 'web.default.svc',
  route: 'default/HTTPRoute/web',
  ports: ['tcp:443'],
  tags: ['tag:web'],
};
const NAME = serviceNameFor(WEB.backend);

describe('service names', () => {
  test('a DNS label stays readable; anything else is sanitised and hashed; svc: is not doubled', () => {
    expect(serviceNameFor('api')).toBe('svc:api');
    expect(serviceNameFor('API')).toBe('svc:api');
    expect(serviceNameFor('svc:api')).toBe('svc:api');
    expect(serviceNameFor('default/web:8080')).toMatch(/^svc:default-web-8080-[0-9a-f]{8}$/);
    // Lossy inputs stay apart, and the same input gives the same name (every cluster agrees).
    expect(serviceNameFor('a/b')).not.toBe(serviceNameFor('a.b'));
    expect(serviceNameFor('default/web:8080')).toBe(serviceNameFor('default/web:8080'));
    const long = serviceNameFor(`${'x'.repeat(100)}.example.com`);
    expect(long.length - 'svc:'.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^svc:[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(serviceNameFor('///')).toMatch(/^svc:backend-[0-9a-f]{8}$/);
  });
});

describe('two operators race to publish the same backend', () => {
  test('50 concurrent ensures each: one service, both consumers, no flapping PUTs after convergence', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    // A little latency on reads widens the read-modify-write windows, so the writers really interleave.
    fake.knobs.addLatency(2, { method: 'GET', endpoint: SERVICE });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => [a.ensureService(NAME, WEB), b.ensureService(NAME, WEB)]).flat(),
    );
    expect(results.every((r) => r.status === 'ready')).toBe(true);
    expect([...fake.state.services.keys()]).toEqual([NAME]);
    const racePuts = puts();

    // Whatever a lost update dropped, the re-verify (5–10 minutes later) puts back.
    await advance(10 * MINUTE);
    expect(consumersOf(NAME)).toEqual(['op-a', 'op-b']);
    expect(ownerIds(NAME).sort()).toEqual(['op-a', 'op-b']);
    expect(registryOf(NAME).vipAddresses).toEqual(stored(NAME)!.addrs);
    const convergedPuts = puts();

    // Converged: more ensures and re-verifies write nothing.
    fake.requests.clear();
    const again = await Promise.all(
      Array.from({ length: 50 }, () => [a.ensureService(NAME, WEB), b.ensureService(NAME, WEB)]).flat(),
    );
    await a.reverify(NAME);
    await b.reverify(NAME);
    expect(puts()).toBe(0);
    expect(again.every((r) => r.status === 'ready' && !r.changed && r.consumerCount === 2)).toBe(true);
    expect(fake.state.services.size).toBe(1);

    // An hour later: only heartbeats (lastSeen every 10 minutes per operator, plus the odd repair when
    // two heartbeats cross), and both still recorded.
    fake.requests.clear();
    for (let i = 0; i < 12; i++) await advance(5 * MINUTE);
    const hourPuts = puts();
    expect(hourPuts).toBeGreaterThan(0);
    expect(hourPuts).toBeLessThanOrEqual(16);
    expect(consumersOf(NAME)).toEqual(['op-a', 'op-b']);
    for (const consumer of Object.values(registryOf(NAME).consumers)) {
      expect(clock.now() - Date.parse(consumer.lastSeen)).toBeLessThan(30 * MINUTE);
    }
    console.log(
      `race: ${racePuts} PUTs during 100 concurrent ensures, ${convergedPuts - racePuts} more to converge, 0 for 100 more ensures and 2 re-verifies, ${hourPuts} heartbeat PUTs in the next hour`,
    );
  }, 30_000);
  test('50 different routes each, concurrently: every route of both recorded, then quiet', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    fake.knobs.addLatency(2, { method: 'GET', endpoint: SERVICE });
    const route = (op: string, i: number) => `${op}/HTTPRoute/web-${i}`;
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => [
        a.ensureService(NAME, { ...WEB, route: route('a', i) }),
        b.ensureService(NAME, { ...WEB, route: route('b', i) }),
      ]).flat(),
    );
    const failed = results.filter((r) => r.status === 'rejected').length;
    const racePuts = puts();
    const rejectedPuts = fake.requests.all.filter((r) => r.method === 'PUT' && r.status >= 400).length;
    expect([...fake.state.services.keys()]).toEqual([NAME]);
    await advance(10 * MINUTE);
    const registry = registryOf(NAME);
    expect(registry.consumers['op-a']?.routes.length).toBe(50);
    expect(registry.consumers['op-b']?.routes.length).toBe(50);
    fake.requests.clear();
    await a.reverify(NAME);
    await b.reverify(NAME);
    await advance(4 * MINUTE);
    expect(puts()).toBe(0);
    console.log(
      `race (distinct routes): ${racePuts} PUTs (${rejectedPuts} refused creates) for 100 ensures, ${failed} ensures gave up and left it to the re-verify; converged after one re-verify window, then 0 PUTs`,
    );
  }, 30_000);
});

describe('detach, crash and sweep', () => {
  test('A detaches → the service stays; B detaches → it is deleted', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    await b.ensureService(NAME, WEB);
    expect(consumersOf(NAME)).toEqual(['op-a', 'op-b']);

    expect(await a.detach(NAME, WEB.route)).toEqual({ status: 'detached', service: NAME, changed: true });
    expect(consumersOf(NAME)).toEqual(['op-b']);
    expect(ownerIds(NAME)).toEqual(['op-b']);
    // Ownership passed to the remaining consumer.
    expect(registryOf(NAME).ownerOperator).toBe('op-b');

    expect(await b.detach(NAME, WEB.route)).toEqual({ status: 'deleted', service: NAME });
    expect(fake.state.services.size).toBe(0);
    // Detaching again is a no-op.
    expect(await b.detach(NAME, WEB.route)).toEqual({ status: 'detached', service: NAME, changed: false });
  });

  test('one route of several: detaching it keeps the consumer with the others', async () => {
    const a = coordinator('op-a');
    await a.ensureService(NAME, WEB);
    await a.ensureService(NAME, { ...WEB, route: 'default/HTTPRoute/web-v2' });
    expect(registryOf(NAME).consumers['op-a']?.routes).toEqual([
      'default/HTTPRoute/web',
      'default/HTTPRoute/web-v2',
    ]);
    await a.detach(NAME, WEB.route);
    expect(registryOf(NAME).consumers['op-a']?.routes).toEqual(['default/HTTPRoute/web-v2']);
  });

  test('B crashes without detaching: the sweep removes B after the threshold, then the service goes', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    await b.ensureService(NAME, WEB);
    b.stop(); // the crash: no detach, no more heartbeats
    await a.detach(NAME, WEB.route);
    expect(consumersOf(NAME)).toEqual(['op-b']);

    await advance(29 * MINUTE);
    expect(await a.cleanupStaleConsumers()).toEqual({ removed: [], deleted: [], refused: [] });
    expect(stored(NAME)).toBeDefined();

    await advance(2 * MINUTE);
    expect(await a.cleanupStaleConsumers()).toEqual({
      removed: [{ service: NAME, operatorId: 'op-b' }],
      deleted: [NAME],
      refused: [],
    });
    expect(fake.state.services.size).toBe(0);
  });

  test('a live consumer is kept by its heartbeat while a crashed one is swept', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    await b.ensureService(NAME, WEB);
    b.stop();
    for (let i = 0; i < 8; i++) await advance(5 * MINUTE);
    const swept = await a.cleanupStaleConsumers();
    expect(swept.removed).toEqual([{ service: NAME, operatorId: 'op-b' }]);
    expect(swept.deleted).toEqual([]);
    expect(consumersOf(NAME)).toEqual(['op-a']);
    expect(ownerIds(NAME)).toEqual(['op-a']);
  });

  test('start() sweeps periodically', async () => {
    const a = coordinator('op-a', 'c', { staleAfterMs: 30 * MINUTE });
    const b = coordinator('op-b');
    await b.ensureService(NAME, WEB);
    b.stop();
    a.start();
    for (let i = 0; i < 10; i++) await advance(5 * MINUTE);
    expect(fake.state.services.size).toBe(0);
  });
});

describe('racing overwrites are repaired by the re-verify', () => {
  test('an overwrite that drops our consumer is put back within 10 minutes', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    await b.ensureService(NAME, WEB);
    // B's write from a stale read: only B in the registry and the owner references.
    const service = stored(NAME)!;
    const registry = registryOf(NAME);
    delete registry.consumers['op-a'];
    service.annotations = {
      ...service.annotations,
      [REGISTRY_ANNOTATION]: JSON.stringify(registry),
      [OWNER_REFERENCES_ANNOTATION]: JSON.stringify({ ownerRefs: [{ operatorID: 'op-b' }] }),
    };
    expect(consumersOf(NAME)).toEqual(['op-b']);
    expect(a.scheduled().map((s) => s.service)).toEqual([NAME]);
    await advance(10 * MINUTE);
    expect(consumersOf(NAME)).toEqual(['op-a', 'op-b']);
    expect(ownerIds(NAME).sort()).toEqual(['op-a', 'op-b']);
  });

  test('a stale write that brings back a detached consumer is undone', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    await b.ensureService(NAME, WEB);
    const withA = structuredClone(stored(NAME)!);
    await a.detach(NAME, WEB.route);
    fake.state.services.set(NAME, withA); // B writes back what it read before A detached
    await advance(10 * MINUTE);
    expect(consumersOf(NAME)).toEqual(['op-b']);
    expect(ownerIds(NAME)).toEqual(['op-b']);
  });

  test('a service deleted under a wanted route is created again', async () => {
    const a = coordinator('op-a');
    await a.ensureService(NAME, WEB);
    fake.state.services.delete(NAME);
    await advance(10 * MINUTE);
    expect(consumersOf(NAME)).toEqual(['op-a']);
  });
});

describe('interop with the official Tailscale operator', () => {
  const official = (annotations: Record<string, string>): FakeService => ({
    name: NAME,
    addrs: ['100.100.9.9', 'fd7a:115c:a1e0:ab12::99'],
    comment: 'This Tailscale Service is managed by the Tailscale Kubernetes Operator.',
    ports: ['tcp:443'],
    tags: ['tag:k8s'],
    annotations,
  });

  test('a service with only its owner reference is shared, never deleted, and its shape is kept', async () => {
    // Go reads keys case-insensitively and upstream tests write `ownerrefs`; so do we.
    fake.state.services.set(
      NAME,
      official({
        [OWNER_REFERENCES_ANNOTATION]: '{"ownerrefs":[{"operatorID":"nOFFICIAL1CNTRL"}]}',
        other: 'kept',
      }),
    );
    const a = coordinator('op-a');
    const result = (await a.ensureService(NAME, WEB)) as ServiceReady;
    expect(result.status).toBe('ready');
    expect(result.otherOwners).toEqual(['nOFFICIAL1CNTRL']);
    expect(result.owner).toBe('nOFFICIAL1CNTRL');
    expect(result.mismatches).toEqual([{ field: 'tags', wanted: ['tag:web'], actual: ['tag:k8s'] }]);
    const service = stored(NAME)!;
    expect(service.tags).toEqual(['tag:k8s']);
    expect(service.addrs).toEqual(['100.100.9.9', 'fd7a:115c:a1e0:ab12::99']);
    expect(service.annotations?.['other']).toBe('kept');
    expect(JSON.parse(service.annotations![OWNER_REFERENCES_ANNOTATION]!)).toEqual({
      ownerRefs: [{ operatorID: 'nOFFICIAL1CNTRL' }, { operatorID: 'op-a' }],
    });

    // Detach: our entries go, the service and the official owner reference stay.
    expect(await a.detach(NAME, WEB.route)).toEqual({ status: 'detached', service: NAME, changed: true });
    expect(deletes()).toBe(0);
    expect(ownerIds(NAME)).toEqual(['nOFFICIAL1CNTRL']);
    expect(consumersOf(NAME)).toEqual([]);
    // A sweep long after does not delete it either.
    await advance(60 * MINUTE);
    await a.cleanupStaleConsumers();
    expect(stored(NAME)).toBeDefined();
    expect(deletes()).toBe(0);
  });

  test('the official operator can detach after us without deleting what we use', async () => {
    fake.state.services.set(
      NAME,
      official({ [OWNER_REFERENCES_ANNOTATION]: '{"ownerRefs":[{"operatorID":"nOFFICIAL1CNTRL"}]}' }),
    );
    const a = coordinator('op-a');
    await a.ensureService(NAME, WEB);
    // What the official operator does on teardown: drop its own ref; delete only if it was the last.
    const refs = readOwnerRefs(stored(NAME)!.annotations);
    expect(refs.kind).toBe('ok');
    const remaining = refs.kind === 'ok' ? refs.refs.filter((r) => r.operatorId !== 'nOFFICIAL1CNTRL') : [];
    expect(remaining.map((r) => r.operatorId)).toEqual(['op-a']);
  });

  test('an exclusively owned service (owner reference with a resource) is refused', async () => {
    fake.state.services.set(
      NAME,
      official({
        [OWNER_REFERENCES_ANNOTATION]: JSON.stringify({
          ownerRefs: [
            { operatorID: 'nOFFICIAL1CNTRL', resource: { kind: 'ProxyGroup', name: 'api', uid: 'u' } },
          ],
        }),
      }),
    );
    const a = coordinator('op-a');
    const result = await a.ensureService(NAME, WEB);
    expect(result).toMatchObject({ status: 'refused', reason: 'ExclusiveOwner' });
    expect(puts()).toBe(0);
  });

  test('unreadable owner references are refused, not overwritten', async () => {
    fake.state.services.set(NAME, official({ [OWNER_REFERENCES_ANNOTATION]: '{not json' }));
    const result = await coordinator('op-a').ensureService(NAME, WEB);
    expect(result).toMatchObject({ status: 'refused', reason: 'InvalidOwnerReferences' });
    expect(puts()).toBe(0);
  });
});

describe('services we must not touch', () => {
  test('a person-made service is left alone with a typed refusal', async () => {
    const person: FakeService = { name: NAME, addrs: ['100.100.7.7'], comment: 'mine', ports: ['tcp:80'] };
    fake.state.services.set(NAME, structuredClone(person));
    const a = coordinator('op-a');
    const result = await a.ensureService(NAME, WEB);
    expect(result).toMatchObject({ status: 'refused', service: NAME, reason: 'NotManaged' });
    expect(result.status === 'refused' && result.message).toContain('created by a person');
    expect(await a.detach(NAME, WEB.route)).toEqual({ status: 'detached', service: NAME, changed: false });
    await a.cleanupStaleConsumers();
    expect(puts()).toBe(0);
    expect(deletes()).toBe(0);
    expect(stored(NAME)).toEqual(person);
    expect(a.scheduled()).toEqual([]);
  });

  test('a registry in an unknown future schema is left alone and reported', async () => {
    const future: FakeService = {
      name: NAME,
      addrs: ['100.100.7.8'],
      annotations: {
        'gateway.tailscale.com/schema-version': 'v2',
        [REGISTRY_ANNOTATION]: '{"schemaVersion":"v2","members":[]}',
      },
    };
    const inJsonOnly: FakeService = {
      name: 'svc:other',
      addrs: ['100.100.7.9'],
      annotations: { [REGISTRY_ANNOTATION]: '{"schemaVersion":"v3","consumers":{}}' },
    };
    fake.state.services.set(NAME, structuredClone(future));
    fake.state.services.set('svc:other', structuredClone(inJsonOnly));
    const a = coordinator('op-a');
    expect(await a.ensureService(NAME, WEB)).toMatchObject({ status: 'refused', reason: 'UnknownSchema' });
    expect(await a.ensureService('svc:other', WEB)).toMatchObject({
      status: 'refused',
      reason: 'UnknownSchema',
    });
    await advance(120 * MINUTE);
    expect(await a.cleanupStaleConsumers()).toEqual({ removed: [], deleted: [], refused: [] });
    expect(puts()).toBe(0);
    expect(stored(NAME)).toEqual(future);
    expect(stored('svc:other')).toEqual(inJsonOnly);
  });
});

describe('restart and ownership', () => {
  test('a restarted operator (same identity) attaches to its own entry: no duplicate, no write', async () => {
    const before = coordinator('op-a', 'cluster-1');
    await before.ensureService(NAME, WEB);
    before.stop();
    fake.requests.clear();
    const after = coordinator('op-a', 'cluster-1');
    const result = (await after.ensureService(NAME, WEB)) as ServiceReady;
    expect(result).toMatchObject({ status: 'ready', changed: false, consumerCount: 1, owner: 'op-a' });
    expect(puts()).toBe(0);
    expect(consumersOf(NAME)).toEqual(['op-a']);
    expect(ownerIds(NAME)).toEqual(['op-a']);
  });

  test('the owner decides tags and ports; another consumer reports the difference instead of fighting', async () => {
    const a = coordinator('op-a');
    const b = coordinator('op-b');
    await a.ensureService(NAME, WEB);
    const result = (await b.ensureService(NAME, { ...WEB, ports: ['tcp:443', 'tcp:80'] })) as ServiceReady;
    expect(result.mismatches).toEqual([
      { field: 'ports', wanted: ['tcp:443', 'tcp:80'], actual: ['tcp:443'] },
    ]);
    expect(stored(NAME)!.ports).toEqual(['tcp:443']);
    // The owner changing its wish is applied.
    await a.ensureService(NAME, { ...WEB, ports: ['tcp:443', 'tcp:80'] });
    expect(stored(NAME)!.ports).toEqual(['tcp:443', 'tcp:80']);
    expect(stored(NAME)!.tags).toEqual(['tag:web']);
  });

  test('a registry written by the Go prototype (cluster-operator keys) is read and normalised', async () => {
    const lastSeen = new Date(clock.now()).toISOString();
    fake.state.services.set(NAME, {
      name: NAME,
      addrs: ['100.100.5.5'],
      annotations: {
        [REGISTRY_ANNOTATION]: JSON.stringify({
          serviceName: NAME,
          ownerOperator: 'old',
          consumers: {
            'c1-old': { operatorId: 'old', clusterId: 'c1', lastSeen, routes: ['r1'] },
            broken: 42,
          },
          vipAddresses: [],
          lastUpdated: lastSeen,
        }),
        'gateway.tailscale.com/schema-version': 'v1',
      },
    });
    const result = (await coordinator('op-a').ensureService(NAME, WEB)) as ServiceReady;
    expect(result.status).toBe('ready');
    expect(consumersOf(NAME)).toEqual(['old', 'op-a']);
    expect(registryOf(NAME).ownerOperator).toBe('old');
  });
});

describe('registry parsing', () => {
  test('owner references: annotation key and JSON keys match regardless of case; other entries kept verbatim', () => {
    const read = readOwnerRefs({
      'Tailscale.com/Owner-References':
        '{"OWNERREFS":[{"operatorid":"n1","extra":true},{"operatorID":"n2","resource":{"kind":"ProxyGroup"}}]}',
    });
    expect(read.kind).toBe('ok');
    if (read.kind !== 'ok') return;
    expect(read.refs.map((r) => [r.operatorId, r.exclusive])).toEqual([
      ['n1', false],
      ['n2', true],
    ]);
    expect(read.refs[0]!.raw).toEqual({ operatorid: 'n1', extra: true });
  });

  test('a v1 registry is read entry by entry; one bad consumer does not cost the others', () => {
    const read = readRegistry({
      [REGISTRY_ANNOTATION]: JSON.stringify({
        schemaVersion: 'v1',
        consumers: { a: { operatorId: 'a', clusterId: 'c', routes: ['r', 7], lastSeen: 'x' }, b: 'nope' },
      }),
    });
    expect(read.kind).toBe('ok');
    if (read.kind !== 'ok') return;
    expect(Object.keys(read.registry.consumers)).toEqual(['a']);
    expect(read.registry.consumers['a']!.routes).toEqual(['r']);
    expect(read.warnings).toEqual(['consumer "b" is malformed; dropped']);
    expect(readRegistry({ [REGISTRY_ANNOTATION]: '{oops' })).toMatchObject({ kind: 'ok' });
    expect(readRegistry({})).toEqual({ kind: 'absent' });
  });

  test('a refusal becomes a Warning Event / condition reason and message', () => {
    expect(describeRefusal({ reason: 'NotManaged', message: 'm' })).toEqual({
      type: 'Warning',
      reason: 'NotManaged',
      message: 'm',
    });
  });
});
