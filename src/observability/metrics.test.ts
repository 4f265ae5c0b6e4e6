import { describe, expect, test } from 'bun:test';
import { register as globalRegistry, Registry } from 'prom-client';
import { createHealth } from './health.ts';
import { createMetrics } from './metrics.ts';

describe('createMetrics', () => {
  test('registers on its own registry, not the global one', async () => {
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    const metrics = createMetrics({ version: '1.2.3' });
    expect(metrics.registry).not.toBe(globalRegistry);
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(before);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tsgw_build_info{version="1.2.3"} 1');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  test('uses an injected registry', async () => {
    const registry = new Registry();
    const metrics = createMetrics({ registry, version: 'dev', defaultMetrics: false });
    expect(metrics.registry).toBe(registry);
    const text = await registry.metrics();
    expect(text).toContain('tsgw_build_info{version="dev"} 1');
    expect(text).not.toContain('process_cpu_user_seconds_total');
  });

  test('two instances coexist', () => {
    createMetrics({ version: 'a' });
    expect(() => createMetrics({ version: 'b' })).not.toThrow();
  });

  test('sharing a registry by mistake fails loudly', () => {
    const registry = new Registry();
    createMetrics({ registry, version: 'a', defaultMetrics: false });
    expect(() => createMetrics({ registry, version: 'b', defaultMetrics: false })).toThrow(
      /already been registered/,
    );
  });

  test('recordHookCall feeds the Prometheus families', async () => {
    const metrics = createMetrics({ version: 'dev', defaultMetrics: false });
    metrics.recordHookCall('PostRouteModify', 'ok', 0.003);
    metrics.recordHookCall('PostRouteModify', 'ok', 0.02);
    metrics.recordHookCall('PostRouteModify', 'internal', 0.2);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tsgw_extension_hook_calls_total{hook="PostRouteModify",code="ok"} 2');
    expect(text).toContain('tsgw_extension_hook_calls_total{hook="PostRouteModify",code="internal"} 1');
    expect(text).toContain(
      'tsgw_extension_hook_duration_seconds_bucket{le="0.005",hook="PostRouteModify"} 1',
    );
    expect(text).toContain('tsgw_extension_hook_duration_seconds_count{hook="PostRouteModify"} 3');
    expect(text).toContain('# TYPE tsgw_extension_hook_duration_seconds histogram');
  });

  test('recordHookCall feeds health, treating only ok as success', () => {
    const health = createHealth({ clock: () => 0 });
    const metrics = createMetrics({ version: 'dev', defaultMetrics: false, health });
    metrics.recordHookCall('PostRouteModify', 'ok', 0.004);
    metrics.recordHookCall('PostRouteModify', 'OK', 0.002);
    metrics.recordHookCall('PostTranslateModify', 'unavailable', 0.006);
    const { hooks } = health.snapshot();
    expect(hooks.totalCalls).toBe(3);
    expect(hooks.failedCalls).toBe(1);
    expect(hooks.lastCallDurationMs).toBeCloseTo(6);
    expect(hooks.byHook['PostRouteModify']?.averageDurationMs).toBeCloseTo(3);
  });

  test('custom buckets', async () => {
    const metrics = createMetrics({ version: 'dev', defaultMetrics: false, hookDurationBuckets: [1] });
    metrics.recordHookCall('h', 'ok', Number.NaN);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tsgw_extension_hook_duration_seconds_bucket{le="1",hook="h"} 1');
    expect(text).not.toContain('le="0.5"');
  });

  test('request size and added resources families', async () => {
    const metrics = createMetrics({ version: 'dev', defaultMetrics: false });
    metrics.requestBytes.observe({ hook: 'PostTranslateModify' }, 3_000_000);
    metrics.resourcesAdded.inc({ hook: 'PostTranslateModify', resource: 'cluster' }, 3);
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE tsgw_extension_request_bytes histogram');
    expect(text).toContain('tsgw_extension_request_bytes_bucket{le="4194304",hook="PostTranslateModify"} 1');
    expect(text).toContain('tsgw_extension_request_bytes_bucket{le="1048576",hook="PostTranslateModify"} 0');
    expect(text).toContain(
      'tsgw_extension_resources_added_total{hook="PostTranslateModify",resource="cluster"} 3',
    );
  });
});
