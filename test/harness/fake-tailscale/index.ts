/**
 * A fake Tailscale control plane on a loopback socket, for tests and for running the operator locally
 * without a tailnet. It speaks the admin API's HTTP contract (OAuth token, auth keys, devices,
 * Tailscale Services) over real HTTP, so the client under test exercises its real transport, retries
 * and timeouts; `knobs` scripts failures, `requests` lets tests bound how many calls were made.
 *
 * It deliberately imports nothing from `src/tailscale`: a test double that shares code with the thing
 * it tests would agree with it about every mistake.
 *
 * @module
 */

import { createApp, endpointOf, type RecordedRequest } from './app.ts';
import { createKnobs, type FakeKnobs, type RequestMatch } from './knobs.ts';
import { createFakeState, type FakeState } from './state.ts';

export type { RecordedRequest } from './app.ts';
export type { FakeKnobs, FakeScope, FaultSpec, RequestMatch } from './knobs.ts';
export type { FakeAuthKey, FakeDevice, FakeService, FakeState } from './state.ts';

export interface FakeTailscaleOptions {
  /** Port to listen on. Default 0: any free port. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`. */
  hostname?: string;
  /** OAuth client id accepted. Default a fixed fake id. */
  clientId?: string;
  /** OAuth client secret accepted. Default a fresh random `tskey-client-…`. */
  clientSecret?: string;
  /** Tailnet name accepted in paths besides `-`. Default `example.com`. */
  tailnet?: string;
  /** Path elements that serve Tailscale Services. Default `['vip-services']`. */
  servicesPathSegments?: string[];
  /** The fake's clock, for token expiry. Default `Date.now`. */
  now?: () => number;
  /**
   * A tailnet-control's admin API URL: auth keys, devices and Tailscale Services are then control's
   * (see AppOptions), and `state` holds only tokens. Without it the fake is standalone: tests seed and
   * inspect `state`, and no tailscaled is needed.
   */
  control?: string;
}

export interface RequestLog {
  /** Every request in arrival order. */
  readonly all: readonly RecordedRequest[];
  /** How many requests matched (method and/or templated endpoint). */
  count(match?: RequestMatch): number;
  clear(): void;
}

export interface FakeTailscale {
  /** Base URL to give the client, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  clientId: string;
  clientSecret: string;
  state: FakeState;
  knobs: FakeKnobs;
  requests: RequestLog;
  /** Closes the listener and drops open connections. */
  stop(): Promise<void>;
}

export function startFakeTailscale(options: FakeTailscaleOptions = {}): FakeTailscale {
  const now = options.now ?? Date.now;
  const clientId = options.clientId ?? 'kFakeClientCNTRL';
  const clientSecret =
    options.clientSecret ?? `tskey-client-${clientId}-${crypto.randomUUID().replaceAll('-', '')}`;
  const servicesPathSegments = options.servicesPathSegments ?? ['vip-services'];
  const state = createFakeState(now);
  const knobs = createKnobs(() => {
    for (const token of state.tokens.values()) token.expiresAt = 0;
  });
  const log: RecordedRequest[] = [];
  const app = createApp({
    state,
    knobs,
    log,
    clientId,
    clientSecret,
    tailnet: options.tailnet ?? 'example.com',
    servicesPathSegments,
    now,
    ...(options.control ? { control: options.control } : {}),
  });
  const server = Bun.serve({
    port: options.port ?? 0,
    hostname: options.hostname ?? '127.0.0.1',
    fetch: app.fetch,
  });
  const port = server.port ?? 0;
  return {
    url: `http://${server.hostname}:${port}`,
    port,
    clientId,
    clientSecret,
    state,
    knobs,
    requests: {
      all: log,
      count(match = {}) {
        return log.filter(
          (r) =>
            (match.method === undefined || match.method.toUpperCase() === r.method) &&
            (match.endpoint === undefined || match.endpoint === r.endpoint),
        ).length;
      },
      clear() {
        log.length = 0;
      },
    },
    async stop() {
      await server.stop(true);
    },
  };
}

export { endpointOf };
