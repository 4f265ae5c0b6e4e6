/**
 * `syncRoutes` and `release`, the coordinator calls the TailscaleGateway services controller makes,
 * against the fake control plane (real HTTP, the real Tailscale client): the recorded route set is
 * exact, also across a restart; release drops the consumer and deletes the last; per-tailnet
 * coordinators exist only once identity and client do, and stop cancels every timer.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import {
  createServiceCoordinator,
  createTailnetCoordinators,
  REGISTRY_ANNOTATION,
  readRegistry,
} from '../../src/coordination/index.ts';
import { createTailscaleClient } from '../../src/tailscale/index.ts';
import { createFakeClock } from '../../src/time/fake-clock.ts';
import { type FakeTailscale, startFakeTailscale } from '../harness/fake-tailscale/index.ts';

describe('syncRoutes and release against the fake control plane', () => {
  let fake: FakeTailscale;
  const clock = createFakeClock(Date.UTC(2026, 0, 1));
  const log = { debug: () => {}, info: () => {}, warn: () => {} };
  beforeEach(() => {
    fake = startFakeTailscale();
  });
  afterEach(async () => {
    await fake.stop();
  });
  const client = () =>
    createTailscaleClient({
      baseUrl: fake.url,
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      writeRateLimit: { perSecond: 10_000, burst: 10_000 },
    });
  const routes = () => {
    const read = readRegistry(fake.state.services.get('svc:web')?.annotations);
    return read.kind === 'ok' ? read.registry.consumers.a?.routes : undefined;
  };

  test('the route set is exact, also across a restart; release drops the consumer and deletes the last', async () => {
    const first = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    const ready = await first.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t', 'ns/HTTPRoute/r'],
      ports: ['tcp:443'],
    });
    expect(ready.status).toBe('ready');
    expect(routes()).toEqual(['ns/HTTPRoute/r', 'ns/TailscaleGateway/t']);
    first.stop();
    // A new process (restart) knows only the route it wants now: the other recorded one goes.
    const second = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    const puts = fake.requests.count({ method: 'PUT', endpoint: '/tailnet/{tailnet}/vip-services/{name}' });
    await second.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t'],
      ports: ['tcp:443'],
    });
    expect(routes()).toEqual(['ns/TailscaleGateway/t']);
    await second.syncRoutes('svc:web', {
      backend: 'web',
      routes: ['ns/TailscaleGateway/t'],
      ports: ['tcp:443'],
    });
    expect(fake.requests.count({ method: 'PUT', endpoint: '/tailnet/{tailnet}/vip-services/{name}' })).toBe(
      puts + 1,
    );
    expect(second.wanted()).toEqual([{ service: 'svc:web', routes: ['ns/TailscaleGateway/t'] }]);
    second.stop();
    // Released by a third process that never wanted it (a deletion seen after a restart).
    const third = createServiceCoordinator({
      client: client(),
      operatorId: 'a',
      clusterId: 'ca',
      clock,
      log,
    });
    expect(await third.release('svc:web')).toEqual({ status: 'deleted', service: 'svc:web' });
    expect(fake.state.services.has('svc:web')).toBe(false);
    third.stop();
  });

  test('per-tailnet coordinators: none until identity and client exist; stop cancels every timer', async () => {
    let identity: { operatorId: string; clusterId: string } | undefined;
    let api: ReturnType<typeof client> | undefined;
    const coordinators = createTailnetCoordinators({
      client: () => api,
      identity: () => identity,
      clock,
      log,
    });
    coordinators.start();
    expect(coordinators.for('corp')).toBeUndefined();
    identity = { operatorId: 'a', clusterId: 'ca' };
    expect(coordinators.for('corp')).toBeUndefined();
    api = client();
    const coordinator = coordinators.for('corp')!;
    expect(coordinators.for('corp')).toBe(coordinator);
    await coordinator.syncRoutes('svc:web', { backend: 'web', routes: ['r'] });
    expect(coordinator.scheduled().length).toBe(1);
    expect(
      JSON.parse(fake.state.services.get('svc:web')!.annotations![REGISTRY_ANNOTATION]!).consumers.a
        .clusterId,
    ).toBe('ca');
    coordinators.stop();
    expect(coordinator.scheduled()).toEqual([]);
    // The client is looked up per call: without one the call fails instead of using a stale client.
    api = undefined;
    await expect(coordinator.syncRoutes('svc:web', { backend: 'web', routes: ['r'] })).rejects.toThrow(
      /no API client/,
    );
  });
});
