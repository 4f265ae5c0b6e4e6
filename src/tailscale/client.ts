/**
 * The Tailscale control-plane client: OAuth client credentials, auth keys, devices, Tailscale Services.
 *
 * Written against the HTTP contract (reference tailscale.md §1) rather than wrapping a generated SDK,
 * because the parts that matter for an operator are exactly the ones SDKs leave out: retrying 429/5xx
 * with backoff and `Retry-After`, limiting our own writes, keeping `addrs` across a service replace,
 * sending `svc:` names unescaped, and keeping secrets out of every log line, error and metric.
 *
 * @module
 */

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type * as v from 'valibot';
import { OperatorError } from '../errors.ts';
import { type BackoffPolicy, FULL_JITTER } from '../time/backoff.ts';
import { type Clock, sleepOrCancel, systemClock } from '../time/clock.ts';
import { VERSION } from '../version.ts';
import { CALL, callCanceled, errorFromResponse, isRetryable, scrub } from './api-errors.ts';
import { createApiMetrics, type RetryReason } from './metrics.ts';
import { type ApiPath, apiPaths, assertServiceName } from './paths.ts';
import { createTokenBucket, type RateLimit } from './rate-limiter.ts';
import { retryDelay } from './retry-after.ts';
import * as schema from './schemas.ts';
import { createTokenCache } from './token-cache.ts';
import type {
  AuthKeyRequest,
  CallOptions,
  ScopeCheck,
  TailscaleApi,
  TailscaleService,
  TailscaleServiceSpec,
} from './types.ts';

export interface RetryOptions {
  /** Attempts per call, the first included. Default 5. */
  maxAttempts?: number;
  /** Upper bound of the first retry's jittered wait, in ms. Default 500. */
  baseMs?: number;
  /**
   * Largest wait between attempts, in ms. Default 30 000. A `Retry-After` longer than this is not slept
   * through: the call fails at once with `RateLimited` and `retryAfterMs`, so a reconciler can requeue
   * instead of holding a worker for minutes.
   */
  capMs?: number;
}

export interface TailscaleClientOptions {
  /**
   * Control server origin; `/api/v2/...` is appended. Default `https://api.tailscale.com`. Set it for a
   * self-hosted control server or a test double.
   */
  baseUrl?: string;
  /** Tailnet path element. Default `-`: the tailnet the OAuth client belongs to. */
  tailnet?: string;
  /** OAuth client id. */
  clientId: string;
  /** OAuth client secret (`tskey-client-…`). Never logged, never in errors. */
  clientSecret: string;
  /** HTTP implementation. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Time source for backoff, Retry-After, token expiry and rate limiting. Default: real time. */
  clock?: Clock;
  /** Jitter source in `[0, 1)`. Default `Math.random`; tests pin it. */
  random?: () => number;
  /** Logger for retries and failures (no secrets, no bodies). Default: silent. */
  log?: Pick<Logger, 'debug' | 'warn'>;
  /** Per-attempt timeout in ms, covering the response body too. Default 30 000. */
  timeoutMs?: number;
  /** Retry policy for 429, 5xx and network failures. Defaults as documented on each field. */
  retry?: RetryOptions;
  /**
   * Client-side limit on writes (POST/PUT/DELETE, not the token fetch). Default 5 per second with a
   * burst of 20: far above what steady reconciling needs, low enough to flatten a restart storm.
   */
  writeRateLimit?: RateLimit;
  /**
   * Path element for Tailscale Services. Default `vip-services`, what every official Tailscale client
   * uses; the published OpenAPI reportedly spells it `services` (unverified, reference §1.5).
   */
  servicesPathSegment?: string;
  /** Registry for `tsgw_tailscale_api_*` metrics. Default: no metrics. */
  registry?: Registry;
}

const DEFAULTS = {
  baseUrl: 'https://api.tailscale.com',
  tailnet: '-',
  timeoutMs: 30_000,
  maxAttempts: 5,
  baseMs: 500,
  capMs: 30_000,
  writeRateLimit: { perSecond: 5, burst: 20 },
  servicesPathSegment: 'vip-services',
} as const;

const WRITE_METHODS = new Set(['POST', 'PUT', 'DELETE']);
const PORT = /^(tcp:([1-9]\d{0,4})|do-not-validate)$/;
const DESCRIPTION = /^[A-Za-z0-9 -]{0,50}$/;

interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  at: ApiPath;
  query?: URLSearchParams;
  body?: unknown;
  /** Non-2xx statuses that count as success, e.g. 404 on delete. */
  accept?: number[];
  signal?: AbortSignal | undefined;
}

/** An error that the retry loop must pass through untouched (it was already retried, or is final). */
class Final {
  constructor(readonly error: unknown) {}
}

/**
 * Creates a client. Nothing is fetched until the first call; the OAuth token is fetched then and
 * shared by all calls.
 *
 * @example
 * const ts = createTailscaleClient({ clientId, clientSecret, registry: metrics.registry, log });
 * const key = await ts.keys.create({ tags: ['tag:k8s'], preauthorized: true });
 */
export function createTailscaleClient(options: TailscaleClientOptions): TailscaleApi & {
  /** Drops the cached token; the next call fetches a new one. */
  resetToken(): void;
} {
  const baseUrl = (options.baseUrl ?? DEFAULTS.baseUrl).replace(/\/+$/, '');
  const tailnet = options.tailnet ?? DEFAULTS.tailnet;
  const doFetch = options.fetch ?? fetch;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const log = options.log;
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  const maxAttempts = Math.max(1, options.retry?.maxAttempts ?? DEFAULTS.maxAttempts);
  const backoff: BackoffPolicy = {
    baseMs: options.retry?.baseMs ?? DEFAULTS.baseMs,
    capMs: options.retry?.capMs ?? DEFAULTS.capMs,
    jitter: FULL_JITTER,
  };
  const bucket = createTokenBucket(options.writeRateLimit ?? DEFAULTS.writeRateLimit, clock);
  const metrics = createApiMetrics(options.registry);
  const paths = apiPaths(tailnet, options.servicesPathSegment ?? DEFAULTS.servicesPathSegment);
  const userAgent = `tailscale-gateway/${VERSION}`;
  // Literal secrets to mask besides the `tskey-` pattern, which already covers every Tailscale-issued
  // credential: a self-hosted control server may issue tokens in another format. Bounded to the
  // current token so a long-running operator does not accumulate them.
  let currentToken = '';
  const secrets = () => [options.clientSecret, currentToken];
  const scrubbed = (text: string) => scrub(text, secrets());

  if (!options.clientId || !options.clientSecret) {
    throw new OperatorError('Invalid', 'Tailscale OAuth client id and secret are both required', {
      field: options.clientId ? 'clientSecret' : 'clientId',
    });
  }

  /** One HTTP exchange, bounded by the per-attempt timeout and the caller's signal. */
  async function exchange(
    method: string,
    at: ApiPath,
    url: string,
    init: RequestInit,
    signal: AbortSignal | undefined,
  ): Promise<Exchange> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const response = await doFetch(url, { ...init, method, signal: combined, redirect: 'error' });
      const text = await response.text();
      metrics.observe(method, at.endpoint, String(response.status), seconds());
      log?.debug({ method, endpoint: at.endpoint, status: response.status }, 'tailscale api call');
      return { status: response.status, headers: response.headers, text };
    } catch (cause) {
      if (signal?.aborted) {
        metrics.observe(method, at.endpoint, 'canceled', seconds());
        throw callCanceled(signal);
      }
      if (timeout.aborted) {
        metrics.observe(method, at.endpoint, 'timeout', seconds());
        throw new OperatorError('Transient', `${method} ${at.path}: timed out after ${timeoutMs} ms`, {
          cause: 'timeout',
        });
      }
      metrics.observe(method, at.endpoint, 'network', seconds());
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new OperatorError('Transient', scrubbed(`${method} ${at.path}: network error: ${detail}`), {
        cause: 'network',
      });
    }
  }

  function reasonFor(error: OperatorError): RetryReason {
    if (error.code === 'RateLimited') return 'rate_limited';
    if (error.status !== undefined) return 'server_error';
    return error.cause === 'timeout' ? 'timeout' : 'network';
  }

  /**
   * Runs `attempt` until it succeeds, fails for good, or runs out of attempts. Only `RateLimited` and
   * `Transient` are retried; the wait is the jittered backoff or the server's Retry-After, whichever is
   * longer.
   */
  async function withRetries<T>(
    method: string,
    at: ApiPath,
    signal: AbortSignal | undefined,
    attempt: () => Promise<T>,
  ): Promise<T> {
    for (let n = 1; ; n++) {
      let error: unknown;
      try {
        return await attempt();
      } catch (caught) {
        if (caught instanceof Final) throw caught.error;
        error = caught;
      }
      if (!isRetryable(error)) throw error;
      const failure = error as OperatorError;
      if (n >= maxAttempts) {
        throw new OperatorError(failure.code, `${failure.message} (gave up after ${n} attempts)`, {
          cause: failure,
          ...(failure.status === undefined ? {} : { status: failure.status }),
          ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }),
        });
      }
      if (failure.retryAfterMs !== undefined && failure.retryAfterMs > backoff.capMs) throw failure;
      const delayMs = retryDelay(n - 1, failure.retryAfterMs, backoff, random);
      const reason = reasonFor(failure);
      metrics.retry(reason);
      log?.warn(
        { method, endpoint: at.endpoint, status: failure.status, reason, attempt: n, delayMs },
        'tailscale api call failed; retrying',
      );
      await sleepOrCancel(clock, delayMs, signal, CALL);
    }
  }

  const tokens = createTokenCache(async () => {
    const at = paths.token();
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: options.clientId,
      client_secret: options.clientSecret,
    });
    // Deliberately no caller signal: the fetch is shared by every waiting call.
    const issued = await withRetries('POST', at, undefined, async () => {
      const res = await exchange(
        'POST',
        at,
        baseUrl + at.path,
        {
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            'user-agent': userAgent,
          },
          body: form.toString(),
        },
        undefined,
      );
      if (res.status < 200 || res.status > 299) {
        throw errorFromResponse('POST', at.path, res.status, res.text, res.headers, clock.now(), secrets());
      }
      return schema.parseBody(schema.TokenResponse, res.text, `POST ${at.path}`);
    });
    currentToken = issued.access_token;
    return { accessToken: issued.access_token, expiresInSeconds: issued.expires_in };
  }, clock);

  /**
   * One API call: token, write rate limit, request, and a single token refresh when the API answers
   * 401 (a token revoked or expired early is the common cause, and a fresh one fixes it; a second 401
   * means the credentials themselves are bad).
   */
  async function request(spec: RequestSpec): Promise<Exchange> {
    const { method, at, signal } = spec;
    const url = baseUrl + at.path + (spec.query && [...spec.query].length > 0 ? `?${spec.query}` : '');
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const once = async (): Promise<{ res: Exchange; token: string }> => {
      let token: string;
      try {
        token = await tokens.get(signal);
      } catch (error) {
        throw new Final(error);
      }
      if (WRITE_METHODS.has(method)) await bucket.acquire(signal);
      const headers: Record<string, string> = {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        'user-agent': userAgent,
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await exchange(
        method,
        at,
        url,
        { headers, ...(body === undefined ? {} : { body }) },
        signal,
      );
      return { res, token };
    };
    const res = await withRetries(method, at, signal, async () => {
      let { res, token } = await once();
      if (res.status === 401) {
        tokens.invalidate(token);
        metrics.retry('token_refresh');
        log?.warn({ method, endpoint: at.endpoint }, 'tailscale api rejected the access token; refreshing');
        ({ res, token } = await once());
      }
      if ((res.status >= 200 && res.status <= 299) || spec.accept?.includes(res.status)) return res;
      throw errorFromResponse(method, at.path, res.status, res.text, res.headers, clock.now(), secrets());
    });
    return res;
  }

  const parse = <S extends v.GenericSchema>(s: S, res: Exchange, method: string, at: ApiPath) =>
    schema.parseBody(s, res.text, `${method} ${at.path}`);

  async function getJson<S extends v.GenericSchema>(
    s: S,
    at: ApiPath,
    signal: AbortSignal | undefined,
    query?: URLSearchParams,
  ): Promise<v.InferOutput<S>> {
    const res = await request({ method: 'GET', at, signal, ...(query ? { query } : {}) });
    return parse(s, res, 'GET', at);
  }

  async function remove(at: ApiPath, signal: AbortSignal | undefined): Promise<void> {
    await request({ method: 'DELETE', at, signal, accept: [404] });
  }

  const keys: TailscaleApi['keys'] = {
    async create(req: AuthKeyRequest, callOptions: CallOptions = {}) {
      validateKeyRequest(req);
      const at = paths.keys();
      const res = await request({
        method: 'POST',
        at,
        signal: callOptions.signal,
        body: {
          capabilities: {
            devices: {
              create: {
                reusable: req.reusable ?? false,
                ephemeral: req.ephemeral ?? false,
                preauthorized: req.preauthorized ?? false,
                tags: req.tags,
              },
            },
          },
          ...(req.expirySeconds === undefined ? {} : { expirySeconds: req.expirySeconds }),
          ...(req.description === undefined ? {} : { description: req.description }),
        },
      });
      return parse(schema.CreatedAuthKey, res, 'POST', at);
    },
    get: (id, callOptions = {}) => getJson(schema.AuthKeyInfo, paths.key(id), callOptions.signal),
    list: async (callOptions = {}) =>
      (await getJson(schema.AuthKeyList, paths.keys(), callOptions.signal)).keys,
    delete: (id, callOptions = {}) => remove(paths.key(id), callOptions.signal),
  };

  const devices: TailscaleApi['devices'] = {
    async list(query = {}) {
      const params = new URLSearchParams();
      if (query.fields) params.set('fields', query.fields);
      for (const [key, value] of Object.entries(query.filter ?? {})) {
        for (const one of Array.isArray(value) ? value : [value]) params.append(key, one);
      }
      return (await getJson(schema.DeviceList, paths.devices(), query.signal, params)).devices;
    },
    get(id, query = {}) {
      const params = new URLSearchParams(query.fields ? { fields: query.fields } : {});
      return getJson(schema.Device, paths.device(id), query.signal, params);
    },
    delete: (id, callOptions = {}) => remove(paths.device(id), callOptions.signal),
  };

  const services: TailscaleApi['services'] = {
    list: async (callOptions = {}) =>
      (await getJson(schema.ServiceList, paths.services(), callOptions.signal)).vipServices,
    // async so a bad name rejects like every other failure instead of throwing synchronously.
    get: async (name, callOptions = {}) => getJson(schema.Service, paths.service(name), callOptions.signal),
    async put(spec, putOptions = {}) {
      validateServiceSpec(spec);
      const at = paths.service(spec.name);
      let current = putOptions.current;
      if (current === undefined) {
        const res = await request({ method: 'GET', at, signal: putOptions.signal, accept: [404] });
        current = res.status === 404 ? null : parse(schema.Service, res, 'GET', at);
      }
      await request({ method: 'PUT', at, signal: putOptions.signal, body: mergeService(current, spec) });
    },
    delete: async (name, callOptions = {}) => remove(paths.service(name), callOptions.signal),
  };

  async function check(call: () => Promise<unknown>): Promise<ScopeCheck> {
    try {
      await call();
      return { status: 'ok' };
    } catch (error) {
      const failure = OperatorError.from(error);
      return {
        status: failure.status === 403 ? 'denied' : 'error',
        code: failure.code,
        message: failure.message,
      };
    }
  }

  return {
    baseUrl,
    tailnet,
    keys,
    devices,
    services,
    async probeScopes(callOptions = {}) {
      const [devicesCheck, authKeys, servicesCheck] = await Promise.all([
        check(() => devices.list(callOptions)),
        check(() => keys.list(callOptions)),
        check(() => services.list(callOptions)),
      ]);
      return { devices: devicesCheck, authKeys, services: servicesCheck };
    },
    resetToken() {
      tokens.clear();
    },
  };
}

/**
 * The body for a service `PUT`. The API replaces the whole object, so the current service is the base:
 * `addrs` must be resent (a PUT without them fails for auto-allocated services, reference §1.5) and
 * fields this client does not model must survive. The spec's defined fields win.
 */
export function mergeService(current: TailscaleService | null, spec: TailscaleServiceSpec): TailscaleService {
  const merged: TailscaleService = { ...(current ?? {}), name: spec.name };
  // An empty list cannot mean "drop the addresses" (the API refuses that), so it means "keep them".
  if (spec.addrs !== undefined && spec.addrs.length > 0) merged.addrs = spec.addrs;
  if (spec.comment !== undefined) merged.comment = spec.comment;
  if (spec.annotations !== undefined) merged.annotations = spec.annotations;
  if (spec.ports !== undefined) merged.ports = spec.ports;
  if (spec.tags !== undefined) merged.tags = spec.tags;
  if (merged.addrs !== undefined && merged.addrs.length === 0) delete merged.addrs;
  return merged;
}

function validateKeyRequest(req: AuthKeyRequest): void {
  if (req.tags.length === 0 || req.tags.some((tag) => !/^tag:[A-Za-z0-9-]+$/.test(tag))) {
    throw new OperatorError(
      'Invalid',
      'auth key tags must be a non-empty list of "tag:<name>" (keys minted with an OAuth client must be tagged)',
      { field: 'tags' },
    );
  }
  if (req.description !== undefined && !DESCRIPTION.test(req.description)) {
    throw new OperatorError(
      'Invalid',
      'auth key description must be at most 50 letters, digits, spaces or hyphens',
      { field: 'description' },
    );
  }
  if (req.expirySeconds !== undefined && !(Number.isInteger(req.expirySeconds) && req.expirySeconds > 0)) {
    throw new OperatorError('Invalid', 'auth key expirySeconds must be a positive integer', {
      field: 'expirySeconds',
    });
  }
}

function validateServiceSpec(spec: TailscaleServiceSpec): void {
  assertServiceName(spec.name);
  for (const port of spec.ports ?? []) {
    const match = PORT.exec(port);
    if (!match || (match[2] !== undefined && Number(match[2]) > 65535)) {
      throw new OperatorError(
        'Invalid',
        `Tailscale Service port ${JSON.stringify(port)} must be "tcp:<1-65535>" or "do-not-validate"`,
        {
          field: 'ports',
        },
      );
    }
  }
}
