import { describe, expect, test } from 'bun:test';
import { HTTPException } from 'hono/http-exception';
import { Registry } from 'prom-client';
import { createHealth } from '../observability/health.ts';
import { createMetrics } from '../observability/metrics.ts';
import { createReadiness } from '../observability/readiness.ts';
import { createHttpSurface, type ErrorLogger, prefersJson } from './surface.ts';

const MINUTE = 60_000;
const START = Date.parse('2026-01-01T00:00:00.000Z');

function setup() {
  let now = START;
  const clock = {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
  const readiness = createReadiness();
  const health = createHealth({ clock: clock.now });
  const metrics = createMetrics({ version: '1.2.3', health });
  const logged: { obj: object; msg: string | undefined }[] = [];
  const log: ErrorLogger = { error: (obj, msg) => logged.push({ obj, msg }) };
  const app = createHttpSurface({ readiness, health, metrics, log });
  return { app, clock, readiness, health, metrics, logged };
}

describe('GET /healthz', () => {
  test('200 ok as text', async () => {
    const { app } = setup();
    const res = await app.request('/healthz');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('text/plain');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    expect(await res.text()).toBe('ok');
  });

  test('stays 200 when not ready, degraded or shutting down', async () => {
    const { app, readiness, health, clock } = setup();
    readiness.component('caches');
    health.track('config-cache');
    clock.advance(11 * MINUTE);
    readiness.beginShutdown();
    expect((await app.request('/healthz')).status).toBe(200);
  });

  test('HEAD', async () => {
    const { app } = setup();
    const res = await app.request('/healthz', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });
});

describe('GET /readyz leadership', () => {
  test('reports leadership beside readiness without affecting it', async () => {
    const readiness = createReadiness();
    readiness.component('store').set(true);
    const health = createHealth();
    const metrics = createMetrics({ version: '1.2.3', health, defaultMetrics: false });
    let leader = false;
    const app = createHttpSurface({
      readiness,
      health,
      metrics,
      leadership: () => ({ identity: 'pod-a_x1', leader, holder: leader ? 'pod-a_x1' : 'pod-b_y2' }),
    });
    const follower = await app.request('/readyz');
    expect(follower.status).toBe(200);
    expect(await follower.json()).toMatchObject({ leadership: { leader: false, holder: 'pod-b_y2' } });
    leader = true;
    expect(await (await app.request('/readyz')).json()).toMatchObject({ leadership: { leader: true } });
  });

  test('absent when leader election is not in use', async () => {
    const { app, readiness } = setup();
    readiness.component('store').set(true);
    expect(await (await app.request('/readyz')).json()).not.toHaveProperty('leadership');
  });
});

describe('GET /readyz and /ready', () => {
  for (const path of ['/readyz', '/ready']) {
    test(`${path}: 503 with nothing registered`, async () => {
      const { app } = setup();
      const res = await app.request(path);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'not-ready',
        components: [{ name: 'components', ready: false, message: 'no components registered yet' }],
      });
    });

    test(`${path}: 503 naming the components that are not ready`, async () => {
      const { app, readiness } = setup();
      readiness.component('caches').set(false, 'waiting for informer sync');
      readiness.component('grpc').set(true);
      const res = await app.request(path);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'not-ready',
        components: [
          { name: 'caches', ready: false, message: 'waiting for informer sync' },
          { name: 'grpc', ready: true },
        ],
      });
    });

    test(`${path}: 200 when every component is ready`, async () => {
      const { app, readiness } = setup();
      readiness.component('caches').set(true);
      readiness.component('grpc').set(true);
      const res = await app.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get('Cache-Control')).toBe('no-store');
      expect(await res.json()).toEqual({
        status: 'ready',
        components: [
          { name: 'caches', ready: true },
          { name: 'grpc', ready: true },
        ],
      });
    });
  }

  test('503 after shutdown begins, naming shutdown', async () => {
    const { app, readiness } = setup();
    readiness.component('caches').set(true);
    expect((await app.request('/readyz')).status).toBe(200);
    readiness.beginShutdown();
    const res = await app.request('/readyz');
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; components: { name: string }[] };
    expect(body.status).toBe('not-ready');
    expect(body.components.map((c) => c.name)).toEqual(['caches', 'shutdown']);
  });

  test('HEAD reflects the status without a body', async () => {
    const { app, readiness } = setup();
    readiness.component('caches');
    const res = await app.request('/readyz', { method: 'HEAD' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('');
  });
});

describe('GET /health', () => {
  test('200 healthy', async () => {
    const { app, health, metrics } = setup();
    health.track('config-cache');
    health.markFresh('config-cache');
    metrics.recordHookCall('PostRouteModify', 'ok', 0.001);
    const res = await app.request('/health');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; checks: { name: string; ok: boolean }[] };
    expect(body.status).toBe('healthy');
    expect(body.checks.map((c) => [c.name, c.ok])).toEqual([
      ['hook-failure-rate', true],
      ['config-cache', true],
    ]);
  });

  test('503 degraded by hook failure rate, recovering when the window passes', async () => {
    const { app, metrics, clock } = setup();
    for (let i = 0; i < 9; i++) metrics.recordHookCall('PostRouteModify', 'ok', 0.001);
    metrics.recordHookCall('PostRouteModify', 'internal', 0.001);
    expect((await app.request('/health')).status).toBe(200); // exactly 10 %
    metrics.recordHookCall('PostTranslateModify', 'unavailable', 0.001);
    const res = await app.request('/health');
    expect(res.status).toBe(503);
    const body = (await res.json()) as {
      status: string;
      checks: { name: string; ok: boolean; detail: string }[];
    };
    expect(body.status).toBe('degraded');
    expect(body.checks).toEqual([
      {
        name: 'hook-failure-rate',
        ok: false,
        detail: '2/11 hook calls failed (18.2%) in the last 5m; threshold 10%',
      },
    ]);
    clock.advance(5 * MINUTE);
    expect((await app.request('/health')).status).toBe(200);
  });

  test('503 degraded by a stale cache, naming it', async () => {
    const { app, health, clock } = setup();
    health.track('config-cache');
    health.track('resource-index');
    health.markFresh('config-cache');
    health.markFresh('resource-index');
    clock.advance(6 * MINUTE);
    health.markFresh('config-cache');
    clock.advance(5 * MINUTE);
    const res = await app.request('/health');
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; checks: { name: string; ok: boolean }[] };
    expect(body.status).toBe('degraded');
    expect(body.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['resource-index']);
  });

  test('HEAD', async () => {
    const { app, health, clock } = setup();
    expect((await app.request('/health', { method: 'HEAD' })).status).toBe(200);
    health.track('config-cache');
    clock.advance(11 * MINUTE);
    const res = await app.request('/health', { method: 'HEAD' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('');
  });
});

describe('GET /metrics', () => {
  test('Prometheus text from the injected registry', async () => {
    const { app, metrics } = setup();
    metrics.recordHookCall('PostRouteModify', 'ok', 0.002);
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe(metrics.registry.contentType);
    expect(res.headers.get('Vary')).toBe('Accept');
    const text = await res.text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('tsgw_build_info{version="1.2.3"} 1');
    expect(text).toContain('tsgw_extension_hook_calls_total{hook="PostRouteModify",code="ok"} 1');
    expect(text).toContain('tsgw_extension_hook_duration_seconds_count{hook="PostRouteModify"} 1');
  });

  test("Prometheus's own Accept header gets text", async () => {
    const { app } = setup();
    const res = await app.request('/metrics', {
      headers: {
        Accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      },
    });
    expect(res.headers.get('Content-Type')).toStartWith('text/plain');
  });

  test('Accept: application/json gets the JSON document', async () => {
    const { app, metrics, health, clock } = setup();
    health.track('config-cache');
    health.markFresh('config-cache');
    metrics.recordHookCall('PostRouteModify', 'ok', 0.002);
    metrics.recordHookCall('PostRouteModify', 'internal', 0.004);
    clock.advance(3000);
    const res = await app.request('/metrics', { headers: { Accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    const body = (await res.json()) as ReturnType<typeof health.snapshot>;
    expect(body).toEqual(health.snapshot());
    expect(body.hooks.totalCalls).toBe(2);
    expect(body.hooks.failedCalls).toBe(1);
    expect(body.hooks.averageCallDurationMs).toBeCloseTo(3);
    expect(body.caches['config-cache']).toEqual({ lastUpdated: '2026-01-01T00:00:00.000Z', ageSeconds: 3 });
    expect(body.uptimeSeconds).toBe(3);
  });

  test('/metrics.json always returns JSON', async () => {
    const { app, health } = setup();
    const res = await app.request('/metrics.json', { headers: { Accept: 'text/plain' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(await res.json()).toEqual(health.snapshot());
  });

  test('HEAD', async () => {
    const { app } = setup();
    const res = await app.request('/metrics', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });
});

describe('errors', () => {
  test('unknown paths get 404 JSON', async () => {
    const { app } = setup();
    const res = await app.request('/nope');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not found', path: '/nope' });
  });

  test('wrong method gets 404 JSON', async () => {
    const { app } = setup();
    const res = await app.request('/healthz', { method: 'POST' });
    expect(res.status).toBe(404);
  });

  test('a failing handler is logged and answered with 500 without internals', async () => {
    const registry = new Registry();
    registry.metrics = () => Promise.reject(new Error('secret internal detail at /etc/token'));
    const logged: { obj: object; msg: string | undefined }[] = [];
    const app = createHttpSurface({
      readiness: createReadiness(),
      health: createHealth(),
      metrics: { registry },
      log: { error: (obj, msg) => logged.push({ obj, msg }) },
    });
    const res = await app.request('/metrics');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: 'internal error' });
    expect(text).not.toContain('secret');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.msg).toBe('http handler failed');
    expect(logged[0]!.obj).toMatchObject({ method: 'GET', path: '/metrics' });
    expect((logged[0]!.obj as { err: Error }).err.message).toContain('secret');
  });

  test('a client error raised as HTTPException keeps its status and message, unlogged', async () => {
    const { app, logged } = setup();
    app.get('/client-error', () => {
      throw new HTTPException(400, { message: 'bad selector' });
    });
    const res = await app.request('/client-error');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'bad selector' });
    expect(logged).toHaveLength(0);
  });

  test('a throwing readiness source also goes through onError', async () => {
    const logged: object[] = [];
    const app = createHttpSurface({
      readiness: {
        isReady: () => {
          throw new Error('boom');
        },
        report: () => [],
      },
      health: createHealth(),
      metrics: createMetrics({ version: 'dev', defaultMetrics: false }),
      log: { error: (obj) => logged.push(obj) },
    });
    const res = await app.request('/readyz');
    expect(res.status).toBe(500);
    expect(logged).toHaveLength(1);
  });
});

describe('prefersJson', () => {
  test.each([
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['application/json', true],
    ['Application/JSON; charset=utf-8', true],
    ['application/json, text/plain', false],
    ['text/plain;q=0.5, application/json', true],
    ['application/json;q=0.4, text/plain;q=0.5', false],
    ['application/json;q=0', false],
    ['application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', false],
  ])('%p → %p', (accept, expected) => {
    expect(prefersJson(accept)).toBe(expected);
  });
});
