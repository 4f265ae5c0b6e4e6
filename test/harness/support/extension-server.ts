/**
 * An extension server on a real socket (port 0) for the wire tests: scripted hooks, a memory store the
 * test syncs when it wants, its own metrics registry and a logger whose records the test can read.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import {
  createExtensionServer,
  type ExtensionServer,
  type ExtensionServerOptions,
} from '../../../src/extension/server/index.ts';
import { createMemoryResourceStore, type MemoryResourceStore } from '../../../src/model/resource-store.ts';
import { createMetrics, type Metrics } from '../../../src/observability/metrics.ts';
import { createScriptedHooks, type ScriptedHooks } from './extension-hooks.ts';

export interface TestExtensionServer {
  server: ExtensionServer;
  url: string;
  port: number;
  hooks: ScriptedHooks;
  store: MemoryResourceStore;
  metrics: Metrics;
  /** Every log record so far. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startTestExtensionServer(
  options: Partial<Omit<ExtensionServerOptions, 'hooks' | 'store' | 'log' | 'metrics'>> & {
    synced?: boolean;
  } = {},
): Promise<TestExtensionServer> {
  const { synced = true, ...rest } = options;
  const hooks = createScriptedHooks();
  const store = createMemoryResourceStore();
  if (synced) store.replace([]);
  const metrics = createMetrics({ version: 'test', defaultMetrics: false });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line));
      callback();
    },
  });
  const server = createExtensionServer({
    hooks,
    store,
    metrics,
    log: pino({ level: 'debug' }, sink),
    ...rest,
  });
  const { url, port } = await server.listen();
  return { server, url, port, hooks, store, metrics, logs, close: () => server.close(500) };
}

/** A seeded PRNG (mulberry32), so a failing fuzz case can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
