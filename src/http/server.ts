/**
 * Serving the HTTP app on a socket.
 *
 * A thin wrapper over `Bun.serve` so that `main.ts` deals in the configured `host:port` string and a
 * `stop()` that fits the shutdown sequence (reference §4.4), and tests can bind port 0 and read back the
 * port the kernel chose.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';
import { formatHostPort, parseListenAddress } from './address.ts';

export interface HttpServerOptions {
  /** Anything with a Fetch-API handler; typically the Hono app from `createHttpSurface`. */
  app: { fetch(request: Request): Response | Promise<Response> };
  /** Listen address as `host:port`, `:port` or `[ipv6]:port`; port 0 picks an ephemeral port. */
  address: string;
  /** Config field the address came from, named in errors. Default: none. */
  field?: string;
  /**
   * Seconds an idle keep-alive connection is kept open. Default 30, above Prometheus's and the kubelet's
   * scrape and probe intervals' usual 10–15 s, so they reuse connections instead of reconnecting.
   */
  idleTimeoutSeconds?: number;
}

export interface HttpServer {
  /** Base URL of the listener, e.g. `http://127.0.0.1:39123`. Wildcard hosts are reported as given. */
  url: string;
  /** The bound port; differs from the configured one when that was 0. */
  port: number;
  /**
   * Stops accepting connections and resolves once in-flight requests have finished, so probes and
   * scrapes already being answered during shutdown complete. Safe to call more than once.
   */
  stop(): Promise<void>;
}

/**
 * Starts listening and returns once the socket is bound.
 *
 * @throws {OperatorError} code `Invalid` for a malformed address, or when the address cannot be bound
 *   (in use, not local, privileged port), both being configuration problems a retry will not fix.
 * @example
 * const server = startHttpServer({ app, address: ':8080', field: 'httpAddress' });
 * // on SIGTERM, after readiness.beginShutdown():
 * await server.stop();
 */
export function startHttpServer(options: HttpServerOptions): HttpServer {
  const { app, address, field, idleTimeoutSeconds = 30 } = options;
  const { host, port } = parseListenAddress(address, field === undefined ? {} : { field });

  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: host,
      port,
      idleTimeout: idleTimeoutSeconds,
      // No HTML error pages; Hono's onError answers failures.
      development: false,
      // Explicit: with `development: false`, Bun 1.4.4 binds with SO_REUSEPORT unless told otherwise, so a
      // second process on the same port would silently share it instead of failing with EADDRINUSE.
      reusePort: false,
      fetch: (request) => app.fetch(request),
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new OperatorError(
      'Invalid',
      `cannot listen on ${address}${field === undefined ? '' : ` (${field})`}: ${reason}`,
      {
        cause: error,
        ...(field === undefined ? {} : { field }),
      },
    );
  }

  const boundPort = server.port ?? port;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${formatHostPort(host, boundPort)}`,
    port: boundPort,
    stop() {
      stopping ??= server.stop();
      return stopping;
    },
  };
}
