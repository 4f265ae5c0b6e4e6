/**
 * What every long-running mode shares: the logger, readiness, metrics, health statistics, the HTTP
 * surface, the Envoy Gateway extension server and the shutdown sequence, wired once so `run` and
 * `standalone` cannot drift apart. The modes differ only in how they fill the resource store.
 *
 * @module
 */

import type { ServingConfig } from '../config/serving.ts';
import type { ExtensionHooks } from '../extension/hooks.ts';
import { createExtensionServer, type ExtensionServer } from '../extension/server/index.ts';
import { memoryBound, resolveServerLimits } from '../extension/server/limits.ts';
import { parseListenAddress } from '../http/address.ts';
import { startHttpServer } from '../http/server.ts';
import { createHttpSurface, type Leadership } from '../http/surface.ts';
import { exitProcess } from '../lifecycle/process-io.ts';
import { createShutdown, type Shutdown } from '../lifecycle/shutdown.ts';
import type { ResourceStore } from '../model/resource-store.ts';
import { createHealth } from '../observability/health.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { createMetrics } from '../observability/metrics.ts';
import { createReadiness } from '../observability/readiness.ts';
import { BUILD, VERSION } from '../version.ts';

export interface Runtime {
  log: Logger;
  readiness: ReturnType<typeof createReadiness>;
  metrics: ReturnType<typeof createMetrics>;
  health: ReturnType<typeof createHealth>;
  shutdown: Shutdown;
  /** Where the HTTP surface listens, e.g. `http://0.0.0.0:8080`. */
  httpUrl: string;
  /** Where the extension server listens, e.g. `http://0.0.0.0:5005` (`https://` with TLS). */
  grpcUrl: string;
  extensionServer: ExtensionServer;
  /** Makes `/readyz` report leader-election state from `source` (beside readiness, not part of it). */
  reportLeadership(source: () => Leadership | undefined): void;
}

export interface StartRuntimeOptions {
  config: ServingConfig;
  /** `run` or `standalone`, for the first log line. */
  mode: string;
  /** Ends the process; injected so tests can observe the exit code. Default: `exitProcess` (flushes first). */
  exit?: (code: number) => void;
  /** Builds the hook logic the extension server serves, given the runtime's logger. */
  hooks: (log: Logger) => ExtensionHooks;
  /** What the hooks read; readiness and gRPC health follow its first sync. */
  store: ResourceStore;
}

export async function startRuntime(options: StartRuntimeOptions): Promise<Runtime> {
  const { config, mode, exit, hooks, store } = options;
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  log.info(
    { version: VERSION, commit: BUILD?.commit ?? 'dev', built: BUILD?.date, mode, pid: process.pid },
    'starting tailscale-gateway',
  );
  const readiness = createReadiness();
  const health = createHealth();
  const metrics = createMetrics({ version: VERSION, health });
  const shutdown = createShutdown({
    log,
    timeoutMs: config.shutdownTimeout * 1000,
    delayMs: config.shutdownDelay * 1000,
    exit: exit ?? ((code) => void exitProcess(code)),
  });
  shutdown.on('not-ready', 'readiness', () => readiness.beginShutdown());

  let leadership: (() => Leadership | undefined) | undefined;
  const app = createHttpSurface({
    readiness,
    health,
    metrics,
    log: log.child({ component: 'http' }),
    leadership: () => leadership?.(),
  });
  const http = startHttpServer({ app, address: config.httpAddr, field: '--http-addr' });
  shutdown.on('close-servers', 'http', () => http.stop());

  const grpcLog = log.child({ component: 'extension-server' });
  const { host, port } = parseListenAddress(config.grpcAddr, { field: '--grpc-addr' });
  const extensionServer = createExtensionServer({
    hooks: hooks(log.child({ component: 'hooks' })),
    store,
    log: grpcLog,
    metrics,
    host,
    port,
    addressField: '--grpc-addr',
    maxMessageBytes: config.grpcMaxMessageBytes,
    inflightBytes: config.grpcInflightBytes,
    requestTimeoutMs: config.grpcRequestTimeout * 1000,
    ...(config.grpcTlsCert === undefined || config.grpcTlsKey === undefined
      ? {}
      : {
          tls: {
            certFile: config.grpcTlsCert,
            keyFile: config.grpcTlsKey,
            ...(config.grpcClientCa === undefined ? {} : { clientCaFile: config.grpcClientCa }),
          },
        }),
  });
  const extensionReady = readiness.component('extension-server');
  extensionReady.set(false, 'not listening yet');
  const grpc = await extensionServer.listen();
  const updateReadiness = () => {
    if (store.hasSynced()) extensionReady.set(true, `listening on ${grpc.url}`);
    else extensionReady.set(false, 'listening; waiting for the first complete resource state');
  };
  updateReadiness();
  const unsubscribe = store.subscribe(updateReadiness);
  // gRPC health turns NOT_SERVING together with /readyz, so gRPC-probing clients drain in step.
  shutdown.on('not-ready', 'extension-server-health', () => extensionServer.health.setServing(false));
  // In-flight hook calls get most of the shutdown budget before they are cancelled.
  const graceMs = Math.max(0, config.shutdownTimeout * 1000 - 2_000) / 2;
  shutdown.on('close-servers', 'extension-server', async () => {
    unsubscribe();
    await extensionServer.close(graceMs);
  });

  shutdown.on('flush', 'log', () => log.flush());
  shutdown.installSignalHandlers();
  log.info({ url: http.url }, 'HTTP surface listening (/healthz, /readyz, /metrics)');
  grpcLog.info(
    {
      url: grpc.url,
      tls: config.grpcTlsCert !== undefined,
      mtls: config.grpcClientCa !== undefined,
      // The sizing of site/envoy-gateway.md "Concurrency and memory", for one Envoy Gateway connection.
      inflightBytes: config.grpcInflightBytes,
      memoryBoundBytes: memoryBound(
        resolveServerLimits({
          maxMessageBytes: config.grpcMaxMessageBytes,
          inflightBytes: config.grpcInflightBytes,
        }),
        1,
      ),
    },
    'extension server listening',
  );
  return {
    log,
    readiness,
    metrics,
    health,
    shutdown,
    httpUrl: http.url,
    grpcUrl: grpc.url,
    extensionServer,
    reportLeadership(source) {
      leadership = source;
    },
  };
}
