/**
 * The transport under every Kubernetes call: Bun `fetch` with the kubeconfig's TLS material passed in
 * `tls`, and a client-node `HttpLibrary` over it.
 *
 * Why: under Bun, client-node 2.x hands CA, client certificate and key to undici through a per-request
 * `dispatcher`, and Bun's built-in `undici` shim ignores it. Requests then fail with
 * SELF_SIGNED_CERT_IN_CHAIN, or reach the server without the client certificate (401). Bun's own `fetch`
 * accepts the material directly.
 *
 * TLS material is read once and re-read every `tlsRefreshMs` (default 5 min), so a rotated client
 * certificate or CA file (cert-manager, kubelet-rotated projected volumes) is picked up without a restart
 * and without reading three files on every request. Authorization headers are computed per request by
 * client-node's authenticators, which cache and refresh tokens themselves (the in-cluster token file is
 * re-read about every minute, exec plugins until their expiry).
 *
 * Not supported: client certificates returned by exec credential plugins, and `proxy-url`.
 *
 * @module
 */

import { readFileSync } from 'node:fs';
import {
  type HttpLibrary,
  KubeConfig,
  type RequestContext,
  ResponseContext,
  type SecurityAuthentication,
  wrapHttpLibrary,
} from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import { errorFromResponse, errorFromTransport } from './kube-errors.ts';
import type { RequestObserver } from './write-metrics.ts';

export interface TransportOptions {
  /** Per-request timeout for non-watch requests; default 30 s. */
  timeoutMs?: number;
  /** How often TLS files are re-read; default 5 min. */
  tlsRefreshMs?: number;
  /** User-Agent sent with every request. */
  userAgent?: string;
}

/** The `tls` option of Bun's `fetch`, as far as the kubeconfig can fill it. */
export interface BunTls {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  serverName?: string;
}

export interface RawRequestInit {
  method?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Objects are JSON-encoded; strings are sent as they are. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Overrides the transport's timeout; 0 disables it (watches use their own inactivity timer). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_TLS_REFRESH_MS = 5 * 60_000;

/** Shared by the typed APIs, the raw helpers and the watch, so they all see the same credentials. */
export class KubeTransport {
  readonly server: string;
  readonly timeoutMs: number;
  private readonly tlsRefreshMs: number;
  private readonly userAgent: string;
  private readonly authConfig: KubeConfig;
  private tlsCache: { value: BunTls | undefined; readAt: number } | undefined;
  private observers: RequestObserver[] = [];

  constructor(
    readonly kubeConfig: KubeConfig,
    options: TransportOptions = {},
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster?.server)
      throw new OperatorError('Invalid', 'kubeconfig has no current cluster with a server');
    this.server = cluster.server.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.tlsRefreshMs = options.tlsRefreshMs ?? DEFAULT_TLS_REFRESH_MS;
    this.userAgent = options.userAgent ?? 'tailscale-gateway';
    this.authConfig = withoutTlsMaterial(kubeConfig);
  }

  /** TLS options for Bun `fetch`, from cache unless older than `tlsRefreshMs`. */
  tls(now = Date.now()): BunTls | undefined {
    if (this.tlsCache && now - this.tlsCache.readAt < this.tlsRefreshMs) return this.tlsCache.value;
    const value = readTls(this.kubeConfig);
    this.tlsCache = { value, readAt: now };
    return value;
  }

  /**
   * Calls `observer` after every request, typed, raw and watch alike (the write counter of
   * ./write-metrics.ts): attached once the metrics registry exists, which is after the client.
   */
  observe(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  private report(method: string, url: string | URL, status: number | undefined): void {
    if (this.observers.length === 0) return;
    const parsed = typeof url === 'string' ? new URL(url) : url;
    for (const observer of this.observers) observer(method, parsed, status);
  }

  /** Forces the next request to re-read TLS files (for example after a certificate-rotation signal). */
  invalidateTls(): void {
    this.tlsCache = undefined;
  }

  /** Authorization (bearer, basic) and impersonation headers for the current user. */
  async authHeaders(): Promise<Record<string, string>> {
    const opts: { headers?: Record<string, unknown>; auth?: string } = {};
    await this.authConfig.applyToHTTPSOptions(opts as never);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(opts.headers ?? {})) {
      if (value !== undefined) headers[name] = String(value);
    }
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return headers;
  }

  /** A client-node auth method that adds {@link authHeaders}, for `createConfiguration`. */
  securityAuthentication(): SecurityAuthentication {
    return {
      getName: () => 'tailscale-gateway kubeconfig',
      applySecurityAuthentication: async (context: RequestContext) => {
        for (const [name, value] of Object.entries(await this.authHeaders()))
          context.setHeaderParam(name, value);
      },
    };
  }

  /** Absolute URL for an API path plus query parameters. */
  url(path: string, query: RawRequestInit['query'] = {}): URL {
    const url = new URL(this.server + path);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }

  /**
   * Sends one request with TLS and a timeout; it does not add auth headers (callers that bypass client-node
   * use {@link request}). Transport failures become `OperatorError`s; HTTP statuses are returned as they are.
   */
  async fetch(url: string | URL, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    const method = init.method ?? 'GET';
    const timeoutMs = init.timeoutMs ?? this.timeoutMs;
    const signals = [init.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter(
      (signal): signal is AbortSignal => signal != null,
    );
    const headers = new Headers(init.headers);
    if (!headers.has('user-agent')) headers.set('user-agent', this.userAgent);
    let response: Response;
    try {
      response = await fetch(url, {
        ...init,
        method,
        headers,
        signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0],
        tls: this.tls(),
      });
    } catch (error) {
      this.report(method, url, undefined);
      throw errorFromTransport(method, url, error);
    }
    this.report(method, url, response.status);
    return response;
  }

  /**
   * A raw API call with auth: returns the parsed JSON body, throws `OperatorError` for any non-2xx.
   * Used for calls client-node's typed APIs make awkward (server-side apply of arbitrary kinds, discovery).
   */
  async request<T = unknown>(path: string, init: RawRequestInit = {}): Promise<T> {
    const method = init.method ?? 'GET';
    const url = this.url(path, init.query);
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.authHeaders()) };
    let body: string | undefined;
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
      headers['content-type'] = init.contentType ?? 'application/json';
    }
    Object.assign(headers, init.headers);
    const response = await this.fetch(url, {
      method,
      headers,
      body,
      ...(init.signal ? { signal: init.signal } : {}),
      ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}),
    });
    const text = await readText(method, url, response);
    if (!response.ok) throw errorFromResponse(method, url, response.status, text, response.headers);
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new OperatorError('Internal', `${method} ${url.pathname}: response is not JSON`, {
        cause: error,
      });
    }
  }
}

/**
 * A client-node `HttpLibrary` over {@link KubeTransport}. Non-2xx answers are thrown as `OperatorError`
 * here, before client-node would wrap them in an `ApiException` whose message carries headers and body.
 */
export function createHttpLibrary(transport: KubeTransport): HttpLibrary {
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const method = request.getHttpMethod().toString();
      const url = request.getUrl();
      const body = request.getBody();
      if (body !== undefined && typeof body !== 'string' && !(body instanceof URLSearchParams)) {
        throw new OperatorError('Internal', `${method} ${url}: multipart bodies are not supported`);
      }
      const signal = request.getSignal();
      const response = await transport.fetch(url, {
        method,
        headers: request.getHeaders(),
        ...(body !== undefined ? { body } : {}),
        ...(signal ? { signal } : {}),
      });
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        headers[name] = value;
      });
      if (!response.ok) {
        const text = await readText(method, url, response);
        throw errorFromResponse(method, url, response.status, text, response.headers);
      }
      const data = Buffer.from(await readBytes(method, url, response));
      return new ResponseContext(response.status, headers, {
        text: async () => data.toString('utf8'),
        binary: async () => data,
        stream: () => null,
      });
    },
  });
}

async function readText(method: string, url: string | URL, response: Response): Promise<string> {
  try {
    return await response.text();
  } catch (error) {
    throw errorFromTransport(method, url, error);
  }
}

async function readBytes(method: string, url: string | URL, response: Response): Promise<ArrayBuffer> {
  try {
    return await response.arrayBuffer();
  } catch (error) {
    throw errorFromTransport(method, url, error);
  }
}

/** Reads CA, client certificate and key the way client-node does: a file wins over inline data. */
export function readTls(kc: KubeConfig): BunTls | undefined {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || cluster.server.startsWith('http:')) return undefined;
  const tls: BunTls = {};
  const ca = fileOrData(cluster.caFile, cluster.caData);
  if (ca) tls.ca = ca;
  const cert = fileOrData(user?.certFile, user?.certData);
  if (cert) tls.cert = cert;
  const key = fileOrData(user?.keyFile, user?.keyData);
  if (key) tls.key = key;
  if (cluster.skipTLSVerify) tls.rejectUnauthorized = false;
  if (cluster.tlsServerName) tls.serverName = cluster.tlsServerName;
  return tls;
}

function fileOrData(file: string | undefined, data: string | undefined): string | undefined {
  try {
    if (file) return readFileSync(file, 'utf8');
  } catch (error) {
    throw new OperatorError('Invalid', `cannot read ${file} named in the kubeconfig`, { cause: error });
  }
  return data ? Buffer.from(data, 'base64').toString('utf8') : undefined;
}

/**
 * A copy of the kubeconfig without CA and client-certificate references, so asking client-node for auth
 * headers does not read those files on every request; tokens, exec plugins and impersonation stay.
 */
function withoutTlsMaterial(kc: KubeConfig): KubeConfig {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const context = kc.getContextObject(kc.getCurrentContext());
  const copy = new KubeConfig();
  if (!cluster || !user || !context) return copy;
  const { caFile: _caFile, caData: _caData, ...bareCluster } = cluster;
  const {
    certFile: _certFile,
    certData: _certData,
    keyFile: _keyFile,
    keyData: _keyData,
    ...bareUser
  } = user;
  copy.loadFromOptions({
    // This copy's agent is never used; skipTLSVerify only stops client-node refusing http: servers here.
    clusters: [{ ...bareCluster, skipTLSVerify: true }],
    users: [bareUser],
    contexts: [context],
    currentContext: context.name,
  });
  return copy;
}
