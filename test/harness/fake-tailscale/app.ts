/**
 * The fake control plane's HTTP surface: the admin-API endpoints the operator uses, with the real
 * API's paths, JSON shapes and `{"message"}` error bodies (reference tailscale.md §1). It is written
 * from the API contract, independently of `src/tailscale`, so a misreading of the contract in the
 * client is not mirrored here.
 *
 * @module
 */

import { type Context, Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { FakeScope, KnobsInternals } from './knobs.ts';
import type { FakeAuthKey, FakeDevice, FakeService, FakeState } from './state.ts';

export interface RecordedRequest {
  method: string;
  /** The path exactly as it arrived, percent-escapes included. */
  rawPath: string;
  /** Raw query string without `?`, or empty. */
  query: string;
  /** Templated endpoint, e.g. `/tailnet/{tailnet}/keys/{id}`. */
  endpoint: string;
  /** Status answered. */
  status: number;
}

export interface AppOptions {
  state: FakeState;
  knobs: KnobsInternals;
  log: RecordedRequest[];
  clientId: string;
  clientSecret: string;
  /** Name accepted in `/tailnet/{tailnet}` besides `-`. */
  tailnet: string;
  /** Path elements serving Tailscale Services. */
  servicesPathSegments: string[];
  now: () => number;
  /**
   * Admin API of a tailnet-control (test/harness/tailscale/tailnet-control/): when set, auth keys,
   * devices and Tailscale Services are control's, so the keys minted here are the ones control admits
   * nodes with, the devices listed are the nodes it has and the services defined are the ones it
   * routes. The fake still validates requests and owns tokens and faults; `state` then holds only
   * tokens.
   */
  control?: string;
}

const ROUTES: [RegExp, string][] = [
  [/^\/api\/v2\/oauth\/token$/, '/oauth/token'],
  [/^\/api\/v2\/tailnet\/[^/]+\/keys$/, '/tailnet/{tailnet}/keys'],
  [/^\/api\/v2\/tailnet\/[^/]+\/keys\/[^/]+$/, '/tailnet/{tailnet}/keys/{id}'],
  [/^\/api\/v2\/tailnet\/[^/]+\/devices$/, '/tailnet/{tailnet}/devices'],
  [/^\/api\/v2\/device\/[^/]+$/, '/device/{id}'],
  [/^\/api\/v2\/device\/[^/]+\/authorized$/, '/device/{id}/authorized'],
];

/** The templated form of a raw path; unknown paths map to themselves. */
export function endpointOf(rawPath: string, servicesPathSegments: string[]): string {
  for (const [pattern, endpoint] of ROUTES) if (pattern.test(rawPath)) return endpoint;
  for (const seg of servicesPathSegments) {
    if (new RegExp(`^/api/v2/tailnet/[^/]+/${seg}$`).test(rawPath)) return `/tailnet/{tailnet}/${seg}`;
    if (new RegExp(`^/api/v2/tailnet/[^/]+/${seg}/[^/]+$`).test(rawPath))
      return `/tailnet/{tailnet}/${seg}/{name}`;
  }
  return rawPath;
}

function scopeOf(endpoint: string): FakeScope | undefined {
  if (endpoint.includes('/keys')) return 'auth_keys';
  if (endpoint.includes('/devices') || endpoint.startsWith('/device/')) return 'devices:core';
  if (endpoint.startsWith('/tailnet/{tailnet}/')) return 'services';
  return undefined;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request',
  401: 'API token invalid',
  403: 'calling actor does not have enough permissions to perform this function',
  404: 'not found',
  409: 'conflict',
  429: 'rate limit exceeded',
  500: 'internal server error',
  502: 'bad gateway',
  503: 'service unavailable',
};

const fail = (c: Context, status: number, message?: string) =>
  c.json({ message: message ?? STATUS_TEXT[status] ?? `HTTP ${status}` }, status as ContentfulStatusCode);

/** Answers with what the tailnet-control admin API answers to the same call. */
async function passThrough(c: Context, control: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${control}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const status = res.status as ContentfulStatusCode;
  return text === '' ? c.body(null, status) : c.body(text, status, { 'content-type': 'application/json' });
}

const SERVICE_NAME = /^svc:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const PORT = /^(tcp:\d{1,5}|do-not-validate)$/;
const DESCRIPTION = /^[A-Za-z0-9 -]{0,50}$/;

export function createApp(options: AppOptions): Hono {
  const { state, knobs, log, now } = options;
  const app = new Hono();
  let keyCounter = 0;

  // Record, delay, inject faults, authenticate, authorise: the order a real edge would apply them
  // (rate limiting before auth, so a 429 storm also hits the token endpoint).
  app.use('*', async (c, next) => {
    const url = new URL(c.req.url);
    const method = c.req.method;
    const endpoint = endpointOf(url.pathname, options.servicesPathSegments);
    const entry: RecordedRequest = {
      method,
      rawPath: url.pathname,
      query: url.search.replace(/^\?/, ''),
      endpoint,
      status: 0,
    };
    log.push(entry);
    try {
      const delay = knobs.latencyFor(method, endpoint);
      if (delay > 0) await Bun.sleep(delay);
      const fault = knobs.takeFault(method, endpoint);
      if (fault) {
        if (fault.retryAfter !== undefined) {
          const value =
            fault.retryAfter instanceof Date ? fault.retryAfter.toUTCString() : String(fault.retryAfter);
          c.header('Retry-After', value);
        }
        c.res = fail(c, fault.status, fault.message);
        return;
      }
      if (endpoint !== '/oauth/token' && endpoint !== url.pathname) {
        const auth = c.req.header('authorization') ?? '';
        const token = /^Bearer (.+)$/.exec(auth)?.[1];
        const issued = token === undefined ? undefined : state.tokens.get(token);
        if (!issued || issued.expiresAt <= now()) {
          c.res = fail(c, 401);
          return;
        }
        const scope = scopeOf(endpoint);
        if (scope && knobs.isDenied(scope)) {
          c.res = fail(c, 403);
          return;
        }
        const tailnet = /^\/api\/v2\/tailnet\/([^/]+)/.exec(url.pathname)?.[1];
        if (tailnet !== undefined && tailnet !== '-' && decodeURIComponent(tailnet) !== options.tailnet) {
          c.res = fail(c, 404, 'tailnet not found');
          return;
        }
      }
      await next();
    } finally {
      entry.status = c.res.status;
    }
  });

  app.post('/api/v2/oauth/token', async (c) => {
    const form = await c.req.parseBody();
    if (form['grant_type'] !== 'client_credentials') return fail(c, 400, 'unsupported grant_type');
    if (form['client_id'] !== options.clientId || form['client_secret'] !== options.clientSecret) {
      return fail(c, 401, 'invalid client credentials');
    }
    const token = `tskey-api-fake${crypto.randomUUID().replaceAll('-', '')}`;
    state.tokens.set(token, { clientId: options.clientId, expiresAt: now() + knobs.tokenTtlSeconds * 1000 });
    return c.json({
      access_token: token,
      token_type: 'Bearer',
      expires_in: knobs.tokenTtlSeconds,
      scope: 'auth_keys devices:core services',
    });
  });

  // Auth keys.
  const publicKey = ({ key: _secret, ...rest }: FakeAuthKey) => rest;
  const control = options.control;
  app.get('/api/v2/tailnet/:tailnet/keys', (c) =>
    control
      ? passThrough(c, control, 'GET', '/keys')
      : c.json({ keys: [...state.keys.values()].map(publicKey) }),
  );
  app.post('/api/v2/tailnet/:tailnet/keys', async (c) => {
    const body = await readJson(c);
    const caps = body?.['capabilities'] as { devices?: { create?: Record<string, unknown> } } | undefined;
    if (!caps || typeof caps.devices !== 'object') return fail(c, 400, 'capabilities.devices is required');
    const create = caps.devices.create ?? {};
    const tags = create['tags'];
    if (
      !Array.isArray(tags) ||
      tags.length === 0 ||
      !tags.every((t) => typeof t === 'string' && t.startsWith('tag:'))
    ) {
      return fail(
        c,
        400,
        'requested tags are invalid or not permitted: keys created by an OAuth client must be tagged',
      );
    }
    const description = body?.['description'];
    if (description !== undefined && (typeof description !== 'string' || !DESCRIPTION.test(description))) {
      return fail(c, 400, 'description must be at most 50 alphanumeric characters, spaces or hyphens');
    }
    const expirySeconds = body?.['expirySeconds'] ?? 90 * 24 * 3600;
    if (typeof expirySeconds !== 'number' || expirySeconds <= 0) return fail(c, 400, 'invalid expirySeconds');
    if (control) return passThrough(c, control, 'POST', '/keys', body);
    keyCounter += 1;
    const id = `k${keyCounter}FAKECNTRL`;
    const key: FakeAuthKey = {
      id,
      key: `tskey-auth-${id}-${crypto.randomUUID().replaceAll('-', '')}`,
      created: new Date(now()).toISOString(),
      expires: new Date(now() + expirySeconds * 1000).toISOString(),
      invalid: false,
      description: typeof description === 'string' ? description : '',
      capabilities: {
        devices: {
          create: {
            reusable: create['reusable'] === true,
            ephemeral: create['ephemeral'] === true,
            preauthorized: create['preauthorized'] === true,
            tags: tags as string[],
          },
        },
      },
    };
    state.keys.set(id, key);
    return c.json(key);
  });
  app.get('/api/v2/tailnet/:tailnet/keys/:id', (c) => {
    if (control) return passThrough(c, control, 'GET', `/keys/${encodeURIComponent(c.req.param('id'))}`);
    const key = state.keys.get(c.req.param('id'));
    return key ? c.json(publicKey(key)) : fail(c, 404);
  });
  app.delete('/api/v2/tailnet/:tailnet/keys/:id', (c) => {
    if (control) return passThrough(c, control, 'DELETE', `/keys/${encodeURIComponent(c.req.param('id'))}`);
    if (!state.keys.delete(c.req.param('id'))) return fail(c, 404);
    return c.body(null, 200);
  });

  // Devices.
  const deviceView = (c: Context, device: FakeDevice) => {
    if (c.req.query('fields') === 'all') return device;
    const { enabledRoutes: _e, advertisedRoutes: _a, ...rest } = device;
    return rest;
  };
  /** Control's nodes as devices, or the fake's own. */
  const allDevices = async (): Promise<FakeDevice[]> => {
    if (!control) return [...state.devices.values()];
    const res = await fetch(`${control}/devices`);
    if (!res.ok) throw new Error(`tailnet-control GET /devices: ${res.status}`);
    return ((await res.json()) as { devices: FakeDevice[] }).devices;
  };
  app.get('/api/v2/tailnet/:tailnet/devices', async (c) => {
    const tags = c.req.queries('tags');
    const devices = (await allDevices()).filter((d) => !tags || tags.every((tag) => d.tags.includes(tag)));
    return c.json({ devices: devices.map((d) => deviceView(c, d)) });
  });
  app.get('/api/v2/device/:id', async (c) => {
    const id = c.req.param('id');
    const device = control
      ? (await allDevices()).find((d) => d.id === id || d.nodeId === id)
      : state.findDevice(id);
    return device ? c.json(deviceView(c, device)) : fail(c, 404);
  });
  app.delete('/api/v2/device/:id', (c) => {
    if (control)
      return passThrough(c, control, 'DELETE', `/devices/${encodeURIComponent(c.req.param('id'))}`);
    const device = state.findDevice(c.req.param('id'));
    if (!device) return fail(c, 404);
    if (device.isExternal) return fail(c, 501, 'cannot delete devices outside of your tailnet');
    state.devices.delete(device.id);
    return c.body(null, 200);
  });

  // Device approval (meaningful when the tailnet requires it: tailnet-control -device-approval).
  app.post('/api/v2/device/:id/authorized', async (c) => {
    const body = await readJson(c);
    if (typeof body?.['authorized'] !== 'boolean') return fail(c, 400, 'authorized must be a boolean');
    const id = c.req.param('id');
    if (control)
      return passThrough(c, control, 'POST', `/devices/${encodeURIComponent(id)}/authorized`, body);
    const device = state.findDevice(id);
    if (!device) return fail(c, 404);
    device.authorized = body['authorized'];
    return c.body(null, 200);
  });

  // Tailscale Services, under each configured spelling of the path: the fake's own, or control's, so
  // a service defined here is the one control routes to the hosts advertising it. The fake validates
  // either way; control stores and allocates.
  const services = {
    async get(name: string): Promise<FakeService | undefined> {
      if (!control) return state.services.get(name);
      const res = await fetch(`${control}/services/${encodeURIComponent(name)}`);
      if (res.status === 404) return undefined;
      if (!res.ok) throw new Error(`tailnet-control GET /services/${name}: ${res.status}`);
      return (await res.json()) as FakeService;
    },
  };
  for (const seg of options.servicesPathSegments) {
    const base = `/api/v2/tailnet/:tailnet/${seg}`;
    app.get(base, (c) =>
      control
        ? passThrough(c, control, 'GET', '/services')
        : c.json({ vipServices: [...state.services.values()] }),
    );
    app.get(`${base}/:name`, async (c) => {
      const service = await services.get(c.req.param('name'));
      return service ? c.json(service) : fail(c, 404);
    });
    app.put(`${base}/:name`, async (c) => {
      const name = c.req.param('name');
      if (!SERVICE_NAME.test(name)) return fail(c, 400, `invalid service name "${name}"`);
      const body = await readJson(c);
      if (!body) return fail(c, 400, 'invalid JSON body');
      if (body['name'] !== undefined && body['name'] !== name) {
        return fail(c, 400, 'service name in body does not match path');
      }
      const ports = body['ports'];
      if (
        ports !== undefined &&
        (!Array.isArray(ports) || !ports.every((p) => typeof p === 'string' && PORT.test(p)))
      ) {
        return fail(c, 400, 'ports must be "tcp:<port>" or "do-not-validate"');
      }
      const existing = await services.get(name);
      let addrs = body['addrs'] as string[] | undefined;
      if (existing && (addrs === undefined || addrs.length === 0)) {
        // Models the documented caveat: replacing an auto-allocated service without its addresses fails.
        return fail(c, 400, 'addrs must be specified when updating an existing service');
      }
      if (existing && addrs?.join() !== existing.addrs.join()) {
        return fail(c, 400, 'service addresses cannot be changed');
      }
      if (control) {
        const { addrs: _none, ...rest } = body;
        return passThrough(c, control, 'PUT', `/services/${encodeURIComponent(name)}`, {
          ...rest,
          name,
          ...(addrs?.length ? { addrs } : {}),
        });
      }
      addrs ??= state.allocateServiceAddrs();
      const service: FakeService = { ...body, name, addrs };
      state.services.set(name, service);
      return c.json(service);
    });
    app.delete(`${base}/:name`, (c) => {
      const name = c.req.param('name');
      if (control) return passThrough(c, control, 'DELETE', `/services/${encodeURIComponent(name)}`);
      if (!state.services.delete(name)) return fail(c, 404);
      return c.body(null, 200);
    });
  }

  app.notFound((c) => fail(c, 404));
  app.onError((error, c) => fail(c, 500, `fake-tailscale: ${error.message}`));
  return app;
}

async function readJson(c: Context): Promise<Record<string, unknown> | undefined> {
  try {
    const body: unknown = await c.req.json();
    return body && typeof body === 'object' && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
