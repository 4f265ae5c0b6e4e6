/**
 * The operator's HTTP surface: probes, health and metrics.
 *
 * Kept apart from the gRPC extension server on its own port so that a saturated or wedged gRPC server
 * still answers probes and scrapes, and so the surface (a Hono app) can be tested in-process with
 * `app.request()` (reference §1.4). Every dependency is injected; it holds no state of its own.
 *
 * Routes:
 * - `GET /healthz`: liveness, `ok` while the event loop turns. Deliberately checks nothing else, since a
 *   restart cures only a stuck process, not a failing upstream.
 * - `GET /readyz`, `GET /ready`: 200/503 from `readiness`, naming every component.
 * - `GET /health`: 200 healthy / 503 degraded from `health.evaluate()`, naming the failed checks.
 * - `GET /metrics`: Prometheus text; JSON document (`health.snapshot()`) when the client prefers
 *   `application/json`. `GET /metrics.json` always returns the JSON.
 *
 * HEAD works on all of them (Hono answers HEAD from the GET route without a body).
 *
 * @module
 */

import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Health } from '../observability/health.ts';
import type { Readiness } from '../observability/readiness.ts';

/** The pino method the surface needs, so any pino logger (or a test spy) fits. */
export interface ErrorLogger {
  error(obj: object, msg?: string): void;
}

export interface HttpSurfaceOptions {
  /** Source of `/readyz`. */
  readiness: Pick<Readiness, 'isReady' | 'report'>;
  /** Source of `/health` and the JSON metrics document. */
  health: Pick<Health, 'evaluate' | 'snapshot'>;
  /** Source of the Prometheus exposition; typically the result of `createMetrics`. */
  metrics: { registry: { metrics(): Promise<string>; readonly contentType: string } };
  /** Where handler failures are logged. Default: one JSON line on stderr via `console.error`. */
  log?: ErrorLogger;
  /**
   * Leader-election state for `/readyz`. Reported beside readiness, never part of it: every replica
   * serves the extension hooks and is ready whether or not it leads the reconcilers.
   */
  leadership?: () => Leadership | undefined;
}

export interface Leadership {
  /** This replica's identity in the Lease. */
  identity: string;
  /** Whether this replica runs the reconcilers now. */
  leader: boolean;
  /** The current holder, when known. */
  holder?: string;
}

const JSON_TYPE = 'application/json';

/**
 * Builds the Hono app. Serve it with `startHttpServer({ app, address })` or test it with `app.request()`.
 *
 * @example
 * const app = createHttpSurface({ readiness, health, metrics, log });
 * const res = await app.request('/readyz');
 */
export function createHttpSurface(options: HttpSurfaceOptions): Hono {
  const { readiness, health, metrics, log = consoleLogger } = options;
  const app = new Hono();

  // Probe and scrape answers describe this instant; a cached 200 would hide a pod going not-ready.
  // Set before the handler runs, so Hono writes Content-Type explicitly: Bun leaves a string body's
  // text/plain implicit, and it is lost when a header added afterwards makes Hono rebuild the Response.
  app.use(async (c, next) => {
    c.header('Cache-Control', 'no-store');
    await next();
  });

  app.get('/healthz', (c) => c.text('ok'));

  // `/ready` is the design's name, `/readyz` the Kubernetes convention; manifests may use either.
  app.on('GET', ['/readyz', '/ready'], (c) => {
    const isReady = readiness.isReady();
    const leadership = options.leadership?.();
    return c.json(
      {
        status: isReady ? 'ready' : 'not-ready',
        components: readiness.report(),
        ...(leadership ? { leadership } : {}),
      },
      isReady ? 200 : 503,
    );
  });

  app.get('/health', (c) => {
    const report = health.evaluate();
    return c.json(report, report.status === 'healthy' ? 200 : 503);
  });

  app.get('/metrics', async (c) => {
    if (prefersJson(c.req.header('Accept'))) return c.json(health.snapshot());
    const body = await metrics.registry.metrics();
    return c.body(body, 200, { 'Content-Type': metrics.registry.contentType, Vary: 'Accept' });
  });

  app.get('/metrics.json', (c) => c.json(health.snapshot()));

  app.notFound((c) => c.json({ error: 'not found', path: c.req.path }, 404));

  // The one place failures become responses: log everything, send the client nothing internal.
  app.onError((error, c) => {
    if (error instanceof HTTPException && error.status < 500) {
      return c.json({ error: error.message || 'bad request' }, error.status);
    }
    log.error({ err: error, method: c.req.method, path: c.req.path }, 'http handler failed');
    return c.json({ error: 'internal error' }, 500);
  });

  return app;
}

/**
 * True when the Accept header ranks `application/json` above the Prometheus text formats. Prometheus
 * itself sends `application/openmetrics-text;…,text/plain;…;q=0.5,*\/*;q=0.1`, which stays on text;
 * `*\/*` alone (curl) also stays on text, the format people expect from `/metrics`.
 */
export function prefersJson(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  let json = 0;
  let text = 0;
  for (const part of accept.split(',')) {
    const [rawType = '', ...params] = part.split(';');
    const type = rawType.trim().toLowerCase();
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=');
      if (key?.trim().toLowerCase() === 'q') {
        const parsed = Number(value?.trim());
        q = Number.isFinite(parsed) ? parsed : 0;
      }
    }
    if (type === JSON_TYPE) json = Math.max(json, q);
    else if (type === 'text/plain' || type === 'application/openmetrics-text') text = Math.max(text, q);
  }
  return json > 0 && json > text;
}

const consoleLogger: ErrorLogger = {
  error(obj, msg) {
    const { err, ...rest } = obj as { err?: unknown };
    const error = err instanceof Error ? { type: err.name, message: err.message, stack: err.stack } : err;
    console.error(
      JSON.stringify({ level: 'error', time: new Date().toISOString(), msg, ...rest, err: error }),
    );
  },
};
