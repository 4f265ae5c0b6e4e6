/**
 * What every long-running mode shares: the logger, readiness, metrics, health statistics, the HTTP
 * surface and the shutdown sequence, wired once so `run` and `standalone` cannot drift apart.
 *
 * @module
 */
import type { Config } from '../config/schema.ts';
import { createHttpApp } from '../http/app.ts';
import { startHttpServer } from '../http/server.ts';
import { createShutdown, type Shutdown } from '../lifecycle/shutdown.ts';
import { createHealth } from '../observability/health.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { createMetrics } from '../observability/metrics.ts';
import { createReadiness } from '../observability/readiness.ts';
import { VERSION } from '../version.ts';

export interface Runtime {
  log: Logger;
  readiness: ReturnType<typeof createReadiness>;
  metrics: ReturnType<typeof createMetrics>;
  health: ReturnType<typeof createHealth>;
  shutdown: Shutdown;
  /** Where the HTTP surface listens, e.g. `http://0.0.0.0:8080`. */
  httpUrl: string;
}

export interface StartRuntimeOptions {
  config: Config;
  /** `run` or `standalone`, for the first log line. */
  mode: string;
  /** Ends the process; injected so tests can observe the exit code. Default: `process.exit`. */
  exit?: (code: number) => void;
}

export async function startRuntime({ config, mode, exit }: StartRuntimeOptions): Promise<Runtime> {
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  log.info({ version: VERSION, mode, pid: process.pid }, 'starting tailscale-gateway');
  const readiness = createReadiness();
  const health = createHealth();
  const metrics = createMetrics({ version: VERSION, health });
  const shutdown = createShutdown({
    log,
    timeoutMs: config.shutdownTimeout * 1000,
    delayMs: config.shutdownDelay * 1000,
    exit: exit ?? ((code) => process.exit(code)),
  });
  shutdown.on('not-ready', 'readiness', () => readiness.beginShutdown());

  const app = createHttpApp({ readiness, health, metrics, log: log.child({ component: 'http' }) });
  const http = startHttpServer({ app, address: config.httpAddr, field: '--http-addr' });
  shutdown.on('close-servers', 'http', () => http.stop());
  shutdown.on('flush', 'log', () => log.flush());
  shutdown.installSignalHandlers();
  log.info({ url: http.url }, 'HTTP surface listening (/healthz, /readyz, /metrics)');
  return { log, readiness, metrics, health, shutdown, httpUrl: http.url };
}
