import { afterEach, describe, expect, test } from 'bun:test';
import { Hono } from 'hono';
import { OperatorError } from '../errors.ts';
import { createHealth } from '../observability/health.ts';
import { createMetrics } from '../observability/metrics.ts';
import { createReadiness } from '../observability/readiness.ts';
import { type HttpServer, startHttpServer } from './server.ts';
import { createHttpSurface } from './surface.ts';

const started: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.stop()));
});

function start(options: Parameters<typeof startHttpServer>[0]): HttpServer {
  const server = startHttpServer(options);
  started.push(server);
  return server;
}

function observabilityApp() {
  return createHttpSurface({
    readiness: createReadiness(),
    health: createHealth(),
    metrics: createMetrics({ version: 'dev', defaultMetrics: false }),
  });
}

describe('startHttpServer', () => {
  test('serves /healthz over a real socket on an ephemeral port', async () => {
    const server = start({ app: observabilityApp(), address: '127.0.0.1:0' });
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('text/plain');
    expect(await res.text()).toBe('ok');
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
  });

  test('binds an IPv6 literal', async () => {
    let server: HttpServer;
    try {
      server = start({ app: observabilityApp(), address: '[::1]:0' });
    } catch {
      return; // no IPv6 loopback in this sandbox
    }
    expect(server.url).toBe(`http://[::1]:${server.port}`);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  test('stop closes the listener and is idempotent', async () => {
    const server = startHttpServer({ app: observabilityApp(), address: '127.0.0.1:0' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    await server.stop();
    await server.stop();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  test('stop lets an in-flight request finish', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const app = new Hono().get('/slow', async (c) => {
      entered();
      await gate;
      return c.text('done');
    });
    const server = startHttpServer({ app, address: '127.0.0.1:0' });
    const pending = fetch(`${server.url}/slow`);
    await inHandler;
    const stopped = server.stop();
    release();
    const res = await pending;
    expect(await res.text()).toBe('done');
    await stopped;
  });

  test('a malformed address is Invalid, naming the field', () => {
    let caught: unknown;
    try {
      startHttpServer({ app: observabilityApp(), address: 'localhost', field: 'httpAddress' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OperatorError);
    expect((caught as OperatorError).code).toBe('Invalid');
    expect((caught as OperatorError).field).toBe('httpAddress');
  });

  test('a port in use is Invalid, naming the address', () => {
    const first = start({ app: observabilityApp(), address: '127.0.0.1:0' });
    const address = `127.0.0.1:${first.port}`;
    let caught: unknown;
    try {
      start({ app: observabilityApp(), address });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OperatorError);
    expect((caught as OperatorError).code).toBe('Invalid');
    expect((caught as OperatorError).message).toContain(`cannot listen on ${address}`);
  });
});
