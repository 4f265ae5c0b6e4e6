import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { createHealth, type HealthOptions } from './health.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const START = Date.parse('2026-01-01T00:00:00.000Z');

function fakeClock(start = START) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

function setup(options: HealthOptions = {}) {
  const clock = fakeClock();
  const health = createHealth({ clock: clock.now, ...options });
  const record = (ok: number, failed: number, hook = 'PostRouteModify') => {
    for (let i = 0; i < ok; i++) health.recordHookCall(hook, true, 2);
    for (let i = 0; i < failed; i++) health.recordHookCall(hook, false, 4);
  };
  const check = (name: string) => health.evaluate().checks.find((c) => c.name === name);
  return { clock, health, record, check };
}

describe('failure rate', () => {
  test('healthy with no calls', () => {
    const { health } = setup();
    expect(health.evaluate()).toEqual({
      status: 'healthy',
      checks: [
        {
          name: 'hook-failure-rate',
          ok: true,
          detail: '0/0 hook calls failed (0%) in the last 5m; threshold 10%',
        },
      ],
    });
  });

  test('exactly 10 % is not degraded', () => {
    const { health, record } = setup();
    record(9, 1);
    expect(health.evaluate().status).toBe('healthy');
    record(18, 2);
    expect(health.evaluate().status).toBe('healthy');
  });

  test('more than 10 % is degraded, naming the check', () => {
    const { health, record } = setup();
    record(9, 2);
    const report = health.evaluate();
    expect(report.status).toBe('degraded');
    expect(report.checks).toContainEqual({
      name: 'hook-failure-rate',
      ok: false,
      detail: '2/11 hook calls failed (18.2%) in the last 5m; threshold 10%',
    });
  });

  test('failures expire when they leave the window', () => {
    const { clock, health, record } = setup();
    record(0, 5);
    expect(health.evaluate().status).toBe('degraded');
    // Buckets are 10 s; a call stays counted for at least windowMs - 10 s.
    clock.advance(4 * MINUTE + 50 * SECOND - 1);
    expect(health.evaluate().status).toBe('degraded');
    clock.advance(10 * SECOND + 1);
    expect(health.evaluate().status).toBe('healthy');
    expect(health.snapshot().hooks.window).toEqual({ seconds: 300, calls: 0, failures: 0 });
  });

  test('old failures are diluted only by calls inside the window', () => {
    const { clock, health, record } = setup();
    record(0, 3);
    clock.advance(3 * MINUTE);
    record(27, 0);
    expect(health.evaluate().status).toBe('healthy');
    clock.advance(3 * MINUTE);
    record(1, 1);
    // The first three failures have expired: 1 of 28 calls.
    expect(health.evaluate().status).toBe('healthy');
    clock.advance(3 * MINUTE);
    // Now only the last two calls remain: 50 %.
    expect(health.evaluate().status).toBe('degraded');
  });

  test('a ring slot reused after a full lap starts from zero', () => {
    const { clock, health, record } = setup({ windowMs: MINUTE, buckets: 6 });
    record(0, 10);
    clock.advance(MINUTE); // same slot, next lap
    record(10, 0);
    expect(health.snapshot().hooks.window).toEqual({ seconds: 60, calls: 10, failures: 0 });
    expect(health.evaluate().status).toBe('healthy');
  });

  test('a clock stepping back does not count future buckets as the current window', () => {
    const { clock, health, record } = setup();
    clock.advance(MINUTE);
    record(0, 5);
    clock.advance(-2 * MINUTE);
    expect(health.evaluate().status).toBe('healthy');
  });

  test('minCalls suppresses the verdict on an idle pod', () => {
    const { health, record, check } = setup({ minCalls: 10 });
    record(0, 1);
    expect(check('hook-failure-rate')).toEqual({
      name: 'hook-failure-rate',
      ok: true,
      detail: '1/1 hook calls failed (100%) in the last 5m; fewer than 10 calls, not judged',
    });
    record(5, 4);
    expect(health.evaluate().status).toBe('degraded');
  });

  test('a custom threshold applies', () => {
    const { health, record } = setup({ failureRateThreshold: 0.5 });
    record(1, 1);
    expect(health.evaluate().status).toBe('healthy');
    record(0, 1);
    expect(health.evaluate().status).toBe('degraded');
  });
});

describe('staleness', () => {
  test('fresh caches are healthy', () => {
    const { health, clock, check } = setup();
    health.track('config-cache');
    health.markFresh('config-cache');
    clock.advance(42 * SECOND);
    expect(check('config-cache')).toEqual({
      name: 'config-cache',
      ok: true,
      detail: 'updated 42s ago; limit 10m',
    });
  });

  test('a cache older than 10 minutes degrades, naming it', () => {
    const { health, clock } = setup();
    health.track('config-cache');
    health.track('resource-index');
    health.markFresh('config-cache');
    health.markFresh('resource-index');
    clock.advance(5 * MINUTE);
    health.markFresh('config-cache');
    clock.advance(5 * MINUTE);
    expect(health.evaluate().status).toBe('healthy'); // exactly 10 minutes is still fine
    clock.advance(1);
    const report = health.evaluate();
    expect(report.status).toBe('degraded');
    expect(report.checks.filter((c) => !c.ok)).toEqual([
      { name: 'resource-index', ok: false, detail: 'updated 10m ago; limit 10m' },
    ]);
    health.markFresh('resource-index');
    expect(health.evaluate().status).toBe('healthy');
  });

  test('a tracked cache that never updates degrades after the limit, counted from track()', () => {
    const { health, clock, check } = setup();
    clock.advance(MINUTE);
    health.track('resource-index');
    clock.advance(10 * MINUTE);
    expect(check('resource-index')?.ok).toBe(true);
    clock.advance(30 * SECOND);
    expect(check('resource-index')).toEqual({
      name: 'resource-index',
      ok: false,
      detail: 'never updated (tracked for 10m30s); limit 10m',
    });
  });

  test('track is idempotent and markFresh tracks implicitly', () => {
    const { health, clock } = setup();
    health.track('config-cache');
    clock.advance(9 * MINUTE);
    health.track('config-cache');
    clock.advance(2 * MINUTE);
    expect(health.evaluate().status).toBe('degraded');
    health.markFresh('untracked');
    expect(health.evaluate().checks.map((c) => c.name)).toEqual([
      'hook-failure-rate',
      'config-cache',
      'untracked',
    ]);
  });

  test('both rules can fail at once', () => {
    const { health, clock, record } = setup();
    health.track('config-cache');
    clock.advance(11 * MINUTE);
    record(0, 1);
    const failed = health.evaluate().checks.filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toEqual(['hook-failure-rate', 'config-cache']);
  });
});

describe('snapshot', () => {
  test('starts empty', () => {
    const { health } = setup();
    expect(health.snapshot()).toEqual({
      hooks: {
        totalCalls: 0,
        successfulCalls: 0,
        failedCalls: 0,
        lastCallDurationMs: 0,
        averageCallDurationMs: 0,
        window: { seconds: 300, calls: 0, failures: 0 },
        byHook: {},
      },
      caches: {},
      uptimeSeconds: 0,
    });
  });

  test('the design JSON document', () => {
    const { health, clock } = setup();
    health.track('config-cache');
    health.track('resource-index');
    clock.advance(1500);
    health.markFresh('config-cache');
    health.recordHookCall('PostRouteModify', true, 2);
    health.recordHookCall('PostRouteModify', false, 6);
    health.recordHookCall('PostTranslateModify', true, 10);
    clock.advance(2500);
    expect(health.snapshot()).toEqual({
      hooks: {
        totalCalls: 3,
        successfulCalls: 2,
        failedCalls: 1,
        lastCallDurationMs: 10,
        averageCallDurationMs: 6,
        window: { seconds: 300, calls: 3, failures: 1 },
        byHook: {
          PostRouteModify: { calls: 2, successes: 1, failures: 1, averageDurationMs: 4 },
          PostTranslateModify: { calls: 1, successes: 1, failures: 0, averageDurationMs: 10 },
        },
      },
      caches: {
        'config-cache': { lastUpdated: '2026-01-01T00:00:01.500Z', ageSeconds: 2.5 },
        'resource-index': { lastUpdated: null, ageSeconds: 4 },
      },
      uptimeSeconds: 4,
    });
    expect(JSON.parse(JSON.stringify(health.snapshot()))).toEqual(health.snapshot());
  });

  test('lifetime totals outlive the window', () => {
    const { health, clock, record } = setup();
    record(3, 1);
    clock.advance(MINUTE * 60);
    const { hooks } = health.snapshot();
    expect(hooks.totalCalls).toBe(4);
    expect(hooks.failedCalls).toBe(1);
    expect(hooks.window.calls).toBe(0);
  });

  test('bad durations count as zero', () => {
    const { health } = setup();
    health.recordHookCall('h', true, Number.NaN);
    health.recordHookCall('h', true, -5);
    expect(health.snapshot().hooks.averageCallDurationMs).toBe(0);
  });

  test('memory does not grow with calls', () => {
    const { health, clock } = setup();
    for (let i = 0; i < 100_000; i++) {
      health.recordHookCall('PostRouteModify', i % 20 !== 0, 1);
      clock.advance(37);
    }
    // 100k calls over ~62 minutes: the window only holds the last 5 minutes' worth.
    const { window } = health.snapshot().hooks;
    expect(window.calls).toBeLessThanOrEqual(Math.ceil((5 * MINUTE) / 37) + 1);
    expect(window.calls).toBeGreaterThan(Math.floor((4 * MINUTE + 50 * SECOND) / 37) - 1);
    expect(health.evaluate().status).toBe('healthy');
  });
});

describe('options', () => {
  test.each([
    ['windowMs', { windowMs: 0 }],
    ['buckets', { buckets: 0 }],
    ['buckets', { buckets: 1.5 }],
    ['failureRateThreshold', { failureRateThreshold: 1.5 }],
    ['maxStalenessMs', { maxStalenessMs: -1 }],
    ['minCalls', { minCalls: 0 }],
  ] as [string, HealthOptions][])('bad %s is rejected', (field, options) => {
    let caught: unknown;
    try {
      createHealth(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OperatorError);
    expect((caught as OperatorError).code).toBe('Invalid');
    expect((caught as OperatorError).field).toBe(field);
  });
});
