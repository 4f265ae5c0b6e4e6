import { describe, expect, test } from 'bun:test';
import { EventEmitter } from 'node:events';
import { createLogger } from '../observability/logger.ts';
import { createShutdown } from './shutdown.ts';

const silent = createLogger({ level: 'silent' });

describe('createShutdown', () => {
  test('runs phases in order: not-ready, stop-work, close-servers, flush; then exits 0', async () => {
    const order: string[] = [];
    const exits: number[] = [];
    const shutdown = createShutdown({ log: silent, timeoutMs: 1000, exit: (c) => exits.push(c) });
    shutdown.on('close-servers', 'http', async () => {
      await Bun.sleep(5);
      order.push('close-servers');
    });
    shutdown.on('flush', 'log', () => {
      order.push('flush');
    });
    shutdown.on('not-ready', 'readiness', () => {
      order.push('not-ready');
    });
    shutdown.on('stop-work', 'queue', async () => {
      await Bun.sleep(10);
      order.push('stop-work');
    });
    expect(await shutdown.trigger('test')).toBe(0);
    expect(order).toEqual(['not-ready', 'stop-work', 'close-servers', 'flush']);
    expect(exits).toEqual([0]);
    expect(await shutdown.done).toBe(0);
  });

  test('a failing step does not stop later phases, but the exit code is 1', async () => {
    const order: string[] = [];
    const exits: number[] = [];
    const shutdown = createShutdown({ log: silent, timeoutMs: 1000, exit: (c) => exits.push(c) });
    shutdown.on('stop-work', 'broken', () => {
      throw new Error('cannot stop');
    });
    shutdown.on('close-servers', 'http', () => {
      order.push('closed');
    });
    expect(await shutdown.trigger('test')).toBe(1);
    expect(order).toEqual(['closed']);
    expect(exits).toEqual([1]);
  });

  test('the hard deadline ends a stuck sequence with exit 1', async () => {
    const exits: number[] = [];
    const shutdown = createShutdown({ log: silent, timeoutMs: 30, exit: (c) => exits.push(c) });
    shutdown.on('stop-work', 'stuck', () => new Promise<void>(() => {}));
    expect(await shutdown.trigger('test')).toBe(1);
    expect(exits).toEqual([1]);
  });

  test('triggering twice runs the sequence once', async () => {
    let runs = 0;
    const shutdown = createShutdown({ log: silent, timeoutMs: 1000, exit: () => {} });
    shutdown.on('stop-work', 'count', () => {
      runs += 1;
    });
    await Promise.all([shutdown.trigger('a'), shutdown.trigger('b')]);
    expect(runs).toBe(1);
  });

  test('the delay after not-ready is honoured before work stops', async () => {
    const times: Record<string, number> = {};
    const shutdown = createShutdown({ log: silent, timeoutMs: 1000, delayMs: 40, exit: () => {} });
    shutdown.on('not-ready', 'r', () => {
      times.notReady = performance.now();
    });
    shutdown.on('stop-work', 'w', () => {
      times.stopWork = performance.now();
    });
    await shutdown.trigger('test');
    expect(times.stopWork! - times.notReady!).toBeGreaterThanOrEqual(35);
  });

  test('SIGTERM starts the sequence; a second signal exits at once with 1', async () => {
    const target = new EventEmitter() as unknown as Pick<NodeJS.Process, 'on' | 'off'>;
    const exits: number[] = [];
    const shutdown = createShutdown({ log: silent, timeoutMs: 1000, exit: (c) => exits.push(c) });
    let release!: () => void;
    shutdown.on('stop-work', 'slow', () => new Promise<void>((r) => (release = r)));
    const uninstall = shutdown.installSignalHandlers(target);
    (target as unknown as EventEmitter).emit('SIGTERM', 'SIGTERM');
    await Bun.sleep(1);
    (target as unknown as EventEmitter).emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([1]);
    release();
    expect(await shutdown.done).toBe(0);
    uninstall();
    expect((target as unknown as EventEmitter).listenerCount('SIGTERM')).toBe(0);
  });

  test('the same signal again within a second is its echo (npm forwarding Ctrl-C), not a second signal', async () => {
    const target = new EventEmitter() as unknown as Pick<NodeJS.Process, 'on' | 'off'>;
    const exits: number[] = [];
    let clock = 1_000;
    const shutdown = createShutdown({
      log: silent,
      timeoutMs: 10_000,
      exit: (c) => exits.push(c),
      now: () => clock,
    });
    let release!: () => void;
    shutdown.on('stop-work', 'slow', () => new Promise<void>((r) => (release = r)));
    shutdown.installSignalHandlers(target);
    const emit = (signal: string) => (target as unknown as EventEmitter).emit(signal, signal);
    emit('SIGINT');
    await Bun.sleep(1);
    clock += 5;
    emit('SIGINT');
    expect(exits).toEqual([]);
    clock += 1_500;
    emit('SIGINT');
    expect(exits).toEqual([1]);
    release();
    expect(await shutdown.done).toBe(0);
  });
});
