import { describe, expect, test } from 'bun:test';
import { createReadiness } from './readiness.ts';

describe('createReadiness', () => {
  test('is not ready with no components, and says why', () => {
    const readiness = createReadiness();
    expect(readiness.isReady()).toBe(false);
    expect(readiness.report()).toEqual([
      { name: 'components', ready: false, message: 'no components registered yet' },
    ]);
  });

  test('a registered component starts not ready', () => {
    const readiness = createReadiness();
    readiness.component('caches');
    expect(readiness.isReady()).toBe(false);
    expect(readiness.report()).toEqual([{ name: 'caches', ready: false, message: 'not reported yet' }]);
  });

  test('ready only when every component is ready', () => {
    const readiness = createReadiness();
    const caches = readiness.component('caches');
    const grpc = readiness.component('grpc');
    caches.set(true);
    expect(readiness.isReady()).toBe(false);
    grpc.set(true);
    expect(readiness.isReady()).toBe(true);
    caches.set(false, 'informer relisting');
    expect(readiness.isReady()).toBe(false);
    expect(readiness.report()).toEqual([
      { name: 'caches', ready: false, message: 'informer relisting' },
      { name: 'grpc', ready: true },
    ]);
  });

  test('setting without a message clears the previous one', () => {
    const readiness = createReadiness();
    const caches = readiness.component('caches');
    caches.set(false, 'syncing');
    caches.set(true);
    expect(readiness.report()).toEqual([{ name: 'caches', ready: true }]);
  });

  test('a ready component can list problems; setting without them clears them', () => {
    const readiness = createReadiness();
    const resources = readiness.component('resources');
    resources.set(true, '2 resources, 1 problem', ['a.yaml#0 TailscaleEndpoints default/x: bad']);
    expect(readiness.isReady()).toBe(true);
    const report = readiness.report();
    expect(report).toEqual([
      {
        name: 'resources',
        ready: true,
        message: '2 resources, 1 problem',
        problems: ['a.yaml#0 TailscaleEndpoints default/x: bad'],
      },
    ]);
    report[0]!.problems!.push('changed by the caller');
    expect(readiness.report()[0]!.problems).toHaveLength(1);
    resources.set(true, '2 resources, 0 problems', []);
    expect(readiness.report()).toEqual([
      { name: 'resources', ready: true, message: '2 resources, 0 problems' },
    ]);
  });

  test('registering a name twice returns the same component', () => {
    const readiness = createReadiness();
    readiness.component('caches').set(true);
    const again = readiness.component('caches');
    expect(readiness.report()).toHaveLength(1);
    expect(readiness.isReady()).toBe(true);
    again.set(false);
    expect(readiness.isReady()).toBe(false);
  });

  test('report rows are copies', () => {
    const readiness = createReadiness();
    readiness.component('caches').set(true);
    const [row] = readiness.report();
    row!.ready = false;
    expect(readiness.isReady()).toBe(true);
  });

  test('after beginShutdown it is never ready again', () => {
    const readiness = createReadiness();
    const caches = readiness.component('caches');
    caches.set(true);
    readiness.beginShutdown();
    expect(readiness.isReady()).toBe(false);
    caches.set(true);
    readiness.component('late').set(true);
    expect(readiness.isReady()).toBe(false);
    expect(readiness.report().at(-1)).toEqual({ name: 'shutdown', ready: false, message: 'shutting down' });
  });
});
